"""The end-of-run summary: a table of the figures of the phases that ran, and the
one-line headline (``-q`` mode, sweep progress lines).

A run can skip training (``execution.phases.train: false``) and run only the inference
or checkpoint phase: then the training figures (all zero or empty) are left out and
the phase's own figures are shown, never ``0.00 MiB/s``. Each figure is shown with its
catalogue digits (:mod:`dnnbench.reporting.columns`); this module lays them out.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dnnbench.reporting.columns import COLUMNS, phase_columns
from dnnbench.ui.fit import Col, fit_table, table_width


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def fmt(v: Any, digits: int = 2) -> str:
    """A figure for people: thousands separators, ``—`` when not measured."""
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


#: columns whose recorded value reads better as a word on the console
_WORDS = {"au_meets_target": {"true": "pass", "false": "fail"}}


def shown(row: dict[str, Any], name: str) -> str:
    """``row[name]`` with its column's digits (``—`` when empty; ``pass``/``fail`` for a verdict)."""
    value = row.get(name)
    return _WORDS.get(name, {}).get(str(value).lower(), fmt(value, COLUMNS[name].digits))


def _figure(row: dict[str, Any], name: str) -> str:
    """A rate as a number with its column's digits (``—`` when empty)."""
    return fmt(_num(row.get(name)), COLUMNS[name].digits)


def _has(row: dict[str, Any], name: str) -> bool:
    v = row.get(name)
    return bool(v) if COLUMNS[name].type is str else _num(v) is not None


def ran(row: dict[str, Any]) -> dict[str, bool]:
    """Which measured phases ran: train, inference, checkpoint. A phase ran when one of its
    columns has a value; training counts as run when it moved samples, or when nothing else
    ran (a run that failed early shows its empty training figures, not nothing)."""
    infer, ckpt, work = (any(_has(row, c.name) for c in phase_columns(p))
                         for p in ("inference", "checkpoint", "workload"))
    work = work or row.get("trainer") == "checkpoint"  # the workload, even when it failed early
    moved = (_num(row.get("samples")) or 0) > 0 or (_num(row.get("steps")) or 0) > 0
    return {"train": moved or not (infer or ckpt or work), "inference": infer, "checkpoint": ckpt,
            "workload": work}


def headline(row: dict[str, Any]) -> str:
    """The figures of the phases that ran, in one line: ``12.3 MiB/s, 456.7 samples/s;
    checkpoint save 590.5 MB/s, load 3,387.6 MB/s (verified ok)``."""
    phases, parts = ran(row), []
    if phases["train"]:
        mib, sps = (f"{_num(row.get(k)) or 0:,.{COLUMNS[k].digits}f}" for k in ("MiB_per_s", "samples_per_s"))
        parts.append(f"{mib} MiB/s, {sps} samples/s" + _au_verdict(row))
    if phases["inference"]:
        acc = _num(row.get("accuracy_percent"))
        parts.append(f"inference {_figure(row, 'infer_samples_per_s')} samples/s "
                     f"({_figure(row, 'infer_MiB_per_s')} MiB/s)"
                     + (f", accuracy {acc:.{COLUMNS['accuracy_percent'].digits}f} %" if acc is not None else ""))
    if phases["checkpoint"]:
        parts.append(f"checkpoint save {_figure(row, 'checkpoint_save_MB_per_s')} MB/s, load "
                     f"{_figure(row, 'checkpoint_load_MB_per_s')} MB/s "
                     f"(verified {row.get('checkpoint_verified') or '—'})")
    if phases["workload"]:
        parts.append(f"checkpoints save {_figure(row, 'ckpt_save_GB_per_s')} GB/s (slowest rank "
                     f"{_figure(row, 'ckpt_save_slowest_rank_GB_per_s')}), load {_figure(row, 'ckpt_load_GB_per_s')} "
                     f"GB/s ({row.get('ckpt_read_cache') or '—'}; verified {row.get('ckpt_verified') or '—'})")
    return "; ".join(parts)


def _au_verdict(row: dict[str, Any]) -> str:
    """``, AU 93.1 % (target 90.0 %: pass)`` when the run has an AU target, else empty."""
    if _num(row.get("au_target_percent")) is None:
        return ""
    return (f", AU {shown(row, 'au_percent')} % (target {shown(row, 'au_target_percent')} %: "
            f"{shown(row, 'au_meets_target')})")


class Line(NamedTuple):
    """A line of the summary table: what it shows, its columns, and how their values join
    (``" / "``, or ``"()"``: the second in brackets after the first)."""

    what: str
    columns: tuple[str, ...]
    join: str = " / "
    optional: bool = False  # shown only when its first column has a value


def _one(name: str) -> Line:
    return Line(name, (name,))


