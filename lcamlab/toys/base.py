r"""The interface every toy system in :mod:`lcamlab.toys` follows.

A toy system is a differentiable loss with a *leading trial axis*: the
parameters of ``T`` independent trials form one tensor of shape ``(T, dim)``,
the mini-batch loss is a ``(T,)`` tensor (one loss per trial), and one call
advances every trial at once, so a whole experiment is a handful of tensor
operations per step and never a Python loop over trials.

Every toy provides

* :meth:`ToySystem.sample_batch` draws one mini-batch per trial from a seeded
  :class:`torch.Generator` (the noise of stochastic gradient descent);
* :meth:`ToySystem.loss_and_grad` returns the mini-batch loss and its analytic
  gradient (cheap: no autograd graph), and :meth:`ToySystem.minibatch_loss`
  the same loss written in differentiable torch operations (for autograd and
  for the finite-difference tests);
* :meth:`ToySystem.population_loss`, the exact expected loss over the data
  distribution (no sampling noise), and :meth:`ToySystem.optimum`, a known
  minimiser of it, so progress is measured against the truth;
* :meth:`ToySystem.subset` restricts the toy to some trials (the per-trial loop
  of the benchmark and of the batched-equals-looped test).

Knobs of a toy (curvatures, noise, sparsity ...) are floats or ``(T,)``
tensors, so a whole grid of configurations can run as one batch of trials
(:meth:`ToySystem.trials` cells x repeats).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["ToySystem", "grid_cells", "per_trial", "check_positive", "check_nonnegative", "check_probability"]


def check_positive(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is a finite number > 0."""
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if tensor.numel() == 0 or not bool(torch.isfinite(tensor).all()) or not bool((tensor > 0).all()):
        raise ValueError(f"Invalid {name}: {value!r} (must be finite and > 0)")


