r"""Measurement 4: the oscillation index :math:`Q` of the AdaRem paper's section 3.2.2.

Over a learning-rate sweep per optimizer (Q against the final loss), at the AdaRem
paper's convention (the same base learning rate, its section 4.1.1) and at matched
progress (each trial's path up to the first step at a common excess-loss level,
:func:`first_reaching`, :func:`oscillation_index_until`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.metrics import oscillation_index
from lcamlab.experiments.registry import preset
from lcamlab.experiments.stats import paired_ci
from lcamlab.toys.measurements.common import cached_table, float_pairs, interval_columns, spring_of
from lcamlab.toys.runner import run

__all__ = ["CONVENTION", "OSCILLATION_CONTRASTS", "first_reaching", "oscillation_index_until", "OscillationConfig",
           "measure_oscillation"]


#: The AdaRem paper's section 4.1.1: one base learning rate for SGD, SGD with momentum and AdaRem (0.4 there),
#: Adam's 1/100 of it (0.004). Key -> factor of ``base_lr``; LCAM is an SGD variant.
CONVENTION: dict[str, float] = {"sgd": 1.0, "momentum": 1.0, "lcam-above": 1.0, "lcam-below": 1.0,
                                "adarem": 1.0, "adam": 0.01}

#: The contrasts of measurement 4: (optimizer, reference), each a claim of the AdaRem paper's section 3.2.2.
OSCILLATION_CONTRASTS: tuple[tuple[str, str], ...] = (("adarem", "momentum"), ("momentum", "sgd"),
                                                      ("adam", "momentum"))


def first_reaching(values: Tensor, level: Tensor | float) -> Tensor:
    """Index of the first recorded point where ``values`` (``(R, T)``) is at or below ``level``; -1 if never."""
    hit = values <= torch.as_tensor(level, dtype=values.dtype)
    first = torch.argmax(hit.to(torch.int8), dim=0)
    return torch.where(hit.any(dim=0), first, torch.full_like(first, -1))


def oscillation_index_until(trajectory: Tensor, stop: Tensor) -> Tensor:
    r"""The AdaRem paper's :math:`Q` of every trial's path up to its own stopping point.

    .. math::

        Q_j = \frac1n \sum_i \frac{\sum_{k < K_j} |\theta_{k+1,i} - \theta_{k,i}|}
                                   {|\theta_{K_j,i} - \theta_{0,i}|}

    the oscillation index of :func:`lcamlab.experiments.metrics.oscillation_index`
    on ``trajectory[:K_j + 1]`` for trial ``j`` (used at matched progress: ``K_j``
    is the first step at a common excess-loss level, :func:`first_reaching`).

    Args:
        trajectory: ``(R, T, dim)`` recorded at every step.
        stop: ``(T,)`` integer :math:`K_j \ge 1`; trials with ``stop < 1`` (never
            reached) get NaN.

    Returns:
        ``(T,)`` float64.
    """
    if trajectory.dim() != 3 or stop.shape != (trajectory.shape[1],):
        raise ValueError(f"Invalid shapes: trajectory {tuple(trajectory.shape)} (expected (R, T, dim)), "
                         f"stop {tuple(stop.shape)} (expected ({trajectory.shape[1]},))")
    if bool((stop >= trajectory.shape[0]).any()):
        raise ValueError(f"Invalid stop: beyond the {trajectory.shape[0]} recorded points")
    traj = trajectory.to(torch.float64)
    stop = stop.to(torch.long)
    reached = stop >= 1
    k = stop.clamp_min(1)
    path = torch.cumsum(traj.diff(dim=0).abs(), dim=0)  # path[k - 1] = path length over the first k steps
    index = k.view(1, -1, 1).expand(1, traj.shape[1], traj.shape[2])
    length = path.gather(0, index - 1)[0]
    displacement = (traj.gather(0, index)[0] - traj[0]).abs()
    moved = displacement > 0
    q = torch.where(moved, length / torch.where(moved, displacement, 1.0), 0.0)
    result = q.sum(-1) / moved.sum(-1)
    return torch.where(reached, result, torch.full_like(result, math.nan))


@dataclasses.dataclass(frozen=True)
class OscillationConfig:
    r"""Settings of :func:`measure_oscillation`.

    The spring of the notebook; every optimizer of ``rates`` runs at its own
    rate times every ``lr_factors`` value and, for the optimizers of
    :data:`CONVENTION`, at the AdaRem paper's convention (``base_lr`` times the convention's
    factor). Matched progress: each trial's path up to the first step whose
    excess population loss is at most ``progress_fraction`` of the initial one.

    The level must lie well below the heavy weight's own share of the initial
    loss (:math:`L_s`, 2% of it on the default spring): the light weight settles
    within a few dozen steps, so a level above :math:`L_s` is reached while the
    heavy weight has hardly moved, and Q, a path length *per displacement*,
    then divides by almost nothing (the coupling first pulls the heavy weight
    away from its optimum). At 0.5% the heavy weight has covered about half
    its way.
    """

    mass_ratio: float = 25.0
    coupling: float = 0.8
    stiffness: float = 1.0
    noise: float = 0.2
    start: tuple[float, float] = (-1.0, -1.0)
    optimum: tuple[float, float] = (1.0, 1.0)
    batch_size: int = 16
    trials: int = 200
    steps: int = 600
    steps_per_epoch: int = 40
    rates: tuple[tuple[str, float], ...] = (("sgd", 0.2), ("momentum", 0.02), ("lcam-above", 0.02),
                                            ("lcam-below", 0.02), ("adam", 0.02), ("adarem", 0.2))
    base_lr: float = 0.02
    lr_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    progress_fraction: float = 0.005
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", float_pairs(self.rates))
        if not 0 < self.progress_fraction < 1:
            raise ValueError(f"Invalid progress_fraction: {self.progress_fraction} (must lie in (0, 1))")
        if 1.0 not in self.lr_factors:
            raise ValueError(f"Invalid lr_factors: {self.lr_factors!r} (must contain 1.0, each optimizer's own rate)")


def measure_oscillation(
    config: OscillationConfig = OscillationConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> cache.CachedTable:
    r"""Measurement 4 (the AdaRem paper's section 3.2.2): the oscillation index Q, fairly compared.

    One table, two kinds of rows:

    * ``part = "sweep"``: per (optimizer, learning rate): ``Q`` over the whole
      run, ``log10_final`` (log10 excess population loss over the last epoch),
      ``Q_progress`` (Q up to the first step at the common level, over the trials
      that reached it), ``reached`` (their share) and ``steps_to_level`` (their
      mean); ``own`` marks the optimizer's own rate, ``convention`` the AdaRem paper's;
    * ``part = "paired"``: the contrasts of :data:`OSCILLATION_CONTRASTS` on the
      same trials, ``regime = "convention"`` (Q over the run at the AdaRem paper's rates) and
      ``"matched progress"`` (Q to the level at the own rates, over the trials
      where both reached it).
    """
    import pandas as pd

    def compute() -> Any:
        toy = spring_of(config)
        kwargs = dict(steps=config.steps, steps_per_epoch=config.steps_per_epoch, seed=config.seed)
        initial = toy.excess_loss(toy.initial_point().to(torch.float64))
        level = config.progress_fraction * initial
        rows = []
        per_trial: dict[tuple[str, str], dict[str, Tensor]] = {}
        for key, rate in config.rates:
            lrs = {round(rate * f, 12): {"own": f == 1.0, "convention": False} for f in config.lr_factors}
            if key in CONVENTION:
                lrs.setdefault(round(config.base_lr * CONVENTION[key], 12), {"own": False, "convention": False})
                lrs[round(config.base_lr * CONVENTION[key], 12)]["convention"] = True
            for lr in sorted(lrs):
                result = run(toy, preset(key, lr), **kwargs)
                diverged = result.diverged()
                q = oscillation_index(result.trajectory, trial_axis=True)
                excess = result.excess_loss().to(torch.float64)
                stop = first_reaching(excess, level)
                q_progress = oscillation_index_until(result.trajectory, stop)
                final = excess[-config.steps_per_epoch:].mean(dim=0).clamp_min(1e-300).log10()
                q = torch.where(diverged, torch.full_like(q, math.nan), q)
                final = torch.where(diverged, torch.full_like(final, math.nan), final)
                reached = (stop >= 1) & ~diverged
                row = {"part": "sweep", "optimizer": result.spec.label, "key": key, "lr": lr, **lrs[lr],
                       "regime": "", **interval_columns("Q", q), **interval_columns("log10_final", final),
                       **interval_columns("Q_progress", torch.where(reached, q_progress, math.nan)),
                       "reached": float(reached.to(torch.float64).mean()),
                       "steps_to_level": float(stop[reached].to(torch.float64).mean()) if bool(reached.any())
                       else math.nan,
                       "diverged": float(diverged.to(torch.float64).mean()), "trials": config.trials}
                rows.append(row)
                for flag in ("own", "convention"):
                    if lrs[lr][flag]:
                        per_trial[(key, flag)] = {"Q": q, "Q_progress": torch.where(reached, q_progress, math.nan),
                                                  "label": result.spec.label, "lr": lr}
        for a, b in OSCILLATION_CONTRASTS:
            for regime, flag, column in (("convention", "convention", "Q"), ("matched progress", "own", "Q_progress")):
                if (a, flag) not in per_trial or (b, flag) not in per_trial:
                    continue
                ea, eb = per_trial[(a, flag)], per_trial[(b, flag)]
                mean, low, high, n = paired_ci(ea[column], eb[column])
                rows.append({"part": "paired", "optimizer": f"{ea['label']} − {eb['label']}", "key": f"{a} - {b}",
                             "lr": ea["lr"], "lr_reference": eb["lr"], "own": flag == "own",
                             "convention": flag == "convention", "regime": regime,
                             "Q": mean, "Q_low": low, "Q_high": high, "trials": n})
        return pd.DataFrame(rows)

    cfg = dataclasses.asdict(config)
    cfg["level"] = "progress_fraction * initial excess population loss"
    return cached_table("traction_oscillation_index", cfg, compute, data_dir, seed=config.seed, refresh=refresh)
