"""The CLI over S3, end to end against the local server: each failure is one clear
message with a hint and the documented exit code (no traceback); prepare creates
the bucket and uploads (synthetic or ``--from DIR``); keys never leak."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from s3server import OTHER_ACCOUNT, delete_bucket

pytestmark = pytest.mark.s3
ROOT = Path(__file__).resolve().parents[2]
CONFIG = "config/s3-local.yaml"


def cli(args: list[str], info: dict, out: Path, env: dict | None = None, timeout: float = 180):
    """Run benchmark.py with the local server's settings in the environment (as a user would)."""
    environ = {**os.environ, "COLUMNS": "400", "PYTHONWARNINGS": "ignore",
               "DNNBENCH_S3_ENDPOINT": info["endpoint_url"], "DNNBENCH_S3_REGION": info["region"],
               "DNNBENCH_S3_ACCESS_KEY": info["access_key"], "DNNBENCH_S3_SECRET_KEY": info["secret_key"],
               **(env or {})}
    cmd = [sys.executable, "benchmark.py", *args, "--set", f"metrics.output_dir={out}"]
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=timeout)


def small(bucket: str) -> list[str]:
    return ["--set", f"storage.s3.bucket={bucket}", "--set", "prepare.classes=2", "--set", "prepare.images_per_class=6",
            "--set", "prepare.width=[16,48]", "--set", "prepare.height=[16,48]", "--set", "training.trainer=read",
            "--set", "dataset.decode=none", "--set", "training.epochs=1", "--set", "training.warmup_steps=0",
            "--set", "framework.num_workers=2", "--set", "framework.batch_size=4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bucket_name(s3_client):
    """A fresh bucket name the test may create; deleted afterwards."""
    name = f"dnnbench-cli-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        delete_bucket(s3_client, name)
    except s3_client.exceptions.ClientError:
        pass


def test_errors_are_one_clear_message(s3_server, s3_client, s3_bucket, tmp_path):
    s3_client.put_object(Bucket=s3_bucket, Key="train/c1/a.jpg", Body=b"x")
    base = ["--config", CONFIG, "--set", "prepare.auto=false", "--set", "storage.create_bucket=false"]
    cases = [  # (extra args, environment, exit code, words the message must hold)
        (["--set", f"storage.s3.bucket={s3_bucket}", "--set", "storage.prefixes=[nothing-here]"], {}, 2,
         ["storage.prefixes", "'nothing-here'", "hint"]),
        (["--set", "storage.s3.bucket=dnnbench-missing-bucket"], {}, 2,
         ["storage.s3.bucket", "does not exist", "create_bucket"]),
        (["--set", f"storage.s3.bucket={s3_bucket}"], {"DNNBENCH_S3_SECRET_KEY": "wrong-secret"}, 2,
         ["SignatureDoesNotMatch", "rejected the credentials", "hint"]),
        (["--set", f"storage.s3.bucket={s3_bucket}"], {"DNNBENCH_S3_ACCESS_KEY": OTHER_ACCOUNT["access_key"],
                                                       "DNNBENCH_S3_SECRET_KEY": OTHER_ACCOUNT["secret_key"]}, 2,
         ["access denied", "AccessDenied", "hint"]),
        (["--set", f"storage.s3.bucket={s3_bucket}", "--set", "storage.s3.max_attempts=1"],
         {"DNNBENCH_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, 1,
         ["storage.s3.endpoint_url", "cannot connect", "s3-server.sh start"]),
    ]
    for extra, env, code, words in cases:
        r = cli([*base, *extra], s3_server, tmp_path / "results", env)
        text = " ".join((r.stdout + r.stderr).split())
        assert r.returncode == code, (extra, env, text)
        assert "Traceback" not in text, text
        for w in words:
            assert w in text, (w, text)
        assert "wrong-secret" not in text and OTHER_ACCOUNT["secret_key"] not in text


def test_prepare_creates_bucket_uploads_and_runs(s3_server, s3_client, bucket_name, tmp_path):
    r = cli(["prepare", "--config", CONFIG, *small(bucket_name)], s3_server, tmp_path / "results")
    assert r.returncode == 0, r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert f"bucket created: s3://{bucket_name}" in text and "MB/s" in text and "12 images" in text
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket_name)["Contents"]]
    assert "train/.dnnbench-prepare.json" in keys  # what was generated, recorded beside the data
    samples = [k for k in keys if k != "train/.dnnbench-prepare.json"]
    assert len(samples) == 12 and all(k.startswith("train/class_00") for k in samples)
    again = cli(["prepare", "--config", CONFIG, *small(bucket_name)], s3_server, tmp_path / "results")
    assert again.returncode == 0 and "already present" in again.stdout + again.stderr
    run = cli(["--config", CONFIG, "-q", *small(bucket_name)], s3_server, tmp_path / "results")
    assert run.returncode == 0, run.stderr
    summary = (tmp_path / "results" / "summary.csv").read_text()
    assert ",ok," in summary and "s3://" in summary


