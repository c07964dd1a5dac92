r"""Wide residual network (Zagoruyko & Komodakis 2016) as trained in the LCAM paper.

000 section 4 and 001 section 4 train WRN-28-10 without dropout on CIFAR-10/100.
The architecture, as in the authors' published demo code (the widely used
PyTorch port of the WRN paper):

* a 3x3 convolution 3 -> 16;
* three groups of :math:`n = (d - 4) / 6` pre-activation basic blocks of widths
  :math:`16k, 32k, 64k` and strides 1, 2, 2; a block computes

  .. math::

      a = \mathrm{ReLU}(\mathrm{BN}_1(x)), \qquad
      y = \mathrm{conv}_2\big(\mathrm{drop}(\mathrm{ReLU}(\mathrm{BN}_2(\mathrm{conv}_1(a))))\big)
          + \begin{cases} x & \text{same shape} \\ \mathrm{conv}_{1\times1}(a) & \text{otherwise} \end{cases}

  (the shortcut convolution sees the block's *activated* input);
* BN-ReLU, 8x8 average pooling, a linear classifier.

Initialisation: convolutions Kaiming-normal with fan_out and ReLU gain
(:math:`\mathcal N(0, 2 / (k^2 C_\text{out}))`), BatchNorm weight 1 and bias 0,
linear bias 0 (linear weight: PyTorch's default). Convolutions have no bias.
WRN-28-10 for 10 classes has 36 479 194 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["wrn_init", "BasicBlock", "WideResNet", "count_parameters"]


def wrn_init(model: nn.Module) -> None:
    """The Wide-ResNet initialisation, in place, in module order: Kaiming-normal convolutions
    (fan_out, ReLU gain), BatchNorm weight 1 and bias 0 with fresh running statistics, linear
    layers torch's default with bias 0 (Zagoruyko and Komodakis (2016), *Wide Residual Networks*)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.reset_running_stats()
        elif isinstance(module, nn.Linear):
            module.reset_parameters()
            nn.init.zeros_(module.bias)


class BasicBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus shortcut.

    Args:
        in_planes: input channels.
        out_planes: output channels.
        stride: stride of the first convolution (and of the shortcut).
        dropout: dropout probability between the two convolutions (0 in the paper).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.dropout = float(dropout)
        self.shortcut = (
            nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
            if in_planes != out_planes or stride != 1
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        activated = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(activated)
        out = F.relu(self.bn2(self.conv1(activated)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + residual


class WideResNet(nn.Module):
    r"""WRN-``depth``-``widen`` for 32x32 images (000 section 4: WRN-28-10).

    Args:
        depth: total depth :math:`d = 6n + 4` (28 in the paper: n = 4 blocks per group).
        widen: width multiplier :math:`k` (10 in the paper: widths 160, 320, 640).
        num_classes: outputs (10 for CIFAR-10, 100 for CIFAR-100).
        dropout: dropout probability inside the blocks (0 in the paper).
    """

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        self.check_arguments(depth, widen, num_classes, dropout)
        self.depth, self.widen, self.num_classes, self.dropout = depth, widen, num_classes, float(dropout)
        blocks_per_group = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]

        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        groups = []
        for g, stride in enumerate((1, 2, 2)):
            blocks = [
                BasicBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1], stride if i == 0 else 1, dropout)
                for i in range(blocks_per_group)
            ]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.reset_parameters()

    @staticmethod
    def check_arguments(depth: int, widen: int, num_classes: int = 10, dropout: float = 0.0) -> None:
        """Raise ``ValueError`` naming the bad value unless the arguments define a WRN (cheap: builds nothing)."""
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"Invalid WRN depth: {depth} (must be 6n+4 with n >= 1 blocks per group: 10, 16, 22, 28, 34, 40, ...)"
            )
        if isinstance(widen, bool) or not isinstance(widen, int) or widen < 1:
            raise ValueError(f"Invalid WRN widen factor: {widen} (must be an int >= 1; the paper uses 10)")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"Invalid num_classes: {num_classes} (must be an int >= 1)")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"Invalid dropout: {dropout} (must be in [0, 1); the paper uses 0)")

    def reset_parameters(self) -> None:
        """The WRN initialisation: Kaiming-normal (fan_out, ReLU) convs, BN 1/0, linear bias 0."""
        wrn_init(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.block3(self.block2(self.block1(out)))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, 8)
        return self.fc(torch.flatten(out, 1))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (elements of every parameter tensor; BatchNorm running statistics are buffers)."""
    return sum(p.numel() for p in model.parameters())
