"""Writing a planned dataset (:mod:`dnnbench.formats.sizes`) to any storage, files in
parallel, and how fast that went.

A builder turns one :class:`~dnnbench.formats.sizes.PlannedFile` into the objects to write: the
file itself first, then its sidecars (a TFRecord's DALI index); :func:`format_builder` makes one
from any :class:`~dnnbench.formats.base.Format` (its ``generate`` fed the file's own seeded RNG). Generation runs
before a run's measured phases (``prepare``), on the storage without latency emulation, and
reports its own MB/s.
"""

from __future__ import annotations

import os
import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from dnnbench.formats.base import Format
from dnnbench.formats.sizes import PlannedFile
from dnnbench.storage.base import Storage

#: one file's objects: (key, bytes), the data file first
Build = Callable[[PlannedFile], list[tuple[str, bytes]]]


def format_builder(fmt: Format) -> Build:
    """The builder of ``fmt``'s files: its ``generate`` on the file's spec and RNG, then its sidecars."""

    def build(spec: PlannedFile) -> list[tuple[str, bytes]]:
        data = fmt.generate(spec.rng(), spec.file_spec())
        return [(spec.key, data), *fmt.sidecars(spec.key, data)]

    return build


@dataclass
class GenerateStats:
    files: int
    samples: int
    bytes: int
    seconds: float

    @property
    def MB_per_s(self) -> float:  # noqa: N802 - unit in the name
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def MiB_per_s(self) -> float:  # noqa: N802
        return self.bytes / 2**20 / self.seconds if self.seconds > 0 else 0.0


def generate(storage: Storage, specs: Sequence[PlannedFile], build: Build, *, workers: int = 4,
             progress: Callable[[int, int], None] | None = None) -> GenerateStats:
    """Build and write every file of ``specs`` with ``workers`` threads.

    Args:
        progress: called with (files done so far, bytes written for this file) after each file.

    Returns:
        The files, samples and bytes written (sidecars included) and the wall time.
    """
    t0 = time.perf_counter()

    def one(spec: PlannedFile) -> int:
        written = 0
        for key, data in build(spec):
            storage.put(key, data)
            written += len(data)
        return written

    total = done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="generate") as pool:
        for n in pool.map(one, specs):
            total += n
            done += 1
            if progress is not None:
                progress(done, n)
    return GenerateStats(len(specs), sum(s.samples for s in specs), total, time.perf_counter() - t0)


def make_split_folders(storage: Storage, root: str, splits: Sequence[str] = ("train", "valid")) -> list[str]:
    """Create the (possibly empty) split folders DLIO lists at start-up, where the storage has
    folders (a filesystem); object stores have no empty folders, and need none.

    Returns:
        The folders created or already there.
    """
    made = []
    for split in splits:
        path = storage.local_path(posixpath.join(root, split) if root else split)
        if path is not None:
            os.makedirs(path, exist_ok=True)
            made.append(path)
    return made
