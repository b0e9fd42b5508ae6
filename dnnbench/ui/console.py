"""Rich rendering of run events, the summary table and errors."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Column, Table
from rich.text import Text

from dnnbench.errors import BenchError, ConfigError
from dnnbench.reporting.columns import COLUMNS, compared
from dnnbench.reporting.columns import Column as Figure
from dnnbench.ui.fit import Col, fit_table
from dnnbench.ui.summary import fmt as _fmt
from dnnbench.ui.summary import headline, summary_table

MiB = 2**20


class RateColumn(ProgressColumn):
    """Items/s and MiB/s of a task since it started (bytes kept in task.fields)."""

    def __init__(self, unit: str = "samples", table_column: Column | None = None):
        super().__init__(table_column)
        self.unit = unit

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("", style="progress.data.speed")
        items = task.completed / elapsed
        mib = task.fields.get("nbytes", 0) / MiB / elapsed
        unit = task.fields.get("unit", self.unit)
        return Text(f"{items:,.0f} {unit}/s  {mib:,.1f} MiB/s", style="progress.data.speed")


def progress_columns(unit: str, width: int) -> list[ProgressColumn]:
    """One line per bar at any width: the texts never wrap, the bar takes what is left
    (rich shrinks it); below 100 columns the time remaining is left out (elapsed stays)."""
    def fixed() -> Column:
        return Column(no_wrap=True)

    cols: list[ProgressColumn] = [TextColumn("[bold]{task.description}", table_column=fixed()),
                                  BarColumn(bar_width=40 if width >= 100 else None, table_column=Column(min_width=6)),
                                  MofNCompleteColumn(table_column=fixed()), RateColumn(unit, table_column=fixed()),
                                  TimeElapsedColumn(table_column=fixed())]
    if width >= 100:
        cols.append(TimeRemainingColumn(table_column=fixed()))
    return cols


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
        self._progress = Progress(*progress_columns(unit, self.console.width), console=self.console,
                                  transient=False, **kwargs)
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
            self.console.print(f"{row.get('status')}: {headline(row)}, results in {run_dir}", highlight=False,
                               markup=False, soft_wrap=True)  # one line, whatever the width: it is grepped
            return
        self.console.print(summary_table(row, width=self.console.width))
        for col, reason in sorted(unmeasured.items()):
            self.console.print(f"[dim]{col} not measured: {reason}[/]", highlight=False)
        self.console.print(f"results: [bold]{run_dir}[/]", highlight=False)

    # -- sweeps (dnnbench.multirun.sweep) ---------------------------------------------------
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
            self.console.print(f"[green]ok[/] {head}: {_escape(headline(row))}  [dim]{_escape(run_dir or '')}[/]",
                               highlight=False)
        else:
            self.console.print(f"[red]{_escape(status)}[/] {head}: {_escape(reason or 'no reason recorded')}  "
                               f"[dim]{_escape(run_dir or '')}[/]", highlight=False)


#: phases a run may skip: the compare table leaves their columns out silently where no run measured them
_OPTIONAL_PHASES = ("inference", "checkpoint", "workload")


def comparison_table(c: Any, title: str = "dnnbench compare", width: int | None = None) -> Table:
    """Variants as rows, key metrics as columns (mean, ± stdev over repeats and the ratio to the
    baseline variant below it); the best mean of each metric in bold green. With a ``width``,
    the least important columns (the catalogue's ``compared.keep``) are left out until the table
    fits (comparison.csv has all)."""
    metrics = compared(table_only=True)
    priority = [m.name for m in sorted(metrics, key=lambda m: m.compared.keep)]
    if set(c.table["trainer"].dropna()) == {"read"}:  # no compute: AU is ~0 by definition
        priority = [p for p in priority if not COLUMNS[p].needs_compute]
    rows = list(c.table.to_dict("records"))
    cols = [Col("variant", [_variant_cell(str(r["variant"]), c.baseline) for r in rows]),
            Col("runs", [f"{r['ok_runs']}/{r['runs']}" if r["ok_runs"] != r["runs"] else str(r["runs"])
                         for r in rows], "right")]
    unmeasured = []
    for m in metrics:
        if m.name not in priority:
            continue
        if c.table[f"{m.name}_mean"].isna().all():  # no run measured it (a phase that did not run)
            unmeasured += [] if m.phase in _OPTIONAL_PHASES else [m.header]
            continue
        cells = [_stat_cell(r, m, str(r["variant"]) == c.best.get(m.name), str(r["variant"]) == c.baseline)
                 for r in rows]
        cols.append(Col(m.header, cells, "right", drop=1 + priority.index(m.name)))
    cols.append(Col("status", [_status_cell(r) for r in rows]))
    base = f"  baseline: {_escape(c.baseline)}" if c.baseline else ""
    fitted = fit_table(cols, width, title=f"{title}{base}", header_style="bold", show_lines=True,
                       caption_style="dim")
    caption = "mean, ±stdev over repeats, ratio to the baseline; best in bold green"
    if unmeasured:
        caption += f"; no run measured: {', '.join(unmeasured)}"
    if fitted.dropped:
        caption += f"; not shown for width: {', '.join(fitted.dropped)} (see comparison.csv)"
    fitted.table.caption = caption
    return fitted.table


def _variant_cell(label: str, baseline: str | None) -> str:
    return _escape(label).replace(",", ",\n") + ("\n[dim](baseline)[/]" if label == baseline else "")


def _status_cell(r: dict[str, Any]) -> str:
    status = str(r["status"])
    reason = str(r["reason"]).split(" (hint: ")[0] if r["reason"] else ""
    return "[green]ok[/]" if status == "ok" else f"[red]{status}[/]" + (
        f": {_escape(_clip(reason, 60))}" if reason else "")


def _stat_cell(r: dict[str, Any], m: Figure, best: bool, is_base: bool) -> str:
    mean, sd, ratio = r[f"{m.name}_mean"], r[f"{m.name}_stdev"], r[f"{m.name}_ratio"]
    if mean != mean:  # NaN: not measured
        return "—"
    digits = m.table_digits
    text = f"[bold green]{mean:,.{digits}f}[/]" if best else f"{mean:,.{digits}f}"
    if sd == sd:
        text += f"\n[dim]±{sd:,.{digits}f}[/]"
    if ratio == ratio and not is_base and m.better is not None:
        text += f"\n[dim]{ratio:.2f}x[/]" if ratio >= 0.1 else f"\n[dim]{ratio:.2g}x[/]"
    return text


def _clip(text: str, n: int = 80) -> str:
    """At most about ``n`` characters, shortened at a word boundary (a word is never cut)."""
    if len(text) <= n:
        return text
    head = text[:n].rsplit(" ", 1)[0] if " " in text[:n] else text.split(" ", 1)[0]
    return head.rstrip(",;:") + " …"


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
    """The table of tried counts, the answer with its margin, and what the measurements do not say plainly."""
    rows = result.count_rows()
    console.print(au_search_table(rows, result.target, result.criterion, width=console.width))
    what = f"{result.criterion} AU >= {result.target:g} %"
    margin = result.boundary.margin() if result.boundary else ""
    if result.best == 0:
        console.print(f"this storage cannot feed even 1 emulated accelerator at {what}: {margin}", highlight=False)
    else:
        best = next(r for r in rows if r["accelerators"] == result.best)
        more = " (the --max-accelerators cap; more may fit)" if result.capped else ""
        sps, mib = (_fmt(best[k], COLUMNS[k].digits) for k in ("samples_per_s", "MiB_per_s"))
        console.print(f"largest count with {what}: [bold]{result.best}[/] emulated "
                      f"accelerator{'s' if result.best > 1 else ''}{more}: {sps} samples/s, {mib} MiB/s in all",
                      highlight=False)
        console.print(f"margin: {margin}", highlight=False)
    for note in result.boundary.notes if result.boundary else []:
        console.print(f"[yellow]warning[/] {_escape(note)}", highlight=False)
    console.print(f"table: {result.folder / 'au_search.csv'} (every run: au_search_runs.csv)", highlight=False)


def plugins_table(rows: list[tuple[str, ...]], width: int | None = None) -> Table:
    """kind, name, framework, aliases, origin, what: one row per registered plugin. With a
    ``width``, aliases, then origin, then framework are left out until it fits (said below it)."""
    heads = [("kind", 0), ("name", 0), ("framework", 1), ("aliases", 3), ("origin", 2), ("what", 0)]
    cols = [Col(h, [_escape(str(r[i])) for r in rows], drop=d) for i, (h, d) in enumerate(heads)]
    fitted = fit_table(cols, width, title="dnnbench plugins", header_style="bold", caption_style="dim")
    if fitted.dropped:
        fitted.table.caption = f"not shown for width: {', '.join(fitted.dropped)} (a wider terminal shows them)"
    return fitted.table


def au_search_table(rows: list[dict[str, Any]], target: float, criterion: str, width: int | None = None) -> Table:
    """The accelerator counts an AU search tried, in increasing order: the criterion's AU (mean
    over the count's runs), its stdev and range, the aggregate throughput and the verdict."""
    rows = sorted(rows, key=lambda x: x["accelerators"])

    def col(head: str, key: str, digits: int, drop: int) -> Col:
        return Col(head, [_fmt(r.get(key), digits) for r in rows], "right", drop)

    def figure(name: str, drop: int) -> Col:  # a summary column: its catalogue title and digits
        return col(COLUMNS[name].header, name, COLUMNS[name].digits, drop)

    cols = [Col("accelerators", [str(r["accelerators"]) for r in rows], "right"),
            Col("runs", [str(r.get("measurements", 1)) for r in rows], "right", 4),
            col(f"{criterion} AU %", "au_percent", 1, 0), col("stdev", "au_stdev", 1, 1),
            Col("range", [_range(r) for r in rows], "right", 2),
            figure("samples_per_s", 5), figure("MiB_per_s", 3), figure("request_p99_ms", 6),
            Col("result", [_au_result(r) for r in rows])]
    fitted = fit_table(cols, width, title=f"AU search: target {criterion} AU >= {target:g} %", header_style="bold",
                       caption_style="dim")
    caption = f"AU %: mean over a count's runs of the {criterion} over its accelerators"
    if fitted.dropped:
        caption += f"; not shown for width: {', '.join(fitted.dropped)} (see au_search.csv)"
    fitted.table.caption = caption
    return fitted.table


def _range(r: dict[str, Any]) -> str:
    lo, hi = r.get("au_low"), r.get("au_high")
    return "—" if lo is None or hi is None or lo == hi else f"{lo:.1f}-{hi:.1f}"


def _au_result(r: dict[str, Any]) -> str:
    if r.get("failed"):
        return f"[red]{r['failed']} failed[/]: {_escape(_clip(str(r.get('reason') or ''), 60))}"
    return "[green]feeds[/]" if r["passed"] else "[red]below target[/]"


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
