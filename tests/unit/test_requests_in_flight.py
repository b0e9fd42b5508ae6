"""``dataset.requests_in_flight`` K > 1 reads exactly what K = 1 reads: the same samples in the same
order, the same bytes, one request row per object (filesystem and S3 through moto), and a failed
object in the middle of a batch leaves no gap. Listing with N threads lists the same index as one."""

from __future__ import annotations

import numpy as np
import pytest

from dnnbench.config.loading import validate
from dnnbench.config.schema import DatasetConfig, StorageConfig
from dnnbench.data.listing import list_dataset
from dnnbench.frameworks.pytorch.datasets import ImageFolderDataset, SequentialDataset, collate
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage import create_storage
from dnnbench.storage.fs import FileSystemStorage

K = 4


def fs_storage(root, recorder=None):
    return FileSystemStorage(StorageConfig(root=str(root)), recorder=recorder)


def moto_storage(endpoint, tiny_root, recorder=None):
    """The tiny dataset copied once into a moto bucket, read through boto3."""
    cfg = validate({"storage": {"client": "boto3", "preset": "minio", "prefixes": ["train"],
                                "s3": {"bucket": "inflight", "endpoint_url": endpoint, "access_key": "AKIAMOTO",
                                       "secret_key": "motosecret", "max_attempts": 2}}})
    storage = create_storage(cfg.storage, recorder=recorder)
    if storage.ensure_bucket():
        src = fs_storage(tiny_root)
        index, _ = list_dataset(src, ["train"], 4, [".jpg", ".png"])
        for key in index.keys:
            storage.put(key, src.get(key)[0])
    return storage


@pytest.fixture(params=["fs", "moto"])
def make_storage(request, tiny_root):
    if request.param == "fs":
        return lambda recorder=None: fs_storage(tiny_root, recorder)
    endpoint = request.getfixturevalue("moto_endpoint")
    return lambda recorder=None: moto_storage(endpoint, tiny_root, recorder)


def rows_of(directory) -> list[dict]:
    flush_current()
    return [r for r in read_rows(directory) if r["op"] == "get"]


def read_random(make_storage, tmp_path, k: int, decode: str):
    """Two batches of the first epoch's permutation, collated; and the request rows."""
    rec = RecorderSpec(str(tmp_path / f"k{k}-{decode}"))
    storage = make_storage(rec)
    index, _ = list_dataset(storage, ["train"], 4, [".jpg", ".png"])
    ds = ImageFolderDataset(index=index, storage=storage,
                            config=DatasetConfig(decode=decode, image_dimension=(12, 10), requests_in_flight=k))
    order = np.random.default_rng([0, 0]).permutation(len(index)).tolist()
    batches = []
    for s in range(0, len(order), 16):
        batch = collate(ds.__getitems__([(0, i) for i in order[s:s + 16]]))
        batch.data = batch.data.clone()  # out of its ring slot, which the next batch reuses
        batches.append(batch)
    return batches, rows_of(rec.directory), index


@pytest.mark.parametrize("decode", ["rgb", "none"])
def test_random_batches_are_the_same_with_requests_in_flight(make_storage, tmp_path, decode):
    one, rows1, index = read_random(make_storage, tmp_path, 1, decode)
    many, rows_k, _ = read_random(make_storage, tmp_path, K, decode)
    assert len(one) == len(many) == 3
    for a, b in zip(one, many):
        assert not a.failures and not b.failures
        assert a.samples == b.samples and a.nbytes == b.nbytes
        assert a.labels.tolist() == b.labels.tolist()
        assert np.array_equal(a.data.numpy(), b.data.numpy())
        assert (a.offsets is None) == (b.offsets is None)
        if a.offsets is not None:
            assert a.offsets.tolist() == b.offsets.tolist()
    assert sum(b.nbytes for b in many) == index.total_bytes
    assert len(rows1) == len(rows_k) == len(index)
    assert sorted(r["key"] for r in rows_k) == sorted(index.keys)
    assert sum(r["bytes"] for r in rows_k) == index.total_bytes


def read_sequential(make_storage, tmp_path, k: int):
    rec = RecorderSpec(str(tmp_path / f"seq{k}"))
    storage = make_storage(rec)
    index, _ = list_dataset(storage, ["train"], 4, [".jpg", ".png"])
    ds = SequentialDataset(index, storage, DatasetConfig(decode="none", requests_in_flight=k))
    samples = [(bytes(s), label, n) for s, label, n in ds]
    return samples, rows_of(rec.directory), index


def test_sequential_reads_the_same_samples_in_listing_order(make_storage, tmp_path):
    one, rows1, index = read_sequential(make_storage, tmp_path, 1)
    many, rows_k, _ = read_sequential(make_storage, tmp_path, K)
    assert many == one and len(one) == len(index)
    assert [n for _, _, n in many] == index.sizes.tolist()
    assert len(rows1) == len(rows_k) == len(index)


