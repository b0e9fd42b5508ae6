"""Baselines and the CI regression gate.

A baseline is a JSON file of per-variant statistics (mean, stdev, min, max, runs) of
the gated metrics, written by ``--save-baseline FILE``. The gate compares the means of
a new set of runs with it, variant by variant (matched by the sweep's variant label, or
the config's name for runs outside a sweep; a baseline of one variant and a run of one
variant are matched whatever their names). The gated metrics are the catalogue's columns
with a ``gate`` (:mod:`dnnbench.reporting.columns`), each checked in its better direction:

- ``MiB_per_s`` (throughput) regresses when it drops by more than the tolerance;
- ``request_p99_ms`` (p99 request latency) and ``time_to_first_batch_s`` regress when
  they rise by more than the tolerance.

The tolerance is ``--max-regression 10%`` (the default), with per-metric overrides
such as ``--max-regression request_p99_ms=50%``. A metric the baseline or the new run
did not measure is not checked.

Like is gated with like: a matched variant whose identity (framework, storage, client,
access, decode, dataset, trainer, workers, batch size, emulation) differs from the
baseline's is refused (exit 2, naming the fields) unless ``--allow-mismatch`` is given;
then the differences are listed as warnings and the gate goes on.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnbench import __version__
from dnnbench.errors import ConfigError
from dnnbench.reporting.columns import gated
from dnnbench.reporting.compare import IDENTITY, STATS, Comparison, describe_diff, identity_diff

FORMAT = "dnnbench-baseline/1"
DEFAULT_TOLERANCE = 0.10


#: the gated columns (catalogue ``gate``), in compare's order
GATED = gated()
_NAMES = [g.name for g in GATED]


@dataclass
class Regression:
    variant: str
    metric: str
    what: str
    baseline: float
    current: float
    change: float  # relative, signed: (current - baseline) / baseline
    tolerance: float

    def line(self) -> str:
        return (f"REGRESSION {self.variant}: {self.metric} ({self.what}) {_num(self.baseline)} -> "
                f"{_num(self.current)} ({self.change * 100:+.1f}%, tolerance {self.tolerance * 100:g}%)")


@dataclass
class GateResult:
    regressions: list[Regression] = field(default_factory=list)
    checked: int = 0  # metric comparisons made
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.regressions


def _num(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.1f}"


def parse_tolerances(specs: list[str] | None) -> dict[str, float]:
    """``["10%"]`` (or ``["10"]``: a bare number is a percentage too) -> ``{"*": 0.10}``;
    ``"request_p99_ms=50%"`` sets one metric's tolerance.

    Raises:
        ConfigError: not a number, negative, or an unknown metric.
    """
    out = {"*": DEFAULT_TOLERANCE}
    for spec in specs or []:
        metric, sep, value = spec.rpartition("=")
        key = metric.strip() if sep else "*"
        if key != "*" and key not in _NAMES:
            raise ConfigError(f"{key!r} is not a gated metric", reference="--max-regression",
                              hint=f"gated metrics: {', '.join(_NAMES)}")
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", value)
        if not m:
            raise ConfigError(f"{spec!r} is not a tolerance such as 10%", reference="--max-regression")
        out[key] = float(m.group(1)) / 100
    return out


def make_baseline(c: Comparison, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The baseline document of a comparison (variants with at least one successful run)."""
    variants = {}
    for _, row in c.table.iterrows():
        if not row["ok_runs"]:
            continue
        metrics = {}
        for name in _NAMES:
            stats = {s: _clean(row[f"{name}_{s}"]) for s in STATS}
            if stats["mean"] is not None:
                metrics[name] = stats
        variants[str(row["key"])] = {
            "runs": int(row["ok_runs"]), "metrics": metrics,
            "identity": {k: _clean(row.get(k)) for k in IDENTITY},
        }
    return {"format": FORMAT, "dnnbench": __version__, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": source or {}, "variants": variants}


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):  # numpy scalar
        v = v.item()
    return v


def save_baseline(path: str | Path, doc: dict[str, Any]) -> Path:
    """Write the baseline (atomically; an existing file is replaced: it is the user's to version).

    Raises:
        ConfigError: there is nothing to save (no successful run).
    """
    if not doc["variants"]:
        raise ConfigError("no successful run to save as a baseline", reference=str(path),
                          hint="fix the failing runs first")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(p)
    return p


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline file.

    Raises:
        ConfigError: missing, not JSON, or not a dnnbench baseline.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("baseline file not found", reference=str(p),
                          hint="write one with --save-baseline FILE on a good run") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read baseline: {e}", reference=str(p)) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("variants"), dict):
        raise ConfigError(f"not a dnnbench baseline (expected format {FORMAT!r})", reference=str(p),
                          hint="write one with --save-baseline FILE")
    return doc


