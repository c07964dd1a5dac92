"""The small non-quadratic toy problem shared by the optimizer tests (float64)."""

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


def toy_loss(params, step: int, *, stream: int, trials: int | None = None, trial: int | None = None) -> torch.Tensor:
    """The toy loss of ``params`` on step ``step``'s mini-batch.

    * ``trials=None``: one run, a scalar.
    * ``trials=T``: dim 0 of every parameter is the trial axis, one loss per trial, ``(T,)``.
    * ``trials=T, trial=t``: the single run of trial ``t`` (parameters without the
      trial axis) on trial ``t``'s slice of that same mini-batch, a scalar.
    """
    if trials is None or trial is not None:
        flat = torch.cat([p.reshape(-1) for p in params])
        x, y = toy_batch(step, 1 if trials is None else trials, flat.numel(), stream=stream)
        t = 0 if trial is None else trial
        return flat_loss(flat, x[t], y[t])
    flat = torch.cat([p.reshape(trials, -1) for p in params], dim=1)
    x, y = toy_batch(step, trials, flat.shape[1], stream=stream)
    return flat_loss(flat, x, y)
