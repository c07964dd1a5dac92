r"""Measurement 1, *does the loss tell the phase?* (the LCAM paper's eq. 12, section 3.4).

How often LCAM's below/above decision matches the true phase of the light weight
:math:`\Theta_n` (:func:`phase_agreement`, per trial), over a grid of mass ratios and
noise levels of :class:`~lcamlab.toys.SpringPair` (:func:`measure_phase_agreement`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.metrics import loss_phases
from lcamlab.experiments.registry import OptimizerSpec
from lcamlab.experiments.stats import mean_ci
from lcamlab.toys.base import grid_cells
from lcamlab.toys.measurements.common import cached_table
from lcamlab.toys.runner import ToyRun, run
from lcamlab.toys.spring import SpringPair

__all__ = ["phase_agreement", "PhaseAgreementConfig", "measure_phase_agreement"]


def _included_steps(steps: int, steps_per_epoch: int, burn_in_epochs: int) -> Tensor:
    """Steps after the burn-in, without the first step of each epoch (tautologically 'above')."""
    index = torch.arange(steps)
    keep = (index >= burn_in_epochs * steps_per_epoch) & (index % steps_per_epoch != 0)
    if not bool(keep.any()):
        raise ValueError(
            f"No steps left to measure: steps={steps}, steps_per_epoch={steps_per_epoch}, "
            f"burn_in_epochs={burn_in_epochs} (run longer or shorten the burn-in)"
        )
    return keep


def phase_agreement(run_: ToyRun, *, burn_in_epochs: int = 1) -> dict[str, Tensor]:
    r"""How well the loss's phase tracks the light weight's true phase, per trial.

    With :math:`L_n(\theta)` the light weight's own part of the loss (its
    displacement from the bottom of its valley, :meth:`SpringPair.loss_split`),
    the *true* phase of step t is :math:`L_n(\theta_{t-1})` below / above the
    running epoch mean of :math:`L_n` (the same rule LCAM applies to the loss).
    the LCAM paper's eq. (12) claims :math:`\Delta\text{Loss} \approx k\,\Delta L_n`, so the
    loss's phase should equal this true phase.

    Returns per-trial ``(T,)`` tensors:

    * ``agreement``: fraction of steps where the loss's phase (LCAM's decision,
      or the same rule for other optimizers) equals the true phase;
    * ``sign_agreement``: fraction of steps where "loss above its mean" coincides
      with :math:`\Theta_n` left of its valley bottom (:math:`\theta_n < c_n`), the
      literal left/right reading of the LCAM paper's section 3.4;
    * ``eq12_r2``: :math:`R^2` of the step-to-step loss changes regressed on those
      of :math:`L_n` (the LCAM paper's eq. 12), i.e. their squared correlation;
    * ``below_fraction``: fraction of steps in the below phase.

    Steps of the first ``burn_in_epochs`` epochs and the first step of every
    epoch (always "above" by definition) are left out.
    """
    toy = run_.toy
    if not isinstance(toy, SpringPair):
        raise ValueError(f"phase_agreement needs a SpringPair run (got {type(toy).__name__})")
    theta = run_.before_steps()
    l_n, _ = toy.loss_split(theta.to(torch.float64))
    truth_below = loss_phases(l_n, run_.steps_per_epoch)
    decision = run_.lcam_below if run_.lcam_below is not None else run_.below
    keep = _included_steps(run_.steps, run_.steps_per_epoch, burn_in_epochs)
    agree = (decision == truth_below)[keep].to(torch.float64).mean(dim=0)
    left = theta[..., 0] < toy.centre_n(theta[..., 1])
    sign_agree = ((~decision) == left)[keep].to(torch.float64).mean(dim=0)
    d_loss = torch.diff(run_.loss.to(torch.float64), dim=0)[keep[1:]]
    d_ln = torch.diff(l_n, dim=0)[keep[1:]]
    d_loss = d_loss - d_loss.mean(dim=0)
    d_ln = d_ln - d_ln.mean(dim=0)
    corr = (d_loss * d_ln).sum(dim=0) / torch.sqrt((d_loss**2).sum(dim=0) * (d_ln**2).sum(dim=0))
    return {
        "agreement": agree,
        "sign_agreement": sign_agree,
        "eq12_r2": corr**2,
        "below_fraction": decision[keep].to(torch.float64).mean(dim=0),
    }


@dataclasses.dataclass(frozen=True)
class PhaseAgreementConfig:
    """Settings of :func:`measure_phase_agreement` (defaults: the notebook's).

    The grid ``mass_ratios`` x ``noises`` runs as one batch of
    ``len(mass_ratios) * len(noises) * trials_per_cell`` trials of a
    :class:`SpringPair` with LCAM ``momentum=(below, above)``, once per learning
    rate in ``learning_rates`` (a small one, where the light weight's swings die
    out quickly, and a large one, the "oscillatory state" of the LCAM paper's section 3.2).
    """

    mass_ratios: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    noises: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    coupling: float = 0.8
    stiffness: float = 1.0
    start: tuple[float, float] = (-1.0, -1.0)
    optimum: tuple[float, float] = (1.0, 1.0)
    batch_size: int = 16
    trials_per_cell: int = 100
    steps: int = 320
    steps_per_epoch: int = 40
    burn_in_epochs: int = 1
    learning_rates: tuple[float, ...] = (0.02, 0.3)
    momentum: tuple[float, float] = (0.9, 0.95)
    seed: int = 0


def measure_phase_agreement(
    config: PhaseAgreementConfig = PhaseAgreementConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> cache.CachedTable:
    """Measurement 1 (the LCAM paper's eq. 12): agreement of LCAM's decision with the true phase, per grid cell.

    Returns ``(frame, metadata, path, from_cache)`` as :func:`cached_table`; one
    row per (lr, mass_ratio, noise) with mean and 95% CI of ``agreement``,
    ``sign_agreement``, ``eq12_r2`` and ``below_fraction`` over the cell's trials.
    """
    import pandas as pd

    def compute() -> Any:
        cells, knobs, cell_index = grid_cells(config.trials_per_cell, mass_ratio=config.mass_ratios,
                                              noise=config.noises)
        toy = SpringPair(len(cell_index), stiffness=config.stiffness, mass_ratio=knobs["mass_ratio"],
                         coupling=config.coupling, noise=knobs["noise"], start=config.start,
                         optimum=config.optimum, batch_size=config.batch_size)
        rows = []
        for lr in config.learning_rates:
            result = run(toy, OptimizerSpec("lcam", lr, {"momentum": tuple(config.momentum)}), steps=config.steps,
                         steps_per_epoch=config.steps_per_epoch, seed=config.seed).check_finite()
            per_trial = phase_agreement(result, burn_in_epochs=config.burn_in_epochs)
            for c, cell in enumerate(cells):
                mask = cell_index == c
                row: dict[str, Any] = {"lr": lr, **cell}
                for key, values in per_trial.items():
                    mean, low, high, n = mean_ci(values[mask])
                    row.update({f"{key}": mean, f"{key}_low": low, f"{key}_high": high})
                row["trials"] = n
                rows.append(row)
        return pd.DataFrame(rows)

    return cached_table("traction_phase_agreement", dataclasses.asdict(config), compute, data_dir,
                        seed=config.seed, refresh=refresh)
