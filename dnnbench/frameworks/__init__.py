"""Framework adapters. Each framework lives in its own subpackage and is imported
only by runs that use it (torch under ``pytorch/``, tensorflow under ``tensorflow/``)."""

FRAMEWORK_RUNNERS = {
    "pytorch": "dnnbench.frameworks.pytorch.runner:PyTorchRunner",
}
