"""Aggregate the recorders into the run's CSVs and its one summary row.

Definitions (DESIGN §6): bytes are payload bytes returned by storage; MiB is
2^20 and MB is 10^6 bytes; AU = sum(compute_s) / wall time of the measured
steps, the first ``warmup_steps`` excluded. A figure that cannot be measured is
left empty and its reason goes to ``unmeasured``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnnbench.recording.requests import COLUMNS as REQUEST_COLUMNS
from dnnbench.recording.requests import read_parts
from dnnbench.recording.steps import STEP_COLUMNS, EpochRecord
from dnnbench.recording.system import SYSTEM_COLUMNS
from dnnbench.reporting.columns import EPOCH_COLUMNS, SUMMARY_COLUMNS, empty_row, meets_target
from dnnbench.reporting.identity import RunIdentity

MiB = 2**20
_SUMMARY = frozenset(SUMMARY_COLUMNS)


@dataclass
class RunFacts:
    """Everything the report needs, gathered by the executor.

    ``identity`` is the run's :class:`RunIdentity` (or its columns); ``extra`` holds the
    figures of the inference and checkpoint phases by column name (:meth:`add_phase`).
    """

    run_id: str
    run_dir: Path
    started_at: str
    identity: RunIdentity | dict[str, Any]
    t0: float
    status: str = "ok"
    failed_phase: str | None = None
    reason: str | None = None
    listing: Any = None
    train_start: float | None = None
    train_end: float | None = None
    steps: list[list] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)
    warmup_steps: int = 0
    au_target_percent: float | None = None  # training.au_target_percent: au_meets_target compares with it
    system: Any = None
    ttfb_reason: str = ""
    request_mode: str = "all"
    unmeasured: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # inference / checkpoint phase figures

    def add_phase(self, result: Any) -> None:
        """Record a phase's figures: a dataclass or a mapping whose names are catalogue columns.

        Raises:
            ValueError: a figure has no column in the catalogue (it would be lost).
        """
        figures = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
        unknown = [k for k in figures if k not in _SUMMARY]
        if unknown:
            raise ValueError(f"phase figures without a column in reporting/columns.py: {', '.join(unknown)}")
        self.extra.update(figures)

    def identity_row(self) -> dict[str, Any]:
        """The identity columns."""
        return self.identity.row() if isinstance(self.identity, RunIdentity) else dict(self.identity)


def merge_requests(run_dir: Path, t0: float) -> pd.DataFrame:
    """Merge the per-process request files into one frame with relative times in ms."""
    df = pd.DataFrame(read_parts(run_dir / ".requests"), columns=REQUEST_COLUMNS)
    df = df.sort_values("start", kind="stable").reset_index(drop=True)
    out = pd.DataFrame({
        "op": df["op"], "key": df["key"], "pid": df["pid"], "worker": df["worker"],
        "epoch": df["epoch"],
        "start_s": (df["start"].astype(float) - t0).round(6),
        "latency_ms": ((df["end"].astype(float) - df["start"].astype(float)) * 1e3).round(4),
        "ttfb_ms": ((df["ttfb"].astype(float) - df["start"].astype(float)) * 1e3).round(4),
        "bytes": df["bytes"], "decode_ms": (df["decode_s"].astype(float) * 1e3).round(4),
        "error": df["error"], "retries": df["retries"],
    })
    return out


def _pct(values: pd.Series, q: float) -> float | None:
    v = values.dropna()
    return float(np.percentile(v, q)) if len(v) else None


def _rate(n: float, seconds: float | None, unit: float = 1.0) -> float | None:
    return n / unit / seconds if seconds and seconds > 0 else None


def build_reports(f: RunFacts) -> dict[str, Any]:
    """Write epochs/steps/requests/system CSVs into the run dir; return the summary row."""
    steps = pd.DataFrame(f.steps, columns=STEP_COLUMNS)
    steps_out = steps.assign(t_s=(steps["start"] - f.t0).round(6)).drop(columns=["start"])
    steps_out = steps_out[["epoch", "step", "t_s", "wait_s", "compute_s", "samples", "bytes", "loss",
                           "failed_samples"]]
    steps_out.to_csv(f.run_dir / "steps.csv", index=False, float_format="%.6g")

    requests = merge_requests(f.run_dir, f.t0)
    requests.to_csv(f.run_dir / "requests.csv", index=False, float_format="%.6g")
    # training reads only: inference (epoch -1) and checkpoint (-2) requests have their own columns
    gets = requests[requests["op"].isin(["get", "get_range"]) & (requests["epoch"] >= 0)]

    epochs = _epochs_frame(f, steps, gets)
    epochs.to_csv(f.run_dir / "epochs.csv", index=False, float_format="%.6g")

    system = pd.DataFrame(f.system.rows if f.system else [], columns=SYSTEM_COLUMNS)
    system.assign(t=(system["t"] - f.t0).round(3)).rename(columns={"t": "t_s"}).drop(
        columns=["cpu_s"]).to_csv(f.run_dir / "system.csv", index=False)
    return _summary(f, steps, epochs, gets)


def _epochs_frame(f: RunFacts, steps: pd.DataFrame, gets: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for e in f.epochs:
        s = steps[steps["epoch"] == e.epoch]
        g = gets[gets["epoch"] == e.epoch]
        wall = (e.end - e.start) if e.end else None
        busy = float(s["wait_s"].sum() + s["compute_s"].sum())
        rows.append({
            "epoch": e.epoch, "complete": e.complete, "steps": e.steps, "samples": e.samples,
            "bytes": e.bytes, "wall_s": wall, "samples_per_s": _rate(e.samples, wall),
            "MiB_per_s": _rate(e.bytes, wall, MiB), "MB_per_s": _rate(e.bytes, wall, 1e6),
            "first_batch_s": e.first_batch_s, "wait_s": float(s["wait_s"].sum()),
            "compute_s": float(s["compute_s"].sum()),
            "au_percent": 100.0 * float(s["compute_s"].sum()) / busy if busy > 0 else None,
            "requests": len(g), "request_p50_ms": _pct(g["latency_ms"], 50),
            "request_p99_ms": _pct(g["latency_ms"], 99), "failed_samples": e.failed_samples,
            "cache": e.cache,
        })
    return pd.DataFrame(rows, columns=EPOCH_COLUMNS)


def _summary(f: RunFacts, steps: pd.DataFrame, epochs: pd.DataFrame, gets: pd.DataFrame) -> dict[str, Any]:
    """The summary row: each group of figures from its own function, in catalogue columns."""
    row = _head(f)
    row.update(_listing(f, rates=True))
    row.update(_totals(steps, _train_wall(f)))
    row.update(_steady(f, steps))
    row.update(au_target_percent=f.au_target_percent,
               au_meets_target=meets_target(row.get("au_percent"), f.au_target_percent))
    if f.epochs and f.epochs[0].first_batch_s is not None:
        row["time_to_first_batch_s"] = f.epochs[0].first_batch_s
    row.update(_requests(f, gets, row["samples"]))
    row.update(_epoch_figures(epochs))
    row.update(_system(f, row["wall_s"]))
    row["errors"] = int(gets["error"].notna().sum()) if len(gets) else 0
    row["retries"] = int(gets["retries"].fillna(0).sum()) if len(gets) else 0
    row["skipped_samples"] = int(steps["failed_samples"].sum())
    caches = {e.cache for e in f.epochs}
    row["cache"] = caches.pop() if len(caches) == 1 else "unknown"
    row["byte_check"] = _byte_check(f)
    planned = [e.expected_bytes for e in f.epochs if e.complete and e.expected_bytes is not None]
    if planned:
        row["bytes_planned"] = int(sum(planned))
    row.update(_phases(f))
    return row


def _head(f: RunFacts) -> dict[str, Any]:
    """An empty summary row with the run's record and identity filled in."""
    row = empty_row()
    row.update(run_id=f.run_id, status=f.status, failed_phase=f.failed_phase, reason=f.reason,
               started_at=f.started_at, **f.identity_row())
    return row


