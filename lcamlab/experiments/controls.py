r"""LCAM's controls, declared once for every experiment (toys, escape, training).

A claim that LCAM does X is supported only against controls that share
everything with LCAM but the mechanism (the same learning rate, the same
mini-batches):

=====================  ==========================================================================
control                what it isolates
=====================  ==========================================================================
``shuffled``           LCAM's two momentum values in LCAM's proportions, the below/above choice
                       decoupled from the loss. LCAM minus this control is the effect of *loss
                       control*; the rest is the momentum distribution.
``matched``            fixed momentum at LCAM's realised mean momentum. LCAM minus this is the
                       effect of *asymmetry*, beyond the higher (or lower) mean momentum.
``bound-below`` /      fixed momentum at each value of the pair: the range any mixture of the
``bound-above``        two can reach.
=====================  ==========================================================================

Two forms of the shuffled control:

* :func:`shuffled_schedule` permutes LCAM's *realised* momentum sequence within
  each epoch, independently per trial: exactly LCAM's momentum histogram per
  trial and epoch, in an order the loss never saw (used where LCAM's sequence
  is recorded first, as in the toys: a two-pass experiment);
* :func:`bernoulli_schedule` draws each step's choice independently with the
  realised below-fraction (one pass; used where the LCAM run's sequence is not
  kept, e.g. long escape runs or training, which log the fraction per epoch).

The mean-matched schedule (:func:`matched_schedule`) is LCAM's realised mean, per
group of trials when a grid of settings lies along the trial axis.

Every control is an :class:`~lcamlab.experiments.registry.OptimizerSpec`, keyed
``"<lcam key>:<control>"`` (:func:`control_specs`): the :data:`SCHEDULED_CONTROLS`
``shuffled`` and ``matched`` of kind ``"scheduled"`` (:class:`lcamlab.optim.ScheduledMomentum`,
the schedule passed at build time: ``spec.build(params, momentum=schedule)``), the
bounds of kind ``"sgd"``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lcamlab.experiments.registry import OptimizerSpec

__all__ = ["CONTROLS", "SCHEDULED_CONTROLS", "control_key", "realised_momentum", "shuffled_schedule",
           "matched_schedule", "bernoulli_schedule", "control_specs"]

CONTROLS: dict[str, str] = {
    "shuffled": "LCAM's momentum values in its proportions, choice decoupled from the loss",
    "matched": "fixed momentum at LCAM's realised mean",
    "bound-below": "fixed momentum at LCAM's below value",
    "bound-above": "fixed momentum at LCAM's above value",
}

#: The controls made from the LCAM run's momentum (a :class:`lcamlab.optim.ScheduledMomentum`
#: schedule); the bounds are plain SGD at one of LCAM's values. Experiments that pair a control
#: with its LCAM run (the toys' :func:`~lcamlab.toys.runner.run_controls`, training) run these.
SCHEDULED_CONTROLS: tuple[str, ...] = ("shuffled", "matched")


def control_key(lcam_key: str, control: str) -> str:
    """``"lcam-above:shuffled"``: the key (and style key) of ``control`` of the LCAM setting ``lcam_key``
    (:func:`lcamlab.experiments.registry.split_key` splits it again)."""
    if control not in CONTROLS:
        raise ValueError(f"Invalid control: {control!r} (choose from {', '.join(CONTROLS)})")
    return f"{lcam_key}:{control}"


def realised_momentum(below: Tensor, pair: tuple[float, float], initial: float) -> Tensor:
    r"""The momentum LCAM used at every step, from its decisions.

    Step 1 uses ``initial``; step :math:`t > 1` uses ``below`` if the loss of step
    :math:`t-1` was below its running mean, else ``above`` (LCAM's rule).

    Args:
        below: ``(steps, T)`` LCAM's decisions after each step (``last_below``).
        pair: ``(below, above)`` momentum values.
        initial: the first step's momentum.

    Returns:
        ``(steps, T)`` float64.
    """
    chosen = torch.where(below, torch.tensor(float(pair[0]), dtype=torch.float64),
                         torch.tensor(float(pair[1]), dtype=torch.float64))
    first = torch.full((1,) + tuple(below.shape[1:]), float(initial), dtype=torch.float64)
    return torch.cat([first, chosen[:-1]])


def shuffled_schedule(momentum: Tensor, steps_per_epoch: int, seed: int) -> Tensor:
    r"""LCAM's realised momentum sequence permuted within each epoch, independently per trial.

    Each trial's momenta of epoch :math:`e` (steps :math:`[e E, (e+1) E)`) are put in
    a uniformly random order drawn from ``seed`` alone, so the control has exactly
    LCAM's momentum histogram per trial and epoch, and its order is independent of
    the loss.

    Args:
        momentum: ``(steps, T)`` (or ``(steps,)``) the momentum LCAM used at every step.
        steps_per_epoch: the epoch length :math:`E`.
        seed: seed of the permutations.
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"Invalid steps_per_epoch: {steps_per_epoch!r} (must be an int >= 1)")
    squeeze = momentum.dim() == 1
    values = momentum.reshape(momentum.shape[0], -1)
    generator = torch.Generator().manual_seed(int(seed))
    out = torch.empty_like(values)
    for start in range(0, values.shape[0], steps_per_epoch):  # a loop over epochs, not trials
        chunk = values[start:start + steps_per_epoch]
        order = torch.argsort(torch.rand(chunk.shape, generator=generator, dtype=torch.float64), dim=0)
        out[start:start + steps_per_epoch] = torch.gather(chunk, 0, order)
    return out.reshape(momentum.shape[0]) if squeeze else out


