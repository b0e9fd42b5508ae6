"""Self-check over S3 for every client library: in one epoch of the ``read`` trainer with two
loader workers, the bytes read equal the bytes listed; every GET is recorded with its time to
first byte by the worker that made it. Also: the manifest skips listing on a re-run, and the
dss-style S3 config runs end to end."""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path

import pytest

from dnnbench.config.loading import LoadedConfig, load_config, validate
from dnnbench.events import NullEvents
from dnnbench.executor import Executor, prepare_dataset
from s3server import delete_bucket, storage_section

pytestmark = pytest.mark.s3
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


@pytest.fixture(autouse=True)
def _keep_aws_env(monkeypatch):
    """s3torchconnector exports inline keys into the environment: restore it after each test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))


class Notes(NullEvents):
    def __init__(self):
        self.lines: list[str] = []

    def notice(self, message: str) -> None:
        self.lines.append(message)

    def phase_end(self, name: str, seconds: float, detail: str = "") -> None:
        self.lines.append(f"{name}: {detail}")


def config(info: dict, bucket: str, out: Path, client: str = "boto3", **sections) -> LoadedConfig:
    data = {
        "name": f"selfcheck-{client}",
        "storage": storage_section(info, bucket, client),
        "prepare": {"classes": 2, "images_per_class": 20, "width": [16, 64], "height": [16, 64], "workers": 8},
        "dataset": {"decode": "none"},
        "framework": {"batch_size": 8, "num_workers": 2},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.2},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return LoadedConfig(validate(data), None, [])


@pytest.fixture(scope="module")
def dataset_bucket(s3_server, s3_client, tmp_path_factory):
    """2 classes x 20 synthetic JPEGs, written once for every client's run."""
    bucket = f"dnnbench-selfcheck-{uuid.uuid4().hex[:10]}"
    prepare_dataset(config(s3_server, bucket, tmp_path_factory.mktemp("prep")), NullEvents())
    yield bucket
    delete_bucket(s3_client, bucket)


@pytest.mark.parametrize("client", CLIENTS)
def test_bytes_read_equal_bytes_listed(client, s3_server, dataset_bucket, tmp_path):
    outcome = Executor(config(s3_server, dataset_bucket, tmp_path, client)).run()
    row = outcome.row
    assert outcome.exit_code == 0, row["reason"]
    assert row["byte_check"] == "ok" and row["bytes"] == row["bytes_listed"] > 0
    assert row["samples"] == row["objects_listed"] == 40 and row["requests"] == 40
    assert row["errors"] == 0 and row["retries"] == 0
    assert row["request_ttfb_p50_ms"] is not None and row["request_ttfb_p50_ms"] <= row["request_p50_ms"]
    with open(outcome.run_dir / "requests.csv", newline="") as f:
        gets = [r for r in csv.DictReader(f) if r["op"] == "get"]
    assert len(gets) == 40 and {r["worker"] for r in gets} == {"0", "1"}  # read in the loader workers
    assert all(r["ttfb_ms"] and float(r["ttfb_ms"]) <= float(r["latency_ms"]) for r in gets)
    env = json.loads((outcome.run_dir / "environment.json").read_text())
    assert env["storage"]["client"] == client and env["storage"]["library_version"]
    assert env["storage"]["endpoint"] == s3_server["endpoint_url"] and "request_counting" in env["storage"]


def test_decoded_read_through_boto3(s3_server, dataset_bucket, tmp_path):
    """The per-sample path (decode rgb: one get() per sample, then OpenCV) over S3."""
    row = Executor(config(s3_server, dataset_bucket, tmp_path, dataset={"decode": "rgb"})).run().row
    assert row["status"] == "ok" and row["byte_check"] == "ok" and row["decode_p50_ms"] is not None


def test_manifest_skips_listing_on_rerun(s3_server, dataset_bucket, tmp_path):
    path = tmp_path / "manifests" / "selfcheck.json.gz"
    cfg = config(s3_server, dataset_bucket, tmp_path, "minio", dataset={"manifest": str(path)},
                 framework={"num_workers": 0})
    first, second = Notes(), Notes()
    row1 = Executor(cfg, first).run().row
    row2 = Executor(cfg, second).run().row
    assert path.exists() and any("saved to manifest" in n for n in first.lines)
    assert row1["objects_listed"] == 40 and row2["objects_listed"] is None and row2["list_s"] is None
    assert any("skipped: 40 objects from manifest" in n for n in second.lines)
    assert row2["byte_check"] == "ok" and row2["bytes"] == row1["bytes"]


def test_legacy_dss_s3_config_runs(s3_server, s3_client, tmp_path):
    bucket = f"dnnbench-legacy-{uuid.uuid4().hex[:10]}"
    env = {"DNNBENCH_S3_ENDPOINT": s3_server["endpoint_url"], "DNNBENCH_S3_ACCESS_KEY": s3_server["access_key"],
           "DNNBENCH_S3_SECRET_KEY": s3_server["secret_key"]}
    loaded = load_config(ROOT / "config" / "legacy-dss-s3.json", [
        f"storage.s3.bucket={bucket}", "storage.create_bucket=true", "prepare.images_per_class=4",
        "prepare.width=[16,40]", "prepare.height=[16,40]", f"metrics.output_dir={tmp_path}"], environ=env)
    try:
        outcome = Executor(loaded).run()  # prepare.auto: creates the bucket and the dataset, then trains
        assert outcome.exit_code == 0, outcome.row["reason"]
        assert outcome.row["samples"] == 24 and outcome.row["byte_check"] == "ok"
    finally:
        delete_bucket(s3_client, bucket)
