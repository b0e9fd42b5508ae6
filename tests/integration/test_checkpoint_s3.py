"""The checkpoint workload through the local S3 server: two ranks under torchrun write their
shards with s3torchconnector's DCP writer and read them back (bytes written == bytes read,
payload == the configured size, verified, slowest-rank figures consistent with the per-rank
rows); the checkpoints are deleted afterwards; another S3 client is refused with exit 2."""

from __future__ import annotations

import uuid

import pytest

from s3server import delete_bucket, storage_section
from tests.e2e.test_checkpoint_cli import check_two_ranks, run_cli, the_run, write
from tests.e2e.test_distributed import torchrun

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.fixture
def bucket(s3_server, s3_client):
    name = f"dnnbench-ckpt-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    delete_bucket(s3_client, name)


def s3_storage(info: dict, bucket: str, client: str) -> dict:
    section = storage_section(info, bucket, client)
    section.pop("prefixes")
    section.pop("create_bucket")
    return section


def test_two_ranks_through_s3torchconnector(s3_server, s3_client, bucket, tmp_path):
    cfg = write(tmp_path, s3_storage(s3_server, bucket, "s3torchconnector"))
    r = torchrun(cfg, timeout=500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check_two_ranks(the_run(tmp_path))
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # removed: keep is false


def test_other_s3_clients_are_refused(s3_server, bucket, tmp_path):
    r = run_cli(write(tmp_path, s3_storage(s3_server, bucket, "minio")))
    assert r.returncode == 2
    assert "framework pytorch and storage.client minio is not supported" in r.stdout + r.stderr
    assert s3_server["secret_key"] not in r.stdout + r.stderr
