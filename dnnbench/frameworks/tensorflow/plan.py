"""How a config maps onto tf.data: pure Python, no tensorflow import, unit-tested alone.

The workers mapping (the ``workers`` column means the same for both frameworks):
``framework.num_workers`` = N is the number of storage reads in flight.

- PyTorch: N loader processes; each builds a whole batch, one read at a time.
- TensorFlow: the read stage runs with ``num_parallel_calls=N`` on a private tf.data
  thread pool of N threads (tf.data's default pool has one thread per core, which
  would silently cap the reads in flight at the core count). With ``read_unit: batch``
  each call reads a whole batch one sample at a time, as a PyTorch worker does; with
  ``read_unit: sample`` each call reads one sample. With ``parallelism: interleave``
  the epoch's batches (or samples) are dealt round-robin to ``cycle_length`` streams,
  as a DataLoader deals batches to its workers, and N of them are read side by side.
- N = 0: no parallel calls and no prefetch: the read happens in the training loop's
  own ``next()``, as with a PyTorch DataLoader without workers.
- Prefetch default: N x ``prefetch_factor`` batches, what a DataLoader keeps in flight.
- ``dataset.requests_in_flight`` K: with ``read_unit: batch`` each batch read keeps K GETs
  outstanding on a small thread pool (as a PyTorch worker does); with ``read_unit: sample``
  tf.data's own parallelism grows instead: N x K parallel calls on N x K threads (and
  N x K interleave streams by default). Either way N x K reads are in flight.

What differs, by design: tf.data's parallelism is threads in one process, so Python
work per request (client signing, recording) shares one GIL, while PyTorch's workers
are processes. That is a property of tf.data with a Python storage client, and it is
what the benchmark measures.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

AUTOTUNE = "autotune"


def epoch_order(n: int, shuffle: bool, seed: int, epoch: int, limit: int | None = None) -> np.ndarray:
    """Sample indices of one epoch: the same seeded permutation as PyTorch's EpochSampler."""
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n)
    else:
        order = np.arange(n)
    return order[: n if limit is None else min(n, limit)].astype(np.int64)


def samples_per_epoch(n: int, batch_size: int, drop_last: bool, limit: int | None = None) -> int:
    n = n if limit is None else min(n, limit)
    return n - n % batch_size if drop_last else n


def steps_per_epoch(n: int, batch_size: int, drop_last: bool, limit: int | None = None) -> int:
    n = samples_per_epoch(n, batch_size, drop_last, limit)
    return n // batch_size if drop_last else -(-n // batch_size)


@dataclass(frozen=True)
class LoaderPlan:
    """Resolved tf.data settings of one run."""

    workers: int  # reads in flight: the workers column
    batch_size: int
    drop_last: bool
    read_unit: str  # batch | sample
    parallelism: str  # map | interleave
    num_parallel_calls: int | str | None  # None: sequential; "autotune"
    cycle_length: int | None  # interleave streams
    prefetch: int | str  # batches; 0 = none; "autotune"
    shuffle: bool
    shuffle_buffer: int | None
    seed: int
    deterministic: bool
    threadpool_size: int
    limit: int | None  # samples per epoch cap (training.max_steps x batch_size)
    requests_in_flight: int = 1  # GETs each read keeps outstanding (dataset.requests_in_flight)

    @classmethod
    def from_config(cls, config: Any) -> "LoaderPlan":
        """Build from a BenchConfig (reads ``framework`` and ``training.max_steps``)."""
        fw = config.framework
        opts = fw.tensorflow
        workers = fw.num_workers
        k = int(getattr(config.dataset, "requests_in_flight", 1) or 1)
        # requests_in_flight K: a batch read keeps K GETs outstanding itself (as a PyTorch worker);
        # a sample read is one GET, so tf.data's own parallelism grows K-fold instead
        reads = max(1, workers) * (k if opts.read_unit == "sample" else 1)
        if opts.num_parallel_calls == AUTOTUNE:
            calls: int | str | None = AUTOTUNE
        else:
            calls = (reads if workers else None)
        if opts.prefetch is None:
            prefetch: int | str = workers * (fw.prefetch_factor or 2)
        else:
            prefetch = opts.prefetch
        cycle = None
        if opts.parallelism == "interleave":
            cycle = opts.cycle_length or reads
        max_steps = config.training.max_steps
        return cls(workers=workers, batch_size=fw.batch_size, drop_last=fw.drop_last, read_unit=opts.read_unit,
                   parallelism=opts.parallelism, num_parallel_calls=calls, cycle_length=cycle, prefetch=prefetch,
                   shuffle=fw.shuffle, shuffle_buffer=opts.shuffle_buffer if fw.shuffle else None,
                   seed=config.execution.seed, deterministic=opts.deterministic, threadpool_size=reads,
                   limit=max_steps * fw.batch_size if max_steps is not None else None, requests_in_flight=k)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


class WorkerIds:
    """Small, stable ids (0, 1, ...) for the tf.data threads that make requests."""

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._lock = threading.Lock()

    def current(self) -> int:
        ident = threading.get_ident()
        wid = self._ids.get(ident)
        if wid is None:
            with self._lock:
                wid = self._ids.setdefault(ident, len(self._ids))
        return wid

    def __len__(self) -> int:
        return len(self._ids)
