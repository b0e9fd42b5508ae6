"""The epochs of a dataset of files holding many samples (``dataset.format``), the same under
PyTorch and TensorFlow: which files and samples a rank (and a loader worker) reads, in which
order, and the bytes that plan asks storage for (the byte check's expectation).

Orders follow DLIO's ``file_shuffle`` / ``sample_shuffle``: ``off`` listing order, ``seed`` one
seeded order for every epoch, ``random`` a new seeded order each epoch.

- **random** access: the epoch's samples are the files' samples, file after file in the file
  order, then (``sample_shuffle`` on) permuted across the whole epoch; a rank reads a contiguous
  block of that order, batches in order; each sample is one read of its range (its file's
  index says where);
- **sequential** access: the files in the file order, a contiguous block per rank then per
  loader worker; each file is read whole once and its samples are decoded in file order
  (``sample_shuffle`` on: handed on in a seeded order within the file).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.data.records import RecordIndex
from dnnbench.data.split import split
from dnnbench.formats.read import file_order, sample_rng


def order_epoch(mode: str, epoch: int) -> int | None:
    """The epoch a shuffle mode's order is drawn for: None (off), 0 (seed: every epoch alike), ``epoch``."""
    return None if mode == "off" else (0 if mode == "seed" else epoch)


class FilePlan:
    """The epochs of ``files`` (the listed files; ``records``: where each sample is, random access).

    Args:
        files: one row per file (key, layout label, listed size).
        records: one row per sample (random access), None for sequential access.
        dataset: the ``dataset`` config section (``file_shuffle``, ``sample_shuffle``).
        seed: ``execution.seed``.
    """

    def __init__(self, files: SampleIndex, records: RecordIndex | None, dataset: Any, seed: int):
        self.files = files
        self.records = records
        self.file_shuffle, self.sample_shuffle = dataset.file_shuffle, dataset.sample_shuffle
        self.seed = seed

    # -- files -----------------------------------------------------------------
    def file_order(self, epoch: int) -> np.ndarray:
        """The files of ``epoch`` in the order they are read."""
        e = order_epoch(self.file_shuffle, epoch)
        return file_order(len(self.files), e is not None, self.seed, e or 0)

    def rank_files(self, epoch: int, rank: int = 0, world: int = 1, worker: int = 0, workers: int = 1) -> np.ndarray:
        """The files one rank's loader worker reads in ``epoch``: a contiguous block of the order."""
        order = self.file_order(epoch)
        return order[split(len(order), rank, world, worker, workers)]

    def sample_rng(self, epoch: int, file: int) -> np.random.Generator | None:
        """The order of the samples within ``file`` (sequential access), or None (file order)."""
        e = order_epoch(self.sample_shuffle, epoch)
        return sample_rng(e is not None, self.seed, e or 0, file)

    def file_bytes(self, files: np.ndarray) -> int:
        """What reading ``files`` whole asks storage for: their listed sizes."""
        return int(self.files.sizes[files].sum())

    # -- samples (random access) -------------------------------------------------
    @property
    def samples(self) -> int:
        return len(self.records) if self.records is not None else 0

    def sample_order(self, epoch: int) -> np.ndarray:
        """The sample rows of ``epoch``: file after file in the file order, then permuted (sample_shuffle)."""
        rec = self._records()
        place = np.empty(len(self.files), dtype=np.int64)
        place[self.file_order(epoch)] = np.arange(len(self.files), dtype=np.int64)
        rows = np.argsort(place[rec.file], kind="stable").astype(np.int64)
        e = order_epoch(self.sample_shuffle, epoch)
        if e is None:
            return rows
        return rows[np.random.default_rng([self.seed, e, 3]).permutation(len(rows))]

    def rank_samples(self, epoch: int, rank: int = 0, world: int = 1, limit: int | None = None) -> np.ndarray:
        """The sample rows one rank reads in ``epoch`` (at most ``limit``)."""
        order = self.sample_order(epoch)
        mine = order[split(len(order), rank, world)]
        return mine if limit is None else mine[:limit]

    def rank_sample_count(self, rank: int = 0, world: int = 1) -> int:
        return len(split(self.samples, rank, world))

    def sample_bytes(self, rows: np.ndarray) -> int:
        """What reading the samples ``rows`` asks storage for: the bytes of their ranges."""
        return int(self._records().length[rows].sum())

    def whole(self) -> np.ndarray:
        """Per sample: its range is its whole file (read with a plain GET)."""
        return self._records().whole(self.files.sizes)

    def _records(self) -> RecordIndex:
        if self.records is None:
            raise RuntimeError("no sample index: random access over files needs one (sequential reads files whole)")
        return self.records
