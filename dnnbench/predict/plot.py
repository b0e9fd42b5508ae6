"""``predict.png``: the what-if on one picture. Samples/s against one knob (the workers when
they vary), one predicted curve per combination of the other knobs that vary, and, after
``--check``, the measured points on it (and the prediction at the load seen before each ran).
matplotlib is imported only here, without pyplot (no GUI backend), as ``reporting.plots`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KNOBS = ("workers", "latency_ms", "requests_in_flight", "compute_time_s", "accelerators", "batch_size")


def axes_of(rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(the x knob, the knobs whose combinations make the curves): the knobs that vary."""
    varying = [k for k in KNOBS if len({r.get(k) for r in rows}) > 1]
    x = "workers" if "workers" in varying or not varying else varying[0]
    return x, [k for k in varying if k != x]


def series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Curve name -> its rows, sorted along the x knob (rows beyond the model left out)."""
    x, others = axes_of(rows)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("predicted_samples_per_s") is None:
            continue
        name = ", ".join(f"{k} {r[k]:g}" if isinstance(r[k], float) else f"{k} {r[k]}" for k in others)
        out.setdefault(name or "predicted", []).append(r)
    return {k: sorted(v, key=lambda r: r[x]) for k, v in out.items()}


def write_plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Draw ``path``; None when no point has a prediction."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    curves = series(rows)
    if not curves:
        return None
    x, _ = axes_of(rows)
    fig = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["tab10" if len(curves) <= 10 else "tab20"]
    for i, (name, pts) in enumerate(curves.items()):
        _curve(ax, x, name, pts, cmap(i % cmap.N))
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("samples/s")
    if x == "workers" and min(r[x] for pts in curves.values() for r in pts) > 0:
        ax.set_xscale("log", base=2)
    ticks = sorted({r[x] for pts in curves.values() for r in pts})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # off the curves
    fig.savefig(path)
    return path


def _curve(ax: Any, x: str, name: str, pts: list[dict[str, Any]], colour: Any) -> None:
    """One predicted curve (line), its measured points (dots, with the range of the point's runs)
    and predictions at the load seen (x)."""
    ax.plot([r[x] for r in pts], [r["predicted_samples_per_s"] for r in pts], "-", color=colour,
            label=f"predicted: {name}")
    measured = [r for r in pts if r.get("measured_samples_per_s") is not None]
    if measured:  # the median run, and a bar over the range of the point's runs (--check-repeat)
        ys = [r["measured_samples_per_s"] for r in measured]
        below = [y - (r.get("measured_min_samples_per_s") or y) for r, y in zip(measured, ys)]
        above = [(r.get("measured_max_samples_per_s") or y) - y for r, y in zip(measured, ys)]
        ax.errorbar([r[x] for r in measured], ys, yerr=[below, above], fmt="o", color=colour, capsize=3,
                    label=f"measured (median, range of runs): {name}")
    at_load = [r for r in measured if r.get("predicted_at_load_samples_per_s") is not None]
    if at_load:
        ax.plot([r[x] for r in at_load], [r["predicted_at_load_samples_per_s"] for r in at_load], "x",
                color=colour, alpha=0.7, label=f"predicted at the load seen: {name}")
