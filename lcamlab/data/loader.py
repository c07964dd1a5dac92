r"""A device-resident CIFAR loader: the whole split on the training device, augmented there.

The WRN experiments of the LCAM paper (000 section 4) train with the classic
augmentation: a random 32x32 crop of the image zero-padded by 4 pixels, and a
random horizontal flip; batch 128, reshuffled every epoch.

:class:`DeviceLoader` keeps a whole split on the training device as uint8 and
produces normalised, augmented batches there, vectorised over the batch, with
no CPU workers and no host synchronisation per batch. Its randomness
(permutation, crop offsets, flips) is a pure function of ``(seed, epoch)``
(:func:`epoch_seed`), so an interrupted run resumes exactly from the epoch
number alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "epoch_seed",
    "sample_crop_flip",
    "crop_flip",
    "normalize",
    "EpochPlan",
    "DeviceLoader",
]


def epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit generator seed that is a pure function of ``(seed, epoch)``.

    Mixed with numpy's ``SeedSequence`` so neighbouring ``(seed, epoch)`` pairs
    give unrelated streams (``seed + epoch`` would make seed 0 epoch 1 equal
    seed 1 epoch 0).
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Invalid seed: {seed} (must be an int >= 0)")
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"Invalid epoch: {epoch} (must be an int >= 0, 0-based)")
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0])


def sample_crop_flip(n: int, generator: torch.Generator, pad: int = 4) -> tuple[Tensor, Tensor]:
    r"""Draw crop offsets and flips for ``n`` images.

    .. math::

        (o_y, o_x) \sim \mathcal U\{0, \dots, 2p\}^2, \qquad f \sim \mathrm{Bernoulli}(1/2)

    Returns:
        ``offsets`` ``(n, 2)`` int64 (row, column) and ``flips`` ``(n,)`` bool, on the generator's device.
    """
    device = generator.device
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=device)
    flips = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    return offsets, flips


def crop_flip(images: Tensor, offsets: Tensor, flips: Tensor, pad: int = 4, *, channels_last: bool = False) -> Tensor:
    r"""Crop each zero-padded image at its offset and mirror the flipped ones, in one gather.

    With :math:`\tilde x` the image zero-padded by :math:`p` on every side and
    :math:`H \times W` the image size,

    .. math::

        y_{b,c,i,j} = \tilde x_{b,\,c,\; o_{y,b} + i,\; o_{x,b} + (W-1-j \text{ if } f_b \text{ else } j)},

    i.e. torchvision's ``RandomCrop(H, padding=p)`` followed by
    ``RandomHorizontalFlip`` (000 section 4's augmentation), vectorised over
    the batch: no Python loop over images, no host synchronisation.

    Args:
        images: ``(B, C, H, W)`` (any dtype; uint8 in the loader).
        offsets: ``(B, 2)`` integer (row, column) offsets in ``0..2p``.
        flips: ``(B,)`` bool.
        pad: zero padding ``p``.
        channels_last: return a channels_last tensor (gathered in NHWC order directly, no extra copy).

    Returns:
        ``(B, C, H, W)`` of the input dtype.
    """
    b, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad)) if pad > 0 else images
    rows = offsets[:, 0:1] + torch.arange(h, device=device)  # (B, H)
    j = torch.arange(w, device=device)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], (w - 1) - j, j)  # (B, W)
    batch_index = torch.arange(b, device=device)
    channel_index = torch.arange(c, device=device)
    if channels_last:
        out = padded[batch_index[:, None, None, None], channel_index[None, None, None, :],
                     rows[:, :, None, None], cols[:, None, :, None]]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2)
    return padded[batch_index[:, None, None, None], channel_index[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    r"""uint8 images to normalised float32: :math:`(x / 255 - \mu_c) / \sigma_c`, as ``ToTensor`` + ``Normalize``."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


# --------------------------------------------------------------------------------------
# The device-resident loader
# --------------------------------------------------------------------------------------


class EpochPlan(NamedTuple):
    """Everything random about one epoch: sample order, crop offsets and flips (per batch position)."""

    order: Tensor  # (N,) int64: the permutation (arange when not training)
    offsets: Tensor | None  # (N, 2) int64, None when not training
    flips: Tensor | None  # (N,) bool, None when not training


class DeviceLoader:
    r"""Batches of a whole split kept on the device as uint8, augmented and normalised there.

    Per training epoch ``e`` one generator seeded with :func:`epoch_seed`
    ``(seed, e)`` on the loader's device draws, in this order, the permutation
    of the N samples, their crop offsets :math:`\mathcal U\{0..2p\}^2` and their
    flips (p = 1/2) (:meth:`plan`). Batch ``k`` then takes positions
    ``k*B .. k*B+B-1`` of the permutation and applies :func:`crop_flip` and
    :math:`(x/255-\mu)/\sigma` in a handful of batched kernels. The epoch's
    batches are therefore a pure function of ``(seed, e)`` (on a given device
    type: CPU and CUDA generators differ), which is all an exact resume needs.
    Nothing reads a tensor back to the host, so the GPU is never stalled.
    ``train=False`` gives the split in its stored order, unaugmented.

    Matches 000 section 4: zero-padding 4, random 32x32 crop, random
    horizontal flip, reshuffled every epoch.

    Args:
        images_uint8: ``(N, C, H, W)`` uint8 (CPU or device).
        labels: ``(N,)`` integer labels.
        batch_size: images per batch.
        train: shuffle and augment (otherwise fixed order, no augmentation).
        seed: the run's seed (>= 0).
        mean, std: per-channel normalisation on the [0, 1] scale (see :data:`lcamlab.data.cifar.NORMALIZATIONS`).
        device: where the data lives and the batches are made.
        drop_last: drop the last incomplete batch.
        pad: zero padding of the crop (4 in the paper).
        channels_last: yield channels_last batches (the engine's memory format).
    """

    def __init__(
        self,
        images_uint8: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        train: bool,
        seed: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device,
        drop_last: bool = False,
        pad: int = 4,
        channels_last: bool = True,
    ) -> None:
        if not isinstance(images_uint8, Tensor) or images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
            raise ValueError(
                f"Invalid images: expected a uint8 tensor (N, C, H, W), got "
                f"{getattr(images_uint8, 'dtype', type(images_uint8))} {tuple(getattr(images_uint8, 'shape', ()))}"
            )
        n, c = images_uint8.shape[:2]
        if not isinstance(labels, Tensor) or labels.shape != (n,):
            raise ValueError(f"Invalid labels: expected a tensor of shape ({n},), got {tuple(getattr(labels, 'shape', ()))}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size} (must be an int >= 1)")
        if not isinstance(pad, int) or pad < 0:
            raise ValueError(f"Invalid pad: {pad} (must be an int >= 0)")
        epoch_seed(seed, 0)  # validates the seed
        if len(mean) != c or len(std) != c or any(s <= 0 for s in std):
            raise ValueError(f"Invalid normalisation mean={tuple(mean)} std={tuple(std)} "
                             f"(need {c} values each, std > 0)")
        if n == 0:
            raise ValueError("Invalid images: the split is empty")
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            # Pin the index so the epoch generator and the tensors name the same device.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.images = images_uint8.to(self.device).contiguous()
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.train = bool(train)
        self.seed = int(seed)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.drop_last = bool(drop_last)
        self.pad = pad
        self.channels_last = bool(channels_last)
        # (x/255 - mean)/std == x*scale + shift: one fused multiply-add per batch.
        std_t = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t

    @property
    def num_samples(self) -> int:
        """Images in the split."""
        return self.images.shape[0]

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def plan(self, epoch: int) -> EpochPlan:
        """The permutation, offsets and flips of 0-based ``epoch`` (a pure function of ``(seed, epoch)``)."""
        if not self.train:
            return EpochPlan(torch.arange(self.num_samples, device=self.device), None, None)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.num_samples, generator=generator, device=self.device)
        offsets, flips = sample_crop_flip(self.num_samples, generator, self.pad)
        return EpochPlan(order, offsets, flips)

    def _normalise(self, images: Tensor) -> Tensor:
        # Elementwise ops keep the input's memory format, so a channels_last gather stays channels_last.
        return torch.addcmul(self._shift, images.float(), self._scale)

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(images float32 (B, C, H, W), labels int64 (B,))`` for 0-based ``epoch``, on the device."""
        plan = self.plan(epoch)
        for k in range(len(self)):
            lo = k * self.batch_size
            hi = min(lo + self.batch_size, self.num_samples)
            index = plan.order[lo:hi]
            batch = self.images.index_select(0, index)
            if self.train:
                batch = crop_flip(batch, plan.offsets[lo:hi], plan.flips[lo:hi], self.pad,
                                  channels_last=self.channels_last)
            elif self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield self._normalise(batch), self.labels.index_select(0, index)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Epoch 0 (for evaluation loaders, whose order never changes)."""
        return self.epoch(0)
