"""AU search: how many accelerators can this storage feed? (MLPerf Storage's question.)

An emulated accelerator is one process running the config with the ``emulate`` trainer
(``training.compute_time_s`` of sleep per step in place of the accelerator's work), with
its own data loader. The accelerators are independent jobs sharing the storage: each
reads the whole dataset (or ``training.max_steps``) in its own order (``execution.seed``
+ its index), so the load each one asks of the storage stays the same as the count
grows. They are deliberately not torch.distributed ranks (no ``RANK``/``WORLD_SIZE``):
that would split one epoch between them and shrink each one's share as the count grows.
For a count N, N such processes load their config and framework, wait at a barrier,
start together and run to the end; each one's ``au_percent`` (AU = compute time / wall
time of the measured steps, warm-up excluded) comes from its own summary row.

A count *feeds* when the minimum AU over its accelerators (``--criterion mean``: the
mean) is at or above the target. The search doubles the count (1, 2, 4, ...) until a
count does not feed or ``max_accelerators`` is reached, then bisects between the last
count that fed and the first that did not; it assumes AU falls as accelerators are
added. Every accelerator's run is a normal run (its own run directory and summary
row, tagged ``sweep_id`` = the search id, ``variant`` = ``accelerators=N``, ``repeat`` =
the accelerator's index, 1 to N); the table of tried counts is also written to
``<output_dir>/au-search-<id>/au_search.csv``.

Accelerators are forked from the search process after it has imported the framework once
(spawned where fork does not exist), each logging to ``au-search-<id>/n<N>/accelerator-<k>.log``.
"""

from __future__ import annotations

import csv
import importlib
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnbench.config.loading import LoadedConfig
from dnnbench.errors import ConfigError, RunFailed
from dnnbench.events import Events, NullEvents

READY_TIMEOUT_S = 300.0


@dataclass
class CountResult:
    """What N concurrent emulated accelerators measured."""

    accelerators: int
    passed: bool
    min_au_percent: float | None = None
    mean_au_percent: float | None = None
    samples_per_s: float | None = None  # aggregate: the sum over accelerators
    MiB_per_s: float | None = None
    request_p99_ms: float | None = None  # the worst accelerator's
    failed: int = 0
    reason: str | None = None
    run_dirs: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "run_dirs"}


@dataclass
class SearchResult:
    search_id: str
    folder: Path
    target: float
    criterion: str
    max_accelerators: int
    counts: list[CountResult] = field(default_factory=list)

    @property
    def best(self) -> int:
        """The largest count that fed (0: not even one)."""
        return max([c.accelerators for c in self.counts if c.passed] + [0])

    @property
    def capped(self) -> bool:
        return self.best == self.max_accelerators

    def at(self, n: int) -> CountResult | None:
        return next((c for c in self.counts if c.accelerators == n), None)


