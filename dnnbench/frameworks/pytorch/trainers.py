"""Trainers: what happens to each batch. The runner owns the loop and the clock;
a trainer only implements :meth:`step` (and may override :meth:`setup`).

Plugins subclass :class:`Trainer`; they are built as
``cls(model=..., device=..., config=training_config)``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from dnnbench.registry import TRAINERS


class Trainer:
    """Base trainer: holds the model, the device and the training config."""

    needs_model = True

    def __init__(self, model: nn.Module | None, device: torch.device, config: Any):
        self.model = model
        self.device = device
        self.config = config
        self.non_blocking = device.type == "cuda"

    def setup(self) -> None:
        """Called once before the first epoch."""

    def step(self, batch: Any) -> float | None:
        """Consume one batch; return the loss if there is one."""
        raise NotImplementedError

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
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            # multi-rank (torchrun): gradients are all-reduced across ranks, as in real data-parallel training
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=ids)
        params = self.model.parameters()
        if self.config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
        else:
            self.optimizer = torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum)
        self.criterion = nn.CrossEntropyLoss()

    def step(self, batch: Any) -> float | None:
        if batch.samples == 0:
            return None
        x, y = self.to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())  # .item() also waits for the device


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
