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
(same numbers) and to measure its speed-up (``lcamlab bench toys``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.toys.base import ToySystem

__all__ = ["OptimizerSpec", "ToyRun", "run", "run_looped", "run_many", "loss_phases", "suite", "OPTIMIZER_KINDS",
           "SUITE_KEYS"]

OPTIMIZER_KINDS = ("sgd", "momentum", "lcam", "adam", "adagrad", "rmsprop", "adai", "adarem")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer as data: what to build, with which settings, and its colour key.

    Args:
        kind: one of :data:`OPTIMIZER_KINDS`: ``"sgd"`` (no momentum),
            ``"momentum"`` (SGD with momentum ``momentum``), ``"lcam"`` (LCAM with
            ``momentum=(below, above)``), ``"adam"``, ``"adagrad"``, ``"rmsprop"``,
            ``"adai"`` (:class:`lcamlab.optim.adai.Adai`), ``"adarem"``
            (:class:`lcamlab.optim.adarem.AdaRem`).
        lr: learning rate (> 0).
        momentum: the momentum of ``"momentum"``, the pair ``(below, above)`` of
            ``"lcam"``; ignored otherwise.
        options: extra keyword arguments of the optimizer as ``((name, value), ...)``.
        key: the :mod:`lcamlab.style` colour key; derived from ``kind`` if omitted
            (LCAM: ``"lcam-above"`` when above > below, ``"lcam-below"`` when below > above).
    """

    kind: str
    lr: float
    momentum: float | tuple[float, float] = 0.0
    options: tuple[tuple[str, Any], ...] = ()
    key: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in OPTIMIZER_KINDS:
            raise ValueError(f"Invalid optimizer kind: {self.kind!r} (choose one of {', '.join(OPTIMIZER_KINDS)})")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"Invalid learning rate: {self.lr!r} (must be a number > 0)")
        if self.kind == "lcam":
            pair = self.momentum
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"Invalid LCAM momentum: {pair!r} (expected a pair (below, above), e.g. (0.9, 0.95))")
            for beta in pair:
                if not 0.0 <= float(beta) < 1.0:
                    raise ValueError(f"Invalid LCAM momentum: {pair!r} (each value must lie in [0, 1))")
            object.__setattr__(self, "momentum", (float(pair[0]), float(pair[1])))
        elif self.kind == "momentum":
            if isinstance(self.momentum, (tuple, list)) or not 0.0 <= float(self.momentum) < 1.0:
                raise ValueError(f"Invalid momentum: {self.momentum!r} (a number in [0, 1))")
            object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "options", tuple(sorted(tuple(o) for o in self.options)))

    # -- convenient constructors ----------------------------------------------------------------

    @classmethod
    def sgd(cls, lr: float) -> "OptimizerSpec":
        """Plain SGD."""
        return cls("sgd", lr)

    @classmethod
    def heavy_ball(cls, lr: float, momentum: float = 0.9) -> "OptimizerSpec":
        """SGD with fixed momentum (the paper's "Fixed 0.9")."""
        return cls("momentum", lr, momentum)

    @classmethod
    def lcam(cls, lr: float, below: float, above: float) -> "OptimizerSpec":
        """LCAM with ``momentum=(below, above)``."""
        return cls("lcam", lr, (below, above))

    @classmethod
    def adam(cls, lr: float) -> "OptimizerSpec":
        return cls("adam", lr)

    @classmethod
    def adagrad(cls, lr: float) -> "OptimizerSpec":
        return cls("adagrad", lr)

    @classmethod
    def rmsprop(cls, lr: float) -> "OptimizerSpec":
        return cls("rmsprop", lr)

    # -- description ----------------------------------------------------------------------------

    @property
    def style_key(self) -> str:
        """The :mod:`lcamlab.style` key for colours and labels."""
        if self.key is not None:
            return self.key
        if self.kind == "lcam":
            below, above = self.momentum  # type: ignore[misc]
            return "lcam-above" if above > below else "lcam-below" if below > above else "lcam"
        return self.kind

    @property
    def label(self) -> str:
        """A short legend label, e.g. ``"LCAM (0.9, 0.95)"`` or ``"SGD+momentum 0.9"``."""
        from lcamlab import style

        if self.kind == "lcam":
            below, above = self.momentum  # type: ignore[misc]
            return f"LCAM ({below:g}, {above:g})"
        if self.kind == "momentum":
            return f"{style.optimizer_label('momentum')} {self.momentum:g}"
        return style.optimizer_label(self.kind)

    def to_config(self) -> dict[str, Any]:
        """JSON-able description (part of every cache key)."""
        momentum = list(self.momentum) if isinstance(self.momentum, tuple) else self.momentum
        return {"kind": self.kind, "lr": self.lr, "momentum": momentum, "options": dict(self.options),
                "key": self.style_key}

    def build(self, params: Sequence[Tensor], *, trial_axis: bool = True) -> torch.optim.Optimizer:
        """The optimizer over ``params`` (torch's are elementwise and need no trial axis flag)."""
        options = dict(self.options)
        if self.kind == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.0, foreach=False, **options)
        if self.kind == "momentum":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, foreach=False, **options)
        if self.kind == "lcam":
            from lcamlab.optim import LCAM

            return LCAM(params, lr=self.lr, momentum=self.momentum, trial_axis=trial_axis, **options)
        if self.kind == "adam":
            return torch.optim.Adam(params, lr=self.lr, foreach=False, **options)
        if self.kind == "adagrad":
            return torch.optim.Adagrad(params, lr=self.lr, foreach=False, **options)
        if self.kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, foreach=False, **options)
        if self.kind == "adai":
            from lcamlab.optim.adai import Adai

            return Adai(params, lr=self.lr, trial_axis=trial_axis, **options)
        from lcamlab.optim.adarem import AdaRem

        return AdaRem(params, lr=self.lr, trial_axis=trial_axis, **options)


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
        recorded decisions (the runner never reads ``momentum_now()`` in the loop).
        """
        if self.lcam_below is None:
            return None
        below, above = self.spec.momentum  # type: ignore[misc]
        initial = dict(self.spec.options).get("initial_momentum", min(below, above))
        chosen = torch.where(self.lcam_below, torch.tensor(below, dtype=torch.float64),
                             torch.tensor(above, dtype=torch.float64))
        first = torch.full((1, chosen.shape[1]), float(initial), dtype=torch.float64)
        return torch.cat([first, chosen[:-1]])

    def before_steps(self) -> Tensor:
        """:math:`\\theta_{t-1}` for every step t (where :math:`L_t` was evaluated), ``(steps, T, dim)``.

        Needs a run recorded with ``record_every=1``.
        """
        if self.trajectory.shape[0] != self.steps + 1:
            raise ValueError("before_steps needs a run recorded with record_every=1")
        return self.trajectory[:-1]


SUITE_KEYS = ("sgd", "momentum", "lcam-above", "lcam-below", "adam", "adagrad", "rmsprop", "adai", "adarem")


def suite(
    keys: Sequence[str] = SUITE_KEYS,
    *,
    lr: float,
    sgd_lr: float,
    adam_lr: float,
    adagrad_lr: float,
    rmsprop_lr: float,
    adai_lr: float,
    adarem_lr: float,
    momentum: float = 0.9,
    lcam_above: tuple[float, float] = (0.9, 0.95),
    lcam_below: tuple[float, float] = (0.95, 0.9),
) -> list[OptimizerSpec]:
    """The notebook's optimizers by :mod:`lcamlab.style` key, each with its learning rate.

    ``lr`` is the rate of SGD+momentum and LCAM; the others have their own (momentum
    multiplies the effective step by 1/(1 - beta), so plain SGD, Adai and AdaRem want
    about ten times more; Adam, RMSprop and AdaGrad set per-coordinate step sizes).
    """
    makers = {
        "sgd": lambda: OptimizerSpec.sgd(sgd_lr),
        "momentum": lambda: OptimizerSpec.heavy_ball(lr, momentum),
        "lcam-above": lambda: OptimizerSpec.lcam(lr, *lcam_above),
        "lcam-below": lambda: OptimizerSpec.lcam(lr, *lcam_below),
        "adam": lambda: OptimizerSpec.adam(adam_lr),
        "adagrad": lambda: OptimizerSpec.adagrad(adagrad_lr),
        "rmsprop": lambda: OptimizerSpec.rmsprop(rmsprop_lr),
        "adai": lambda: OptimizerSpec("adai", adai_lr),
        "adarem": lambda: OptimizerSpec("adarem", adarem_lr),
    }
    unknown = [k for k in keys if k not in makers]
    if unknown:
        raise ValueError(f"Invalid optimizer keys {unknown} (choose from {', '.join(makers)})")
    return [makers[k]() for k in keys]


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

    Returns:
        a :class:`ToyRun`.
    """
    _check_run_args(steps, steps_per_epoch, record_every, gradient)
    generator = torch.Generator().manual_seed(int(seed))
    theta = toy.initial_point().to(toy.dtype)
    use_autograd = gradient == "autograd"
    if use_autograd:
        theta.requires_grad_(True)
    optimizer = spec.build([theta], trial_axis=True)
    is_lcam = spec.kind == "lcam"
    new_epoch = getattr(optimizer, "new_epoch", None)

    points = _record_points(steps, record_every)
    trajectory = torch.empty((len(points), toy.trials, toy.dim), dtype=toy.dtype)
    trajectory[0] = theta.detach()
    loss_record = torch.empty((steps, toy.trials), dtype=toy.dtype)
    lcam_below = torch.empty((steps, toy.trials), dtype=torch.bool) if is_lcam else None
    next_point = 1
    point_list = points.tolist()

    started = time.perf_counter()
    for t in range(steps):
        if t > 0 and t % steps_per_epoch == 0 and new_epoch is not None:
            new_epoch()
        batch = toy.sample_batch(generator)
        if use_autograd:
            optimizer.zero_grad(set_to_none=True)
            loss = toy.minibatch_loss(theta, batch)
            loss.sum().backward()  # trials are independent: each gets its own gradient
            loss = loss.detach()
        else:
            loss, grad = toy.loss_and_grad(theta, batch)
            theta.grad = grad
        loss_record[t] = loss
        if is_lcam:
            optimizer.step(loss=loss)
            lcam_below[t] = optimizer.last_below  # type: ignore[index, attr-defined]
        else:
            optimizer.step()
        if t + 1 == point_list[next_point]:
            trajectory[next_point] = theta.detach()
            next_point += 1
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

    Every step draws the mini-batches of all trials exactly as :func:`run` does
    (same generator, same order) and hands trial ``i`` its slice, so the numbers
    must agree with :func:`run` (bit for bit in float64). Slow on purpose: this is
    what the batched runner replaces.
    """
    _check_run_args(steps, steps_per_epoch, record_every, "analytic")
    generator = torch.Generator().manual_seed(int(seed))
    toys = [toy.subset(slice(i, i + 1)) for i in range(toy.trials)]
    thetas = [single.initial_point().to(toy.dtype) for single in toys]
    optimizers = [spec.build([theta], trial_axis=True) for theta in thetas]
    is_lcam = spec.kind == "lcam"

    points = _record_points(steps, record_every)
    trajectory = torch.empty((len(points), toy.trials, toy.dim), dtype=toy.dtype)
    trajectory[0] = torch.cat(thetas)
    loss_record = torch.empty((steps, toy.trials), dtype=toy.dtype)
    lcam_below = torch.empty((steps, toy.trials), dtype=torch.bool) if is_lcam else None
    next_point = 1
    point_list = points.tolist()

    started = time.perf_counter()
    for t in range(steps):
        batch = toy.sample_batch(generator)
        for i, (single, theta, optimizer) in enumerate(zip(toys, thetas, optimizers)):
            if t > 0 and t % steps_per_epoch == 0 and hasattr(optimizer, "new_epoch"):
                optimizer.new_epoch()
            piece = toy.slice_batch(batch, slice(i, i + 1))
            loss, grad = single.loss_and_grad(theta, piece)
            theta.grad = grad
            loss_record[t, i] = loss[0]
            if is_lcam:
                optimizer.step(loss=loss)
                lcam_below[t, i] = optimizer.last_below[0]  # type: ignore[index, attr-defined]
            else:
                optimizer.step()
        if t + 1 == point_list[next_point]:
            trajectory[next_point] = torch.cat(thetas)
            next_point += 1
    wall = time.perf_counter() - started

    return ToyRun(
        spec=spec, toy=toy, steps=steps, steps_per_epoch=steps_per_epoch, seed=int(seed),
        trajectory=trajectory, recorded_steps=points, loss=loss_record,
        below=loss_phases(loss_record, steps_per_epoch), lcam_below=lcam_below,
        wall_seconds=wall,
    )