def check(baseline: dict[str, Any], c: Comparison, tolerances: dict[str, float],
          allow_mismatch: bool = False) -> GateResult:
    """Compare the means of ``c`` with the baseline.

    Raises:
        ConfigError: no variant of the baseline is among the compared runs, or (without
            ``allow_mismatch``) a matched variant's identity differs from the baseline's.
    """
    result = GateResult()
    pairs = _pairs(baseline["variants"], c, result.notes)
    if not pairs:
        raise ConfigError(f"none of the baseline's variants ({', '.join(baseline['variants'])}) is among the "
                          f"compared runs ({', '.join(c.labels)})", reference="--baseline",
                          hint="gate the same config (and sweep) the baseline was saved from")
    _check_identities(baseline["variants"], c, pairs, allow_mismatch, result.notes)
    for base_key, label in pairs:
        metrics = baseline["variants"][base_key]["metrics"]
        ok_runs = int(c.table.loc[c.table["variant"] == label, "ok_runs"].iloc[0])
        if not ok_runs:
            result.notes.append(f"{label}: no successful run, nothing to check")
            continue
        for g in GATED:
            b = (metrics.get(g.name) or {}).get("mean")
            cur = c.stat(label, g.name)
            if b is None or cur is None or b <= 0:
                continue
            tol = tolerances.get(g.name, tolerances.get("*", DEFAULT_TOLERANCE))
            change = (cur - b) / b
            result.checked += 1
            worse = change < -tol if g.better == "higher" else change > tol
            if worse:
                result.regressions.append(Regression(label, g.name, g.gate, b, cur, change, tol))
    return result


def mismatches(base: dict[str, Any], c: Comparison, pairs: list[tuple[str, str]]) -> dict[str, dict[str, tuple]]:
    """``{variant: {field: (baseline value, value now)}}`` for each matched pair whose identities
    differ (a field the baseline did not record, as in baselines of older versions, is not compared)."""
    rows = c.table.set_index("variant")
    found = {label: identity_diff(base[key].get("identity") or {}, rows.loc[label]) for key, label in pairs}
    return {label: diff for label, diff in found.items() if diff}


def _check_identities(base: dict[str, Any], c: Comparison, pairs: list[tuple[str, str]], allow: bool,
                      notes: list[str]) -> None:
    """Refuse (or, allowed, note) matched variants that are not like the baseline's.

    Raises:
        ConfigError: a mismatch and not ``allow``.
    """
    found = mismatches(base, c, pairs)
    lines = [f"{label}: {describe_diff(diff)}" for label, diff in found.items()]
    if found and not allow:
        hint = ("gate the configuration the baseline was saved from, or save a new baseline with --save-baseline; "
                "--allow-mismatch gates anyway")
        if any(str(a).startswith("fs:") and str(b).startswith("fs:")
               for diff in found.values() for a, b in [diff.get("storage", ("", ""))]):
            hint += "; a filesystem store is named by its path: give it a stable storage.name"
        raise ConfigError("the runs are not like the baseline's (baseline -> now): the gate would compare unlike "
                          "setups", reference="--baseline", details=lines, hint=hint)
    notes += [f"not like the baseline, gated anyway (--allow-mismatch): {line}" for line in lines]


def _pairs(base: dict[str, Any], c: Comparison, notes: list[str]) -> list[tuple[str, str]]:
    """(baseline key, compared label) pairs: by key where keys are unique, else by label."""
    labels = c.labels
    if len(base) == 1 and len(labels) == 1:
        return [(next(iter(base)), labels[0])]
    keys = [str(k) for k in c.table["key"]]
    by = dict(zip(keys, labels)) if len(set(keys)) == len(keys) else dict(zip(labels, labels))
    pairs = [(b, by[b]) for b in base if b in by]
    notes += [f"baseline variant {b!r} not among the compared runs: not checked" for b in base if b not in by]
    notes += [f"variant {k!r} is not in the baseline: not checked" for k in by if k not in base]
    return pairs


@dataclass
class GateSpec:
    """What ``--baseline FILE``, ``--max-regression`` and ``--save-baseline FILE`` asked for."""

    doc: dict[str, Any] | None  # the loaded baseline (None: only saving)
    file: str | None
    tolerances: dict[str, float]
    save: str | None
    allow_mismatch: bool = False


def gate_spec(baseline_file: str | None, max_regression: list[str] | None, save: str | None,
              allow_mismatch: bool = False) -> GateSpec | None:
    """Check the gate's arguments before anything runs; None when no gate is asked for.

    Raises:
        ConfigError: a missing or invalid baseline file, a bad tolerance, or a tolerance
            (or ``--allow-mismatch``) without a baseline.
    """
    for flag, given in (("--max-regression", max_regression), ("--allow-mismatch", allow_mismatch)):
        if given and not baseline_file:
            raise ConfigError(f"{flag} needs --baseline FILE to compare with", reference=flag,
                              hint="save one first: --save-baseline FILE")
    if not baseline_file and not save:
        return None
    return GateSpec(load_baseline(baseline_file) if baseline_file else None, baseline_file,
                    parse_tolerances(max_regression), save, allow_mismatch)


def save_if_complete(spec: GateSpec, c: Comparison) -> Path | None:
    """Save ``c`` as the baseline ``spec.save`` unless a run failed (then None: nothing written)."""
    if not spec.save or (c.table["ok_runs"] < c.table["runs"]).any():
        return None
    return save_baseline(spec.save, make_baseline(c, {"run_ids": " ".join(c.table["run_ids"])}))
