r"""The LCAM paper's claims about weight coupling and traction, measured against controls.

Four measurements, each over many independent trials (dim 0 of the toys) with
95% confidence intervals, each cached in ``data/toys`` through
:mod:`lcamlab.experiments.cache` (CSV + JSON sidecar with provenance, a file name
that hashes the full configuration, verified on every read). Every measurement
derives its cache configuration itself from its config dataclass:

1. :func:`measure_phase_agreement`, *does the loss tell the phase?* (the LCAM paper's eq. 12,
   section 3.4): how often LCAM's below/above decision matches the true phase of
   the light weight :math:`\Theta_n`, over a grid of mass ratios and noise levels
   of :class:`~lcamlab.toys.SpringPair`.
2. :func:`measure_traction`: drift of the spring after a fixed budget for every
   momentum asymmetry :math:`\beta_\text{above} - \beta_\text{below}`, for LCAM
   *and its controls* (:mod:`lcamlab.experiments.controls`) on the same
   mini-batches: the phase-shuffled control (LCAM's momentum values in LCAM's
   proportions, the choice decoupled from the loss) and the mean-matched one
   (fixed momentum at LCAM's realised mean). LCAM minus shuffled is the effect of
   *loss control*; LCAM minus matched the effect of the asymmetry beyond the mean
   momentum (the LCAM paper's section 3.4; the earlier LCAM paper's sections 3.2 and 4 for the other reading of
   which phase accelerates the quick group).
3. :func:`measure_sparsity`: dataset sparsity x optimizer on
   :class:`~lcamlab.toys.ProductChain`, every optimizer over a learning-rate grid;
   each optimizer's best rate per sparsity is chosen on a *tuning* seed and
   reported on a separate *evaluation* seed (no winner's curse), with the rare-
   and frequent-feature losses separately and LCAM's controls at LCAM's rate
   (the LCAM paper's sections 3.3 and 4).
4. :func:`measure_oscillation`: the oscillation index :math:`Q` of the AdaRem paper's section
   3.2.2 over a learning-rate sweep per optimizer (Q against the final loss), at
   the AdaRem paper's convention (the same base learning rate, the AdaRem paper's section 4.1.1) and at
   matched progress (each trial's path up to the first step at a common
   excess-loss level).

:func:`claim_rows` turns the four tables into rows of the claims ledger
(:mod:`lcamlab.experiments.claims`), verdicts computed by code.

Confidence intervals: Student-t intervals for means over trials
(:func:`mean_ci`) and for paired differences wherever two settings share their
trials' mini-batches (same seed: common random numbers, :func:`paired_ci`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.claims import claim_row
from lcamlab.experiments.metrics import loss_phases, oscillation_index
from lcamlab.experiments.registry import PRESETS, OptimizerSpec, preset
from lcamlab.experiments.stats import mean_ci, paired_ci
from lcamlab.toys.base import grid_cells
from lcamlab.toys.product_chain import ProductChain
from lcamlab.toys.runner import ToyRun, run, run_controls
from lcamlab.toys.spring import SpringPair

__all__ = [
    "MEASUREMENT_VERSION",
    "NOTEBOOK",
    "cached_table",
    "phase_agreement",
    "centre_of_mass_drift",
    "oscillation_index_until",
    "first_reaching",
    "PhaseAgreementConfig",
    "TractionConfig",
    "SparsityConfig",
    "SparsityResult",
    "OscillationConfig",
    "measure_phase_agreement",
    "measure_traction",
    "measure_sparsity",
    "measure_oscillation",
    "best_rates",
    "claim_rows",
]

# Part of every cache key: bump it when the definition of a measurement changes, so that
# tables computed by the old definition are never read back as results of the new one.
# 2: traction with controls, sparsity with learning-rate sweeps, oscillation at the convention
#    and at matched progress.
MEASUREMENT_VERSION = 2

#: The notebook whose ledger rows :func:`claim_rows` writes.
NOTEBOOK = "01_weight_traction"


def cached_table(
    name: str,
    config: Any,
    compute: Callable[[], Any],
    data_dir: str | os.PathLike,
    *,
    seed: int,
    refresh: bool = False,
) -> cache.CachedTable:
    """The toys' tables in the one result cache: ``<data_dir>/toys/<name>_<hash>.csv``.

    A thin binding of :func:`lcamlab.experiments.cache.cached_table` (folder ``toys``,
    version :data:`MEASUREMENT_VERSION`, computed on the CPU).

    Returns:
        ``(frame, metadata, path, from_cache)`` (a :class:`~lcamlab.experiments.cache.CachedTable`).
    """
    return cache.cached_table(name, config, compute, Path(data_dir) / "toys", seed=seed, device="cpu",
                              version=MEASUREMENT_VERSION, refresh=refresh)


def _stat(prefix: str, values: Tensor) -> dict[str, float]:
    """``{prefix: mean, prefix_low: ..., prefix_high: ...}`` over the finite values."""
    mean, low, high, _ = mean_ci(values)
    return {prefix: mean, f"{prefix}_low": low, f"{prefix}_high": high}


def _paired(prefix: str, values: Tensor, reference: Tensor) -> dict[str, float]:
    """The paired difference ``values - reference`` as ``{prefix, prefix_low, prefix_high}``."""
    mean, low, high, _ = paired_ci(values, reference)
    return {prefix: mean, f"{prefix}_low": low, f"{prefix}_high": high}


def _pairs(mapping: Mapping[str, float] | Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple((str(k), float(v)) for k, v in items)


# --------------------------------------------------------------------------------------
# Per-trial measurements on recorded runs
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Measurement 1: does the loss tell the phase?
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Measurement 2: traction, LCAM against its controls
# --------------------------------------------------------------------------------------

_DRIFTS = ("com", "lean", "theta_n", "theta_s")


def _spring(config: Any) -> SpringPair:
    """The :class:`SpringPair` of a measurement's settings (``trials`` trials of the same spring)."""
    return SpringPair(config.trials, stiffness=config.stiffness, mass_ratio=config.mass_ratio,
                      coupling=config.coupling, noise=config.noise, start=config.start, optimum=config.optimum,
                      batch_size=config.batch_size)


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
        toy = _spring(config)
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
                    row.update(_stat(key, drift[key]))
                rows.append(row)
            for control in ("shuffled", "matched"):
                row = {"setting": f"LCAM - {control}", **common}
                for key in _DRIFTS:
                    row.update(_paired(key, drifts["LCAM"][key], drifts[control][key]))
                rows.append(row)
        return pd.DataFrame(rows)

    return cached_table("traction_drift", dataclasses.asdict(config), compute, data_dir,
                        seed=config.seed, refresh=refresh)


