"""The storage contract of every S3 client, against moto's in-memory S3 server (fast, no signatures).

The same behaviours against a real server (Swift + s3api, which checks signatures)
are in tests/integration/test_s3_storage.py.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from dnnbench.config.loading import validate
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage import create_storage
from dnnbench.storage.base import SizeMismatch
from dnnbench.storage.s3common import S3BucketMissing, S3Storage, _orphans

moto_server = pytest.importorskip("moto.server")
CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


@pytest.fixture(scope="module")
def moto_endpoint():
    server = moto_server.ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://127.0.0.1:{port}"
    server.stop()


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
def test_contract(client, moto_endpoint):
    st = filled(client, moto_endpoint)
    st.check()
    objects, prefixes = st.list("train", delimiter=True)
    assert objects == [] and prefixes == ["train/c1", "train/c2"]
    objects, _ = st.list("train/c2", delimiter=False)
    assert [(o.key, o.size) for o in objects] == [("train/c2/c.jpg", 30)]  # the "dir/" marker is skipped
    data, _ = st.get("train/c1/b.jpg")
    assert data == bytes([14]) * 2000
    buf = bytearray(2000)
    assert st.get_into("train/c1/b.jpg", memoryview(buf))[0] == 2000 and bytes(buf) == data
    with pytest.raises(SizeMismatch):
        st.get_into("train/c1/b.jpg", memoryview(bytearray(10)))
    assert st.get_range("train/c1/b.jpg", 5, 7) == data[5:12]
    with st.open_stream("train/c1/b.jpg") as stream:  # streamed (boto3, minio) or read whole (others)
        assert stream.read() == data
    assert st.exists("train") and not st.exists("nothing-here")
    with pytest.raises(FileNotFoundError):
        st.get("train/c1/missing.jpg")
    with pytest.raises(FileNotFoundError):
        st.list("nothing-here", delimiter=True)
    st.put("train/c3/new.jpg", b"new")
    assert st.get("train/c3/new.jpg")[0] == b"new"
    st.delete("train/c3/new.jpg")
    with pytest.raises(FileNotFoundError):
        st.get("train/c3/new.jpg")


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_bucket(client, moto_endpoint):
    st = make(client, moto_endpoint, bucket="moto-never-created")
    with pytest.raises(S3BucketMissing) as e:
        st.check()
    assert e.value.reference == "storage.s3.bucket" and "create_bucket" in e.value.hint
    assert st.exists("train") is False
    with pytest.raises(S3BucketMissing):
        st.list("train", delimiter=True)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_is_per_process_and_never_pickled(client, moto_endpoint):
    st = filled(client, moto_endpoint)
    first = st.client
    assert st.client is first  # cached in this process
    clone = pickle.loads(pickle.dumps(st))
    assert clone._client is None and clone.get("train/c1/a.jpg")[0] == bytes([14]) * 10
    st._pid = -1  # as a forked loader worker sees it: the pid changed
    assert st.client is not first and first in _orphans  # rebuilt; the parent's is left alone
    assert st.get("train/c1/a.jpg")[0] == bytes([14]) * 10


def rows(directory: Path) -> list[dict]:
    flush_current()
    return read_rows(directory)


@pytest.mark.parametrize("client", CLIENTS)
def test_every_get_is_recorded_with_ttfb(client, moto_endpoint, tmp_path):
    spec = RecorderSpec(str(tmp_path / f"req-{client}"))
    st = filled(client, moto_endpoint, recorder=spec)
    st.get("train/c1/a.jpg")
    st.get_into("train/c1/b.jpg", memoryview(bytearray(2000)))
    with pytest.raises(FileNotFoundError):
        st.get("train/c1/missing.jpg")
    gets = [r for r in rows(tmp_path / f"req-{client}") if r["op"] == "get"]
    assert [r["bytes"] for r in gets] == [10, 2000, 0]
    for r in gets[:2]:
        assert r["ttfb"] and r["start"] <= r["ttfb"] <= r["end"] and r["retries"] == 0
    assert "FileNotFoundError" in gets[2]["error"]


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
