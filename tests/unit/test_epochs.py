"""The measured epoch loop (dnnbench.run.epochs) against a fake runner and an injected clock:
exact step, sample and byte counts, waits and compute times, max_steps, failed samples under
on_error fail / skip, the skipped-share limit, and the loader ended however an epoch ends."""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dnnbench.config.schema import DatasetConfig, TrainingConfig
from dnnbench import failures
from dnnbench.errors import Interrupted, SampleError, StorageError
from dnnbench.frameworks.common import Failure
from dnnbench.frameworks.protocols import Runner
from dnnbench.reporting.report import RunFacts
from dnnbench.run.epochs import EpochLoop
from dnnbench.run.skips import FailurePolicy, Skipped

WAIT_S = 1.0  # each next() of the fake loader
STEP_S = 0.25  # each step of the fake trainer


class Clock:
    """Seconds that pass only when the fake runner says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeBatch:
    def __init__(self, samples: int, nbytes: int, bad: list[Failure] | None = None):
        self.data, self.labels = None, None
        self.samples, self.nbytes, self.failures = samples, nbytes, bad or []


class FakeRunner:
    """Hands out the same batches every epoch; the loader takes WAIT_S per batch, a step STEP_S."""

    framework = "fake"

    def __init__(self, clock: Clock, batches: list[FakeBatch], per_epoch: int | None = None,
                 expected: int | None = None):
        self.clock = clock
        self.batches = batches
        self.per_epoch = per_epoch
        self.expected = expected
        self.ended: list[int] = []  # epochs whose loader was ended
        self.stepped = 0
        self.scopes = 0

    def setup(self) -> None:
        pass

    def samples_per_epoch(self) -> int | None:
        return self.per_epoch

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        return None if self.expected is None else self.expected + epoch

    def epoch(self, epoch: int) -> Iterator[FakeBatch]:
        def batches() -> Iterator[FakeBatch]:
            for b in self.batches:
                self.clock.now += WAIT_S
                yield b
        return _Tagged(batches(), epoch)

    def epoch_scope(self) -> AbstractContextManager | None:
        self.scopes += 1
        return None

    def end_epoch(self, it: Any) -> None:
        self.ended.append(it.epoch)

    def step(self, batch: FakeBatch) -> float | None:
        self.clock.now += STEP_S
        self.stepped += 1
        return 0.5

    def infer(self, index: Any) -> Any:
        raise NotImplementedError

    def checkpoint(self, key: str) -> Any:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class _Tagged:
    def __init__(self, it: Iterator[FakeBatch], epoch: int):
        self.it, self.epoch = it, epoch

    def __iter__(self) -> Iterator[FakeBatch]:
        return self.it


class Events:
    """Records what the loop reports."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self.calls.append((name, *args))


@pytest.fixture(autouse=True)
def _no_stop_signal():
    from dnnbench import signals

    signals.reset()  # another test's stop signal is not this loop's


def _facts(tmp_path: Path) -> RunFacts:
    return RunFacts(run_id="r", run_dir=tmp_path, started_at="", identity={}, t0=0.0)


def _loop(clock: Clock, events: Events | None = None, epochs: int = 2, max_steps: int | None = None,
          skipped: Skipped | None = None, **dataset: Any) -> EpochLoop:
    events = events or Events()
    policy = FailurePolicy(DatasetConfig(**dataset), events, skipped or Skipped())
    return EpochLoop(TrainingConfig(epochs=epochs, max_steps=max_steps), policy, events, clock=clock)


def test_fake_runner_is_a_runner():
    assert isinstance(FakeRunner(Clock(), []), Runner)


