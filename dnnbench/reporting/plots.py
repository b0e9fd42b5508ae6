"""PNG plots of a comparison (matplotlib, imported only here and only when plotting;
figures are drawn without pyplot, so no GUI backend is ever touched).

- ``throughput.png``: MiB/s per variant, the bar at the mean, error bars one sample
  stdev across repeats, each repeat a dot, the ratio to the baseline written beside.
- ``latency_cdf.png``: the distribution of whole-object GET latency per variant
  (every successful get of every repeat, from ``requests.csv``): latency on a log scale
  against the percentile on a "nines" scale (p50, p90, p99, p99.9 equally spaced).
- ``throughput_time.png``: MiB/s over time from ``steps.csv``, one panel per variant
  (each step's bytes spread over the step, waiting for the batch and consuming it, summed
  per time bin): the raw rate faint, a rolling mean bold, further repeats' rolling means
  faint; epoch starts dashed, the warm-up steps (left out of AU) shaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnnbench.reporting.compare import Comparison

MiB = 2**20
_CDF_POINTS = 4000


def write_all(c: Comparison, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw the three plots into ``out_dir``; returns (written files, notes on what was left out)."""
    notes: list[str] = []
    paths = [throughput(c, out_dir / "throughput.png"),
             latency_cdf(c, out_dir / "latency_cdf.png", notes),
             throughput_over_time(c, out_dir / "throughput_time.png", notes)]
    return paths, notes


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _ok_runs(c: Comparison, label: str) -> pd.DataFrame:
    g = c.groups[label]
    return g[g["status"] == "ok"]


def throughput(c: Comparison, path: Path) -> Path:
    labels = c.labels
    fig, ax = _figure(8, 1.2 + 0.45 * len(labels))
    y = np.arange(len(labels))[::-1]
    colours = _colours(len(labels))
    means = [c.stat(lab, "MiB_per_s") for lab in labels]
    errs = [c.stat(lab, "MiB_per_s", "stdev") or 0.0 for lab in labels]
    ax.barh(y, [m or 0.0 for m in means], xerr=errs, color=colours, alpha=0.85, capsize=4,
            error_kw={"elinewidth": 1.2})
    top = max([(m or 0.0) + e for m, e in zip(means, errs)] + [1e-9])
    for yi, lab, m, err in zip(y, labels, means, errs):
        runs = _ok_runs(c, lab)["MiB_per_s"].dropna()
        ax.plot(runs, [yi] * len(runs), "o", color="black", markersize=3, zorder=3)
        ratio = c.table.loc[c.table["variant"] == lab, "MiB_per_s_ratio"].iloc[0]
        note = "baseline" if lab == c.baseline else ("" if math.isnan(ratio) else f"{ratio:.2f}x")
        text = "failed" if m is None else f"{m:,.2f}" + (f"  ({note})" if note else "")
        right = max([(m or 0.0) + err, *runs]) if len(runs) else (m or 0.0) + err
        ax.text(right + top * 0.02, yi, text, va="center", fontsize=8)
    ax.set_yticks(y, [_short(lab) for lab in labels], fontsize=8)
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel("MiB/s (mean of repeats; error bar: stdev; dots: repeats)")
    ax.set_title(f"throughput per variant (ratio vs {c.baseline})" if c.baseline else "throughput per variant",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path)
    return path


#: the percentiles marked on the latency plot, as (fraction, label)
_NINES = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (0.9999, "p99.99")]


