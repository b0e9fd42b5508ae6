"""Who does what in a run of one process or of several ranks (torchrun): the one module that
knows ranks. The run asks its coordinator, never which rank it is.

``torchrun --nproc_per_node N benchmark.py --config F`` starts N processes with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set (``--nnodes M``: M launchers, one per
node). Each rank reads its own split of the data; rank 0 prepares the data, picks the run
directory's name and tells the others; each node creates that directory in its own results
folder (nodes share none) and every rank writes its CSVs under ``rank-K/`` there. The measured
phases start together (:meth:`RankGroup.start_together`: the clocks compared, then a barrier);
at the end rank 0 gathers every rank's summary row and timing over torch.distributed and writes
the aggregate (:func:`dnnbench.reporting.aggregate.aggregate`) and the per-rank and per-node rows. A step that can fail on one rank
(preparing or checking the data, an epoch of DDP steps) ends in :meth:`RankGroup.agree`, so a
failure anywhere ends every rank with that error instead of leaving the others blocked in a
collective.

:class:`SingleProcess` offers the same methods for a run of one process (rank 0 of 1), doing
the single-process thing. torch is imported only by :class:`RankGroup` (WORLD_SIZE > 1).
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

from dnnbench import errors
from dnnbench.errors import RELAYED, BenchError, ConfigError, RunFailed
from dnnbench.events import Events, NullEvents
from dnnbench.reporting.aggregate import aggregate
from dnnbench.results import create_run_dir, make_dir
from dnnbench.run.nodes import Clock, RankTiming, offset_from_pings, rank_columns, this_member

if TYPE_CHECKING:
    from dnnbench.reporting.report import RunFacts

T = TypeVar("T")
Row = dict[str, Any]
#: clock exchanges with rank 0 per rank; the shortest round trip is kept
PINGS = 5


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect() -> DistInfo:
    """Read the launcher's environment (torchrun sets it); a single process otherwise."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return DistInfo()
    return DistInfo(rank, world, local) if world > 1 else DistInfo()


