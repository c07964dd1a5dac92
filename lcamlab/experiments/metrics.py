r"""Analysis metrics computed on recorded runs: the one home of each.

* :func:`oscillation_index`: 003's :math:`Q` (path length per displacement);
* :func:`iterations_to_target`: first recorded step at or below a target;
* :func:`loss_phases`: LCAM's below/above phase of a recorded loss sequence
  (the rule of :class:`lcamlab.optim.LCAM`, vectorised over steps and trials).

Every function is vectorised over trials and takes torch tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["oscillation_index", "iterations_to_target", "loss_phases"]


def oscillation_index(trajectory: Tensor, *, trial_axis: bool = False) -> Tensor:
    r"""003's oscillation index :math:`Q`: the mean over parameters of path length per displacement.

    .. math::

        q_i = \frac{\sum_k |\theta_{k+1,i} - \theta_{k,i}|}{|\theta_{K,i} - \theta_{0,i}|},
        \qquad Q = \frac1n\sum_{i=1}^n q_i \;\ge 1

    (Adaptive Gradient Method with Resilience and Momentum, Liu et al. 2020,
    section 3.2.2: SGD shows a larger :math:`Q` than SGDM, AdaRem the smallest.)
    Elements that end exactly where they started (:math:`d_i = 0`) have no
    defined :math:`q_i` and are left out of the mean; if all are, :math:`Q` is NaN.
    A sub-sampled trajectory under-counts the path length: record every step.

    Args:
        trajectory: snapshots of the parameters, dim 0 the time ``k = 0..K``
            (stack ``torch.cat([p.reshape(-1) for p in params])`` per step), every
            other element one parameter :math:`\theta_i`.
        trial_axis: dim 1 is the trial; one :math:`Q` per trial.

    Returns:
        :math:`Q` in float64: 0-dim, or ``(T,)`` with ``trial_axis``.

    Example:
        >>> path = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 2.0], [1.5, 3.0]])
        >>> oscillation_index(path)  # q = (2.5/1.5, 3/3)
        tensor(1.3333, dtype=torch.float64)
    """
    if trajectory.dim() < 2 or trajectory.shape[0] < 2 or (trial_axis and trajectory.dim() < 3):
        raise ValueError(
            f"Invalid trajectory shape {tuple(trajectory.shape)}: expected (steps >= 2, "
            f"{'trials, ' if trial_axis else ''}...) snapshots with the time along dim 0"
        )
    trajectory = trajectory.to(torch.float64)
    flat = trajectory.reshape(trajectory.shape[0], trajectory.shape[1], -1) if trial_axis \
        else trajectory.reshape(trajectory.shape[0], -1)
    path_length = flat.diff(dim=0).abs().sum(0)
    displacement = (flat[-1] - flat[0]).abs()
    moved = displacement > 0
    # where(), not boolean indexing: no host sync, the trial shape survives, and a zero
    # displacement never divides
    q = torch.where(moved, path_length / torch.where(moved, displacement, 1.0), 0.0)
    return q.sum(-1) / moved.sum(-1)


def iterations_to_target(values: Tensor, steps: Tensor, target: Tensor | float) -> Tensor:
    """First recorded step at which ``values`` (``(R, T)``) is at or below ``target``; ``inf`` if never.

    Args:
        values: a quantity recorded at ``steps`` (dim 0) for every trial (dim 1).
        steps: ``(R,)`` step index of each record.
        target: a float or a ``(T,)`` per-trial target.

    Returns:
        ``(T,)`` float64 steps, ``inf`` where the target was never reached (right-censored).
    """
    hit = values <= torch.as_tensor(target, dtype=values.dtype)
    any_hit = hit.any(dim=0)
    first = torch.argmax(hit.to(torch.int8), dim=0)
    result = steps.to(torch.float64)[first]
    return torch.where(any_hit, result, torch.full_like(result, math.inf))


def loss_phases(loss: Tensor, steps_per_epoch: int) -> Tensor:
    r"""LCAM's phase of every loss: :math:`L_t < \bar L_t`, the running mean of its epoch including itself.

    Vectorised over steps and trials; the mean accumulates in float64 exactly as
    :class:`lcamlab.optim.LCAM` does, so the result equals LCAM's decisions.

    Args:
        loss: ``(steps, T)`` (or ``(steps,)``) mini-batch losses in step order.
        steps_per_epoch: the epoch length; the mean restarts every epoch.

    Returns:
        bool tensor of ``loss``'s shape, True where the loss is below its running mean.
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"Invalid steps_per_epoch: {steps_per_epoch!r} (must be an int >= 1)")
    steps = loss.shape[0]
    below = torch.empty(loss.shape, dtype=torch.bool)
    for start in range(0, steps, steps_per_epoch):  # a loop over epochs, not trials
        chunk = loss[start:start + steps_per_epoch]
        count = torch.arange(1, chunk.shape[0] + 1, dtype=torch.float64).view((-1,) + (1,) * (loss.dim() - 1))
        mean = torch.cumsum(chunk.to(torch.float64), dim=0) / count
        below[start:start + steps_per_epoch] = chunk < mean
    return below
