"""Shard packing and streaming; latency emulation."""

from __future__ import annotations

import collections
import os
import tarfile
import time
from types import SimpleNamespace

import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.data.shards import iter_shard, list_shards, pack
from dnnbench.data.synthetic import generate
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage.emulate import EmulatedStorage
from dnnbench.storage.fs import FileSystemStorage
from dnnbench.data.listing import list_dataset


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    s = FileSystemStorage(StorageConfig(root=str(root)))
    generate(s, "train", 3, 10, width=(16, 40), height=(16, 40), seed=3)
    index, _ = list_dataset(s, ["train"], 4, [".jpg"])
    stats = pack(s, index, "shards", max_bytes=8000, max_samples=7, seed=1)
    return s, index, stats


def test_pack_bounds_and_layout(packed):
    s, index, stats = packed
    shard_index, meta = list_shards(s, "shards")
    assert stats.shards == len(shard_index) >= 5 and stats.samples == 30
    assert meta["classes"] == index.classes and sum(x["samples"] for x in meta["shards"]) == 30
    for sh in meta["shards"]:
        assert sh["samples"] <= 7
        assert sh["bytes"] <= 8000 or sh["samples"] == 1
        names = tarfile.open(os.path.join(s.root, sh["key"])).getnames()
        assert len(names) == 2 * sh["samples"]
        stems = collections.Counter(n.rsplit(".", 1)[0] for n in names)
        assert set(stems.values()) == {2} and {n.rsplit(".", 1)[1] for n in names} == {"jpg", "cls"}


def test_stream_every_sample_with_labels_and_exact_bytes(packed):
    s, index, _ = packed
    shard_index, _ = list_shards(s, "shards")
    seen = {}
    for key, size in zip(shard_index.keys, shard_index.sizes):
        total = 0
        for name, data, label, nbytes in iter_shard(s, key):
            i = int(name)
            assert data == open(os.path.join(s.root, index.keys[i]), "rb").read()
            assert label == index.labels[i]
            seen[i] = True
            total += nbytes
        assert total == size  # storage bytes of the shard, headers and padding included
    assert sorted(seen) == list(range(30))


def test_webdataset_reads_our_shards(packed):
    wds = pytest.importorskip("webdataset")
    s, index, _ = packed
    shard_index, _ = list_shards(s, "shards")
    urls = [os.path.join(s.root, k) for k in shard_index.keys]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == 30
    for sample in samples:
        assert int(sample["cls"]) == index.labels[int(sample["__key__"])]
        assert sample["jpg"][:2] == b"\xff\xd8"


def test_shard_stream_is_one_recorded_request(packed, tmp_path):
    s, _, _ = packed
    spec = RecorderSpec(str(tmp_path / "req"))
    rs = FileSystemStorage(s.config, recorder=spec)
    shard_index, _ = list_shards(s, "shards")
    n = sum(1 for _ in iter_shard(rs, shard_index.keys[0]))
    flush_current()
    rows = read_rows(tmp_path / "req")
    gets = [r for r in rows if r["op"] == "get"]
    assert n >= 1 and len(gets) == 1 and int(gets[0]["bytes"]) == shard_index.sizes[0]


def test_missing_shards_error(tmp_path):
    from dnnbench.errors import DataError

    s = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    s.put("x/readme", b"1")
    with pytest.raises(DataError, match="prepare --shards"):
        list_shards(s, "x")


def test_emulated_latency_and_bandwidth(tmp_path):
    inner = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    inner.put("k", b"x" * 200_000)
    em = EmulatedStorage(inner, SimpleNamespace(latency_ms=30, jitter_ms=0, bandwidth_MBps=2))
    t0 = time.perf_counter()
    data, _ = em.get("k")
    took = time.perf_counter() - t0
    assert data == b"x" * 200_000
    assert took >= 0.03 + 0.1 - 0.005  # 30 ms latency + 200 kB at 2 MB/s
    assert em.label().endswith("(emulated)") and em.describe()["emulated"]["latency_ms"] == 30
    t0 = time.perf_counter()
    stream = em.open_stream("k")
    assert stream.drain() == 200_000
    stream.close()
    assert time.perf_counter() - t0 >= 0.125
