r"""ScheduledMomentum: SGD whose momentum is prescribed step by step (LCAM's controls).

LCAM (Asymmetric Momentum: A Rethinking of Gradient Descent, Gongyue Zhang and
Honghai Liu, 2023, Algorithm 1) chooses its momentum from the loss. To tell the
effect of that *choice* from the effect of the momentum values it ends up
using, an experiment runs controls that share everything with LCAM except the
loss control:

* the **phase-shuffled** control uses LCAM's two momentum values in LCAM's
  proportions, with the below/above sequence decoupled from the loss (LCAM's
  realised sequence permuted within each epoch, or drawn independently at the
  realised below-fraction);
* the **mean-matched** control uses fixed momentum equal to LCAM's realised mean.

Both are SGD with a momentum given by a schedule, which this optimizer runs:

.. math::

    b_t = \beta_t\, b_{t-1} + (g_t + \lambda\theta_t), \quad b_1 = g_1 + \lambda\theta_1, \qquad
    \theta_{t+1} = \theta_t - \eta\, b_t ,

with :math:`\beta_t` read from the schedule at the optimizer's own step count
(0 for the first step). The arithmetic is LCAM's (:func:`lcamlab.optim.lcam`),
so replaying LCAM's own momentum sequence reproduces LCAM exactly. How the
schedules of the controls are made lives in :mod:`lcamlab.experiments.controls`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from lcamlab.optim.base import TrialOptimizer, check_bool, check_number, host_number, is_number
from lcamlab.optim.lcam import lcam

__all__ = ["ScheduledMomentum"]

Schedule = float | Tensor | Callable[[int], "float | Tensor"]


@torch.compiler.disable
def _call_schedule(schedule: Callable[[int], Any], step: int | Tensor) -> Any:
    """A callable schedule's value at ``step``, always run as Python (a graph break under ``torch.compile``)."""
    return schedule(int(step))


