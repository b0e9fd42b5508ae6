"""End to end: the CLI on a tiny generated dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.cli import main
from dnnbench.reporting.columns import EPOCH_COLUMNS, SUMMARY_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
ISSUE_COLUMNS = ("run_id, status, framework, storage, client, access, workers, batch_size, epochs, samples, bytes, "
                 "wall_s, samples_per_s, MiB_per_s, MB_per_s, au_percent, time_to_first_batch_s, list_s, "
                 "objects_listed, bytes_listed, request_p50_ms, request_p90_ms, request_p99_ms, request_max_ms, "
                 "first_epoch_MiB_per_s, last_epoch_MiB_per_s, cpu_percent, peak_rss_MiB, errors, "
                 "decode_p50_ms, read_share_percent, cache").split(", ")


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmark.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("workers", [0, 2])
def test_read_epoch_reads_exactly_the_listed_bytes(tiny_root, write_config, tmp_path, workers, capsys):
    cfg = write_config(tiny_root, dataset={"decode": "none"}, framework={"num_workers": workers},
                       training={"trainer": "read", "epochs": 2})
    assert main(["--config", str(cfg)]) == 0
    out = tmp_path / "results"
    (run,) = run_dirs(out)
    summary = pd.read_csv(run / "summary.csv").iloc[0]
    assert summary["status"] == "ok" and summary["byte_check"] == "ok"
    assert summary["bytes"] == 2 * summary["bytes_listed"] and summary["objects_listed"] == 36
    epochs = pd.read_csv(run / "epochs.csv")
    assert list(epochs["bytes"]) == [summary["bytes_listed"]] * 2
    requests = pd.read_csv(run / "requests.csv")
    gets = requests[requests["op"] == "get"]
    assert len(gets) == 72 and gets["bytes"].sum() == summary["bytes"]
    assert sorted(gets["epoch"].unique()) == [0, 1]
    if workers:
        assert gets["pid"].nunique() >= 2 and set(gets["worker"]) <= {0, 1}
    assert "MiB_per_s" in capsys.readouterr().out


def test_every_csv_has_its_columns(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, framework={"num_workers": 2}, training={"trainer": "train", "epochs": 2,
                                                                            "warmup_steps": 1})
    assert main(["-q", "--config", str(cfg), "--run-id", "full"]) == 0
    run = tmp_path / "results" / "full"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["summary.csv", "epochs.csv", "steps.csv", "requests.csv", "system.csv", "config.yaml", "environment.json",
         "summary.json", "report.md"])
    summary = pd.read_csv(run / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS and set(ISSUE_COLUMNS) <= set(summary.columns)
    row = summary.iloc[0]
    assert row["framework"] == "pytorch" and row["trainer"] == "train" and row["model"] == "convnet"
    for col in ("samples_per_s", "MiB_per_s", "MB_per_s", "au_percent", "time_to_first_batch_s", "list_s",
                "request_p50_ms", "request_p99_ms", "decode_p50_ms", "read_share_percent", "cpu_percent",
                "peak_rss_MiB", "first_epoch_MiB_per_s", "last_epoch_MiB_per_s"):
        assert pd.notna(row[col]) and row[col] > 0, col
    assert row["cache"] in ("warm", "cold", "unknown") and row["errors"] == 0
    assert list(pd.read_csv(run / "epochs.csv").columns) == EPOCH_COLUMNS
    steps = pd.read_csv(run / "steps.csv")
    assert list(steps.columns) == ["epoch", "step", "t_s", "wait_s", "compute_s", "samples", "bytes", "loss",
                                   "failed_samples"]
    assert len(steps) == 2 * 5 and steps["loss"].notna().all() and steps["samples"].sum() == 72
    assert list(pd.read_csv(run / "system.csv").columns) == ["t_s", "cpu_percent", "rss_MiB", "processes",
                                                             "read_MiB", "system_cpu_percent"]
    env = json.loads((run / "environment.json").read_text())
    assert env["versions"]["torch"] and "request_ttfb_p50_ms" in env["unmeasured"]
    assert "torch" in env["versions"] and env["framework"]["device"] == "cpu"
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["framework"]["num_workers"] == 2
    agg = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(agg["run_id"]) == ["full"]


def test_runs_append_and_never_overwrite(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, dataset={"max_samples": 8})
    assert main(["-q", "--config", str(cfg), "--run-id", "a"]) == 0
    assert main(["-q", "--config", str(cfg)]) == 0
    assert main(["-q", "--config", str(cfg)]) == 0
    assert main(["-q", "--config", str(cfg), "--run-id", "a"]) == 2  # exists: refused
    agg = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(agg) == 3 and agg["run_id"].nunique() == 3
    assert (agg["samples"] == 8).all()


def test_emulate_trainer_reports_high_au(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, training={"trainer": "emulate", "compute_time_s": 0.02, "warmup_steps": 1})
    assert main(["-q", "--config", str(cfg), "--run-id", "emu"]) == 0
    row = pd.read_csv(tmp_path / "results" / "emu" / "summary.csv").iloc[0]
    assert row["au_percent"] > 50 and pd.isna(row["model"])


def test_max_steps_and_partial_epoch_byte_check(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, training={"trainer": "read", "max_steps": 2})
    assert main(["-q", "--config", str(cfg), "--run-id", "ms"]) == 0
    row = pd.read_csv(tmp_path / "results" / "ms" / "summary.csv").iloc[0]
    assert row["steps"] == 2 and row["samples"] == 16 and row["byte_check"] == "not_checked"


def test_prepare_and_quickstart_style_auto(tmp_path, write_config):
    data = tmp_path / "data"
    cfg = write_config(data, prepare={"auto": True, "classes": 2, "images_per_class": 5, "width": [16, 20],
                                      "height": [16, 20]})
    assert main(["prepare", "--config", str(cfg)]) == 0
    assert len(list((data / "train").rglob("*.jpg"))) == 10
    assert main(["-q", "--config", str(cfg)]) == 0  # present now: no regeneration
    other = write_config(tmp_path / "auto", name="auto.yaml", prepare={"auto": True, "classes": 2,
                                                                       "images_per_class": 3})
    assert main(["-q", "--config", str(other)]) == 0
    assert len(list((tmp_path / "auto" / "train").rglob("*.jpg"))) == 6


def test_an_interrupted_prepare_is_never_taken_for_a_dataset(tmp_path, write_config, monkeypatch, capsys):
    from dnnbench.data import synthetic

    data = tmp_path / "data"
    cfg = write_config(data, prepare={"classes": 2, "images_per_class": 6, "width": [16, 20], "height": [16, 20]})
    real = synthetic.generate

    def dies_half_way(storage, prefix, classes, per_class, **kw):
        real(storage, prefix, 1, per_class, **kw)  # one class written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "generate", dies_half_way)
    assert main(["prepare", "--config", str(cfg)]) == 130
    monkeypatch.setattr(synthetic, "generate", real)
    capsys.readouterr()
    assert main(["-q", "--config", str(cfg)]) == 2  # the half-written data is refused, by name
    err = capsys.readouterr().err
    assert "incomplete" in err and "prepare" in err and "Traceback" not in err
    assert main(["prepare", "--config", str(cfg)]) == 0  # rewritten without --force
    assert "did not finish" in capsys.readouterr().err
    assert len(list((data / "train").rglob("*.jpg"))) == 12 and not list(data.rglob(".dnnbench-preparing"))
    assert main(["-q", "--config", str(cfg)]) == 0


@pytest.mark.slow
def test_legacy_config_and_example_plugins_run(tmp_path):
    out = tmp_path / "res"
    r = cli("--config", "config/legacy-dss-fs.json", "--set", f"metrics.output_dir={out}",
            "--set", f"storage.root={tmp_path / 'legacy'}", "--set", "prepare.images_per_class=8")
    assert r.returncode == 0, r.stderr
    assert "dss-style layout recognised" in r.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["trainer"] == "train" and row["dataset"] == "image_folder" and row["objects_listed"] == 48
    r = cli("--config", "examples/plugins/config.yaml", "-q", "--set", f"metrics.output_dir={out}",
            "--set", f"storage.root={tmp_path / 'plug'}")
    assert r.returncode == 0, r.stderr
    row = pd.read_csv(out / "summary.csv").iloc[-1]
    assert row["dataset"] == "flipped_images" and row["model"] == "tiny_mlp" and row["status"] == "ok"
    r = cli("plugins", "--config", "examples/plugins/config.yaml", env={"COLUMNS": "200"})
    assert r.returncode == 0 and "flipped_images" in r.stdout and "plugins: ./my_plugins.py" in r.stdout


@pytest.mark.slow
def test_help_and_validate_do_not_import_frameworks(tmp_path):
    probe = ("import sys, runpy; sys.argv = ['benchmark.py'] + sys.argv[1:]; "
             "code = 0\ntry:\n    runpy.run_path('benchmark.py', run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "print('IMPORTED', sorted(m for m in ('torch', 'tensorflow') if m in sys.modules), file=sys.stderr)\n"
             "sys.exit(code)")
    for args in (["--help"], ["validate", "--config", "config/quickstart.yaml"], ["plugins"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "IMPORTED []" in r.stderr, (args, r.stderr)
    r = cli("validate", "--config", "config/quickstart.yaml")
    assert yaml.safe_load(r.stdout)["framework"]["name"] == "pytorch"


@pytest.mark.parametrize("sections,expect", [
    ({"framework": {"num_workrs": 2}}, "framework.num_workrs"),
    ({"framework": {"batch_size": "big"}}, "framework.batch_size"),
    ({"model": {"name": "convnett"}}, "did you mean 'convnet'"),
    ({"training": {"trainer": "trian"}}, "training.trainer"),
    ({"storage": {"client": "nfs"}}, "storage.client"),
    ({"storage": {"root": "/nonexistent/dnnbench-data"}}, "storage.root"),
    ({"storage": {"prefixes": ["no-such-prefix"]}}, "storage.prefixes"),
    ({"dataset": {"extensions": [".tiff"]}}, "no samples"),
    ({"plugins": ["./missing_plugin.py"]}, "plugins"),
])
@pytest.mark.slow
def test_bad_input_exits_2_with_one_clear_message(tiny_root, write_config, tmp_path, sections, expect):
    cfg = write_config(tiny_root, **sections)
    r = cli("--config", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    assert expect in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert sum(line.startswith("error") for line in r.stderr.splitlines()) == 1
    for run in run_dirs(tmp_path / "results"):  # found while listing: recorded as a failed run
        row = pd.read_csv(run / "summary.csv").iloc[0]
        assert row["status"] == "failed" and row["failed_phase"] == "list"


@pytest.mark.slow
def test_debug_shows_the_traceback(write_config, tmp_path):
    cfg = write_config(tmp_path / "missing")
    r = cli("--config", str(cfg), "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr and "storage.root" in r.stderr


@pytest.mark.slow
def test_corrupt_sample_fails_the_run_naming_the_key(tmp_path, write_config):
    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path / "data"
    generate(FileSystemStorage(StorageConfig(root=str(root))), "train", 2, 6, width=(16, 20), height=(16, 20))
    (root / "train" / "class_001" / "000003.jpg").write_bytes(b"this is not a jpeg")
    cfg = write_config(root, framework={"num_workers": 2, "shuffle": False})
    r = cli("--config", str(cfg))
    assert r.returncode == 1 and "train/class_001/000003.jpg" in r.stderr and "Traceback" not in r.stderr
    (run,) = run_dirs(tmp_path / "results")
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "failed" and row["failed_phase"] == "train" and "000003.jpg" in row["reason"]
    assert pd.read_csv(run / "steps.csv")["samples"].sum() > 0  # what was measured is kept


@pytest.mark.slow
def test_sigint_writes_partial_results(tmp_path, write_config, tiny_root):
    cfg = write_config(tiny_root, framework={"num_workers": 2},
                       training={"trainer": "emulate", "compute_time_s": 0.5, "epochs": 20})
    p = subprocess.Popen([sys.executable, "benchmark.py", "-q", "--config", str(cfg)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "results"
    deadline = time.time() + 120
    while time.time() < deadline and not any((d / ".requests").exists() for d in run_dirs(out)):
        time.sleep(0.2)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    (run,) = run_dirs(out)
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "interrupted" and row["steps"] >= 1


def test_drop_caches_reports_cold_or_says_why(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, execution={"drop_caches": True}, training={"trainer": "read", "epochs": 2})
    assert main(["--config", str(cfg), "--run-id", "cold"]) == 0
    row = pd.read_csv(tmp_path / "results" / "cold" / "summary.csv").iloc[0]
    epochs = pd.read_csv(tmp_path / "results" / "cold" / "epochs.csv")
    err = capsys.readouterr().err
    if row["cache"] == "cold":  # dropped and verified (root, and the kernel let us)
        assert list(epochs["cache"]) == ["cold", "cold"] and "cannot drop the page cache" not in err
    else:  # not permitted here: said why, and never called cold
        assert "cannot drop the page cache" in err and set(epochs["cache"]) <= {"warm", "unknown"}


@pytest.mark.slow
def test_on_error_skip_counts_missing_truncated_and_non_images(tmp_path, write_config):
    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path / "data"
    generate(FileSystemStorage(StorageConfig(root=str(root))), "train", 2, 8, width=(16, 20), height=(16, 20))
    cls = root / "train" / "class_000"
    good = (cls / "000001.jpg").read_bytes()
    (cls / "000001.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (cls / "000002.jpg").write_bytes(b"plain text, not an image")
    for workers in (0, 2):
        cfg = write_config(root, name=f"skip{workers}.yaml", dataset={"on_error": "skip", "max_skipped_percent": 15},
                           framework={"num_workers": workers}, training={"trainer": "read", "epochs": 2})
        assert main(["-q", "--config", str(cfg), "--run-id", f"skip{workers}"]) == 0
        run = tmp_path / "results" / f"skip{workers}"
        row = pd.read_csv(run / "summary.csv").iloc[0]
        assert row["status"] == "ok" and row["skipped_samples"] == 4 and row["samples"] == 2 * 14
        assert row["byte_check"] == "not_checked"
        env = json.loads((run / "environment.json").read_text())
        assert {s["key"] for s in env["skipped_samples"]} == {"train/class_000/000001.jpg",
                                                             "train/class_000/000002.jpg"}
        assert any("truncated JPEG" in s["reason"] for s in env["skipped_samples"])
    cfg = write_config(root, name="fail.yaml", training={"trainer": "read"})
    r = cli("--config", str(cfg))
    assert r.returncode == 1 and "on_error: skip" in r.stderr


@pytest.mark.slow
def test_sigterm_stops_workers_and_leaves_no_orphans(tmp_path, write_config, tiny_root):
    import psutil

    cfg = write_config(tiny_root, framework={"num_workers": 2, "persistent_workers": True},
                       training={"trainer": "emulate", "compute_time_s": 0.3, "epochs": 50})
    p = subprocess.Popen([sys.executable, "benchmark.py", "-q", "--config", str(cfg)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(p.pid)
    deadline = time.time() + 120
    children = []
    while time.time() < deadline and len(children) < 2:
        children = [c for c in proc.children(recursive=True)]
        time.sleep(0.2)
    assert len(children) >= 2, "loader workers did not start"
    time.sleep(2)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == 130
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphan processes: {alive}"
    (run,) = run_dirs(tmp_path / "results")
    assert pd.read_csv(run / "summary.csv").iloc[0]["status"] == "interrupted"


def _started(marker: Path) -> bool:
    if marker.is_file():
        return True
    return marker.is_dir() and any(marker.rglob("*.jpg"))


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["prepare", "auto-prepare", "plugin-loading"])
def test_sigterm_anywhere_exits_130_without_traceback(tmp_path, write_config, stage):
    """SIGTERM outside the measured phases (prepare, prepare.auto, importing plugins) is one line and 130."""
    data = tmp_path / "data"
    big = {"classes": 4, "images_per_class": 5000, "width": [64, 128], "height": [64, 128], "workers": 2}
    marker = data
    sections: dict = {"prepare": {**big, "auto": stage == "auto-prepare"}}
    if stage == "plugin-loading":
        marker = tmp_path / "plugin-started"
        (tmp_path / "slow_plugin.py").write_text(
            f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x')\ntime.sleep(120)\n")
        sections = {"plugins": ["./slow_plugin.py"]}
    cfg = write_config(data, **sections)
    args = ["prepare", "--config", str(cfg)] if stage == "prepare" else ["-q", "--config", str(cfg)]
    p = subprocess.Popen([sys.executable, "benchmark.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not _started(marker) and p.poll() is None:
            time.sleep(0.1)
        assert p.poll() is None, p.communicate()
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("interrupted"), stderr
    assert sum("interrupted" in line for line in lines) == 1, stderr


@pytest.mark.parametrize("argv,expect", [
    (["--config", "c.yaml", "--run-id", "plugins"], ["run", "--config", "c.yaml", "--run-id", "plugins"]),
    (["-c", "validate"], ["run", "-c", "validate"]),
    (["--config", "c.yaml", "--set", "name=compare"], ["run", "--config", "c.yaml", "--set", "name=compare"]),
    (["validate", "--config", "c.yaml"], ["validate", "--config", "c.yaml"]),
    (["--debug", "-q", "plugins"], ["--debug", "-q", "plugins"]),
    (["--deb", "prepare", "-c", "x"], ["--deb", "prepare", "-c", "x"]),
    (["-q", "--config", "c.yaml"], ["run", "-q", "--config", "c.yaml"]),
    (["--help"], ["--help"]),
    ([], []),
])
def test_only_the_first_token_can_be_a_subcommand(argv, expect):
    from dnnbench.cli import _normalise

    assert _normalise(argv) == expect


def test_run_id_named_like_a_subcommand(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, dataset={"max_samples": 8})
    assert main(["-q", "--config", str(cfg), "--run-id", "plugins"]) == 0
    assert (tmp_path / "results" / "plugins" / "summary.csv").is_file()


@pytest.mark.slow
def test_example_plugins_with_spawned_loader_workers(tmp_path):
    """Plugin classes from a .py file reach loader workers started with spawn (by module name)."""
    out = tmp_path / "res"
    r = cli("--config", "examples/plugins/config.yaml", "-q", "--set", f"metrics.output_dir={out}",
            "--set", f"storage.root={tmp_path / 'plug'}", "--set", "framework.num_workers=2",
            "--set", "framework.multiprocessing_context=spawn")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    row = pd.read_csv(out / "summary.csv").iloc[-1]
    assert row["dataset"] == "flipped_images" and row["model"] == "tiny_mlp" and row["status"] == "ok"
    assert row["workers"] == 2