def matched_schedule(momentum: Tensor, groups: Tensor | None = None) -> Tensor:
    r"""Fixed momentum at LCAM's realised mean: the mean over steps and trials, per group of trials.

    Args:
        momentum: ``(steps, T)`` the momentum LCAM used at every step.
        groups: ``(T,)`` integer group of every trial (e.g. the cell of a grid laid
            along the trial axis); the mean is taken within each group. Default: one group.

    Returns:
        ``(steps, T)``: every step of trial ``i`` uses its group's realised mean.
    """
    values = momentum.reshape(momentum.shape[0], -1).to(torch.float64)
    per_trial = values.mean(dim=0)
    if groups is None:
        means = per_trial.mean().expand_as(per_trial)
    else:
        groups = torch.as_tensor(groups, dtype=torch.long)
        if groups.shape != per_trial.shape:
            raise ValueError(f"Invalid groups shape {tuple(groups.shape)} (expected ({per_trial.shape[0]},))")
        count = torch.zeros(int(groups.max()) + 1, dtype=torch.float64).index_add_(0, groups, torch.ones_like(per_trial))
        total = torch.zeros_like(count).index_add_(0, groups, per_trial)
        means = (total / count)[groups]
    return means.expand(values.shape[0], -1).clone().reshape(momentum.shape)


def bernoulli_schedule(pair: tuple[float, float], below_fraction: float | Tensor, seed: int,
                       *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                       ) -> Callable[[int], Tensor]:
    r"""A schedule that draws each step's momentum independently: ``below`` with probability ``p``.

    .. math:: \beta_t = \begin{cases}\beta_\text{below} & u_t < p\\ \beta_\text{above} & \text{else}\end{cases},
              \qquad u_t \sim U(0, 1) \text{ i.i.d.}

    ``p`` is LCAM's realised below-fraction (a number, or ``(T,)`` per trial). The
    draw of step ``t`` is a pure function of ``(seed, t)`` (its own generator), so a
    resumed run continues the same sequence.

    Returns:
        ``schedule(t) -> Tensor`` (0-dim, or ``(T,)`` for a per-trial ``p``), for
        :class:`lcamlab.optim.ScheduledMomentum`.
    """
    p = torch.as_tensor(below_fraction, dtype=torch.float64)
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(f"Invalid below_fraction: {below_fraction!r} (must lie in [0, 1])")
    p = p.to(device=device, dtype=dtype)
    below = torch.tensor(float(pair[0]), dtype=dtype, device=device)
    above = torch.tensor(float(pair[1]), dtype=dtype, device=device)
    gen_device = torch.device(device)

    def schedule(t: int) -> Tensor:
        generator = torch.Generator(device=gen_device).manual_seed(int(seed) * 1_000_003 + int(t))
        u = torch.rand(p.shape, generator=generator, device=gen_device, dtype=dtype)
        return torch.where(u < p, below, above)
    return schedule


def control_specs(lcam: OptimizerSpec, controls: tuple[str, ...] = tuple(CONTROLS)) -> dict[str, OptimizerSpec]:
    """The controls of the LCAM setting ``lcam``, keyed by :func:`control_key`.

    Args:
        lcam: an LCAM spec (kind ``"lcam"``); the controls share its learning rate
            and weight decay.
        controls: which ones (default all of :data:`CONTROLS`).

    ``shuffled`` and ``matched`` build a :class:`lcamlab.optim.ScheduledMomentum`
    whose schedule is passed at build time (``spec.build(params, momentum=schedule)``),
    made from the LCAM run by :func:`shuffled_schedule` (or :func:`bernoulli_schedule`)
    and :func:`matched_schedule`.
    """
    if lcam.kind != "lcam":
        raise ValueError(f"Invalid LCAM setting for controls: kind {lcam.kind!r} (expected 'lcam')")
    below, above = lcam.momentum  # type: ignore[misc]
    weight_decay = lcam.kwargs.get("weight_decay", 0.0)
    extra = {"weight_decay": weight_decay} if weight_decay else {}
    keys = [control_key(lcam.style_key, c) for c in controls]  # every control checked before any is built

    def made(control: str, key: str) -> OptimizerSpec:
        if control in SCHEDULED_CONTROLS:
            return OptimizerSpec("scheduled", lcam.lr, extra, key)
        bound = below if control == "bound-below" else above
        return OptimizerSpec("sgd", lcam.lr, {"momentum": bound, **extra}, key)
    return {key: made(control, key) for control, key in zip(controls, keys)}
