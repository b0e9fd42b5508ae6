"""The summary row of a multi-rank run, from its ranks' rows.

Each column combines as its catalogue entry says (:class:`dnnbench.reporting.columns.Ranks`):
totals summed; throughput summed (empty unless every rank measured it); times, latency
percentiles and peak memory the slowest rank's; accuracy weighted by inference samples;
per-request figures from the totals; listing figures rank 0's (every rank lists the whole
dataset) over the slowest rank's time; the spread over ranks in ``au_min_percent``,
``rank_min_MiB_per_s``, ``rank_max_MiB_per_s`` and ``ranks``; the status from the first
rank that failed on its own.

Across nodes: ``nodes``, the client machines' memory (each host once), the skew of the ranks'
clocks and train starts, and elbencho's two throughputs: ``first_done_MiB_per_s`` (every
rank's bytes until the first rank finished, over that time: all ranks still reading) beside
``last_done_MiB_per_s`` (all bytes over the time until the last rank finished). A rank's own
columns (``rank``, ``node``, ``host``, its clock offset and times) stay in ranks.csv;
:func:`by_node` gives one row per node.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from dnnbench.errors import RELAYED
from dnnbench.reporting.columns import CATALOGUE, PER_RANK, RANK_COLUMNS, Column, as_number, meets_target

Rows = list[dict[str, Any]]
#: the end of an error message raised on a rank for another rank's failure
_RELAYED_RE = re.compile(re.escape(RELAYED).replace(re.escape("{rank}"), r"\d+"))


#: rules that read combined values: applied after every other rule
_LAST = ("ratio", "rate", "meets")
#: the run-wide columns a node's row leaves out (they compare ranks across every node)
_RUN_WIDE = ("first_done_s", "first_done_MiB_per_s", "nodes", "clock_skew_ms")


def aggregate(rows: Rows) -> dict[str, Any]:
    """Rank 0's summary of the per-rank rows (rank order): rank 0's row, each column then
    combined by its rule (``ratio``, ``rate`` and ``meets`` last: they read combined values), a rank's
    own columns (``rank``, ``node``, ``host``...) left out."""
    out = {k: v for k, v in rows[0].items() if k not in RANK_COLUMNS}
    combined = [c for c in CATALOGUE if c.role != PER_RANK and c.ranks.how != "first"]
    for col in combined:
        if col.ranks.how not in _LAST:
            out[col.name] = _RULES[col.ranks.how](rows, col)
    for col in combined:
        if col.ranks.how in _LAST:
            out[col.name] = _LATER[col.ranks.how](rows, out, col)
    return out


def by_node(rows: Rows) -> Rows:
    """One row per node (in node order): ``node``, ``host`` and its ranks' rows combined as
    :func:`aggregate` does, less the columns that compare ranks across the whole run."""
    nodes: dict[Any, Rows] = {}
    for r in rows:
        nodes.setdefault(r.get("node"), []).append(r)
    out = []
    for node in sorted(nodes, key=lambda n: (n is None, n)):
        row = {"node": node, "host": nodes[node][0].get("host"), **aggregate(nodes[node])}
        out.append({k: v for k, v in row.items() if k not in _RUN_WIDE})
    return out


def _value(row: dict[str, Any], col: str) -> float | None:
    """``row[col]`` as a number; None when empty, NaN or not a number."""
    return as_number(row.get(col))


def _values(rows: Rows, col: Column) -> list[float]:
    """The ranks' numeric values of the column the rule reads, the empty ones left out."""
    name = col.ranks.of or col.name
    return [v for v in (_value(r, name) for r in rows) if v is not None]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _weighted(pairs: list[tuple[float | None, float | None]]) -> float | None:
    """Mean of the values weighted by their weights, over the pairs that have both."""
    known = [(v, w) for v, w in pairs if v is not None and w is not None]
    total = sum(w for _, w in known)
    return sum(v * w for v, w in known) / total if total > 0 else None


def _sum(rows: Rows, col: Column) -> int | None:
    v = _values(rows, col)
    return int(sum(v)) if v else None


def _sum_rates(rows: Rows, col: Column) -> float | None:
    v = _values(rows, col)
    return sum(v) if len(v) == len(rows) else None


def _slowest(rows: Rows, col: Column) -> float | None:
    v = _values(rows, col)
    return max(v) if v else None


def _fastest(rows: Rows, col: Column) -> float | None:
    v = _values(rows, col)
    return min(v) if v else None


