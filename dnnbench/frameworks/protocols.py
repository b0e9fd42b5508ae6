"""The interfaces of a framework adapter: the run pipeline (:mod:`dnnbench.run`) knows a
framework only through these, never by probing for attributes.

A framework adds one :class:`Runner` class (named in :data:`dnnbench.frameworks.FRAMEWORK_RUNNERS`)
and registers its trainers (:class:`Trainer`), models and datasets under its name. Imports
neither torch nor tensorflow.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from dnnbench.data.index import SampleIndex
    from dnnbench.frameworks.results import CheckpointResult, InferResult
    from dnnbench.storage.base import Storage


class SampleFailure(Protocol):
    """A sample (or shard) that could not be delivered: its key and why (see :mod:`dnnbench.failures`)."""

    key: str
    reason: str


class Batch(Protocol):
    """One batch as the epoch loop sees it: the samples delivered, the storage bytes they took,
    and the samples that failed (left out of ``data``)."""

    data: Any
    labels: Any
    nbytes: int
    samples: int
    failures: Sequence[SampleFailure]


@runtime_checkable
class Trainer(Protocol):
    """What happens to each batch. Built as ``cls(model=..., device=..., config=TrainingConfig)``;
    the runner builds a model for it unless ``needs_model`` is False."""

    needs_model: ClassVar[bool]
    model: Any
    optimizer: Any  # what a checkpoint saves besides the model; None without one

    def setup(self) -> None:
        """Called once before the first epoch."""

    def step(self, batch: Batch) -> float | None:
        """Consume one batch; the loss, if there is one."""

    def synchronize(self) -> None:
        """Wait for queued device work, so compute time is measured, not just launched."""

    def uneven_inputs(self) -> AbstractContextManager | None:
        """Multi-rank: the context around one epoch's steps when they hold collectives and the
        ranks' step counts may differ (DDP's Join); None when they hold none."""


@runtime_checkable
class Runner(Protocol):
    """One run of one framework: ``setup()``, then per epoch ``epoch(e)`` (each batch handed to
    ``step``) closed by ``end_epoch``, then the optional phases, then ``close()``.

    Built as ``cls(config, index, storage)``; the epoch loop times every ``next()`` of the epoch
    iterator as waiting and every ``step`` as compute.
    """

    framework: ClassVar[str]

    def setup(self) -> None:
        """Build the dataset, loader, model and trainer (outside the measured time)."""

    def samples_per_epoch(self) -> int | None:
        """Samples this process reads in a full epoch (None when unknown)."""

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """Bytes this process must read in ``epoch`` for the byte self-check; None when epochs
        are partial by configuration."""

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of one epoch."""

    def epoch_scope(self) -> AbstractContextManager | None:
        """Multi-rank: the context around one epoch's steps for uneven inputs (see
        :meth:`Trainer.uneven_inputs`); None when the steps hold no collectives."""

    def end_epoch(self, it: Iterator[Batch]) -> None:
        """The epoch's iterator ended or was abandoned (an error, an interrupt): stop its loader
        workers now, not at garbage collection, and wait until their request rows are written."""

    def step(self, batch: Batch) -> float | None:
        """The trainer's step on one batch."""

    def infer(self, index: SampleIndex) -> InferResult:
        """The inference phase over the held-out ``index``."""

    def checkpoint(self, key: str) -> CheckpointResult:
        """The checkpoint phase: save under ``key``, load back, verify."""

    def describe(self) -> dict[str, Any]:
        """Versions, device and loader settings for environment.json."""

    def close(self) -> None:
        """Release loader workers and buffers (persistent workers end here)."""


class RunnerClass(Protocol):
    """A :class:`Runner`'s constructor."""

    def __call__(self, config: Any, index: SampleIndex, storage: Storage) -> Runner: ...
