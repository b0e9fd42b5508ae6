"""How many intra-op (compute) threads the training process uses: ``framework.intra_op_threads``.

Framework-neutral and free of torch / tensorflow, so the rule is tested on its own:

- a number in the config is used as given;
- ``auto`` takes ``OMP_NUM_THREADS`` when the environment sets it (a launcher, a job
  script or torchrun chose it), else ``max(1, (cores - num_workers) // 2)``: the loader
  workers get their cores first, and the compute threads half of the rest (the main
  process also runs the training loop, collation and the storage client's threads).

Why half: an OpenMP op waits for its slowest thread, so one compute thread per core on a
busy machine stalls every step. Measured with the quickstart (2 cores, other jobs
running, 3 repeats each): 2 threads ran 2.4x slower than 1 with 2 loader workers, 7.7x
slower with 1 worker and 6.5x slower with none; too few threads costs at most the
factor of threads left idle, too many costs several times that.

``cores`` counts the CPUs this process may run on (its affinity mask), not the machine's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Threads:
    """The intra-op thread count chosen and why (recorded in environment.json)."""

    intra_op: int
    source: str

    def describe(self) -> dict[str, int | str]:
        return {"intra_op_threads": self.intra_op, "intra_op_threads_source": self.source}


def usable_cores() -> int:
    """CPUs this process may run on (``sched_getaffinity`` where the OS has it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def omp_num_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """``OMP_NUM_THREADS`` as a positive int; None when unset or not a positive number."""
    raw = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(raw.split(",")[0])  # OpenMP allows a nesting list "4,2": the outer level counts
    except ValueError:
        return None
    return n if n > 0 else None


def intra_op_threads(setting: int | str, num_workers: int, cores: int | None = None,
                     environ: Mapping[str, str] | None = None) -> Threads:
    """The intra-op thread count for ``framework.intra_op_threads`` = ``setting``.

    Args:
        setting: ``"auto"`` or a positive count.
        num_workers: loader worker processes (``framework.num_workers``).
        cores: usable CPUs (default: this process's affinity).
        environ: the environment (default ``os.environ``).
    """
    if setting != "auto":
        return Threads(int(setting), "framework.intra_op_threads")
    omp = omp_num_threads(environ)
    if omp is not None:
        return Threads(omp, "OMP_NUM_THREADS")
    cores = usable_cores() if cores is None else cores
    return Threads(max(1, (cores - num_workers) // 2),
                   f"auto: max(1, ({cores} cores - {num_workers} loader workers) // 2)")
