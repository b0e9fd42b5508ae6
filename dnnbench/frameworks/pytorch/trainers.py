"""Trainers: what happens to each batch. The runner owns the loop and the clock;
a trainer only implements :meth:`step` (and may override :meth:`setup`).

Plugins subclass :class:`Trainer`; they are built as
``cls(model=..., device=..., config=training_config)``.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from dnnbench.frameworks.common import TrainerBase
from dnnbench.registry import TRAINERS


class Trainer(TrainerBase):
    """Base trainer: holds the model, the device and the training config."""

    def __init__(self, model: nn.Module | None, device: torch.device, config: Any):
        super().__init__(model, device, config)
        self.non_blocking = device.type == "cuda"

    def synchronize(self) -> None:
        """Wait for queued device work, so compute time is measured, not just launched."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def to_device(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """NHWC uint8 batch -> NCHW float in [0, 1] on the device."""
        x = batch.data.to(self.device, non_blocking=self.non_blocking)
        y = torch.from_numpy(batch.labels).to(self.device, non_blocking=self.non_blocking)
        return x.permute(0, 3, 1, 2).float().div_(255.0), y


@TRAINERS.register("train", framework="pytorch", aliases=("RandomAccessDatasetTrain", "DNNTrain"))
class TrainTrainer(Trainer):
    """Real forward, backward and optimizer step (cross-entropy)."""

    def setup(self) -> None:
        # torch.optim's first step imports torch._dynamo (seconds of CPU on small
        # machines); pay that here, outside the measured steps.
        import torch._dynamo  # noqa: F401

        self.model.to(self.device).train()
        # what the steps run; self.model stays the plain module, for the inference and checkpoint
        # phases, whose per-rank reads (and batch counts) differ and hold no collective
        self.net: nn.Module = self.model
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            # multi-rank (torchrun): gradients are all-reduced across ranks, as in real data-parallel training
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self._shape: tuple[int, ...] | None = None  # one input's (C, H, W): the stand-in for an empty batch
        params = self.net.parameters()
        if self.config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
        else:
            self.optimizer = torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum)
        self.criterion = nn.CrossEntropyLoss()

    @property
    def _ddp(self) -> bool:
        return isinstance(self.net, torch.nn.parallel.DistributedDataParallel)

    def uneven_inputs(self) -> AbstractContextManager | None:
        """DDP: ranks split the data, so their step counts may differ by a step or more (uneven
        shards, an odd sample count). Under ``Join`` a rank that has run out of batches shadows
        the others' gradient all-reduces until every rank has, so no rank blocks and no sample
        is dropped."""
        if not self._ddp:
            return None
        from torch.distributed.algorithms import Join

        return Join([self.net])

    def step(self, batch: Any) -> float | None:
        if batch.samples == 0:
            return self._empty_step()
        x, y = self.to_device(batch)
        self._shape = tuple(x.shape[1:])
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.net(x), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())  # .item() also waits for the device

    def _empty_step(self) -> None:
        """A batch whose samples were all skipped (dataset.on_error: skip). Under DDP the rank
        still takes part in the step's collectives, with a zero-weighted stand-in input, so the
        other ranks' all-reduce does not wait for it."""
        if not self._ddp or self._shape is None:
            return None
        x = torch.zeros((1, *self._shape), device=self.device)
        y = torch.zeros(1, dtype=torch.long, device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        (self.criterion(self.net(x), y) * 0.0).backward()
        self.optimizer.step()
        return None


@TRAINERS.register("read", framework="pytorch")
class ReadTrainer(Trainer):
    """Drains batches with no compute: measures the loader and storage alone."""

    needs_model = False

    def step(self, batch: Any) -> None:
        return None


@TRAINERS.register("emulate", framework="pytorch")
class EmulateTrainer(Trainer):
    """Sleeps training.compute_time_s per step in place of an accelerator (MLPerf Storage style).

    The batch is still copied to the device, as a real step would.
    """

    needs_model = False

    def step(self, batch: Any) -> None:
        if self.device.type == "cuda" and batch.samples:
            batch.data.to(self.device, non_blocking=True)
            self.synchronize()
        time.sleep(self.config.compute_time_s)
        return None
