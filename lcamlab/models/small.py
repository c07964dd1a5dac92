r"""A small CNN for 28x28 greyscale images (Fashion-MNIST), in the spirit of airbench.

The LCAM paper (000 section 4) trains WRN-28-10 on CIFAR: 36.5 M parameters, a
GPU-day per 150-epoch run. To run the paper's protocol (momentum groups over
many seeds, Figures 3-5 and Table 1) on one CPU core, lcamlab trains this
network on Fashion-MNIST instead. Like Keller Jordan's airbench CIFAR nets it
is a short stack of conv-BN-ReLU blocks with max-pooling and no residual
connections, which is what trains fastest per second on small images:

====================================  ==========================  ================
layer                                 output (C x H x W)          parameters
====================================  ==========================  ================
conv 3x3 stride 2 (1 -> w), BN, ReLU  w x 14 x 14
conv 3x3 (w -> 2w), BN, ReLU, maxpool  2w x 7 x 7
conv 3x3 (2w -> 4w), BN, ReLU, maxpool 4w x 3 x 3
global max pool, linear (4w -> 10)    10
====================================  ==========================  ================

With the default ``width`` w = 16 it has 24 058 parameters; measured on one
core of the development machine (channels_last, batch 128, fp32) it trains at
about 6 000 images/s and evaluates at about 11 000 images/s (README).
Initialisation as the WRN's: Kaiming-normal (fan_out, ReLU) convolutions
without bias, BatchNorm 1/0, linear bias 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from lcamlab.models.wrn import wrn_init

__all__ = ["FMNet"]


class FMNet(nn.Module):
    """The small airbench-style CNN for 1 x 28 x 28 inputs.

    Args:
        width: channels of the first block (the others have 2x and 4x).
        num_classes: outputs (10 for Fashion-MNIST).
        in_channels: input channels (1: greyscale).
    """

    def __init__(self, width: int = 16, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        for name, value in (("width", width), ("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid FMNet {name}: {value!r} (must be an int >= 1)")
        self.width, self.num_classes = width, num_classes
        a, b, c = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, a, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(a), nn.ReLU(),
            nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(b, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(c, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out, ReLU) convolutions, BatchNorm 1/0, linear bias 0 (the WRN initialisation)."""
        wrn_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
