"""Checkpoint sizes: MLPerf Storage v2.0's checkpointing models as presets, scaled for this
machine, split into per-rank shards; and the refusals of sizes this machine cannot hold.

Pure arithmetic, imported by the config schema: nothing heavy.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """One MLPerf Storage checkpointing model: its total checkpoint size and rank count (CLOSED)."""

    name: str
    total_bytes: int
    ranks: int


#: MLPerf Storage v2.0 rules table (decimal GB/TB: 10^9 / 10^12 bytes)
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("llama3-8b", 105 * 10**9, 8),
    Preset("llama3-70b", 912 * 10**9, 64),
    Preset("llama3-405b", 5_290 * 10**9, 512),
    Preset("llama3-1t", 18_000 * 10**9, 1024),
)}


def total_bytes(preset: str | None, scale: float, size_bytes: int | None) -> int:
    """The checkpoint's total payload over all ranks: ``size_bytes``, else the preset's size x ``scale``.

    Raises:
        ValueError: neither or both given, or an unknown preset.
    """
    if (preset is None) == (size_bytes is None):
        raise ValueError("give checkpoint.preset (a model: " + ", ".join(PRESETS) + ") or "
                         "checkpoint.size_bytes, one of them")
    if size_bytes is not None:
        return size_bytes
    if preset not in PRESETS:
        raise ValueError(f"unknown checkpoint.preset {preset!r}: one of {', '.join(PRESETS)}")
    return int(PRESETS[preset].total_bytes * scale)


def shard_bytes(total: int, world: int, rank: int) -> int:
    """Rank ``rank``'s share of ``total`` bytes among ``world`` ranks (the first ranks take the remainder)."""
    base, extra = divmod(total, world)
    return base + (1 if rank < extra else 0)


def tensor_sizes(shard: int, tensors: int) -> list[int]:
    """A shard cut into at most ``tensors`` tensors of whole bytes (none empty, at least one)."""
    count = max(1, min(tensors, shard))
    base, extra = divmod(shard, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def memory_problem(total: int, memory_bytes: int | None, what: str) -> str | None:
    """Why ``total`` payload bytes cannot be held here: the ranks of one machine hold every shard
    twice (the saved tensors and the loaded ones), or None."""
    if memory_bytes is None or 2 * total <= memory_bytes:
        return None
    return (f"{what}: the checkpoint ({total / 1e9:,.2f} GB) is held twice in memory (the tensors saved "
            f"and the tensors loaded to verify them), {2 * total / 1e9:,.2f} GB, more than "
            f"{memory_bytes / 1e9:,.2f} GB; lower checkpoint.scale or checkpoint.size_bytes")


def disk_problem(directory: str, needed: int) -> str | None:
    """Why ``needed`` bytes will not fit in the filesystem holding ``directory`` (its nearest
    existing parent), or None."""
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    free = shutil.disk_usage(path).free
    if needed <= free:
        return None
    return (f"the checkpoints need {needed / 1e9:,.2f} GB on {path}, which has {free / 1e9:,.2f} GB free; "
            "lower checkpoint.scale, checkpoint.size_bytes or checkpoint.saves, or use checkpoint.keep: false")
