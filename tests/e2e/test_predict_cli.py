"""``benchmark.py predict`` end to end on the tiny generated dataset (3 classes x 12 JPEGs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dnnbench.cli import main
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_OK
from dnnbench.predict.report import COLUMNS


def predict_dir(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if p.name.startswith("predict-")]
    return d


def rows(d: Path) -> list[dict[str, str]]:
    with open(d / "predict.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_predict_writes_one_row_per_grid_point_with_every_term(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root)
    code = main(["-q", "predict", "--config", str(cfg), "--run-id", "p1", "--grid", "framework.num_workers=0,1,2",
                 "storage.emulate.latency_ms=0,5"])
    assert code == EXIT_OK
    d = predict_dir(tmp_path / "results")
    assert d.name == "predict-p1"
    got = rows(d)
    assert len(got) == 6 and list(got[0]) == COLUMNS
    assert [r["point"] for r in got][:2] == ["num_workers=0,latency_ms=0", "num_workers=0,latency_ms=5"]
    assert all(r["bound"] in ("little", "cpu", "storage") and float(r["predicted_samples_per_s"]) > 0 for r in got)
    assert all(r["measured_samples_per_s"] == "" and r["error_percent"] == "" for r in got)
    probe = json.loads((d / "probe.json").read_text())
    assert probe["samples"] == 36 and probe["levels"][0]["concurrency"] == 1
    assert (d / "calibration" / "summary.csv").is_file()
    crowd = max(2, min(16, 4 * int(probe["cores"]), 36))  # the run with more workers than cores
    assert (d / f"calibration-{crowd}w" / "summary.csv").is_file() and probe["fork_s"] > 0
    assert [k for k, _ in probe["cores_at"]][0] == 1 and (d / "predict.png").is_file()
    text = capsys.readouterr().out
    assert "% of a full run" in text and "little" in text and "predicted" in text
    assert max(len(line) for line in text.split("\n") if "pred/s" in line) <= 80


@pytest.mark.slow
def test_under_tensorflow_the_loaders_workers_are_threads_of_one_process(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, framework={"name": "tensorflow"})
    code = main(["-q", "predict", "--config", str(cfg), "--run-id", "tf", "--grid", "framework.num_workers=1,4"])
    assert code == EXIT_OK
    d = predict_dir(tmp_path / "results")
    probe = json.loads((d / "probe.json").read_text())
    assert probe["threads"] is True
    assert "threads of one process (tf.data)" in capsys.readouterr().out
    assert len(rows(d)) == 2


def test_the_table_and_csv_from_a_fabricated_probe(tiny_root, write_config, tmp_path, capsys, monkeypatch):
    """The command without its probe (fast): every point a row, the table within 80 columns,
    accelerators as a predict-only key, points beyond the model named."""
    from dnnbench.predict import command
    from tests.unit.test_predict_model import probe

    monkeypatch.setattr(command, "run_probe", lambda *a: probe(seconds=3.0))
    cfg = write_config(tiny_root, training={"trainer": "emulate", "compute_time_s": 0.05, "epochs": 1})
    code = main(["predict", "--config", str(cfg), "--run-id", "f", "--grid", "framework.num_workers=1,4,32",
                 "accelerators=1,2"])
    assert code == EXIT_OK
    got = rows(predict_dir(tmp_path / "results"))
    assert len(got) == 6 and list(got[0]) == COLUMNS
    assert (predict_dir(tmp_path / "results") / "predict.png").is_file()
    assert [r["accelerators"] for r in got] == ["1", "2"] * 3
    assert [r["bound"] for r in got[:4]] == ["little", "little", "accelerator", "accelerator"]
    assert [r["predicted_samples_per_s"] for r in got[4:]] == ["", ""]
    assert "32 loader processes on 2 cores" in got[4]["beyond_model"]
    assert "64 requests in flight" in got[5]["beyond_model"]
    assert float(got[0]["predicted_au_percent"]) == pytest.approx(62.5)  # 8 samples at 100/s per 0.05 s step
    assert float(got[2]["predicted_au_percent"]) == pytest.approx(100.0)
    text = capsys.readouterr().out
    table = text[text.index("\nwork ") + 1:text.index("beyond the model:")]
    assert len(table.strip().split("\n")) == 7 and max(len(line) for line in table.split("\n")) <= 80
    assert "probe: 3.0 s" in text and "accelerator" in text


def test_a_grid_key_the_model_does_not_know_is_exit_2_and_nothing_runs(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root)
    assert main(["predict", "--config", str(cfg), "--grid", "dataset.decode=rgb,none"]) == EXIT_BAD_INPUT
    assert "does not know how this key changes throughput" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_check_runs_the_points_for_real_and_compares(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root)
    code = main(["-q", "predict", "--config", str(cfg), "--run-id", "c", "--grid", "framework.num_workers=0,1",
                 "--check", "--check-points", "2", "--check-repeat", "2"])
    assert code == EXIT_OK
    d = predict_dir(tmp_path / "results")
    got = rows(d)
    assert len(got) == 2
    for r in got:
        run_row = next(csv.DictReader(open(Path(r["run_dir"]) / "summary.csv")))
        assert float(r["measured_samples_per_s"]) == pytest.approx(float(run_row["samples_per_s"]))
        assert r["check_runs"] == "2"  # each point ran twice: the runs' own rows, the lower middle one kept
        both = sorted(float(next(csv.DictReader(open(f)))["samples_per_s"])
                      for f in Path(r["run_dir"]).parent.glob(Path(r["run_dir"]).name.rsplit("-r", 1)[0] + "*/summary.csv"))
        assert both == pytest.approx([float(r["measured_min_samples_per_s"]), float(r["measured_max_samples_per_s"])])
        err = 100 * (float(r["predicted_samples_per_s"]) - float(r["measured_samples_per_s"])) \
            / float(r["measured_samples_per_s"])
        assert float(r["error_percent"]) == pytest.approx(err)
        assert float(r["check_free_cores"]) > 0 and float(r["check_load_average_1m"]) >= 0
        assert float(r["predicted_at_load_samples_per_s"]) > 0 and r["error_at_load_percent"] != ""
    text = capsys.readouterr().out
    assert "check: median |error|" in text and "at the load seen: median |error|" in text
    assert "load: the probe got" in text and (d / "predict.png").is_file()
    assert "measured: the median of 2 runs a point" in text


@pytest.mark.slow
@pytest.mark.parametrize("access", ["random", "sequential"])
def test_files_of_many_samples_are_probed_as_their_loader_reads_them(write_config, tmp_path, capsys, access):
    """dataset.format npz (DLIO's layout): random access probes a ranged GET per sample, sequential
    a GET per file; --check runs the point for real beside the prediction."""
    from tests.e2e.test_formats import COUNTS, npz_files

    root = tmp_path / "npz"
    for key, data in npz_files().items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    cfg = write_config(root, storage={"client": "fs", "root": str(root), "prefixes": ["data"]},
                       dataset={"format": "npz", "layout": "dlio", "access": access, "decode": "none"},
                       framework={"num_workers": 1, "batch_size": 4}, training={"trainer": "read", "epochs": 1})
    code = main(["-q", "predict", "--config", str(cfg), "--run-id", access, "--grid", "framework.num_workers=1,2",
                 "--check", "--check-points", "1", "--check-repeat", "1"])
    assert code == EXIT_OK
    d = predict_dir(tmp_path / "results")
    probe = json.loads((d / "probe.json").read_text())
    files = len(COUNTS)
    assert probe["samples"] == sum(COUNTS)
    assert probe["requests"] == (sum(COUNTS) if access == "random" else files)
    assert probe["access"] == ("random" if access == "random" else "files")
    assert probe["samples_per_request"] == pytest.approx(1.0 if access == "random" else sum(COUNTS) / files)
    got = rows(d)
    assert len(got) == 2 and all(float(r["predicted_samples_per_s"]) > 0 for r in got)
    checked = [r for r in got if r["measured_samples_per_s"]]
    assert len(checked) == 1
    run_row = next(csv.DictReader(open(Path(checked[0]["run_dir"]) / "summary.csv")))
    assert int(float(run_row["samples"])) == sum(COUNTS)  # the point ran for real, every sample read
    assert "check: median |error|" in capsys.readouterr().out
