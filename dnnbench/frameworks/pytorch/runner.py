"""Builds the PyTorch pieces of a run (device, dataset, DataLoader, model, trainer)
and hands the executor one iterator of batches per epoch."""

from __future__ import annotations

import io
import os
import random
import signal
import time
import warnings
from multiprocessing import util as mp_util
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from dnnbench import failures
from dnnbench.data.decode import channels
from dnnbench.data.index import SampleIndex
from dnnbench.data.split import split
from dnnbench.errors import ConfigError, PluginError
from dnnbench.frameworks.pytorch import ring
from dnnbench.frameworks.pytorch.datasets import (Batch, EpochBatchSampler, ImageFolderDataset, SequentialDataset,
                                                  ShardDataset, collate)
from dnnbench.frameworks.threads import Threads, intra_op_threads
from dnnbench.recording.requests import get_recorder
from dnnbench.registry import DATASETS, MODELS, TRAINERS
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


class _WorkerInit:
    """Picklable worker_init_fn: per-worker seeds, one intra-op thread, the batch ring's size,
    the recorder's worker id, and a SIGTERM that ends the worker cleanly."""

    def __init__(self, seed: int, storage: Storage, ring_slots: int):
        self.seed = seed
        self.storage = storage
        self.ring_slots = ring_slots

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGTERM, _stop_worker)
        torch.set_num_threads(1)
        ring.configure(self.ring_slots)
        np.random.seed((self.seed + worker_id) % 2**32)
        random.seed(self.seed + worker_id)
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.worker = worker_id