def latency_cdf(c: Comparison, path: Path, notes: list[str]) -> Path:
    """The distribution of GET latency per variant on a "nines" axis (the fraction of
    requests at or below a latency, its tail stretched: p90, p99, p99.9 equally spaced), so
    the tail that decides a p99 is as visible as the median."""
    fig, ax = _figure(8, 4.2 + 0.16 * math.ceil(len(c.labels) / 2))  # the legend goes below: room for it
    top = 0.0
    for colour, lab in zip(_colours(len(c.labels)), c.labels):
        lat = _latencies(_ok_runs(c, lab))
        if not len(lat):
            notes.append(f"latency CDF: no get requests recorded for {lab}")
            continue
        xs = np.sort(lat)
        ys = -np.log10(1 - (np.arange(1, len(xs) + 1) - 0.5) / len(xs))  # Hazen positions: never 1
        if len(xs) > _CDF_POINTS:  # keep the shape and the whole tail, not every point
            idx = np.unique(np.concatenate([np.linspace(0, len(xs) - 1, _CDF_POINTS).astype(int),
                                            np.arange(int(len(xs) * 0.99), len(xs))]))
            xs, ys = xs[idx], ys[idx]
        p99 = float(np.percentile(lat, 99))
        ax.step(np.maximum(xs, 1e-3), ys, where="post", color=colour,
                label=f"{_short(lab)} (n={len(lat):,}, p99 {p99:,.3g} ms)")
        top = max(top, float(ys[-1]))
    marks = [(-math.log10(1 - f), name) for f, name in _NINES if -math.log10(1 - f) <= max(top, 2.0)]
    for y, _ in marks:
        ax.axhline(y, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yticks([0.0, *[y for y, _ in marks]], ["p0", *[name for _, name in marks]])
    if top:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1, 1, 10: not 10^-1
        fig.legend(fontsize=7, loc="outside lower center", ncol=1 if len(c.labels) < 4 else 2, frameon=False)
    ax.set_xlabel("request latency, ms (whole-object get; log scale)")
    ax.set_ylabel("percentile of requests (tail stretched)")
    ax.set_ylim(0, max(top, marks[-1][0]) * 1.04)
    ax.set_title("request latency distribution per variant: the share of requests at or below each latency",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both", axis="x")
    fig.savefig(path)
    return path


def _latencies(runs: pd.DataFrame) -> np.ndarray:
    parts = []
    for d in runs["run_dir"]:
        f = Path(d) / "requests.csv"
        if not f.is_file():
            continue
        r = pd.read_csv(f, usecols=["op", "latency_ms", "error"], keep_default_na=False, na_values=[""])
        r = r[r["op"].isin(["get", "get_range"]) & r["error"].isna()]
        parts.append(r["latency_ms"].to_numpy(dtype=float))
    return np.concatenate(parts) if parts else np.array([])


#: variants drawn in throughput_time.png (one panel each); the rest are named in a note
MAX_PANELS = 8


@dataclass
class RunSteps:
    """One run's steps on its own clock (seconds since its first step), with the time each
    epoch started and the end of its warm-up steps (0: none)."""

    steps: pd.DataFrame  # start, end, bytes
    epoch_starts: list[tuple[int, float]]
    warmup_end: float
    warmup_steps: int


def read_steps(run_dir: str | Path) -> RunSteps | None:
    """``steps.csv`` of a run (None when it has no steps), its warm-up from ``config.yaml``."""
    f = Path(run_dir) / "steps.csv"
    if not f.is_file():
        return None
    s = pd.read_csv(f).sort_values("t_s", kind="stable")
    if not len(s):
        return None
    if "epoch" not in s:
        s["epoch"] = 0
    t0 = s["t_s"].min()
    steps = pd.DataFrame({"start": s["t_s"] - t0, "bytes": s["bytes"],
                          "end": s["t_s"] - t0 + s["wait_s"] + s["compute_s"]}).reset_index(drop=True)
    starts = [(int(e), float(t)) for e, t in (s["t_s"] - t0).groupby(s["epoch"]).min().items()]
    warm = min(_warmup_steps(Path(run_dir)), len(steps))
    return RunSteps(steps, starts, float(steps["end"].iloc[warm - 1]) if warm else 0.0, warm)


def _warmup_steps(run_dir: Path) -> int:
    try:
        import yaml

        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        return max(0, int((cfg.get("training") or {}).get("warmup_steps") or 0))
    except (OSError, ValueError, TypeError, AttributeError, ImportError):
        return 0


def throughput_over_time(c: Comparison, path: Path, notes: list[str]) -> Path:
    """One panel per variant (its own time axis: runs of very different lengths stay
    readable): the first repeat's raw rate as a faint staircase and its rolling mean bold,
    further repeats' rolling means faint; warm-up shaded, epoch starts dashed."""
    series: dict[str, list[RunSteps]] = {}
    for lab in c.labels:
        runs = [r for r in (read_steps(d) for d in _ok_runs(c, lab)["run_dir"]) if r is not None]
        if runs:
            series[lab] = runs
        else:
            notes.append(f"throughput over time: no steps recorded for {lab}")
    labels = list(series)
    if len(labels) > MAX_PANELS:
        more = len(labels) - MAX_PANELS
        notes.append(f"throughput over time: {more} variant{'s' if more > 1 else ''} beyond the first {MAX_PANELS} "
                     f"not drawn ({', '.join(labels[MAX_PANELS:])})")
        labels = labels[:MAX_PANELS]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 1.4 + 2.1 * max(1, len(labels))), dpi=100, layout="constrained")
    axes = fig.subplots(max(1, len(labels)), 1, squeeze=False)[:, 0]
    colours = dict(zip(c.labels, _colours(min(len(c.labels), 10))  * (1 + len(c.labels) // 10)))  # strong tab10:
    for ax, lab in zip(axes, labels):  # each variant has its own panel, so colours may repeat
        _time_panel(ax, lab, series[lab], colours[lab])
    if not labels:
        axes[0].text(0.5, 0.5, "no steps recorded", ha="center", va="center", transform=axes[0].transAxes)
    axes[-1].set_xlabel("seconds since the run's first step")
    fig.suptitle("throughput over time per variant (payload MiB/s consumed by the training loop)", fontsize=10)
    if labels:
        fig.legend(handles=_time_legend(series[labels[0]][0].warmup_steps), loc="outside lower center", ncol=5,
                   fontsize=7, frameon=False)
    fig.savefig(path)
    return path


def _time_panel(ax: Any, label: str, runs: list[RunSteps], colour: Any) -> None:
    span = max(float(r.steps["end"].max()) for r in runs)
    width = _bin_width(span, bins=100)
    window = max(3, round(span / 12 / width))  # the rolling mean spans about 1/12 of the run
    for i, run in enumerate(runs):
        edges, mibs = binned_rate(run.steps, width)
        smooth = pd.Series(mibs).rolling(window, center=True, min_periods=1).mean().to_numpy()
        mid = (edges[:-1] + edges[1:]) / 2
        if i == 0:
            ax.stairs(mibs, edges, baseline=None, color=colour, alpha=0.35, linewidth=0.7)
            ax.plot(mid, smooth, color=colour, linewidth=2.0)
        else:
            ax.plot(mid, smooth, color=colour, linewidth=1.0, alpha=0.45, linestyle="-.")
    first = runs[0]
    if first.warmup_end > 0:
        ax.axvspan(0, first.warmup_end, color="0.5", alpha=0.18, linewidth=0)
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.12)  # room for the epoch labels
    for epoch, t in first.epoch_starts[1:]:
        ax.axvline(t, color="0.25", linestyle="--", linewidth=0.8)
        ax.text(t, ax.get_ylim()[1], f" epoch {epoch + 1}", fontsize=7, va="top", ha="left", color="0.25")
    ax.set_xlim(0, span)
    ax.set_ylabel("MiB/s")
    reps = f", {len(runs)} repeats" if len(runs) > 1 else ""
    ax.set_title(f"{_short(label, 70)}  (bins {width:g} s, rolling mean {window * width:.3g} s{reps})",
                 fontsize=8, loc="left")
    ax.grid(alpha=0.3)


def _time_legend(warmup_steps: int) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [Line2D([], [], color="0.3", alpha=0.4, linewidth=0.7, label="raw (first repeat)"),
            Line2D([], [], color="0.3", linewidth=2.0, label="rolling mean"),
            Line2D([], [], color="0.3", alpha=0.45, linewidth=1.0, linestyle="-.", label="other repeats"),
            Line2D([], [], color="0.25", linestyle="--", linewidth=0.8, label="epoch start (first repeat)"),
            Patch(color="0.5", alpha=0.18, label=f"warm-up ({warmup_steps} steps, not in AU)")]


def binned_rate(steps: pd.DataFrame, width: float) -> tuple[np.ndarray, np.ndarray]:
    """MiB/s per time bin: each step's bytes spread evenly over the step (waiting for the
    batch, then consuming it), so the rate is continuous. The last bin ends with the last
    step; a last sliver shorter than half a bin joins the bin before it (the end of an
    epoch drains the loader's prefetched batches in an instant)."""
    start, end = steps["start"].to_numpy(float), steps["end"].to_numpy(float)
    end = np.maximum(end, start + 1e-9)
    stop = float(end.max())
    edges = np.arange(0.0, stop, width)
    if len(edges) > 1 and stop - edges[-1] < width / 2:
        edges = edges[:-1]
    edges = np.append(edges, stop)
    lo, hi = edges[:-1], edges[1:]
    overlap = np.clip(np.minimum.outer(end, hi) - np.maximum.outer(start, lo), 0.0, None)
    moved = (steps["bytes"].to_numpy(float) / (end - start)) @ overlap
    return edges, moved / (hi - lo) / MiB


def _bin_width(span: float, bins: int = 40) -> float:
    """About ``bins`` bins over ``span``, rounded to 1, 2 or 5 x 10^k seconds."""
    raw = max(span, 1e-6) / bins
    exp = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * exp:
            return m * exp
    return 10 * exp


def _short(label: str, n: int = 48) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"
