"""The sample index: one row per sample (key, label, size in bytes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SampleIndex:
    keys: list[str]
    labels: np.ndarray  # int64, index into classes
    sizes: np.ndarray  # int64, bytes as listed
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def total_bytes(self) -> int:
        return int(self.sizes.sum())

    def subset(self, n: int, seed: int = 0) -> "SampleIndex":
        """A seeded random subset of ``n`` samples, kept in listing order."""
        if n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(self), size=n, replace=False))
        return SampleIndex([self.keys[i] for i in pick], self.labels[pick], self.sizes[pick],
                           list(self.classes))

    def take(self, positions: "np.ndarray | list[int]") -> "SampleIndex":
        """The samples at ``positions`` (listing order kept)."""
        pos = np.sort(np.asarray(positions, dtype=np.int64))
        return SampleIndex([self.keys[i] for i in pos], self.labels[pos], self.sizes[pos], list(self.classes))

    def holdout(self, fraction: float, seed: int = 0) -> tuple["SampleIndex", "SampleIndex"]:
        """(train, held-out): a seeded random ``fraction`` of the samples is held out (at least one)."""
        n_out = min(len(self) - 1, max(1, int(round(len(self) * fraction))))
        picked = np.random.default_rng([seed, 7919]).choice(len(self), size=n_out, replace=False)
        mask = np.zeros(len(self), dtype=bool)
        mask[picked] = True
        return self.take(np.flatnonzero(~mask)), self.take(np.flatnonzero(mask))

