"""Framework adapters. Each framework lives in its own subpackage and is imported
only by runs that use it (torch under ``pytorch/``, tensorflow under ``tensorflow/``).
What they share, and the interfaces they implement, are framework-neutral modules here
(:mod:`.protocols`, :mod:`.common`, :mod:`.phases`, :mod:`.threads`)."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnnbench.data.index import SampleIndex
    from dnnbench.frameworks.protocols import Runner
    from dnnbench.storage.base import Storage

FRAMEWORK_RUNNERS = {
    "pytorch": "dnnbench.frameworks.pytorch.runner:PyTorchRunner",
    "tensorflow": "dnnbench.frameworks.tensorflow.runner:TensorFlowRunner",
}

_verbose_logs = False


def create_runner(config: Any, index: SampleIndex, storage: Storage) -> Runner:
    """The runner of ``framework.name`` (its framework imported now), set up for ``index``."""
    module, _, cls = FRAMEWORK_RUNNERS[config.framework.name].partition(":")
    runner = getattr(importlib.import_module(module), cls)(config, index, storage)
    runner.setup()
    return runner


def set_verbose_logs(on: bool) -> None:
    """The CLI's ``--debug``: let frameworks print their own start-up logs."""
    global _verbose_logs
    _verbose_logs = bool(on)


def verbose_logs() -> bool:
    """True with ``--debug`` or ``DNNBENCH_DEBUG=1`` in the environment."""
    return _verbose_logs or os.environ.get("DNNBENCH_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