def test_counts_and_times_every_step(tmp_path):
    clock, events = Clock(), Events()
    runner = FakeRunner(clock, [FakeBatch(4, 400), FakeBatch(4, 410), FakeBatch(2, 205)], per_epoch=10,
                        expected=1015)
    facts = _facts(tmp_path)
    caches = iter(["cold", "warm"])
    _loop(clock, events).train(runner, facts, lambda: next(caches))
    assert [(r.epoch, r.steps, r.samples, r.bytes, r.failed_samples, r.complete) for r in facts.epochs] == \
        [(0, 3, 10, 1015, 0, True), (1, 3, 10, 1015, 0, True)]
    assert [r.cache for r in facts.epochs] == ["cold", "warm"]
    assert [r.expected_bytes for r in facts.epochs] == [1015, 1016]
    e0, e1 = facts.epochs
    assert (e0.start, e0.end, e0.first_batch_s) == (100.0, 103.75, 1.0)
    assert (e1.start, e1.end) == (103.75, 107.5)
    assert (facts.train_start, facts.train_end) == (100.0, 107.5)
    # epoch, step, request time, wait, compute, samples, bytes, loss, failed samples
    assert facts.steps[:3] == [[0, 0, 100.0, 1.0, 0.25, 4, 400, 0.5, 0], [0, 1, 101.25, 1.0, 0.25, 4, 410, 0.5, 0],
                               [0, 2, 102.5, 1.0, 0.25, 2, 205, 0.5, 0]]
    assert [row[:2] for row in facts.steps[3:]] == [[1, 0], [1, 1], [1, 2]]
    assert runner.ended == [0, 1] and runner.scopes == 0  # one process: no epoch scope asked for
    assert [c for c in events.calls if c[0] == "task_start"] == [("task_start", "epoch 1/2"), ("task_start", "epoch 2/2")]
    assert [c[1:] for c in events.calls if c[0] == "task_advance"] == [(4, 400), (4, 410), (2, 205)] * 2
    assert ("phase_end", "train", 7.5) in events.calls


def test_max_steps_ends_each_epoch_early_and_ends_its_loader(tmp_path):
    clock = Clock()
    runner = FakeRunner(clock, [FakeBatch(4, 100)] * 5)
    facts = _facts(tmp_path)
    _loop(clock, epochs=3, max_steps=2).train(runner, facts, lambda: "unknown")
    assert [(r.steps, r.samples, r.bytes) for r in facts.epochs] == [(2, 8, 200)] * 3
    assert runner.stepped == 6 and runner.ended == [0, 1, 2] and len(facts.steps) == 6


def test_on_error_fail_names_the_first_bad_sample(tmp_path):
    clock = Clock()
    bad = [Failure("train/a/2.jpg", failures.BAD_DECODE + "not an image"), Failure("train/a/3.jpg", "x")]
    runner = FakeRunner(clock, [FakeBatch(4, 100), FakeBatch(2, 50, bad), FakeBatch(4, 100)])
    facts = _facts(tmp_path)
    with pytest.raises(SampleError) as e:
        _loop(clock).train(runner, facts, lambda: "unknown")
    assert e.value.reference == "train/a/2.jpg" and "not an image" in e.value.message
    assert "dataset.on_error: skip" in e.value.hint
    rec = facts.epochs[0]
    assert (rec.steps, rec.samples, rec.complete, runner.stepped) == (1, 4, False, 1)
    assert runner.ended == [0] and len(facts.epochs) == 1 and facts.train_end is None


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_an_outage_ends_the_run_whatever_on_error_says(tmp_path, on_error):
    clock = Clock()
    down = failures.read_failure(ConnectionRefusedError(111, "Connection refused"))
    runner = FakeRunner(clock, [FakeBatch(4, 100), FakeBatch(0, 0, [Failure("train/a/5.jpg", down)])])
    with pytest.raises(StorageError) as e:
        _loop(clock, on_error=on_error).train(runner, _facts(tmp_path), lambda: "unknown")
    assert e.value.reference == "train/a/5.jpg" and runner.ended == [0]


def test_skip_counts_records_and_warns_the_first_three(tmp_path):
    clock, events, skipped = Clock(), Events(), Skipped()
    bad = [Failure(f"k{i}", failures.BAD_READ + "gone") for i in range(2)]
    runner = FakeRunner(clock, [FakeBatch(3, 300, bad), FakeBatch(5, 500), FakeBatch(4, 400, bad[:1])],
                        per_epoch=15)
    facts = _facts(tmp_path)
    _loop(clock, events, skipped=skipped, on_error="skip", max_skipped_percent=50).train(runner, facts,
                                                                                          lambda: "unknown")
    assert [(r.samples, r.failed_samples, r.bytes) for r in facts.epochs] == [(12, 3, 1200)] * 2
    assert [row[8] for row in facts.steps] == [2, 0, 1] * 2
    assert skipped.rows[:3] == [(0, "k0", failures.BAD_READ + "gone"), (0, "k1", failures.BAD_READ + "gone"),
                                (0, "k0", failures.BAD_READ + "gone")]
    assert len(skipped.rows) == 6 and skipped.first(1) == ("k0", failures.BAD_READ + "gone")
    warnings = [c[1] for c in events.calls if c[0] == "warning"]
    assert warnings == ["skipped k0: read failed: gone", "skipped k1: read failed: gone",
                        "skipped k0: read failed: gone"]