# --------------------------------------------------------------------------------------
# Measurement 3: sparse versus non-sparse data, every optimizer at its best rate
# --------------------------------------------------------------------------------------

#: The optimizers of measurement 3 and their rates before tuning (the centre of each grid).
SPARSITY_RATES: tuple[tuple[str, float], ...] = (
    ("momentum", 0.005), ("lcam-above", 0.005), ("lcam-below", 0.005), ("adagrad", 0.05), ("adam", 0.01))


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    """Settings of :func:`measure_sparsity`.

    All sparsity levels run as one batch of ``len(sparsities) * trials_per_cell``
    trials of a :class:`ProductChain`, once per optimizer and learning rate, on
    the mini-batches of ``tuning_seed`` (to choose each optimizer's best rate per
    sparsity) and of ``seed`` (to report). The loss is read at step ``budget``
    (averaged over the ``average_last`` steps before it). Each optimizer's rates
    are ``rate * factor`` for its ``rates`` entry and every ``lr_factors`` value.
    """

    sparsities: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95)
    n_frequent: int = 2
    n_rare: int = 2
    depth: int = 2
    init: float = 0.3
    teacher: str = "balanced"
    label_noise: float = 0.1
    batch_size: int = 8
    trials_per_cell: int = 200
    budget: int = 60
    steps_per_epoch: int = 20
    average_last: int = 10
    record_every: int = 2
    rates: tuple[tuple[str, float], ...] = SPARSITY_RATES
    lr_factors: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    seed: int = 0
    tuning_seed: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", _pairs(self.rates))
        if not 1 <= self.average_last <= self.budget:
            raise ValueError(f"Invalid average_last: {self.average_last} (must lie in [1, budget={self.budget}])")
        if self.seed == self.tuning_seed:
            raise ValueError(f"Invalid tuning_seed: {self.tuning_seed} (must differ from the evaluation seed)")
        unknown = [key for key, _ in self.rates if key not in PRESETS]
        if unknown:
            raise ValueError(f"Invalid optimizer: {unknown[0]!r} (choose from {', '.join(PRESETS)})")
        if not self.lr_factors or any(not f > 0 for f in self.lr_factors):
            raise ValueError(f"Invalid lr_factors: {self.lr_factors!r} (positive numbers)")

    def learning_rates(self, key: str) -> list[float]:
        """The grid of ``key``: its rate times every factor."""
        rate = dict(self.rates)[key]
        return [round(rate * f, 12) for f in self.lr_factors]