def search(loaded: LoadedConfig, overrides: list[str], compute_time_s: float | None, target: float = 90.0,
           max_accelerators: int = 32, criterion: str = "min", events: Events | None = None,
           search_id: str | None = None, timeout_s: float = 600.0) -> SearchResult:
    """Find the largest number of emulated accelerators whose AU stays at or above ``target``.

    Raises:
        ConfigError: bad arguments, a config with a sweep, or no config file.
        RunFailed: a single accelerator could not run (the reason of its run).
    """
    from dnnbench.config.loading import load_config
    from dnnbench.executor import check_plugin_names
    from dnnbench.frameworks import FRAMEWORK_RUNNERS
    from dnnbench.sweep import reserve_id

    cfg = loaded.config
    compute = compute_time_s if compute_time_s is not None else cfg.training.compute_time_s
    _check_args(loaded, compute, target, max_accelerators, criterion)
    events = events or NullEvents()
    sid, folder = reserve_id(cfg.metrics.output_dir, search_id, loaded.stem, prefix="au-search")
    result = SearchResult(sid, folder, target, criterion, max_accelerators)
    sets = [*overrides, "training.trainer=emulate", f"training.compute_time_s={compute!r}"]
    emulated = load_config(loaded.path, sets)  # what every accelerator runs: bad input stops us here
    check_plugin_names(emulated.config)
    if _start_method() == "fork":  # import the framework once; the accelerators inherit it
        importlib.import_module(FRAMEWORK_RUNNERS[emulated.config.framework.name].partition(":")[0])

    def feeds(n: int) -> bool:
        events.phase_start(f"{n} accelerator{'s' if n > 1 else ''}")
        t0 = time.perf_counter()
        c = _measure(loaded, sets, n, sid, folder, target, criterion, timeout_s)
        result.counts.append(c)
        _write_table(result)
        verdict = "feeds" if c.passed else ("failed: " + (c.reason or "") if c.failed else "below target")
        events.phase_end(f"{n} accelerator{'s' if n > 1 else ''}", time.perf_counter() - t0,
                         f"(min AU {_f(c.min_au_percent)} %, mean AU {_f(c.mean_au_percent)} %, "
                         f"{_f(c.samples_per_s)} samples/s, {_f(c.MiB_per_s, 2)} MiB/s: {verdict})")
        if n == 1 and c.failed:
            raise RunFailed(f"one emulated accelerator could not run: {c.reason}", reference=c.run_dirs[0]
                            if c.run_dirs else str(folder), hint="run the config once with `benchmark.py --config "
                                                                  "F` to see the error")
        return c.passed

    lo, hi, n = 0, None, 1
    while n <= max_accelerators:
        if not feeds(n):
            hi = n
            break
        lo = n
        if n == max_accelerators:
            break
        n = min(2 * n, max_accelerators)
    while hi is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if feeds(mid) else (lo, mid)
    return result