def test_skipped_share_over_the_limit_of_a_known_epoch_ends_it_at_once(tmp_path):
    clock = Clock()
    bad = [Failure(f"k{i}", failures.BAD_DECODE + "truncated") for i in range(2)]
    runner = FakeRunner(clock, [FakeBatch(8, 800), FakeBatch(2, 200, bad), FakeBatch(10, 1000)], per_epoch=20)
    facts = _facts(tmp_path)
    with pytest.raises(SampleError) as e:  # 2 of 20 = 10 % > 5 %: no need to read the rest
        _loop(clock, on_error="skip", max_skipped_percent=5).train(runner, facts, lambda: "unknown")
    assert e.value.reference == "dataset.max_skipped_percent"
    assert e.value.message.startswith("2 of 20 samples of epoch 1 skipped (10.0 %)")
    assert "the first: k0: decode failed: truncated" in e.value.message
    assert runner.stepped == 1 and runner.ended == [0]


def test_skipped_share_of_an_unknown_epoch_is_checked_when_it_ends(tmp_path):
    clock = Clock()
    bad = [Failure("k0", failures.BAD_READ + "gone")]
    runner = FakeRunner(clock, [FakeBatch(3, 300, bad), FakeBatch(4, 400)], per_epoch=None)
    facts = _facts(tmp_path)
    with pytest.raises(SampleError) as e:  # 1 of 8 = 12.5 % > 10 %, known only at the epoch's end
        _loop(clock, on_error="skip", max_skipped_percent=10).train(runner, facts, lambda: "unknown")
    assert e.value.message.startswith("1 of 8 samples of epoch 1 skipped (12.5 %)")
    rec = facts.epochs[0]
    assert rec.complete and (rec.steps, rec.samples) == (2, 7) and runner.stepped == 2 and len(facts.epochs) == 1


def test_within_the_limit_the_run_goes_on(tmp_path):
    clock = Clock()
    bad = [Failure("k0", failures.BAD_READ + "gone")]
    runner = FakeRunner(clock, [FakeBatch(3, 300, bad), FakeBatch(6, 600)], per_epoch=None)
    facts = _facts(tmp_path)
    _loop(clock, on_error="skip", max_skipped_percent=10).train(runner, facts, lambda: "unknown")  # 1 of 10
    assert [(r.samples, r.failed_samples, r.complete) for r in facts.epochs] == [(9, 1, True)] * 2


class Coordinator:
    """Runs each epoch under the runner's scope, as a multi-rank group does."""

    def __init__(self) -> None:
        self.epochs = 0
        self.entered = 0

    def epoch(self, work: Callable[[], None], scope: Callable[[], AbstractContextManager | None]) -> None:
        self.epochs += 1
        join = scope()

        @contextmanager
        def counted() -> Iterator[None]:
            self.entered += 1
            yield

        with join or counted():
            work()


def test_each_epoch_runs_through_the_coordinator(tmp_path):
    clock, coord = Clock(), Coordinator()
    runner = FakeRunner(clock, [FakeBatch(1, 10)] * 2)
    events = Events()
    policy = FailurePolicy(DatasetConfig(), events, Skipped())
    facts = _facts(tmp_path)
    EpochLoop(TrainingConfig(epochs=3), policy, events, coord, clock=clock).train(runner, facts, lambda: "unknown")
    assert (coord.epochs, coord.entered, runner.scopes) == (3, 3, 3)
    assert [r.steps for r in facts.epochs] == [2, 2, 2]


def test_a_stop_signal_whose_exception_was_swallowed_still_ends_the_epoch(tmp_path):
    """A SIGTERM that lands while the loader forks its workers raises inside an at-fork handler,
    where Python only prints the exception: the noted stop ends the run at the next batch."""
    clock, stops = Clock(), iter([False, False, True])
    runner = FakeRunner(clock, [FakeBatch(4, 100)] * 5)
    events = Events()
    loop = EpochLoop(TrainingConfig(epochs=2), FailurePolicy(DatasetConfig(), events, Skipped()), events,
                     clock=clock, stop_requested=lambda: next(stops))
    facts = _facts(tmp_path)
    with pytest.raises(Interrupted):
        loop.train(runner, facts, lambda: "unknown")
    assert (facts.epochs[0].steps, runner.stepped, runner.ended) == (2, 2, [0])