#: the figures of each phase, in the order shown
LAYOUT: dict[str, list[Line]] = {
    "list": [Line("list_s (objects)", ("list_s", "objects_listed"), "()")],
    "train": [
        Line("epochs / steps", ("epochs", "steps")), _one("samples"), _one("bytes"), _one("wall_s"),
        _one("samples_per_s"), Line("MiB_per_s (MB_per_s)", ("MiB_per_s", "MB_per_s"), "()"),
        Line("first / last epoch MiB_per_s", ("first_epoch_MiB_per_s", "last_epoch_MiB_per_s")),
        _one("au_percent"), Line("AU target % (pass/fail)", ("au_target_percent", "au_meets_target"), "()", optional=True),
        _one("cache"), _one("time_to_first_batch_s"),
        Line("request p50 / p99 ms", ("request_p50_ms", "request_p99_ms")),
        Line("request max ms", ("request_max_ms",)),
        Line("ttfb p50 / p99 ms", ("request_ttfb_p50_ms", "request_ttfb_p99_ms")),
        Line("decode p50 ms", ("decode_p50_ms",)), _one("read_share_percent"), _one("byte_check"),
        _one("requests"),
    ],
    "inference": [
        Line("infer_samples (infer_wall_s)", ("infer_samples", "infer_wall_s"), "()"),
        Line("infer samples_per_s / MiB_per_s", ("infer_samples_per_s", "infer_MiB_per_s")),
        _one("accuracy_percent"),
    ],
    "checkpoint": [
        _one("checkpoint_bytes"), Line("checkpoint save / load s", ("checkpoint_save_s", "checkpoint_load_s")),
        Line("checkpoint save / load MB_per_s", ("checkpoint_save_MB_per_s", "checkpoint_load_MB_per_s")),
        _one("checkpoint_verified"),
    ],
    "ranks": [
        Line("ranks / nodes", ("ranks", "nodes")),
        Line("first / last done MiB_per_s", ("first_done_MiB_per_s", "last_done_MiB_per_s")),
        Line("rank min / max MiB_per_s", ("rank_min_MiB_per_s", "rank_max_MiB_per_s")),
        Line("clock / start skew ms", ("clock_skew_ms", "start_skew_ms")),
    ],
    "rules": [
        Line("rule dataset_size (x memory)", ("rule_dataset_size", "dataset_memory_ratio"), "()"),
        Line("rule steps_per_epoch (min)", ("rule_steps_per_epoch", "epoch_steps_min"), "()"),
        _one("rule_repeats"), _one("cache_assisted"),
    ],
    "workload": [
        Line("ckpt_size_bytes (ranks)", ("ckpt_size_bytes", "ckpt_ranks"), "()"),
        Line("ckpt saves / loads", ("ckpt_saves", "ckpt_loads")),
        Line("ckpt save / load bytes", ("ckpt_save_bytes", "ckpt_load_bytes")),
        Line("ckpt save / load GB_per_s", ("ckpt_save_GB_per_s", "ckpt_load_GB_per_s")),
        Line("slowest rank save / load GB_per_s", ("ckpt_save_slowest_rank_GB_per_s",
                                                   "ckpt_load_slowest_rank_GB_per_s")),
        Line("longest save / load s", ("ckpt_save_longest_s", "ckpt_load_longest_s")),
        _one("ckpt_read_cache"), _one("ckpt_verified"),
    ],
    "run": [_one("cpu_percent"), _one("peak_rss_MiB"), Line("errors / retries", ("errors", "retries")),
            _one("reason")],
}
#: the identity lines, values as recorded
_IDENTITY = [("framework / trainer", ("framework", "trainer"), " / "),
             ("storage / client", ("storage", "client"), " / "),
             ("access / decode", ("access", "decode"), " / "),
             ("workers x batch", ("workers", "batch_size"), " x ")]


def _pair(row: dict[str, Any], line: Line) -> tuple[str, str]:
    values = [shown(row, c) for c in line.columns]
    return line.what, f"{values[0]} ({values[1]})" if line.join == "()" else line.join.join(values)


def summary_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) of the run: its identity, the figures of the phases that ran, the rest."""
    phases = ran(row)
    pairs = [(what, join.join(str(row.get(c)) for c in cols)) for what, cols, join in _IDENTITY]
    phases["ranks"] = _has(row, "ranks")
    phases["rules"] = _has(row, "rule_dataset_size")
    for part in ("list", "train", "inference", "checkpoint", "workload", "ranks", "rules", "run"):
        if phases.get(part, True):
            pairs += [_pair(row, line) for line in LAYOUT[part]
                      if not line.optional or _has(row, line.columns[0])]
    return pairs


def summary_table(row: dict[str, Any], width: int | None = None) -> Table:
    """The pairs in two what/value column pairs when they fit ``width`` unwrapped, else in one."""
    status = row.get("status")
    style = "green" if status == "ok" else "red"
    title = f"dnnbench {escape(str(row.get('run_id')))}  [{style}]{escape(str(status))}[/]"
    pairs = [(escape(a), escape(b)) for a, b in summary_pairs(row)]
    half = (len(pairs) + 1) // 2
    left, right = pairs[:half], pairs[half:] + [("", "")] * (2 * half - len(pairs))
    wide = [Col("what", [a for a, _ in left]), Col("value", [b for _, b in left], "right"),
            Col("what", [a for a, _ in right]), Col("value", [b for _, b in right], "right")]
    narrow = [Col("what", [a for a, _ in pairs]), Col("value", [b for _, b in pairs], "right")]
    cols = wide if width is None or table_width(wide, Console(width=10_000)) <= width else narrow
    return fit_table(cols, width, title=title, header_style="bold").table
