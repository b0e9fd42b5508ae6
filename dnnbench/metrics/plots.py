"""PNG plots of a comparison (matplotlib, imported only here and only when plotting;
figures are drawn without pyplot, so no GUI backend is ever touched).

- ``throughput.png``: MiB/s per variant, the bar at the mean, error bars one sample
  stdev across repeats, each repeat a dot, the ratio to the baseline written beside.
- ``latency_cdf.png``: the distribution of whole-object GET latency per variant
  (every successful get of every repeat, from ``requests.csv``), log scale.
- ``throughput_time.png``: MiB/s over time per variant from ``steps.csv`` (each step's
  bytes spread over the step, waiting for the batch and consuming it, summed per time
  bin; time from the first step; the first repeat solid, further repeats faint).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnnbench.metrics.compare import Comparison

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
        text = "failed" if m is None else f"{m:,.2f}" + ("" if math.isnan(ratio) else f"  ({ratio:.2f}x)")
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


def latency_cdf(c: Comparison, path: Path, notes: list[str]) -> Path:
    fig, ax = _figure(8, 4.5)
    drawn = 0
    for colour, lab in zip(_colours(len(c.labels)), c.labels):
        lat = _latencies(_ok_runs(c, lab))
        if not len(lat):
            notes.append(f"latency CDF: no get requests recorded for {lab}")
            continue
        xs = np.sort(lat)
        ys = np.arange(1, len(xs) + 1) / len(xs)
        if len(xs) > _CDF_POINTS:  # keep the shape and the whole tail, not every point
            idx = np.unique(np.concatenate([np.linspace(0, len(xs) - 1, _CDF_POINTS).astype(int),
                                            np.arange(int(len(xs) * 0.99), len(xs))]))
            xs, ys = xs[idx], ys[idx]
        ax.step(np.maximum(xs, 1e-3), ys, where="post", color=colour, label=f"{_short(lab)} (n={len(lat):,})")
        drawn += 1
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.text(ax.get_xlim()[0] if drawn else 0, 0.99, " p99", va="bottom", fontsize=7, color="grey")
    if drawn:
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("request latency, ms (whole-object get; log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.01)
    ax.set_title("request latency CDF per variant", fontsize=10)
    ax.grid(alpha=0.3, which="both")
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


def throughput_over_time(c: Comparison, path: Path, notes: list[str]) -> Path:
    series: dict[str, list[pd.DataFrame]] = {}
    for lab in c.labels:
        runs = []
        for d in _ok_runs(c, lab)["run_dir"]:
            f = Path(d) / "steps.csv"
            if f.is_file():
                s = pd.read_csv(f, usecols=["t_s", "wait_s", "compute_s", "bytes"])
                if len(s):
                    t0 = s["t_s"].min()
                    runs.append(pd.DataFrame({"start": s["t_s"] - t0, "bytes": s["bytes"],
                                              "end": s["t_s"] - t0 + s["wait_s"] + s["compute_s"]}))
        if runs:
            series[lab] = runs
        else:
            notes.append(f"throughput over time: no steps recorded for {lab}")
    span = max([float(s["end"].max()) for runs in series.values() for s in runs] + [1e-3])
    width = _bin_width(span)
    fig, ax = _figure(8, 4.5)
    for colour, lab in zip(_colours(len(c.labels)), c.labels):
        for i, s in enumerate(series.get(lab, [])):
            edges, mibs = binned_rate(s, width)
            ax.stairs(mibs, edges, baseline=None, color=colour, alpha=1.0 if i == 0 else 0.3,
                      linewidth=1.4 if i == 0 else 0.8, label=_short(lab) if i == 0 else None)
    if series:
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(f"seconds since the first step (bins of {width:g} s)")
    ax.set_ylabel("MiB/s")
    ax.set_title("throughput over time per variant (first repeat solid, others faint)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    fig.savefig(path)
    return path


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


def _bin_width(span: float) -> float:
    """About 40 bins over the longest run, rounded to 1, 2 or 5 x 10^k seconds."""
    raw = span / 40
    exp = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * exp:
            return m * exp
    return 10 * exp


def _short(label: str, n: int = 48) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"
