"""The framework-neutral halves of the inference and checkpoint phases: the inference
accounting and the checkpoint round trip through the storage, each ending in its typed result
(:mod:`.results`). Each framework adds only what is its own: predicting a batch, and
(de)serialising its state. Imports neither torch nor tensorflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from dnnbench import failures
from dnnbench.frameworks.common import mark_epoch
from dnnbench.frameworks.protocols import Batch
from dnnbench.frameworks.results import CheckpointResult, InferResult, rate
from dnnbench.storage.base import Storage

#: the ``epoch`` of the requests of the inference and checkpoint phases in requests.csv
INFER_EPOCH = -1
CHECKPOINT_EPOCH = -2


class InferTally:
    """Counts the inference phase from its first batch: samples, bytes, correct predictions,
    failed samples, and the time since the tally was made."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self.t0 = clock()
        self.samples = self.nbytes = self.correct = self.failed = 0

    def batches(self, it: Iterable[Batch]) -> Iterator[Batch]:
        """The batches worth predicting, counted: an outage ends the phase (whatever
        ``dataset.on_error`` says), failed samples are counted, empty batches left out.

        Raises:
            StorageError: a sample failed because the storage stopped answering.
            RunFailed: the request log could not be written.
        """
        for batch in it:
            failures.raise_if_fatal(batch.failures)
            self.failed += len(batch.failures)
            if not batch.samples:
                continue
            self.samples += batch.samples
            self.nbytes += batch.nbytes
            yield batch

    def result(self) -> InferResult:
        """The phase's figures, timed up to now."""
        seconds = self._clock() - self.t0
        return InferResult(self.samples, self.nbytes, seconds, rate(self.samples, seconds),
                           rate(self.nbytes / 2**20, seconds),
                           100.0 * self.correct / self.samples if self.samples else None, self.failed)


@dataclass(frozen=True)
class Serialiser:
    """How one framework turns its checkpoint state into bytes and back, and compares two states."""

    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    equal: Callable[[Any, Any], bool]


def round_trip(storage: Storage, key: str, state: Any, codec: Serialiser, keep: bool,
               clock: Callable[[], float] = time.perf_counter) -> CheckpointResult:
    """Save ``state`` under ``key``, load it back and verify it is equal (the bytes and the
    state); deleted afterwards unless ``keep``. Its requests are recorded as the checkpoint's."""
    mark_epoch(storage, CHECKPOINT_EPOCH)
    t0 = clock()
    data = codec.dumps(state)
    t_put = clock()
    storage.put(key, data)
    t_saved = clock()
    got, _ = storage.get(key)
    t_got = clock()
    loaded = codec.loads(got)
    t_loaded = clock()
    verified = got == data and codec.equal(state, loaded)
    if not keep:
        storage.delete(key)
    return CheckpointResult(len(data), t_saved - t0, t_loaded - t_saved, rate(len(data) / 1e6, t_saved - t_put),
                            rate(len(data) / 1e6, t_got - t_saved), "ok" if verified else "mismatch")