def _weighted_rule(rows: Rows, col: Column) -> float | None:
    return _weighted([(_value(r, col.ranks.of or col.name), _value(r, col.ranks.by)) for r in rows])


def _status(rows: Rows, col: Column) -> Any:
    """The run's status from the ranks': the first failing rank's phase and reason."""
    bad = [(k, r) for k, r in enumerate(rows) if r.get("status") != "ok"]
    if not bad:
        return {"status": "ok", "failed_phase": None, "reason": None}[col.name]
    statuses = [r.get("status") for _, r in bad]
    status = next((s for s in ("interrupted", "failed") if s in statuses), None) or statuses[0] or "failed"
    own = [(k, r) for k, r in bad if not _relayed(r.get("reason"))]
    k, first = (own or bad)[0]  # the rank that failed first, not one stopped by its error
    return {"status": status, "failed_phase": first.get("failed_phase"),
            "reason": f"rank {k}: {first.get('reason')}"}[col.name]


def _relayed(reason: Any) -> bool:
    """Did this rank stop for another rank's error (see :func:`dnnbench.run.coordinator.rebuild`)?"""
    return isinstance(reason, str) and _RELAYED_RE.search(reason) is not None


def _ok_requests(row: dict[str, Any]) -> float | None:
    """A rank's requests that returned data (request_mean_bytes is their mean)."""
    n = _value(row, "requests")
    return None if n is None else n - (_value(row, "errors") or 0.0)


def _mean_per_request(rows: Rows, col: Column) -> float | None:
    """The mean over every rank's successful requests (the plain mean when request counts are sampled)."""
    if all(_ok_requests(r) is not None for r in rows):
        return _weighted([(_value(r, col.name), _ok_requests(r)) for r in rows])
    return _mean(_values(rows, col))


def _ratio(rows: Rows, out: dict[str, Any], col: Column) -> Any:
    """``of / by`` of the combined values; else empty, or rank 0's value (``otherwise="first"``)."""
    num, den = _value(out, col.ranks.of), out.get(col.ranks.by)
    if num is not None and den:
        return num / den / col.ranks.scale
    return rows[0].get(col.name) if col.ranks.otherwise == "first" else None


def _rate(rows: Rows, out: dict[str, Any], col: Column) -> float | None:
    """The sum over ranks of ``of`` over the combined ``by``; empty unless every rank has ``of``."""
    num, den = _values(rows, col), _value(out, col.ranks.by)
    return sum(num) / den / col.ranks.scale if num and len(num) == len(rows) and den else None


def _spread(rows: Rows, col: Column) -> float | None:
    v = _values(rows, col)
    return max(v) - min(v) if v else None


def _distinct(rows: Rows, col: Column) -> int | None:
    values = {r.get(col.ranks.of) for r in rows} - {None, ""}
    return len(values) or None


def _sum_hosts(rows: Rows, col: Column) -> int | None:
    """The sum of one value per machine (the first rank's on each ``host``; two launchers on one
    machine count it once), empty unless every machine has one."""
    first: dict[Any, float | None] = {}
    for r in rows:
        first.setdefault(r.get("host"), _value(r, col.name))
    values = list(first.values())
    return int(sum(values)) if values and None not in values else None


def _same(rows: Rows, col: Column) -> Any:
    values = {r.get(col.name) for r in rows}
    return values.pop() if len(values) == 1 else col.ranks.otherwise


def _verdict(rows: Rows, col: Column) -> str | None:
    """``ok`` when every rank says ok, ``mismatch`` when any says so, else ``not_checked``
    (``otherwise`` when no rank has the column)."""
    values = [r.get(col.name) for r in rows]
    if all(v in (None, "") for v in values):
        return col.ranks.otherwise
    if "mismatch" in values:
        return "mismatch"
    return "ok" if all(v == "ok" for v in values) else "not_checked"


_RULES: dict[str, Callable[[Rows, Column], Any]] = {
    "status": _status, "sum": _sum, "sum_rates": _sum_rates, "slowest": _slowest, "fastest": _fastest,
    "mean": lambda rows, col: _mean(_values(rows, col)), "weighted": _weighted_rule,
    "mean_per_request": _mean_per_request, "same": _same, "verdict": _verdict,
    "count": lambda rows, col: len(rows), "spread": _spread, "distinct": _distinct, "sum_hosts": _sum_hosts,
}
_LATER: dict[str, Callable[[Rows, dict[str, Any], Column], Any]] = {
    "ratio": _ratio, "rate": _rate,
    "meets": lambda rows, out, col: meets_target(out.get(col.ranks.of), out.get(col.ranks.by))}
