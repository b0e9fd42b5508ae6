"""Batch buffers crossing from loader workers: whole once per slot, then by reference, and
the bytes the training loop sees are always the bytes of the batch it was handed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dnnbench.config.schema import DatasetConfig, StorageConfig
from dnnbench.data.decode import decode_image
from dnnbench.frameworks.pytorch import ring
from dnnbench.frameworks.pytorch.datasets import EpochBatchSampler, ImageFolderDataset, collate
from dnnbench.storage.fs import FileSystemStorage
from dnnbench.data.listing import list_dataset


@pytest.fixture(autouse=True)
def fresh_ring():
    ring.configure(3)
    ring.release()
    yield
    ring.configure(4)
    ring.release()


def worker_ring(slots: int) -> None:
    """Make this process's ring the one a loader worker would have (shared buffers, tickets)."""
    ring.configure(slots)
    ring._RING = ring._Ring(slots, shared=True)


def test_a_slot_is_sent_whole_once_then_by_reference():
    worker_ring(3)
    sizes = [1000, 1200, 900, 1100, 800, 1000]
    pickles = []
    for n in sizes:
        data, ticket = ring.take(n)
        data.fill_(n % 251)
        pickles.append(pickle.dumps(ring.wrap(data, ticket)))
    first, later = pickles[:3], pickles[3:]
    assert all(len(p) > 900 for p in first)  # the buffer itself
    assert all(len(p) < 400 for p in later)  # (pid, slot, token) and a shape
    # the receiving side: a reference resolves to the buffer received for that slot
    got = [pickle.loads(p) for p in pickles]
    assert [g.numel() for g in got] == sizes
    assert int(got[0][0]) == sizes[0] % 251


def test_a_grown_slot_is_sent_again():
    worker_ring(2)
    for n in (100, 100):
        pickle.loads(pickle.dumps(ring.wrap(*ring.take(n))))
    data, ticket = ring.take(10_000)  # slot 0 must grow: new buffer, new token
    assert len(pickle.dumps(ring.wrap(data, ticket))) > 10_000


def test_a_reference_to_a_released_buffer_is_an_error():
    worker_ring(2)
    for _ in range(2):
        pickle.loads(pickle.dumps(ring.wrap(*ring.take(100))))
    ref = pickle.dumps(ring.wrap(*ring.take(100)))
    ring.release()
    with pytest.raises(RuntimeError, match="never received"):
        pickle.loads(ref)


def test_main_process_ring_reuses_plain_tensors():
    a, ta = ring.take(1000)
    ring.take(10)
    ring.take(10)
    b, tb = ring.take(900)  # slot 0 again, big enough: the same memory
    assert ta is None and tb is None and a.data_ptr() == b.data_ptr()
    assert not a.is_shared()


@pytest.fixture(scope="module")
def index_and_storage(tiny_root):
    storage = FileSystemStorage(StorageConfig(root=str(tiny_root)))
    index, _ = list_dataset(storage, ["train"], 4, [".jpg"])
    return index, storage


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("decode", ["none", "rgb"])
def test_every_batch_holds_its_own_bytes_across_epochs(index_and_storage, persistent, decode):
    """Each batch from 2 workers, over 3 epochs, holds exactly its samples' bytes (raw) or
    decoded pixels: ring slots are never rewritten while in use, references resolve right."""
    index, storage = index_and_storage
    cfg = DatasetConfig(decode=decode, image_dimension=(12, 10))
    ds = ImageFolderDataset(index=index, storage=storage, config=cfg)
    sampler = EpochBatchSampler(len(ds), 4, True, seed=0)
    files = {k: open(f"{storage.root}/{k}", "rb").read() for k in index.keys}
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=collate, prefetch_factor=1,
                        persistent_workers=persistent, worker_init_fn=lambda _: ring.configure(3))
    for epoch in range(3):
        sampler.set_epoch(epoch)
        if not persistent:
            ring.release()
        expected = iter(sampler.epoch_indices(epoch))
        for b in loader:
            ks = [index.keys[next(expected)] for _ in range(b.samples)]
            if decode == "none":
                data = b.data.numpy()
                assert [data[b.offsets[j]:b.offsets[j + 1]].tobytes() for j in range(len(ks))] == \
                    [files[k] for k in ks]
            else:
                want = np.stack([decode_image(files[k], "rgb", (12, 10)) for k in ks])
                assert torch.equal(b.data, torch.from_numpy(want))
    if persistent:
        loader._iterator._shutdown_workers()
