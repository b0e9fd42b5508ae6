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

A measurement's AU is the minimum over its accelerators (``--criterion mean``: the mean).
Measurements are noisy, so the search (``dnnbench.multirun.au_boundary``) explores with one
measurement per count (doubling 1, 2, 4, ... then bisecting), re-measures the counts
either side of the boundary ``--repeats`` times (default 3), decides each on the mean of
its measurements, searches again when the repeats move the boundary, and states the
answer with its margin: each count's mean, stdev and range against the target. AU
should fall as accelerators are added; a count that feeds above one that did not, or a
rise of AU beyond the measured spread, is reported, never taken as the answer.
Every accelerator's run is a normal run (its own run directory and summary row, tagged
``sweep_id`` = the search id, ``variant`` = ``accelerators=N``, ``repeat`` = the
accelerator's index, counted on across a count's measurements); the tables are written
to ``<output_dir>/au-search-<id>/au_search.csv`` (one row per count) and
``au_search_runs.csv`` (one row per measurement).

Accelerators are processes released together (``dnnbench.multirun.processes``), forked from
the search process after it has imported the framework once (spawned where fork does not
exist), each logging to ``au-search-<id>/n<N>/accelerator-<k>.log``.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnbench.config.loading import LoadedConfig
from dnnbench.errors import ConfigError, RunFailed
from dnnbench.events import Events, NullEvents
from dnnbench.multirun.au_boundary import Boundary, Point, find
from dnnbench.multirun.processes import ChildSpec, import_framework, run_together, start_method
from dnnbench.multirun.runs import reserve, run_tags
from dnnbench.results import read_row, replace_text


#: the AU target when neither --target-au nor training.au_target_percent gives one (MLPerf's 90 %)
DEFAULT_TARGET = 90.0


@dataclass
class CountResult:
    """What N concurrent emulated accelerators measured once."""

    accelerators: int
    passed: bool
    min_au_percent: float | None = None
    mean_au_percent: float | None = None
    samples_per_s: float | None = None  # aggregate: the sum over accelerators
    MiB_per_s: float | None = None
    request_p99_ms: float | None = None  # the worst accelerator's
    failed: int = 0
    reason: str | None = None
    measurement: int = 1
    run_dirs: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "run_dirs"}

    def value(self, criterion: str) -> float | None:
        """The AU the criterion takes; None when a run failed (the measurement does not count)."""
        if self.failed:
            return None
        return self.min_au_percent if criterion == "min" else self.mean_au_percent


@dataclass
class SearchResult:
    search_id: str
    folder: Path
    target: float
    criterion: str
    max_accelerators: int
    repeats: int = 3
    counts: list[CountResult] = field(default_factory=list)  # every measurement, in order
    boundary: Boundary | None = None

    @property
    def best(self) -> int:
        """The largest count that fed (0: not even one)."""
        return self.boundary.best if self.boundary else 0

    @property
    def capped(self) -> bool:
        return self.best == self.max_accelerators

    def count_rows(self) -> list[dict[str, Any]]:
        """One row per count tried: its measurements reduced (means; the worst p99)."""
        rows = []
        for n in sorted({c.accelerators for c in self.counts}):
            rows.append(_count_row([c for c in self.counts if c.accelerators == n], self.target, self.criterion,
                                   self.boundary.points.get(n) if self.boundary else None))
        return rows


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _count_row(ms: list[CountResult], target: float, criterion: str, point: Point | None) -> dict[str, Any]:
    point = point or _point(ms, target, criterion)
    p99 = [m.request_p99_ms for m in ms if m.request_p99_ms is not None]
    return {"accelerators": ms[0].accelerators, "measurements": len(ms), "passed": point.passed,
            "au_percent": point.mean, "au_stdev": point.stdev, "au_low": point.low, "au_high": point.high,
            "min_au_percent": _mean([m.min_au_percent for m in ms]),
            "mean_au_percent": _mean([m.mean_au_percent for m in ms]),
            "samples_per_s": _mean([m.samples_per_s for m in ms]), "MiB_per_s": _mean([m.MiB_per_s for m in ms]),
            "request_p99_ms": max(p99) if p99 else None, "failed": sum(m.failed for m in ms),
            "reason": next((m.reason for m in ms if m.reason), None)}


def _point(ms: list[CountResult], target: float, criterion: str) -> Point:
    p = Point(ms[0].accelerators, target)
    for m in ms:
        p.add(m.value(criterion))
    return p


