"""Every S3 client library against the real local server (Swift + s3api, SigV4 checked):
the storage contract (tests/storage_contract.py, for every registered backend of kind s3),
paginated parallel listing of > 1000 objects (one recorded request per page), streamed reads
in bounded memory, checkpoints written and read back through each client, and each failure
mapped to one clear error with a hint."""

from __future__ import annotations

import hashlib
import os
import socket
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.data.listing import list_dataset
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_FAILED, DataError
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.registry import STORAGE
from dnnbench.storage import create_storage
from dnnbench.storage.backends import S3
from dnnbench.storage.s3common import S3AccessError, S3BucketMissing, S3Unreachable
from s3server import OTHER_ACCOUNT, delete_bucket, storage_section
from tests.storage_contract import ContractFixture, StorageContract, unique

pytestmark = pytest.mark.s3
CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


@pytest.fixture(autouse=True)
def _keep_aws_env(monkeypatch):
    """s3torchconnector exports inline keys into the environment: restore it after each test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))


def make(info: dict, bucket: str, client: str = "boto3", prefixes=("train",), recorder=None, **s3):
    section = {"bucket": bucket, "endpoint_url": info["endpoint_url"], "region": info["region"],
               "access_key": info["access_key"], "secret_key": info["secret_key"], "max_attempts": 2, **s3}
    cfg = validate({"storage": {"client": client, "preset": "minio", "prefixes": list(prefixes), "s3": section}})
    return create_storage(cfg.storage, recorder=recorder)


def rows(directory: Path) -> list[dict]:
    flush_current()
    return read_rows(directory)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SwiftFixture(ContractFixture):
    """Buckets on the local Swift server (deleted at the end of the module); stocked with boto3."""

    page_size = 1000

    def __init__(self, name: str, info: dict, s3_client, buckets: list[str]):
        self.name, self.info, self.s3_client, self.buckets = name, info, s3_client, buckets
        self.family = f"swift:{info['endpoint_url']}"

    def new_location(self) -> str:
        bucket = unique("dnnbench-contract")
        self.s3_client.create_bucket(Bucket=bucket)
        self.buckets.append(bucket)
        return bucket

    def open(self, location, recorder=None):
        return make(self.info, location, self.name, recorder=recorder)

    def writer(self, location):
        return make(self.info, location)

    def missing(self):
        return self.open("dnnbench-no-such-bucket")


@pytest.fixture(scope="module")
def contract_buckets(s3_server, s3_client):
    buckets: list[str] = []
    yield buckets
    for bucket in buckets:
        delete_bucket(s3_client, bucket)


@pytest.fixture(scope="module", params=[e.name for e in STORAGE.entries() if e.spec.kind == S3])
def backend(request, s3_server, s3_client, contract_buckets) -> ContractFixture:
    return SwiftFixture(request.param, s3_server, s3_client, contract_buckets)


class TestStorageContractOnSwift(StorageContract):
    pass


def test_listing_is_paginated_and_parallel(s3_server, s3_bucket, tmp_path):
    writer = make(s3_server, s3_bucket)
    keys = [f"big/cls/{i:05d}.bin" for i in range(1005)] + [f"big/other/{i}.bin" for i in range(3)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: writer.put(k, b"x" * (1 + len(k) % 7)), keys))
    writer.put("bigger/x.bin", b"not under big/")
    for client in CLIENTS:
        spec = RecorderSpec(str(tmp_path / f"req-{client}"))
        st = make(s3_server, s3_bucket, client, prefixes=["big"], recorder=spec)
        index, stats = list_dataset(st, ["big"], 4, [".bin"])
        assert sorted(index.keys) == sorted(keys), client  # all 1,008: past the 1,000-key page
        assert stats.objects == 1008 and stats.classes == 2 and stats.seconds > 0
        assert index.total_bytes == sum(1 + len(k) % 7 for k in keys)
        # one request per ListObjectsV2 page: big (delimiter), big/cls x 2 pages, big/other
        assert stats.requests == 4, client
        lists = [r for r in rows(tmp_path / f"req-{client}") if r["op"] == "list"]
        assert sorted(r["key"] for r in lists) == ["big", "big/cls", "big/cls", "big/other"], client
        assert all(r["error"] is None for r in lists), client


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


BIG = 40 * 2**20  # 5 of s3torchconnector's 8 MiB parts


@pytest.mark.parametrize("client", CLIENTS)
def test_open_stream_is_one_get_in_bounded_memory(client, s3_server, s3_bucket, tmp_path):
    """How shards are read: one GET streamed, never the whole object in memory (the server is
    another process, so tracemalloc sees only the client's allocations)."""
    writer = make(s3_server, s3_bucket)
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    writer.put("big/object.bin", data)
    writer.put("big/small.bin", b"s")
    del data
    spec = RecorderSpec(str(tmp_path / "req"))
    st = make(s3_server, s3_bucket, client, recorder=spec)
    st.get("big/small.bin")  # the client and its connection exist before measuring
    tracemalloc.start()
    try:
        h, n = hashlib.sha256(), 0
        with st.open_stream("big/object.bin") as stream:
            while chunk := stream.read(10240):
                h.update(chunk)
                n += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == BIG and h.hexdigest() == digest
    assert peak < BIG // 4, f"{client}: {peak / 2**20:.1f} MiB held to stream {BIG / 2**20:.0f} MiB"
    got = [(r["op"], r["bytes"], r["error"]) for r in rows(tmp_path / "req") if r["key"] == "big/object.bin"]
    assert got == [("get", BIG, None)]  # s3fs would show a HEAD as a row of its own


@pytest.fixture(scope="module")
def dataset_bucket(s3_server, s3_client, tmp_path_factory):
    """A bucket with 2 classes x 12 images, shared by the checkpoint runs."""
    import uuid

    from dnnbench.events import NullEvents
    from dnnbench.executor import prepare_dataset

    name = f"dnnbench-ckpt-{uuid.uuid4().hex[:10]}"
    prepare_dataset(_run_config(s3_server, name, tmp_path_factory.mktemp("prep"), "boto3"), NullEvents())
    yield name
    delete_bucket(s3_client, name)


def _run_config(info: dict, bucket: str, out: Path, client: str, **sections) -> LoadedConfig:
    data = {
        "name": f"ckpt-{client}",
        "storage": storage_section(info, bucket, client),
        "prepare": {"classes": 2, "images_per_class": 12, "width": [16, 48], "height": [16, 48], "workers": 8},
        "dataset": {"decode": "rgb", "image_dimension": [16, 16]},
        "framework": {"name": "pytorch", "batch_size": 4, "num_workers": 0},
        "model": {"name": "convnet", "options": {"width": 4, "hidden": 8}},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.2},
        **sections,
    }
    return LoadedConfig(validate(data), None, [])


