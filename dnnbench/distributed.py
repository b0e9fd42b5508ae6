"""The summary of a multi-rank run (torchrun): rank 0 combines the per-rank summary rows into
the run's one row (:func:`aggregate`). The process group, its collectives and the error relay
between ranks are :mod:`dnnbench.run.coordinator`'s.
"""

from __future__ import annotations

import re
from typing import Any

RELAYED = " (from rank {rank})"  # ends the message of an error raised for another rank's failure
_RELAYED_RE = re.compile(r" \(from rank \d+\)")


# -- the aggregate summary row ------------------------------------------------
SUMMED = ("steps", "samples", "bytes", "requests", "errors", "retries", "skipped_samples", "infer_samples",
          "checkpoint_bytes")
SUMMED_RATES = ("samples_per_s", "MiB_per_s", "MB_per_s", "steady_MiB_per_s", "first_epoch_MiB_per_s",
                "last_epoch_MiB_per_s", "infer_samples_per_s", "infer_MiB_per_s", "checkpoint_save_MB_per_s",
                "checkpoint_load_MB_per_s", "cpu_percent")
SLOWEST = ("wall_s", "time_to_first_batch_s", "list_s", "request_p50_ms", "request_p90_ms", "request_p99_ms",
           "request_p999_ms", "request_max_ms", "request_ttfb_p50_ms", "request_ttfb_p99_ms", "decode_p50_ms",
           "peak_rss_MiB", "infer_wall_s", "checkpoint_save_s", "checkpoint_load_s")
