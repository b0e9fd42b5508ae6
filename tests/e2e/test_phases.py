"""Inference on a held-out split and checkpoint I/O through the storage (local filesystem)."""

from __future__ import annotations

import pandas as pd
import pytest

from dnnbench.cli import main


def test_inference_and_checkpoint_phases(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, framework={"num_workers": 2},
                       training={"trainer": "train", "epochs": 2, "lr": 0.05},
                       execution={"phases": {"inference": True, "checkpoint": True}},
                       inference={"holdout_fraction": 0.25}, checkpoint={"size_MiB": 3, "prefix": "ckpt-test"})
    assert main(["-q", "--config", str(cfg), "--run-id", "ph"]) == 0
    run = tmp_path / "results" / "ph"
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["infer_samples"] == 9 and row["samples"] == 2 * 27  # 36 samples: 9 held out
    assert row["byte_check"] == "ok"  # training epochs read exactly the training split
    assert 0 <= row["accuracy_percent"] <= 100 and row["infer_samples_per_s"] > 0
    assert row["checkpoint_bytes"] > 3 * 2**20 and row["checkpoint_verified"] == "ok"
    assert row["checkpoint_save_MB_per_s"] > 0 and row["checkpoint_load_MB_per_s"] > 0
    assert not (tiny_root / "ckpt-test").exists() or not any((tiny_root / "ckpt-test").iterdir())
    req = pd.read_csv(run / "requests.csv")
    assert (req["epoch"] == -1).sum() == 9  # inference reads are recorded apart from training reads
    assert row["infer_bytes"] == req.loc[req["epoch"] == -1, "bytes"].sum() > 0 and row["infer_failed"] == 0
    assert ((req["op"] == "put") & (req["bytes"] == row["checkpoint_bytes"])).sum() == 1
    assert row["requests"] == 54


def test_held_out_prefixes_and_read_trainer_checkpoint(tmp_path, write_config):
    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path / "data"
    s = FileSystemStorage(StorageConfig(root=str(root)))
    generate(s, "train", 2, 6, width=(16, 20), height=(16, 20))
    generate(s, "val", 2, 3, width=(16, 20), height=(16, 20), seed=9)
    cfg = write_config(root, training={"trainer": "read"}, inference={"prefixes": ["val"]},
                       execution={"phases": {"inference": True, "checkpoint": True}},
                       checkpoint={"keep": True})
    assert main(["-q", "--config", str(cfg), "--run-id", "val"]) == 0
    row = pd.read_csv(tmp_path / "results" / "val" / "summary.csv").iloc[0]
    assert row["samples"] == 12 and row["infer_samples"] == 6 and row["checkpoint_verified"] == "ok"
    assert list((root / "checkpoints").iterdir())[0].name == "val.ckpt"  # keep: true


def test_inference_needs_random_access(tiny_root, write_config, capsys):
    cfg = write_config(tiny_root, dataset={"access": "sequential"}, execution={"phases": {"inference": True}})
    assert main(["--config", str(cfg)]) == 2
    assert "execution.phases.inference" in capsys.readouterr().err


@pytest.mark.parametrize("legacy_inference", [True])
def test_legacy_inference_step_maps_to_phase(tmp_path, legacy_inference):
    import json

    from dnnbench.config.loading import load_config

    p = tmp_path / "l.json"
    p.write_text(json.dumps({"storage": {"format": "fs", "fs": {"data_dir": "/d"}},
                             "execution": {"workers": 2, "steps": {"training": True, "inference": legacy_inference}}}))
    assert load_config(p).config.execution.phases.inference is True


@pytest.mark.parametrize("phase, says", [("checkpoint", "ok: checkpoint save "), ("inference", "ok: inference ")])
def test_a_run_of_one_phase_reports_that_phase(tiny_root, write_config, tmp_path, capsys, phase, says):
    cfg = write_config(tiny_root, training={"trainer": "train"}, inference={"holdout_fraction": 0.25},
                       execution={"phases": {"train": False, phase: True}})
    assert main(["-q", "--config", str(cfg), "--run-id", phase]) == 0
    out = capsys.readouterr().out
    assert out.startswith(says) and "0.00 MiB/s" not in out
    assert main(["--config", str(cfg), "--run-id", f"{phase}-table"]) == 0
    words = set(capsys.readouterr().out.split())  # cells may wrap (the width is the terminal's): compare words
    assert ({"checkpoint_bytes", "checkpoint_verified", "MB_per_s"} if phase == "checkpoint" else
            {"infer_samples", "accuracy_percent"}) <= words
    assert not {"au_percent", "time_to_first_batch_s", "read_share_percent"} & words  # no training figures
