"""Compare runs: pick them (run directories, a sweep, the last N), group them into
variants, and reduce each variant's repeats to mean, stdev, min and max per metric,
with ratios against a baseline variant.

A variant is the ``variant`` label a sweep gave its runs; a run without one is its own
variant, labelled by its run id. Failed runs are counted but left out of the statistics.
``stdev`` is the sample standard deviation (n - 1); it is empty for a single run.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dnnbench.errors import ConfigError, DataError
from dnnbench.reporting.columns import CATALOGUE, LIKE, SUMMARY_COLUMNS, TAG, compared

#: the compared columns, in comparison.csv's order (the table shows those with ``compared.table``)
CSV_METRICS = compared()
#: what makes two runs comparable: a difference in one of these compares unlike setups
#: (an S3 run against a filesystem baseline). ``config`` (the file's name) is recorded, not matched.
IDENTITY = ["config", *LIKE]
STATS = ("mean", "stdev", "min", "max")
#: read as numbers: the compared figures and the whole-number identity fields and tags
_NUMERIC = [m.name for m in CSV_METRICS] + [c.name for c in CATALOGUE if c.type is int and (c.like or c.role == TAG)]


@dataclass
class Comparison:
    """One row per variant (``table``) and the runs behind each (``groups``).

    ``variant`` is the label shown; ``key`` names the variant across invocations (the
    sweep's variant label, or the config's name for a run outside a sweep): the gate
    matches baselines by it.
    """

    table: pd.DataFrame
    groups: dict[str, pd.DataFrame]
    baseline: str | None
    best: dict[str, str] = field(default_factory=dict)  # metric -> label of the best mean
    #: variants whose own runs differ in identity: label -> {field: [values]}
    mixed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.table["variant"])

    def stat(self, label: str, metric: str, stat: str = "mean") -> float | None:
        v = self.table.loc[self.table["variant"] == label, f"{metric}_{stat}"]
        x = float(v.iloc[0]) if len(v) else math.nan
        return None if math.isnan(x) else x


# -- selecting runs -------------------------------------------------------------
def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reindex(columns=list(dict.fromkeys([*SUMMARY_COLUMNS, *df.columns])))
    for col in _NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("variant", "sweep_id", "status", "reason", "run_id"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"variant": str, "sweep_id": str,
                                                                          "run_id": str, "reason": str})


def read_run_dirs(run_dirs: list[str | Path]) -> pd.DataFrame:
    """The summary rows of these run directories, in order, with a ``run_dir`` column.

    Raises:
        DataError: a directory is missing or has no summary.csv.
    """
    frames = []
    for d in run_dirs:
        path = Path(d) / "summary.csv"
        if not path.is_file():
            raise DataError(f"{d} is not a run directory (no summary.csv)", reference=str(d),
                            hint="give folders under results/ such as results/20250101-120000-quickstart")
        frames.append(_read_csv(path).assign(run_dir=str(Path(d))))
    if not frames:
        raise DataError("no runs to compare", hint="give run directories, --sweep ID or --last N")
    return _normalise(pd.concat(frames, ignore_index=True))


def read_summary(output_dir: str | Path) -> pd.DataFrame:
    """``<output_dir>/summary.csv`` (every run) with a ``run_dir`` column.

    Raises:
        DataError: there is no summary yet.
    """
    path = Path(output_dir) / "summary.csv"
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"no runs recorded in {path}", reference=str(path),
                        hint="run a benchmark first, or pass --results DIR")
    df = _read_csv(path)
    return _normalise(df.assign(run_dir=[str(Path(output_dir) / str(r)) for r in df["run_id"]]))


def select_runs(output_dir: str | Path, sweeps: list[str] | None = None, last: int | None = None) -> pd.DataFrame:
    """Rows of ``summary.csv``: those of the given sweeps, else the last ``last`` rows,
    else the most recent sweep.

    Raises:
        DataError: nothing matches (the message lists the sweeps there are).
    """
    df = read_summary(output_dir)
    known = [s for s in dict.fromkeys(df["sweep_id"]) if s]
    if sweeps:
        missing = [s for s in sweeps if s not in known]
        if missing:
            close = difflib.get_close_matches(missing[0], known, n=3)
            raise DataError(f"no runs of sweep {missing[0]!r} in {Path(output_dir) / 'summary.csv'}",
                            reference="--sweep", hint=f"did you mean {', '.join(close)}?" if close else
                            f"recorded sweeps: {', '.join(known[-5:]) or 'none'}")
        df = df[df["sweep_id"].isin(sweeps)]
    elif last:
        df = df.tail(last)
    else:
        if not known:
            raise DataError("no sweep recorded yet", reference=str(Path(output_dir) / "summary.csv"),
                            hint="give run directories or --last N, or run a config with a sweep: section")
        df = df[df["sweep_id"] == known[-1]]
    return df.reset_index(drop=True)


# -- statistics -------------------------------------------------------------------
def _labels(df: pd.DataFrame) -> pd.Series:
    sweeps = {s for s in df["sweep_id"] if s}
    labels = []
    for _, r in df.iterrows():
        if r["variant"]:
            labels.append(f"{r['sweep_id']}/{r['variant']}" if len(sweeps) > 1 else str(r["variant"]))
        else:
            labels.append(str(r["run_id"]))
    return pd.Series(labels, index=df.index)


def describe(values: pd.Series) -> dict[str, float]:
    """mean, sample stdev (n - 1; NaN for one value), min and max of the finite values."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if not len(v):
        return dict.fromkeys(STATS, math.nan)
    return {"mean": float(v.mean()), "stdev": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "min": float(v.min()), "max": float(v.max())}