BYTE_CHECKS = ("ok", "mismatch", "not_checked")


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rank 0's summary of the per-rank rows (rank order), one row in the per-run columns.

    - totals: steps, samples, bytes, requests, errors, retries, skipped samples, inference
      samples, checkpoint bytes (each rank writes its own checkpoint);
    - throughput (samples/s, MiB/s, MB/s, steady, first/last epoch, inference, checkpoint
      MB/s) and cpu_percent: the sum over ranks (empty unless every rank measured it);
    - times, latency percentiles and peak RSS: the slowest rank's (a percentile over all
      ranks' requests is not derivable from per-rank percentiles);
    - per request: request_mean_bytes weighted by each rank's successful requests,
      samples_per_request = total samples / total requests;
    - accuracy_percent weighted by inference samples; read_share_percent the mean;
    - listing (objects, bytes): rank 0's, as every rank lists the whole dataset;
    - au_percent the mean over ranks, au_min_percent the lowest; rank_min/max_MiB_per_s;
    - byte_check: ``ok`` when every rank read exactly its split, ``mismatch`` when any rank
      did not, ``not_checked`` otherwise (some rank's epochs were partial by configuration);
    - status: ``ok`` when every rank is; else interrupted, failed, or the first other
      status, with the first failing rank's phase and reason.
    """
    out = dict(rows[0])
    out.pop("rank", None)
    out.update(_status(rows))
    for col in SUMMED:
        v = _values(rows, col)
        out[col] = int(sum(v)) if v else None
    for col in SUMMED_RATES:
        v = _values(rows, col)
        out[col] = sum(v) if len(v) == len(rows) else None
    for col in SLOWEST:
        v = _values(rows, col)
        out[col] = max(v) if v else None
    out.update(_per_request(rows, out))
    out.update(_listing(rows, out))
    out["accuracy_percent"] = _weighted([(_value(r, "accuracy_percent"), _value(r, "infer_samples")) for r in rows])
    out["read_share_percent"] = _mean(_values(rows, "read_share_percent"))
    out["cache"] = _same(rows, "cache", "unknown")
    out["checkpoint_verified"] = _verdict(rows, "checkpoint_verified")
    out["byte_check"] = _verdict(rows, "byte_check") or "not_checked"
    out.update(_per_rank(rows))
    return out


def _value(row: dict[str, Any], col: str) -> float | None:
    """``row[col]`` as a number; None when empty, NaN or not a number."""
    v = row.get(col)
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None  # NaN: a CSV's empty cell read back


def _values(rows: list[dict[str, Any]], col: str) -> list[float]:
    """The ranks' numeric values of ``col``, the empty ones left out."""
    return [v for v in (_value(r, col) for r in rows) if v is not None]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _weighted(pairs: list[tuple[float | None, float | None]]) -> float | None:
    """Mean of the values weighted by their weights, over the pairs that have both."""
    known = [(v, w) for v, w in pairs if v is not None and w is not None]
    total = sum(w for _, w in known)
    return sum(v * w for v, w in known) / total if total > 0 else None


def _status(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's status from the ranks': the first failing rank's phase and reason."""
    bad = [(k, r) for k, r in enumerate(rows) if r.get("status") != "ok"]
    if not bad:
        return {"status": "ok", "failed_phase": None, "reason": None}
    statuses = [r.get("status") for _, r in bad]
    status = next((s for s in ("interrupted", "failed") if s in statuses), None) or statuses[0] or "failed"
    own = [(k, r) for k, r in bad if not _relayed(r.get("reason"))]
    k, first = (own or bad)[0]  # the rank that failed first, not one stopped by its error
    return {"status": status, "failed_phase": first.get("failed_phase"), "reason": f"rank {k}: {first.get('reason')}"}


def _relayed(reason: Any) -> bool:
    """Did this rank stop for another rank's error (see :func:`dnnbench.run.coordinator.rebuild`)?"""
    return isinstance(reason, str) and _RELAYED_RE.search(reason) is not None


def _ok_requests(row: dict[str, Any]) -> float | None:
    """A rank's requests that returned data (request_mean_bytes is their mean)."""
    n = _value(row, "requests")
    return None if n is None else n - (_value(row, "errors") or 0.0)


def _per_request(rows: list[dict[str, Any]], out: dict[str, Any]) -> dict[str, Any]:
    """request_mean_bytes over every rank's successful requests (the plain mean when request
    counts are sampled); samples_per_request from the totals."""
    if all(_ok_requests(r) is not None for r in rows):
        mean_bytes = _weighted([(_value(r, "request_mean_bytes"), _ok_requests(r)) for r in rows])
    else:
        mean_bytes = _mean(_values(rows, "request_mean_bytes"))
    requests, samples = out.get("requests"), out.get("samples")
    return {"request_mean_bytes": mean_bytes,
            "samples_per_request": samples / requests if requests and samples is not None else None}


def _listing(rows: list[dict[str, Any]], out: dict[str, Any]) -> dict[str, Any]:
    """Every rank lists the whole dataset: rank 0's objects, over the slowest rank's time."""
    objects, seconds = _value(rows[0], "objects_listed"), out.get("list_s")
    rate = objects / seconds if objects is not None and seconds else rows[0].get("objects_listed_per_s")
    return {"objects_listed_per_s": rate}


def _same(rows: list[dict[str, Any]], col: str, otherwise: Any) -> Any:
    values = {r.get(col) for r in rows}
    return values.pop() if len(values) == 1 else otherwise


def _verdict(rows: list[dict[str, Any]], col: str) -> str | None:
    """``ok`` when every rank says ok, ``mismatch`` when any says so, else ``not_checked``
    (None when no rank has the column)."""
    values = [r.get(col) for r in rows]
    if all(v in (None, "") for v in values):
        return None
    if "mismatch" in values:
        return "mismatch"
    return "ok" if all(v == "ok" for v in values) else "not_checked"


def _per_rank(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The spread over ranks: AU mean and min, slowest and fastest rank's MiB/s, rank count."""
    au, mib = _values(rows, "au_percent"), _values(rows, "MiB_per_s")
    return {"au_percent": _mean(au), "au_min_percent": min(au) if au else None,
            "rank_min_MiB_per_s": min(mib) if mib else None, "rank_max_MiB_per_s": max(mib) if mib else None,
            "ranks": len(rows)}
