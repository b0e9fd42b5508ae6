"""What a run does with samples that cannot be delivered: ``dataset.on_error`` (fail | skip),
the skipped share an epoch may have (``dataset.max_skipped_percent``), and the record of the
skipped samples (environment.json ``skipped_samples``). A storage outage or a full disk ends
the run whatever ``on_error`` says (:mod:`dnnbench.failures`).
"""

from __future__ import annotations

from typing import Any, Sequence

from dnnbench import failures
from dnnbench.errors import SampleError
from dnnbench.events import Events
from dnnbench.frameworks.protocols import SampleFailure
from dnnbench.recording.steps import EpochRecord

#: skipped samples named in environment.json, at most
KEPT = 1000
#: skipped samples told as a warning, at most
WARNED = 3


class Skipped:
    """The skipped samples of a run, in order: (epoch, key, reason); epoch None at listing."""

    def __init__(self) -> None:
        self.rows: list[tuple[int | None, str, str]] = []

    def add(self, epoch: int | None, key: str, reason: str) -> bool:
        """Keep one (the first :data:`KEPT`); True when it is among the first :data:`WARNED`."""
        if len(self.rows) < KEPT:
            self.rows.append((epoch, key, reason))
        return len(self.rows) <= WARNED

    def listed(self, key: str, reason: str) -> None:
        """An entry left out at listing (every one is kept)."""
        self.rows.append((None, key, reason))

    def first(self, epoch: int) -> tuple[str, str] | None:
        """(key, reason) of the first sample skipped in ``epoch``."""
        return next(((k, r) for e, k, r in self.rows if e == epoch), None)

    def describe(self) -> list[dict[str, Any]]:
        return [{"epoch": e, "key": k, "reason": r} for e, k, r in self.rows]


class FailurePolicy:
    """``dataset.on_error`` and ``dataset.max_skipped_percent`` applied to an epoch's failures."""

    def __init__(self, dataset: Any, events: Events, skipped: Skipped):
        self.on_error = dataset.on_error
        self.limit = dataset.max_skipped_percent
        self.events = events
        self.skipped = skipped
        self.per_epoch: int | None = None  # samples in a full epoch, when known

    def on_failures(self, rec: EpochRecord, bad: Sequence[SampleFailure]) -> None:
        """A batch's failed samples. A storage outage (or a full disk) ends the run whatever
        dataset.on_error says; otherwise on_error fail names the first bad key, and skip counts,
        reports and goes on while the epoch's skipped share stays within max_skipped_percent.

        Raises:
            StorageError: the storage stopped answering.
            RunFailed: the request log could not be written.
            SampleError: on_error is fail, or the epoch skipped too many samples.
        """
        failures.raise_if_fatal(bad)
        if self.on_error == "fail":
            f = bad[0]
            raise SampleError(f.reason, reference=f.key,
                              hint="the object is missing, truncated or not an image: replace or remove it, "
                                   "or set dataset.on_error: skip to count and skip such samples")
        rec.failed_samples += len(bad)
        for f in bad:
            if self.skipped.add(rec.epoch, f.key, f.reason):
                self.events.warning(f"skipped {f.key}: {f.reason}")
        if self.per_epoch and rec.failed_samples * 100 > self.limit * self.per_epoch:
            self.check_epoch(rec, self.per_epoch)  # past the limit whatever the rest of the epoch does

    def check_epoch(self, rec: EpochRecord, total: int | None = None) -> None:
        """Raise when the epoch skipped more than dataset.max_skipped_percent of its samples
        (``total``: of the full epoch; default: of the samples it met).

        Raises:
            SampleError: too many skipped samples (the first is named).
        """
        total = total or (rec.samples + rec.failed_samples)
        if not rec.failed_samples or rec.failed_samples * 100 <= self.limit * total:
            return
        first = self.skipped.first(rec.epoch)
        raise SampleError(f"{rec.failed_samples} of {total} samples of epoch {rec.epoch + 1} skipped "
                          f"({100 * rec.failed_samples / total:.1f} %), more than dataset.max_skipped_percent "
                          f"({self.limit:g} %)" + (f"; the first: {first[0]}: {first[1]}" if first else ""),
                          reference="dataset.max_skipped_percent",
                          hint="fix or remove the bad samples, or raise dataset.max_skipped_percent")