def _train_wall(f: RunFacts) -> float | None:
    return (f.train_end - f.train_start) if f.train_start is not None and f.train_end is not None else None


def _totals(steps: Any, wall: float | None) -> dict[str, Any]:
    """What the training steps moved, and the rates over the training's wall time."""
    samples, nbytes = int(steps["samples"].sum()), int(steps["bytes"].sum())
    return {"steps": len(steps), "samples": samples, "bytes": nbytes, "wall_s": wall,
            "samples_per_s": _rate(samples, wall), "MiB_per_s": _rate(nbytes, wall, MiB),
            "MB_per_s": _rate(nbytes, wall, 1e6)}


def _listing(f: RunFacts, rates: bool) -> dict[str, Any]:
    if f.listing is None:
        return {}
    out = {"list_s": f.listing.seconds, "objects_listed": f.listing.objects, "bytes_listed": f.listing.bytes}
    return {**out, "objects_listed_per_s": f.listing.objects_per_s} if rates else out


def _steady(f: RunFacts, steps: pd.DataFrame) -> dict[str, Any]:
    """AU and steady throughput over the steps after the warm-up."""
    measured = steps.iloc[f.warmup_steps:]
    busy = float(measured["wait_s"].sum() + measured["compute_s"].sum())
    if len(measured) and busy > 0:
        return {"au_percent": 100.0 * float(measured["compute_s"].sum()) / busy,
                "steady_MiB_per_s": _rate(float(measured["bytes"].sum()), busy, MiB)}
    if len(steps):
        f.unmeasured["au_percent"] = f.unmeasured["steady_MiB_per_s"] = \
            f"no steps after the {f.warmup_steps} warm-up steps"
    return {}


