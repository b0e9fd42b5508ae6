"""The end-of-run summary: a table of the figures of the phases that ran, and the
one-line headline (``-q`` mode, sweep progress lines).

A run can skip training (``execution.phases.train: false``) and run only the inference
or checkpoint phase: then the training figures (all zero or empty) are left out and
the phase's own figures are shown, never ``0.00 MiB/s``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


def ran(row: dict[str, Any]) -> dict[str, bool]:
    """Which measured phases ran: train, inference, checkpoint. Training counts as run
    when it moved samples, or when nothing else ran (a run that failed early shows its
    empty training figures, not nothing)."""
    infer = _num(row.get("infer_samples")) is not None or _num(row.get("infer_wall_s")) is not None
    ckpt = _num(row.get("checkpoint_bytes")) is not None or bool(row.get("checkpoint_verified"))
    moved = (_num(row.get("samples")) or 0) > 0 or (_num(row.get("steps")) or 0) > 0
    return {"train": moved or not (infer or ckpt), "inference": infer, "checkpoint": ckpt}


def headline(row: dict[str, Any]) -> str:
    """The figures of the phases that ran, in one line: ``12.3 MiB/s, 456.7 samples/s;
    checkpoint save 590.5 MB/s, load 3,387.6 MB/s (verified ok)``."""
    phases, parts = ran(row), []
    if phases["train"]:
        parts.append(f"{_num(row.get('MiB_per_s')) or 0:,.2f} MiB/s, {_num(row.get('samples_per_s')) or 0:,.1f} "
                     "samples/s")
    if phases["inference"]:
        acc = _num(row.get("accuracy_percent"))
        parts.append(f"inference {fmt(_num(row.get('infer_samples_per_s')), 1)} samples/s "
                     f"({fmt(_num(row.get('infer_MiB_per_s')))} MiB/s)"
                     + (f", accuracy {acc:.1f} %" if acc is not None else ""))
    if phases["checkpoint"]:
        parts.append(f"checkpoint save {fmt(_num(row.get('checkpoint_save_MB_per_s')), 1)} MB/s, load "
                     f"{fmt(_num(row.get('checkpoint_load_MB_per_s')), 1)} MB/s "
                     f"(verified {row.get('checkpoint_verified') or '—'})")
    return "; ".join(parts)


def _pair(row: dict[str, Any], *keys: str, digits: int = 2) -> str:
    return " / ".join(fmt(row.get(k), digits) for k in keys)


def _train_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("epochs / steps", _pair(row, "epochs", "steps")),
        ("samples", fmt(row.get("samples"))),
        ("bytes", fmt(row.get("bytes"))),
        ("wall_s", fmt(row.get("wall_s"), 3)),
        ("samples_per_s", fmt(row.get("samples_per_s"), 1)),
        ("MiB_per_s (MB_per_s)", f"{fmt(row.get('MiB_per_s'))} ({fmt(row.get('MB_per_s'))})"),
        ("first / last epoch MiB_per_s", _pair(row, "first_epoch_MiB_per_s", "last_epoch_MiB_per_s")),
        ("au_percent", fmt(row.get("au_percent"), 1)),
        ("cache", fmt(row.get("cache"))),
        ("time_to_first_batch_s", fmt(row.get("time_to_first_batch_s"), 3)),
        ("request p50 / p99 ms", _pair(row, "request_p50_ms", "request_p99_ms", digits=3)),
        ("request max ms", fmt(row.get("request_max_ms"), 3)),
        ("ttfb p50 / p99 ms", _pair(row, "request_ttfb_p50_ms", "request_ttfb_p99_ms", digits=3)),
        ("decode p50 ms", fmt(row.get("decode_p50_ms"), 3)),
        ("read_share_percent", fmt(row.get("read_share_percent"), 1)),
        ("byte_check", fmt(row.get("byte_check"))),
        ("requests", fmt(row.get("requests"))),
    ]


def _phase_pairs(row: dict[str, Any], phases: dict[str, bool]) -> list[tuple[str, str]]:
    out = []
    if phases["inference"]:
        out += [("infer_samples (infer_wall_s)", f"{fmt(row.get('infer_samples'))} ({fmt(row.get('infer_wall_s'), 3)})"),
                ("infer samples_per_s / MiB_per_s", f"{fmt(row.get('infer_samples_per_s'), 1)} / "
                                                    f"{fmt(row.get('infer_MiB_per_s'))}"),
                ("accuracy_percent", fmt(row.get("accuracy_percent"), 1))]
    if phases["checkpoint"]:
        out += [("checkpoint_bytes", fmt(row.get("checkpoint_bytes"))),
                ("checkpoint save / load s", _pair(row, "checkpoint_save_s", "checkpoint_load_s", digits=3)),
                ("checkpoint save / load MB_per_s", _pair(row, "checkpoint_save_MB_per_s",
                                                          "checkpoint_load_MB_per_s", digits=1)),
                ("checkpoint_verified", fmt(row.get("checkpoint_verified")))]
    return out


def summary_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) of the run: its identity, the figures of the phases that ran, the rest."""
    phases = ran(row)
    pairs = [
        ("framework / trainer", f"{row.get('framework')} / {row.get('trainer')}"),
        ("storage / client", f"{row.get('storage')} / {row.get('client')}"),
        ("access / decode", f"{row.get('access')} / {row.get('decode')}"),
        ("workers x batch", f"{row.get('workers')} x {row.get('batch_size')}"),
        ("list_s (objects)", f"{fmt(row.get('list_s'), 3)} ({fmt(row.get('objects_listed'))})"),
    ]
    if phases["train"]:
        pairs += _train_pairs(row)
    pairs += _phase_pairs(row, phases)
    pairs += [("cpu_percent", fmt(row.get("cpu_percent"), 0)),
              ("peak_rss_MiB", fmt(row.get("peak_rss_MiB"), 0)),
              ("errors / retries", _pair(row, "errors", "retries")),
              ("reason", fmt(row.get("reason")))]
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
