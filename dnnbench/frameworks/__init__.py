"""Framework adapters. Each framework lives in its own subpackage and is imported
only by runs that use it (torch under ``pytorch/``, tensorflow under ``tensorflow/``)."""

from __future__ import annotations

import os

FRAMEWORK_RUNNERS = {
    "pytorch": "dnnbench.frameworks.pytorch.runner:PyTorchRunner",
    "tensorflow": "dnnbench.frameworks.tensorflow.runner:TensorFlowRunner",
}

_verbose_logs = False


def set_verbose_logs(on: bool) -> None:
    """The CLI's ``--debug``: let frameworks print their own start-up logs."""
    global _verbose_logs
    _verbose_logs = bool(on)


def verbose_logs() -> bool:
    """True with ``--debug`` or ``DNNBENCH_DEBUG=1`` in the environment."""
    return _verbose_logs or os.environ.get("DNNBENCH_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
