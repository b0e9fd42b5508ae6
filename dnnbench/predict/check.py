"""``predict --check``: run a sample of the grid for real, through the sweep machinery
(``multirun.plan`` + ``multirun.sweep``: every point a full run with its own folder), and compare
what each run measured with what the model predicted for it. The measured figures come from the
runs' own summary rows, never from the model.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from dnnbench.config.loading import LoadedConfig, load_config
from dnnbench.events import Events
from dnnbench.predict.grid import GridPoint


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
              events: Events) -> tuple[dict[str, dict[str, Any]], bool]:
    """Run every chosen point once (a sweep in ``out_dir``): label -> its summary row (empty: no
    row), and whether the sweep was interrupted (the points run so far are kept).

    Raises:
        ConfigError: a point's config is invalid (nothing has run).
    """
    from dnnbench.multirun import plan as sweep_plan
    from dnnbench.multirun.sweep import run_sweep
    from dnnbench.results import read_row

    variants = [{"label": g.label, "set": {k: v for k, v in g.overrides.items() if k != "accelerators"}}
                for g in chosen]
    extra = [f"sweep={json.dumps({'variants': variants})}", "repeat=1", f"metrics.output_dir={out_dir}"]
    with_sweep = load_config(loaded.path, [*overrides, *extra])
    result = run_sweep(sweep_plan.plan(with_sweep, [*overrides, *extra]), events, sweep_id="check")
    rows = {r.variant: {**(read_row(r.run_dir) or {}), "run_dir": str(r.run_dir or "")} for r in result.runs}
    return rows, result.interrupted


def error_percent(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / measured, in %; None when either is missing."""
    if predicted is None or not measured:
        return None
    return 100.0 * (predicted - measured) / measured


def merge(rows: list[dict[str, Any]], measured: dict[str, dict[str, Any]]) -> None:
    """Add each checked point's measured figures and the error of the prediction to its row."""
    for row in rows:
        m = measured.get(row["point"])
        if m is None:
            continue
        for col in ("samples_per_s", "MiB_per_s", "au_percent"):
            row[f"measured_{col}"] = _float(m.get(col))
        row["run_dir"] = m.get("run_dir")
        row["error_percent"] = error_percent(row["predicted_samples_per_s"], row["measured_samples_per_s"])


def _float(v: Any) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def summary(rows: list[dict[str, Any]]) -> str | None:
    """``median |error| X %, max Y % over N points`` (None: nothing was checked)."""
    errors = [abs(r["error_percent"]) for r in rows if r.get("error_percent") is not None]
    if not errors:
        return None
    within = sum(e <= 15 for e in errors)
    return (f"check: median |error| {statistics.median(errors):.1f} %, max {max(errors):.1f} % over "
            f"{len(errors)} points ({within} within 15 %)")
