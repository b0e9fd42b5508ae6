"""The checkpoint workload as a run's phase (``training.trainer: checkpoint``): checks what the
machine has room for, builds the framework's engine (imported only here), runs
:class:`dnnbench.checkpoint.workload.Workload`, gathers every rank's records on rank 0 for
``checkpoints.csv``, removes the checkpoints unless ``checkpoint.keep``, and returns this
rank's summary columns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from dnnbench.checkpoint.records import OpRecord, rank_columns, write_csv
from dnnbench.checkpoint.sizes import disk_problem, memory_problem, total_bytes
from dnnbench.checkpoint.workload import Workload
from dnnbench.errors import ConfigError, RunFailed
from dnnbench.events import Events
from dnnbench.storage.backends import FILESYSTEM
from dnnbench.registry import STORAGE

#: framing and metadata DCP adds per save, beyond the tensors' bytes (for the disk check)
_OVERHEAD = 1.02


def run_workload(cfg: Any, storage: Any, coord: Any, events: Events, run_dir: Path,
                 report: Callable[[dict[str, Any]], None]) -> None:
    """The workload on this rank: its summary columns go to ``report`` (also what was measured
    before a failure); ``checkpoints.csv`` to ``run_dir`` (rank 0, every rank's records, or this
    process's alone when the run failed).

    Raises:
        ConfigError: the checkpoints do not fit the free disk or memory here.
        RunFailed, StorageError: a save or load failed, or a load differs from its save.
    """
    ckpt = cfg.checkpoint
    total = total_bytes(ckpt.preset, ckpt.scale, ckpt.size_bytes)
    where = Path(cfg.storage.root or ".") / ckpt.prefix / run_dir.name
    coord.each(lambda: _check_room(total, ckpt.saves, where if _is_local(cfg) else None, coord.info.world))
    engine = _engine(cfg, storage, coord.info, total, where, f"{ckpt.prefix}/{run_dir.name}".strip("/"))
    workload = Workload(engine, coord, ckpt.saves, ckpt.loads, total, ckpt.drop_caches, events)
    try:
        coord.each(workload.run)  # ends in an agreement: every rank is done here
    except BaseException:
        report(rank_columns(workload.records, total, coord.info.world))
        if not coord.info.enabled:
            _quietly(lambda: write_csv(run_dir, workload.records))
        if not ckpt.keep:  # best effort, without waiting for ranks that may be gone
            coord.on_main(lambda: _quietly(engine.remove))
        raise
    if not ckpt.keep:
        coord.on_main(engine.remove)
    gathered = coord.gather(workload.records)
    if gathered is not None:
        write_csv(run_dir, [r for rank_records in gathered for r in rank_records])
    columns = rank_columns(workload.records, total, coord.info.world)
    report(columns)
    if columns["ckpt_verified"] == "mismatch":
        bad = next(r for r in workload.records if r.verified == "mismatch")
        raise RunFailed(f"checkpoint {bad.index} read back by rank {bad.rank} differs from the one written",
                        reference="checkpoint", hint="the storage returned other bytes than it stored")


def _quietly(work: Any) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        pass


def _is_local(cfg: Any) -> bool:
    backend = STORAGE.spec_of(cfg.storage.client)
    return backend is not None and backend.kind == FILESYSTEM


def _check_room(total: int, saves: int, directory: Path | None, world: int) -> None:
    """The ranks of this machine hold their shards twice in memory; every save stays on disk
    until the loads are done.

    Raises:
        ConfigError: naming what does not fit.
    """
    import psutil

    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    here = total * local_world // world
    problem = memory_problem(here, psutil.virtual_memory().available, "the checkpoint vs the free memory")
    if directory is not None and problem is None:
        problem = disk_problem(str(directory), int(total * saves * _OVERHEAD))
    if problem:
        raise ConfigError(problem, reference="checkpoint.scale" if "memory" in problem else "checkpoint.saves")


def _engine(cfg: Any, storage: Any, info: Any, total: int, where: Path, prefix: str) -> Any:
    """The framework's engine for this rank (the framework imported here, not before)."""
    ckpt, seed = cfg.checkpoint, cfg.execution.seed
    if cfg.framework.name == "tensorflow":
        from dnnbench.frameworks.tensorflow.tfckpt import TfEngine

        return TfEngine(where, total, ckpt.tensors_per_rank, seed, ckpt.fsync)
    from dnnbench.frameworks.pytorch import dcp

    place = dcp.FsPlace(where, ckpt.fsync) if _is_local(cfg) else dcp.S3Place(storage, prefix)
    return dcp.DcpEngine(place, total, info.rank, info.world, ckpt.tensors_per_rank, seed)


__all__ = ["OpRecord", "run_workload"]
