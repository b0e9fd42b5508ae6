"""Fit a table to the terminal: drop the least important columns, never cut a word.

rich shrinks a table that is too wide by folding or cropping cells, which cuts words
(``s3torchconne`` / ``ctor``) or loses the right edge. Here every column is at least as
wide as its longest word; when even that does not fit, the least important columns are
left out (the caller says which, in one line); the columns with short values are kept on
one line and the longest (free text) wraps between its words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich import box as boxes
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: what rich adds around a column's content: one space of padding each side
_PAD = 2


@dataclass
class Col:
    """A column to lay out: its header, its cells (rich markup), and how readily it is
    left out when the table is too wide (0: never; the highest goes first)."""

    header: str
    cells: list[str] = field(default_factory=list)
    justify: str = "left"
    drop: int = 0


@dataclass
class Fitted:
    """The table, and the headers of the columns left out for width."""

    table: Table
    dropped: list[str]


def _span(console: Console, markup: str) -> tuple[int, int]:
    """(longest word, longest line) of a cell, in cells of the terminal."""
    m = Measurement.get(console, console.options.update_width(10_000), Text.from_markup(markup))
    return m.minimum, m.maximum


def _spans(console: Console, col: Col) -> tuple[int, int, int]:
    """(longest word, longest line, header width) of a column."""
    spans = [_span(console, c) for c in [col.header, *col.cells]]
    return max(s[0] for s in spans), max(s[1] for s in spans), spans[0][1]


def table_width(cols: list[Col], console: Console, box: Any = boxes.HEAVY_HEAD) -> int:
    """The width of a table of ``cols`` with no cell wrapped."""
    return sum(_spans(console, c)[1] + _PAD for c in cols) + _overhead(len(cols), box)


def _overhead(n: int, box: Any) -> int:
    """Border characters of a table of ``n`` columns (edges and separators)."""
    return (n + 1) if box is not None else 0


def _spread(mins: list[int], heads: list[int], wants: list[int], room: int) -> list[int]:
    """Column widths from their minimums: first each header on one line when all fit, then
    the columns that lack least get their natural width (short values stay on one line), and
    the column that lacks most, usually free text, takes what is left and wraps."""
    widths = list(mins)
    with_heads = [max(m, h) for m, h in zip(mins, heads)]
    if sum(with_heads) <= room:
        widths = with_heads
    slack = room - sum(widths)
    for i in sorted(range(len(widths)), key=lambda k: wants[k] - widths[k]):
        give = max(0, min(wants[i] - widths[i], slack))
        widths[i] += give
        slack -= give
    return widths


def fit_table(cols: list[Col], width: int | None, console: Console | None = None, **table_args: Any) -> Fitted:
    """A rich Table of ``cols`` no wider than ``width`` (None: as wide as it likes) whose
    cells wrap only between words.

    Columns are left out highest ``drop`` first until each remaining one fits its longest
    word; a column with ``drop=0`` is always kept (a word longer than the whole terminal
    is then folded by rich, the one case left).
    """
    console = console or Console(width=10_000)
    box = table_args.get("box", boxes.HEAVY_HEAD)
    spans = [_spans(console, c) for c in cols]
    keep = list(range(len(cols)))
    dropped: list[str] = []
    if width is not None:
        order = sorted((i for i in keep if cols[i].drop), key=lambda i: -cols[i].drop)
        while order and sum(spans[i][0] + _PAD for i in keep) + _overhead(len(keep), box) > width:
            i = order.pop(0)
            keep.remove(i)
            dropped.append(cols[i].header)
    widths: list[int | None] = [None] * len(keep)
    if width is not None:
        room = width - _overhead(len(keep), box) - _PAD * len(keep)
        mins, wants, heads = ([spans[i][k] for i in keep] for k in range(3))
        if sum(wants) > room:
            widths = list(_spread(mins, heads, wants, room))
    table = Table(**table_args)
    for i, w in zip(keep, widths):
        table.add_column(cols[i].header, justify=cols[i].justify, width=w, overflow="fold")
    rows = max((len(c.cells) for c in cols), default=0)
    for r in range(rows):
        table.add_row(*[cols[i].cells[r] if r < len(cols[i].cells) else "" for i in keep])
    return Fitted(table, dropped)
