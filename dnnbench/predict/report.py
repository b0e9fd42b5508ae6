"""What predict shows and writes: the probe's figures and the model's terms for the base config,
one table of the grid (80 columns), ``predict.csv`` and ``probe.json``.

Every figure the model made is labelled ``predicted``; measured figures (``--check``) are in
their own ``measured_`` columns, never mixed.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dnnbench.predict.model import TERMS, Prediction, Probe

COLUMNS = ["point", "workers", "latency_ms", "requests_in_flight", "compute_time_s", "accelerators",
           "batch_size", "predicted_samples_per_s", "predicted_MiB_per_s", "predicted_au_percent",
           "predicted_wall_s", "bound", *(f"{t}_samples_per_s" for t in TERMS), "hold_ms", "in_flight",
           "prefetch_batches", "beyond_model", "measured_samples_per_s", "measured_MiB_per_s",
           "measured_au_percent", "check_runs", "measured_min_samples_per_s", "measured_max_samples_per_s",
           "error_percent", "check_free_cores", "check_load_average_1m",
           "predicted_at_load_samples_per_s", "error_at_load_percent", "run_dir"]


def _num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    if math.isinf(x):
        return "∞"
    return f"{x:,.{digits}f}"


def probe_lines(p: Probe, full_run_s: float | None) -> list[str]:
    """The probe's measurements, one short line each."""
    out = [f"probe: {p.seconds:.1f} s" + (f" = {100 * p.seconds / full_run_s:.0f} % of a full run "
                                         f"(predicted {full_run_s:.1f} s)" if full_run_s else ""),
           f"  cores {p.cores:g}, {p.free_cores:.2f} of them ours (one process per core; load average "
           f"{p.load_average:.1f})",
           "  contention (processes: cores they got): " + ", ".join(f"{k:g}: {c:.2f}" for k, c in p.cores_at)
           + (f"; a real loader's {p.crowd_processes}: x{p.crowd_cpu_scale:.2f} of that" if p.crowd_processes else ""),
           *(["  the loader's workers are threads of one process (tf.data): its Python work on one core "
              f"(at least the {p.calibration_cores:.2f} its one-worker run used)"] if p.threads else []),
           f"  dataset {p.samples:,} samples in {p.requests:,} requests, {p.sample_bytes / 1024:.1f} KiB/sample"]
    for lv in p.levels:
        out.append(f"  storage x{lv.concurrency}: p50 {lv.p50_ms:.2f} ms, mean {lv.mean_ms:.2f}, "
                   f"p99 {lv.p99_ms:.2f}; {lv.requests_per_s:,.0f} req/s, {lv.MiB_per_s:,.1f} MiB/s")
    ceiling = f"{p.ceiling_MiB_per_s:,.1f} MiB/s" if p.ceiling_MiB_per_s else \
        "not reached (still rising at the highest level)"
    out.append(f"  storage ceiling: {ceiling}")
    out.append(f"  a real loader saw the storage's latency x{p.service_scale:.2f} (a server's own CPU: not measured)")
    out.append(f"  CPU/sample: read {p.read_cpu_s * 1e3:.3f} ms, decode {p.decode_cpu_s * 1e3:.3f} ms, "
               f"process tree {p.cpu_per_sample_s * 1e3:.3f} ms")
    per_worker = f"{p.fork_s * 1e3:.0f} ms per worker" if p.solo_fork_s is None else \
        f"{p.solo_fork_s * 1e3:.0f} ms CPU per worker ({p.fork_s * 1e3:.0f} with {p.start_processes - 1})"
    out.append(f"  per batch: overhead {p.batch_overhead_s * 1e3:.2f} ms; epoch start {p.startup_s * 1e3:.0f} ms "
               f"+ {per_worker}, end {p.end_s * 1e3:.0f} ms")
    if p.calibration_runs > 1:
        out.append(f"  calibration: the median of {p.calibration_runs} short runs")
    out.append(f"  a client's first request +{max((lv.first_cpu_ms for lv in p.levels), default=0.0):.0f} ms CPU; "
               f"wake-up {p.wake_s * 1e3:.2f} ms (8 at once: {p.wake_at(8) * 1e3:.2f} ms)")
    return out + [f"  note: {n}" for n in p.notes]


