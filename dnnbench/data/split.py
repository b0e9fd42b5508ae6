"""Splitting work by rank, then by loader worker: pure arithmetic, tested without torch.

Every item goes to exactly one (rank, worker): contiguous blocks whose sizes differ
by at most one, so sequential reads keep their locality and uneven counts lose
nothing. A worker whose block is empty gets an empty range (and never hangs).
"""

from __future__ import annotations


def block(n: int, parts: int, part: int) -> range:
    """The ``part``-th of ``parts`` contiguous blocks of ``range(n)``."""
    if parts <= 0 or not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts} is out of range")
    base, extra = divmod(n, parts)
    start = part * base + min(part, extra)
    return range(start, start + base + (1 if part < extra else 0))


def split(n: int, rank: int = 0, world: int = 1, worker: int = 0, workers: int = 1) -> range:
    """Items of ``range(n)`` for one worker of one rank: by rank first, then by worker."""
    mine = block(n, world, rank)
    sub = block(len(mine), workers, worker)
    return range(mine.start + sub.start, mine.start + sub.stop)
