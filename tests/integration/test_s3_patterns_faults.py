"""Over the real S3 server: shards and sequential reads, emulated latency, inference and
checkpoint phases (multipart), and faults: the server stopped mid-epoch (with on_error fail and
skip: an outage is never skipped), and restarted within the retry budget."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.events import NullEvents
from dnnbench.executor import Executor, pack_shards, prepare_dataset
from s3server import delete_bucket, storage_section

pytestmark = pytest.mark.s3
ROOT = Path(__file__).resolve().parents[2]


def cfg_dict(info: dict, bucket: str, out: Path, client: str = "boto3", **sections) -> dict:
    data = {
        "name": f"patterns-{client}",
        "storage": storage_section(info, bucket, client),
        "prepare": {"classes": 2, "images_per_class": 12, "width": [16, 48], "height": [16, 48], "workers": 8},
        "shards": {"prefix": "shards", "max_samples": 5},
        "dataset": {"decode": "rgb", "image_dimension": [16, 16], "shuffle_buffer": 4},
        "framework": {"batch_size": 4, "num_workers": 2},
        "model": {"name": "convnet", "options": {"width": 4, "hidden": 8}},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.2},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return data


def loaded(*args, **kwargs) -> LoadedConfig:
    return LoadedConfig(validate(cfg_dict(*args, **kwargs)), None, [])


@pytest.fixture(scope="module")
def bucket(s3_server, s3_client, tmp_path_factory):
    name = f"dnnbench-patterns-{uuid.uuid4().hex[:10]}"
    cfg = loaded(s3_server, name, tmp_path_factory.mktemp("prep"))
    prepare_dataset(cfg, NullEvents())
    pack_shards(cfg, NullEvents())
    yield name
    delete_bucket(s3_client, name)


@pytest.mark.parametrize("client", ["boto3", "minio", "s3fs", "s3torchconnector"])
@pytest.mark.parametrize("access", ["sequential", "shards"])
def test_patterns_read_the_listed_bytes(s3_server, bucket, tmp_path, client, access):
    out = Executor(loaded(s3_server, bucket, tmp_path, client, dataset={"access": access})).run()
    row = out.row
    assert out.exit_code == 0, row["reason"]
    assert row["samples"] == 24 and row["byte_check"] == "ok"
    assert row["requests"] == (5 if access == "shards" else 24)


def test_emulated_latency_over_s3(s3_server, bucket, tmp_path):
    row = Executor(loaded(s3_server, bucket, tmp_path, storage={**cfg_dict(s3_server, bucket, tmp_path)["storage"],
                                                                "emulate": {"latency_ms": 15}})).run().row
    assert row["status"] == "ok" and row["emulated"] == "yes:15ms" and row["request_p50_ms"] >= 15


def test_inference_and_multipart_checkpoint_over_s3(s3_server, bucket, tmp_path, s3_client):
    cfg = loaded(s3_server, bucket, tmp_path, training={"trainer": "train", "epochs": 1},
                 execution={"phases": {"inference": True, "checkpoint": True}},
                 checkpoint={"size_MiB": 10, "keep": True, "prefix": "ckpt"})
    out = Executor(cfg).run()
    row = out.row
    assert out.exit_code == 0, row["reason"]
    assert row["infer_samples"] >= 1 and row["checkpoint_verified"] == "ok"
    assert row["checkpoint_bytes"] > 10 * 2**20
    head = s3_client.head_object(Bucket=bucket, Key=f"ckpt/{out.run_dir.name}.ckpt")
    assert head["ContentLength"] == row["checkpoint_bytes"]
    assert "-" in head["ETag"]  # a multipart upload's ETag carries the part count
    s3_client.delete_object(Bucket=bucket, Key=f"ckpt/{out.run_dir.name}.ckpt")


# -- faults: a second server of our own, so the shared one is never disturbed -----------------

#: the second server's ports: the shared server's (the environment's, else the script's defaults)
#: moved by a fixed offset, so engineers and CI jobs with their own port sets never collide
_OWN_PORTS = {"DNNBENCH_S3_PORT": (18080, 11), "DNNBENCH_S3_OBJECT_PORT": (16210, 21),
              "DNNBENCH_S3_CONTAINER_PORT": (16211, 21), "DNNBENCH_S3_ACCOUNT_PORT": (16212, 21),
              "DNNBENCH_S3_MEMCACHED_PORT": (11711, 20)}


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    import s3server

    env = {name: str(int(os.environ.get(name, default)) + offset) for name, (default, offset) in _OWN_PORTS.items()}
    env.update(DNNBENCH_S3_DIR=str(tmp_path / "s3b"),
               DNNBENCH_S3_LOG_LEVEL="INFO")  # the proxy logs each request: the tests watch for reads
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    info = s3server.ensure_server(ROOT)
    yield info, (lambda: s3server.stop_server(ROOT)), (lambda: s3server.ensure_server(ROOT))
    s3server.stop_server(ROOT)


def _run_cli(cfg: dict, tmp_path: Path) -> subprocess.Popen:
    path = tmp_path / "fault.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([sys.executable, "benchmark.py", "-q", "--config", str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_reading(p: subprocess.Popen, server_dir: Path, bucket: str, gets: int = 16,
                        timeout: float = 120) -> None:
    """Block until the server has answered ``gets`` GETs of training samples (its proxy log
    says so): the run is past listing and its loader has delivered batches."""
    log = server_dir / "logs" / "proxy.log"
    needle = re.compile(rf"GET /{re.escape(bucket)}/train/class_")
    deadline = time.time() + timeout
    while True:
        assert p.poll() is None, "the run ended before the fault could be injected: " + p.communicate()[1][-3000:]
        text = log.read_text(errors="replace") if log.exists() else ""
        if len(needle.findall(text)) >= gets:
            return
        assert time.time() < deadline, "the run did not start reading"
        time.sleep(0.1)


def test_server_stopped_mid_epoch_fails_cleanly(own_server, tmp_path):
    info, stop, _ = own_server
    bucket = f"dnnbench-fault-{uuid.uuid4().hex[:8]}"
    base = cfg_dict(info, bucket, tmp_path / "res", training={"trainer": "emulate", "compute_time_s": 0.2,
                                                              "epochs": 20})
    base["storage"]["s3"].update(connect_timeout_s=2, read_timeout_s=2, max_attempts=2)
    prepare_dataset(LoadedConfig(validate(base), None, []), NullEvents())
    p = _run_cli(base, tmp_path)
    _wait_until_reading(p, tmp_path / "s3b", bucket)
    t_stop = time.time()
    stop()
    stdout, stderr = p.communicate(timeout=120)
    assert time.time() - t_stop < 60  # ends within the configured timeouts, no hang
    assert p.returncode in (1, 2) and "Traceback" not in stderr
    assert "cannot connect" in stderr or "connect" in stderr.lower()
    (run,) = [d for d in (tmp_path / "res").iterdir() if d.is_dir()]
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "failed" and row["failed_phase"] == "train" and isinstance(row["reason"], str)
    assert pd.read_csv(run / "steps.csv")["samples"].sum() > 0  # what was measured is kept
    _requests_cover_the_samples(run, row, workers=2)  # loader worker 0's rows too


def test_server_restarted_within_retry_budget_completes(own_server, tmp_path):
    info, stop, start = own_server
    bucket = f"dnnbench-retry-{uuid.uuid4().hex[:8]}"
    base = cfg_dict(info, bucket, tmp_path / "res", dataset={"decode": "none"}, framework={"num_workers": 0},
                    training={"trainer": "emulate", "compute_time_s": 0.3, "epochs": 8})
    base["storage"]["s3"].update(connect_timeout_s=2, read_timeout_s=5, max_attempts=12, retry_mode="standard")
    prepare_dataset(LoadedConfig(validate(base), None, []), NullEvents())
    p = _run_cli(base, tmp_path)
    _wait_until_reading(p, tmp_path / "s3b", bucket)  # 48 steps of 0.3 s: mid-epoch for ~14 s
    stop()
    time.sleep(1)
    start()
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    (run,) = [d for d in (tmp_path / "res").iterdir() if d.is_dir()]
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["retries"] > 0 and row["samples"] == 8 * 24


def _requests_cover_the_samples(run: Path, row: pd.Series, workers: int) -> pd.DataFrame:
    """Every sample the run counted has its request row, from every loader worker (issue 12.5)."""
    req = pd.read_csv(run / "requests.csv")
    ok = req[(req["op"] == "get") & req["error"].isna() & (req["epoch"] >= 0)]
    assert len(ok) >= row["samples"], f"{len(ok)} request rows for {row['samples']} samples"
    assert set(ok["worker"]) == set(range(workers))
    return req


@pytest.mark.slow
@pytest.mark.parametrize("client", ["boto3", "minio"])
def test_outage_is_never_skipped(own_server, tmp_path, client):
    """on_error: skip with the server stopped mid-epoch: the run fails at once (exit 1), the hint
    does not suggest skipping, and every request row measured so far is kept."""
    info, stop, _ = own_server
    bucket = f"dnnbench-outage-{uuid.uuid4().hex[:8]}"
    base = cfg_dict(info, bucket, tmp_path / "res", client, dataset={"on_error": "skip"},
                    training={"trainer": "emulate", "compute_time_s": 0.2, "epochs": 20})
    base["storage"]["s3"].update(connect_timeout_s=2, read_timeout_s=2, max_attempts=2)
    prepare_dataset(LoadedConfig(validate(base), None, []), NullEvents())
    p = _run_cli(base, tmp_path)
    _wait_until_reading(p, tmp_path / "s3b", bucket)
    stop()
    stdout, stderr = p.communicate(timeout=180)
    assert p.returncode == 1, stderr
    assert "storage failed" in stderr and "Traceback" not in stderr and "on_error" not in stderr
    (run,) = [d for d in (tmp_path / "res").iterdir() if d.is_dir()]
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "failed" and row["failed_phase"] == "train" and row["skipped_samples"] == 0
    req = _requests_cover_the_samples(run, row, workers=2)
    gets = req[req["op"] == "get"]
    assert 1 <= gets["error"].notna().sum() <= 2 * 2 + 2  # one per batch in flight at most: no crawl
