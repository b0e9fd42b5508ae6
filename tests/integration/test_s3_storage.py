"""Every S3 client library against the real local server (Swift + s3api, SigV4 checked):
the storage contract, paginated parallel listing of > 1000 objects, and each
failure mapped to one clear error with a hint."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from dnnbench.config.loading import validate
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_FAILED, DataError
from dnnbench.storage import create_storage
from dnnbench.storage.listing import list_dataset
from dnnbench.storage.s3common import S3AccessError, S3BucketMissing, S3Unreachable
from s3server import OTHER_ACCOUNT

pytestmark = pytest.mark.s3
CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


@pytest.fixture(autouse=True)
def _keep_aws_env(monkeypatch):
    """s3torchconnector exports inline keys into the environment: restore it after each test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))


def make(info: dict, bucket: str, client: str = "boto3", prefixes=("train",), **s3):
    section = {"bucket": bucket, "endpoint_url": info["endpoint_url"], "region": info["region"],
               "access_key": info["access_key"], "secret_key": info["secret_key"], "max_attempts": 2, **s3}
    cfg = validate({"storage": {"client": client, "preset": "minio", "prefixes": list(prefixes), "s3": section}})
    return create_storage(cfg.storage)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("client", CLIENTS)
def test_contract_on_the_real_server(client, s3_server, s3_bucket):
    writer = make(s3_server, s3_bucket)
    payload = os.urandom(150 * 1024 + 3)
    writer.put("train/c1/big.jpg", payload)
    writer.put("train/c2/small.jpg", b"s")
    st = make(s3_server, s3_bucket, client)
    st.check()
    assert st.list("train", delimiter=True) == ([], ["train/c1", "train/c2"])
    assert st.get("train/c1/big.jpg")[0] == payload
    buf = bytearray(len(payload))
    assert st.get_into("train/c1/big.jpg", memoryview(buf))[0] == len(payload) and bytes(buf) == payload
    assert st.get_range("train/c1/big.jpg", 1000, 500) == payload[1000:1500]
    with pytest.raises(FileNotFoundError):
        st.get("train/c1/nope.jpg")
    st.put("train/c3/w.jpg", b"written by " + client.encode())
    assert writer.get("train/c3/w.jpg")[0] == b"written by " + client.encode()
    st.delete("train/c3/w.jpg")
    assert not st.exists("train/c3")


def test_listing_is_paginated_and_parallel(s3_server, s3_bucket):
    writer = make(s3_server, s3_bucket)
    keys = [f"big/cls/{i:05d}.bin" for i in range(1005)] + [f"big/other/{i}.bin" for i in range(3)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: writer.put(k, b"x" * (1 + len(k) % 7)), keys))
    writer.put("bigger/x.bin", b"not under big/")
    for client in CLIENTS:
        st = make(s3_server, s3_bucket, client, prefixes=["big"])
        index, stats = list_dataset(st, ["big"], 4, [".bin"])
        assert sorted(index.keys) == sorted(keys), client  # all 1,008: past the 1,000-key page
        assert stats.objects == 1008 and stats.classes == 2 and stats.seconds > 0
        assert index.total_bytes == sum(1 + len(k) % 7 for k in keys)


@pytest.mark.parametrize("client", CLIENTS)
def test_failures_are_clear(client, s3_server, s3_bucket):
    make(s3_server, s3_bucket).put("train/c1/a.jpg", b"a")
    cases = [
        (dict(secret_key="not-the-secret"), S3AccessError, EXIT_BAD_INPUT, "rejected the credentials"),
        (dict(OTHER_ACCOUNT), S3AccessError, EXIT_BAD_INPUT, "access denied"),
        (dict(bucket="dnnbench-no-such-bucket"), S3BucketMissing, EXIT_BAD_INPUT, "does not exist"),
        (dict(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1), S3Unreachable, EXIT_FAILED,
         "cannot connect"),
    ]
    for s3, kind, code, text in cases:
        bucket = s3.pop("bucket", s3_bucket)
        st = make(s3_server, bucket, client, **s3)
        with pytest.raises(kind) as e:
            st.check()
        assert e.value.exit_code == code and text in e.value.message and e.value.hint, (client, s3)
        assert s3_server["secret_key"] not in str(e.value) and "not-the-secret" not in str(e.value)
    with pytest.raises(DataError) as e:  # an empty prefix: the listing phase says which
        list_dataset(make(s3_server, s3_bucket, client), ["empty"], 2, [".jpg"])
    assert "'empty' does not exist" in e.value.message and e.value.reference == "storage.prefixes"