class ScheduledMomentum(TrialOptimizer):
    r"""SGD with momentum :math:`\beta_t` prescribed per step (and, with ``trial_axis``, per trial).

    Args:
        params: iterable of parameters or param-group dicts.
        lr: learning rate :math:`\eta`.
        momentum: the schedule: a number in [0, 1) (fixed momentum); a tensor of
            shape ``(steps,)``, or ``(steps, T)`` with ``trial_axis``, whose row ``t``
            is the momentum of step ``t`` (counted from 0); or a callable ``t ->``
            number or ``(T,)`` tensor (computed on the fly, e.g. an independent draw
            per step). Values must lie in [0, 1); a tensor schedule is checked once,
            a callable's values are not (that would synchronise every step).
        weight_decay: coupled L2 coefficient :math:`\lambda`.
        nesterov: Nesterov momentum.
        trial_axis: dim 0 of every parameter is an independent trial.
        maximize: ascend instead of descend.
        foreach: the multi-tensor path (default: on CUDA).

    Raises:
        IndexError: a step beyond the end of a tensor schedule (names the step).

    Example: replaying LCAM's own momentum sequence reproduces LCAM.

        >>> import torch
        >>> from lcamlab.optim import LCAM, ScheduledMomentum
        >>> a = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> b = torch.nn.Parameter(a.detach().clone())
        >>> lcam_opt = LCAM([a], lr=0.1, momentum=(0.9, 0.95))
        >>> used = []
        >>> for _ in range(5):
        ...     used.append(float(lcam_opt.momentum_now()))
        ...     lcam_opt.zero_grad(); loss = (a ** 2).sum(); loss.backward(); lcam_opt.step(loss=loss)
        >>> replay = ScheduledMomentum([b], lr=0.1, momentum=torch.tensor(used))
        >>> for _ in range(5):
        ...     replay.zero_grad(); (b ** 2).sum().backward(); replay.step()
        >>> torch.equal(a, b)
        True
    """

    _state_key = "scheduled_momentum"
    _group_fallbacks = {"foreach": None, "maximize": False}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        momentum: Schedule = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        trial_axis: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        self._schedule = self._check_schedule(momentum)
        # A CPU int64 counter changed in place: a compiled step drops assignments to
        # optimizer attributes and would bake a Python count into its graph.
        self._steps = torch.zeros((), dtype=torch.int64)
        defaults = dict(lr=lr, weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults, trial_axis=trial_axis)

    @staticmethod
    def _check_schedule(momentum: Schedule) -> Schedule:
        if is_number(momentum):
            return check_number("momentum", momentum, 0.0, 1.0, high_open=True)
        if isinstance(momentum, Tensor):
            if momentum.dim() not in (1, 2) or momentum.shape[0] == 0:
                raise ValueError(f"Invalid momentum schedule shape {tuple(momentum.shape)} "
                                 f"(expected (steps,) or (steps, trials))")
            if not bool(((momentum >= 0) & (momentum < 1)).all()):
                raise ValueError("Invalid momentum schedule: every value must lie in [0, 1)")
            return momentum.detach()
        if callable(momentum):
            return momentum
        raise ValueError(f"Invalid momentum: {momentum!r} (a number in [0, 1), a (steps[, trials]) tensor "
                         f"or a callable step -> momentum)")

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        group["nesterov"] = check_bool("nesterov", group["nesterov"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    @property
    def steps_taken(self) -> int:
        """How many steps this optimizer has taken (the schedule's next row)."""
        return int(self._steps)

    def momentum_at(self, step: int | Tensor, like: Tensor) -> float | Tensor:
        """The momentum of step ``step`` on ``like``'s device and dtype (float32 for half types).

        ``step`` is an int, or under ``torch.compile`` the optimizer's 0-dim step
        counter; a compiled step indexes a tensor schedule with it (the indexing
        checks the bounds) and calls a callable schedule outside the graph (a
        graph break) with the int.
        """
        schedule = self._schedule
        if is_number(schedule):
            return float(schedule)
        if isinstance(schedule, Tensor) and isinstance(step, Tensor):
            value: Any = schedule.index_select(0, step.reshape(1)).squeeze(0)
        elif isinstance(schedule, Tensor):
            if step >= schedule.shape[0]:
                raise IndexError(f"ScheduledMomentum: step {step} is beyond the momentum schedule's "
                                 f"{schedule.shape[0]} steps (give a longer schedule)")
            value = schedule[step]
        else:
            value = _call_schedule(schedule, step)
            if is_number(value):
                return float(value)
        dtype = like.dtype if like.dtype not in (torch.float16, torch.bfloat16) else torch.float32
        value = torch.as_tensor(value).to(device=like.device, dtype=dtype, non_blocking=True)
        if not self.trial_axis and value.dim() != 0:
            raise ValueError(f"Invalid momentum schedule row of shape {tuple(value.shape)} at step {step}: "
                             f"without trial_axis each step needs one number")
        return value

    def _step(self, loss: Tensor | None) -> None:
        for group in self.param_groups:
            params = list(self._params_with_grad(group))
            if not params:
                continue
            bufs = []
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["momentum_buffer"] = None
                bufs.append(state["momentum_buffer"])
            beta = self.momentum_at(host_number(self._steps), params[0])
            lcam(params, [p.grad for p in params], bufs, lr=group["lr"], momentum=beta,
                 weight_decay=group["weight_decay"], nesterov=group["nesterov"], maximize=group["maximize"],
                 trial_axis=self.trial_axis, foreach=group["foreach"])
            for p, buf in zip(params, bufs):
                self.state[p]["momentum_buffer"] = buf
        self._steps.add_(1)

    def __getstate__(self) -> dict[str, Any]:
        # a pickled optimizer keeps its schedule (a callable must itself be picklable)
        return {**super().__getstate__(), "_schedule": self._schedule}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's load_state_dict also comes through here, with only state and groups:
        # then the schedule and the position in it stay as they are
        state = dict(state)
        if "_schedule" in state:
            self._schedule = state.pop("_schedule")
        if not hasattr(self, "_steps"):
            self._steps = torch.zeros((), dtype=torch.int64)
        super().__setstate__(state)

    def _extra_state(self) -> dict[str, Any]:
        # the schedule itself is the caller's (a callable cannot be saved); the position in it is state
        return {"steps": int(self._steps)}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._steps = torch.tensor(int(extra["steps"]), dtype=torch.int64)
