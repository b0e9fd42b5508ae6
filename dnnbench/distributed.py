"""Runs under an existing launcher: torchrun / torch.distributed (env:// rendezvous).

``torchrun --nproc_per_node N benchmark.py --config F`` starts N processes with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Each rank reads its own
split of the data; rank 0 creates the one run directory and tells the others its
name; every rank writes its CSVs under ``rank-K/``; rank 0 gathers the per-rank
summary rows and writes the aggregate (:mod:`dnnbench.reporting.aggregate`). A step that
can fail on one rank (preparing or checking the data, an epoch of DDP steps) ends in :meth:`Group.agree`,
so a failure anywhere ends every rank with that error instead of leaving the others
blocked in a collective. Nothing here is imported unless WORLD_SIZE > 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from dnnbench import errors
from dnnbench.errors import BenchError, RunFailed

T = TypeVar("T")


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


class Group:
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
            dist.init_process_group(backend=backend, init_method="env://")
        # object collectives go over a gloo group even when the main backend is nccl
        self.objects = dist.new_group(backend="gloo") if dist.get_backend() == "nccl" else None

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

    def each(self, work: Callable[[], T]) -> T:
        """``work()`` on this rank, then :meth:`agree` on how every rank's ``work`` went."""
        try:
            result = work()
        except Exception as e:  # noqa: BLE001 - told to every rank, then re-raised here
            self.agree(e)
            raise
        self.agree(None)
        return result

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


RELAYED = " (from rank {rank})"  # ends the message of an error raised for another rank's failure


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
