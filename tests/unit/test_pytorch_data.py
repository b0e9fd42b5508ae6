"""PyTorch dataset, sampler, collate and DataLoader under every start method."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dnnbench.config.schema import DatasetConfig, StorageConfig
from dnnbench.frameworks.pytorch.datasets import (Batch, EpochSampler, Failure, ImageFolderDataset,
                                                  RawBytesDataset, collate)
from dnnbench.storage.fs import FileSystemStorage
from dnnbench.data.listing import list_dataset


@pytest.fixture(scope="module")
def index_and_storage(tiny_root):
    storage = FileSystemStorage(StorageConfig(root=str(tiny_root)))
    index, _ = list_dataset(storage, ["train"], 4, [".jpg"])
    return index, storage


def make(index_and_storage, decode="rgb", cls=ImageFolderDataset):
    index, storage = index_and_storage
    return cls(index=index, storage=storage, config=DatasetConfig(decode=decode, image_dimension=(12, 10)))


def test_getitem_returns_sample_label_nbytes(index_and_storage):
    ds = make(index_and_storage)
    img, label, nbytes = ds[(0, 5)]
    index = index_and_storage[0]
    assert img.shape == (12, 10, 3) and label == index.labels[5] and nbytes == index.sizes[5]


def test_missing_object_becomes_a_named_failure(index_and_storage, tmp_path):
    index, storage = index_and_storage
    from dnnbench.data.index import SampleIndex

    bad = SampleIndex(["train/class_000/missing.jpg"], np.array([0]), np.array([10]), ["class_000"])
    ds = ImageFolderDataset(index=bad, storage=storage, config=DatasetConfig())
    out = ds[0]
    assert isinstance(out, Failure) and out.key == "train/class_000/missing.jpg"
    assert "FileNotFoundError" in out.reason
    batch = ds.__getitems__([(0, 0)])
    assert batch[0].key == out.key


def test_raw_batches_are_exact_bytes(index_and_storage):
    index, storage = index_and_storage
    ds = make(index_and_storage, decode="none")
    idx = [3, 1, 7]
    batch = collate(ds.__getitems__([(0, i) for i in idx]))
    assert isinstance(batch, Batch) and batch.samples == 3 and not batch.failures
    assert batch.nbytes == int(index.sizes[idx].sum())
    data = batch.data.numpy()
    for j, i in enumerate(idx):
        raw = (storage.root + "/" + index.keys[i])
        assert data[batch.offsets[j]:batch.offsets[j + 1]].tobytes() == open(raw, "rb").read()
    assert list(batch.labels) == [index.labels[i] for i in idx]


def test_raw_dataset_alias_behaves_like_decode_none(index_and_storage):
    ds = make(index_and_storage, decode="rgb", cls=RawBytesDataset)
    batch = collate(ds.__getitems__([(0, 0), (0, 1)]))
    assert batch.offsets is not None and batch.data.dtype == torch.uint8


def test_collate_decoded_and_failures():
    imgs = [(np.full((4, 5, 3), i, np.uint8), i, 100 + i) for i in range(3)]
    batch = collate(imgs + [Failure("k", "decode failed")])
    assert batch.data.shape == (3, 4, 5, 3) and batch.nbytes == 303 and batch.samples == 3
    assert [f.key for f in batch.failures] == ["k"]


def test_sampler_shuffles_per_epoch_deterministically():
    s = EpochSampler(10, shuffle=True, seed=1)
    e0 = [i for _, i in s]
    s.set_epoch(1)
    e1 = [i for _, i in s]
    assert sorted(e0) == sorted(e1) == list(range(10)) and e0 != e1
    s.set_epoch(0)
    assert [i for _, i in s] == e0
    assert [i for _, i in EpochSampler(10, shuffle=False, seed=1, limit=4)] == [0, 1, 2, 3]


@pytest.mark.parametrize("method", ["fork", pytest.param("spawn", marks=pytest.mark.slow),  # workers re-import torch
                                    pytest.param("forkserver", marks=pytest.mark.slow)])
@pytest.mark.parametrize("decode", ["rgb", "none"])
def test_dataloader_reads_every_sample_once(index_and_storage, method, decode):
    index, _ = index_and_storage
    ds = make(index_and_storage, decode=decode)
    sampler = EpochSampler(len(ds), shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=5, sampler=sampler, num_workers=2, collate_fn=collate,
                        multiprocessing_context=method, persistent_workers=True)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        labels = collections.Counter()
        nbytes = samples = 0
        for batch in loader:
            samples += batch.samples
            nbytes += batch.nbytes
            labels.update(batch.labels.tolist())
        assert samples == len(index) and nbytes == index.total_bytes
        assert labels == collections.Counter(index.labels.tolist())
    loader._iterator._shutdown_workers()


@pytest.mark.parametrize("n,b,drop,limit", [(10, 3, False, None), (10, 3, True, None), (10, 4, False, 6),
                                            (9, 3, True, None)])
def test_batch_sampler_covers_each_sample_once(n, b, drop, limit):
    from dnnbench.frameworks.pytorch.datasets import EpochBatchSampler

    s = EpochBatchSampler(n, b, shuffle=True, seed=2, limit=limit, drop_last=drop)
    s.set_epoch(3)
    batches = list(s)
    flat = [i for batch in batches for _, i in batch]
    assert len(batches) == len(s) and len(flat) == s.num_samples() == len(set(flat))
    assert all(e == 3 for batch in batches for e, _ in batch)
    assert all(len(batch) == b for batch in batches[:-1])
