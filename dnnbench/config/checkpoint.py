"""The checkpoint workload's checks at validation (``training.trainer: checkpoint``): a size that
resolves and fits this machine's memory, and a framework x storage client combination that has
a checkpoint writer. Light: imports neither torch nor tensorflow.
"""

from __future__ import annotations

from typing import Any

from dnnbench.checkpoint.sizes import memory_problem, total_bytes
from dnnbench.config.limits import machine_memory_MiB
from dnnbench.registry import STORAGE
from dnnbench.storage.backends import S3

#: ``training.trainer`` value that selects the workload
CHECKPOINT_WORKLOAD = "checkpoint"
#: the S3 client whose DCP writer/reader the workload uses
DCP_S3_CLIENT = "s3torchconnector"


def checkpoint_problem(cfg: Any) -> str | None:
    """What is wrong with the config's checkpoint workload (or with workload keys given to
    another trainer), or None."""
    ckpt = cfg.checkpoint
    if cfg.training.trainer != CHECKPOINT_WORKLOAD:
        if ckpt.preset is not None or ckpt.size_bytes is not None:
            return ("checkpoint.preset / checkpoint.size_bytes size the checkpoint workload: set "
                    "training.trainer: checkpoint (or drop them; execution.phases.checkpoint uses size_MiB)")
        return None
    try:
        total = total_bytes(ckpt.preset, ckpt.scale, ckpt.size_bytes)
    except ValueError as e:
        return str(e)
    memory = cfg.limits.memory_MiB or machine_memory_MiB()
    source = "limits.memory_MiB" if cfg.limits.memory_MiB else "this machine's memory (limits.memory_MiB)"
    what = "checkpoint.size_bytes" if ckpt.size_bytes else "checkpoint.preset x checkpoint.scale"
    return (memory_problem(total, memory * 2**20 if memory else None, f"{what} vs {source}")
            or client_problem(cfg.framework.name, cfg.storage.client) or _alone_problem(cfg))


def client_problem(framework: str, client: str) -> str | None:
    """Why ``framework`` cannot checkpoint through storage ``client`` here, or None."""
    backend = STORAGE.spec_of(client)
    if backend is None or backend.kind != S3:
        return None
    name = STORAGE.canonical(client)
    if framework == "tensorflow":
        return (f"the checkpoint workload with framework tensorflow and storage.client {name} is not supported: "
                "tf.train.Checkpoint writes only to local paths (TensorFlow has no s3:// filesystem); use "
                f"framework.name pytorch with storage.client {DCP_S3_CLIENT}, or storage.client fs")
    if name != DCP_S3_CLIENT:
        return (f"the checkpoint workload with framework pytorch and storage.client {name} is not supported: "
                f"torch.distributed.checkpoint reaches S3 through {DCP_S3_CLIENT}'s S3StorageWriter/Reader; "
                f"use storage.client {DCP_S3_CLIENT} (same storage.s3 section)")
    return None


def _alone_problem(cfg: Any) -> str | None:
    """The workload runs alone: no inference or checkpoint phase, no emulation around it."""
    phases = cfg.execution.phases
    if phases.inference or phases.checkpoint:
        return ("training.trainer checkpoint runs the checkpoint workload alone: turn execution.phases.inference "
                "and execution.phases.checkpoint off")
    if cfg.storage.emulate is not None:
        return ("storage.emulate does not reach the checkpoint workload's writers (DCP talks to the storage "
                "itself): drop storage.emulate")
    return None
