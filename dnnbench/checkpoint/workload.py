"""The checkpoint workload's timed loop, framework-neutral: the tensors are generated once,
before anything is timed; then N saves, the page cache dropped (or not: reported), N loads,
each load verified after its timing. Every save and load starts together on every rank (a
barrier) and is timed on each rank up to the end of its own work, as MLPerf Storage's
checkpointing benchmark does. The framework's :class:`Engine` does the I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from dnnbench.checkpoint.records import LOAD, SAVE, OpRecord
from dnnbench.config.limits import machine_memory_MiB
from dnnbench.events import Events
from dnnbench.storage import pagecache


class Engine(Protocol):
    """One framework's checkpoint writer and reader for this rank's shard."""

    payload_bytes: int  # this rank's tensors' bytes

    def generate(self) -> None:
        """Make this rank's tensors (and the ones loads fill), before anything is timed."""

    def save(self, index: int) -> int:
        """Write checkpoint ``index``; the bytes this rank's writes handed the storage."""

    def load(self, index: int) -> int:
        """Read checkpoint ``index`` back; the bytes the storage returned to this rank."""

    def verify(self, index: int) -> bool:
        """Whether the last load holds exactly checkpoint ``index``'s tensors (untimed)."""

    def local_files(self) -> list[str]:
        """This rank's checkpoint files on a local filesystem (none for S3)."""

    def remove(self) -> None:
        """Delete every checkpoint of the run (called on rank 0 once every rank is done)."""


def read_cache(dropped: bool, read_bytes: int, memory_bytes: int | None) -> str:
    """The state of the page cache before the reads: ``dropped`` (done, and confirmed where the
    files are local), ``exceeds_memory`` (not dropped, but the reads cover more than the
    machine's memory), else ``warm``."""
    if dropped:
        return "dropped"
    if memory_bytes is not None and read_bytes > memory_bytes:
        return "exceeds_memory"
    return "warm"


@dataclass
class Workload:
    """N saves then N loads of this rank's shard through ``engine``."""

    engine: Engine
    coordinator: Any  # run.coordinator.Coordinator: barrier(), info
    saves: int
    loads: int
    total_bytes: int
    drop_caches: bool
    events: Events
    clock: Callable[[], float] = time.perf_counter
    records: list[OpRecord] = field(default_factory=list)

    def run(self) -> list[OpRecord]:
        """Generate, save, drop the cache, load and verify; the records of every save and load."""
        self.engine.generate()
        for index in range(self.saves):
            self.records.append(self._timed(SAVE, index, self.engine.save))
        cache = self._cache_before_reads() if self.loads else None
        for index in range(self.loads):
            record = self._timed(LOAD, index, self.engine.load)
            verified = "ok" if self.engine.verify(index) else "mismatch"
            self.records.append(OpRecord(LOAD, index, record.rank, record.payload_bytes, record.bytes,
                                         record.duration_s, cache, verified))
        return self.records

    def _timed(self, op: str, index: int, work: Callable[[int], int]) -> OpRecord:
        """``work(index)`` started together on every rank, timed to the end of this rank's own."""
        self.coordinator.barrier()
        t0 = self.clock()
        nbytes = work(index)
        seconds = self.clock() - t0
        rank = self.coordinator.info.rank
        self.events.notice(f"checkpoint {op} {index}: {nbytes / 1e9:,.3f} GB in {seconds:.3f} s (rank {rank})")
        return OpRecord(op, index, rank, self.engine.payload_bytes, nbytes, seconds)

    def _cache_before_reads(self) -> str:
        """Drop the page cache when asked (every rank: once per machine is enough, twice is
        harmless), confirm it on local files, and say what the reads will meet."""
        self.coordinator.barrier()
        dropped = False
        if self.drop_caches:
            dropped, why = pagecache.drop_caches()
            if not dropped:
                self.events.warning(f"cannot drop the page cache before the reads: {why}; reads are labelled "
                                    "by what was measured")
            files = self.engine.local_files()
            if dropped and files and (pagecache.resident_fraction(files) or 0.0) > 0.05:
                self.events.warning("the page cache drop did not take effect (checkpoint files still resident)")
                dropped = False
        memory = machine_memory_MiB()
        read_set = self.total_bytes * self.loads
        return read_cache(dropped, read_set, memory * 2**20 if memory else None)