@pytest.mark.parametrize("k", [1, K])
def test_a_missing_object_in_the_middle_leaves_no_gap(tiny_root, k):
    storage = fs_storage(tiny_root)
    index, _ = list_dataset(storage, ["train"], 4, [".jpg"])
    keys = index.keys[:6]
    keys[2] = "train/class_000/missing.jpg"
    sizes = index.sizes[:6].tolist()
    buf = bytearray(sum(sizes))
    ends, failed = storage.get_many_into(keys, sizes, memoryview(buf), k)
    assert [k for k, _ in failed] == [keys[2]] and "FileNotFoundError" in failed[0][1]
    good = [key for key in keys if key != keys[2]]
    expected = b"".join(storage.get(key)[0] for key in good)
    assert len(ends) == 5 and ends[-1] == len(expected) and bytes(buf[:ends[-1]]) == expected


def config_with(**dataset_and_more):
    return {"storage": {"client": "fs", "root": "/tmp", "prefixes": ["train"]}, **dataset_and_more}


def test_absurd_requests_in_flight_are_refused(tmp_path):
    with pytest.raises(Exception, match=r"requests_in_flight 0|greater than 0"):
        validate(config_with(dataset={"requests_in_flight": 0}))
    with pytest.raises(Exception, match=r"limits\.requests_in_flight"):
        validate(config_with(dataset={"requests_in_flight": 512}, framework={"num_workers": 4}))
    s3 = {"client": "boto3", "prefixes": ["train"], "s3": {"bucket": "b", "max_pool_connections": 8}}
    with pytest.raises(Exception, match=r"storage\.s3\.max_pool_connections"):
        validate({"storage": s3, "dataset": {"requests_in_flight": 16}})
    assert validate(config_with(dataset={"requests_in_flight": 8}, framework={"num_workers": 4})
                    ).dataset.requests_in_flight == 8


@pytest.mark.parametrize("dataset", [{"access": "shards"}, {"format": "npz"}])
def test_requests_in_flight_where_no_reader_keeps_several_is_refused_not_ignored(dataset):
    with pytest.raises(Exception, match=r"requests_in_flight 4 is not supported"):
        validate(config_with(dataset={"requests_in_flight": 4, **dataset}))
    assert validate(config_with(dataset={"requests_in_flight": 1, **dataset})).dataset.requests_in_flight == 1


@pytest.mark.parametrize("threads", [2, 16])
def test_listing_with_threads_lists_the_same_index(make_storage, threads):
    storage = make_storage()
    one, stats1 = list_dataset(storage, ["train"], 1, [".jpg", ".png"])
    many, stats = list_dataset(storage, ["train"], threads, [".jpg", ".png"])
    assert many.keys == one.keys and many.labels.tolist() == one.labels.tolist()
    assert many.sizes.tolist() == one.sizes.tolist() and many.classes == one.classes
    assert stats.requests == stats1.requests and stats.objects == stats1.objects == len(one)


@pytest.mark.parametrize("client", ["boto3", "minio", "s3fs", "s3torchconnector"])
def test_every_s3_client_reads_a_batch_with_requests_in_flight(client, moto_endpoint, tiny_root, tmp_path):
    """Each client's own ``_get_into`` from K threads at once: the same bytes and one row per object."""
    moto_storage(moto_endpoint, tiny_root)  # the data, once
    spec = RecorderSpec(str(tmp_path / client))
    cfg = validate({"storage": {"client": client, "preset": "minio", "prefixes": ["train"],
                                "s3": {"bucket": "inflight", "endpoint_url": moto_endpoint, "access_key": "AKIAMOTO",
                                       "secret_key": "motosecret", "max_attempts": 2}}})
    storage = create_storage(cfg.storage, recorder=spec)
    index, _ = list_dataset(storage, ["train"], 4, [".jpg", ".png"])
    sizes = index.sizes.tolist()
    one, many = bytearray(index.total_bytes), bytearray(index.total_bytes)
    ends1, failed1 = storage.get_many_into(index.keys, sizes, memoryview(one), 1)
    rows: list = []
    ends, failed = storage.get_many_into(index.keys, sizes, memoryview(many), K, rows)
    assert not failed1 and not failed and ends == ends1 and ends[-1] == index.total_bytes
    assert many == one
    assert len(rows) == len(index) and all(r is not None for r in rows)
    assert len(rows_of(spec.directory)) == 2 * len(index)


def test_in_order_keeps_exactly_k_outstanding_and_the_order():
    """K calls run at once (each waits until K are running: none would finish with fewer), never
    more, and results come back in submission order whatever order they finish in."""
    import threading

    from dnnbench.storage import inflight

    k, running, peak = 3, [0], [0]
    lock, full = threading.Lock(), threading.Event()

    def fn(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == k:
                full.set()
        full.wait(10)
        with lock:
            running[0] -= 1
        return i * i

    assert list(inflight.in_order(fn, range(10), k)) == [i * i for i in range(10)]
    assert peak[0] == k


def test_pools_grow_with_the_reading_threads_of_a_process():
    from dnnbench.storage import inflight

    try:
        inflight.set_callers(3)  # tf.data: 3 reading threads, each with its own K in flight
        assert inflight.pool(4)._max_workers == 12
    finally:
        inflight.set_callers(1)
    assert inflight.pool(4)._max_workers == 4
