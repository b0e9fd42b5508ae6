"""Every registered PyTorch model fits any image size, channel count and class count."""

from __future__ import annotations

import pytest
import torch

from dnnbench.errors import ConfigError
from dnnbench.frameworks.pytorch.runner import resolve_device
from dnnbench.frameworks.pytorch.trainers import EmulateTrainer, ReadTrainer, TrainTrainer
from dnnbench.registry import MODELS

MODEL_NAMES = [e.name for e in MODELS.entries() if e.framework == "pytorch" and e.origin == "builtin"]


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("channels,classes,size", [(3, 10, (32, 32)), (1, 5, (28, 28)), (3, 2, (64, 48)),
                                                   (3, 7, (8, 8))])
def test_forward_shapes(name, channels, classes, size):
    model = MODELS.get(name, "pytorch")(in_channels=channels, num_classes=classes, image_size=size)
    out = model(torch.rand(2, channels, *size))
    assert out.shape == (2, classes)


class _Batch:
    def __init__(self, n=4):
        import numpy as np

        self.data = torch.randint(0, 255, (n, 8, 8, 3), dtype=torch.uint8)
        self.labels = np.arange(n) % 2
        self.samples = n
        self.nbytes = 100
        self.failures = []


def _cfg(**kw):
    from dnnbench.config.schema import TrainingConfig

    return TrainingConfig(**kw)


def test_train_trainer_learns_a_step():
    model = MODELS.get("convnet", "pytorch")(in_channels=3, num_classes=2, image_size=(8, 8), width=4, hidden=8)
    t = TrainTrainer(model=model, device=torch.device("cpu"), config=_cfg(optimizer="adam", lr=0.01))
    t.setup()
    before = [p.detach().clone() for p in model.parameters()]
    loss = t.step(_Batch())
    assert loss is not None and loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_read_and_emulate_trainers():
    import time

    assert ReadTrainer(None, torch.device("cpu"), _cfg()).step(_Batch()) is None
    t = EmulateTrainer(None, torch.device("cpu"), _cfg(compute_time_s=0.02))
    t0 = time.perf_counter()
    t.step(_Batch())
    assert time.perf_counter() - t0 >= 0.02


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")


def test_cuda_path_runs_on_cpu_tensors():
    """pin_memory and non_blocking copies are exercised; on a CPU machine pinning is skipped."""
    t = TrainTrainer(model=MODELS.get("convnet", "pytorch")(in_channels=3, num_classes=2, image_size=(8, 8)),
                     device=torch.device("cpu"), config=_cfg())
    x, y = t.to_device(_Batch())
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 8) and float(x.max()) <= 1.0
    assert y.dtype == torch.int64