def test_prepare_from_a_local_image_folder(s3_server, s3_client, s3_bucket, tmp_path):
    src = tmp_path / "flower_photos"
    for cls, n in (("daisy", 3), ("roses", 2)):
        (src / cls).mkdir(parents=True)
        for i in range(n):
            (src / cls / f"{i}.jpg").write_bytes(b"\xff\xd8" + bytes([i]) * (100 + i))
    (src / "LICENSE.txt").write_text("not a sample")
    (src / "roses" / "notes.txt").write_text("not an image")
    r = cli(["prepare", "--config", CONFIG, "--from", str(src), "--set", f"storage.s3.bucket={s3_bucket}",
             "--set", "storage.prefixes=[flowers]"], s3_server, tmp_path / "results")
    assert r.returncode == 0, r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert "5 files" in text and "MB/s" in text and "2 files in" in text and "skipped" in text
    got = {o["Key"]: o["Size"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert got.pop("flowers/.dnnbench-prepare.json") > 0  # the folder it came from, recorded beside the data
    assert got == {"flowers/daisy/0.jpg": 102, "flowers/daisy/1.jpg": 103, "flowers/daisy/2.jpg": 104,
                   "flowers/roses/0.jpg": 102, "flowers/roses/1.jpg": 103}
    missing = cli(["prepare", "--config", CONFIG, "--from", str(tmp_path / "nope"), "--set",
                   f"storage.s3.bucket={s3_bucket}", "--set", "storage.prefixes=[other]"], s3_server, tmp_path / "r")
    assert missing.returncode == 2 and "--from" in missing.stderr and "Traceback" not in missing.stderr


def test_keys_never_leak(s3_server, bucket_name, tmp_path):
    """Known keys go in through the environment and --set; nothing written or printed holds them."""
    out = tmp_path / "results"
    wrong = "Wr0ng-Secret-Value-42"
    runs = [
        cli(["validate", "--config", CONFIG, *small(bucket_name)], s3_server, out),
        cli(["prepare", "--config", CONFIG, *small(bucket_name)], s3_server, out),
        cli(["--config", CONFIG, *small(bucket_name), "--set", "storage.client=s3fs",
             "--set", f"storage.s3.secret_key={s3_server['secret_key']}"], s3_server, out),
        cli(["--config", CONFIG, "--debug", *small(bucket_name), "--set", "prepare.auto=false"], s3_server, out,
            {"DNNBENCH_S3_SECRET_KEY": wrong}),
        # the CRT client takes its keys from the process environment: nothing may carry them further
        cli(["--config", CONFIG, *small(bucket_name), "--set", "storage.client=s3torchconnector"], s3_server, out),
        cli(["--config", CONFIG, "--debug", *small(bucket_name), "--set", "storage.client=s3torchconnector",
             "--set", "prepare.auto=false"], s3_server, out, {"DNNBENCH_S3_SECRET_KEY": wrong}),
    ]
    codes = [r.returncode for r in runs]
    assert codes[:5] == [0, 0, 0, 2, 0] and codes[5] in (1, 2), [r.stderr[-2000:] for r in runs]
    assert "redacted" in runs[0].stdout
    needles = [s3_server["access_key"], s3_server["secret_key"], wrong]
    printed = "".join(r.stdout + r.stderr for r in runs)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 8  # a run's reports and the shared summary
    for needle in needles:
        assert needle not in printed, needle
        for p in files:
            assert needle not in p.read_text(errors="replace"), (needle, p)