def check_nonnegative(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is a finite number >= 0."""
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if tensor.numel() == 0 or not bool(torch.isfinite(tensor).all()) or not bool((tensor >= 0).all()):
        raise ValueError(f"Invalid {name}: {value!r} (must be finite and >= 0)")


def check_probability(name: str, value: Any, *, closed_right: bool = False) -> None:
    """Raise ``ValueError`` unless every entry lies in [0, 1) (or [0, 1] with ``closed_right``)."""
    tensor = torch.as_tensor(value, dtype=torch.float64)
    upper_ok = (tensor <= 1) if closed_right else (tensor < 1)
    if tensor.numel() == 0 or not bool(torch.isfinite(tensor).all()) or not bool(((tensor >= 0) & upper_ok).all()):
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"Invalid {name}: {value!r} (must lie in {interval})")


def per_trial(name: str, value: Any, trials: int, dtype: torch.dtype) -> Tensor:
    """A knob as a ``(trials,)`` tensor: a float is repeated, a sequence must have ``trials`` entries."""
    tensor = torch.as_tensor(value, dtype=dtype)
    if tensor.dim() == 0:
        return tensor.expand(trials).clone()
    if tensor.shape != (trials,):
        raise ValueError(
            f"Invalid {name}: shape {tuple(tensor.shape)} (expected a number or one value per trial, "
            f"shape ({trials},))"
        )
    return tensor.clone()


class ToySystem(abc.ABC):
    """Base class of the toy systems: a batch of ``trials`` independent copies of one loss.

    Subclasses set :attr:`trials`, :attr:`dim`, :attr:`dtype` and
    :attr:`coordinate_names` and implement the abstract methods.
    """

    trials: int
    dim: int
    dtype: torch.dtype
    coordinate_names: tuple[str, ...]

    # -- data -------------------------------------------------------------------------------

    @abc.abstractmethod
    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, ...]:
        """One mini-batch for every trial: a tuple of tensors holding the trial axis (dim 0 by default)."""

    def slice_batch(self, batch: tuple[Tensor, ...], index: slice) -> tuple[Tensor, ...]:
        """The mini-batches of the trials ``index`` (override when the trial axis is not dim 0)."""
        return tuple(part[index] for part in batch)

    # -- the trial runner's protocol (:class:`lcamlab.experiments.trials.TrialProblem`) --------

    def draw(self, generator: torch.Generator, steps: int) -> list[tuple[Tensor, ...]]:
        """The mini-batches of ``steps`` consecutive steps: one :meth:`sample_batch` per step."""
        return [self.sample_batch(generator) for _ in range(steps)]

    def step_batch(self, block: list[tuple[Tensor, ...]], step: int) -> tuple[Tensor, ...]:
        return block[step]

    def slice_block(self, block: list[tuple[Tensor, ...]], index: slice) -> list[tuple[Tensor, ...]]:
        return [self.slice_batch(batch, index) for batch in block]

    # -- loss ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def loss_and_grad(self, theta: Tensor, batch: tuple[Tensor, ...], *, need_loss: bool = True) -> tuple[Tensor, Tensor]:
        """Mini-batch loss ``(T,)`` and its analytic gradient ``(T, dim)`` at ``theta`` ``(T, dim)``.

        The toys always compute the loss (it comes with the gradient); ``need_loss`` is the
        runner's protocol argument.
        """

    @abc.abstractmethod
    def minibatch_loss(self, theta: Tensor, batch: tuple[Tensor, ...]) -> Tensor:
        """The same mini-batch loss ``(T,)`` in differentiable torch operations."""

    @abc.abstractmethod
    def population_loss(self, theta: Tensor) -> Tensor:
        """The exact expected loss ``(T,)`` over the data distribution."""

    @abc.abstractmethod
    def optimum(self) -> Tensor:
        """A minimiser of :meth:`population_loss`, ``(T, dim)``."""

    @abc.abstractmethod
    def optimal_loss(self) -> Tensor:
        """The minimum of :meth:`population_loss`, ``(T,)``."""

    @abc.abstractmethod
    def initial_point(self) -> Tensor:
        """Where every trial starts, ``(T, dim)``."""

    @abc.abstractmethod
    def subset(self, index: slice | Sequence[int] | Tensor) -> "ToySystem":
        """The same toy restricted to the trials ``index`` (their knobs, their start)."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The toy's knobs as a JSON-able mapping (part of every result's cache key)."""

    # -- helpers shared by subclasses --------------------------------------------------------

    def excess_loss(self, theta: Tensor) -> Tensor:
        """Population loss above the optimum, ``(T,)`` (0 at a minimiser)."""
        return self.population_loss(theta) - self.optimal_loss()

    def _check_theta(self, theta: Tensor) -> None:
        if theta.dim() != 2 or theta.shape[1] != self.dim or theta.shape[0] != self.trials:
            raise ValueError(
                f"Invalid parameter shape {tuple(theta.shape)} for {type(self).__name__}: "
                f"expected (trials, dim) = ({self.trials}, {self.dim})"
            )

    @staticmethod
    def _index_knob(knob: Tensor, index: slice | Sequence[int] | Tensor) -> Tensor:
        if isinstance(index, slice):
            return knob[index].clone()
        return knob[torch.as_tensor(index, dtype=torch.long)].clone()

    @staticmethod
    def _count(index: slice | Sequence[int] | Tensor, trials: int) -> int:
        if isinstance(index, slice):
            return len(range(*index.indices(trials)))
        return int(torch.as_tensor(index).numel())


def grid_cells(trials_per_cell: int, **axes: Sequence[float]) -> tuple[list[dict[str, float]], dict[str, Tensor], Tensor]:
    """Lay a grid of knob values out along the trial axis.

    ``grid_cells(100, mass_ratio=[1, 10], noise=[0.1, 1.0])`` gives 4 cells of
    100 trials each (400 trials): trials ``[100*c, 100*(c+1))`` belong to cell ``c``.

    Returns:
        ``(cells, knobs, cell_index)``: the list of cell dicts (knob -> value, in
        row-major order of ``axes``), the per-trial knob tensors ``(trials,)``
        (float64) and the cell index of every trial ``(trials,)``.
    """
    if isinstance(trials_per_cell, bool) or not isinstance(trials_per_cell, int) or trials_per_cell < 1:
        raise ValueError(f"Invalid trials_per_cell: {trials_per_cell!r} (must be an int >= 1)")
    if not axes:
        raise ValueError("grid_cells needs at least one knob axis, e.g. mass_ratio=[1, 10]")
    names = list(axes)
    values = [list(map(float, axes[name])) for name in names]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"Invalid grid axis {name!r}: empty list of values")
    cells: list[dict[str, float]] = [{}]
    for name, vals in zip(names, values):
        cells = [dict(cell, **{name: v}) for cell in cells for v in vals]
    knobs = {
        name: torch.tensor([cell[name] for cell in cells], dtype=torch.float64).repeat_interleave(trials_per_cell)
        for name in names
    }
    cell_index = torch.arange(len(cells)).repeat_interleave(trials_per_cell)
    return cells, knobs, cell_index
