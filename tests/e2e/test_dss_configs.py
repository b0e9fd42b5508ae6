"""The dss-style configs as their users write them (tests/data/dss/: upstream's first layout and
its later "choice" layout), end to end through `benchmark.py validate`, and one tiny real run of
the reported case: read-only classes, 2 labels, 2 epochs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.cli import main

ROOT = Path(__file__).resolve().parents[2]
DSS = ROOT / "tests" / "data" / "dss"


def validate(path: Path) -> tuple[dict, str]:
    """`benchmark.py validate -cfg PATH` as a user types it: (resolved config, stderr)."""
    p = subprocess.run([sys.executable, "benchmark.py", "validate", "-cfg", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return yaml.safe_load(p.stdout), p.stderr


def test_first_layout_validates_as_written():
    cfg, err = validate(DSS / "first-layout.json")
    assert cfg["storage"]["root"] == "/data/datasets" and cfg["storage"]["prefixes"] == ["flower_photos",
                                                                                        "flower_photos2"]
    assert cfg["dataset"]["labels"] == ["roses", "sunflowers", "tulips", "daisy", "dandelion"]
    assert (cfg["framework"]["batch_size"], cfg["framework"]["num_workers"]) == (64, 8)
    assert cfg["execution"]["listing_workers"] == 10
    assert cfg["model"]["name"] == "ConvNet" and cfg["training"]["trainer"] == "RandomAccessDatasetTrain"
    assert "storage.s3 (format is fs)" in err and "model.loss_function" in err


def test_choice_layout_validates_and_names_what_it_does_not_use():
    cfg, err = validate(DSS / "choice-layout.json")
    st = cfg["storage"]
    assert (st["client"], st["preset"], st["prefixes"]) == ("boto3", "dss", ["flower_photos"])
    assert st["s3"]["bucket"] == "dss0" and st["s3"]["endpoint_url"] == "http://192.0.2.10:9000"
    assert st["s3"]["secret_key"] == "***redacted***"
    assert cfg["dataset"]["name"] == "TorchImageClassificationDataset" and cfg["dataset"]["access"] == "random"
    assert cfg["dataset"]["labels"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert (cfg["framework"]["batch_size"], cfg["framework"]["num_workers"]) == (100, 16)
    assert cfg["training"] == {**cfg["training"], "trainer": "RandomAccessDatasetTrain", "epochs": 1}
    assert cfg["execution"]["device"] == "cpu" and cfg["model"]["name"] == "ConvNet"
    assert cfg["metrics"]["output_dir"] == "/tmp/dss_dnn_benchmark/metrics"
    assert cfg["logging"] == {"path": "/tmp/dss_dnn_benchmark/logs", "level": "INFO"}
    for named in ("storage.s3.client_lib.dss_client", "dataset.TorchObjectDetectionDataset",
                  "dataset.TorchImageClassificationDataset.avg_image_size", "framework.max_batch_size",
                  "framework.max_object_size", "framework.instance_id", "training.ObjectDetectionDatasetTrain",
                  "model.ObjectDetector", "model.ConvNet.loss_function", "storage.fs (format is s3)"):
        assert named in err, named
    assert "__comment__" not in err and "minio-secret-example" not in err


def _read_only_case(tmp_path: Path, data_dir: Path) -> Path:
    data = json.loads((DSS / "choice-read-only.json").read_text())
    data["storage"]["fs"]["ConvNet"]["data_dir"] = [str(data_dir)]
    data["metrics"]["path"] = str(tmp_path / "results")
    data["logging"]["path"] = str(tmp_path / "logs")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_read_only_case_validates_as_asked(tmp_path):
    cfg, err = validate(_read_only_case(tmp_path, tmp_path / "flowers"))
    assert cfg["dataset"]["name"] == "PythonReadDataset" and cfg["dataset"]["decode"] == "none"
    assert cfg["training"]["trainer"] == "read" and cfg["training"]["epochs"] == 2
    assert cfg["dataset"]["labels"] == ["class_000", "class_002"]
    assert "model (the read trainer builds no model)" in err


def test_read_only_case_runs_read_only_with_its_2_labels_for_2_epochs(tiny_root, tmp_path, capsys):
    """The reported case once ran a CNN on every class for 1 epoch with status ok."""
    path = _read_only_case(tmp_path, tiny_root / "train")
    assert main(["-q", "-cfg", str(path), "--run-id", "dss"]) == 0
    run = tmp_path / "results" / "dss"
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["trainer"] == "read" and row["decode"] == "none"
    assert row["epochs"] == 2 and row["objects_listed"] == 24  # 2 of the 3 classes of 12 images
    assert row["samples"] == 48 and row["byte_check"] == "ok"
    assert len(pd.read_csv(run / "epochs.csv")) == 2
    (log,) = (tmp_path / "logs").iterdir()
    text = log.read_text()
    assert "INFO" in text and "run dss: ok" in text and "dss-style layout recognised" in text


@pytest.mark.parametrize("section,key,name", [
    ("dataset", "choice", "TorchObjectDetectionDataset"),
    ("training", "choice", "ObjectDetectionDatasetTrain"),
    ("model", "choice", "ObjectDetector"),
])
def test_object_detection_is_refused_naming_the_key(tmp_path, capsys, section, key, name):
    data = json.loads((DSS / "choice-layout.json").read_text())
    data[section][key] = name
    path = tmp_path / "od.json"
    path.write_text(json.dumps(data))
    assert main(["validate", "-cfg", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{section}.choice" in err and "not supported" in err and "Traceback" not in err
