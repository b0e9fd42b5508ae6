"""Runs as concurrent processes released together (an AU search's emulated accelerators).

Each child loads its config and its framework, says it is ready, waits for the go, runs
(:func:`dnnbench.multirun.runs.run_in_process`) and leaves its run directory; the parent
starts them, releases them at once, waits for all (at most ``timeout_s`` after the go: then
SIGTERM, and each run writes what it measured, marked interrupted), and stops them all on
Ctrl-C. The children are independent jobs, not torch.distributed ranks.

Children are forked from the parent where the platform can (after the parent imported the
framework once, :func:`import_framework`, each starts in milliseconds instead of importing it
again), spawned elsewhere. Each writes its output to its own log file.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dnnbench import signals
from dnnbench.errors import EXIT_FAILED
from dnnbench.events import NullEvents

#: how long a child may take to load its config and framework, and to wait for the go
READY_TIMEOUT_S = 300.0
#: how long a stopped child may take to write what it measured before it is killed
STOP_GRACE_S = 30.0


@dataclass
class ChildSpec:
    """What one child runs (picklable: it crosses into spawned processes)."""

    config: str
    overrides: list[str]
    run_id: str
    tags: dict[str, Any]
    ready: str  # the file the child creates once loaded
    go: str  # the file whose creation releases every child
    log: str  # the child's stdout and stderr
    name: str = "run"
    argv: list[str] = field(default_factory=list)


def start_method() -> str:
    """fork where the platform has it: every child starts from the parent's already imported
    framework in milliseconds instead of importing it again (seconds each)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def import_framework(cfg: Any) -> None:
    """Import the config's framework runner module (torch or tensorflow), so children forked
    afterwards inherit it."""
    from dnnbench.frameworks import FRAMEWORK_RUNNERS

    importlib.import_module(FRAMEWORK_RUNNERS[cfg.framework.name].partition(":")[0])


def run_together(specs: list[ChildSpec], timeout_s: float, target: Callable[[ChildSpec], None] | None = None) -> None:
    """Start one process per spec, release them together once all are loaded (or one died),
    and wait for all of them; the runs' results are in their run directories. ``target`` is
    what each child runs (default :func:`child_main`: the spec's run).

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM; every child is stopped first.
    """
    ctx = multiprocessing.get_context(start_method())
    procs: list[Any] = []
    try:
        for spec in specs:
            proc = ctx.Process(target=target or child_main, args=(spec,), name=spec.name)
            proc.start()  # not a daemon: a run starts its own loader worker processes
            procs.append(proc)
        _barrier(procs, [Path(s.ready) for s in specs])
        for go in dict.fromkeys(s.go for s in specs):
            Path(go).touch()
        deadline = time.monotonic() + timeout_s
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()  # SIGTERM: the run stops and writes what it measured
                p.join(STOP_GRACE_S)
    except BaseException:
        _stop(procs)
        raise


def _stop(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(STOP_GRACE_S)
        if p.is_alive():
            p.kill()


def _barrier(procs: list[Any], ready: list[Path]) -> None:
    """Wait until every child has loaded its config and framework (or one has died)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(r.exists() for r in ready):
        if any(not p.is_alive() for p, r in zip(procs, ready) if not r.exists()):
            return  # it failed before the barrier; its run records why
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)


# -- the child process -------------------------------------------------------------
def child_main(spec: ChildSpec) -> None:
    """One child: its own log, load the config and the framework, wait for the go, run; the
    exit code is the run's."""
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):  # an independent job, not a rank
        os.environ.pop(var, None)
    fd = os.open(spec.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(_child_run(spec))


def _child_run(spec: ChildSpec) -> int:
    from dnnbench.config.loading import load_config
    from dnnbench.multirun.runs import run_in_process

    signal.signal(signal.SIGTERM, signals.interrupt)
    try:
        loaded = load_config(spec.config, spec.overrides)
        import_framework(loaded.config)
    finally:
        Path(spec.ready).touch()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not Path(spec.go).exists():
        if time.monotonic() > deadline:
            print("error: the start signal never came", file=sys.stderr)
            return EXIT_FAILED
        time.sleep(0.002)
    record = run_in_process(loaded, NullEvents(), spec.run_id, spec.tags, spec.argv)
    if record.error is not None:
        print(f"error: {record.error}", file=sys.stderr)
    return record.exit_code
