"""What only the S3 clients do, against moto's in-memory S3 server (fast, no signatures): directory
markers skipped, the missing bucket named, the client rebuilt after a fork, s3fs's requests counted.
The storage contract every backend shares is tests/unit/test_storage_contract.py; the clients
against a real server (Swift + s3api, which checks signatures), tests/integration/test_s3_storage.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dnnbench.config.loading import validate
from dnnbench.errors import StorageError
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage import create_storage
from dnnbench.storage.s3common import S3BucketMissing, S3Storage, _orphans

pytest.importorskip("moto.server")
CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


@pytest.fixture(autouse=True)
def _keep_aws_env(monkeypatch):
    """s3torchconnector exports inline keys into the environment: restore it after each test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))


_counter = iter(range(10**6))


def make(client: str, endpoint: str, bucket: str | None = None, recorder=None, **storage) -> S3Storage:
    bucket = bucket or f"moto-{client.lower()}-{next(_counter)}"
    cfg = validate({"storage": {"client": client, "preset": "minio", "prefixes": ["train"], **storage,
                                "s3": {"bucket": bucket, "endpoint_url": endpoint, "access_key": "AKIAMOTO",
                                       "secret_key": "motosecret", "max_attempts": 2}}})
    return create_storage(cfg.storage, recorder=recorder)


def filled(client: str, endpoint: str, recorder=None) -> S3Storage:
    writer = make("boto3", endpoint)
    assert writer.ensure_bucket() is True and writer.ensure_bucket() is False
    for key, size in (("train/c1/a.jpg", 10), ("train/c1/b.jpg", 2000), ("train/c2/c.jpg", 30),
                      ("train/c2/", 0), ("other/x.jpg", 1)):
        writer.put(key, bytes([len(key)]) * size)
    return make(client, endpoint, writer.bucket, recorder)


@pytest.mark.parametrize("client", CLIENTS)
def test_directory_markers_are_not_objects(client, moto_endpoint):
    st = filled(client, moto_endpoint)
    objects, _ = st.list("train/c2", delimiter=False)
    assert [(o.key, o.size) for o in objects] == [("train/c2/c.jpg", 30)]  # the "dir/" marker is skipped


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_bucket(client, moto_endpoint):
    st = make(client, moto_endpoint, bucket="moto-never-created")
    with pytest.raises(S3BucketMissing) as e:
        st.check()
    assert e.value.reference == "storage.s3.bucket" and "create_bucket" in e.value.hint
    with pytest.raises(S3BucketMissing):
        st.list("train", delimiter=True)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_is_rebuilt_after_a_fork(client, moto_endpoint):
    st = filled(client, moto_endpoint)
    first = st.client
    assert st.client is first  # cached in this process
    st._pid = -1  # as a forked loader worker sees it: the pid changed
    assert st.client is not first and first in _orphans  # rebuilt; the parent's is left alone
    assert st.get("train/c1/a.jpg")[0] == bytes([14]) * 10


def rows(directory: Path) -> list[dict]:
    flush_current()
    return read_rows(directory)


def test_s3fs_reads_with_one_get_and_counts_any_other_request(moto_endpoint, tmp_path):
    spec = RecorderSpec(str(tmp_path / "req"))
    st = filled("s3fs", moto_endpoint, recorder=spec)
    for _ in range(3):
        st.get("train/c1/b.jpg")
    # what the library would do with its default concurrency: a HEAD for the size, then the GET
    data, tally = st._call("get", "train/c1/b.jpg", st.client._cat_file, f"{st.bucket}/train/c1/b.jpg",
                           max_concurrency=4)
    assert [s[0] for s in tally.sends] == ["HeadObject", "GetObject"]
    st._record_extra("train/c1/b.jpg", tally, "GetObject")
    ops = [r["op"] for r in rows(tmp_path / "req")]
    assert ops.count("get") == 3 and ops.count("headobject") == 1


def test_s3torchconnector_reads_an_empty_object_a_server_refuses_a_range_of(moto_endpoint):
    """The CRT reads a whole object with ranged GETs; Swift (and AWS) answer one on an empty object
    with 416 InvalidRange, which the CRT passes on: the object is empty, not an error. A range we
    asked for stays an error."""
    from s3torchconnectorclient._mountpoint_s3_client import S3Exception

    refused = S3Exception("Client error: Unknown response error: MetaRequestResult { response_status: 416, "
                          "error_response_body: Some(\"<Error><Code>InvalidRange</Code></Error>\") }")

    class Refusing:
        def _get_object_stream(self, bucket, key, start=None, end=None):
            raise refused

    st = make("s3torchconnector", moto_endpoint)
    st._client, st._pid = Refusing(), os.getpid()
    assert st.get("empty.bin")[0] == b""
    assert st.get_into("empty.bin", memoryview(bytearray(0)))[0] == 0
    with st.open_stream("empty.bin") as stream:
        assert stream.read() == b""
    with pytest.raises(StorageError, match="InvalidRange"):
        st.get_range("empty.bin", 0, 10)