def _f(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _check_args(loaded: LoadedConfig, compute: float, target: float, max_n: int, criterion: str) -> None:
    if loaded.path is None:
        raise ConfigError("au-search needs a config file", reference="--config")
    if loaded.config.sweep is not None:
        raise ConfigError("au-search runs one configuration; this config has a sweep: section",
                          reference="sweep", hint="remove the sweep, or pick one variant with --set")
    if not compute or compute <= 0:
        raise ConfigError("the emulated accelerator needs a compute time per step", reference="--compute-time-s",
                          hint="e.g. --compute-time-s 0.05 (or set training.compute_time_s in the config)")
    if not 0 < target <= 100:
        raise ConfigError(f"target AU {target:g} is not a percentage in (0, 100]", reference="--target-au")
    if max_n < 1:
        raise ConfigError("--max-accelerators must be at least 1", reference="--max-accelerators")
    if criterion not in ("min", "mean"):
        raise ConfigError(f"criterion {criterion!r}: use min or mean", reference="--criterion")


def _start_method() -> str:
    """fork where the platform has it: every accelerator starts from the parent's already
    imported framework in milliseconds instead of importing it again (seconds each)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _measure(loaded: LoadedConfig, sets: list[str], n: int, sid: str, folder: Path, target: float,
             criterion: str, timeout_s: float) -> CountResult:
    """Start n accelerators, release them together, wait for all, reduce their rows."""
    work = folder / f"n{n}"
    work.mkdir(exist_ok=True)
    go = work / "go"
    out_dir = Path(loaded.config.metrics.output_dir)
    ctx = multiprocessing.get_context(_start_method())
    seed = loaded.config.execution.seed
    procs, run_ids = [], []
    for rank in range(n):
        run_id = f"{sid}-n{n}-a{rank + 1}"
        run_ids.append(run_id)
        spec = {"config": str(loaded.path), "overrides": [*sets, f"execution.seed={seed + rank}"], "run_id": run_id,
                "ready": str(work / f"ready-{rank}"), "go": str(go), "log": str(work / f"accelerator-{rank + 1}.log"),
                "tags": {"sweep_id": sid, "variant": f"accelerators={n}", "repeat": rank + 1}}
        proc = ctx.Process(target=child_main, args=(spec,), name=f"accelerator-{rank + 1}")
        proc.start()  # not a daemon: an accelerator starts its own loader worker processes
        procs.append(proc)
    try:
        _barrier(procs, [work / f"ready-{r}" for r in range(n)])
        go.touch()
        deadline = time.monotonic() + timeout_s
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()  # SIGTERM: the run stops and writes what it measured
                p.join(30)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        raise
    rows = [_read_row(out_dir / rid) for rid in run_ids]
    return _reduce(n, rows, [str(out_dir / rid) for rid in run_ids], work, target, criterion)


def _barrier(procs: list[Any], ready: list[Path]) -> None:
    """Wait until every accelerator has loaded its config and framework (or one has died)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(r.exists() for r in ready):
        if any(not p.is_alive() for p, r in zip(procs, ready) if not r.exists()):
            return  # it failed before the barrier; its run records why
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _read_row(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "summary.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return next(csv.DictReader(f), None)


def _num(row: dict[str, Any], key: str) -> float | None:
    try:
        return float(row[key]) if row.get(key) not in (None, "") else None
    except ValueError:
        return None


def _reduce(n: int, rows: list[dict[str, Any] | None], run_dirs: list[str], work: Path, target: float,
            criterion: str) -> CountResult:
    c = CountResult(n, False, run_dirs=run_dirs)
    good = [r for r in rows if r is not None and r.get("status") == "ok" and _num(r, "au_percent") is not None]
    bad = [(i, r) for i, r in enumerate(rows) if r is None or r not in good]
    c.failed = len(bad)
    if bad:
        i, r = bad[0]
        c.reason = (r.get("reason") if r else None) or _log_tail(work / f"accelerator-{i + 1}.log") or \
            "no AU measured (no steps after the warm-up steps?)"
    if good:
        au = [_num(r, "au_percent") for r in good]
        c.min_au_percent, c.mean_au_percent = min(au), sum(au) / len(au)
        c.samples_per_s = sum(_num(r, "samples_per_s") or 0.0 for r in good)
        c.MiB_per_s = sum(_num(r, "MiB_per_s") or 0.0 for r in good)
        p99 = [x for x in (_num(r, "request_p99_ms") for r in good) if x is not None]
        c.request_p99_ms = max(p99) if p99 else None
        value = c.min_au_percent if criterion == "min" else c.mean_au_percent
        c.passed = not bad and value >= target
    return c


def _log_tail(path: Path) -> str | None:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


def _write_table(result: SearchResult) -> None:
    rows = [c.as_row() for c in sorted(result.counts, key=lambda c: c.accelerators)]
    tmp = result.folder / ".au_search.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    tmp.replace(result.folder / "au_search.csv")


# -- the accelerator process ------------------------------------------------------
def child_main(spec: dict[str, Any]) -> None:
    """One emulated accelerator: its own log, load the config and the framework, wait for
    the go, run; the exit code is the run's."""
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):  # an independent job, not a rank
        os.environ.pop(var, None)
    fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(_child_run(spec))


def _child_run(spec: dict[str, Any]) -> int:
    from dnnbench.config.loading import load_config
    from dnnbench.errors import Interrupted
    from dnnbench.executor import Executor
    from dnnbench.frameworks import FRAMEWORK_RUNNERS
    from dnnbench.sweep import record_failure

    def on_term(signum: int, frame: Any) -> None:
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_term)
    try:
        loaded = load_config(spec["config"], spec["overrides"])
        importlib.import_module(FRAMEWORK_RUNNERS[loaded.config.framework.name].partition(":")[0])
    finally:
        Path(spec["ready"]).touch()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not Path(spec["go"]).exists():
        if time.monotonic() > deadline:
            print("error: the search never gave the start signal", file=sys.stderr)
            return 1
        time.sleep(0.002)
    try:
        outcome = Executor(loaded, NullEvents(), run_id=spec["run_id"], tags=spec["tags"],
                           argv=["benchmark.py", "au-search"]).run()
    except Exception as e:  # noqa: BLE001 - recorded as this accelerator's failed run
        record_failure(loaded, spec["run_id"], spec["tags"], str(e))
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    if outcome.error is not None:
        print(f"error: {outcome.error}", file=sys.stderr)
    return outcome.exit_code