@dataclasses.dataclass
class SparsityResult:
    """What :func:`measure_sparsity` returns: the whole curves and the table at the best rates."""

    curves: cache.CachedTable
    best: cache.CachedTable


def _sparsity_toy(config: SparsityConfig) -> tuple[list[dict[str, float]], ProductChain, Tensor]:
    cells, knobs, cell_index = grid_cells(config.trials_per_cell, sparsity=config.sparsities)
    toy = ProductChain(len(cell_index), n_frequent=config.n_frequent, n_rare=config.n_rare,
                       sparsity=knobs["sparsity"], depth=config.depth, init=config.init, teacher=config.teacher,
                       label_noise=config.label_noise, batch_size=config.batch_size)
    return cells, toy, cell_index


def _budget_losses(result: ToyRun, config: SparsityConfig) -> dict[str, Tensor]:
    """Per trial: log10 of the total, frequent- and rare-feature excess loss at the budget (inf if diverged)."""
    toy = result.toy
    steps = result.recorded_steps
    window = (steps > config.budget - config.average_last) & (steps <= config.budget)
    theta = result.trajectory[window].to(torch.float64)
    frequent, rare = toy.feature_losses(theta)  # type: ignore[attr-defined]
    total = frequent + rare
    diverged = result.diverged()
    out = {}
    for key, values in (("log10_loss", total), ("log10_frequent", frequent), ("log10_rare", rare)):
        v = torch.log10(values.mean(dim=0).clamp_min(1e-300))
        out[key] = torch.where(diverged | ~torch.isfinite(v), torch.full_like(v, math.inf), v)
    return out


_LOSSES = ("log10_loss", "log10_frequent", "log10_rare")


def _losses_stats(values: Mapping[str, Tensor], mask: Tensor) -> dict[str, float]:
    row: dict[str, float] = {}
    for key in _LOSSES:
        row.update(_stat(key, values[key][mask]))
    return row


def best_rates(curves: Any) -> dict[tuple[str, float], float]:
    """``(optimizer key, sparsity) -> learning rate`` with the lowest mean log10 loss on the tuning seed.

    A rate at which any trial of the cell diverged is never chosen.
    """
    tuning = curves[curves["seed_role"] == "tuning"]
    usable = tuning[(tuning["diverged"] == 0) & tuning["log10_loss"].notna()]
    chosen = {}
    for (key, sparsity), group in usable.groupby(["key", "sparsity"], sort=False):
        chosen[(str(key), float(sparsity))] = float(group.loc[group["log10_loss"].idxmin(), "lr"])
    return chosen


