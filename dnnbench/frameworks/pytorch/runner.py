"""Builds the PyTorch pieces of a run (device, dataset, DataLoader, model, trainer)
and hands the epoch loop one iterator of batches per epoch. How samples are read per
``dataset.access`` is :mod:`.access`'s; what is framework-neutral (model building, the
inference accounting, the checkpoint round trip) lives in :mod:`dnnbench.frameworks.common`
and :mod:`dnnbench.frameworks.phases`."""

from __future__ import annotations

import gc
import io
import os
import random
import signal
import time
import warnings
from contextlib import AbstractContextManager
from multiprocessing import util as mp_util
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from dnnbench import signals
from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, Interrupted
from dnnbench.frameworks.common import PHASE_MODEL, build_model, mark_epoch
from dnnbench.frameworks.phases import INFER_EPOCH, InferTally, Serialiser, round_trip
from dnnbench.frameworks.results import CheckpointResult, InferResult
from dnnbench.frameworks.pytorch import ring
from dnnbench.frameworks.pytorch.files import access_for
from dnnbench.frameworks.pytorch.datasets import Batch, EpochBatchSampler, ImageFolderDataset, collate
from dnnbench.frameworks.threads import Threads, intra_op_threads
from dnnbench.recording.requests import get_recorder
from dnnbench.registry import TRAINERS
from dnnbench.storage.base import Storage


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) under torch.distributed / torchrun, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU.

    Raises:
        ConfigError: ``cuda`` was asked for and there is none.
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was requested but torch sees no CUDA device",
                          reference="execution.device", hint="use device: auto or cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


#: how long stopping a loader waits for its workers to write their request rows and end
WORKER_EXIT_S = 10.0


def _stop_worker(signum: int, frame: Any) -> None:
    """A loader worker's SIGTERM (torch's shutdown, or a SIGTERM to the whole process group):
    end as on Ctrl-C, which torch's worker loop takes quietly, so the process exits normally
    and its request rows are written. A worker already ending (an epoch's end: it is writing
    its rows) just goes on. A second SIGTERM ends it at once."""
    signal.signal(signum, signal.SIG_DFL)
    if mp_util.is_exiting():
        return
    raise KeyboardInterrupt()


def stop_workers(it: Any) -> None:
    """Stop a DataLoader iterator's workers and wait (at most WORKER_EXIT_S) until they have
    ended, so that their request rows are on disk before the report reads them."""
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is None:
        return
    shutdown()
    deadline = time.monotonic() + WORKER_EXIT_S
    for w in getattr(it, "_workers", None) or ():
        w.join(timeout=max(0.0, deadline - time.monotonic()))


def start_workers(loader: DataLoader) -> Any:
    """``iter(loader)``, which forks the loader's workers, with stop signals held: a stop
    signal's exception raised inside os.fork's at-fork handlers would only be printed, and the
    run would go on. One that arrives meanwhile ends the epoch as soon as the workers are up.

    The parent's objects are frozen out of the garbage collector while the workers fork: a worker's
    full collections then never walk (and copy on write) the hundreds of thousands of objects it
    inherited (torch, pandas...), CPU a plain client loop in a small process does not pay.

    Raises:
        Interrupted: a stop signal arrived while the workers started.
    """
    with signals.held() as held:
        gc.freeze()
        try:
            it = iter(loader)
        finally:
            gc.unfreeze()
    if held.received:
        stop_workers(it)
        raise Interrupted()
    return it


class _WorkerInit:
    """Picklable worker_init_fn: per-worker seeds, one intra-op thread, the batch ring's size,
    the recorder's worker id, a SIGTERM that ends the worker cleanly, and Ctrl-C as Python's
    default (the worker was forked while the parent held stop signals: see :func:`start_workers`)."""

    def __init__(self, seed: int, storage: Storage, ring_slots: int):
        self.seed = seed
        self.storage = storage
        self.ring_slots = ring_slots

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGTERM, _stop_worker)
        if callable(signal.getsignal(signal.SIGINT)):  # forked while the parent held stop signals
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: torch's loop ends quietly
        torch.set_num_threads(1)
        ring.configure(self.ring_slots)
        np.random.seed((self.seed + worker_id) % 2**32)
        random.seed(self.seed + worker_id)
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.worker = worker_id


