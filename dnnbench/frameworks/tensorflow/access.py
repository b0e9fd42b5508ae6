"""How a TensorFlow run reads its samples: one small class per ``dataset.access``, chosen in
one place (:func:`access_for`). Each adjusts the tf.data plan, builds the dataset, gives the
order of an epoch's indices, and knows an epoch's samples and bytes (the byte self-check).

One process reads every row (rank 0 of 1). This is the seam for the access strategies to
come: a new one is a class here and a line in :data:`ACCESS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.frameworks.tensorflow.datasets import ShardDataset
from dnnbench.frameworks.tensorflow.plan import LoaderPlan, epoch_order, samples_per_epoch
from dnnbench.registry import DATASETS
from dnnbench.storage.base import Storage


class Access:
    """``random``: the registered dataset (``dataset.name``), a seeded permutation per epoch
    (or tf.data's shuffle buffer over listing order)."""

    def __init__(self, config: Any, index: SampleIndex, storage: Storage, plan: LoaderPlan):
        self.config = config
        self.index = index
        self.plan = self.adjust(plan)
        self.dataset = self.make_dataset(storage)

    def adjust(self, plan: LoaderPlan) -> LoaderPlan:
        """The tf.data plan for this access."""
        return plan

    def make_dataset(self, storage: Storage) -> Any:
        cfg = self.config
        return DATASETS.get(cfg.dataset.name, "tensorflow")(index=self.index, storage=storage, config=cfg.dataset)

    def samples_per_epoch(self) -> int | None:
        p = self.plan
        return samples_per_epoch(len(self.index), p.batch_size, p.drop_last, p.limit)

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """Every listed object, unless epochs are partial by configuration (max_steps, drop_last)."""
        if self.samples_per_epoch() != len(self.index):
            return None
        return self.index.total_bytes

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch``, in the order the pipeline reads them."""
        p = self.plan
        if p.shuffle_buffer:  # tf.data shuffles listing order itself (and applies the limit after)
            return epoch_order(len(self.index), False, p.seed, epoch)
        return epoch_order(len(self.index), p.shuffle, p.seed, epoch, p.limit)


class SequentialAccess(Access):
    """``sequential``: listing order, no shuffle, deterministic."""

    def adjust(self, plan: LoaderPlan) -> LoaderPlan:
        return dataclasses.replace(plan, shuffle=False, shuffle_buffer=None, deterministic=True)


class ShardAccess(Access):
    """``shards``: the shard order shuffled per epoch from the seed, samples mixed in
    ``dataset.shuffle_buffer`` (see :class:`ShardDataset`)."""

    def adjust(self, plan: LoaderPlan) -> LoaderPlan:
        return dataclasses.replace(plan, shuffle=True, shuffle_buffer=None)

    def make_dataset(self, storage: Storage) -> Any:
        return ShardDataset(self.index, storage, self.config.dataset, shuffle_buffer=self.config.dataset.shuffle_buffer)

    def samples_per_epoch(self) -> int | None:
        """The packed sample count (None when unknown: shards packed without index.json), as under PyTorch."""
        counts = getattr(self.index, "shard_samples", None) or [None]
        return None if None in counts else int(sum(counts))

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """All shards (their tar bytes), unless epochs are partial by configuration."""
        p, n = self.plan, self.samples_per_epoch()
        if p.drop_last or (p.limit is not None and (n is None or p.limit < n)):
            return None
        return self.index.total_bytes

    def order(self, epoch: int) -> np.ndarray:
        return self.dataset.shard_order(self.plan.seed, epoch)


ACCESS: dict[str, type[Access]] = {"random": Access, "sequential": SequentialAccess, "shards": ShardAccess}


def access_for(config: Any, index: SampleIndex, storage: Storage, plan: LoaderPlan) -> Access:
    """The access of ``dataset.access`` over ``index``, with its tf.data plan."""
    return ACCESS[config.dataset.access](config, index, storage, plan)
