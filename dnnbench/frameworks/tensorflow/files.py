"""tf.data pipelines over files holding many samples (``dataset.format``), the same plan as under
PyTorch (:class:`dnnbench.frameworks.fileplan.FilePlan`):

- :class:`RecordDataset` (``access: random``): the image pipeline over sample rows (map of a
  ``tf.numpy_function`` per batch or per sample), each sample one read of its range;
- :class:`FileStreamDataset` (``access: sequential``): the shard pipeline's generator streams
  (one per reader, interleaved) over blocks of the file order, each file read whole once and its
  samples decoded in order; no shuffle buffer (``sample_shuffle`` orders samples within a file).

Samples travel as their bytes (a flat uint8 view of the array: ``sample_shape`` is None); the
label is the layout's, per file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dnnbench import failures
from dnnbench.data.index import SampleIndex
from dnnbench.formats.base import DecodeSpec, Format
from dnnbench.formats.read import decode_spec, iter_file, make_format, read_record, sample_key
from dnnbench.formats.select import is_file_format
from dnnbench.frameworks.fileplan import FilePlan
from dnnbench.frameworks.tensorflow import access
from dnnbench.frameworks.tensorflow.access import Access
from dnnbench.frameworks.tensorflow.datasets import ImageFolderDataset, ShardDataset
from dnnbench.frameworks.tensorflow.plan import LoaderPlan, samples_per_epoch
from dnnbench.storage.base import Storage


def as_bytes(sample: Any) -> np.ndarray:
    """A sample as a flat uint8 view (no copy for a contiguous array)."""
    if isinstance(sample, (bytes, bytearray, memoryview)):
        return np.frombuffer(sample, dtype=np.uint8)
    return np.ascontiguousarray(sample).reshape(-1).view(np.uint8)


class SampleNames:
    """``<file key>:<item>`` of each sample row (how failures name a sample), computed on demand."""

    def __init__(self, keys: list[str], file: np.ndarray, item: np.ndarray):
        self.keys, self.file, self.item = keys, file, item

    def __len__(self) -> int:
        return len(self.file)

    def __getitem__(self, i: int) -> str:
        return sample_key(self.keys[int(self.file[i])], int(self.item[i]))


class RecordDataset(ImageFolderDataset):
    """The image pipeline over sample rows: each read is one ranged GET of a sample."""

    def __init__(self, plan: FilePlan, storage: Storage, config: Any, fmt: Format, decode: DecodeSpec):
        rec = plan.records
        self.keys = SampleNames(plan.files.keys, rec.file, rec.item)
        self.labels = np.asarray(plan.files.labels, dtype=np.int64)[rec.file]
        self.sizes = rec.length
        self.storage, self.config, self.decode, self.size = storage, config, config.decode, decode.size
        self.raw, self._builtin_raw = True, False
        self.file_keys, self.format, self.spec = plan.files.keys, fmt, decode
        self.rows = (rec.file, rec.item, rec.offset, rec.length, plan.whole())  # numpy columns: compact
        self.metas = rec.metas
        self.in_flight = 1  # the parent's read loop asks it; > 1 with a data format is refused at validation

    def __len__(self) -> int:
        return len(self.rows[0])

    def sample_shape(self) -> tuple[int, ...] | None:
        return None

    def _read(self, i: int, epoch: int, worker: int) -> tuple[np.ndarray | None, int, str]:
        file, item, offset, length = (int(col[i]) for col in self.rows[:4])
        sample, _, n, reason, row = read_record(self.storage, self.format, self.file_keys[file], offset, length,
                                                bool(self.rows[4][i]), self.metas[file], item, self.spec)
        if reason:
            return None, 0, reason
        if row is not None:
            row[3], row[4] = worker, epoch
        return as_bytes(sample), n, ""


class FileStreamDataset(ShardDataset):
    """The shard pipeline's streams over files: each file read whole once, samples in order."""

    def __init__(self, plan: FilePlan, storage: Storage, config: Any, fmt: Format, decode: DecodeSpec):
        super().__init__(plan.files, storage, config, shuffle_buffer=1)
        self.plan, self.format, self.spec = plan, fmt, decode
        self.raw, self._builtin_raw = True, False

    def sample_shape(self) -> tuple[int, ...] | None:
        return None

    def shard_order(self, seed: int, epoch: int) -> np.ndarray:
        return self.plan.file_order(epoch)

    def read_shards(self, shards: list[int], epoch: int):
        """Yield one element per sample of the files ``shards`` (runs in a tf.data thread; never raises)."""
        for f in shards:
            key, label = self.keys[f], np.int64(self.labels[f])
            try:
                for sample, _, nbytes in iter_file(self.storage, self.format, key, self.spec,
                                                   self.plan.sample_rng(epoch, f)):
                    yield {"key": key, "data": as_bytes(sample).tobytes(), "labels": label,
                           "nbytes": np.int64(nbytes), "error": b""}
            except Exception as e:  # a broken or unreachable file is named, not a thread traceback
                reason = failures.read_failure(e, failures.BAD_SHARD)
                yield {"key": key, "data": b"", "labels": label, "nbytes": np.int64(-1),
                       "error": reason.encode("utf-8", "replace")}
                if failures.is_fatal(reason):
                    return


class FileAccess(Access):
    """``dataset.format`` files: random (:class:`RecordDataset`) or sequential (:class:`FileStreamDataset`)."""

    def adjust(self, plan: LoaderPlan) -> LoaderPlan:
        """The order is the file plan's (DLIO's shuffles), not tf.data's."""
        self.random = self.config.dataset.access == "random"
        return dataclasses.replace(plan, shuffle=False, shuffle_buffer=None)

    def make_dataset(self, storage: Storage) -> Any:
        cfg = self.config
        self.files = FilePlan(self.index, getattr(self.index, "records", None), cfg.dataset, cfg.execution.seed)
        fmt, decode = make_format(cfg.dataset), decode_spec(cfg.dataset)
        if self.random:
            return RecordDataset(self.files, storage, cfg.dataset, fmt, decode)
        return FileStreamDataset(self.files, storage, cfg.dataset, fmt, decode)

    def samples_per_epoch(self) -> int | None:
        """Random: the samples of an epoch; sequential: unknown before the files are read (no index)."""
        p = self.plan
        return samples_per_epoch(self.files.samples, p.batch_size, p.drop_last, p.limit) if self.random else None

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """Random: the bytes of the epoch's sample ranges; sequential: every file, whole."""
        p = self.plan
        if self.random:
            full = self.samples_per_epoch() == self.files.samples
            return self.files.sample_bytes(self.order(epoch)) if full else None
        return None if p.drop_last or p.limit is not None else self.index.total_bytes

    def order(self, epoch: int) -> np.ndarray:
        if self.random:
            return self.files.rank_samples(epoch, 0, 1, self.plan.limit)
        return self.files.file_order(epoch)


def access_for(config: Any, index: SampleIndex, storage: Storage, plan: LoaderPlan) -> Access:
    """The access of the run: :class:`FileAccess` for files of many samples, else ``dataset.access``'s."""
    if is_file_format(config.dataset):
        return FileAccess(config, index, storage, plan)
    return access.access_for(config, index, storage, plan)
