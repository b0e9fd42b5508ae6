"""config/compare-backends.yaml against the local S3 server, shrunk to a tiny dataset: every
client library reads the same bytes as the local filesystem, and the comparison has them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
from s3server import delete_bucket

pytestmark = [pytest.mark.s3, pytest.mark.slow]  # the CLI in subprocesses, a sweep over every client
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bucket_name(s3_client):
    name = f"dnnbench-sweep-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        delete_bucket(s3_client, name)
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


def _workflow_step(name: str) -> dict:
    import yaml

    wf = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    (step,) = [s for s in wf["jobs"]["benchmark"]["steps"] if s.get("name") == name]
    return step


def test_ci_workflow_sweep_and_gate_run_as_written(s3_server, bucket_name, tmp_path):
    """The example GitHub Actions step, run verbatim by bash in a checkout-like folder: the first
    run (no baseline) measures and saves a candidate; with a baseline it cannot meet, exit 3."""
    step = _workflow_step("Run the sweep and apply the regression gate")
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("benchmark.py", "config", "dnnbench", ".venv"):
        (work / name).symlink_to(ROOT / name)
    env = {**os.environ, **step["env"], "GITHUB_RUN_ID": "7", "GITHUB_RUN_ATTEMPT": "1",
           "DNNBENCH_S3_BUCKET": bucket_name, "DNNBENCH_S3_ENDPOINT": s3_server["endpoint_url"],
           "DNNBENCH_S3_ACCESS_KEY": s3_server["access_key"], "DNNBENCH_S3_SECRET_KEY": s3_server["secret_key"]}
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the workflow calls .venv/bin/python: run the tests through `make test`")

    def run_step(run_id: str) -> subprocess.CompletedProcess:
        script = step["run"].replace("${GITHUB_RUN_ID}-${GITHUB_RUN_ATTEMPT}", run_id)
        return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                              text=True, timeout=900)

    first = run_step("first")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "no ci/storage-baseline.json yet" in first.stdout
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert len(summary) == 8 and set(summary["status"]) == {"ok"}  # 2 storages x 2 widths x 2 repeats
    candidate = json.loads((work / "results" / "baseline-candidate.json").read_text())
    assert s3_server["secret_key"] not in json.dumps(candidate)
    # a baseline 100x faster than this machine: every throughput regresses, the gate says so
    (work / "ci").mkdir()
    (work / "ci" / "storage-baseline.json").write_text(json.dumps(_faster(candidate, 100.0)))
    second = run_step("second")
    assert second.returncode == 3, second.stdout[-3000:] + second.stderr[-3000:]
    lines = [ln for ln in (second.stdout + second.stderr).splitlines() if ln.startswith("REGRESSION")]
    assert len(lines) >= 4 and all("MiB_per_s" in ln for ln in lines if "throughput" in ln)


def _faster(baseline: dict, factor: float) -> dict:
    """A copy of ``baseline`` whose throughput means are ``factor`` times higher."""
    out = json.loads(json.dumps(baseline))
    for variant in out["variants"].values():
        stats = variant["metrics"].get("MiB_per_s")
        if stats:
            stats["mean"] *= factor
    return out
