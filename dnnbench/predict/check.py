"""``predict --check``: run a sample of the grid for real, through the sweep machinery
(``multirun.plan`` + ``multirun.sweep``: every point a full run with its own folder), and compare
what each run measured with what the model predicted for it. The measured figures come from the
runs' own summary rows, never from the model.

The machine's load moves between the probe and the checked runs (a shared machine): right before
and right after each point runs, the cores one process per core gets and the load average are measured again
(:class:`LoadWatch`), and the point is also predicted at that load (``model.at_load``), labelled
``predicted_at_load``, beside the prediction made at the probe's load.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from dnnbench.config.loading import LoadedConfig, load_config
from dnnbench.events import Events
from dnnbench.predict.grid import GridPoint
from dnnbench.predict.machine import available_cores
from dnnbench.predict.model import Probe, at_load, predict

#: seconds of spinning before each checked point (one process per core)
LOAD_SECONDS = 0.3


class LoadWatch:
    """Forwards the sweep's events; right before and right after each point runs, measures the
    cores one process per core gets and the 1-minute load average (``seen``: label -> the mean
    of the two)."""

    def __init__(self, inner: Events) -> None:
        self._inner = inner
        self.seen: dict[str, dict[str, float]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def variant_start(self, n: int, runs: int, label: str, *rest: Any) -> None:
        self.seen[label] = _load_now()
        self._forward("variant_start", n, runs, label, *rest)

    def variant_end(self, n: int, runs: int, label: str, *rest: Any) -> None:
        before, after = self.seen.get(label), _load_now()
        self.seen[label] = {k: (before[k] + v) / 2 for k, v in after.items()} if before else after
        self._forward("variant_end", n, runs, label, *rest)

    def _forward(self, name: str, *args: Any) -> None:
        fn = getattr(self._inner, name, None)
        if fn is not None:
            fn(*args)


def _load_now() -> dict[str, float]:
    return {"check_free_cores": available_cores(LOAD_SECONDS), "check_load_average_1m": os.getloadavg()[0]}


def sample(points: list[GridPoint], n: int) -> list[GridPoint]:
    """Up to ``n`` points spread evenly over the grid (first and last included), single-accelerator
    ones only (more accelerators run as ``au-search`` does, not as a sweep)."""
    single = [g for g in points if g.point.accelerators == 1]
    if len(single) <= n:
        return single
    if n <= 1:
        return single[:1]
    step = (len(single) - 1) / (n - 1)
    return [single[round(i * step)] for i in range(n)]


def run_check(loaded: LoadedConfig, overrides: list[str], chosen: list[GridPoint], out_dir: Path,
              events: Events, repeat: int = 1) -> tuple[dict[str, dict[str, Any]], bool]:
    """Run every chosen point ``repeat`` times (a sweep in ``out_dir``): label -> its measured row
    (:func:`median_row`; empty: no row), and whether the sweep was interrupted (the points run so
    far are kept).

    Raises:
        ConfigError: a point's config is invalid (nothing has run).
    """
    from dnnbench.multirun import plan as sweep_plan
    from dnnbench.multirun.sweep import run_sweep
    from dnnbench.results import read_row

    variants = [{"label": g.label, "set": {k: v for k, v in g.overrides.items() if k != "accelerators"}}
                for g in chosen]
    extra = [f"sweep={json.dumps({'variants': variants})}", f"repeat={repeat}", f"metrics.output_dir={out_dir}"]
    with_sweep = load_config(loaded.path, [*overrides, *extra])
    watch = LoadWatch(events)
    result = run_sweep(sweep_plan.plan(with_sweep, [*overrides, *extra]), watch,  # type: ignore[arg-type]
                       sweep_id="check")
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in result.runs:
        runs.setdefault(r.variant, []).append({**(read_row(r.run_dir) or {}), "run_dir": str(r.run_dir or "")})
    return {label: {**median_row(rows), **watch.seen.get(label, {})} for label, rows in runs.items()}, \
        result.interrupted


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A point's runs as one row: the run with the median samples/s (its figures and folder), and
    ``check_runs``, ``measured_min_samples_per_s`` and ``measured_max_samples_per_s`` over the runs
    that measured (one run of a few tenths of a second moves by a third from one run to the next)."""
    measured = sorted((r for r in rows if _float(r.get("samples_per_s")) is not None),
                      key=lambda r: _float(r.get("samples_per_s")) or 0.0)
    if not measured:
        return {**(rows[0] if rows else {}), "check_runs": 0}
    rates = [_float(r["samples_per_s"]) for r in measured]
    return {**measured[(len(measured) - 1) // 2], "check_runs": len(measured),
            "measured_min_samples_per_s": rates[0], "measured_max_samples_per_s": rates[-1]}


def error_percent(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / measured, in %; None when either is missing."""
    if predicted is None or not measured:
        return None
    return 100.0 * (predicted - measured) / measured


def merge(rows: list[dict[str, Any]], measured: dict[str, dict[str, Any]], probe: Probe | None = None,
          points: list[GridPoint] | None = None) -> None:
    """Add each checked point's measured figures and the error of the prediction to its row; with
    the probe and the points, also the prediction at the load seen before the point ran."""
    by_label = {g.label: g for g in points or []}
    for row in rows:
        m = measured.get(row["point"])
        if m is None:
            continue
        for col in ("samples_per_s", "MiB_per_s", "au_percent"):
            row[f"measured_{col}"] = _float(m.get(col))
        row["run_dir"] = m.get("run_dir")
        for col in ("check_runs", "measured_min_samples_per_s", "measured_max_samples_per_s"):
            row[col] = m.get(col)
        row["error_percent"] = error_percent(row["predicted_samples_per_s"], row["measured_samples_per_s"])
        row["check_free_cores"] = m.get("check_free_cores")
        row["check_load_average_1m"] = m.get("check_load_average_1m")
        g = by_label.get(row["point"])
        if probe is not None and g is not None and row["check_free_cores"] is not None:
            moved = predict(at_load(probe, row["check_free_cores"]), g.point)
            row["predicted_at_load_samples_per_s"] = moved.samples_per_s
            row["error_at_load_percent"] = error_percent(moved.samples_per_s, row["measured_samples_per_s"])


def _float(v: Any) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def summary(rows: list[dict[str, Any]], key: str = "error_percent", what: str = "check") -> str | None:
    """``median |error| X %, max Y % over N points`` (None: nothing was checked)."""
    errors = [abs(r[key]) for r in rows if r.get(key) is not None]
    if not errors:
        return None
    within = sum(e <= 15 for e in errors)
    return (f"{what}: median |error| {statistics.median(errors):.1f} %, max {max(errors):.1f} % over "
            f"{len(errors)} points ({within} within 15 %)")


def spread_line(rows: list[dict[str, Any]]) -> str | None:
    """How far a checked point's own runs were apart: median and max of (max - min) / median, %
    (None: no point ran more than once)."""
    spreads = [100.0 * (r["measured_max_samples_per_s"] - r["measured_min_samples_per_s"]) / r["measured_samples_per_s"]
               for r in rows if (r.get("check_runs") or 0) > 1 and r.get("measured_samples_per_s")]
    if not spreads:
        return None
    runs = max(r.get("check_runs") or 0 for r in rows)
    return (f"measured: the median of {runs} runs a point; the runs of a point were {statistics.median(spreads):.1f} % "
            f"apart (median; max {max(spreads):.1f} %)")


def load_line(probe: Probe, rows: list[dict[str, Any]]) -> str | None:
    """The load the probe saw and the load the checked points saw (None: nothing was checked)."""
    seen = [r for r in rows if r.get("check_free_cores") is not None]
    if not seen:
        return None
    cores = [r["check_free_cores"] for r in seen]
    loads = [r["check_load_average_1m"] for r in seen]
    return (f"load: the probe got {probe.free_cores:.2f} of {probe.cores:g} cores (load average "
            f"{probe.load_average:.1f}); the checked points {min(cores):.2f}-{max(cores):.2f} "
            f"(load average {min(loads):.1f}-{max(loads):.1f})")