class PyTorchRunner:
    """One PyTorch run (a :class:`dnnbench.frameworks.protocols.Runner`): ``setup()``, then
    ``epoch(e)`` per epoch, then ``close()``."""

    framework = "pytorch"

    def __init__(self, config: Any, index: SampleIndex, storage: Storage):
        self.config = config
        self.index = index
        self.storage = storage
        self.loader: DataLoader | None = None
        self.trainer: Any = None
        self.threads: Threads | None = None

    def setup(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.execution.seed)
        # a worker has at most prefetch_factor batches in flight, the main process holds one
        self.ring_slots = (cfg.framework.prefetch_factor or 2) + 2
        ring.configure(self.ring_slots)
        self.device = resolve_device(cfg.execution.device)
        self.threads = intra_op_threads(cfg.framework.intra_op_threads, cfg.framework.num_workers)
        torch.set_num_threads(self.threads.intra_op)
        self.access = access_for(cfg, self.index, self.storage, *distributed_rank())
        trainer_cls = TRAINERS.get(cfg.training.trainer, "pytorch")
        model = build_model(cfg, "pytorch", len(self.index.classes)) if trainer_cls.needs_model else None
        self.trainer = trainer_cls(model=model, device=self.device, config=cfg.training)
        self.trainer.setup()
        self.loader = self._loader()

    def _worker_args(self, persistent: bool) -> dict[str, Any]:
        """The DataLoader's worker settings (none without workers)."""
        fw = self.config.framework
        if fw.num_workers == 0:
            return {}
        args = {"prefetch_factor": fw.prefetch_factor, "multiprocessing_context": fw.multiprocessing_context,
                "worker_init_fn": _WorkerInit(self.config.execution.seed, self.storage, self.ring_slots)}
        return {**args, "persistent_workers": fw.persistent_workers} if persistent else args

    def _loader(self) -> DataLoader:
        fw = self.config.framework
        # torch warns when workers > CPUs; that is a legitimate benchmark setting (I/O-bound workers)
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        pin = (self.device.type == "cuda") if fw.pin_memory == "auto" else bool(fw.pin_memory)
        return DataLoader(self.access.dataset, num_workers=fw.num_workers, collate_fn=collate, pin_memory=pin,
                          **self.access.loader_args(), **self._worker_args(persistent=True))

    @property
    def dataset(self) -> Any:
        return self.access.dataset

    def samples_per_epoch(self) -> int | None:
        """Samples in a full epoch (None when unknown: shards packed without index.json)."""
        return self.access.samples_per_epoch()

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """The bytes this rank must read in ``epoch`` for the byte self-check; None when epochs
        are partial by configuration (max_steps, drop_last, max_samples cap)."""
        return self.access.expected_epoch_bytes(epoch)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Batches of one epoch; the epoch loop times every ``next``."""
        self.access.set_epoch(epoch)
        mark_epoch(self.storage, epoch)
        if not self.config.framework.persistent_workers:
            ring.release()  # the last epoch's workers (and their batch buffers) are gone
        return start_workers(self.loader)

    def epoch_scope(self) -> AbstractContextManager | None:
        """DDP's Join around an epoch's steps (see the trainer's ``uneven_inputs``)."""
        return self.trainer.uneven_inputs()

    def end_epoch(self, it: Any) -> None:
        """An epoch's iterator ended (or was abandoned): stop its workers, wait for their rows.
        Persistent workers live until :meth:`close`."""
        if not self.config.framework.persistent_workers:
            stop_workers(it)

    def step(self, batch: Batch) -> float | None:
        return self.trainer.step(batch)

    # -- inference and checkpoint phases ------------------------------------
    def _model(self) -> torch.nn.Module:
        """The trained model, or (read/emulate trainers) a freshly built one."""
        if self.trainer.model is None:
            model = build_model(self.config, "pytorch", len(self.index.classes), PHASE_MODEL)
            self.trainer.model = model.to(self.device)
        return self.trainer.model

    def infer(self, index: SampleIndex) -> InferResult:
        """Evaluate on the held-out ``index`` read through the same storage; accuracy and throughput."""
        cfg, fw = self.config, self.config.framework
        model = self._model()
        dataset = ImageFolderDataset(index=index, storage=self.storage, config=cfg.dataset)
        rank, world = distributed_rank()
        sampler = EpochBatchSampler(len(dataset), cfg.inference.batch_size or fw.batch_size, False,
                                    cfg.execution.seed, rank=rank, world=world)
        sampler.set_epoch(INFER_EPOCH)  # the requests of the inference phase
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=fw.num_workers, collate_fn=collate,
                            pin_memory=self.loader.pin_memory if self.loader else False,
                            **self._worker_args(persistent=False))
        model.eval()
        tally = InferTally()
        it = start_workers(loader)
        try:
            with torch.no_grad():
                for batch in tally.batches(it):
                    x, y = self.trainer.to_device(batch)
                    tally.correct += int((model(x).argmax(1) == y).sum())
        finally:
            stop_workers(it)
        self.trainer.synchronize()
        result = tally.result()
        del loader
        ring.release()
        model.train()
        return result

    def checkpoint(self, key: str) -> CheckpointResult:
        """Save model + optimizer state (padded to checkpoint.size_MiB) to the storage, load it back,
        verify it is equal (see :func:`dnnbench.frameworks.phases.round_trip`)."""
        ck = self.config.checkpoint
        state: dict[str, Any] = {"model": _unwrap(self._model()).state_dict()}
        optimizer = self.trainer.optimizer  # None: read/emulate trainers have none
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        if ck.size_MiB > 0:
            state["padding"] = torch.randint(0, 255, (int(ck.size_MiB * 2**20),), dtype=torch.uint8,
                                             generator=torch.Generator().manual_seed(0))
        return round_trip(self.storage, key, state, TORCH_STATE, ck.keep)

    def describe(self) -> dict[str, Any]:
        info = {"torch": torch.__version__, "device": str(self.device),
                "cuda_available": torch.cuda.is_available(),
                "pin_memory": bool(self.loader.pin_memory) if self.loader else None,
                "intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads()}
        if self.threads is not None:
            info["intra_op_threads_source"] = self.threads.source
        if self.device.type == "cuda":
            info["cuda_device"] = torch.cuda.get_device_name(self.device)
        return info

    def close(self) -> None:
        loader = self.loader
        self.loader = None
        if loader is not None and getattr(loader, "_iterator", None) is not None:
            stop_workers(loader._iterator)  # persistent workers: stop them now
        ring.release()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel wraps the model


def _equal(a: Any, b: Any) -> bool:
    """Deep equality of (nested) state dicts holding tensors."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _save(state: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _load(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


#: a PyTorch checkpoint: torch.save / torch.load of the state dicts
TORCH_STATE = Serialiser(_save, _load, _equal)
