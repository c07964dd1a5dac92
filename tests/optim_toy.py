"""The small non-quadratic toy problem shared by the Adai and AdaRem tests (float64)."""

from __future__ import annotations

import torch

DT = torch.float64
SHAPES = [(4, 3), (5,), (2, 2, 2)]


def exact(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=0)


def make_params(seed: int, shapes=SHAPES) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=DT)) for s in shapes]


def toy_batch(step: int, trials: int, dim: int, *, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``step``'s mini-batch for every trial: ``x`` (trials, 6, dim), ``y`` (trials, 6).

    ``stream`` offsets the seed so each test module draws its own data.
    """
    gen = torch.Generator().manual_seed(stream + step)
    return (torch.randn(trials, 6, dim, generator=gen, dtype=DT),
            torch.randn(trials, 6, generator=gen, dtype=DT))


def flat_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A noisy, non-quadratic loss of a flat weight vector ``(..., dim)``; one value per leading index."""
    pred = torch.einsum("...nd,...d->...n", x, flat)
    return torch.log1p((pred - y) ** 2).mean(-1) + 0.05 * (flat ** 4).sum(-1)