class PyTorchRunner:
    """One PyTorch run: ``setup()``, then ``epoch(e)`` per epoch, then ``close()``."""

    framework = "pytorch"

    def __init__(self, config: Any, index: SampleIndex, storage: Storage):
        self.config = config
        self.index = index
        self.storage = storage
        self.loader: DataLoader | None = None
        self.trainer = None
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
        access = cfg.dataset.access
        if access == "random":
            dataset_cls = DATASETS.get(cfg.dataset.name, "pytorch")
            self.dataset = dataset_cls(index=self.index, storage=self.storage, config=cfg.dataset)
        else:
            rank, world = distributed_rank()
            kwargs = {"shuffle_buffer": cfg.dataset.shuffle_buffer} if access == "shards" else {}
            cls = ShardDataset if access == "shards" else SequentialDataset
            self.dataset = cls(self.index, self.storage, cfg.dataset, seed=cfg.execution.seed, rank=rank,
                               world=world, **kwargs)
        trainer_cls = TRAINERS.get(cfg.training.trainer, "pytorch")
        model = None
        if getattr(trainer_cls, "needs_model", True):
            in_ch = channels(cfg.dataset.decode)
            if in_ch == 0:
                raise ConfigError(f"trainer {cfg.training.trainer!r} needs decoded images",
                                  reference="dataset.decode", hint="use rgb or gray")
            model_cls = MODELS.get(cfg.model.name, "pytorch")
            try:
                model = model_cls(in_channels=in_ch, num_classes=max(2, len(self.index.classes)),
                                  image_size=tuple(cfg.dataset.image_dimension), **cfg.model.options)
            except TypeError as e:
                raise PluginError(f"model {cfg.model.name!r} rejected its options: {e}",
                                  reference="model.options") from None
        self.trainer = trainer_cls(model=model, device=self.device, config=cfg.training)
        self.trainer.setup()
        self.loader = self._loader()

    def _loader(self) -> DataLoader:
        fw = self.config.framework
        # torch warns when workers > CPUs; that is a legitimate benchmark setting (I/O-bound workers)
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        workers = fw.num_workers
        pin = (self.device.type == "cuda") if fw.pin_memory == "auto" else bool(fw.pin_memory)
        limit = None
        if self.config.training.max_steps is not None:
            limit = self.config.training.max_steps * fw.batch_size
        kwargs: dict[str, Any] = {}
        if workers > 0:
            kwargs.update(prefetch_factor=fw.prefetch_factor, persistent_workers=fw.persistent_workers,
                          multiprocessing_context=fw.multiprocessing_context,
                          worker_init_fn=_WorkerInit(self.config.execution.seed, self.storage, self.ring_slots))
        if self.config.dataset.access != "random":
            self.sampler = None
            return DataLoader(self.dataset, batch_size=fw.batch_size, num_workers=workers, collate_fn=collate,
                              pin_memory=pin, drop_last=fw.drop_last, **kwargs)
        rank, world = distributed_rank()
        self.sampler = EpochBatchSampler(len(self.dataset), fw.batch_size, fw.shuffle, self.config.execution.seed,
                                         limit, fw.drop_last, rank, world)
        return DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=workers, collate_fn=collate,
                          pin_memory=pin, **kwargs)

    def samples_per_epoch(self) -> int | None:
        """Samples in a full epoch (None when unknown: shards packed without index.json)."""
        if self.sampler is not None:
            return self.sampler.num_samples()
        if self.config.dataset.access == "shards":
            counts = getattr(self.index, "shard_samples", None) or [None]
            return None if None in counts else int(sum(counts))
        return len(self.index)

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """The bytes this rank must read in ``epoch`` for the byte self-check; None when epochs
        are partial by configuration (max_steps, drop_last, max_samples cap)."""
        fw, tr = self.config.framework, self.config.training
        if fw.drop_last:
            return None
        if tr.max_steps is not None:
            n = self.samples_per_epoch()
            if n is None or tr.max_steps * fw.batch_size < n:
                return None
        sizes = self.index.sizes
        rank, world = distributed_rank()
        if self.sampler is not None:
            if self.sampler.limit is not None and self.sampler.limit < len(split(len(self.index), rank, world)):
                return None
            return int(sizes[self.sampler.epoch_indices(epoch)].sum())
        if self.config.dataset.access == "shards":
            order = np.random.default_rng([self.config.execution.seed, epoch]).permutation(len(self.index))
            return int(sizes[order[split(len(order), rank, world)]].sum())
        return int(sizes[split(len(self.index), rank, world)].sum())

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Batches of one epoch; the executor times every ``next``."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        else:
            self.dataset.set_epoch(epoch)
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.epoch = epoch
        if not self.config.framework.persistent_workers:
            ring.release()  # the last epoch's workers (and their batch buffers) are gone
        return iter(self.loader)

    def stop_epoch(self, it: Any) -> None:
        """An epoch's iterator ended (or was abandoned): stop its workers, wait for their rows."""
        stop_workers(it)

    def step(self, batch: Batch) -> float | None:
        return self.trainer.step(batch)

    def synchronize(self) -> None:
        self.trainer.synchronize()

    # -- inference and checkpoint phases ------------------------------------
    def _model(self) -> torch.nn.Module:
        """The trained model, or (read/emulate trainers) a freshly built one."""
        model = getattr(self.trainer, "model", None)
        if model is None:
            cfg = self.config
            in_ch = channels(cfg.dataset.decode)
            if in_ch == 0:
                raise ConfigError("the inference and checkpoint phases need a model on decoded images",
                                  reference="dataset.decode", hint="use rgb or gray")
            model = MODELS.get(cfg.model.name, "pytorch")(
                in_channels=in_ch, num_classes=max(2, len(self.index.classes)),
                image_size=tuple(cfg.dataset.image_dimension), **cfg.model.options).to(self.device)
            self.trainer.model = model
        return model

    def infer(self, index: SampleIndex) -> dict[str, Any]:
        """Evaluate on the held-out ``index`` read through the same storage; accuracy and throughput."""
        cfg, fw = self.config, self.config.framework
        model = self._model()
        dataset = ImageFolderDataset(index=index, storage=self.storage, config=cfg.dataset)
        rank, world = distributed_rank()
        sampler = EpochBatchSampler(len(dataset), cfg.inference.batch_size or fw.batch_size, False,
                                    cfg.execution.seed, rank=rank, world=world)
        sampler.set_epoch(-1)  # requests of the inference phase are recorded with epoch -1
        kwargs: dict[str, Any] = {}
        if fw.num_workers > 0:
            kwargs.update(prefetch_factor=fw.prefetch_factor, multiprocessing_context=fw.multiprocessing_context,
                          worker_init_fn=_WorkerInit(cfg.execution.seed, self.storage, self.ring_slots))
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=fw.num_workers, collate_fn=collate,
                            pin_memory=self.loader.pin_memory if self.loader else False, **kwargs)
        model.eval()
        samples = nbytes = correct = failed = 0
        t0 = time.perf_counter()
        it = iter(loader)
        try:
            with torch.no_grad():
                for batch in it:
                    failures.raise_if_fatal(batch.failures)
                    failed += len(batch.failures)
                    if not batch.samples:
                        continue
                    x, y = self.trainer.to_device(batch)
                    correct += int((model(x).argmax(1) == y).sum())
                    samples += batch.samples
                    nbytes += batch.nbytes
        finally:
            stop_workers(it)
        self.trainer.synchronize()
        seconds = time.perf_counter() - t0
        del loader
        ring.release()
        model.train()
        return {"infer_samples": samples, "infer_bytes": nbytes, "infer_wall_s": seconds,
                "infer_samples_per_s": samples / seconds if seconds > 0 else None,
                "infer_MiB_per_s": nbytes / 2**20 / seconds if seconds > 0 else None,
                "accuracy_percent": 100.0 * correct / samples if samples else None, "infer_failed": failed}

    def checkpoint(self, key: str) -> dict[str, Any]:
        """Save model + optimizer state (padded to checkpoint.size_MiB) to the storage, load it back,
        verify it is equal. Save = serialise + PUT; load = GET + deserialise; MB/s over PUT / GET only."""
        ck = self.config.checkpoint
        model = self._model()
        state: dict[str, Any] = {"model": _unwrap(model).state_dict()}
        optimizer = getattr(self.trainer, "optimizer", None)
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        if ck.size_MiB > 0:
            state["padding"] = torch.randint(0, 255, (int(ck.size_MiB * 2**20),), dtype=torch.uint8,
                                             generator=torch.Generator().manual_seed(0))
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.epoch = -2  # requests of the checkpoint phase
        t0 = time.perf_counter()
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        t_put = time.perf_counter()
        self.storage.put(key, data)
        t_saved = time.perf_counter()
        got, _ = self.storage.get(key)
        t_got = time.perf_counter()
        loaded = torch.load(io.BytesIO(got), map_location="cpu", weights_only=True)
        t_loaded = time.perf_counter()
        verified = got == data and _equal(state, loaded)
        if not ck.keep:
            self.storage.delete(key)
        return {"checkpoint_bytes": len(data), "checkpoint_save_s": t_saved - t0,
                "checkpoint_load_s": t_loaded - t_saved,
                "checkpoint_save_MB_per_s": len(data) / 1e6 / (t_saved - t_put) if t_saved > t_put else None,
                "checkpoint_load_MB_per_s": len(data) / 1e6 / (t_got - t_saved) if t_got > t_saved else None,
                "checkpoint_verified": "ok" if verified else "mismatch"}

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

