r"""The LCAM paper's claims about weight coupling and traction, as measurements with error bars.

Four measurements, each over many independent trials (dim 0 of the toys) with
95% confidence intervals, each cached in ``data/`` as CSV + JSON sidecar
(:func:`lcamlab.provenance.save_table` with :func:`lcamlab.provenance.run_metadata`)
under a name that contains a hash of its full configuration, so the same
configuration is a cache hit and a different one never overwrites another's result:

1. :func:`measure_phase_agreement`, *does the loss tell the phase?* (000 eq. 12,
   section 3.4): how often LCAM's below/above decision matches the true phase of
   the light weight :math:`\Theta_n`, over a grid of mass ratios and noise levels
   of :class:`~lcamlab.toys.SpringPair`.
2. :func:`measure_traction`: drift of the spring's centre of mass after a fixed
   budget versus the momentum asymmetry :math:`\beta_\text{above} - \beta_\text{below}`
   (000 section 3.4: the drift should flip sign with the orientation).
3. :func:`measure_sparsity_grid`: dataset sparsity x optimizer on
   :class:`~lcamlab.toys.ProductChain`: loss at a fixed budget and iterations to a
   target (000 sections 3.3-3.4 and 4: non-sparse data should favour accelerating
   the non-sparse phase, sparse data the sparse phase).
4. :func:`measure_oscillation`: the oscillation index :math:`Q` of 003 section 3.2.2.

Confidence intervals: Student-t intervals for means over trials
(:func:`mean_ci`), order-statistic intervals for medians (:func:`median_ci`,
used for iterations-to-target, where some trials may never reach the target),
and paired differences wherever two settings share their trials' mini-batches
(same seed: common random numbers).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.metrics import iterations_to_target, loss_phases, oscillation_index
from lcamlab.experiments.registry import OptimizerSpec, preset
from lcamlab.experiments.stats import mean_ci, median_ci, paired_ci
from lcamlab.toys.base import grid_cells
from lcamlab.toys.product_chain import ProductChain
from lcamlab.toys.runner import ToyRun, run
from lcamlab.toys.spring import SpringPair

__all__ = [
    "cached_table",
    "phase_agreement",
    "centre_of_mass_drift",
    "PhaseAgreementConfig",
    "TractionConfig",
    "SparsityConfig",
    "measure_phase_agreement",
    "measure_traction",
    "measure_sparsity_grid",
    "measure_oscillation",
    "oscillation_config",
    "sparsity_optimizers",
    "summarise_claims",
]

# Part of every cache key: bump it when the definition of a measurement changes, so that
# tables computed by the old definition are never read back as results of the new one.
MEASUREMENT_VERSION = 1


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
    000 eq. (12) claims :math:`\Delta\text{Loss} \approx k\,\Delta L_n`, so the
    loss's phase should equal this true phase.

    Returns per-trial ``(T,)`` tensors:

    * ``agreement``: fraction of steps where the loss's phase (LCAM's decision,
      or the same rule for other optimizers) equals the true phase;
    * ``sign_agreement``: fraction of steps where "loss above its mean" coincides
      with :math:`\Theta_n` left of its valley bottom (:math:`\theta_n < c_n`), the
      literal left/right reading of 000 section 3.4;
    * ``eq12_r2``: :math:`R^2` of the step-to-step loss changes regressed on those
      of :math:`L_n` (000 eq. 12), i.e. their squared correlation;
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
    out quickly, and a large one, the "oscillatory state" of 000 section 3.2).
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
) -> tuple[Any, dict[str, Any], Path, bool]:
    """Measurement 1 (000 eq. 12): agreement of LCAM's decision with the true phase, per grid cell.

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
# Measurement 2: traction
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TractionConfig:
    r"""Settings of :func:`measure_traction`.

    LCAM runs with ``(below, above) = (mean_momentum - a/2, mean_momentum + a/2)``
    for every asymmetry :math:`a = \beta_\text{above} - \beta_\text{below}` in
    ``asymmetries``; :math:`a = \pm 0.05` around 0.925 are the paper's
    (0.9, 0.95) and (0.95, 0.9) groups. The baseline is fixed momentum
    ``mean_momentum`` (a = 0) on the same mini-batches.
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
    trials: int = 100
    steps: int = 400
    steps_per_epoch: int = 40
    average_last: int = 40
    lr: float = 0.02
    seed: int = 0


def measure_traction(
    config: TractionConfig = TractionConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> tuple[Any, dict[str, Any], Path, bool]:
    """Measurement 2 (000 section 3.4): centre-of-mass drift versus momentum asymmetry.

    One row per asymmetry with the paired drift (mean and 95% CI over trials) of
    the centre of mass (``com``), of each weight's progress and of the ``lean``
    (see :func:`centre_of_mass_drift`), all relative to the symmetric baseline.
    """
    import pandas as pd

    for a in config.asymmetries:
        lo, hi = config.mean_momentum - a / 2, config.mean_momentum + a / 2
        if not (0 <= lo < 1 and 0 <= hi < 1):
            raise ValueError(f"Invalid asymmetry {a} around mean momentum {config.mean_momentum}: "
                             f"momentum pair ({lo}, {hi}) leaves [0, 1)")

    def compute() -> Any:
        toy = SpringPair(config.trials, stiffness=config.stiffness, mass_ratio=config.mass_ratio,
                         coupling=config.coupling, noise=config.noise, start=config.start,
                         optimum=config.optimum, batch_size=config.batch_size)
        kwargs = dict(steps=config.steps, steps_per_epoch=config.steps_per_epoch, seed=config.seed)
        baseline = run(toy, OptimizerSpec("sgd", config.lr, {"momentum": config.mean_momentum}), **kwargs).check_finite()
        rows = []
        for a in config.asymmetries:
            below, above = round(config.mean_momentum - a / 2, 10), round(config.mean_momentum + a / 2, 10)
            result = run(toy, OptimizerSpec("lcam", config.lr, {"momentum": (below, above)}), **kwargs).check_finite()
            drift = centre_of_mass_drift(result, baseline, average_last=config.average_last)
            row: dict[str, Any] = {"asymmetry": a, "below": below, "above": above}
            for key, values in drift.items():
                mean, low, high, n = mean_ci(values)
                row.update({f"{key}_drift": mean, f"{key}_drift_low": low, f"{key}_drift_high": high})
            row["below_fraction"] = float(result.below.to(torch.float64).mean())
            row["trials"] = n
            rows.append(row)
        return pd.DataFrame(rows)

    return cached_table("traction_drift", dataclasses.asdict(config), compute, data_dir,
                        seed=config.seed, refresh=refresh)


# --------------------------------------------------------------------------------------
# Measurement 3: sparse versus non-sparse data
# --------------------------------------------------------------------------------------


def sparsity_optimizers(lr: float, adagrad_lr: float, adam_lr: float) -> tuple[OptimizerSpec, ...]:
    """The five optimizers of measurement 3: SGD 0.9, LCAM (0.9, 0.95), LCAM (0.95, 0.9), AdaGrad, Adam."""
    return (preset("momentum", lr), preset("lcam-above", lr), preset("lcam-below", lr),
            preset("adagrad", adagrad_lr), preset("adam", adam_lr))


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    """Settings of :func:`measure_sparsity_grid`.

    All sparsity levels run as one batch of ``len(sparsities) * trials_per_cell``
    trials of a :class:`ProductChain`, once per optimizer, on the same mini-batches.
    The loss is read at step ``budget`` (averaged over the ``average_last`` steps
    before it, mid-way through training rather than at the noise floor); the
    target is an excess population loss of ``target_fraction`` times the initial
    one, searched over all ``steps``.
    """

    def __post_init__(self) -> None:
        if not 1 <= self.budget <= self.steps:
            raise ValueError(f"Invalid budget: {self.budget} (must lie in [1, steps={self.steps}])")
        if not 0 < self.target_fraction < 1:
            raise ValueError(f"Invalid target_fraction: {self.target_fraction} (must lie in (0, 1))")

    sparsities: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95)
    n_frequent: int = 2
    n_rare: int = 2
    depth: int = 2
    init: float = 0.3
    teacher: str = "balanced"
    label_noise: float = 0.1
    batch_size: int = 8
    trials_per_cell: int = 100
    steps: int = 200
    budget: int = 60
    steps_per_epoch: int = 20
    average_last: int = 10
    record_every: int = 2
    lr: float = 0.005
    adagrad_lr: float = 0.05
    adam_lr: float = 0.01
    target_fraction: float = 0.02
    seed: int = 0


def measure_sparsity_grid(
    config: SparsityConfig = SparsityConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> tuple[Any, dict[str, Any], Path, bool]:
    r"""Measurement 3: sparsity x optimizer on :class:`ProductChain`.

    One row per (sparsity, optimizer) with

    * ``log10_loss``: :math:`\log_{10}` of the excess population loss at the
      budget (averaged over the ``average_last`` steps before it), mean and 95% CI;
    * ``iters``: iterations to the target, median and 95% CI (``inf`` where
      more than half the trials never reach it), and ``reached`` (fraction);
    * ``vs_above``: paired difference of ``log10_loss`` to LCAM (0.9, 0.95) on
      the same trials (negative: better than LCAM accelerating the non-sparse side);
    * ``iters_vs_above``: paired difference of iterations to the target to LCAM
      (0.9, 0.95), over the trials where both reached it (negative: faster).
    """
    import pandas as pd

    specs = sparsity_optimizers(config.lr, config.adagrad_lr, config.adam_lr)

    def compute() -> Any:
        cells, knobs, cell_index = grid_cells(config.trials_per_cell, sparsity=config.sparsities)
        toy = ProductChain(len(cell_index), n_frequent=config.n_frequent, n_rare=config.n_rare,
                           sparsity=knobs["sparsity"], depth=config.depth, init=config.init, teacher=config.teacher,
                           label_noise=config.label_noise, batch_size=config.batch_size)
        initial_excess = toy.excess_loss(toy.initial_point().to(torch.float64))
        target = config.target_fraction * initial_excess
        per_spec: dict[str, dict[str, Tensor]] = {}
        for spec in specs:
            result = run(toy, spec, steps=config.steps, steps_per_epoch=config.steps_per_epoch,
                         seed=config.seed, record_every=config.record_every).check_finite()
            excess = result.excess_loss().to(torch.float64).clamp_min(1e-300)
            window = (result.recorded_steps > config.budget - config.average_last) & (result.recorded_steps <= config.budget)
            per_spec[spec.label] = {
                "log10_loss": torch.log10(excess[window].mean(dim=0)),
                "iters": iterations_to_target(excess, result.recorded_steps, target),
            }
        reference = per_spec[specs[1].label]["log10_loss"]
        reference_iters = per_spec[specs[1].label]["iters"]
        rows = []
        for c, cell in enumerate(cells):
            mask = cell_index == c
            for spec in specs:
                values = per_spec[spec.label]
                row: dict[str, Any] = {"sparsity": cell["sparsity"], "optimizer": spec.label,
                                       "key": spec.style_key}
                mean, low, high, n = mean_ci(values["log10_loss"][mask])
                row.update({"log10_loss": mean, "log10_loss_low": low, "log10_loss_high": high})
                med, lo, hi, _ = median_ci(values["iters"][mask])
                row.update({"iters": med, "iters_low": lo, "iters_high": hi,
                            "reached": float(torch.isfinite(values["iters"][mask]).to(torch.float64).mean())})
                mean, low, high, _ = paired_ci(values["log10_loss"][mask], reference[mask])
                row.update({"vs_above": mean, "vs_above_low": low, "vs_above_high": high})
                # inf - inf is NaN and inf - finite is inf: mean_ci keeps only pairs that both reached.
                mean, low, high, _ = paired_ci(values["iters"][mask], reference_iters[mask])
                row.update({"iters_vs_above": mean, "iters_vs_above_low": low, "iters_vs_above_high": high,
                            "trials": n})
                rows.append(row)
        return pd.DataFrame(rows)

    cfg = dataclasses.asdict(config)
    cfg["optimizers"] = [s.to_config() for s in specs]
    return cached_table("traction_sparsity", cfg, compute, data_dir, seed=config.seed, refresh=refresh)


# --------------------------------------------------------------------------------------
# Measurement 4: oscillation index
# --------------------------------------------------------------------------------------


def oscillation_config(runs: dict[str, ToyRun]) -> dict[str, Any]:
    """What the runs of :func:`measure_oscillation` depend on (its cache key), read from the runs."""
    if not runs:
        raise ValueError("measure_oscillation needs at least one run")
    first = next(iter(runs.values()))
    for label, r in runs.items():
        if (r.toy.config(), r.steps, r.steps_per_epoch, r.seed, r.trajectory.shape[0]) != \
                (first.toy.config(), first.steps, first.steps_per_epoch, first.seed, first.trajectory.shape[0]):
            raise ValueError(f"measure_oscillation needs runs of one toy, length and seed ({label} differs)")
    return {"toy": first.toy.config(), "optimizers": [r.spec.to_config() for r in runs.values()],
            "steps": first.steps, "steps_per_epoch": first.steps_per_epoch, "seed": first.seed}


def measure_oscillation(
    runs: dict[str, ToyRun],
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> tuple[Any, dict[str, Any], Path, bool]:
    """Measurement 4 (003 section 3.2.2): oscillation index Q per optimizer, mean and 95% CI.

    Args:
        runs: label -> run (all of one toy and seed, recorded at every step), e.g.
            from :func:`lcamlab.toys.run_many`; the cache key is read from them
            (:func:`oscillation_config`).
        data_dir: the ``data/`` folder.
        refresh: recompute and replace the cached table.
    """
    import pandas as pd

    def compute() -> Any:
        rows = []
        for label, r in runs.items():
            r.check_finite()
            q = oscillation_index(r.trajectory, trial_axis=True)
            mean, low, high, n = mean_ci(q)
            per_coordinate = (torch.diff(r.trajectory.to(torch.float64), dim=0).abs().sum(dim=0)
                              / (r.trajectory[-1] - r.trajectory[0]).to(torch.float64).abs())
            row = {"optimizer": label, "key": r.spec.style_key, "Q": mean, "Q_low": low, "Q_high": high,
                   "trials": n}
            for i, name in enumerate(r.toy.coordinate_names):
                row[f"q_{name}"] = float(per_coordinate[:, i].median())
            rows.append(row)
        return pd.DataFrame(rows)

    config = oscillation_config(runs)
    return cached_table("traction_oscillation_index", config, compute, data_dir, seed=config["seed"],
                        refresh=refresh)


# --------------------------------------------------------------------------------------
# The claims, checked against the measured tables
# --------------------------------------------------------------------------------------


def _interval(row: Any, key: str, fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(row[key])} [{fmt.format(row[f'{key}_low'])}, {fmt.format(row[f'{key}_high'])}]"


def _excludes(row: Any, key: str, value: float = 0.0) -> int:
    """+1 if the CI of ``key`` lies above ``value``, -1 if below, 0 if it contains it."""
    if row[f"{key}_low"] > value:
        return 1
    if row[f"{key}_high"] < value:
        return -1
    return 0


def summarise_claims(phase: Any, drift: Any, sparsity: Any, oscillation: Any) -> Any:
    """Each paper claim the notebook tests, what was measured, and the verdict, as a table.

    Verdicts are computed from the confidence intervals of the measured tables
    (never typed in): a claim *holds* where the 95% interval excludes the null
    value in the predicted direction, is *contradicted* where it excludes it in
    the other direction, and is *not resolved* otherwise.

    Args:
        phase: :func:`measure_phase_agreement`'s table.
        drift: :func:`measure_traction`'s table.
        sparsity: :func:`measure_sparsity_grid`'s table.
        oscillation: :func:`measure_oscillation`'s table.

    Returns:
        a DataFrame with columns ``claim``, ``source``, ``measured``, ``verdict``.
    """
    import pandas as pd

    rows = []

    # 1. the loss tells the phase
    best = phase.loc[phase["agreement"].idxmax()]
    worst = phase.loc[phase["agreement"].idxmin()]
    above_chance = int((phase["agreement_low"] > 0.5).sum())
    reliable = int((phase["agreement_low"] > 0.9).sum())
    verdict = ("holds" if reliable == len(phase) else
               f"weak: above chance in {above_chance}/{len(phase)} cells, reliable (> 0.9) in {reliable}"
               if above_chance else "does not hold")
    rows.append({
        "claim": "loss below/above its epoch mean tells the light weight's phase",
        "source": "000 section 3.4, eq. 12",
        "measured": (f"agreement {worst['agreement']:.3f} to {best['agreement']:.3f} over the grid; best "
                     f"{_interval(best, 'agreement')} at lr={best['lr']:g}, mass ratio {best['mass_ratio']:g}, "
                     f"noise {best['noise']:g}"),
        "verdict": verdict,
    })
    # 2. eq. 12 itself
    best = phase.loc[phase["eq12_r2"].idxmax()]
    strong = phase[phase["eq12_r2_low"] > 0.5]
    where = ", ".join(f"(lr={r['lr']:g}, r={r['mass_ratio']:g}, σ={r['noise']:g})" for _, r in strong.iterrows())
    rows.append({
        "claim": "loss changes are light-weight changes, ΔLoss ≈ k ΔL_n",
        "source": "000 eq. 12",
        "measured": f"R² best {_interval(best, 'eq12_r2')}; R² > 0.5 in {len(strong)}/{len(phase)} cells"
                    + (f": {where}" if len(strong) else ""),
        "verdict": ("holds everywhere" if len(strong) == len(phase) else
                    f"holds only in {len(strong)}/{len(phase)} cells" if len(strong) else "does not hold"),
    })
    # 3. the literal left/right reading
    informative = phase[(phase["sign_agreement_low"] > 0.5) | (phase["sign_agreement_high"] < 0.5)]
    rows.append({
        "claim": "above the mean = light weight on the left of its centre",
        "source": "000 section 3.4",
        "measured": (f"sign agreement {phase['sign_agreement'].min():.3f} to {phase['sign_agreement'].max():.3f}; "
                     f"differs from 0.5 in {len(informative)}/{len(phase)} cells"),
        "verdict": ("no information (a symmetric valley: the loss cannot tell left from right)"
                    if len(informative) == 0 else
                    f"informative only in {len(informative)}/{len(phase)} cells (the transient's approach side)"),
    })
    # 4. traction flips with the orientation
    low = drift.loc[drift["asymmetry"].idxmin()]
    high = drift.loc[drift["asymmetry"].idxmax()]
    s_low, s_high = _excludes(low, "com_drift"), _excludes(high, "com_drift")
    lean_low, lean_high = _excludes(low, "lean_drift"), _excludes(high, "lean_drift")
    flips = s_low != 0 and s_high != 0 and s_low != s_high
    as_paper = lean_low > 0 and lean_high < 0
    rows.append({
        "claim": "centre-of-mass drift flips sign with the momentum orientation",
        "source": "000 section 3.4",
        "measured": (f"drift {_interval(low, 'com_drift')} at asymmetry {low['asymmetry']:+g}, "
                     f"{_interval(high, 'com_drift')} at {high['asymmetry']:+g}; lean {low['lean_drift']:+.3f} / "
                     f"{high['lean_drift']:+.3f}"),
        "verdict": ("holds" if flips else "does not hold (no sign flip)")
                   + ("; accelerating below leans to the sparse side, above to the non-sparse side, as predicted"
                      if as_paper else "; the lean is not in the predicted directions"),
    })
    # 5-6. sparse vs non-sparse data
    below_label = next(o for o in sparsity["optimizer"].unique() if o.startswith("LCAM (0.95"))
    rows_below = sparsity[sparsity["optimizer"] == below_label].sort_values("sparsity")
    for claim, row, predicted, source in (
        ("non-sparse data favour accelerating the non-sparse (above) phase", rows_below.iloc[0], +1,
         "000 section 4 (CIFAR-10)"),
        ("sparse data favour accelerating the sparse (below) phase", rows_below.iloc[-1], -1,
         "000 section 4 (CIFAR-100)"),
    ):
        loss_sign = _excludes(row, "vs_above")
        iters_sign = _excludes(row, "iters_vs_above") if pd.notna(row["iters_vs_above_low"]) else 0
        def word(sign: int) -> str:
            return "holds" if sign == predicted else "contradicted" if sign == -predicted else "not resolved"
        rows.append({
            "claim": claim,
            "source": source,
            "measured": (f"sparsity {row['sparsity']:g}: {below_label} minus (0.9, 0.95): log10 loss at budget "
                         f"{_interval(row, 'vs_above')}, iterations to target "
                         f"{_interval(row, 'iters_vs_above', '{:+.1f}')}"),
            "verdict": f"loss at budget: {word(loss_sign)}; iterations to target: {word(iters_sign)}",
        })
    crossing = rows_below[rows_below["vs_above_high"] < 0]
    if len(crossing):
        rows.append({
            "claim": "where the preferred orientation changes",
            "source": "this notebook",
            "measured": f"accelerating the sparse side wins (loss at budget) from sparsity {crossing['sparsity'].min():g}",
            "verdict": "measured",
        })
    # 7. adaptive methods only good on sparse data
    adaptive = sparsity[sparsity["key"].isin(["adagrad", "adam"])]
    sgd = sparsity[sparsity["key"] == "momentum"].set_index("sparsity")["log10_loss"]
    if len(adaptive) and len(sgd):
        gaps = adaptive.assign(gap=adaptive["log10_loss"] - adaptive["sparsity"].map(sgd))
        first, last = gaps["sparsity"].min(), gaps["sparsity"].max()
        gap_first = gaps[gaps["sparsity"] == first]["gap"].mean()
        gap_last = gaps[gaps["sparsity"] == last]["gap"].mean()
        rows.append({
            "claim": "adaptive methods (AdaGrad, Adam) do well only on sparse data",
            "source": "000 section 3.3",
            "measured": (f"adaptive minus SGD+momentum, log10 loss at budget: {gap_first:+.2f} at sparsity {first:g}, "
                         f"{gap_last:+.2f} at {last:g} (untuned learning rates)"),
            "verdict": (("partly: their gap to SGD+momentum shrinks on sparse data"
                         + (", but they never beat it" if gap_last > 0 else " and they beat it"))
                        if gap_last < gap_first else "contradicted (relatively worse on sparse data)"),
        })
    # 8. oscillation index
    ordered = oscillation.sort_values("Q")
    text = ", ".join(f"{r['optimizer']} {r['Q']:.2f}" for _, r in ordered.iterrows())
    adarem = oscillation[oscillation["key"] == "adarem"]
    others = oscillation[oscillation["key"].isin(["momentum", "adam"])]
    if len(adarem) and len(others):
        lowest = bool(adarem["Q_high"].iloc[0] < others["Q_low"].min())
        verdict = "holds" if lowest else "contradicted"
        claim = "AdaRem oscillates less than SGD+momentum and Adam"
    else:
        verdict, claim = "measured", "oscillation index per optimizer"
    rows.append({"claim": claim, "source": "003 section 3.2.2", "measured": f"Q (low to high): {text}",
                 "verdict": verdict})
    return pd.DataFrame(rows)
