"""Rich rendering of run events, the summary table and errors."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from dnnbench.errors import BenchError, ConfigError

MiB = 2**20


class RateColumn(ProgressColumn):
    """Items/s and MiB/s of a task since it started (bytes kept in task.fields)."""

    def __init__(self, unit: str = "samples"):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("", style="progress.data.speed")
        items = task.completed / elapsed
        mib = task.fields.get("nbytes", 0) / MiB / elapsed
        unit = task.fields.get("unit", self.unit)
        return Text(f"{items:,.0f} {unit}/s  {mib:,.1f} MiB/s", style="progress.data.speed")


class RichEvents:
    """Draws phases, progress bars and the final table on a rich console."""

    def __init__(self, console: Console | None = None, quiet: bool = False, get_time=None,
                 err_console: Console | None = None):
        self.console = console or Console(stderr=False)
        self.err_console = err_console or self.console
        self.quiet = quiet
        self._get_time = get_time
        self._progress: Progress | None = None
        self._task = None
        self._bytes = 0

    def notice(self, message: str) -> None:
        if not self.quiet:
            self.err_console.print(f"[cyan]note[/] {_escape(message)}", highlight=False)

    def warning(self, message: str) -> None:
        self.err_console.print(f"[yellow]warning[/] {_escape(message)}", highlight=False)

    def phase_start(self, name: str) -> None:
        if not self.quiet:
            self.console.print(f"[bold]{name}[/] ...", highlight=False)

    def phase_end(self, name: str, seconds: float, detail: str = "") -> None:
        if not self.quiet:
            self.console.print(f"[bold]{name}[/] done in {seconds:.2f} s {detail}", highlight=False)

    def task_start(self, description: str, total: int | None, unit: str = "samples") -> None:
        if self.quiet:
            return
        kwargs = {"get_time": self._get_time} if self._get_time else {}
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  RateColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(),
                                  console=self.console, transient=False, **kwargs)
        self._progress.start()
        self._bytes = 0
        self._task = self._progress.add_task(description, total=total, nbytes=0, unit=unit)

    def task_advance(self, items: int, nbytes: int) -> None:
        if self._progress is not None:
            self._bytes += nbytes
            self._progress.update(self._task, advance=items, nbytes=self._bytes)

    def task_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def summary(self, row: dict[str, Any], run_dir: str, unmeasured: dict[str, str]) -> None:
        if self.quiet:
            self.console.print(f"{row.get('status')}: {row.get('MiB_per_s') or 0:.2f} MiB/s, "
                               f"results in {run_dir}", highlight=False)
            return
        self.console.print(summary_table(row))
        for col, reason in sorted(unmeasured.items()):
            self.console.print(f"[dim]{col} not measured: {reason}[/]", highlight=False)
        self.console.print(f"results: [bold]{run_dir}[/]", highlight=False)

    # -- sweeps (dnnbench.sweep) ---------------------------------------------------
    def sweep_start(self, sweep_id: str, labels: list[str], repeats: int) -> None:
        if not self.quiet:
            rep = f" x {repeats} repeats" if repeats > 1 else ""
            self.console.print(f"[bold]sweep[/] {_escape(sweep_id)}: {len(labels)} variants{rep}", highlight=False)

    def variant_start(self, n: int, total: int, label: str, rep: int, repeats: int) -> None:
        if not self.quiet:
            rep_text = f" (repeat {rep}/{repeats})" if repeats > 1 else ""
            self.console.rule(f"[bold]run {n}/{total}[/] {_escape(label)}{rep_text}", align="left")

    def variant_end(self, n: int, total: int, label: str, rep: int, repeats: int, status: str,
                    reason: str | None, run_dir: str | None, row: dict[str, Any]) -> None:
        rep_text = f" r{rep}" if repeats > 1 else ""
        head = f"[{n}/{total}] {_escape(label)}{rep_text}"
        if status == "ok":
            mib, sps = _num(row.get("MiB_per_s")), _num(row.get("samples_per_s"))
            self.console.print(f"[green]ok[/] {head}: {mib:,.2f} MiB/s, {sps:,.1f} samples/s  "
                               f"[dim]{_escape(run_dir or '')}[/]", highlight=False)
        else:
            self.console.print(f"[red]{_escape(status)}[/] {head}: {_escape(reason or 'no reason recorded')}  "
                               f"[dim]{_escape(run_dir or '')}[/]", highlight=False)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


#: table columns in the order they are given up when the terminal is narrow (last first)
_COMPARE_PRIORITY = ["MiB_per_s", "request_p99_ms", "time_to_first_batch_s", "au_percent", "request_p50_ms",
                     "samples_per_s", "cpu_percent"]


def comparison_table(c: Any, title: str = "dnnbench compare", width: int | None = None) -> Table:
    """Variants as rows, key metrics as columns (mean, ± stdev over repeats and the ratio to the
    baseline variant below it); the best mean of each metric in bold green. With a ``width``,
    the least important columns are left out until the table fits (comparison.csv has all)."""
    from dnnbench.metrics.compare import TABLE_METRICS

    label_w = min(30, max(len(part) for v in c.table["variant"] for part in str(v).split(",")) + 4)
    keep = len(_COMPARE_PRIORITY)
    if width is not None:
        keep = max(1, min(keep, (width - label_w - 6 - 12) // 11))
    priority = _COMPARE_PRIORITY
    if set(c.table["trainer"].dropna()) == {"read"}:
        priority = [p for p in priority if p != "au_percent"]  # no compute: AU is ~0 by definition
    shown = [m for m in TABLE_METRICS if m.name in priority[:keep]]
    dropped = [m.title for m in TABLE_METRICS if m not in shown and m.name in priority]
    base = f"  baseline: {_escape(c.baseline)}" if c.baseline else ""
    caption = "mean, ±stdev over repeats, ratio to the baseline; best in bold green"
    if dropped:
        caption += f"; not shown for width: {', '.join(dropped)} (see comparison.csv)"
    t = Table(title=f"{title}{base}", header_style="bold", show_lines=True, caption=caption, caption_style="dim")
    t.add_column("variant", overflow="fold", min_width=12)
    t.add_column("runs", justify="right")
    for m in shown:
        t.add_column(m.title, justify="right", overflow="fold", min_width=7)
    t.add_column("status", overflow="fold")
    for _, r in c.table.iterrows():
        label = str(r["variant"])
        cells = [_escape(label).replace(",", ",\n") + ("\n[dim](baseline)[/]" if label == c.baseline else ""),
                 f"{r['ok_runs']}/{r['runs']}" if r["ok_runs"] != r["runs"] else str(r["runs"])]
        for m in shown:
            cells.append(_stat_cell(r, m, label == c.best.get(m.name), label == c.baseline))
        status = str(r["status"])
        reason = str(r["reason"]).split(" (hint: ")[0] if r["reason"] else ""
        cells.append("[green]ok[/]" if status == "ok" else f"[red]{status}[/]" + (
            f": {_escape(_clip(reason, 60))}" if reason else ""))
        t.add_row(*cells)
    return t


def _stat_cell(r: Any, m: Any, best: bool, is_base: bool) -> str:
    mean, sd, ratio = r[f"{m.name}_mean"], r[f"{m.name}_stdev"], r[f"{m.name}_ratio"]
    if mean != mean:  # NaN: not measured
        return "—"
    text = f"[bold green]{mean:,.{m.digits}f}[/]" if best else f"{mean:,.{m.digits}f}"
    if sd == sd:
        text += f"\n[dim]±{sd:,.{m.digits}f}[/]"
    if ratio == ratio and not is_base and m.better is not None:
        text += f"\n[dim]{ratio:.2f}x[/]" if ratio >= 0.1 else f"\n[dim]{ratio:.2g}x[/]"
    return text


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def render_gate(result: Any, baseline_file: str, tolerance: float, console: Console, err_console: Console) -> None:
    """One line per regressed metric (never wrapped: CI logs are grepped), or one ok line."""
    for note in result.notes:
        err_console.print(f"[yellow]warning[/] gate: {_escape(note)}", highlight=False, soft_wrap=True)
    for r in result.regressions:
        console.print(r.line(), highlight=False, markup=False, soft_wrap=True)
    if result.passed:
        console.print(f"gate: ok ({result.checked} checks within {tolerance * 100:g}% of {baseline_file})",
                      highlight=False, markup=False, soft_wrap=True)


def render_au_search(result: Any, console: Console) -> None:
    """The table of tried counts and the answer."""
    console.print(au_search_table([c.as_row() for c in result.counts], result.target, result.criterion))
    best = result.at(result.best)
    what = f"{result.criterion} AU >= {result.target:g} %"
    if best is None:
        console.print(f"this storage cannot feed even 1 emulated accelerator at {what}", highlight=False)
    else:
        more = " (the --max-accelerators cap; more may fit)" if result.capped else ""
        console.print(f"largest count with {what}: [bold]{result.best}[/] emulated "
                      f"accelerator{'s' if result.best > 1 else ''}{more}: {best.samples_per_s:,.1f} samples/s, "
                      f"{best.MiB_per_s:,.2f} MiB/s in all", highlight=False)
    console.print(f"table: {result.folder / 'au_search.csv'}", highlight=False)


def plugins_table(rows: list[tuple[str, ...]]) -> Table:
    """kind, name, framework, aliases, origin, what: one row per registered plugin."""
    t = Table(title="dnnbench plugins", header_style="bold")
    for col in ("kind", "name", "framework"):
        t.add_column(col, overflow="fold")
    t.add_column("aliases", overflow="fold", max_width=24)
    t.add_column("origin", overflow="fold", max_width=28)
    t.add_column("what", overflow="fold", min_width=16)
    for row in rows:
        t.add_row(*row)
    return t


def au_search_table(rows: list[dict[str, Any]], target: float, criterion: str) -> Table:
    """The accelerator counts an AU search tried, in increasing order."""
    t = Table(title=f"AU search: target {criterion} AU >= {target:g} %", header_style="bold")
    for col in ("accelerators", "min AU %", "mean AU %", "samples/s", "MiB/s", "req p99 ms", "result"):
        t.add_column(col, justify="right" if col != "result" else "left", min_width=len(col) if col != "result"
                     else 6, overflow="fold")
    for r in sorted(rows, key=lambda x: x["accelerators"]):
        ok = r["passed"]
        result = "[green]feeds[/]" if ok else "[red]below target[/]"
        if r.get("failed"):
            result = f"[red]{r['failed']} failed[/]: {_escape(_clip(str(r.get('reason') or ''), 60))}"
        t.add_row(str(r["accelerators"]), _fmt(r.get("min_au_percent"), 1), _fmt(r.get("mean_au_percent"), 1),
                  _fmt(r.get("samples_per_s"), 1), _fmt(r.get("MiB_per_s"), 2), _fmt(r.get("request_p99_ms"), 3),
                  result)
    return t


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def summary_table(row: dict[str, Any]) -> Table:
    status = row.get("status")
    style = "green" if status == "ok" else "red"
    t = Table(title=f"dnnbench {row.get('run_id')}  [{style}]{status}[/]", show_header=True,
              header_style="bold")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_column("what")
    t.add_column("value", justify="right")
    left = [
        ("framework / trainer", f"{row.get('framework')} / {row.get('trainer')}"),
        ("storage / client", f"{row.get('storage')} / {row.get('client')}"),
        ("access / decode", f"{row.get('access')} / {row.get('decode')}"),
        ("workers x batch", f"{row.get('workers')} x {row.get('batch_size')}"),
        ("epochs / steps", f"{_fmt(row.get('epochs'))} / {_fmt(row.get('steps'))}"),
        ("samples", _fmt(row.get("samples"))),
        ("bytes", _fmt(row.get("bytes"))),
        ("wall_s", _fmt(row.get("wall_s"), 3)),
        ("samples_per_s", _fmt(row.get("samples_per_s"), 1)),
        ("MiB_per_s (MB_per_s)", f"{_fmt(row.get('MiB_per_s'))} ({_fmt(row.get('MB_per_s'))})"),
        ("first / last epoch MiB_per_s",
         f"{_fmt(row.get('first_epoch_MiB_per_s'))} / {_fmt(row.get('last_epoch_MiB_per_s'))}"),
        ("au_percent", _fmt(row.get("au_percent"), 1)),
        ("cache", _fmt(row.get("cache"))),
    ]
    right = [
        ("time_to_first_batch_s", _fmt(row.get("time_to_first_batch_s"), 3)),
        ("list_s (objects)", f"{_fmt(row.get('list_s'), 3)} ({_fmt(row.get('objects_listed'))})"),
        ("request p50 / p99 ms", f"{_fmt(row.get('request_p50_ms'), 3)} / {_fmt(row.get('request_p99_ms'), 3)}"),
        ("request max ms", _fmt(row.get("request_max_ms"), 3)),
        ("ttfb p50 / p99 ms", f"{_fmt(row.get('request_ttfb_p50_ms'), 3)} / {_fmt(row.get('request_ttfb_p99_ms'), 3)}"),
        ("decode p50 ms", _fmt(row.get("decode_p50_ms"), 3)),
        ("read_share_percent", _fmt(row.get("read_share_percent"), 1)),
        ("cpu_percent", _fmt(row.get("cpu_percent"), 0)),
        ("peak_rss_MiB", _fmt(row.get("peak_rss_MiB"), 0)),
        ("errors / retries", f"{_fmt(row.get('errors'))} / {_fmt(row.get('retries'))}"),
        ("byte_check", _fmt(row.get("byte_check"))),
        ("requests", _fmt(row.get("requests"))),
        ("reason", _fmt(row.get("reason"))),
    ]
    for (a, b), (c, d) in zip(left, right):
        t.add_row(a, b, c, d)
    return t


def render_error(err: BaseException, console: Console | None = None) -> None:
    """One message: what, where, and how to fix it."""
    console = console or Console(stderr=True)
    if isinstance(err, BenchError):
        ref = f"[bold]{err.reference}[/]: " if err.reference else ""
        console.print(f"[red]error[/] {ref}{_escape(err.message)}", highlight=False)
        for line in getattr(err, "details", []) if isinstance(err, ConfigError) else []:
            console.print(f"  - {_escape(line)}", highlight=False)
        if err.hint:
            console.print(f"[dim]hint: {_escape(err.hint)}[/]", highlight=False)
    else:
        console.print(f"[red]error[/] {type(err).__name__}: {_escape(str(err))}", highlight=False)
        console.print("[dim]hint: run again with --debug for the traceback[/]", highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def make_console(stderr: bool = False) -> Console:
    # messages are never hard-wrapped (they stay greppable in logs); tables still fit the terminal
    return Console(stderr=stderr, file=sys.stderr if stderr else sys.stdout, soft_wrap=stderr)
