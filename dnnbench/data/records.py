"""The sample index of files holding many samples: one row per sample (its file, its place in
the file, the byte range it is read from), built by asking the format where each file's samples
are (:meth:`dnnbench.formats.base.Format.index`) through ranged reads.

The file index (:class:`~dnnbench.data.index.SampleIndex`: one row per listed object, its label
from the layout) stays what listing made; this one hangs from it as ``index.records``. Random
access reads sample ``i`` as ``files.keys[file[i]]`` bytes ``[offset[i], offset[i] + length[i])``
(a range equal to the whole file is a plain GET).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnnbench import failures
from dnnbench.errors import RecordingError
from dnnbench.formats.base import FileIndex, Format
from dnnbench.formats.rangefile import RangeFile
from dnnbench.storage.base import Storage


@dataclass
class RecordIndex:
    """Per sample: ``file`` (row of the file index), ``item`` (its place in the file), ``offset``
    and ``length`` (the bytes it is read from); per file: ``metas`` (what decoding a range needs)."""

    file: np.ndarray
    item: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    metas: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.file)

    @classmethod
    def from_files(cls, files: list[FileIndex]) -> "RecordIndex":
        counts = np.asarray([f.count for f in files], dtype=np.int64)
        file = np.repeat(np.arange(len(files), dtype=np.int64), counts)
        item = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if len(files) else \
            np.zeros(0, np.int64)
        offset = np.concatenate([f.offsets for f in files]) if files else np.zeros(0, np.int64)
        length = np.concatenate([f.lengths for f in files]) if files else np.zeros(0, np.int64)
        return cls(file, item, offset, length, [f.meta for f in files])

    def counts(self, files: int) -> np.ndarray:
        """Samples in each of ``files`` files."""
        return np.bincount(self.file, minlength=files).astype(np.int64)

    def whole(self, sizes: np.ndarray) -> np.ndarray:
        """Per sample: is its range the whole file (a plain GET)?"""
        return (self.offset == 0) & (self.length == sizes[self.file])

    def planned_bytes(self, sizes: np.ndarray, ranges: bool = True) -> np.ndarray:
        """Per sample, the bytes random access reads: its range, or (``ranges`` False: DLIO's
        readers) its whole file."""
        return self.length if ranges else sizes[self.file]


@dataclass
class IndexStats:
    """What locating the samples cost: seconds, ranged GETs, their bytes, samples found."""

    seconds: float = 0.0
    requests: int = 0
    bytes: int = 0
    samples: int = 0
    #: (key, why) of files that could not be indexed, left out with on_error: skip
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def index_file(storage: Storage, fmt: Format, key: str, size: int) -> tuple[FileIndex, int, int]:
    """Where the samples of one stored file are: (its FileIndex, ranged GETs sent, bytes read)."""
    f = RangeFile(storage, key, size)
    found = fmt.index(f, size)
    return found, f.requests, f.nbytes


def build_records(storage: Storage, fmt: Format, keys: list[str], sizes: np.ndarray, workers: int
                  ) -> tuple[list[FileIndex | None], IndexStats]:
    """Locate the samples of every file on ``workers`` threads (each read a recorded ranged GET).

    Returns one FileIndex per file (None for a file that could not be indexed, named in
    ``IndexStats.unreadable`` with why) and what it cost.
    """
    t0 = time.perf_counter()

    def one(i: int) -> tuple[FileIndex | None, int, int, str | None]:
        try:
            found, requests, nbytes = index_file(storage, fmt, keys[i], int(sizes[i]))
        except Exception as e:  # noqa: BLE001 - a bad file is named; an outage ends the run
            if failures.is_outage_error(e) or isinstance(e, RecordingError):
                raise
            return None, 0, 0, f"{type(e).__name__}: {e}"
        return found, requests, nbytes, None

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="index") as pool:
        results = list(pool.map(one, range(len(keys))))
    stats = IndexStats(time.perf_counter() - t0, sum(r[1] for r in results), sum(r[2] for r in results))
    stats.unreadable = [(keys[i], r[3]) for i, r in enumerate(results) if r[3] is not None]
    stats.samples = sum(r[0].count for r in results if r[0] is not None)
    return [r[0] for r in results], stats
