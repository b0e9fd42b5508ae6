"""Built-in PyTorch models. Every model is built as
``cls(in_channels=C, num_classes=K, image_size=(H, W), **model.options)`` and
takes float NCHW input."""

from __future__ import annotations

import torch
from torch import nn

from dnnbench.registry import MODELS


@MODELS.register("convnet", framework="pytorch", aliases=("ConvNet",))
class ConvNet(nn.Module):
    """Small CNN for any image size, channel and class count (global pooling head)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size=(32, 32),
                 width: int = 16, hidden: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d((4, 4)),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 16, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


@MODELS.register("resnet", framework="pytorch", aliases=("ResNet",))
class ResNet(nn.Module):
    """Small ResNet of basic blocks; ``layers=[2, 2, 2, 2], width=64`` is ResNet-18."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size=(32, 32),
                 layers: tuple[int, ...] = (1, 1, 1, 1), width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks = []
        cin = width
        for stage, n in enumerate(layers):
            cout = width * 2 ** stage
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (b == 0 and stage > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