def compare(df: pd.DataFrame, baseline: str | None = None) -> Comparison:
    """Group runs into variants (in order of first appearance) and reduce their repeats.

    Args:
        df: summary rows (``read_run_dirs`` / ``select_runs``).
        baseline: label of the variant ratios are taken against; default the first
            variant with a successful run.

    Raises:
        ConfigError: ``baseline`` names no variant (close matches listed).
    """
    df = df.assign(label=_labels(df))
    groups = {label: g.reset_index(drop=True) for label, g in df.groupby("label", sort=False)}
    rows = [_variant_row(label, g) for label, g in groups.items()]
    table = pd.DataFrame(rows)
    ok = [r["variant"] for r in rows if r["ok_runs"]]
    if baseline is None:
        baseline = ok[0] if ok else None
    elif baseline not in groups:
        close = difflib.get_close_matches(baseline, list(groups), n=3)
        raise ConfigError(f"no variant {baseline!r} among the compared runs", reference="--baseline",
                          hint=f"did you mean {', '.join(close)}?" if close else f"variants: {', '.join(groups)}")
    for m in CSV_METRICS:
        base = table.loc[table["variant"] == baseline, f"{m.name}_mean"] if baseline else pd.Series(dtype=float)
        b = float(base.iloc[0]) if len(base) else math.nan
        table[f"{m.name}_ratio"] = table[f"{m.name}_mean"] / b if b and not math.isnan(b) else math.nan
    mixed = {label: d for label, g in groups.items() if (d := differing(g.to_dict("records")))}
    return Comparison(table, groups, baseline, _best(table), mixed)


# -- identity -----------------------------------------------------------------------
def identity_value(v: Any) -> Any:
    """A comparable identity value: None for missing / NaN, whole floats as ints (CSV reads 2 as 2.0)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return None
    if hasattr(v, "item"):  # numpy scalar
        v = v.item()
    return int(v) if isinstance(v, float) and v.is_integer() else v


def identity_of(row: Any) -> dict[str, Any]:
    """The identity fields of a summary row, a comparison row or a baseline's ``identity``."""
    return {k: identity_value(row.get(k)) for k in LIKE}


def identity_diff(base: Any, other: Any) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ (both recorded): ``{field: (base value, other value)}``."""
    a, b = identity_of(base), identity_of(other)
    return {k: (a[k], b[k]) for k in LIKE if a[k] is not None and b[k] is not None and a[k] != b[k]}


def differing(rows: list[Any]) -> dict[str, list[Any]]:
    """The identity fields on which ``rows`` disagree, each with its distinct values in order."""
    out: dict[str, list[Any]] = {}
    for k in LIKE:
        values = list(dict.fromkeys(v for v in (identity_value(r.get(k)) for r in rows) if v is not None))
        if len(values) > 1:
            out[k] = values
    return out


def describe_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    """``client fs -> boto3, workers 2 -> 4``."""
    return ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())


def describe_values(values: dict[str, list[Any]]) -> str:
    """``client (fs | boto3), workers (2 | 4)``."""
    return ", ".join(f"{k} ({' | '.join(str(v) for v in vs)})" for k, vs in values.items())


def identity_notes(c: Comparison) -> list[tuple[bool, str]]:
    """What ``compare`` says about identities, as ``(is_warning, text)``: a warning for a
    variant whose own runs differ, and for variants that differ when the runs were not one
    sweep (whose variants differ by design: then a note)."""
    notes = [(True, f"variant {label!r} groups runs that differ in {describe_values(d)}: its statistics "
                    "mix unlike runs") for label, d in c.mixed.items()]
    rows = c.table.to_dict("records")
    across = differing(rows)
    if not across:
        return notes
    sweeps = {r["sweep_id"] for r in rows}
    if len(sweeps) == 1 and None not in sweeps:
        notes.append((False, f"the variants differ in {describe_values(across)}, as the sweep set them"))
        return notes
    each = "; ".join(f"{r['variant']}: " + ", ".join(f"{k}={identity_value(r.get(k))}" for k in across)
                     for r in rows)
    notes.append((True, f"the compared runs differ in {', '.join(across)} ({each}): the ratios compare unlike "
                        "setups"))
    return notes


def _variant_row(label: str, g: pd.DataFrame) -> dict[str, Any]:
    ok = g[g["status"] == "ok"]
    failed = g[g["status"] != "ok"]
    status = "ok" if not len(failed) else ("failed" if not len(ok) else "partial")
    first = g.iloc[0]
    row: dict[str, Any] = {"variant": label, "key": first["variant"] or first["config"],
                           "runs": len(g), "ok_runs": len(ok), "status": status,
                           "reason": next((r for r in failed["reason"] if r), None) if len(failed) else None,
                           "sweep_id": first["sweep_id"]}
    row.update({c: first[c] for c in IDENTITY})
    for m in CSV_METRICS:
        for stat, value in describe(ok[m.name]).items():
            row[f"{m.name}_{stat}"] = value
    row["run_ids"] = " ".join(str(r) for r in g["run_id"])
    return row


def _best(table: pd.DataFrame) -> dict[str, str]:
    best = {}
    for m in CSV_METRICS:
        if m.better is None:
            continue
        means = table[f"{m.name}_mean"]
        finite = means.dropna()
        if len(finite) < 2 or finite.nunique() < 2:
            continue
        best[m.name] = str(table.loc[finite.idxmax() if m.better == "higher" else finite.idxmin(), "variant"])
    return best


def fresh_dir(output_dir: str | Path, name: str) -> Path:
    """``<output_dir>/<name>`` made new (``-2``, ``-3``... when taken): results are never overwritten."""
    from dnnbench.results import unique_dir

    return unique_dir(output_dir, name)
