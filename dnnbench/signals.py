"""Stop signals (Ctrl-C's SIGINT, SIGTERM from ``kill``, Slurm, systemd or torchrun) as the
run sees them.

- :func:`interrupt` is SIGTERM's handler in a process that runs benchmarks (the CLI, an AU
  search's accelerator): SIGTERM stops the run as Ctrl-C does.
- The CLI's handlers :func:`note` each stop signal before raising, so code that catches an
  error caused by the stop (a loader worker that the same process-group SIGTERM ended) can
  tell it from a failure: :func:`stop_requested`.
- :func:`held` defers stop signals while a block that must finish runs (writing the report):
  the first one is noted and the block goes on; a second one raises, as the user insists.
- :func:`ignored` ignores them around the last, smallest record of a run.
- :func:`pause_point` lets the tests stop a run at a named point (``DNNBENCH_TEST_PAUSE``) to
  deliver a signal there; it does nothing otherwise.

Signals can only be handled in the main thread: elsewhere (an embedding application's worker
thread) these helpers leave the handlers alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from dnnbench.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: ``point:folder``: :func:`pause_point` ``point`` writes ``folder/paused`` and waits (tests only)
PAUSE_ENV = "DNNBENCH_TEST_PAUSE"
PAUSE_LIMIT_S = 60.0

_received: list[int] = []


def note(signum: int) -> None:
    """Remember that a stop signal reached this process."""
    _received.append(signum)


def interrupt(signum: int, frame: Any) -> None:
    """A stop signal's handler: note it and raise :class:`~dnnbench.errors.Interrupted` (a
    KeyboardInterrupt), so the run stops and writes what it measured, marked interrupted."""
    note(signum)
    raise Interrupted()


def stop_requested() -> bool:
    """Has a stop signal reached this process since :func:`reset`?"""
    return bool(_received)


def reset() -> None:
    """Forget earlier stop signals (a new run starts)."""
    _received.clear()


class Held:
    """What :func:`held` saw: the stop signals that arrived while it held them."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def _handler(self, signum: int, frame: Any) -> None:
        note(signum)
        self.received.append(signum)
        if len(self.received) > 1:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _is_stop_handler(handler: Any) -> bool:
    """A Python handler (Ctrl-C's default, or the CLI's) stops the run; SIG_IGN and SIG_DFL are kept."""
    return callable(handler)


@contextlib.contextmanager
def held() -> Iterator[Held]:
    """Defer stop signals inside the block; the caller reads ``.received`` afterwards."""
    state = Held()
    if not _main_thread():
        yield state
        return
    previous = {}
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        if _is_stop_handler(handler):
            previous[sig] = signal.signal(sig, state._handler)
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ignored() -> Iterator[None]:
    """Ignore stop signals inside the block (the last record of an interrupted run)."""
    if not _main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pause_point(name: str, pending: Held | None = None) -> None:
    """Tests only: when ``DNNBENCH_TEST_PAUSE`` is ``name:FOLDER[:N]``, write ``FOLDER/paused`` and
    wait until ``FOLDER/resume`` exists, N held stop signals (default 1) have arrived, or a minute
    has passed."""
    point, _, rest = os.environ.get(PAUSE_ENV, "").partition(":")
    if point != name or not rest:
        return
    folder, _, count = rest.partition(":")
    Path(folder, "paused").write_text(str(os.getpid()))
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while time.monotonic() < deadline and not Path(folder, "resume").exists():
        if pending is not None and len(pending.received) >= int(count or 1):
            return
        time.sleep(0.02)
