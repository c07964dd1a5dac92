"""Network architectures of the papers' experiments (000 section 4: WRN-28-10 on CIFAR)."""

from lcamlab.models.wrn import BasicBlock, WideResNet, count_parameters

__all__ = ["BasicBlock", "WideResNet", "count_parameters"]
