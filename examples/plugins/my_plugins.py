"""An example of user plugins: a dataset and a model registered from outside the
package. Point a config at this file with ``plugins: [./my_plugins.py]``
(paths are relative to the config file) or at a module on ``sys.path``.

For a pip-installable package, expose the module in the ``dnnbench.plugins``
entry-point group instead:

    [project.entry-points."dnnbench.plugins"]
    my_plugins = "my_pkg.my_plugins"
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dnnbench.frameworks.pytorch.datasets import ImageFolderDataset
from dnnbench.registry import DATASETS, MODELS


@DATASETS.register("flipped_images", framework="pytorch")
class FlippedImages(ImageFolderDataset):
    """Decodes like image_folder, then flips every other image horizontally (a user transform)."""

    def transform(self, data: bytes) -> np.ndarray:
        img = super().transform(data)
        if self.config.options.get("flip", True) and img.ndim == 3 and img.sum() % 2:
            img = np.ascontiguousarray(img[:, ::-1])
        return img


@MODELS.register("tiny_mlp", framework="pytorch")
class TinyMLP(nn.Module):
    """A two-layer perceptron over the flattened image."""

    def __init__(self, in_channels: int, num_classes: int, image_size=(32, 32), hidden: int = 32):
        super().__init__()
        h, w = image_size
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * h * w, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
