"""config/compare-backends.yaml against the local S3 server, shrunk to a tiny dataset: every
client library reads the same bytes as the local filesystem, and the comparison has them all."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.s3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bucket_name(s3_client):
    name = f"dnnbench-sweep-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for o in page.get("Contents", []):
                s3_client.delete_object(Bucket=name, Key=o["Key"])
        s3_client.delete_bucket(Bucket=name)
    except s3_client.exceptions.ClientError:
        pass


def test_compare_backends_reads_one_dataset_through_every_client(s3_server, bucket_name, tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore", "DNNBENCH_S3_BUCKET": bucket_name,
           "DNNBENCH_S3_ENDPOINT": s3_server["endpoint_url"], "DNNBENCH_S3_REGION": s3_server["region"],
           "DNNBENCH_S3_ACCESS_KEY": s3_server["access_key"], "DNNBENCH_S3_SECRET_KEY": s3_server["secret_key"]}
    sets = {"storage.root": str(tmp_path / "data"), "prepare.classes": 2, "prepare.images_per_class": 6,
            "prepare.width": "[16,48]", "prepare.height": "[16,48]", "training.epochs": 1, "repeat": 1,
            "framework.num_workers": 2, "framework.batch_size": 4, "metrics.output_dir": str(out)}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    r = subprocess.run([sys.executable, "benchmark.py", "--config", "config/compare-backends.yaml", *args,
                        "--run-id", "backends"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["client"]) == ["fs", "boto3", "minio", "s3fs", "s3torchconnector"]
    assert set(summary["status"]) == {"ok"} and set(summary["byte_check"]) == {"ok"}
    assert summary["bytes_listed"].nunique() == 1 and summary["bytes"].nunique() == 1  # one dataset, same bytes
    table = pd.read_csv(out / "compare-backends" / "comparison.csv")
    assert list(table["variant"]) == ["fs", "s3-boto3", "s3-minio", "s3-s3fs", "s3-s3torchconnector"]
    assert (table["request_p50_ms_mean"] > 0).all() and table.loc[0, "MiB_per_s_ratio"] == 1
    for png in ("throughput.png", "latency_cdf.png", "throughput_time.png"):
        assert (out / "compare-backends" / png).stat().st_size > 5_000
    assert s3_server["secret_key"] not in (out / "compare-backends" / "sweep.json").read_text()
