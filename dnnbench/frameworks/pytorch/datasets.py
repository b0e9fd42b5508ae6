"""Map-style datasets reading through dnnbench's storage layer.

``__getitem__`` takes ``(epoch, index)`` from :class:`EpochSampler` (a plain
index works too) and returns ``(sample, label, nbytes)``; a sample that cannot
be read or decoded comes back as a :class:`Failure` so the main process can
name the key without a worker traceback.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from dnnbench import failures
from dnnbench.data.index import SampleIndex
from dnnbench.data.shards import iter_shard
from dnnbench.data.split import split
from dnnbench.frameworks import common
from dnnbench.frameworks.common import Failure, ImageTransform, decode_timed, mark_epoch, read_sample, read_samples
from dnnbench.frameworks.pytorch import ring
from dnnbench.registry import DATASETS
from dnnbench.storage.inflight import in_order
from dnnbench.storage.base import Storage


@DATASETS.register("image_folder", framework="pytorch",
                   aliases=("TorchImageClassificationDataset", "MapStyleDataset"))
class ImageFolderDataset(ImageTransform, Dataset):
    """Map-style: one storage read per sample, decoded with OpenCV to image_dimension.

    Subclass and override :meth:`transform` to change what happens to the bytes.
    """

    def __init__(self, index: SampleIndex, storage: Storage, config: Any):
        self.keys = index.keys
        self.labels = index.labels.tolist()
        self.sizes = index.sizes.tolist()
        self.storage = storage
        self.config = config
        self.decode = config.decode
        self.size = tuple(config.image_dimension)
        self.in_flight = common.in_flight(config)
        # raw bytes with the built-in transform: read a whole batch straight into one
        # shared-memory ring slot (no per-sample copies, see ring.py); subclasses that
        # override transform() get the per-sample path
        self._raw_batches = (self.decode == "none" or isinstance(self, RawBytesDataset)) and \
            type(self).transform in (ImageFolderDataset.transform, RawBytesDataset.transform)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, tuple):
            epoch, i = item
            mark_epoch(self.storage, epoch)
        else:
            i = item
        sample, nbytes, reason, _ = read_sample(self.storage, self.keys[i], self.sizes[i], self.decode, self.transform)
        if reason:  # named in the main process, no worker traceback
            return Failure(self.keys[i], reason)
        return sample, self.labels[i], nbytes

    def __getitems__(self, items: list[Any]) -> Any:
        """Batched fetch (the DataLoader calls this when it exists). After a failure that ends
        the run, the rest of the batch is not read (each read would wait out the retries)."""
        if items and isinstance(items[0], tuple):
            mark_epoch(self.storage, items[0][0])
            idx = [i for _, i in items]
        else:
            idx = list(items)
        if self._raw_batches:
            return self._read_raw_batch(idx)
        if type(self).__getitem__ is not ImageFolderDataset.__getitem__:  # a subclass's own __getitem__
            return list(in_order(self.__getitem__, items, self.in_flight)) if self.in_flight > 1 \
                else [self[i] for i in items]
        return self._read_samples(idx)

    def _read_samples(self, idx: list[int]) -> list[Any]:
        """The samples of ``idx`` (``requests_in_flight`` reads outstanding), in order; after a
        failure that ends the run the rest is not read."""
        out: list[Any] = []
        reads = read_samples(self.storage, [self.keys[i] for i in idx], [self.sizes[i] for i in idx], self.decode,
                             self.transform, self.in_flight)
        try:
            for i, (sample, nbytes, reason, _) in zip(idx, reads):
                if reason:  # named in the main process, no worker traceback
                    out.append(Failure(self.keys[i], reason))
                    if failures.is_fatal(reason):
                        break
                    continue
                out.append((sample, self.labels[i], nbytes))
        finally:
            reads.close()
        return out

    def _read_raw_batch(self, idx: list[int]) -> "Batch":
        sizes = [self.sizes[i] for i in idx]
        out, ticket = ring.take(sum(sizes))
        keys = [self.keys[i] for i in idx]
        ends, failed = self.storage.get_many_into(keys, sizes, memoryview(out.numpy()), self.in_flight)
        offsets = np.zeros(len(ends) + 1, dtype=np.int64)
        offsets[1:] = ends
        if failed:  # named in the main process, no worker traceback
            labels = [self.labels[idx[j]] for j in common.read_positions(keys, failed, len(ends))]
            out = out[:int(offsets[-1])]
        else:
            labels = [self.labels[i] for i in idx]
        bad = [Failure(k, reason) for k, reason in failed]
        return Batch(out, np.asarray(labels, dtype=np.int64), int(offsets[-1]), len(ends), bad, offsets, ticket)


@DATASETS.register("raw", framework="pytorch", aliases=("PythonReadDataset",))
class RawBytesDataset(ImageFolderDataset):
    """Map-style: one storage read per sample; the bytes are passed on undecoded."""

    def transform(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8)


class _Iterable(ImageTransform, IterableDataset):
    """Base of the iterable datasets: split by rank then worker inside ``__iter__``.

    The epoch reaches workers without shared state: a fresh worker copy sees the
    epoch set in the main process; a persistent worker counts its own ``__iter__`` calls.
    """

    def __init__(self, index: SampleIndex, storage: Storage, config: Any, seed: int = 0, rank: int = 0,
                 world: int = 1):
        self.keys = index.keys
        self.labels = index.labels.tolist()
        self.sizes = index.sizes.tolist()
        self.storage = storage
        self.config = config
        self.seed = seed
        self.rank, self.world = rank, world
        self.epoch = 0
        self._iters = 0
        self.decode, self.size = config.decode, tuple(config.image_dimension)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._iters = 0

    def _begin(self) -> tuple[int, int, int]:
        info = get_worker_info()
        if info is None:
            epoch, worker, workers = self.epoch, 0, 1
        else:
            epoch, worker, workers = self.epoch + self._iters, info.id, info.num_workers
            self._iters += 1
        mark_epoch(self.storage, epoch)
        return epoch, worker, workers


class SequentialDataset(_Iterable):
    """Iterable: one read per object in listing order, contiguous blocks per rank then worker."""

    def __iter__(self):
        _, worker, workers = self._begin()
        mine = split(len(self.keys), self.rank, self.world, worker, workers)
        reads = read_samples(self.storage, [self.keys[i] for i in mine], [self.sizes[i] for i in mine],
                             self.decode, self.transform, common.in_flight(self.config))
        try:
            for i, (sample, nbytes, reason, _) in zip(mine, reads):
                if not reason:
                    yield sample, self.labels[i], nbytes
                    continue
                yield Failure(self.keys[i], reason)  # named in the main process, no worker traceback
                if failures.is_fatal(reason):
                    return  # the run ends: reading on would wait out the retries for every sample
        finally:
            reads.close()


class ShardDataset(_Iterable):
    """Iterable over tar shards: shard order shuffled per epoch, split by rank then worker,
    each shard streamed from storage, samples mixed in a bounded shuffle buffer."""

    def __init__(self, *args: Any, shuffle_buffer: int = 1000, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shuffle_buffer = shuffle_buffer

    def __iter__(self):
        epoch, worker, workers = self._begin()
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.keys)).tolist()
        mine = [order[j] for j in split(len(order), self.rank, self.world, worker, workers)]
        rng = random.Random(hash((self.seed, epoch, self.rank, worker)))
        buffer: list[Any] = []
        for s in mine:
            try:
                for name, data, label, nbytes in iter_shard(self.storage, self.keys[s]):
                    sample, reason = decode_timed(self.transform, data, None)
                    buffer.append(Failure(f"{self.keys[s]}:{name}", reason) if reason else (sample, label, nbytes))
                    if len(buffer) >= self.shuffle_buffer:
                        j = rng.randrange(len(buffer))
                        buffer[j], buffer[-1] = buffer[-1], buffer[j]
                        yield buffer.pop()
            except Exception as e:  # a broken or unreachable shard is named, not a worker traceback
                reason = failures.read_failure(e, failures.BAD_SHARD)
                yield Failure(self.keys[s], reason)
                if failures.is_fatal(reason):
                    return
        rng.shuffle(buffer)
        yield from buffer


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``: a fresh seeded permutation per epoch (or listing order)."""

    def __init__(self, n: int, shuffle: bool, seed: int, limit: int | None = None):
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.limit = limit

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n if self.limit is None else min(self.n, self.limit)

    def __iter__(self):
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        epoch = self.epoch
        for i in order[: len(self)].tolist():
            yield epoch, i


