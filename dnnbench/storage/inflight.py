"""Several requests in flight from one process (``dataset.requests_in_flight``).

A loader worker (or a tf.data reading thread) keeps K storage requests outstanding
through a small thread pool of this process: the pool is made on first use and made
again after a fork (threads do not cross a fork), so Storage objects stay picklable
and every loader start method works. Results come back in submission order, so batches
stay in the sampler's order; at most K requests are outstanding at once. With K = 1
nothing here runs: callers keep their plain loop.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

_pools: dict[int, ThreadPoolExecutor] = {}
_pool_pid: int | None = None
_lock = threading.Lock()
_callers = 1


def set_callers(n: int) -> None:
    """How many threads of this process read at once, each with its own K in flight (tf.data's
    reading threads; a PyTorch loader worker has one): pools get ``n`` x K threads."""
    global _callers
    _callers = max(1, int(n))


def pool(k: int) -> ThreadPoolExecutor:
    """This process's pool for callers keeping ``k`` requests in flight: k x :func:`set_callers` threads."""
    k *= _callers
    global _pool_pid
    pid = os.getpid()
    if _pool_pid != pid:  # a forked child: the parent's pools have no threads here
        with _lock:
            if _pool_pid != pid:
                _pools.clear()
                _pool_pid = pid
    executor = _pools.get(k)
    if executor is None:
        with _lock:
            executor = _pools.get(k)
            if executor is None:
                executor = _pools[k] = ThreadPoolExecutor(max_workers=k, thread_name_prefix=f"inflight{k}")
    return executor


def in_order(fn: Callable[[Any], Any], items: Iterable[Any], k: int) -> Iterator[Any]:
    """``fn(item)`` for each item, at most ``k`` running at once, results yielded in order.

    ``fn`` should not raise (return failures as values): an exception is re-raised here, in
    order. Closing the iterator early (the caller stops after a failure that ends the run)
    cancels the calls not yet started and waits for those running, so nothing outlives it.
    """
    executor = pool(k)
    it = iter(items)
    pending: deque[Future] = deque()
    try:
        for item in it:
            pending.append(executor.submit(fn, item))
            if len(pending) >= k:
                break
        while pending:
            result = pending.popleft().result()
            for item in it:
                pending.append(executor.submit(fn, item))
                break
            yield result
    finally:
        for fut in pending:
            fut.cancel()
        for fut in pending:
            if not fut.cancelled():
                fut.exception()  # wait: a request still running writes into the caller's buffer
