"""What the machine gives the probe's processes now: cores (one spinning process per core), the
cores k processes doing a loader worker's CPU work get (contention), a worker's fork and how late
a sleeping process wakes up. On a shared machine all of these move with the others' work.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from typing import Any


def available_cores(seconds: float) -> float:
    """Cores this machine gives us now: one spinning process per core for ``seconds``, their CPU
    time over the wall time (other people's work on a shared machine takes the rest)."""
    n = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(n, mp_context=mp_context()) as pool:
        list(pool.map(_spin, [0.0] * n))  # started before the clock
        t0 = time.perf_counter()
        cpu = sum(pool.map(_spin, [seconds] * n))
        wall = time.perf_counter() - t0
    return min(float(n), cpu / wall)


def contention_levels(cores: int) -> list[int]:
    """Process counts the contention is measured at: 1, the cores, 2x and 4x the cores (at most 64)."""
    return sorted({1, cores, min(64, 2 * cores), min(64, 4 * cores)})


def contention(blobs: list[bytes], mode: str, size: tuple[int, ...], seconds: float = 0.4) -> list[list[float]]:
    """[processes, cores they got] for each of :func:`contention_levels`: that many processes do a
    loader worker's CPU work (decode the sample blobs in turn; a fixed Python loop for ``decode:
    none``) for ``seconds``; the cores they got = the CPU time they got over the wall (on a shared
    machine more processes take a larger share). Not samples done x the CPU one sample takes
    alone: that ratio moved by a third between probes of the same quiet machine (8 processes on 2
    cores: 1.23 to 2.10 cores), and every CPU-bound prediction with it."""
    work = (blobs, mode, size) if mode != "none" and blobs else ([], "none", size)
    out: list[list[float]] = []
    for k in contention_levels(len(os.sched_getaffinity(0))):
        with ProcessPoolExecutor(k, mp_context=mp_context(), initializer=_init_work, initargs=work) as pool:
            list(pool.map(_work, [0.0] * k))  # started before the clock
            t0 = time.perf_counter()
            done = list(pool.map(_work, [seconds] * k))
            wall = time.perf_counter() - t0
        samples, cpu = sum(d[0] for d in done), sum(d[1] for d in done)
        if not samples:
            continue
        out.append([k, min(float(k), cpu / wall)])
    return out


_WORK: tuple[list[bytes], str, tuple[int, ...]] = ([], "none", ())


def _init_work(blobs: list[bytes], mode: str, size: tuple[int, ...]) -> None:
    global _WORK
    _WORK = (blobs, mode, size)


def _work(seconds: float) -> tuple[int, float]:
    """In a contention process: one sample's CPU work after another for ``seconds`` (at least one);
    (samples, CPU s)."""
    blobs, mode, size = _WORK
    c0, end, n = time.process_time(), time.perf_counter() + seconds, 0
    while True:
        if mode == "none":
            sum(range(20_000))
            n += 1
        else:
            n += decode_all(blobs[n % len(blobs):n % len(blobs) + 1], mode, size)[0] or 1
        if time.perf_counter() >= end:
            return n, time.process_time() - c0


def fork_seconds(times: int = 3) -> float:
    """What starting one loader worker costs the main process now (fork, start, exit): the DataLoader
    starts its workers one after the other before the first batch."""
    ctx = mp_context()
    t0 = time.perf_counter()
    for _ in range(times):
        proc = ctx.Process(target=_spin, args=(0.0,))
        proc.start()
        proc.join()
    return (time.perf_counter() - t0) / times


def wake_seconds(n: int, sleep_s: float = 0.005, times: int = 20) -> float:
    """The mean overshoot of a short sleep in ``n`` processes at once (a worker waking up after an
    emulated latency waits for a core first: on a loaded machine this is not small)."""
    with ProcessPoolExecutor(n, mp_context=mp_context()) as pool:
        return sum(pool.map(_oversleep, [sleep_s] * n, [times] * n)) / n


def _oversleep(sleep_s: float, times: int) -> float:
    total = 0.0
    for _ in range(times):
        t0 = time.perf_counter()
        time.sleep(sleep_s)
        total += time.perf_counter() - t0 - sleep_s
    return total / times


def _spin(seconds: float) -> float:
    c0, end = time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return time.process_time() - c0


def mp_context() -> Any:
    """The fork context where there is one (the probe's processes inherit the imports)."""
    return get_context("fork" if "fork" in get_all_start_methods() else None)


def decode_all(blobs: list[bytes], mode: str, size: tuple[int, ...]) -> tuple[int, float]:
    """Decode every blob once: (decoded, thread CPU s); a blob that does not decode is skipped."""
    from dnnbench.data.decode import DecodeError, decode_image

    cpu, done = 0.0, 0
    for data in blobs:
        c0 = time.thread_time()
        try:
            decode_image(data, mode, size)
        except DecodeError:
            continue
        cpu += time.thread_time() - c0
        done += 1
    return done, cpu


