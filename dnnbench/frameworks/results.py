"""The typed results of the inference and checkpoint phases. Their field names are the summary
columns they fill; the run merges them into its report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


def rate(amount: float, seconds: float) -> float | None:
    """``amount`` per second; None when no time passed."""
    return amount / seconds if seconds > 0 else None


@dataclass(frozen=True)
class InferResult:
    """What the inference phase measured (summary columns)."""

    infer_samples: int
    infer_bytes: int
    infer_wall_s: float
    infer_samples_per_s: float | None
    infer_MiB_per_s: float | None
    accuracy_percent: float | None
    infer_failed: int

    def columns(self) -> dict[str, Any]:
        """The summary columns of this result."""
        return dataclasses.asdict(self)

    def detail(self) -> str:
        """The phase line's detail."""
        return (f"({self.infer_samples:,} held-out samples, accuracy {self.accuracy_percent or 0:.1f} %, "
                f"{self.infer_samples_per_s or 0:,.0f} samples/s)")


@dataclass(frozen=True)
class CheckpointResult:
    """What the checkpoint phase measured (summary columns). Save = serialise + PUT, load = GET +
    deserialise; the MB/s are over the PUT and the GET alone."""

    checkpoint_bytes: int
    checkpoint_save_s: float
    checkpoint_load_s: float
    checkpoint_save_MB_per_s: float | None
    checkpoint_load_MB_per_s: float | None
    checkpoint_verified: str  # ok | mismatch

    def columns(self) -> dict[str, Any]:
        """The summary columns of this result."""
        return dataclasses.asdict(self)

    def detail(self) -> str:
        """The phase line's detail."""
        return (f"({self.checkpoint_bytes / 1e6:.1f} MB: save {self.checkpoint_save_MB_per_s or 0:.1f} MB/s, "
                f"load {self.checkpoint_load_MB_per_s or 0:.1f} MB/s, {self.checkpoint_verified})")
