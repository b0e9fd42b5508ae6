"""Machine- and human-readable results beside the CSVs: ``summary.json`` (typed values, units in
the names, the run's identity, the run rules) and ``report.md`` (headline, table, rules, files
and plots), for one run (:func:`write_run_documents`) and for a sweep
(:func:`write_sweep_documents`). Read with any JSON parser or Markdown viewer: no pandas needed.

Every value's type is its column's (:mod:`dnnbench.reporting.columns`): int, float, str or null
(empty: not measured, its reason in ``unmeasured``). Both files are written whole or not at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dnnbench.reporting.columns import COLUMNS, IDENTITY, RANKS, RULE, RUN, TAG
from dnnbench.reporting.rules import (MAX_SPREAD_PERCENT, MEMORY_MULTIPLE, MIN_REPEATS, MIN_STEPS, NA,
                                      REPEAT_METRIC, repeats_verdict)
from dnnbench.results import replace_text

#: the schema named in every summary.json (bumped when a key changes meaning)
SCHEMA = "dnnbench.summary/1"
#: a run's files that report.md links to, when present
RUN_FILES = ("summary.csv", "epochs.csv", "steps.csv", "requests.csv", "system.csv", "ranks.csv", "nodes.csv",
             "environment.json", "config.yaml")
#: a sweep's plots (reporting.plots), linked when present
PLOTS = ("throughput.png", "latency_cdf.png", "throughput_time.png")
#: the figures of report.md's table, in order, when measured
TABLE = ("MiB_per_s", "samples_per_s", "au_percent", "time_to_first_batch_s", "request_p50_ms", "request_p99_ms",
         "wall_s", "samples", "bytes", "bytes_listed", "cache", "byte_check", "ranks", "nodes",
         "first_done_MiB_per_s", "last_done_MiB_per_s", "rank_min_MiB_per_s", "rank_max_MiB_per_s",
         "clock_skew_ms", "start_skew_ms", "infer_samples_per_s", "checkpoint_save_MB_per_s",
         "checkpoint_load_MB_per_s")


def typed(name: str, value: Any) -> Any:
    """``value`` as its column's type (a CSV's text read back included); None when empty."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    col = COLUMNS.get(name)
    if col is None or col.type is str:
        return value if col is None else str(value)
    try:
        return int(float(value)) if col.type is int else float(value)
    except (TypeError, ValueError):
        return None


def _typed_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: typed(k, v) for k, v in row.items()}


def _section(row: dict[str, Any], *roles: str) -> dict[str, Any]:
    return {k: typed(k, v) for k, v in row.items() if k in COLUMNS and COLUMNS[k].role in roles}


def rules_section(row: dict[str, Any], enforced: str) -> dict[str, Any]:
    """The rules' verdicts with what each read and what it asks for."""
    return {
        "enforce": enforced,
        "dataset_size": {"verdict": row.get("rule_dataset_size"),
                         "dataset_bytes": typed("bytes_listed", row.get("bytes_listed")),
                         "client_memory_bytes": typed("client_memory_bytes", row.get("client_memory_bytes")),
                         "dataset_memory_ratio_x": typed("dataset_memory_ratio", row.get("dataset_memory_ratio")),
                         "required_ratio_x": MEMORY_MULTIPLE,
                         "cache_assisted": typed("cache_assisted", row.get("cache_assisted"))},
        "steps_per_epoch": {"verdict": row.get("rule_steps_per_epoch"),
                            "epoch_steps_min": typed("epoch_steps_min", row.get("epoch_steps_min")),
                            "required_steps": MIN_STEPS},
        "repeats": {"verdict": row.get("rule_repeats") or NA, "required_runs": MIN_REPEATS,
                    "max_spread_percent": MAX_SPREAD_PERCENT},
    }


def run_document(row: dict[str, Any], ranks: list[dict[str, Any]], nodes: list[dict[str, Any]],
                 unmeasured: dict[str, str], enforced: str) -> dict[str, Any]:
    """summary.json of one run."""
    return {
        "schema": SCHEMA, "kind": "run",
        "run": _section(row, RUN, TAG),
        "identity": _section(row, IDENTITY),
        "figures": {k: typed(k, v) for k, v in row.items()
                    if k in COLUMNS and COLUMNS[k].role not in (RUN, TAG, IDENTITY, RULE)},
        "units": {k: COLUMNS[k].unit for k in row if k in COLUMNS and COLUMNS[k].unit},
        "rules": rules_section(row, enforced),
        "ranks": [_typed_row(r) for r in ranks],
        "nodes": [_typed_row(n) for n in nodes],
        "unmeasured": dict(unmeasured),
    }


def _cell(name: str, value: Any) -> str:
    v = typed(name, value)
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{COLUMNS[name].digits}f}" if name in COLUMNS else f"{v:g}"
    return f"{v:,}" if isinstance(v, int) else str(v).replace("|", "\\|")


def _rules_md(rules: dict[str, Any]) -> list[str]:
    ds, st = rules["dataset_size"], rules["steps_per_epoch"]
    ratio = ds["dataset_memory_ratio_x"]
    lines = ["## Run rules (MLPerf Storage)", "",
             f"Enforced: {'yes (--rules mlperf: a failed rule is exit 4)' if rules['enforce'] == 'mlperf' else 'no'}",
             "", "| rule | verdict | measured | asked for |", "|---|---|---|---|",
             f"| dataset size | {ds['verdict']} | "
             f"{'—' if ratio is None else f'{ratio:.3g}x the client memory'}"
             f"{' (cache-assisted)' if ds['cache_assisted'] == 'yes' else ''} | >= {MEMORY_MULTIPLE:g}x |",
             f"| steps per epoch | {st['verdict']} | {st['epoch_steps_min'] if st['epoch_steps_min'] is not None else '—'}"
             f" | >= {MIN_STEPS} |",
             f"| repeats | {rules['repeats']['verdict']} | one run | {MIN_REPEATS} runs within "
             f"{MAX_SPREAD_PERCENT:g} % |"]
    return lines


