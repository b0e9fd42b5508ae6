"""Every format end to end: ``benchmark.py prepare`` writes it (DLIO's layout and size model), a
``read`` run reads it under PyTorch, random (ranged GETs) and sequential (files whole): exact
samples, the byte check, bytes read = bytes the access plan asked for (issue 14.4 + 14.5)."""

from __future__ import annotations

import pandas as pd
import pytest

from dnnbench.cli import main

FILES, PER_FILE = 3, 4


def prepare_and_run(write_config, tmp_path, fmt: str, access: str, framework: str = "pytorch") -> pd.Series:
    root = tmp_path / "data"
    cfg = write_config(root, name=f"{fmt}.yaml", storage={"client": "fs", "root": str(root), "prefixes": ["ds"]},
                       prepare={"format": fmt, "layout": "dlio", "num_files": FILES, "samples_per_file": PER_FILE,
                                "record_length_bytes": 900, "record_length_bytes_stdev": 200},
                       dataset={"format": fmt, "layout": "dlio", "access": access, "decode": "none"},
                       framework={"name": framework, "num_workers": 2, "batch_size": 2},
                       training={"trainer": "read", "epochs": 2})
    assert main(["-q", "prepare", "--config", str(cfg)]) == 0
    run_id = f"{fmt}-{access}-{framework}"
    assert main(["-q", "--config", str(cfg), "--run-id", run_id]) == 0
    return pd.read_csv(tmp_path / "results" / run_id / "summary.csv").iloc[0]


@pytest.mark.parametrize("fmt", ["npy", "hdf5", "tfrecord", "parquet"])
@pytest.mark.parametrize("access", ["random", "sequential"])
def test_generated_formats_are_read_exactly(write_config, tmp_path, fmt, access):
    row = prepare_and_run(write_config, tmp_path, fmt, access)
    assert row["status"] == "ok" and row["byte_check"] == "ok" and row["skipped_samples"] == 0
    assert row["samples"] == 2 * FILES * PER_FILE and row["objects_listed"] == FILES
    assert row["bytes"] == row["bytes_planned"]
    if access == "sequential":
        assert row["bytes"] == 2 * row["bytes_listed"] and row["requests"] == 2 * FILES


@pytest.mark.slow
def test_tfrecord_under_tensorflow(write_config, tmp_path):
    row = prepare_and_run(write_config, tmp_path, "tfrecord", "random", "tensorflow")
    assert row["status"] == "ok" and row["byte_check"] == "ok" and row["samples"] == 2 * FILES * PER_FILE