def _requests(f: RunFacts, gets: pd.DataFrame, samples: int) -> dict[str, Any]:
    """Request count, size and latencies of the training reads (sizes and latencies of the successful ones)."""
    why = f.unmeasured
    ok = gets[gets["error"].isna()] if len(gets) else gets
    out: dict[str, Any] = {"requests": len(gets) if f.request_mode == "all" else None}
    if len(ok):
        out["request_mean_bytes"] = float(ok["bytes"].mean())
    if out["requests"]:
        out["samples_per_request"] = samples / out["requests"]
    if f.request_mode != "all":
        why["requests"] = f"metrics.requests is {f.request_mode}: request rows are a sample"
    if len(ok):
        out.update(_latencies(f, ok))
        out.update(_decode(f, ok))
    elif f.request_mode == "off":
        for c in ("request_p50_ms", "request_p90_ms", "request_p99_ms", "request_p999_ms", "request_max_ms",
                  "request_ttfb_p50_ms", "request_ttfb_p99_ms", "decode_p50_ms", "read_share_percent"):
            why[c] = "metrics.requests is off"
    return out


def _latencies(f: RunFacts, ok: pd.DataFrame) -> dict[str, Any]:
    lat = ok["latency_ms"]
    out = {"request_p50_ms": _pct(lat, 50), "request_p90_ms": _pct(lat, 90), "request_p99_ms": _pct(lat, 99),
           "request_p999_ms": _pct(lat, 99.9), "request_max_ms": float(lat.max())}
    if ok["ttfb_ms"].notna().any():
        out.update(request_ttfb_p50_ms=_pct(ok["ttfb_ms"], 50), request_ttfb_p99_ms=_pct(ok["ttfb_ms"], 99))
    else:
        f.unmeasured["request_ttfb_p50_ms"] = f.unmeasured["request_ttfb_p99_ms"] = f.ttfb_reason
    return out


def _decode(f: RunFacts, ok: pd.DataFrame) -> dict[str, Any]:
    """Decode time per request and the read's share of read + decode time, where they can be told apart."""
    dec = ok[ok["decode_ms"].notna()]
    if len(dec) and dec["decode_ms"].sum() > 0:
        read_ms, dec_ms = float(dec["latency_ms"].sum()), float(dec["decode_ms"].sum())
        return {"decode_p50_ms": _pct(dec["decode_ms"], 50),
                "read_share_percent": 100.0 * read_ms / (read_ms + dec_ms)}
    identity = f.identity_row()
    if identity.get("access") == "shards" and identity.get("decode") != "none":
        reason = "shards: one request streams many samples, so decode time is not attributable per request"
    else:
        reason = "no decode step (dataset.decode none or a custom dataset)"
    f.unmeasured["decode_p50_ms"] = f.unmeasured["read_share_percent"] = reason
    return {}


def _epoch_figures(epochs: pd.DataFrame) -> dict[str, Any]:
    complete = epochs[epochs["complete"] == True]  # noqa: E712
    if not len(complete):
        return {}
    return {"first_epoch_MiB_per_s": complete.iloc[0]["MiB_per_s"],
            "last_epoch_MiB_per_s": complete.iloc[-1]["MiB_per_s"],
            "epoch_steps_min": int(complete["steps"].min())}


def _system(f: RunFacts, wall: float | None) -> dict[str, Any]:
    if f.system is None or not wall:
        return {}
    return {"cpu_percent": f.system.cpu_percent_between(f.train_start, f.train_end),
            "peak_rss_MiB": round(f.system.peak_rss / MiB, 1)}


def _phases(f: RunFacts) -> dict[str, Any]:
    """The inference and checkpoint phases' figures (names that are no column are not written)."""
    return {k: v for k, v in f.extra.items() if k in _SUMMARY}


def status_row(f: RunFacts) -> dict[str, Any]:
    """The smallest summary row, for a run whose report could not be written: status, identity
    and the totals the executor counted itself (no file is read or written to get them)."""
    row = _head(f)
    row.update(_listing(f, rates=False), au_target_percent=f.au_target_percent)
    wall = _train_wall(f)
    samples, nbytes = sum(e.samples for e in f.epochs), sum(e.bytes for e in f.epochs)
    row.update(steps=sum(e.steps for e in f.epochs), samples=samples, bytes=nbytes, wall_s=wall,
               samples_per_s=_rate(samples, wall), MiB_per_s=_rate(nbytes, wall, MiB),
               MB_per_s=_rate(nbytes, wall, 1e6), skipped_samples=sum(e.failed_samples for e in f.epochs))
    if f.epochs and f.epochs[0].first_batch_s is not None:
        row["time_to_first_batch_s"] = f.epochs[0].first_batch_s
    row.update(_phases(f))
    return row


def _byte_check(f: RunFacts) -> str:
    """Did each complete epoch read exactly the bytes that listing reported for it?"""
    complete = [e for e in f.epochs if e.complete]
    if not complete or any(e.expected_bytes is None or e.failed_samples for e in complete):
        return "not_checked"
    return "ok" if all(e.bytes == e.expected_bytes for e in complete) else "mismatch"
