"""End to end, the run lifecycle under faults (issue 12): a stop signal while the report is
written, SIGTERM to the whole process group, a store that goes away under on_error: skip,
concurrent prepares, prepare parameters that changed (issue 11.5), a full disk and a read-only
results folder (real tmpfs mounts)."""

from __future__ import annotations

import errno
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
from tests.conftest import base_config

ROOT = Path(__file__).resolve().parents[2]


def start(cfg: Path, *args: str, env: dict | None = None, session: bool = False) -> subprocess.Popen:
    """``benchmark.py`` in the background with Ctrl-C armed (a background job starts with SIGINT
    ignored); ``session``: in a process group of its own, for a group kill."""
    return subprocess.Popen([sys.executable, "benchmark.py", *args, "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=session,
                            preexec_fn=None if session else lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(check, p: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not check():
        if p.poll() is not None:
            out, err = p.communicate()
            pytest.fail(f"the run ended before {what}: {err[-3000:]}")
        if time.time() > deadline:
            p.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def finish(p: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    import psutil

    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(p.pid).children(recursive=True):
            child.kill()
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"the run hung: {err[-3000:]}")


def the_run(out: Path) -> Path:
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    return run


def workers_started(p: subprocess.Popen, workers: int = 2):
    """True once the run's loader workers are running (then a second later, batches flow)."""
    import psutil

    return lambda: len(psutil.Process(p.pid).children(recursive=True)) >= workers


def gets_cover_the_samples(run: Path, row: pd.Series, workers: int) -> None:
    """12.5: every sample the run counted has its request row, from every loader worker."""
    req = pd.read_csv(run / "requests.csv")
    ok = req[(req["op"] == "get") & req["error"].isna() & (req["epoch"] >= 0)]
    assert len(ok) >= row["samples"], f"{len(ok)} request rows for {row['samples']} samples"
    assert set(ok["worker"]) == set(range(workers))


# -- 12.2 a stop signal while the report is written -----------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("point,sig", [("report", signal.SIGINT), ("report", signal.SIGTERM),
                                       ("report-summary", signal.SIGINT), ("report-summary", signal.SIGTERM)])
def test_stop_signal_during_the_report_keeps_the_run(tiny_root, write_config, tmp_path, point, sig):
    cfg = write_config(tiny_root, framework={"num_workers": 2}, training={"epochs": 2})
    hook = tmp_path / "hook"
    hook.mkdir()
    p = start(cfg, "-q", env={"DNNBENCH_TEST_PAUSE": f"{point}:{hook}"})
    wait_for((hook / "paused").exists, p, "the report began")
    p.send_signal(sig)
    out, err = finish(p)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    run = the_run(tmp_path / "results")
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "interrupted" and row["failed_phase"] == "report"
    assert row["samples"] == 72 and row["byte_check"] == "ok"  # the figures measured so far
    total = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(total["status"]) == ["interrupted"] and total.iloc[0]["run_id"] == run.name
    assert (run / "requests.csv").exists() and not (run / ".requests").exists()


@pytest.mark.slow
def test_a_second_stop_signal_during_the_report_leaves_the_status_row(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, framework={"num_workers": 2})
    hook = tmp_path / "hook"
    hook.mkdir()
    p = start(cfg, "-q", env={"DNNBENCH_TEST_PAUSE": f"report:{hook}:2"})
    wait_for((hook / "paused").exists, p, "the report began")
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = finish(p)
    assert p.returncode == 130 and "Traceback" not in err, err
    run = the_run(tmp_path / "results")
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "interrupted" and row["failed_phase"] == "report" and row["samples"] == 36
    assert list(pd.read_csv(tmp_path / "results" / "summary.csv")["status"]) == ["interrupted"]
    assert not (run / ".requests").exists()


# -- 12.3 / 12.5 SIGTERM to the whole process group ------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("persistent", [False, True])
def test_sigterm_to_the_process_group_is_an_interruption(tiny_root, write_config, tmp_path, persistent):
    """Slurm's scancel, systemd and ``kill -TERM -PGID`` signal the loader workers too."""
    cfg = write_config(tiny_root, framework={"num_workers": 2, "persistent_workers": persistent},
                       training={"trainer": "emulate", "compute_time_s": 0.1, "epochs": 50})
    for attempt in range(2):
        out = tmp_path / f"results-{attempt}"
        cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "metrics": {"output_dir": str(out)}}))
        p = start(cfg, "-q", session=True)
        wait_for(workers_started(p), p, "the loader workers started")
        time.sleep(2)
        os.killpg(p.pid, signal.SIGTERM)
        _, err = finish(p)
        assert p.returncode == 130, err
        assert "killed by signal" not in err and "Traceback" not in err
        run = the_run(out)
        row = pd.read_csv(run / "summary.csv").iloc[0]
        assert row["status"] == "interrupted" and row["samples"] > 0
        gets_cover_the_samples(run, row, workers=2)


