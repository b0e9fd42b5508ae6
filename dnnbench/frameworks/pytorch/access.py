"""How a PyTorch run reads its samples: one small class per ``dataset.access``, chosen in one
place (:func:`access_for`). Each builds the dataset, says how the DataLoader batches it, and
knows this rank's samples and bytes of an epoch (the byte self-check).

This is the seam for the access strategies to come (random | sequential | shards, and ranges
inside files): a new one is a class here and a line in :data:`ACCESS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.data.split import split
from dnnbench.frameworks.pytorch.datasets import EpochBatchSampler, SequentialDataset, ShardDataset
from dnnbench.registry import DATASETS
from dnnbench.storage.base import Storage


class Access:
    """The samples of one rank (of ``world``): the dataset and its epochs."""

    def __init__(self, config: Any, index: SampleIndex, storage: Storage, rank: int, world: int):
        self.config = config
        self.index = index
        self.rank, self.world = rank, world
        self.dataset = self.make_dataset(storage)

    def make_dataset(self, storage: Storage) -> Any:
        raise NotImplementedError

    def loader_args(self) -> dict[str, Any]:
        """How the DataLoader batches the dataset (``batch_size``... or ``batch_sampler``)."""
        fw = self.config.framework
        return {"batch_size": fw.batch_size, "drop_last": fw.drop_last}

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def samples_per_epoch(self) -> int | None:
        """Samples in a full epoch (None when unknown)."""
        return len(self.index)

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """The bytes this rank must read in ``epoch``; None when epochs are partial by
        configuration (max_steps, drop_last, a max_samples cap)."""
        fw, tr = self.config.framework, self.config.training
        if fw.drop_last:
            return None
        if tr.max_steps is not None:
            n = self.samples_per_epoch()
            if n is None or tr.max_steps * fw.batch_size < n:
                return None
        return self.epoch_bytes(epoch)

    def epoch_bytes(self, epoch: int) -> int | None:
        """The bytes of this rank's share of a whole epoch: a contiguous block of the listing."""
        return int(self.index.sizes[split(len(self.index), self.rank, self.world)].sum())


class RandomAccess(Access):
    """``random``: the registered map-style dataset (``dataset.name``), one seeded permutation
    per epoch split by rank, batches built by :class:`EpochBatchSampler`."""

    def make_dataset(self, storage: Storage) -> Any:
        cfg = self.config
        dataset = DATASETS.get(cfg.dataset.name, "pytorch")(index=self.index, storage=storage, config=cfg.dataset)
        fw, max_steps = cfg.framework, cfg.training.max_steps
        limit = max_steps * fw.batch_size if max_steps is not None else None
        self.sampler = EpochBatchSampler(len(dataset), fw.batch_size, fw.shuffle, cfg.execution.seed, limit,
                                         fw.drop_last, self.rank, self.world)
        return dataset

    def loader_args(self) -> dict[str, Any]:
        return {"batch_sampler": self.sampler}

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def samples_per_epoch(self) -> int | None:
        return self.sampler.num_samples()

    def epoch_bytes(self, epoch: int) -> int | None:
        limit = self.sampler.limit
        if limit is not None and limit < len(split(len(self.index), self.rank, self.world)):
            return None
        return int(self.index.sizes[self.sampler.epoch_indices(epoch)].sum())


class SequentialAccess(Access):
    """``sequential``: listing order, one read per object, contiguous blocks per rank then worker."""

    def make_dataset(self, storage: Storage) -> Any:
        return SequentialDataset(self.index, storage, self.config.dataset, seed=self.config.execution.seed,
                                 rank=self.rank, world=self.world)


class ShardAccess(Access):
    """``shards``: tar shards in a seeded order per epoch, split by rank then worker, samples
    mixed in ``dataset.shuffle_buffer``."""

    def make_dataset(self, storage: Storage) -> Any:
        cfg = self.config
        return ShardDataset(self.index, storage, cfg.dataset, seed=cfg.execution.seed, rank=self.rank,
                            world=self.world, shuffle_buffer=cfg.dataset.shuffle_buffer)

    def samples_per_epoch(self) -> int | None:
        """The packed sample count (None when unknown: shards packed without index.json)."""
        counts = getattr(self.index, "shard_samples", None) or [None]
        return None if None in counts else int(sum(counts))

    def epoch_bytes(self, epoch: int) -> int | None:
        """This rank's shards of the epoch's order, whole (their tar bytes)."""
        order = np.random.default_rng([self.config.execution.seed, epoch]).permutation(len(self.index))
        return int(self.index.sizes[order[split(len(order), self.rank, self.world)]].sum())


ACCESS: dict[str, type[Access]] = {"random": RandomAccess, "sequential": SequentialAccess, "shards": ShardAccess}


def access_for(config: Any, index: SampleIndex, storage: Storage, rank: int = 0, world: int = 1) -> Access:
    """The access of ``dataset.access`` over ``index`` for this rank."""
    return ACCESS[config.dataset.access](config, index, storage, rank, world)