@pytest.mark.parametrize("client", ["minio", "s3fs", "s3torchconnector"])
def test_pytorch_checkpoint_put_and_get_through_each_client(client, s3_server, s3_client, dataset_bucket, tmp_path):
    """The checkpoint phase (10 MiB: multipart for minio and s3torchconnector, one PUT for s3fs)
    and the inference phase, with PyTorch, through each client that boto3's run does not cover."""
    import pandas as pd

    from dnnbench.executor import Executor

    cfg = _run_config(s3_server, dataset_bucket, tmp_path, client, training={"trainer": "train", "epochs": 1},
                      execution={"phases": {"inference": True, "checkpoint": True}},
                      inference={"holdout_fraction": 0.25},
                      checkpoint={"size_MiB": 10, "keep": True, "prefix": f"ckpt-{client}"})
    out = Executor(cfg).run()
    row = out.row
    assert out.exit_code == 0, row["reason"]
    assert row["objects_listed"] == 24 and row["infer_samples"] == 6 and row["samples"] == 18
    assert row["requests"] == 18 and row["checkpoint_verified"] == "ok"
    size = row["checkpoint_bytes"]
    assert size > 10 * 2**20
    key = f"ckpt-{client}/{out.run_dir.name}.ckpt"
    req = pd.read_csv(out.run_dir / "requests.csv")
    ckpt = req[req["epoch"] == -2]
    assert sorted(zip(ckpt["op"], ckpt["key"], ckpt["bytes"])) == [("get", key, size), ("put", key, size)]
    assert ckpt["error"].isna().all()
    infer = req[(req["epoch"] == -1) & (req["op"] == "get")]
    train = req[(req["epoch"] == 0) & (req["op"] == "get")]
    assert len(infer) == 6 and infer["key"].is_unique and not set(infer["key"]) & set(train["key"])
    assert row["bytes"] == train["bytes"].sum() and row["bytes"] + infer["bytes"].sum() == row["bytes_listed"]
    head = s3_client.head_object(Bucket=dataset_bucket, Key=key)
    assert head["ContentLength"] == size
    assert ("-" in head["ETag"]) == (client != "s3fs")  # a multipart upload's ETag carries the part count
