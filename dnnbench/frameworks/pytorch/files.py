"""PyTorch datasets over files holding many samples (``dataset.format``), read as real loaders
read them (the plan of each epoch is :class:`dnnbench.frameworks.fileplan.FilePlan`'s):

- :class:`RecordDataset` (``access: random``): map-style, item = one sample row of the file
  index; one request per sample: a ranged GET of its bytes (a GET when its range is the whole
  file), decoded by the format; batches from :class:`PlanBatchSampler`;
- :class:`FileStreamDataset` (``access: sequential``): iterable, each file of the worker's block
  streamed once and its samples decoded in file order; each sample carries the storage bytes
  that arrived with it (a file's samples add up to its size).

A sample is ``(array, label, bytes)`` (the label: the layout's, per file); a failure is a
:class:`~dnnbench.frameworks.common.Failure` naming ``<file key>:<item>`` or the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from dnnbench import failures
from dnnbench.data.index import SampleIndex
from dnnbench.formats.base import DecodeSpec, Format
from dnnbench.formats.read import decode_spec, iter_file, make_format, read_record, sample_key
from dnnbench.frameworks.common import Failure, mark_epoch
from dnnbench.frameworks.fileplan import FilePlan
from dnnbench.formats.select import is_file_format
from dnnbench.frameworks.pytorch import access
from dnnbench.frameworks.pytorch.access import Access
from dnnbench.storage.base import Storage


class RecordDataset(Dataset):
    """Map-style over the samples of files: ``(epoch, row)`` -> one read of that sample's range."""

    def __init__(self, plan: FilePlan, storage: Storage, fmt: Format, decode: DecodeSpec):
        rec = plan.records
        self.keys, self.labels = plan.files.keys, plan.files.labels.tolist()
        self.file, self.item = rec.file.tolist(), rec.item.tolist()
        self.offset, self.length = rec.offset.tolist(), rec.length.tolist()
        self.metas, self.whole = rec.metas, plan.whole().tolist()
        self.storage, self.format, self.decode = storage, fmt, decode

    def __len__(self) -> int:
        return len(self.file)

    def __getitem__(self, item: Any) -> Any:
        epoch, i = item if isinstance(item, tuple) else (None, item)
        if epoch is not None:
            mark_epoch(self.storage, epoch)
        f = self.file[i]
        sample, _, nbytes, reason, _ = read_record(self.storage, self.format, self.keys[f], self.offset[i],
                                                   self.length[i], self.whole[i], self.metas[f], self.item[i],
                                                   self.decode)
        if reason:  # named in the main process, no worker traceback
            return Failure(sample_key(self.keys[f], self.item[i]), reason)
        return sample, self.labels[f], nbytes