def _ranks_md(ranks: list[dict[str, Any]]) -> list[str]:
    if not ranks:
        return []
    cols = ("rank", "node", "host", "MiB_per_s", "done_s", "start_offset_ms", "clock_offset_ms", "clock_error_ms")
    lines = ["## Ranks", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(c, r.get(c)) for c in cols) + " |" for r in ranks]
    return lines


def run_markdown(row: dict[str, Any], doc: dict[str, Any], files: list[str]) -> str:
    """report.md of one run."""
    ident = doc["identity"]
    head = (f"**{row.get('status')}** · {_cell('MiB_per_s', row.get('MiB_per_s'))} MiB/s · "
            f"{_cell('samples_per_s', row.get('samples_per_s'))} samples/s · AU {_cell('au_percent', row.get('au_percent'))} % · "
            f"{ident.get('framework')} on {ident.get('storage')} ({ident.get('client')}), {ident.get('trainer')}")
    lines = [f"# dnnbench run {row.get('run_id')}", "", head, ""]
    if row.get("reason"):
        lines += [f"Reason: {_cell('reason', row.get('reason'))}", ""]
    shown = [k for k in TABLE if typed(k, row.get(k)) is not None]
    lines += ["| figure | value |", "|---|---|"] + [f"| {k} | {_cell(k, row.get(k))} |" for k in shown] + [""]
    lines += _rules_md(doc["rules"]) + [""] + _ranks_md(doc["ranks"])
    lines += ["", "## Files", "", " · ".join(f"[{f}]({f})" for f in files), "",
              f"Plots: `benchmark.py compare {row.get('run_id')}` (or a sweep) draws throughput.png, "
              "latency_cdf.png and throughput_time.png.", ""]
    return "\n".join(lines)


def write_run_documents(run_dir: Path, row: dict[str, Any], ranks: list[dict[str, Any]],
                        nodes: list[dict[str, Any]], unmeasured: dict[str, str], enforced: str) -> None:
    """summary.json and report.md in ``run_dir``."""
    doc = run_document(row, ranks, nodes, unmeasured, enforced)
    replace_text(run_dir / "summary.json", json.dumps(doc, indent=2))
    files = [f for f in RUN_FILES if (run_dir / f).exists()] + ["summary.json"]
    replace_text(run_dir / "report.md", run_markdown(row, doc, files))


def variant_documents(groups: dict[str, Any], table: Any, repeat: int) -> list[dict[str, Any]]:
    """Each variant of a comparison: its runs, mean figures and the repeats rule."""
    out = []
    for rec in table.to_dict("records"):
        g = groups[rec["variant"]]
        ok = g[g["status"] == "ok"]
        verdict, spread = repeats_verdict(list(ok[REPEAT_METRIC]), repeat)
        out.append({"variant": rec["variant"], "status": rec["status"], "runs": int(rec["runs"]),
                    "ok_runs": int(rec["ok_runs"]), "run_ids": str(rec["run_ids"]).split(),
                    "means": {k[:-len("_mean")]: typed(k[:-len("_mean")], v) for k, v in rec.items()
                              if k.endswith("_mean")},
                    "rules": {"repeats": {"verdict": verdict, "spread_percent": spread,
                                          "metric": REPEAT_METRIC, "required_runs": MIN_REPEATS,
                                          "max_spread_percent": MAX_SPREAD_PERCENT}}})
    return out


def _sweep_markdown(doc: dict[str, Any], plots: list[str]) -> str:
    cols = ("MiB_per_s", "samples_per_s", "au_percent", "request_p99_ms")
    lines = [f"# dnnbench sweep {doc['sweep_id']}", "",
             f"{len(doc['variants'])} variants x {doc['repeat']} repeats; runs ok: "
             f"{sum(v['ok_runs'] for v in doc['variants'])} of {sum(v['runs'] for v in doc['variants'])}", "",
             "| variant | runs ok | " + " | ".join(f"{c} (mean)" for c in cols) + " | spread % | repeats rule |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    for v in doc["variants"]:
        spread = v["rules"]["repeats"]["spread_percent"]
        lines.append(f"| {v['variant']} | {v['ok_runs']}/{v['runs']} | "
                     + " | ".join(_cell(c, v["means"].get(c)) for c in cols)
                     + f" | {'—' if spread is None else f'{spread:.2f}'} | {v['rules']['repeats']['verdict']} |")
    lines += ["", f"Repeats rule: at least {MIN_REPEATS} successful runs per variant whose {REPEAT_METRIC} lie "
                  f"within {MAX_SPREAD_PERCENT:g} % (max - min over the mean); not applicable with repeat: 1.", ""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] if plots else ["No plots."]
    lines += ["", "Files: [comparison.csv](comparison.csv) · [sweep.json](sweep.json) · [summary.json](summary.json)", ""]
    return "\n".join(lines)


def write_sweep_documents(out_dir: Path, sweep_id: str, repeat: int, groups: dict[str, Any], table: Any,
                          enforced: str) -> dict[str, Any]:
    """summary.json and report.md of a sweep in its compare folder; returns the document."""
    doc = {"schema": SCHEMA, "kind": "sweep", "sweep_id": sweep_id, "repeat": repeat,
           "rules": {"enforce": enforced}, "variants": variant_documents(groups, table, repeat)}
    replace_text(out_dir / "summary.json", json.dumps(doc, indent=2))
    replace_text(out_dir / "report.md", _sweep_markdown(doc, [p for p in PLOTS if (out_dir / p).exists()]))
    return doc