# -- 12.4 / 12.5 a store that goes away, with on_error: skip ----------------------------------
FLAKY = '''
import errno, os
from dnnbench.registry import STORAGE
from dnnbench.storage.fs import FileSystemStorage

@STORAGE.register("flaky-fs")
class Flaky(FileSystemStorage):
    """The fs backend whose "server" is gone once the file named by FLAKY_OUTAGE exists."""

    def _get(self, key):
        if os.path.exists(os.environ["FLAKY_OUTAGE"]):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return super()._get(key)
'''


@pytest.mark.slow
def test_outage_with_on_error_skip_fails_the_run_and_keeps_every_row(tiny_root, tmp_path):
    (tmp_path / "flaky.py").write_text(FLAKY)
    cfg = tmp_path / "flaky.yaml"
    cfg.write_text(yaml.safe_dump({**base_config(tiny_root, tmp_path / "results",
                                                 dataset={"on_error": "skip"}, framework={"num_workers": 2},
                                                 training={"trainer": "emulate", "compute_time_s": 0.05,
                                                           "epochs": 100}),
                                   "plugins": ["./flaky.py"], "storage": {"client": "flaky-fs",
                                                                          "root": str(tiny_root),
                                                                          "prefixes": ["train"]}}))
    flag = tmp_path / "outage"
    p = start(cfg, "-q", env={"FLAKY_OUTAGE": str(flag)})
    wait_for(workers_started(p), p, "the loader workers started")
    time.sleep(2)
    flag.write_text("down")
    _, err = finish(p)
    assert p.returncode == 1, err
    assert "storage failed" in err and "Connection refused" in err and "Traceback" not in err
    assert "on_error" not in err  # skipping cannot help with an unreachable store
    run = the_run(tmp_path / "results")
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "failed" and row["failed_phase"] == "train" and row["skipped_samples"] == 0
    gets_cover_the_samples(run, row, workers=2)
    refused = pd.read_csv(run / "requests.csv")["error"].dropna()
    assert 1 <= len(refused) <= 2 * 2 + 2  # one per batch in flight at most: no crawl through the epoch


