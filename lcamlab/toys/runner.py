r"""One runner for every optimizer on every toy: trajectories, losses and LCAM's phases.

:func:`run` advances all trials of a toy with one optimizer for a number of
steps. Each step is a fixed handful of tensor operations on ``(trials, dim)``
tensors, whatever the number of trials:

.. math::

    L_t, g_t = \text{toy.loss\_and\_grad}(\theta_{t-1}, \text{batch}_t), \qquad
    \theta_t = \text{optimizer.step}(\theta_{t-1}, g_t;\ L_t)

It records the trajectory :math:`\theta_0, \dots, \theta_T`, every mini-batch
loss :math:`L_t` (evaluated at :math:`\theta_{t-1}`), the loss's phase relative
to its running epoch mean (below / above, for every optimizer, the quantity
LCAM switches on) and, for LCAM, the optimizer's own decision.

The data stream depends only on the seed, never on the parameters, so runs of
different optimizers with the same seed see the *same* mini-batches (common
random numbers): differences between optimizers are then measured paired,
trial by trial, with much smaller confidence intervals.

:func:`run_looped` does the same with one toy and one optimizer per trial in a
Python loop, on the same mini-batches: it exists to check the batched runner
(same numbers) and to measure its speed-up (``lcamlab bench toys``). Both are
the experiment layer's runner (:mod:`lcamlab.experiments.trials`); optimizers
are :class:`lcamlab.experiments.registry.OptimizerSpec` s.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments.controls import SCHEDULED_CONTROLS, realised_momentum
from lcamlab.experiments.metrics import loss_phases
from lcamlab.experiments.registry import OptimizerSpec, split_key, suite
from lcamlab.experiments.trials import looped, run_trials

from lcamlab.toys.base import ToySystem

__all__ = ["OptimizerSpec", "ToyRun", "run", "run_looped", "run_many", "run_controls", "loss_phases", "suite"]

@dataclasses.dataclass
class ToyRun:
    """What one :func:`run` recorded.

    Attributes:
        spec: the optimizer.
        toy: the toy system (its knobs; the trajectory's meaning).
        steps, steps_per_epoch, seed: the run's settings.
        trajectory: :math:`\\theta` at the recorded steps, ``(R, T, dim)``.
        recorded_steps: the step index of each recorded point, ``(R,)`` (0 = start).
        loss: mini-batch loss :math:`L_t` at :math:`\\theta_{t-1}`, ``(steps, T)``.
        below: ``L_t`` below the running mean of its epoch (LCAM's rule), ``(steps, T)``.
        lcam_below: LCAM's own decision after each step (``None`` for other optimizers).
        wall_seconds: time spent in the step loop.
    """

    spec: OptimizerSpec
    toy: ToySystem
    steps: int
    steps_per_epoch: int
    seed: int
    trajectory: Tensor
    recorded_steps: Tensor
    loss: Tensor
    below: Tensor
    lcam_below: Tensor | None
    wall_seconds: float

    def diverged(self) -> Tensor:
        """``(T,)`` bool: trials whose parameters or losses stopped being finite."""
        finite = torch.isfinite(self.trajectory).all(dim=0).all(dim=-1) & torch.isfinite(self.loss).all(dim=0)
        return ~finite

    def check_finite(self) -> "ToyRun":
        """Raise ``ValueError`` naming the optimizer if any trial diverged; returns the run otherwise."""
        bad = int(self.diverged().sum())
        if bad:
            raise ValueError(
                f"{self.spec.label} (lr={self.spec.lr:g}) diverged in {bad} of {self.toy.trials} trials "
                f"on {type(self.toy).__name__}: lower its learning rate"
            )
        return self

    @property
    def final(self) -> Tensor:
        """:math:`\\theta_T`, ``(T, dim)``."""
        return self.trajectory[-1]

    def population_loss(self) -> Tensor:
        """Exact population loss at the recorded points, ``(R, T)``."""
        return self.toy.population_loss(self.trajectory)

    def excess_loss(self) -> Tensor:
        """Population loss above the optimum at the recorded points, ``(R, T)``."""
        return self.population_loss() - self.toy.optimal_loss()

    def momentum_used(self) -> Tensor | None:
        """The momentum LCAM used in every step, ``(steps, T)`` float64 (``None`` for other optimizers).

        Step 1 uses the initial momentum (``min(below, above)`` unless the spec sets
        ``initial_momentum``); step t > 1 uses ``below`` if the loss of step t-1 was
        below its running mean, else ``above``: LCAM's rule, reconstructed from the
        recorded decisions (:func:`~lcamlab.experiments.controls.realised_momentum`; the runner
        never reads ``momentum_now()`` in the loop).
        """
        if self.lcam_below is None:
            return None
        pair = self.spec.momentum
        initial = dict(self.spec.options).get("initial_momentum", min(pair))  # type: ignore[arg-type]
        return realised_momentum(self.lcam_below, pair, initial)  # type: ignore[arg-type]

    def before_steps(self) -> Tensor:
        """:math:`\\theta_{t-1}` for every step t (where :math:`L_t` was evaluated), ``(steps, T, dim)``.

        Needs a run recorded with ``record_every=1``.
        """
        if self.trajectory.shape[0] != self.steps + 1:
            raise ValueError("before_steps needs a run recorded with record_every=1")
        return self.trajectory[:-1]


def _check_run_args(steps: int, steps_per_epoch: int, record_every: int, gradient: str) -> None:
    for name, value in (("steps", steps), ("steps_per_epoch", steps_per_epoch), ("record_every", record_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid {name}: {value!r} (must be an int >= 1)")
    if gradient not in ("analytic", "autograd"):
        raise ValueError(f"Invalid gradient: {gradient!r} (choose 'analytic' or 'autograd')")


def _record_points(steps: int, record_every: int) -> Tensor:
    points = list(range(0, steps + 1, record_every))
    if points[-1] != steps:
        points.append(steps)
    return torch.tensor(points, dtype=torch.long)


def run(
    toy: ToySystem,
    spec: OptimizerSpec,
    *,
    steps: int,
    steps_per_epoch: int = 50,
    seed: int = 0,
    record_every: int = 1,
    gradient: str = "analytic",
    build_options: dict[str, Any] | None = None,
) -> ToyRun:
    """Run every trial of ``toy`` with one optimizer, all trials in one tensor.

    ``opt.new_epoch()`` (LCAM, AdaRem) is called at every epoch boundary
    (before steps ``steps_per_epoch``, ``2*steps_per_epoch``, ...).

    Args:
        toy: the toy system (its ``trials`` trials run together).
        spec: the optimizer.
        steps: number of optimizer steps.
        steps_per_epoch: epoch length (LCAM's running mean restarts every epoch).
        seed: seed of the data stream (a :class:`torch.Generator`).
        record_every: record :math:`\\theta` every this many steps (and at the end).
        gradient: ``"analytic"`` (the toy's formulas, fast) or ``"autograd"``.
        build_options: options given to the optimizer at build time (e.g. a control's
            momentum schedule, :func:`run_controls`).

    Returns:
        a :class:`ToyRun`.
    """
    _check_run_args(steps, steps_per_epoch, record_every, gradient)
    theta = toy.initial_point().to(toy.dtype)
    optimizer = spec.build([theta], trial_axis=True, **(build_options or {}))
    records_decisions = spec.kind == "lcam"

    points = _record_points(steps, record_every)
    point_list = points.tolist()
    trajectory = torch.empty((len(points), toy.trials, toy.dim), dtype=toy.dtype)
    trajectory[0] = theta.detach()
    loss_record = torch.empty((steps, toy.trials), dtype=toy.dtype)
    lcam_below = torch.empty((steps, toy.trials), dtype=torch.bool) if records_decisions else None
    next_point = [1]

    def record(t: int, loss: Tensor | None) -> None:
        loss_record[t] = loss
        if lcam_below is not None:
            lcam_below[t] = optimizer.last_below  # type: ignore[attr-defined]
        if t + 1 == point_list[next_point[0]]:
            trajectory[next_point[0]] = theta.detach()
            next_point[0] += 1

    started = time.perf_counter()
    run_trials(toy, optimizer, theta, steps=steps, generator=torch.Generator().manual_seed(int(seed)),
               epoch_length=steps_per_epoch, gradient=gradient, need_loss=True, on_step=record)
    wall = time.perf_counter() - started

    return ToyRun(
        spec=spec, toy=toy, steps=steps, steps_per_epoch=steps_per_epoch, seed=int(seed),
        trajectory=trajectory, recorded_steps=points, loss=loss_record,
        below=loss_phases(loss_record, steps_per_epoch), lcam_below=lcam_below,
        wall_seconds=wall,
    )


def run_many(
    toy: ToySystem,
    specs: Iterable[OptimizerSpec],
    **kwargs: Any,
) -> dict[str, ToyRun]:
    """:func:`run` for several optimizers on the same toy and seed (same mini-batches).

    Returns a dict keyed by each spec's :attr:`OptimizerSpec.label` (unique labels required).
    """
    runs: dict[str, ToyRun] = {}
    for spec in specs:
        if spec.label in runs:
            raise ValueError(f"Duplicate optimizer {spec.label!r} in run_many (labels must be unique)")
        runs[spec.label] = run(toy, spec, **kwargs)
    return runs


def run_controls(
    toy: ToySystem,
    lcam: OptimizerSpec,
    *,
    steps: int,
    steps_per_epoch: int = 50,
    seed: int = 0,
    record_every: int = 1,
    controls: Sequence[str] = SCHEDULED_CONTROLS,
    groups: Tensor | None = None,
) -> dict[str, ToyRun]:
    """LCAM and its controls on the same mini-batches (:mod:`lcamlab.experiments.controls`).

    LCAM runs first; its realised momentum sequence then makes the ``shuffled``
    control (permuted within each epoch, per trial, with a permutation seed derived
    from ``seed``) and the ``matched`` one (its mean, per group of trials). Every
    run uses the data stream of ``seed`` (common random numbers), so differences
    are paired trial by trial.

    Args:
        toy, steps, steps_per_epoch, seed, record_every: as :func:`run`.
        lcam: the LCAM setting.
        controls: which controls (``shuffled``, ``matched``, ``bound-below``, ``bound-above``).
        groups: ``(T,)`` group of each trial for the matched mean (e.g. a grid cell);
            default one group.

    Returns:
        ``{lcam.style_key: LCAM's run, "<key>:<control>": control run, ...}``.
    """
    from lcamlab.experiments.controls import control_specs, matched_schedule, shuffled_schedule

    kwargs = dict(steps=steps, steps_per_epoch=steps_per_epoch, seed=seed, record_every=record_every)
    base = run(toy, lcam, **kwargs)
    used = base.momentum_used()
    schedules = {
        "shuffled": lambda: shuffled_schedule(used, steps_per_epoch, seed=_PERMUTATION_SEED + int(seed)),
        "matched": lambda: matched_schedule(used, groups),
    }
    runs = {lcam.style_key: base}
    for key, spec in control_specs(lcam, tuple(controls)).items():
        control = split_key(key)[1]
        options = {"momentum": schedules[control]().to(toy.dtype)} if control in schedules else None
        runs[key] = run(toy, spec, build_options=options, **kwargs)
    return runs


# Offsets the shuffled control's permutation seed from the data seed (they must not share a stream).
_PERMUTATION_SEED = 7_919


def run_looped(
    toy: ToySystem,
    spec: OptimizerSpec,
    *,
    steps: int,
    steps_per_epoch: int = 50,
    seed: int = 0,
    record_every: int = 1,
) -> ToyRun:
    """The reference implementation: one toy and one optimizer per trial, in a Python loop.

    :func:`run` runs once per trial on a one-trial view of the toy that reads that
    trial's part of the same mini-batches (:func:`lcamlab.experiments.trials.looped`),
    so the numbers must agree with :func:`run` (bit for bit in float64 where no
    reduction runs over the trial's coordinates). Slow on purpose: this is what the
    batched runner replaces.
    """
    _check_run_args(steps, steps_per_epoch, record_every, "analytic")
    started = time.perf_counter()
    pieces = looped(toy, lambda view, _: run(view, spec, steps=steps, steps_per_epoch=steps_per_epoch, seed=seed,
                                              record_every=record_every))
    wall = time.perf_counter() - started
    loss = torch.cat([p.loss for p in pieces], dim=1)
    return ToyRun(
        spec=spec, toy=toy, steps=steps, steps_per_epoch=steps_per_epoch, seed=int(seed),
        trajectory=torch.cat([p.trajectory for p in pieces], dim=1), recorded_steps=pieces[0].recorded_steps,
        loss=loss, below=loss_phases(loss, steps_per_epoch),
        lcam_below=None if pieces[0].lcam_below is None else torch.cat([p.lcam_below for p in pieces], dim=1),
        wall_seconds=wall,
    )
