"""Per-request records, written by whichever process made the request.

The hot path takes no lock and shares nothing: each process (main or loader
worker) appends rows to its own list and flushes them to its own part file
(``requests-<pid>.part``: marshal chunks, about 5x cheaper to write than CSV rows,
which matters inside loader workers) when the list grows, when the process exits
(a multiprocessing finalizer, which runs for fork, spawn and forkserver workers),
or when the main process asks. The report merges the parts into requests.csv.

Timestamps are ``time.perf_counter()`` values: CLOCK_MONOTONIC on Linux, one
clock for every process on the machine.
"""

from __future__ import annotations

import marshal
import os
import random
import threading
from dataclasses import dataclass
from multiprocessing import util as mp_util
from pathlib import Path

from dnnbench.errors import RecordingError

COLUMNS = ["op", "key", "pid", "worker", "epoch", "start", "ttfb", "end", "bytes",
           "decode_s", "error", "retries"]
_FLUSH_EVERY = 20_000


@dataclass(frozen=True)
class RecorderSpec:
    """What crosses into loader workers: where and how to record, no live state."""

    directory: str
    mode: str = "all"  # all | sampled | off
    rate: float = 0.1
    seed: int = 0


class RequestRecorder:
    """Buffers request rows for the current process."""

    def __init__(self, spec: RecorderSpec):
        self.spec = spec
        self.epoch = 0
        self.worker = -1
        self._pid = os.getpid()
        self._rows: list[list] = []
        self._finalizer = None
        self._lock = threading.Lock()  # appends and flushes: threads of one process take turns
        self._rng = random.Random(spec.seed ^ self._pid)
        self._keep_all = spec.mode == "all"
        self._off = spec.mode == "off"
        self.count = 0
        self.errors = 0
        self.bytes = 0
        self.lost = 0  # rows that could not be written (a full disk)

    def add(self, op: str, key: str, start: float, ttfb: float | None, end: float, nbytes: int,
            error: str | None = None, retries: int = 0) -> list | None:
        """Record one request; returns the row (to attach decode time) or None if not kept.

        Safe from several threads of one process (``dataset.requests_in_flight`` > 1): counts
        and rows change under the recorder's lock (uncontended: a fraction of a microsecond).
        """
        with self._lock:
            self.count += 1
            self.bytes += nbytes
            if error is not None:
                self.errors += 1
            elif self._off or (not self._keep_all and self._rng.random() >= self.spec.rate):
                return None
            row = [op, key, self._pid, self.worker, self.epoch, start, ttfb, end, nbytes, None, error, retries]
            self._rows.append(row)
            full = len(self._rows) >= _FLUSH_EVERY
        if self._finalizer is None:
            self._finalizer = mp_util.Finalize(self, self._flush_at_exit, exitpriority=10)
        if full:
            self.flush()
        return row

    def flush(self) -> None:
        """Append buffered rows to this process's part file (threads of one process take turns).

        Raises:
            RecordingError: the rows could not be written (they are dropped and counted in ``lost``:
                a full disk must not grow memory as well).
        """
        if not self._rows:
            return
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        path = Path(self.spec.directory) / f"requests-{self._pid}.part"
        try:
            append_part(path, rows)
        except OSError as e:
            self.lost += len(rows)
            raise RecordingError(e.errno, f"cannot write request rows to {path}: {e.strerror or e}") from None

    def _flush_at_exit(self) -> None:
        """The process is ending (a loader worker stopped): write what is buffered; a failure
        here has no one to tell (the main process finds the rows missing), so it is quiet."""
        try:
            self.flush()
        except OSError:
            pass


def append_part(path: Path, rows: list[list]) -> None:
    """Append one chunk of request rows (lists in COLUMNS order) to a part file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        chunk = marshal.dumps(rows)
    except ValueError:  # a plugin put a numpy scalar (or similar) in a row: plain types only
        chunk = marshal.dumps([[_plain(v) for v in row] for row in rows])
    with open(path, "ab") as f:
        f.write(chunk)


def _plain(value):
    if value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_parts(directory: Path) -> list[list]:
    """Every request row of the part files under ``directory`` (COLUMNS order). A chunk torn by a
    process killed while writing it ends that file: the rows before it are kept."""
    rows: list[list] = []
    for path in sorted(Path(directory).glob("requests-*.part")):
        with open(path, "rb") as f:
            while True:
                try:
                    chunk = marshal.load(f)
                except (EOFError, ValueError, TypeError):
                    break
                if not isinstance(chunk, list):
                    break
                rows.extend(r for r in chunk if isinstance(r, list) and len(r) == len(COLUMNS))
    return rows


def read_rows(directory: Path) -> list[dict]:
    """The rows of :func:`read_parts` as dicts keyed by column name."""
    return [dict(zip(COLUMNS, row)) for row in read_parts(directory)]


_CURRENT: RequestRecorder | None = None


def get_recorder(spec: RecorderSpec | None) -> RequestRecorder | None:
    """The recorder of this process for ``spec``; a new one after a fork (pid change)."""
    global _CURRENT
    if spec is None:
        return None
    rec = _CURRENT
    if rec is not None and rec.spec is spec and rec._pid == os.getpid():
        return rec  # the hot path: same spec object, same process
    if rec is None or rec._pid != os.getpid() or rec.spec != spec:
        if rec is not None and rec._pid == os.getpid():
            rec.flush()
        rec = _CURRENT = RequestRecorder(spec)
    return rec


def flush_current() -> None:
    """Write this process's buffered rows.

    Raises:
        RecordingError: they could not be written (a full disk).
    """
    if _CURRENT is not None and _CURRENT._pid == os.getpid():
        _CURRENT.flush()