def term_lines(p: Probe, pred: Prediction, pt: Any) -> list[str]:
    """How the model reads the base config: each term, with its arithmetic."""
    t = pred.terms
    cpu = max(p.cpu_per_sample_s, p.read_cpu_s / p.samples_per_request + p.decode_cpu_s) \
        + p.server_cpu_s / p.samples_per_request
    processes = pt.accelerators * (pt.workers + 1)
    lines = [
        f"  little      {_num(t['little'])}/s = {pred.in_flight} in flight x "
        f"{p.samples_per_request:g} samples / {pred.hold_ms:.2f} ms held each",
        f"  cpu         {_num(t['cpu'])}/s = {p.cores_for(processes):.2f} cores x {p.cpu_scale(processes):.2f} "
        f"(a real loader's) / {cpu * 1e3:.3f} ms CPU per sample",
        f"  storage     {_num(t['storage'])}/s = ceiling / {p.sample_bytes / 1024:.1f} KiB per sample",
        f"  accelerator {_num(t['accelerator'])}/s = {pt.accelerators} x {pt.batch_size} / "
        f"{pt.compute_time_s:g} s per step",
        f"  prefetch    {pred.prefetch_batches} batches buffered (workers x prefetch_factor)",
    ]
    return lines


def grid_columns(points: list[Any]) -> list[tuple[str, str]]:
    """(Point field, header) of the knobs that vary over the grid (at least workers)."""
    names = [("workers", "work"), ("latency_ms", "lat_ms"), ("requests_in_flight", "rif"),
             ("compute_time_s", "comp_s"), ("accelerators", "acc"), ("batch_size", "batch")]
    varying = [(f, h) for f, h in names if len({getattr(g.point, f) for g in points}) > 1]
    return varying or names[:1]


def table(rows: list[dict[str, Any]], knobs: list[tuple[str, str]], checked: bool) -> str:
    """The grid as text, at most 80 columns: knobs, predicted figures, bound (and measured, error)."""
    heads = [h for _, h in knobs] + ["pred/s", "MiB/s", "AU%", "bound"] + \
        (["meas/s", "err%", "cores", "ld_err%"] if checked else [])
    lines = []
    for r in rows:
        cells = [_knob(r[f]) for f, _ in knobs]
        if r["beyond_model"]:
            cells += ["—", "—", "—", "beyond"]
        else:
            cells += [_num(r["predicted_samples_per_s"]), _num(r["predicted_MiB_per_s"], 2),
                      _num(r["predicted_au_percent"]), r["bound"]]
        if checked:
            cells += [_num(r.get("measured_samples_per_s")), _signed(r.get("error_percent")),
                      _num(r.get("check_free_cores"), 2), _signed(r.get("error_at_load_percent"))]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(heads)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*heads)] + [fmt.format(*c) for c in lines])


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{v:+.1f}"


def _knob(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def write_outputs(out_dir: Path, rows: list[dict[str, Any]], probe: Probe) -> None:
    """``predict.csv`` (one row per point) and ``probe.json`` (what the probe measured)."""
    with open(out_dir / "predict.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None or (isinstance(v, float) and math.isinf(v)) else v)
                        for k, v in r.items()})
    (out_dir / "probe.json").write_text(json.dumps(asdict(probe), indent=2))


def row_of(label: str, pt: Any, pred: Prediction) -> dict[str, Any]:
    """One predict.csv row: the point, the predicted figures and every term."""
    row = {"point": label, **{k: getattr(pt, k) for k in ("workers", "latency_ms", "requests_in_flight",
                                                          "compute_time_s", "accelerators", "batch_size")},
           "predicted_samples_per_s": pred.samples_per_s, "predicted_MiB_per_s": pred.MiB_per_s,
           "predicted_au_percent": pred.au_percent, "predicted_wall_s": pred.wall_s, "bound": pred.bound,
           "hold_ms": pred.hold_ms, "in_flight": pred.in_flight, "prefetch_batches": pred.prefetch_batches,
           "beyond_model": pred.beyond}
    row.update({f"{t}_samples_per_s": pred.terms[t] for t in TERMS})
    return row
