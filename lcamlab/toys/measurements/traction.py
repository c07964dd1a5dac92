r"""Measurement 2, traction: LCAM against its controls on the spring (the LCAM paper's section 3.4).

The drift of the spring after a fixed budget for every momentum asymmetry
:math:`\beta_\text{above} - \beta_\text{below}`, for LCAM *and its controls*
(:mod:`lcamlab.experiments.controls`) on the same mini-batches: the phase-shuffled
control (LCAM's momentum values in LCAM's proportions, the choice decoupled from the
loss) and the mean-matched one (fixed momentum at LCAM's realised mean). LCAM minus
shuffled is the effect of *loss control*; LCAM minus matched the effect of the
asymmetry beyond the mean momentum (the earlier LCAM paper's sections 3.2 and 4 for
the other reading of which phase accelerates the quick group).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.registry import OptimizerSpec
from lcamlab.toys.measurements.common import cached_table, interval_columns, paired_columns, spring_of
from lcamlab.toys.measurements.phase import phase_agreement
from lcamlab.toys.runner import ToyRun, run, run_controls

__all__ = ["centre_of_mass_drift", "TractionConfig", "measure_traction"]


_DRIFTS = ("com", "lean", "theta_n", "theta_s")


def centre_of_mass_drift(run_: ToyRun, baseline: ToyRun, *, average_last: int,
                         normalise: bool = True) -> dict[str, Tensor]:
    r"""Paired drift of the spring after the budget, relative to a baseline run on the same mini-batches.

    Positions are averaged over the last ``average_last`` recorded points
    (smoothing the oscillation), and expressed as *progress*: the fraction of the
    way from the start to the optimum, :math:`p = (z_T - z_0)/(z^* - z_0)`, for
    the centre of mass :math:`X` and for each weight. The drift is
    :math:`p(\text{run}) - p(\text{baseline})` per trial: positive means further
    along than the baseline.

    With ``normalise=False`` the drifts are plain differences of positions
    (needed when the run starts at the optimum, where progress is undefined).

    Returns per-trial ``(T,)`` tensors ``com``, ``theta_n``, ``theta_s`` and
    ``lean = theta_s - theta_n`` (positive: the pair leans to the sparse side).
    """
    toy = run_.toy
    if not hasattr(toy, "centre_of_mass"):
        raise ValueError(f"centre_of_mass_drift needs a toy with a centre_of_mass method, e.g. SpringPair "
                         f"(got {type(toy).__name__})")
    if baseline.trajectory.shape != run_.trajectory.shape:
        raise ValueError("centre_of_mass_drift needs a baseline recorded like the run (same steps and trials)")
    if isinstance(average_last, bool) or not isinstance(average_last, int) or not 1 <= average_last <= run_.trajectory.shape[0]:
        raise ValueError(f"Invalid average_last: {average_last!r} (between 1 and the number of recorded points)")
    start = toy.initial_point().to(torch.float64)
    optimum = toy.optimum().to(torch.float64)

    com_span = toy.centre_of_mass(optimum) - toy.centre_of_mass(start)
    span = optimum - start
    if normalise and (bool((com_span == 0).any()) or bool((span == 0).any())):
        raise ValueError("Progress is undefined for a run that starts at the optimum in some coordinate: "
                         "use normalise=False for plain position differences")
    if not normalise:
        com_span, span = torch.ones_like(com_span), torch.ones_like(span)

    def progress(r: ToyRun) -> dict[str, Tensor]:
        end = r.trajectory[-average_last:].to(torch.float64).mean(dim=0)
        com = (toy.centre_of_mass(end) - toy.centre_of_mass(start)) / com_span
        per_weight = (end - start) / span
        return {"com": com, "theta_n": per_weight[:, 0], "theta_s": per_weight[:, -1]}

    a, b = progress(run_), progress(baseline)
    drift = {k: a[k] - b[k] for k in a}
    drift["lean"] = drift["theta_s"] - drift["theta_n"]
    return drift


@dataclasses.dataclass(frozen=True)
class TractionConfig:
    r"""Settings of :func:`measure_traction`.

    LCAM runs with ``(below, above) = (mean_momentum - a/2, mean_momentum + a/2)``
    for every asymmetry :math:`a = \beta_\text{above} - \beta_\text{below}` in
    ``asymmetries``; :math:`a = \pm 0.05` around 0.925 are the paper's
    (0.9, 0.95) and (0.95, 0.9). Every LCAM setting runs with its phase-shuffled
    and mean-matched controls, and every drift is measured against fixed
    momentum ``mean_momentum`` on the same mini-batches.
    """

    asymmetries: tuple[float, ...] = (-0.05, -0.03, -0.01, 0.0, 0.01, 0.03, 0.05)
    mean_momentum: float = 0.925
    mass_ratio: float = 25.0
    coupling: float = 0.8
    stiffness: float = 1.0
    noise: float = 0.2
    start: tuple[float, float] = (-1.0, -1.0)
    optimum: tuple[float, float] = (1.0, 1.0)
    batch_size: int = 16
    trials: int = 400
    steps: int = 400
    steps_per_epoch: int = 40
    average_last: int = 40
    lr: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        for a in self.asymmetries:
            lo, hi = self.mean_momentum - a / 2, self.mean_momentum + a / 2
            if not (0 <= lo < 1 and 0 <= hi < 1):
                raise ValueError(f"Invalid asymmetry {a} around mean momentum {self.mean_momentum}: "
                                 f"momentum pair ({lo}, {hi}) leaves [0, 1)")

    def pair(self, asymmetry: float) -> tuple[float, float]:
        """LCAM's ``(below, above)`` at ``asymmetry``."""
        return (round(self.mean_momentum - asymmetry / 2, 10), round(self.mean_momentum + asymmetry / 2, 10))