class Coordinator(Protocol):
    """What the run asks of its process group."""

    info: DistInfo

    def speaker(self, events: Events) -> Events:
        """The events this process reports to (rank 0 speaks for the run)."""

    def each(self, work: Callable[[], T], main_only: bool = False) -> T | None:
        """``work()`` on every rank (or on rank 0 only), then every rank learns whether it
        failed anywhere and raises that error."""

    def on_main(self, work: Callable[[], T]) -> T | None:
        """``work()`` on rank 0 only, without a collective (the last record of a failed run)."""

    def barrier(self) -> None:
        """Every rank waits here for the others (a measured step starts together)."""

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0, in rank order (None elsewhere)."""

    def run_dirs(self, output_dir: str, run_id: str | None, stem: str) -> tuple[Path, Path]:
        """(the run directory, this process's working directory in it), created."""

    def name(self, base: str) -> str:
        """``base`` made this process's own (a checkpoint key per rank)."""

    def epoch(self, work: Callable[[], None], scope: Callable[[], AbstractContextManager | None]) -> None:
        """One epoch's steps, under the runner's ``scope`` where ranks' collective steps may be uneven."""

    def start_together(self) -> Clock:
        """Before the measured phases: this clock against rank 0's, then every rank waits for the others."""

    def label(self, row: Row) -> Row:
        """This process's summary row, marked with its rank where there are several."""

    def combine(self, row: Row, facts: RunFacts) -> tuple[Row, list[Row]] | None:
        """The run's summary row from every process's, and each rank's row with its own columns
        (empty for a single process); None on ranks other than 0."""

    def describe(self) -> dict[str, int] | None:
        """The ``distributed`` entry of environment.json."""

    def close(self) -> None:
        """Leave the process group."""


class SingleProcess:
    """The coordinator of a run of one process: every step runs here, and is final."""

    info = DistInfo()

    def speaker(self, events: Events) -> Events:
        return events

    def each(self, work: Callable[[], T], main_only: bool = False) -> T | None:
        return work()

    def on_main(self, work: Callable[[], T]) -> T | None:
        return work()

    def barrier(self) -> None:
        pass

    def gather(self, value: Any) -> list[Any] | None:
        return [value]

    def run_dirs(self, output_dir: str, run_id: str | None, stem: str) -> tuple[Path, Path]:
        run_dir = create_run_dir(output_dir, run_id, stem)
        return run_dir, run_dir

    def name(self, base: str) -> str:
        return base

    def epoch(self, work: Callable[[], None], scope: Callable[[], AbstractContextManager | None]) -> None:
        work()

    def start_together(self) -> Clock:
        return Clock(perf_to_wall_s=time.time() - time.perf_counter())

    def label(self, row: Row) -> Row:
        return row

    def combine(self, row: Row, facts: RunFacts) -> tuple[Row, list[Row]] | None:
        return row, []

    def describe(self) -> dict[str, int] | None:
        return None

    def close(self) -> None:
        pass


class RankGroup:
    """The torch.distributed process group of a multi-rank run (gloo on CPU, nccl on CUDA)."""

    def __init__(self, info: DistInfo, device: str = "cpu"):
        import torch
        import torch.distributed as dist

        self.info = info
        self.dist = dist
        if not dist.is_initialized():
            backend = "nccl" if device == "cuda" and torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(info.local_rank)
            _import_before_the_group()
            dist.init_process_group(backend=backend, init_method="env://")
        # object collectives go over a gloo group even when the main backend is nccl
        self.objects = dist.new_group(backend="gloo") if dist.get_backend() == "nccl" else None
        self.clock: Clock | None = None

    # -- collectives ---------------------------------------------------------------
    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        box = [value if self.info.is_main else None]
        self.dist.broadcast_object_list(box, src=0, group=self.objects)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0 (None elsewhere)."""
        out = [None] * self.info.world if self.info.is_main else None
        self.dist.gather_object(value, out, dst=0, group=self.objects)
        return out

    def barrier(self) -> None:
        self.dist.barrier(group=self.objects)

    def agree(self, error: BaseException | None) -> None:
        """Every rank's outcome of the same step; raises on every rank when any rank failed.

        A collective, so every rank calls it at the same point, failed or not: a rank that
        fails alone then never leaves the others waiting in the next collective.

        Raises:
            BaseException: this rank's own ``error``; else the lowest failing rank's error,
                rebuilt here (a :class:`BenchError` keeps its class, reference and hint).
        """
        out: list[Any] = [None] * self.info.world
        self.dist.all_gather_object(out, portable(error), group=self.objects)
        if error is not None:
            raise error
        for rank, failure in enumerate(out):
            if failure is not None:
                raise rebuild(failure, rank)

    # -- the run's steps -------------------------------------------------------------
    def speaker(self, events: Events) -> Events:
        return events if self.info.is_main else NullEvents()

    def each(self, work: Callable[[], T], main_only: bool = False) -> T | None:
        """``work()`` on this rank (unless ``main_only`` and this is not rank 0), then
        :meth:`agree` on how every rank's ``work`` went."""
        try:
            result = work() if self.info.is_main or not main_only else None
        except Exception as e:  # noqa: BLE001 - told to every rank, then re-raised here
            self.agree(e)
            raise
        self.agree(None)
        return result

    def on_main(self, work: Callable[[], T]) -> T | None:
        return work() if self.info.is_main else None

    def run_dirs(self, output_dir: str, run_id: str | None, stem: str) -> tuple[Path, Path]:
        """Rank 0 creates the run directory (never reused); the other ranks learn its name and
        create it in their own results folder where it is not there yet (another node, which
        shares no folder with rank 0). Each rank works in ``rank-K/`` inside it."""
        name = self.each(lambda: create_run_dir(output_dir, run_id, stem).name, main_only=True)
        run_dir = Path(output_dir) / self.broadcast(name)
        work_dir = run_dir / f"rank-{self.info.rank}"
        self.each(lambda: make_dir(work_dir, output_dir))
        return run_dir, work_dir

    def name(self, base: str) -> str:
        return f"{base}-rank{self.info.rank}"

    def epoch(self, work: Callable[[], None], scope: Callable[[], AbstractContextManager | None]) -> None:
        """With collective steps (DDP), the epoch ends when every rank has run out of batches, and
        a rank that fails ends the epoch of every rank with its error instead of leaving them
        waiting in an all-reduce."""
        join = scope()
        if join is None:
            work()
            return
        error = None
        with join:  # a rank out of batches (or failed) answers the others' all-reduces
            try:
                work()
            except Exception as e:  # noqa: BLE001 - every rank learns of it just below
                error = e
        self.agree(error)

    def start_together(self) -> Clock:
        """Each rank's wall clock against rank 0's (:meth:`_ping`), then a barrier: the measured
        phases start together; what skew remains is measured (``start_skew_ms``)."""
        offset, error = self._ping()
        self.clock = Clock(offset, error, time.time() - time.perf_counter())
        self.barrier()
        return self.clock

    def _ping(self) -> tuple[float, float]:
        """Rank 0 answers :data:`PINGS` round trips of every other rank in turn with its
        ``time.time()``; each rank keeps the shortest (see :func:`offset_from_pings`)."""
        import torch

        box = torch.zeros(1, dtype=torch.float64)
        if self.info.is_main:
            for rank in range(1, self.info.world):
                for _ in range(PINGS):
                    self.dist.recv(box, src=rank, group=self.objects)
                    box[0] = time.time()
                    self.dist.send(box, dst=rank, group=self.objects)
            return 0.0, 0.0
        pings = []
        for _ in range(PINGS):
            sent = time.time()
            self.dist.send(box, dst=0, group=self.objects)
            self.dist.recv(box, src=0, group=self.objects)
            pings.append((sent, float(box[0]), time.time()))
        return offset_from_pings(pings)

    def label(self, row: Row) -> Row:
        return {**row, "rank": self.info.rank}

    def combine(self, row: Row, facts: RunFacts) -> tuple[Row, list[Row]] | None:
        """Rank 0 gathers every rank's row and timing (:class:`RankTiming`), adds each rank's own
        columns (:func:`dnnbench.run.nodes.rank_columns`) and aggregates them
        (:func:`dnnbench.reporting.aggregate.aggregate`)."""
        gathered = self.gather((row, self._timing(facts)))
        if gathered is None:
            return None
        placed = rank_columns([t for _, t in gathered])
        rows = [{**own, **r} for (r, _), own in zip(gathered, placed)]
        return aggregate(rows), rows

    def _timing(self, facts: RunFacts) -> RankTiming:
        """This rank's timing in rank 0's clock (none when the measured phases never started)."""
        member = this_member(self.info.rank, self.info.local_rank)
        clock = self.clock
        if clock is None:
            return RankTiming(member, None, None, None)
        reads = tuple((clock.to_main(s[2] + s[3]), int(s[6])) for s in facts.steps)
        return RankTiming(member, clock, clock.to_main(facts.train_start), clock.to_main(facts.train_end),
                          reads)  # type: ignore[arg-type]

    def describe(self) -> dict[str, int] | None:
        return {"rank": self.info.rank, "world_size": self.info.world}

    def close(self) -> None:
        """Destroys the process group. The caller has dropped what else holds it (the DDP model),
        so its threads are joined here, while the interpreter is whole (see
        :func:`_import_before_the_group`)."""
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def _import_before_the_group() -> None:
    """Imports ``torch.distributed.nn.functional`` before the process group exists.

    Its functions take ``group=group.WORLD`` as a default, bound when the module is imported;
    DCP imports it (through ``torch.distributed._shard``). Imported after
    ``init_process_group``, they would hold the group past ``destroy_process_group()``, and it
    would be torn down by the interpreter's finalization instead: a gloo thread still releasing
    the tensors of the last object collective then cannot take the GIL, and the rank aborts
    (SIGABRT, "terminate called without an active exception") after its run has ended well;
    measured: 1 run in 20 of the two-rank checkpoint workload through s3torchconnector.
    Imported first, the defaults are None (the default group, looked up at each call)."""
    import torch.distributed.nn.functional  # noqa: F401


def start(config: Any) -> Coordinator:
    """The coordinator of this process: a :class:`RankGroup` under a launcher, else a
    :class:`SingleProcess`.

    Raises:
        ConfigError: several ranks, with a framework other than PyTorch.
    """
    info = detect()
    if not info.enabled:
        return SingleProcess()
    if config.framework.name != "pytorch":
        raise ConfigError("multi-rank runs (torchrun) need framework.name: pytorch", reference="framework.name")
    return RankGroup(info, _device_kind(config))


def _device_kind(config: Any) -> str:
    """cuda when the run will train on a GPU (nccl), else cpu (gloo)."""
    if config.execution.device == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# -- the error relay ------------------------------------------------------------------
def portable(error: BaseException | None) -> dict[str, Any] | None:
    """What other ranks need to raise the same error (exceptions may not pickle)."""
    if error is None:
        return None
    if isinstance(error, BenchError):
        return {"kind": type(error).__name__, "message": error.message, "reference": error.reference,
                "hint": error.hint, "exit_code": error.exit_code, "details": list(getattr(error, "details", []))}
    return {"kind": None, "message": f"{type(error).__name__}: {error}", "reference": None, "hint": None,
            "exit_code": errors.EXIT_FAILED}


def rebuild(failure: dict[str, Any], rank: int) -> BenchError:
    """Another rank's :func:`portable` error, raised here: the same class (and so exit code)
    for dnnbench's errors, :class:`RunFailed` naming the rank for anything else."""
    cls = getattr(errors, failure["kind"] or "", None)
    if isinstance(cls, type) and issubclass(cls, BenchError):
        error = cls(f"{failure['message']}{RELAYED.format(rank=rank)}", reference=failure["reference"],
                    hint=failure["hint"])
        if failure.get("details"):
            error.details = failure["details"]
    else:
        error = RunFailed(f"{failure['message']}{RELAYED.format(rank=rank)}",
                          hint="run again with --debug for the traceback")
    error.exit_code = failure["exit_code"]
    return error
