"""Where AU crosses the target, from noisy measurements (the logic of ``au-search``, free of
processes so it is tested with a fake measurement).

``measure(n)`` runs ``n`` emulated accelerators once and returns the AU that the criterion
takes (min or mean over the accelerators), or None when the measurement failed.

1. Explore with one measurement per count: double (1, 2, 4, ...) until a count falls
   below the target or the cap is reached, then bisect between the last count that fed
   and the first that did not.
2. Re-measure near the boundary: the last count that fed and the first that did not are
   measured ``repeats`` times; a count *feeds* when none of its runs failed and the mean
   of its runs is at or above the target. When the repeats move the boundary (the count
   below falls short, or the count above now feeds), search again from there. Every
   count is measured at most ``repeats`` times, so this ends.
3. The answer is the largest count below the first count that fell short: AU should fall
   as accelerators are added, so a count that feeds above one that did not is reported
   as non-monotonic (noise or a storage effect), never taken as the answer. A rise of AU
   with more accelerators beyond the measured noise is reported too.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

#: a rise of AU (points) with more accelerators smaller than this is not worth a note
RISE_POINTS = 1.0


@dataclass
class Point:
    """The measurements of one accelerator count."""

    accelerators: int
    target: float
    values: list[float] = field(default_factory=list)  # the criterion's AU of each successful run
    failed: int = 0

    def add(self, value: float | None) -> None:
        if value is None:
            self.failed += 1
        else:
            self.values.append(float(value))

    @property
    def runs(self) -> int:
        return len(self.values) + self.failed

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def stdev(self) -> float | None:
        """Sample standard deviation over the runs; None for fewer than two."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def low(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def high(self) -> float | None:
        return max(self.values) if self.values else None

    @property
    def passed(self) -> bool:
        return not self.failed and self.mean is not None and self.mean >= self.target

    @property
    def clear(self) -> bool:
        """Every run on the same side of the target as the verdict."""
        if not self.values or self.failed:
            return not self.passed
        return self.low >= self.target if self.passed else self.high < self.target

    def describe(self) -> str:
        """``91.2 % (±0.8, 90.4-92.0 over 3 runs)``, or ``91.2 % (1 run)``."""
        if self.mean is None:
            return f"no AU ({self.failed} failed run{'s' if self.failed > 1 else ''})"
        if len(self.values) == 1:
            return f"{self.mean:.1f} % (1 run)"
        return f"{self.mean:.1f} % (±{self.stdev:.1f}, {self.low:.1f}-{self.high:.1f} over {len(self.values)} runs)"


@dataclass
class Boundary:
    """The answer: ``best`` (0: not even one accelerator feeds), every count's measurements,
    and notes on what the measurements do not say plainly."""

    target: float
    max_accelerators: int
    points: dict[int, Point]
    best: int
    notes: list[str] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        return self.best == self.max_accelerators

    def margin(self) -> str:
        """The answer's margin: its AU against the target, the next count's, and whether
        the boundary stands clear of the noise."""
        parts = []
        best, above = self.points.get(self.best), self.points.get(self.best + 1)
        if best is not None:
            parts.append(f"{self.best} at {best.describe()}, {_points(best, self.target)}")
        if above is not None:
            parts.append(f"{self.best + 1} at {above.describe()}, {_points(above, self.target)}")
        shown = [p for p in (best, above) if p is not None]
        if all(p.clear for p in shown):
            parts.append("every run on its side of the target")
        else:
            parts.append("within the noise: some runs fell on the other side of the target")
        return "; ".join(parts)


def _points(p: Point, target: float) -> str:
    if p.mean is None:
        return "failed"
    d = p.mean - target
    return f"{abs(d):.1f} points {'above' if d >= 0 else 'below'} the target"


def find(measure: Callable[[int], float | None], target: float, max_accelerators: int,
         repeats: int = 3) -> Boundary:
    """Search the largest count of accelerators whose AU stays at or above ``target``."""
    points: dict[int, Point] = {}

    def feeds(n: int, runs: int = 1) -> bool:
        p = points.setdefault(n, Point(n, target))
        while p.runs < runs:
            p.add(measure(n))
        return p.passed

    lo, hi = _explore(feeds, max_accelerators, 0, None)
    for _ in range(max_accelerators * repeats + 2):  # each pass adds runs or ends; the bound is a guard
        for n in (lo, hi):
            if n is not None and 1 <= n <= max_accelerators:
                feeds(n, repeats)
        if lo and not points[lo].passed:  # the count below fell short on its repeats
            hi = lo
            lo = max([m for m, p in points.items() if m < hi and p.passed], default=0)
            lo, hi = _bisect(feeds, lo, hi)
        elif hi is not None and points[hi].passed:  # the count above fed on its repeats
            lo = hi
            hi = min([m for m, p in points.items() if m > lo and not p.passed], default=None)
            lo, hi = _explore(feeds, max_accelerators, lo, hi)
        else:
            break
    best = _monotone_best(points)
    return Boundary(target, max_accelerators, points, best, _notes(points, best))


def _explore(feeds: Callable[[int], bool], max_n: int, lo: int, hi: int | None) -> tuple[int, int | None]:
    """Double from ``lo`` until a count falls short (or the cap), then bisect."""
    if hi is None:
        n = 1 if lo == 0 else min(2 * lo, max_n)
        while n > lo:
            if not feeds(n):
                hi = n
                break
            lo = n
            n = min(2 * n, max_n)
    return _bisect(feeds, lo, hi)


def _bisect(feeds: Callable[[int], bool], lo: int, hi: int | None) -> tuple[int, int | None]:
    while hi is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if feeds(mid) else (lo, mid)
    return lo, hi


def _monotone_best(points: dict[int, Point]) -> int:
    """The largest count below the first count that fell short."""
    best = 0
    for n in sorted(points):
        if not points[n].passed:
            break
        best = n
    return best


def _notes(points: dict[int, Point], best: int) -> list[str]:
    notes = []
    above = [n for n in sorted(points) if n > best + 1 and points[n].passed]
    if above:
        first_short = min(n for n in points if n > best)
        notes.append(f"non-monotonic: {', '.join(str(n) for n in above)} accelerators fed "
                     f"({', '.join(points[n].describe() for n in above)}) although {first_short} fell short "
                     f"({points[first_short].describe()}); AU should fall as accelerators are added, so the answer "
                     f"stays below {first_short} (noise, or a storage effect worth a look)")
    measured = [n for n in sorted(points) if points[n].mean is not None]
    for m, n in zip(measured, measured[1:]):
        a, b = points[m], points[n]
        noise = max(a.high - a.low, b.high - b.low)
        if b.mean - a.mean > max(noise, RISE_POINTS):
            single = " (single runs: their noise is unknown)" if noise == 0 else ""
            notes.append(f"AU rose from {a.mean:.1f} % at {m} to {b.mean:.1f} % at {n} accelerators, more than "
                         f"the runs' spread ({noise:.1f} points){single}: more accelerators should not raise AU")
    return notes