class EpochBatchSampler(Sampler):
    """Batches of ``(epoch, index)`` straight from one permutation per epoch (cheaper in the
    main process than a sampler wrapped in a BatchSampler)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, limit: int | None = None,
                 drop_last: bool = False, rank: int = 0, world: int = 1):
        self.samples = EpochSampler(n, shuffle, seed, None)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rank, self.world = rank, world
        self.limit = limit

    def set_epoch(self, epoch: int) -> None:
        self.samples.set_epoch(epoch)

    def epoch_indices(self, epoch: int | None = None) -> list[int]:
        """This rank's samples of an epoch: the epoch's permutation, split by rank, capped by limit."""
        s = self.samples
        e = s.epoch if epoch is None else epoch
        order = np.random.default_rng([s.seed, e]).permutation(s.n) if s.shuffle else np.arange(s.n)
        mine = order[split(s.n, self.rank, self.world)]
        if self.limit is not None:
            mine = mine[: self.limit]
        if self.drop_last:
            mine = mine[: len(mine) - len(mine) % self.batch_size]
        return mine.tolist()

    def num_samples(self) -> int:
        n = len(split(self.samples.n, self.rank, self.world))
        if self.limit is not None:
            n = min(n, self.limit)
        return n - n % self.batch_size if self.drop_last else n

    def __len__(self) -> int:
        return (self.num_samples() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = self.epoch_indices()
        epoch, b = self.samples.epoch, self.batch_size
        for start in range(0, len(order), b):
            yield [(epoch, i) for i in order[start:start + b]]


class Batch(common.Batch):
    """One collated batch: data (a tensor), labels and offsets (numpy: sent inline,
    not as extra shared-memory tensors), bytes read, and failed samples. ``ticket`` names
    the ring slot holding ``data`` in a loader worker (see :mod:`.ring`)."""

    __slots__ = ("ticket",)

    def __init__(self, data, labels, nbytes, samples, failures, offsets=None, ticket=None):
        super().__init__(data, labels, nbytes, samples, failures, offsets)
        self.ticket = ticket

    def __reduce__(self):
        # numpy arrays pickle slowly (tens of us each, per batch); raw int64 bytes do not
        offsets = None if self.offsets is None else np.ascontiguousarray(self.offsets, dtype=np.int64).tobytes()
        return _batch_from_wire, (ring.wrap(self.data, self.ticket), np.ascontiguousarray(
            self.labels, dtype=np.int64).tobytes(), self.nbytes, self.samples, self.failures, offsets)

    def pin_memory(self) -> "Batch":
        self.data = self.data.pin_memory()
        return self


def _batch_from_wire(data, labels: bytes, nbytes: int, samples: int, failures: list, offsets: bytes | None) -> Batch:
    # copies: frombuffer over bytes is read-only, and torch.from_numpy warns on those
    return Batch(data, np.frombuffer(labels, dtype=np.int64).copy(), nbytes, samples, failures,
                 None if offsets is None else np.frombuffer(offsets, dtype=np.int64).copy())


def collate(samples: list[Any]) -> Batch:
    """Stack decoded images (N, H, W, C) or concatenate raw bytes (with offsets), into a ring slot."""
    if isinstance(samples, Batch):  # built by __getitems__ already
        return samples
    failures = [s for s in samples if isinstance(s, Failure)]
    good = [s for s in samples if not isinstance(s, Failure)] if failures else samples
    labels = np.asarray([s[1] for s in good], dtype=np.int64)
    nbytes = sum(s[2] for s in good)
    arrays = [s[0] for s in good]
    if not arrays:
        return Batch(torch.empty(0, dtype=torch.uint8), labels, 0, 0, failures)
    first = arrays[0]
    if first.ndim == 1 or any(a.shape != first.shape for a in arrays):
        sizes = [a.nbytes for a in arrays]
        out, ticket = ring.take(sum(sizes))
        buf = out.numpy()
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        for a, off, size in zip(arrays, offsets[:-1].tolist(), sizes):
            buf[off:off + size] = a.reshape(-1).view(np.uint8)
        return Batch(out, labels, nbytes, len(good), failures, offsets, ticket)
    dtype = torch.from_numpy(np.empty(0, first.dtype)).dtype  # (samples may be read-only views)
    flat, ticket = ring.take(len(arrays) * first.nbytes)
    out = flat.view(dtype).view(len(arrays), *first.shape)
    np.stack(arrays, out=out.numpy())
    return Batch(out, labels, nbytes, len(good), failures, None, ticket)
