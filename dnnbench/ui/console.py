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
