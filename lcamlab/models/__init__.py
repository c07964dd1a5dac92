"""Network architectures of the papers' experiments (000 section 4: WRN-28-10 on CIFAR) and the
small CNN that runs the same protocol on Fashion-MNIST on a CPU."""

from lcamlab.models.small import FMNet
from lcamlab.models.wrn import BasicBlock, WideResNet, count_parameters

__all__ = ["BasicBlock", "WideResNet", "FMNet", "count_parameters"]
