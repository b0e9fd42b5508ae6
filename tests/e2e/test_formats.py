"""Files of many samples end to end (dataset.format npz, DLIO's layout): exact samples, bytes
and requests under PyTorch and TensorFlow, random access (one ranged GET per sample) and
sequential (each file read whole once), on local files and through moto's S3 with every client.
TensorFlow runs in a subprocess (the CLI), never in the pytest process: one framework per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dnnbench.cli import main
from dnnbench.formats.base import FileSpec
from dnnbench.formats.npz import NpzFormat
from tests.unit.conftest import moto_endpoint  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
COUNTS = (3, 4, 5, 2, 6)  # samples per file
SHAPE = (6, 5)  # uint8: 30 bytes a sample
SAMPLES, SAMPLE_BYTES = sum(COUNTS), 30


def npz_files() -> dict[str, bytes]:
    """DLIO's layout: data/train/img_<i>_of_5.npz, two in a subfolder."""
    fmt = NpzFormat()
    return {f"data/train/{'sub/' if i >= 3 else ''}img_{i}_of_5.npz":
            fmt.generate(np.random.default_rng(i), FileSpec(n, SHAPE)) for i, n in enumerate(COUNTS)}


@pytest.fixture(scope="module")
def npz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("npz")
    for key, data in npz_files().items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return root


def run(write_config, tmp_path, root, run_id: str, framework: str, access: str, storage=None, workers=2,
        **dataset) -> pd.Series:
    cfg = write_config(root, name=f"{run_id}.yaml",
                       storage=storage or {"client": "fs", "root": str(root), "prefixes": ["data"]},
                       dataset={"format": "npz", "layout": "dlio", "access": access, "decode": "none", **dataset},
                       framework={"name": framework, "num_workers": workers, "batch_size": 4},
                       training={"trainer": "read", "epochs": 2})
    if framework == "tensorflow":  # one framework per process: TensorFlow runs in its own (as the CLI would)
        p = subprocess.run([sys.executable, "benchmark.py", "-q", "--config", str(cfg), "--run-id", run_id],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
    else:
        assert main(["-q", "--config", str(cfg), "--run-id", run_id]) == 0
    return pd.read_csv(tmp_path / "results" / run_id / "summary.csv").iloc[0]


def check(row: pd.Series, access: str, listed: int) -> None:
    assert row["status"] == "ok" and row["byte_check"] == "ok" and row["skipped_samples"] == 0
    assert row["samples"] == 2 * SAMPLES and row["objects_listed"] == len(COUNTS) and row["bytes_listed"] == listed
    if access == "random":  # one ranged GET of 30 bytes per sample, the index read once in the list phase
        assert row["bytes"] == row["bytes_planned"] == 2 * SAMPLES * SAMPLE_BYTES
        assert row["requests"] == 2 * SAMPLES and row["request_mean_bytes"] == SAMPLE_BYTES
        assert row["samples_listed"] == SAMPLES and row["bytes_indexed"] == listed  # small files: one GET each
    else:  # each file whole, once an epoch
        assert row["bytes"] == row["bytes_planned"] == 2 * listed
        assert row["requests"] == 2 * len(COUNTS) and pd.isna(row["samples_listed"])


@pytest.mark.parametrize("framework,access", [
    ("pytorch", "random"), ("pytorch", "sequential"), ("tensorflow", "random"),
    pytest.param("tensorflow", "sequential", marks=pytest.mark.slow)])
def test_npz_on_local_files(npz_root, write_config, tmp_path, framework, access):
    row = run(write_config, tmp_path, npz_root, "r", framework, access)
    check(row, access, sum(len(d) for d in npz_files().values()))


def test_random_requests_are_ranges_of_the_samples_in_the_plans_order(npz_root, write_config, tmp_path):
    """file_shuffle off, sample_shuffle off, no workers: epoch 0 reads file after file, each
    sample's range in order; the index's reads are recorded under epoch -3, not as training reads."""
    run(write_config, tmp_path, npz_root, "o", "pytorch", "random", workers=0, file_shuffle="off",
        sample_shuffle="off")
    req = pd.read_csv(tmp_path / "results" / "o" / "requests.csv")
    index = req[req["epoch"] == -3]
    assert len(index) == len(COUNTS) and set(index["op"]) == {"get_range"}
    epoch0 = req[(req["epoch"] == 0) & (req["op"] == "get_range")].sort_values("start_s", kind="stable")
    keys = sorted(npz_files(), key=lambda k: int(k.rsplit("img_", 1)[1].split("_")[0]))
    assert epoch0["key"].tolist() == [k for k, n in zip(keys, COUNTS) for _ in range(n)]
    assert (epoch0["bytes"] == SAMPLE_BYTES).all()


def test_flat_layout_with_a_labels_file_and_a_bad_file_skipped(npz_root, write_config, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{k.removeprefix('data/')},{'a' if i % 2 else 'b'}\n"
                              for i, k in enumerate([*npz_files(), "data/train/bad.npz"])))
    (npz_root / "data" / "train" / "bad.npz").write_bytes(b"not an npz")
    try:
        row = run(write_config, tmp_path, npz_root, "f", "pytorch", "random", workers=0, layout="flat",
                  labels_file=str(labels), on_error="skip")
    finally:
        (npz_root / "data" / "train" / "bad.npz").unlink()
    assert row["samples"] == 2 * SAMPLES and row["objects_listed"] == len(COUNTS) + 1
    assert row["bytes"] == row["bytes_planned"] and row["byte_check"] == "ok"
    env = json.loads((tmp_path / "results" / "f" / "environment.json").read_text())
    assert [s["key"] for s in env["skipped_samples"]] == ["data/train/bad.npz"]


@pytest.fixture
def bucket(moto_endpoint, monkeypatch):  # noqa: F811 - the imported fixture
    """A moto bucket holding the npz files; the storage section that reads it (per client)."""
    from dnnbench.config.loading import validate
    from dnnbench.storage import create_storage

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):  # s3torchconnector exports
        monkeypatch.setenv(name, os.environ.get(name, "unset"))
    name = f"npz-{os.getpid()}-{np.random.default_rng().integers(1 << 30)}"
    s3 = {"bucket": name, "endpoint_url": moto_endpoint, "access_key": "AKIAMOTO", "secret_key": "motosecret",
          "max_attempts": 2}
    writer = create_storage(validate({"storage": {"client": "boto3", "preset": "minio", "prefixes": ["data"],
                                                  "s3": s3}}).storage)
    writer.ensure_bucket()
    for key, data in npz_files().items():
        writer.put(key, data)
    return lambda client: {"client": client, "root": None, "preset": "minio", "prefixes": ["data"], "s3": s3}


S3_CASES = [("boto3", "pytorch", "random"), ("boto3", "pytorch", "sequential"),
            pytest.param("boto3", "tensorflow", "random", marks=pytest.mark.slow),
            pytest.param("minio", "pytorch", "random", marks=pytest.mark.slow),
            pytest.param("s3fs", "pytorch", "random", marks=pytest.mark.slow),
            pytest.param("s3torchconnector", "pytorch", "random", marks=pytest.mark.slow),
            pytest.param("minio", "tensorflow", "sequential", marks=pytest.mark.slow),
            pytest.param("s3fs", "tensorflow", "random", marks=pytest.mark.slow)]


@pytest.mark.parametrize("client,framework,access", S3_CASES)
def test_npz_through_s3(bucket, write_config, tmp_path, client, framework, access):
    row = run(write_config, tmp_path, tmp_path, "s", framework, access, storage=bucket(client), workers=0)
    check(row, access, sum(len(d) for d in npz_files().values()))
