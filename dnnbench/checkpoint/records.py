"""The checkpoint workload's records: one per rank and save/load, turned into this rank's
summary columns (``ckpt_*`` in :mod:`dnnbench.reporting.columns`) and, on rank 0 from every
rank's records, the rows of ``checkpoints.csv`` (per rank, then over all ranks)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from dnnbench.reporting.columns import CHECKPOINT_COLUMNS

#: checkpoints.csv, in the run directory
CSV_NAME = "checkpoints.csv"
SAVE, LOAD = "save", "load"


@dataclass(frozen=True)
class OpRecord:
    """One rank's save or load of one checkpoint. ``bytes``: what the storage took or returned
    (the tensors' payload plus DCP's framing); ``read_cache``: loads only (dropped |
    exceeds_memory | warm); ``verified``: loads only (ok | mismatch)."""

    op: str
    index: int
    rank: int
    payload_bytes: int
    bytes: int
    duration_s: float
    read_cache: str | None = None
    verified: str | None = None

    @property
    def GB_per_s(self) -> float | None:
        return self.bytes / 1e9 / self.duration_s if self.duration_s > 0 else None


def _gbps(nbytes: float, seconds: float) -> float | None:
    return nbytes / 1e9 / seconds if seconds > 0 else None


def rank_columns(records: list[OpRecord], total_bytes: int, world: int) -> dict[str, Any]:
    """This rank's summary columns from its own records (the rank aggregate combines them)."""
    out: dict[str, Any] = {"ckpt_size_bytes": total_bytes, "ckpt_ranks": world}
    for op in (SAVE, LOAD):
        mine = [r for r in records if r.op == op]
        nbytes, seconds = sum(r.bytes for r in mine), sum(r.duration_s for r in mine)
        rate = _gbps(nbytes, seconds) if mine else None
        out.update({f"ckpt_{op}s": len(mine), f"ckpt_{op}_bytes": nbytes if mine else None,
                    f"ckpt_{op}_total_s": seconds if mine else None,
                    f"ckpt_{op}_longest_s": max((r.duration_s for r in mine), default=None),
                    f"ckpt_{op}_GB_per_s": rate, f"ckpt_{op}_slowest_rank_GB_per_s": rate})
    loads = [r for r in records if r.op == LOAD]
    out["ckpt_read_cache"] = loads[0].read_cache if loads else None
    out["ckpt_verified"] = (("ok" if all(r.verified == "ok" for r in loads) else "mismatch")
                            if loads else None)
    return out


def csv_rows(records: Iterable[OpRecord]) -> list[dict[str, Any]]:
    """checkpoints.csv's rows: every rank's, then one per save/load over all ranks (``rank``
    ``all``: bytes summed, the longest duration, GB/s = the bytes over it, the slowest rank's GB/s)."""
    records = sorted(records, key=lambda r: (r.op != SAVE, r.index, r.rank))
    rows = [{**asdict(r), "GB_per_s": r.GB_per_s, "slowest_rank_GB_per_s": None} for r in records]
    for op in (SAVE, LOAD):
        for index in sorted({r.index for r in records if r.op == op}):
            rows.append(_all_ranks([r for r in records if r.op == op and r.index == index]))
    return [{c: row.get(c) for c in CHECKPOINT_COLUMNS} for row in rows]


def _all_ranks(group: list[OpRecord]) -> dict[str, Any]:
    nbytes, longest = sum(r.bytes for r in group), max(r.duration_s for r in group)
    rates = [r.GB_per_s for r in group if r.GB_per_s is not None]
    verdicts = {r.verified for r in group}
    caches = {r.read_cache for r in group}
    return {"op": group[0].op, "index": group[0].index, "rank": "all",
            "payload_bytes": sum(r.payload_bytes for r in group), "bytes": nbytes, "duration_s": longest,
            "GB_per_s": _gbps(nbytes, longest), "slowest_rank_GB_per_s": min(rates) if rates else None,
            "read_cache": caches.pop() if len(caches) == 1 else "mixed",
            "verified": verdicts.pop() if len(verdicts) == 1 else "mismatch"}


def write_csv(run_dir: Path, records: Iterable[OpRecord]) -> Path:
    """checkpoints.csv in ``run_dir`` (a new file: never one dnnbench did not write)."""
    path = Path(run_dir) / CSV_NAME
    with open(path, "x", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CHECKPOINT_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(records))
    return path
