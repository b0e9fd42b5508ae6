"""Builds the PyTorch pieces of a run (device, dataset, DataLoader, model, trainer)
and hands the executor one iterator of batches per epoch."""

from __future__ import annotations

import os
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from dnnbench.data.decode import channels
from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, PluginError
from dnnbench.frameworks.pytorch.datasets import Batch, EpochBatchSampler, collate
from dnnbench.metrics.requests import get_recorder
from dnnbench.registry import DATASETS, MODELS, TRAINERS
from dnnbench.storage.base import Storage


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


class _WorkerInit:
    """Picklable worker_init_fn: per-worker seeds, one intra-op thread, recorder's worker id."""

    def __init__(self, seed: int, storage: Storage):
        self.seed = seed
        self.storage = storage

    def __call__(self, worker_id: int) -> None:
        torch.set_num_threads(1)
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

    def setup(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.execution.seed)
        self.device = resolve_device(cfg.execution.device)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1)))
        dataset_cls = DATASETS.get(cfg.dataset.name, "pytorch")
        self.dataset = dataset_cls(index=self.index, storage=self.storage, config=cfg.dataset)
        if hasattr(self.dataset, "ring_slots"):
            self.dataset.ring_slots = (cfg.framework.prefetch_factor or 2) + 2
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
        workers = fw.num_workers
        pin = (self.device.type == "cuda") if fw.pin_memory == "auto" else bool(fw.pin_memory)
        limit = None
        if self.config.training.max_steps is not None:
            limit = self.config.training.max_steps * fw.batch_size
        self.sampler = EpochBatchSampler(len(self.dataset), fw.batch_size, fw.shuffle, self.config.execution.seed,
                                         limit, fw.drop_last)
        kwargs: dict[str, Any] = {}
        if workers > 0:
            kwargs.update(prefetch_factor=fw.prefetch_factor, persistent_workers=fw.persistent_workers,
                          multiprocessing_context=fw.multiprocessing_context,
                          worker_init_fn=_WorkerInit(self.config.execution.seed, self.storage))
        return DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=workers, collate_fn=collate,
                          pin_memory=pin, **kwargs)

    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def samples_per_epoch(self) -> int:
        return self.sampler.num_samples()

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Batches of one epoch; the executor times every ``next``."""
        self.sampler.set_epoch(epoch)
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.epoch = epoch
        return iter(self.loader)

    def step(self, batch: Batch) -> float | None:
        return self.trainer.step(batch)

    def synchronize(self) -> None:
        self.trainer.synchronize()

    def describe(self) -> dict[str, Any]:
        info = {"torch": torch.__version__, "device": str(self.device),
                "cuda_available": torch.cuda.is_available(),
                "pin_memory": bool(self.loader.pin_memory) if self.loader else None}
        if self.device.type == "cuda":
            info["cuda_device"] = torch.cuda.get_device_name(self.device)
        return info

    def close(self) -> None:
        loader = self.loader
        self.loader = None
        if loader is not None and getattr(loader, "_iterator", None) is not None:
            loader._iterator._shutdown_workers()  # persistent workers: stop them now
