"""Files of many samples through a real S3 server (Swift + s3api: signatures checked, real
ranged GETs): prepare writes DLIO-shaped npz and TFRecord files, a PyTorch run reads them at random
(one ranged GET per sample) and sequentially (each file whole), exact samples and bytes."""

from __future__ import annotations

import pandas as pd
import pytest

from dnnbench.cli import main
from s3server import storage_section

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.mark.parametrize("client,fmt,access", [("boto3", "npz", "random"), ("minio", "tfrecord", "sequential"),
                                               ("s3torchconnector", "npz", "random")])
def test_format_files_through_swift(s3_server, s3_bucket, write_config, tmp_path, client, fmt, access):
    storage = {**storage_section(s3_server, s3_bucket, client), "root": None, "prefixes": ["data"]}
    cfg = write_config(tmp_path, storage=storage,
                       prepare={"auto": True, "format": fmt, "layout": "dlio", "num_files": 3, "samples_per_file": 4,
                                "record_length_bytes": 256},
                       dataset={"format": fmt, "layout": "dlio", "access": access, "decode": "none"},
                       framework={"num_workers": 2, "batch_size": 4}, training={"trainer": "read", "epochs": 2})
    assert main(["-q", "--config", str(cfg), "--run-id", "s"]) == 0
    row = pd.read_csv(tmp_path / "results" / "s" / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["byte_check"] == "ok" and row["samples"] == 2 * 12
    assert row["bytes"] == row["bytes_planned"] and row["objects_listed"] == 3 and row["errors"] == 0
    if access == "random":
        assert row["requests"] == 2 * 12 and row["samples_listed"] == 12
    else:
        assert row["requests"] == 2 * 3 and row["bytes"] == 2 * row["bytes_listed"]
