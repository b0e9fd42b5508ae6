"""Per-step and per-epoch records of the main process."""

from __future__ import annotations

from dataclasses import dataclass, field

STEP_COLUMNS = ["epoch", "step", "start", "wait_s", "compute_s", "samples", "bytes", "loss", "failed_samples"]


@dataclass
class EpochRecord:
    epoch: int
    start: float
    end: float = 0.0
    first_batch_s: float | None = None
    steps: int = 0
    samples: int = 0
    bytes: int = 0
    failed_samples: int = 0
    cache: str = "unknown"
    complete: bool = False
    expected_bytes: int | None = None  # what listing says this epoch must read (None: partial by config)


@dataclass
class StepRecorder:
    rows: list[list] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)

    def add(self, epoch: int, step: int, start: float, wait_s: float, compute_s: float,
            samples: int, nbytes: int, loss: float | None, failed: int = 0) -> None:
        self.rows.append([epoch, step, start, wait_s, compute_s, samples, nbytes, loss, failed])