def measure_sparsity(
    config: SparsityConfig = SparsityConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> SparsityResult:
    r"""Measurement 3: sparsity x optimizer on :class:`ProductChain`, every optimizer at its best rate.

    Two cached tables:

    * ``curves`` (``traction_sparsity_curves``): one row per (optimizer, learning
      rate, sparsity, ``seed_role`` = ``"tuning"`` / ``"evaluation"``) with the
      mean and 95% CI of ``log10_loss`` (total excess population loss at the
      budget), ``log10_frequent`` and ``log10_rare`` (its frequent- and
      rare-feature parts, :meth:`ProductChain.feature_losses`) and the share of
      ``diverged`` trials;
    * ``best`` (``traction_sparsity``): per sparsity, every optimizer at the rate
      chosen on the tuning seed (:func:`best_rates`), measured on the evaluation
      seed (``kind = "setting"``), LCAM's phase-shuffled and mean-matched
      controls at LCAM's chosen rate (matched mean per sparsity cell), and paired
      differences on the same trials (``kind = "paired"``: ``setting`` names the
      difference, e.g. ``"lcam-above - lcam-above:shuffled"``).
    """
    import pandas as pd

    cfg = dataclasses.asdict(config)

    def compute_curves() -> Any:
        cells, toy, cell_index = _sparsity_toy(config)
        rows = []
        for key, _ in config.rates:
            for factor, lr in zip(config.lr_factors, config.learning_rates(key)):
                spec = preset(key, lr)
                for role, seed in (("tuning", config.tuning_seed), ("evaluation", config.seed)):
                    result = run(toy, spec, steps=config.budget, steps_per_epoch=config.steps_per_epoch,
                                 seed=seed, record_every=config.record_every)
                    losses = _budget_losses(result, config)
                    for c, cell in enumerate(cells):
                        mask = cell_index == c
                        rows.append({"optimizer": spec.label, "key": key, "lr": lr, "factor": factor,
                                     "sparsity": cell["sparsity"], "seed_role": role,
                                     **_losses_stats(losses, mask),
                                     "diverged": float(torch.isinf(losses["log10_loss"][mask]).double().mean()),
                                     "trials": int(mask.sum())})
        return pd.DataFrame(rows)

    curves = cached_table("traction_sparsity_curves", cfg, compute_curves, data_dir, seed=config.seed,
                          refresh=refresh)

    def compute_best() -> Any:
        cells, toy, cell_index = _sparsity_toy(config)
        chosen = best_rates(curves.frame)
        kwargs = dict(steps=config.budget, steps_per_epoch=config.steps_per_epoch, seed=config.seed,
                      record_every=config.record_every)
        # setting -> cell -> per-trial values; LCAM settings also carry their realised momentum
        values: dict[str, dict[int, dict[str, Any]]] = {}
        order: list[str] = []
        for key, _ in config.rates:
            for lr in sorted({chosen[(key, c["sparsity"])] for c in cells if (key, c["sparsity"]) in chosen}):
                spec = preset(key, lr)
                if spec.kind == "lcam":
                    runs = run_controls(toy, spec, controls=("shuffled", "matched"), groups=cell_index, **kwargs)
                else:
                    runs = {key: run(toy, spec, **kwargs)}
                used = runs[key].momentum_used() if spec.kind == "lcam" else None
                for setting, result in runs.items():
                    if setting not in order:
                        order.append(setting)
                    losses = _budget_losses(result, config)
                    for c, cell in enumerate(cells):
                        if chosen.get((key, cell["sparsity"])) != lr:
                            continue
                        mask = cell_index == c
                        entry: dict[str, Any] = {"lr": lr, "label": result.spec.label, "mask": mask,
                                                 **{k: v[mask] for k, v in losses.items()}}
                        if used is not None:
                            below = runs[key].lcam_below[:, mask].to(torch.float64)
                            entry["realised_mean"] = float(used[:, mask].mean())
                            entry["below_fraction"] = float(below.mean())
                        values.setdefault(setting, {})[c] = entry
        contrasts = []
        for key, _ in config.rates:
            if key.startswith("lcam"):
                contrasts += [(key, f"{key}:shuffled"), (key, f"{key}:matched")]
        if "lcam-above" in values and "lcam-below" in values:
            contrasts.append(("lcam-below", "lcam-above"))
        if "momentum" in values:
            contrasts += [(k, "momentum") for k, _ in config.rates if k in ("adagrad", "adam")]
        rows = []
        for c, cell in enumerate(cells):
            for setting in order:
                entry = values.get(setting, {}).get(c)
                if entry is None:
                    continue
                row = {"kind": "setting", "sparsity": cell["sparsity"], "setting": setting,
                       "label": entry["label"], "lr": entry["lr"]}
                for k in _LOSSES:
                    row.update(_stat(k, entry[k]))
                row["realised_mean"] = entry.get("realised_mean", math.nan)
                row["below_fraction"] = entry.get("below_fraction", math.nan)
                row["trials"] = int(torch.isfinite(entry["log10_loss"]).sum())
                rows.append(row)
            for a, b in contrasts:
                if c not in values.get(a, {}) or c not in values.get(b, {}):
                    continue
                ea, eb = values[a][c], values[b][c]
                row = {"kind": "paired", "sparsity": cell["sparsity"], "setting": f"{a} - {b}",
                       "label": f"{ea['label']} − {eb['label']}", "lr": math.nan}
                for k in _LOSSES:
                    row.update(_paired(k, ea[k], eb[k]))
                row["realised_mean"] = math.nan
                row["below_fraction"] = math.nan
                row["trials"] = int((torch.isfinite(ea["log10_loss"]) & torch.isfinite(eb["log10_loss"])).sum())
                rows.append(row)
        return pd.DataFrame(rows)

    best = cached_table("traction_sparsity", cfg, compute_best, data_dir, seed=config.seed, refresh=refresh)
    return SparsityResult(curves, best)


# --------------------------------------------------------------------------------------
# Measurement 4: oscillation index at the convention, over a sweep, at matched progress
# --------------------------------------------------------------------------------------

#: The AdaRem paper's section 4.1.1: one base learning rate for SGD, SGD with momentum and AdaRem (0.4 there),
#: Adam's 1/100 of it (0.004). Key -> factor of ``base_lr``; LCAM is an SGD variant.
CONVENTION: dict[str, float] = {"sgd": 1.0, "momentum": 1.0, "lcam-above": 1.0, "lcam-below": 1.0,
                                "adarem": 1.0, "adam": 0.01}

#: The contrasts of measurement 4: (optimizer, reference), each a claim of the AdaRem paper's section 3.2.2.
OSCILLATION_CONTRASTS: tuple[tuple[str, str], ...] = (("adarem", "momentum"), ("momentum", "sgd"),
                                                      ("adam", "momentum"))


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
        object.__setattr__(self, "rates", _pairs(self.rates))
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
        toy = _spring(config)
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
                       "regime": "", **_stat("Q", q), **_stat("log10_final", final),
                       **_stat("Q_progress", torch.where(reached, q_progress, math.nan)),
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


# --------------------------------------------------------------------------------------
# The claims, as rows of the ledger
# --------------------------------------------------------------------------------------

# Margins below which an effect counts as practically nil (claims.verdict's `margin`):
# * progress of the spring (fractions of the way from start to optimum): 0.002, a fifth of a
#   percent of the way, invisible in any picture of the spring;
# * log10 losses: 0.05 decades (a 12% change of the loss);
# * the oscillation index Q (>= 1): 0.05;
# * phase agreement (a probability): 0.25 around chance, i.e. the loss "tells the phase" only if
#   it is right more than three times in four, and is shown not to if its interval lies within
#   (0.25, 0.75).
PROGRESS_MARGIN = 0.002
LOG10_MARGIN = 0.05
Q_MARGIN = 0.05
AGREEMENT_MARGIN = 0.25


def _row_of(frame: Any, **where: Any) -> Any | None:
    mask = None
    for column, value in where.items():
        m = (frame[column] - value).abs() < 1e-9 if isinstance(value, float) else frame[column] == value
        mask = m if mask is None else mask & m
    rows = frame[mask]
    return None if rows.empty else rows.iloc[0]


def _negated(row: Any | None, column: str) -> Any | None:
    """``row`` with the difference in ``column`` (and its interval) turned round: b - a from a - b."""
    if row is None:
        return None
    row = row.copy()
    row[column], row[f"{column}_low"], row[f"{column}_high"] = (-row[column], -row[f"{column}_high"],
                                                               -row[f"{column}_low"])
    return row


def _fmt(x: float) -> str:
    return f"{x:g}"


def claim_rows(phase: Any, traction: Any, sparsity: Any, oscillation: Any, *, traction_config: TractionConfig,
               sparsity_config: SparsityConfig, oscillation_config: OscillationConfig,
               notebook: str = NOTEBOOK) -> list[dict[str, Any]]:
    """The notebook's rows of the claims ledger (:func:`lcamlab.experiments.claims.claim_row`).

    Every prediction (the sign a claim predicts), control and margin is fixed
    here, in code, before any number is read (margins: the ``*_MARGIN``
    constants). Measurement 1's rows (the LCAM paper's eq. 12: does the loss tell the light
    weight's phase?) take, per learning rate of the grid, the cell most
    favourable to the claim (highest agreement): if the claim fails there it
    fails everywhere on the grid. The traction rows take the paper's two pairs
    (the most negative and most positive asymmetry); the sparsity rows the least
    and most sparse data.

    Args:
        phase: :func:`measure_phase_agreement`'s table.
        traction: :func:`measure_traction`'s table.
        sparsity: :func:`measure_sparsity`'s ``best`` table.
        oscillation: :func:`measure_oscillation`'s table.
        traction_config, sparsity_config, oscillation_config: the configurations
            that made them (for the descriptions).

    Rows whose inputs a configuration left out (e.g. a quick build without some
    optimizer) are skipped.
    """
    rows: list[dict[str, Any]] = []

    def add(id_: str, paper: str, section: str, claim: str, measured: str, control: str, row: Any,
            column: str, predicted: int, margin: float, shift: float = 0.0) -> None:
        if row is None or not math.isfinite(float(row[column])):
            return
        rows.append(claim_row(
            id_, notebook=notebook, paper=paper, section=section, claim=claim, measured=measured, control=control,
            estimate=float(row[column]) - shift, low=float(row[f"{column}_low"]) - shift,
            high=float(row[f"{column}_high"]) - shift, n=int(row["trials"]), predicted=predicted, margin=margin))

    # -- does the loss tell the phase? (measurement 1) -------------------------------------------
    for lr, cells in (phase.groupby("lr", sort=True) if len(phase) else ()):
        best = cells.loc[cells["agreement"].idxmax()]
        add(f"m1.phase.loss_tells_phase.lr{_fmt(float(lr))}", "LCAM", "3.4, eq. 12",
            "Comparing the loss with its running mean tells which side of its swing the quick group Θn is on.",
            f"Agreement of LCAM's phase with Θn's own loss phase, minus 0.5, on the spring at lr {_fmt(float(lr))} "
            f"in the most favourable of {len(cells)} cells (mass ratio {_fmt(float(best['mass_ratio']))}, "
            f"noise {_fmt(float(best['noise']))}),",
            "chance (0.5)", best, "agreement", +1, AGREEMENT_MARGIN, shift=0.5)

    # -- traction (measurement 2) -----------------------------------------------------------------
    tc = traction_config
    spring = (f"after {tc.steps} steps on the spring (mass ratio {_fmt(tc.mass_ratio)}, coupling {_fmt(tc.coupling)}, "
              f"noise {_fmt(tc.noise)}, lr {_fmt(tc.lr)})")
    shuffled = "its phase-shuffled control (same momentum values and proportions, choice independent of the loss)"
    matched = "its mean-matched control (fixed momentum at LCAM's realised mean)"
    if len(traction):
        for side, a in (("below", float(traction["asymmetry"].min())), ("above", float(traction["asymmetry"].max()))):
            if (side == "below") != (a < 0) or a == 0:
                continue
            below, above = tc.pair(a)
            name = f"LCAM ({_fmt(below)}, {_fmt(above)})"
            vs_shuffled = _row_of(traction, asymmetry=a, setting="LCAM - shuffled")
            vs_matched = _row_of(traction, asymmetry=a, setting="LCAM - matched")
            towards = "sparse (heavy) group Θs" if side == "below" else "non-sparse (light) group Θn"
            add(f"m2.traction.lean.{side}", "LCAM", "3.4",
                f"More momentum in the {side}-mean phase moves the weights towards the {towards}.",
                f"Lean (Θs progress − Θn progress) of {name} {spring},", shuffled,
                vs_shuffled, "lean", +1 if side == "below" else -1, PROGRESS_MARGIN)
            add(f"m2.traction.com_drift.{side}", "LCAM", "3.4",
                "The centre of mass drifts with the orientation of the asymmetry: "
                + ("ahead with (0.95, 0.9)." if side == "below" else "behind with (0.9, 0.95)."),
                f"Centre-of-mass progress of {name} {spring},", matched,
                vs_matched, "com", +1 if side == "below" else -1, PROGRESS_MARGIN)
            if side == "above":
                add("m2.traction.quick_group.lcam_reading", "LCAM", "3.4",
                    "More momentum in the above-mean phase accelerates the quick group Θn: LCAM (0.9, 0.95).",
                    f"Θn progress of {name} {spring},", shuffled, vs_shuffled, "theta_n", +1, PROGRESS_MARGIN)
            else:
                add("m2.traction.quick_group.lcam_v1_reading", "LCAM-v1", "3.2, 4",
                    "More momentum in the horizontal (below-mean) phase accelerates the quick group W_Q: "
                    "LCAM (0.95, 0.9).",
                    f"Θn progress of {name} {spring},", shuffled, vs_shuffled, "theta_n", +1, PROGRESS_MARGIN)

    # -- sparsity (measurement 3) -----------------------------------------------------------------
    sc = sparsity_config
    if len(sparsity):
        paired = sparsity[sparsity["kind"] == "paired"]
        ends = sorted({float(sparsity["sparsity"].min()), float(sparsity["sparsity"].max())})
        datasets = [(ends[0], "non-sparse")] + ([(ends[-1], "sparse")] if len(ends) > 1 else [])
        names = {"lcam-above": "LCAM (0.9, 0.95)", "lcam-below": "LCAM (0.95, 0.9)"}

        def on(s: float, who: str) -> str:
            return (f"Log10 excess loss at step {sc.budget} on the product chain at sparsity {_fmt(s)}, {who} at "
                    f"its best rate (chosen on a separate tuning seed),")

        for s, dataset in datasets:
            favoured, other = ("lcam-above", "lcam-below") if dataset == "non-sparse" else ("lcam-below", "lcam-above")
            phase_name = "non-sparse (above)" if favoured == "lcam-above" else "sparse (below)"
            cifar = "CIFAR-10" if dataset == "non-sparse" else "CIFAR-100"
            contrast = _row_of(paired, sparsity=s, setting=f"{favoured} - {other}")
            if contrast is None:  # the table holds "lcam-below - lcam-above": turn it round
                contrast = _negated(_row_of(paired, sparsity=s, setting=f"{other} - {favoured}"), "log10_loss")
            add(f"m3.sparsity.orientation.{dataset}", "LCAM", f"4 ({cifar})",
                f"On {dataset} data, accelerating the {phase_name} phase, {names[favoured]}, trains faster than "
                f"the opposite orientation.",
                on(s, names[favoured]), f"{names[other]} at its own best rate", contrast, "log10_loss", -1,
                LOG10_MARGIN)
            add(f"m3.sparsity.loss_control.{dataset}", "LCAM", "3.4, 4",
                f"On {dataset} data the loss-controlled phase choice of {names[favoured]} speeds up training.",
                on(s, names[favoured]), shuffled + " at the same rate",
                _row_of(paired, sparsity=s, setting=f"{favoured} - {favoured}:shuffled"), "log10_loss", -1,
                LOG10_MARGIN)
            add(f"m3.sparsity.asymmetry.{dataset}", "LCAM", "4",
                f"On {dataset} data the asymmetric momentum of {names[favoured]} beats symmetric momentum.",
                on(s, names[favoured]), matched.replace("realised mean", "realised mean in this cell")
                + " at the same rate",
                _row_of(paired, sparsity=s, setting=f"{favoured} - {favoured}:matched"), "log10_loss", -1,
                LOG10_MARGIN)
            for key, name in (("adagrad", "AdaGrad"), ("adam", "Adam")):
                add(f"m3.sparsity.adaptive.{key}.{dataset}", "LCAM", "1, 3.3",
                    f"On {dataset} data {name} " + ("falls behind" if dataset == "non-sparse" else "beats")
                    + " SGD with momentum.",
                    on(s, name), "SGD+momentum 0.9 at its own best rate",
                    _row_of(paired, sparsity=s, setting=f"{key} - momentum"), "log10_loss",
                    +1 if dataset == "non-sparse" else -1, LOG10_MARGIN)

    # -- oscillation (measurement 4) --------------------------------------------------------------
    oc = oscillation_config
    if len(oscillation):
        paired_q = oscillation[oscillation["part"] == "paired"]
        names = {"adarem": "AdaRem", "momentum": "SGD with momentum", "sgd": "plain SGD", "adam": "Adam"}
        short = {"adarem": "AdaRem", "momentum": "SGD+momentum 0.9", "sgd": "SGD", "adam": "Adam"}
        for a, b in OSCILLATION_CONTRASTS:
            claim = f"{names[a]} oscillates less than {names[b]} (a smaller oscillation index Q)."
            # At the AdaRem paper's convention SGD and SGD+momentum share one rate, where plain SGD is ten
            # times slower: only AdaRem against SGD+momentum is tested there, the comparison of the AdaRem
            # paper's Figure 2 that its convention was made for.
            for regime, tag in (("convention", "convention"), ("matched progress", "matched_progress")):
                if regime == "convention" and (a, b) != ("adarem", "momentum"):
                    continue
                row = _row_of(paired_q, key=f"{a} - {b}", regime=regime)
                if row is None:
                    continue
                if regime == "convention":
                    measured = (f"Q over {oc.steps} steps on the spring, {short[a]} at lr {_fmt(float(row['lr']))} "
                                f"(the AdaRem paper's convention, its section 4.1.1: one base rate),")
                    control = f"{short[b]} at the same rate"
                else:
                    measured = (f"Q up to the first step at {_fmt(oc.progress_fraction * 100)}% of the initial excess "
                                f"loss (matched progress) on the spring, {short[a]} at lr {_fmt(float(row['lr']))}, "
                                f"over the trials where both reached it,")
                    control = f"{short[b]} at lr {_fmt(float(row['lr_reference']))}"
                add(f"m4.oscillation.{a}_vs_{b}.{tag}", "AdaRem", "3.2.2", claim, measured, control, row, "Q", -1,
                    Q_MARGIN)
    return rows