# -- 12.6 concurrent prepares ------------------------------------------------------------------
def _prepare_config(tmp_path: Path, root: Path, name: str = "prep.yaml", **prepare) -> Path:
    cfg = tmp_path / name
    spec = {"classes": 2, "images_per_class": 150, "width": [32, 64], "height": [32, 64], "workers": 2, **prepare}
    cfg.write_text(yaml.safe_dump(base_config(root, tmp_path / "results", prepare=spec,
                                              dataset={"decode": "none"})))
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("how", ["prepare", "prepare.auto"])
def test_concurrent_prepares_take_turns(tmp_path, how):
    root = tmp_path / "data"
    cfg = _prepare_config(tmp_path, root, auto=how == "prepare.auto")
    args = ("prepare",) if how == "prepare" else ()
    procs = [start(cfg, *args) for _ in range(3)]
    results = [finish(p, timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "Traceback" not in err and "FileNotFoundError" not in err
    said = "".join(out + err for out, err in results)
    assert said.count("written to") == 1  # one prepared; the others waited and found it present
    assert sorted(p.name for p in root.rglob("*") if p.is_file() and p.name.startswith(".")) == \
        [".dnnbench-prepare.json"]
    assert len(list(root.rglob("*.jpg"))) == 300
    if how == "prepare.auto":
        rows = pd.read_csv(tmp_path / "results" / "summary.csv")
        assert list(rows["status"]) == ["ok"] * 3 and list(rows["samples"]) == [300] * 3


# -- 11.5 prepare parameters recorded beside the data -----------------------------------------
def test_changed_prepare_parameters_are_refused_then_rewritten_with_force(tmp_path, capsys):
    root = tmp_path / "data"
    small = _prepare_config(tmp_path, root, "small.yaml", classes=2, images_per_class=4)
    large = _prepare_config(tmp_path, root, "large.yaml", classes=3, images_per_class=5)
    assert main(["prepare", "--config", str(small)]) == 0
    assert main(["prepare", "--config", str(small)]) == 0
    assert "already present" in capsys.readouterr().err  # notes go to stderr
    assert main(["prepare", "--config", str(large)]) == 2
    err = capsys.readouterr().err
    assert "classes: 2 -> 3" in err and "images_per_class: 4 -> 5" in err and "--force" in err
    assert len(list(root.rglob("*.jpg"))) == 8  # untouched
    auto = _prepare_config(tmp_path, root, "auto.yaml", classes=3, images_per_class=5, auto=True)
    assert main(["-q", "--config", str(auto)]) == 2
    assert "prepare.auto never rewrites data" in capsys.readouterr().err
    assert main(["prepare", "--force", "--config", str(large)]) == 0
    assert len(list(root.rglob("*.jpg"))) == 15
    assert main(["-q", "--config", str(auto), "--run-id", "auto"]) == 0  # now as asked: used as it is
    assert pd.read_csv(tmp_path / "results" / "auto" / "summary.csv").iloc[0]["samples"] == 15
    assert main(["prepare", "--force", "--config", str(small)]) == 0  # smaller: the old set's extras go
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg")) == \
        [f"train/class_{c:03d}/{i:06d}.jpg" for c in range(2) for i in range(4)]
    assert "objects of the earlier dataset under 'train' deleted" in capsys.readouterr().err


# -- 12.10 / 12.11 a read-only and a full results folder (tmpfs) --------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, ro=False) -> a fresh tmpfs folder; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str, ro: bool = False) -> Path:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); "
                        "tests/unit/test_faults.py injects the same errors")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_results_folder_is_exit_2(tiny_root, write_config, tmpfs, capsys):
    ro = tmpfs("64k", ro=True)
    cfg = write_config(tiny_root, metrics={"output_dir": str(ro)})
    assert main(["-q", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "metrics.output_dir" in err and str(ro) in err and "Read-only file system" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_full_disk_during_the_report_leaves_the_status_row(tiny_root, write_config, tmp_path, tmpfs):
    small = tmpfs("1m")
    cfg = write_config(tiny_root, framework={"num_workers": 2}, training={"epochs": 3},
                       metrics={"output_dir": str(small / "results")})
    hook = tmp_path / "hook"
    hook.mkdir()
    p = start(cfg, "-q", env={"DNNBENCH_TEST_PAUSE": f"report:{hook}"})
    wait_for((hook / "paused").exists, p, "the report began")
    fd = os.open(small / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    (hook / "resume").write_text("go")
    _, err = finish(p)
    assert p.returncode == 1, err
    assert "No space left on device" in err and "Traceback" not in err
    run = the_run(small / "results")
    assert not (run / ".requests").exists()  # the temporary files are gone
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "failed" and row["failed_phase"] == "report" and row["samples"] == 108
    assert list(pd.read_csv(small / "results" / "summary.csv")["status"]) == ["failed"]
