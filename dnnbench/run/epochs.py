"""The measured loop: ``training.epochs`` epochs of a runner's batches, each ``next()`` timed as
waiting for data and each ``step`` as compute, into one step row per batch and one record per
epoch. The heart of the benchmark: AU, throughput and the byte self-check come from here.

Failed samples go to the failure policy (:mod:`.skips`); the page cache is probed before each
epoch (:mod:`.cache`); under several ranks, the coordinator runs each epoch
(:meth:`dnnbench.run.coordinator.Coordinator.epoch`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from dnnbench import signals
from dnnbench.errors import Interrupted
from dnnbench.events import Events
from dnnbench.frameworks.protocols import Runner
from dnnbench.recording.steps import EpochRecord, StepRecorder
from dnnbench.run.coordinator import Coordinator, SingleProcess
from dnnbench.run.skips import FailurePolicy

if TYPE_CHECKING:
    from dnnbench.reporting.report import RunFacts


class EpochLoop:
    """Runs and measures the epochs of one run.

    Args:
        training: the ``training`` config (epochs, max_steps).
        policy: what failed samples do.
        events: progress (a task per epoch, advanced per batch).
        coordinator: runs each epoch (several ranks: ends it together).
        clock: seconds, monotonic (tests inject their own).
        stop_requested: whether a stop signal reached the process (:func:`dnnbench.signals.stop_requested`).
    """

    def __init__(self, training: Any, policy: FailurePolicy, events: Events,
                 coordinator: Coordinator | None = None, clock: Callable[[], float] = time.perf_counter,
                 stop_requested: Callable[[], bool] = signals.stop_requested):
        self.epochs = training.epochs
        self.max_steps = training.max_steps
        self.policy = policy
        self.events = events
        self.coordinator = coordinator or SingleProcess()
        self.clock = clock
        self.stop_requested = stop_requested

    def train(self, runner: Runner, facts: RunFacts, cache: Callable[[], str]) -> None:
        """Every epoch, recorded into ``facts`` as it goes (an error leaves what was measured).

        Args:
            runner: set up, ready for its first epoch.
            facts: the run's record: ``epochs``, ``steps``, ``train_start``/``train_end``.
            cache: the page cache's state, asked before each epoch.

        Raises:
            SampleError: a failed sample under on_error fail, or too many skipped.
            StorageError: the storage stopped answering.
        """
        per_epoch = self.policy.per_epoch = runner.samples_per_epoch()
        steps = StepRecorder(facts.steps, facts.epochs)
        self.events.phase_start("train")
        facts.train_start = self.clock()
        for epoch in range(self.epochs):
            state = cache()
            start = self.clock()
            rec = EpochRecord(epoch, start=start, cache=state, expected_bytes=runner.expected_epoch_bytes(epoch))
            facts.epochs.append(rec)
            self.events.task_start(f"epoch {epoch + 1}/{self.epochs}", total=per_epoch, unit="samples")
            try:
                self.coordinator.epoch(lambda: self.steps(runner, rec, steps), runner.epoch_scope)
                rec.end = self.clock()
                rec.complete = True
            finally:
                self.events.task_end()
            self.policy.check_epoch(rec)
        facts.train_end = self.clock()
        self.events.phase_end("train", facts.train_end - facts.train_start)

    def steps(self, runner: Runner, rec: EpochRecord, steps: StepRecorder) -> None:
        """This process's steps of one epoch, each timed and recorded; the epoch's loader is
        ended (its workers stopped) however the steps end."""
        it = runner.epoch(rec.epoch)
        try:
            self._measure(runner, it, rec, steps)
        finally:
            runner.end_epoch(it)

    def _measure(self, runner: Runner, it: Any, rec: EpochRecord, steps: StepRecorder) -> None:
        clock, t_req, step = self.clock, rec.start, 0
        for batch in it:
            t_got = clock()
            if self.stop_requested():
                # a stop signal whose exception Python swallowed: one that landed in a callback whose
                # errors are only printed (os.fork's at-fork handlers, as a loader starts its workers)
                raise Interrupted()
            if batch.failures:
                self.policy.on_failures(rec, batch.failures)
            loss = runner.step(batch)
            t_done = clock()
            if rec.first_batch_s is None:
                rec.first_batch_s = t_got - rec.start
            steps.add(rec.epoch, step, t_req, t_got - t_req, t_done - t_got, batch.samples, batch.nbytes, loss,
                      len(batch.failures))
            rec.steps += 1
            rec.samples += batch.samples
            rec.bytes += batch.nbytes
            self.events.task_advance(batch.samples, batch.nbytes)
            step += 1
            t_req = t_done
            if self.max_steps is not None and step >= self.max_steps:
                break