def search(loaded: LoadedConfig, overrides: list[str], compute_time_s: float | None, target: float | None = None,
           max_accelerators: int = 32, criterion: str = "min", events: Events | None = None,
           search_id: str | None = None, timeout_s: float = 600.0, repeats: int = 3) -> SearchResult:
    """Find the largest number of emulated accelerators whose AU stays at or above ``target``
    (default: the config's ``training.au_target_percent``, a DLIO workload's ``metric.au``; else 90).

    Raises:
        ConfigError: bad arguments, a config with a sweep, or no config file.
        RunFailed: a single accelerator could not run (the reason of its run).
    """
    from dnnbench.config.loading import load_config
    from dnnbench.config.plugins import check_plugin_names

    cfg = loaded.config
    compute = compute_time_s if compute_time_s is not None else cfg.training.compute_time_s
    target = target if target is not None else (cfg.training.au_target_percent or DEFAULT_TARGET)
    _check_args(loaded, compute, target, max_accelerators, criterion, repeats)
    events = events or NullEvents()
    sid, folder = reserve(cfg.metrics.output_dir, search_id, loaded.stem, "au-search")
    result = SearchResult(sid, folder, target, criterion, max_accelerators, repeats)
    sets = [*overrides, "training.trainer=emulate", f"training.compute_time_s={compute!r}"]
    emulated = load_config(loaded.path, sets)  # what every accelerator runs: bad input stops us here
    check_plugin_names(emulated.config)
    if start_method() == "fork":  # import the framework once; the accelerators inherit it
        import_framework(emulated.config)

    def measure(n: int) -> float | None:
        k = 1 + sum(1 for c in result.counts if c.accelerators == n)
        what = f"{n} accelerator{'s' if n > 1 else ''}" + (f" (run {k})" if k > 1 else "")
        events.phase_start(what)
        t0 = time.perf_counter()
        c = _measure(loaded, sets, n, k, sid, folder, target, criterion, timeout_s)
        result.counts.append(c)
        _write_tables(result)
        verdict = "feeds" if c.passed else ("failed: " + (c.reason or "") if c.failed else "below target")
        events.phase_end(what, time.perf_counter() - t0,
                         f"(min AU {_f(c.min_au_percent)} %, mean AU {_f(c.mean_au_percent)} %, "
                         f"{_f(c.samples_per_s)} samples/s, {_f(c.MiB_per_s, 2)} MiB/s: {verdict})")
        if n == 1 and c.failed:
            raise RunFailed(f"one emulated accelerator could not run: {c.reason}", reference=c.run_dirs[0]
                            if c.run_dirs else str(folder), hint="run the config once with `benchmark.py --config "
                                                                  "F` to see the error")
        return c.value(criterion)

    result.boundary = find(measure, target, max_accelerators, repeats)
    _write_tables(result)
    return result


def _f(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _check_args(loaded: LoadedConfig, compute: float, target: float, max_n: int, criterion: str,
                repeats: int) -> None:
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
    if repeats < 1:
        raise ConfigError("--repeats must be at least 1", reference="--repeats",
                          hint="3 (the default) shows how noisy the counts near the answer are")


def _measure(loaded: LoadedConfig, sets: list[str], n: int, k: int, sid: str, folder: Path, target: float,
             criterion: str, timeout_s: float) -> CountResult:
    """Start n accelerators (the k-th measurement of n), release them together, wait for all,
    reduce their rows."""
    tag = f"n{n}" if k == 1 else f"n{n}-m{k}"
    work = folder / tag
    work.mkdir(exist_ok=True)
    seed = loaded.config.execution.seed
    specs = [ChildSpec(config=str(loaded.path), overrides=[*sets, f"execution.seed={seed + (k - 1) * n + a}"],
                       run_id=f"{sid}-{tag}-a{a + 1}", tags=run_tags(sid, f"accelerators={n}", (k - 1) * n + a + 1),
                       ready=str(work / f"ready-{a}"), go=str(work / "go"), log=str(work / f"accelerator-{a + 1}.log"),
                       name=f"accelerator-{a + 1}", argv=["benchmark.py", "au-search"]) for a in range(n)]
    run_together(specs, timeout_s)
    out_dir = Path(loaded.config.metrics.output_dir)
    rows = [read_row(out_dir / s.run_id) for s in specs]
    c = _reduce(n, rows, [str(out_dir / s.run_id) for s in specs], work, target, criterion)
    c.measurement = k
    return c


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


def _write_tables(result: SearchResult) -> None:
    """``au_search.csv`` (one row per count) and ``au_search_runs.csv`` (one per measurement)."""
    _write_csv(result.folder / "au_search.csv", result.count_rows())
    _write_csv(result.folder / "au_search_runs.csv", [c.as_row() for c in result.counts])


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    replace_text(path, buf.getvalue())
