"""Streaming reads and per-page listing requests of every S3 client, against moto's S3
server run in a subprocess (so tracemalloc sees only the client's allocations, never the
server's copy of the object).

- ``open_stream`` (how shards are read) holds a bounded amount of memory: well below
  the object's size, whatever the size; it is one GET, recorded once with the bytes read.
- ``get`` of s3torchconnector holds one copy of the object, not its chunks plus their join.

(One "list" row per ListObjectsV2 page is part of the storage contract: tests/unit/test_storage_contract.py.)
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

import pytest

from dnnbench.config.loading import validate
from dnnbench.data.shards import iter_shard
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage import create_storage

pytest.importorskip("moto.server")
CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")
BIG = 40 * 2**20  # 5 parts of s3torchconnector's 8 MiB: the CRT hands them over one part per chunk


@pytest.fixture(scope="module")
def endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, "moto server did not start"
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(autouse=True)
def _keep_aws_env(monkeypatch):
    """s3torchconnector exports inline keys into the environment: restore it after each test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))


def make(client: str, endpoint: str, bucket: str, recorder=None):
    cfg = validate({"storage": {"client": client, "preset": "minio", "prefixes": ["train"],
                                "s3": {"bucket": bucket, "endpoint_url": endpoint, "access_key": "AKIAMOTO",
                                       "secret_key": "motosecret", "max_attempts": 2}}})
    return create_storage(cfg.storage, recorder=recorder)


def rows(directory: Path) -> list[dict]:
    flush_current()
    return read_rows(directory)


@pytest.fixture(scope="module")
def big(endpoint):
    """A bucket holding ``big.bin`` (BIG random bytes), a shard ``shard.tar`` of 128 samples of
    256 KiB, and ``small.bin``; returns (bucket, sha256 of big.bin, shard size)."""
    writer = make("boto3", endpoint, "stream-big")
    writer.ensure_bucket()
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    writer.put("big.bin", data)
    del data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(128):
            for ext, payload in (("bin", bytes([i]) * 256 * 1024), ("cls", str(i % 3).encode())):
                info = tarfile.TarInfo(f"{i:06d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    writer.put("shards/shard.tar", buf.getvalue())
    writer.put("small.bin", b"s")
    return "stream-big", digest, len(buf.getvalue())


def _warm(st) -> None:
    """Build the client and its connection before measuring (service models are megabytes)."""
    st.get("small.bin")


def _peak(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_open_stream_is_one_get_in_bounded_memory(client, endpoint, big, tmp_path):
    bucket, digest, _ = big
    spec = RecorderSpec(str(tmp_path / "req"))
    st = make(client, endpoint, bucket, recorder=spec)
    _warm(st)
    tallies = []
    if client == "s3fs":  # every HTTP request s3fs sends for the stream, as its event hooks saw them
        call = st._call

        def counting(*args, **kwargs):
            result, tally = call(*args, **kwargs)
            tallies.append(tally)
            return result, tally

        st._call = counting

    def read() -> tuple[int, str]:
        h = hashlib.sha256()
        n = 0
        with st.open_stream("big.bin") as stream:
            while chunk := stream.read(10240):  # what tarfile's stream mode asks for
                h.update(chunk)
                n += len(chunk)
        return n, h.hexdigest()

    (n, got), peak = _peak(read)
    assert n == BIG and got == digest
    assert peak < BIG // 4, f"{client}: {peak / 2**20:.1f} MiB held to stream {BIG / 2**20:.0f} MiB"
    recorded = [r for r in rows(tmp_path / "req") if r["key"] == "big.bin"]
    assert [(r["op"], r["bytes"], r["error"]) for r in recorded] == [("get", BIG, None)], recorded
    assert recorded[0]["start"] <= recorded[0]["ttfb"] <= recorded[0]["end"]
    if client == "s3fs":
        assert [s[0] for s in tallies[-1].sends] == ["GetObject"]  # no HEAD, no ranged GET per block


@pytest.mark.parametrize("client", CLIENTS)
def test_shard_is_streamed_not_held(client, endpoint, big, tmp_path):
    bucket, _, shard_size = big
    spec = RecorderSpec(str(tmp_path / "req"))
    st = make(client, endpoint, bucket, recorder=spec)
    _warm(st)

    def read() -> tuple[int, int, list[int]]:
        samples = nbytes = 0
        labels = []
        for name, data, label, n in iter_shard(st, "shards/shard.tar"):
            assert len(data) == 256 * 1024 and data[:1] == bytes([int(name) % 256])
            samples += 1
            nbytes += n
            labels.append(label)
        return samples, nbytes, labels

    (samples, nbytes, labels), peak = _peak(read)
    assert samples == 128 and labels == [i % 3 for i in range(128)]
    assert nbytes == shard_size  # headers, padding and end blocks included: what storage returned
    assert peak < shard_size // 3, f"{client}: {peak / 2**20:.1f} MiB held for a {shard_size / 2**20:.0f} MiB shard"
    recorded = [r for r in rows(tmp_path / "req") if r["key"] == "shards/shard.tar"]
    assert [(r["op"], r["bytes"]) for r in recorded] == [("get", shard_size)]


@pytest.mark.parametrize("client", ["boto3", "minio", "s3torchconnector"])
def test_get_holds_one_copy(client, endpoint, big):
    """A whole-object read holds the object once (plus at most one part in flight), not its
    chunks and their join. (s3fs's cat_file joins its chunks: 2x, the library's own way.)"""
    bucket, digest, _ = big
    st = make(client, endpoint, bucket)
    _warm(st)
    (data, _), peak = _peak(lambda: st.get("big.bin"))
    assert hashlib.sha256(data).hexdigest() == digest
    assert peak < 1.5 * BIG, f"{client}: {peak / 2**20:.1f} MiB held to read {BIG / 2**20:.0f} MiB"