class PlanBatchSampler(Sampler):
    """Batches of ``(epoch, row)``: this rank's block of the epoch's sample order, at most ``limit``."""

    def __init__(self, plan: FilePlan, batch_size: int, drop_last: bool, rank: int, world: int,
                 limit: int | None = None):
        self.plan, self.batch_size, self.drop_last = plan, batch_size, drop_last
        self.rank, self.world, self.limit = rank, world, limit
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_rows(self, epoch: int) -> np.ndarray:
        rows = self.plan.rank_samples(epoch, self.rank, self.world, self.limit)
        return rows[: len(rows) - len(rows) % self.batch_size] if self.drop_last else rows

    def num_samples(self) -> int:
        n = self.plan.rank_sample_count(self.rank, self.world)
        n = n if self.limit is None else min(n, self.limit)
        return n - n % self.batch_size if self.drop_last else n

    def __len__(self) -> int:
        return (self.num_samples() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        rows, epoch, b = self.epoch_rows(self.epoch).tolist(), self.epoch, self.batch_size
        for start in range(0, len(rows), b):
            yield [(epoch, i) for i in rows[start:start + b]]


class FileStreamDataset(IterableDataset):
    """Iterable: each file of this worker's block read whole once, its samples decoded in order.

    The epoch reaches workers as in the shard dataset: a fresh worker copy sees the epoch set in
    the main process; a persistent worker counts its own ``__iter__`` calls.
    """

    def __init__(self, plan: FilePlan, storage: Storage, fmt: Format, decode: DecodeSpec, rank: int = 0,
                 world: int = 1):
        self.plan, self.storage, self.format, self.decode = plan, storage, fmt, decode
        self.rank, self.world = rank, world
        self.epoch, self._iters = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._iters = epoch, 0

    def _begin(self) -> tuple[int, int, int]:
        info = get_worker_info()
        if info is None:
            return self.epoch, 0, 1
        epoch = self.epoch + self._iters
        self._iters += 1
        return epoch, info.id, info.num_workers

    def __iter__(self):
        epoch, worker, workers = self._begin()
        mark_epoch(self.storage, epoch)
        files = self.plan.files
        for f in self.plan.rank_files(epoch, self.rank, self.world, worker, workers).tolist():
            key, label = files.keys[f], int(files.labels[f])
            try:
                for sample, _, nbytes in iter_file(self.storage, self.format, key, self.decode,
                                                   self.plan.sample_rng(epoch, f)):
                    yield sample, label, nbytes
            except Exception as e:  # a broken or unreachable file is named, not a worker traceback
                reason = failures.read_failure(e, failures.BAD_SHARD)
                yield Failure(key, reason)
                if failures.is_fatal(reason):
                    return


class FileAccess(Access):
    """``dataset.format`` files, random (:class:`RecordDataset`) or sequential (:class:`FileStreamDataset`)."""

    def make_dataset(self, storage: Storage) -> Any:
        cfg = self.config
        records = getattr(self.index, "records", None)
        self.plan = FilePlan(self.index, records, cfg.dataset, cfg.execution.seed)
        fmt, decode = make_format(cfg.dataset), decode_spec(cfg.dataset)
        self.random = cfg.dataset.access == "random"
        if not self.random:
            return FileStreamDataset(self.plan, storage, fmt, decode, self.rank, self.world)
        fw, max_steps = cfg.framework, cfg.training.max_steps
        limit = max_steps * fw.batch_size if max_steps is not None else None
        self.sampler = PlanBatchSampler(self.plan, fw.batch_size, fw.drop_last, self.rank, self.world, limit)
        return RecordDataset(self.plan, storage, fmt, decode)

    def loader_args(self) -> dict[str, Any]:
        return {"batch_sampler": self.sampler} if self.random else super().loader_args()

    def set_epoch(self, epoch: int) -> None:
        (self.sampler if self.random else self.dataset).set_epoch(epoch)

    def samples_per_epoch(self) -> int | None:
        """Random: this rank's samples; sequential: unknown before the files are read (no index)."""
        return self.sampler.num_samples() if self.random else None

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """The bytes of a whole epoch's plan; None when epochs are partial by configuration."""
        fw, tr = self.config.framework, self.config.training
        if fw.drop_last or (tr.max_steps is not None and (not self.random or self.sampler.limit
                                                           < self.plan.rank_sample_count(self.rank, self.world))):
            return None
        return self.epoch_bytes(epoch)

    def epoch_bytes(self, epoch: int) -> int | None:
        """Random: the bytes of this rank's sample ranges; sequential: its files, whole."""
        if self.random:
            return self.plan.sample_bytes(self.sampler.epoch_rows(epoch))
        return self.plan.file_bytes(self.plan.rank_files(epoch, self.rank, self.world))


def access_for(config: Any, index: SampleIndex, storage: Storage, rank: int = 0, world: int = 1) -> Access:
    """The access of the run: :class:`FileAccess` for files of many samples, else ``dataset.access``'s."""
    if is_file_format(config.dataset):
        return FileAccess(config, index, storage, rank, world)
    return access.access_for(config, index, storage, rank, world)