def measure_traction(
    config: TractionConfig = TractionConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> cache.CachedTable:
    r"""Measurement 2 (the LCAM paper's section 3.4; its earlier version's sections 3.2 and 4): LCAM and controls.

    Drifts are paired against fixed momentum ``mean_momentum`` on the same
    mini-batches (:func:`centre_of_mass_drift`): ``com`` (centre of mass),
    ``theta_n`` and ``theta_s`` (each weight's progress) and ``lean =
    theta_s - theta_n`` (> 0: towards the sparse side), as fractions of the way
    from the start to the optimum.

    One row per (asymmetry, ``setting``), mean and 95% CI over trials:

    * ``setting`` = ``"LCAM"``, ``"shuffled"``, ``"matched"``: drift against the
      fixed-momentum baseline;
    * ``"LCAM - shuffled"`` (effect of loss control) and ``"LCAM - matched"``
      (effect of the asymmetry beyond the mean momentum): paired differences.

    Every row carries LCAM's ``realised_mean`` momentum and ``below_fraction``
    (share of steps that used the below value), and LCAM's ``agreement`` with the
    light weight's true phase and the ``eq12_r2`` of :func:`phase_agreement`.
    """
    import pandas as pd

    def compute() -> Any:
        toy = spring_of(config)
        kwargs = dict(steps=config.steps, steps_per_epoch=config.steps_per_epoch, seed=config.seed)
        baseline = run(toy, OptimizerSpec("sgd", config.lr, {"momentum": config.mean_momentum}),
                       **kwargs).check_finite()
        rows = []
        for a in config.asymmetries:
            below, above = config.pair(a)
            lcam = OptimizerSpec("lcam", config.lr, {"momentum": (below, above)})
            runs = run_controls(toy, lcam, controls=("shuffled", "matched"), **kwargs)
            for r in runs.values():
                r.check_finite()
            lcam_run = runs[lcam.style_key]
            drifts = {"LCAM": centre_of_mass_drift(lcam_run, baseline, average_last=config.average_last)}
            for control in ("shuffled", "matched"):
                drifts[control] = centre_of_mass_drift(runs[f"{lcam.style_key}:{control}"], baseline,
                                                       average_last=config.average_last)
            used = lcam_run.momentum_used()
            phases = phase_agreement(lcam_run, burn_in_epochs=1)
            common = {"asymmetry": a, "below": below, "above": above,
                      "realised_mean": float(used.mean()),
                      "below_fraction": float(lcam_run.lcam_below.to(torch.float64).mean()),
                      "agreement": float(phases["agreement"].mean()),
                      "eq12_r2": float(phases["eq12_r2"].mean()),
                      "trials": config.trials}
            for setting, drift in drifts.items():
                row: dict[str, Any] = {"setting": setting, **common}
                for key in _DRIFTS:
                    row.update(interval_columns(key, drift[key]))
                rows.append(row)
            for control in ("shuffled", "matched"):
                row = {"setting": f"LCAM - {control}", **common}
                for key in _DRIFTS:
                    row.update(paired_columns(key, drifts["LCAM"][key], drifts[control][key]))
                rows.append(row)
        return pd.DataFrame(rows)

    return cached_table("traction_drift", dataclasses.asdict(config), compute, data_dir,
                        seed=config.seed, refresh=refresh)
