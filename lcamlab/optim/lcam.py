r"""LCAM: SGD with loss-controlled asymmetric momentum (000 Algorithm 1; 001 section 3).

LCAM is plain SGD with momentum (PyTorch convention) whose momentum coefficient
switches, after every iteration, between two values according to whether the
iteration's mini-batch loss lies below or above the running mean of the losses
seen so far in the epoch:

.. math::

    \bar L_t = \frac{1}{t}\sum_{s=1}^{t} L_s \qquad\text{(reset at every epoch)}

    \beta_{t+1} = \begin{cases} \beta_\text{below} & L_t < \bar L_t \\
                                \beta_\text{above} & L_t \ge \bar L_t \end{cases}

    b_t = \beta_t\, b_{t-1} + (g_t + \lambda\theta_t), \quad b_1 = g_1 + \lambda\theta_1,
    \qquad \theta_{t+1} = \theta_t - \eta\, b_t .

The switch decides the momentum of the *next* step; the first step of a run
uses ``initial_momentum``. The first iteration of every epoch always selects
``beta_above`` (its loss equals its own mean).

Vocabulary. lcamlab says *below* and *above* (the loss relative to its running
mean). The papers name the same two phases differently:

=========================  ======================================  ===========================
lcamlab                    000 (Asymmetric Momentum, ICLR 2024)    001 (earlier version)
=========================  ======================================  ===========================
below: ``L_t < mean``      right side, sparse (Theta_s) phase      horizontal phase (``<=``)
above: ``L_t >= mean``     left side, non-sparse (Theta_n) phase   vertical phase (``>``)
=========================  ======================================  ===========================

So ``momentum=(0.9, 0.95)`` (more momentum above the mean) is 000's "0.9-0.95"
group that *accelerates the non-sparse side* (its CIFAR-10 choice), and
``momentum=(0.95, 0.9)`` or ``(0.93, 0.9)`` accelerates the sparse side (its
CIFAR-100 choice). 001 breaks ties (``L_t = mean``) the other way; ties have
probability zero except at the first step of an epoch, where lcamlab follows
000 and the authors' code.

Beyond the paper, ``mean="ema"`` replaces the epoch mean by an exponential
moving average :math:`\bar L_t = d\,\bar L_{t-1} + (1-d) L_t` (``ema_decay`` =
d, :math:`\bar L_1 = L_1`) for problems without epochs.

No host synchronisation: the running mean, the decision and the momentum are
device tensors, so a step never reads the loss back to the host (the authors'
loop calls ``loss.item()`` every iteration, which stalls a GPU).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.optim.base import (
    TrialOptimizer, foreach_descend_, check_bool, check_number, check_pair, check_trial_shapes,
    resolve_foreach, trial_view,
)

__all__ = ["LCAM", "lcam", "running_mean_update", "ema_update", "choose_momentum"]


# --------------------------------------------------------------------------------------
# Functional core: small pure pieces, composed by the LCAM class.
# --------------------------------------------------------------------------------------


def lcam(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float | Tensor,
    momentum: float | Tensor,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    trial_axis: bool = False,
    foreach: bool | None = None,
) -> None:
    r"""One SGD-with-momentum update with a (possibly tensor-valued) momentum, in place.

    .. math::

        g \leftarrow \pm g + \lambda\theta, \quad
        b \leftarrow \beta b + g \;(b = g \text{ on the first step}), \quad
        \theta \leftarrow \theta - \eta\,(g + \beta b \text{ if Nesterov else } b)

    This is exactly ``torch.optim.SGD``'s arithmetic (no dampening), except that
    ``momentum`` may be a 0-dim device tensor (LCAM's choice, no host sync) or,
    with ``trial_axis=True``, a ``(T,)`` tensor holding one momentum per trial
    (dim 0 of every parameter).

    Args:
        params: parameters to update in place.
        grads: their gradients (not modified).
        momentum_buffers: one buffer per parameter, ``None`` where not yet
            created; created buffers are written back into this list.
        lr: learning rate :math:`\eta`.
        momentum: :math:`\beta`, a float, a 0-dim tensor, or ``(T,)`` with ``trial_axis``.
        weight_decay: coupled L2 coefficient :math:`\lambda`.
        nesterov: Nesterov momentum.
        maximize: ascend instead of descend.
        trial_axis: dim 0 of every parameter is an independent trial.
        foreach: use the ``torch._foreach_*`` multi-tensor path (default: on CUDA).
    """
    if trial_axis:
        check_trial_shapes(params)
    if resolve_foreach(foreach, params):
        _lcam_foreach(params, grads, momentum_buffers, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                      trial_axis=trial_axis)
    else:
        _lcam_for_loop(params, grads, momentum_buffers, lr=lr, momentum=momentum,
                       weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                       trial_axis=trial_axis)


def _lcam_for_loop(params, grads, momentum_buffers, *, lr, momentum, weight_decay, nesterov,
                   maximize, trial_axis) -> None:
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        beta = trial_view(momentum, param) if trial_axis else momentum
        buf = momentum_buffers[i]
        if buf is None:
            buf = torch.clone(grad).detach()
            momentum_buffers[i] = buf
        else:
            buf.mul_(beta).add_(grad)
        if nesterov:
            grad = grad.add(buf * beta) if isinstance(beta, Tensor) else grad.add(buf, alpha=beta)
        else:
            grad = buf
        param.add_(grad, alpha=-lr)


def _lcam_foreach(params, grads, momentum_buffers, *, lr, momentum, weight_decay, nesterov,
                  maximize, trial_axis) -> None:
    if len(params) == 0:
        return
    grads = list(grads)
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        if maximize:  # already a fresh list: update in place
            torch._foreach_add_(grads, params, alpha=weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if trial_axis and isinstance(momentum, Tensor) and momentum.dim() > 0:
        betas: Any = [trial_view(momentum, p) for p in params]
    else:
        betas = momentum
    # Buffers that exist are updated together; new ones are copies of their gradient.
    existing = [i for i, b in enumerate(momentum_buffers) if b is not None]
    if existing:
        bufs = [momentum_buffers[i] for i in existing]
        torch._foreach_mul_(bufs, [betas[i] for i in existing] if isinstance(betas, list) else betas)
        torch._foreach_add_(bufs, [grads[i] for i in existing])
    for i, buf in enumerate(momentum_buffers):
        if buf is None:
            momentum_buffers[i] = torch.clone(grads[i]).detach()
    bufs = list(momentum_buffers)
    if nesterov:
        grads = torch._foreach_add(grads, torch._foreach_mul(bufs, betas))
    else:
        grads = bufs
    foreach_descend_(params, grads, lr)


def running_mean_update(loss_sum: Tensor, count: int | Tensor, loss: Tensor) -> tuple[Tensor, Tensor]:
    r"""The epoch's running mean including the current loss.

    .. math:: S_t = S_{t-1} + L_t, \qquad \bar L_t = S_t / t

    Args:
        loss_sum: :math:`S_{t-1}` (zeros at the start of an epoch); updated in place.
        count: :math:`t`, the number of losses including the current one (an int or a tensor).
        loss: :math:`L_t`.

    Returns:
        ``(S_t, mean_t)``.
    """
    new_sum = loss_sum.add_(loss)  # in place: the caller owns the accumulator
    return new_sum, new_sum / count


def ema_update(ema: Tensor | None, loss: Tensor, decay: float) -> Tensor:
    r"""Exponential moving average including the current loss: :math:`\bar L_t = d\bar L_{t-1} + (1-d)L_t`, :math:`\bar L_1 = L_1`."""
    if ema is None:
        return loss.clone()
    return ema * decay + loss * (1.0 - decay)


def choose_momentum(
    below: Tensor, beta_below: float | Tensor, beta_above: float | Tensor, dtype: torch.dtype = torch.float64
) -> Tensor:
    r"""LCAM's switch: :math:`\beta = \beta_\text{below}` where ``below`` else :math:`\beta_\text{above}`.

    ``below`` is a bool tensor (0-dim, or ``(T,)`` per trial); the result has its
    shape and device and dtype ``dtype``. The coefficients may be floats or
    0-dim tensors already on the device (the optimizer caches those, so a step
    launches one kernel here and copies nothing from the host).
    """
    if not isinstance(beta_below, Tensor):
        beta_below = torch.full((), beta_below, dtype=dtype, device=below.device)
    if not isinstance(beta_above, Tensor):
        beta_above = torch.full((), beta_above, dtype=dtype, device=below.device)
    return torch.where(below, beta_below, beta_above)


# --------------------------------------------------------------------------------------
# The optimizer.
# --------------------------------------------------------------------------------------

_MEANS = ("epoch", "ema")


class LCAM(TrialOptimizer):
    r"""SGD with loss-controlled asymmetric momentum (000 Algorithm 1).

    .. math::

        \beta_{t+1} = \begin{cases}\beta_\text{below} & L_t < \bar L_t\\
                                   \beta_\text{above} & L_t \ge \bar L_t\end{cases},\qquad
        b_t = \beta_t b_{t-1} + g_t + \lambda\theta_t,\qquad \theta_{t+1} = \theta_t - \eta b_t

    where :math:`\bar L_t` is the running mean of this epoch's mini-batch losses
    including :math:`L_t` (reset by :meth:`new_epoch`), or an EMA with ``mean="ema"``.
    See the module docstring for the below/above vocabulary against both papers.

    Args:
        params: iterable of parameters or param-group dicts.
        lr: learning rate :math:`\eta`.
        momentum: ``(below, above)``: the momentum used after a step whose loss was
            below / at-or-above the running mean. A single number gives plain SGD
            with momentum. Each in [0, 1).
        initial_momentum: momentum of the very first step (no loss seen yet);
            default ``min(below, above)``, which reproduces every published run
            (all start at 0.9, the fixed-0.95 group at 0.95).
        weight_decay: coupled L2 coefficient :math:`\lambda` (added to the gradient).
        nesterov: Nesterov momentum.
        mean: ``"epoch"`` (the paper's running mean, reset by :meth:`new_epoch`)
            or ``"ema"`` (exponential moving average, never reset).
        ema_decay: the EMA's decay :math:`d` in (0, 1) for ``mean="ema"``.
        trial_axis: treat dim 0 of every parameter as independent trials; the
            loss is then a ``(T,)`` tensor and every trial keeps its own running
            mean, decision and momentum.
        maximize: maximise the objective.
        foreach: use the multi-tensor ``torch._foreach_*`` path (default: on CUDA).

    The loss reaches the optimizer through ``step(loss=...)`` (a float, a 0-dim
    tensor, or ``(T,)`` with ``trial_axis``) or as the return value of
    ``step(closure)``; ``LCAM.takes_loss`` is True, so code that drives any
    optimizer passes it with :func:`~lcamlab.optim.optimizer_step`. Non-finite losses are not checked (that would need a
    host sync): a NaN loss makes the rest of the epoch's decisions "above".

    Example:
        >>> import torch
        >>> from lcamlab.optim import LCAM
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = LCAM([w], lr=0.01, momentum=(0.9, 0.95))
        >>> for epoch in range(2):
        ...     opt.new_epoch()
        ...     for _ in range(3):
        ...         opt.zero_grad()
        ...         loss = (w ** 2).sum()
        ...         loss.backward()
        ...         opt.step(loss=loss)
        >>> float(opt.momentum_now())  # the loss fell, so the last one was below the mean
        0.9
    """

    takes_loss = True
    _state_key = "lcam"
    _group_fallbacks = {"foreach": None, "maximize": False}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        momentum: tuple[float, float] | float = (0.9, 0.95),
        initial_momentum: float | None = None,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        mean: str = "epoch",
        ema_decay: float = 0.99,
        trial_axis: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        # mean and ema_decay belong to the optimizer (one loss statistic), not to a group.
        if mean not in _MEANS:
            raise ValueError(f"Invalid mean: {mean!r} (choose 'epoch' or 'ema')")
        self.mean = mean
        self.ema_decay = check_number("ema_decay", ema_decay, 0.0, 1.0, low_open=True)
        # Device constants (beta_below, beta_above) per (value, device, dtype), created
        # once with torch.full so a step never copies a coefficient from the host.
        self._constants: dict[tuple[float, torch.device, torch.dtype], Tensor] = {}
        # The loss statistics: device tensors created before the first step (by
        # _init_group) and from then on changed only in place, so that a compiled
        # step updates them (torch.compile drops a step's assignments to optimizer
        # attributes and bakes Python counters into the graph).
        self._loss_state: dict[str, Tensor] = {}
        defaults = dict(lr=lr, momentum=momentum, initial_momentum=initial_momentum,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults, trial_axis=trial_axis)

    # -- configuration -----------------------------------------------------------------

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a param group's settings (groups may override the defaults)."""
        super()._validate_group(group)
        below, above = check_pair(
            "momentum", group["momentum"],
            "a pair (below, above), e.g. (0.9, 0.95), or one number for symmetric momentum",
            one_number_for_both=True,
        )
        group["momentum"] = (check_number("momentum below value", below, 0.0, 1.0),
                             check_number("momentum above value", above, 0.0, 1.0))
        if group["initial_momentum"] is None:
            group["initial_momentum"] = min(group["momentum"])
        group["initial_momentum"] = check_number("initial_momentum", group["initial_momentum"], 0.0, 1.0)
        group["nesterov"] = check_bool("nesterov", group["nesterov"])
        group["maximize"] = check_bool("maximize", group["maximize"])
        if group["nesterov"] and min(*group["momentum"], group["initial_momentum"]) <= 0.0:
            raise ValueError(
                f"Invalid momentum for nesterov=True: {group['momentum']} with initial "
                f"{group['initial_momentum']} (Nesterov momentum needs every momentum > 0)"
            )

    # -- loss statistics -----------------------------------------------------------------

    def _ensure_loss_state(self, loaded: dict[str, Any] | None = None) -> None:
        r"""Create the loss statistics on the parameters' device, or move them there.

        ======================  ==========  ==================================================
        entry                   shape       meaning
        ======================  ==========  ==================================================
        ``loss_sum``            stat        :math:`S_t`, this epoch's sum of losses
        ``ema``                 stat        the EMA (``mean="ema"``)
        ``last_mean``           stat        the mean the latest loss was compared with
        ``below``               stat        the latest decision, loss < mean (bool)
        ``below_steps``         stat        this epoch's count of "below" decisions
        ``epoch_steps``         ``(1,)``    this epoch's count of steps
        ``steps_total``         ``(1,)``    steps since the start (int64); 0: ``initial_momentum``
        ======================  ==========  ==================================================

        "stat" is ``(T,)`` with ``trial_axis``, else ``(1,)``, not ``()``: a graph
        compiled by torch 2.13 drops in-place updates of 0-dim float64 CPU tensors
        (``t.add_(1)`` inside ``torch.compile`` leaves ``t`` as it was; LCAM's
        compiled runs in ``tests/test_optim_compile.py`` fail with such tensors).
        The public views (:attr:`last_mean`, ...) have the loss's shape. Statistics are float64
        (float32 on MPS, which has no float64), like the authors' Python floats;
        a float32 loss is compared against the float64 mean exactly as
        ``loss.item() < mean`` does. ``loaded`` (from :meth:`load_state_dict`)
        fills them from a checkpoint.
        """
        first = self._first_param()
        if first is None:
            return
        device = first.device
        state = self._loss_state
        if loaded is None and state and state["steps_total"].device == device:
            return
        if loaded is None:
            loaded = dict(state)
        shape = (int(first.shape[0]),) if self.trial_axis else (1,)
        stat = torch.float32 if device.type == "mps" else torch.float64

        def make(key: str, fill: float, dtype: torch.dtype, size: tuple[int, ...] = shape) -> Tensor:
            value = loaded.get(key)
            if value is None:
                return torch.full(size, fill, dtype=dtype, device=device)
            return torch.as_tensor(value).to(device=device, dtype=dtype).reshape(size).clone()

        self._loss_state = {
            "loss_sum": make("loss_sum", 0.0, stat),
            "ema": make("ema", 0.0, stat),
            "last_mean": make("last_mean", math.nan, stat),
            "below": make("below", False, torch.bool),
            "below_steps": make("below_steps", 0.0, stat),
            "epoch_steps": make("epoch_steps", 0.0, stat, (1,)),
            "steps_total": make("steps_total", 0, torch.int64, (1,)),
        }

    def _as_loss_shape(self, stat: Tensor) -> Tensor:
        """A statistic in the loss's shape: ``(T, ...)`` with ``trial_axis``, else ``(1, ...)`` -> ``(...)``."""
        return stat if self.trial_axis else stat.squeeze(0)

    def _stepped(self) -> bool:
        """Whether a step has been taken: the loss state exists (the first step creates it)."""
        return bool(self._loss_state)

    def new_epoch(self) -> None:
        """Start a new epoch: the running mean and the phase counters restart.

        With ``mean="ema"`` the average carries over and only the phase counters
        restart. The next step's momentum (chosen after the last step) is kept,
        as in the authors' loop. In place and without synchronising.
        """
        for key in ("loss_sum", "below_steps", "epoch_steps"):
            if key in self._loss_state:
                self._loss_state[key].zero_()

    @property
    def last_below(self) -> Tensor | None:
        """The latest decision (bool tensor, ``()`` or ``(T,)``): True where the loss was below its mean.

        ``None`` before the first step.
        """
        return self._as_loss_shape(self._loss_state["below"]).clone() if self._stepped() else None

    @property
    def last_mean(self) -> Tensor | None:
        """The running mean (or EMA) the latest loss was compared with, ``()`` or ``(T,)``.

        ``None`` before the first step.
        """
        return self._as_loss_shape(self._loss_state["last_mean"]).clone() if self._stepped() else None

    def phase_fractions(self) -> Tensor:
        """Fractions of this epoch's steps whose loss was below / above the mean.

        Returns a float64 device tensor of shape ``(2,)`` (or ``(T, 2)`` with
        ``trial_axis``): ``[..., 0]`` below, ``[..., 1]`` above. Computing it
        does not synchronise; reading it (``.tolist()``) does, so log once per
        epoch. NaN before the first step of an epoch.
        """
        if not self._stepped():
            return torch.full((2,), float("nan"), dtype=torch.float64)
        below = self._loss_state["below_steps"] / self._loss_state["epoch_steps"]  # 0/0 = NaN
        return self._as_loss_shape(torch.stack([below, 1.0 - below], dim=-1))

    def momentum_now(self, group: int = 0) -> Tensor:
        """The momentum the next step of param group ``group`` will use (float64 tensor)."""
        settings = self.param_groups[group]
        if not self._stepped():
            return torch.tensor(settings["initial_momentum"], dtype=torch.float64)
        return self._group_momentum(settings, self._loss_state["below"].device, torch.float64)

    def _constant(self, value: float, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (value, device, dtype)
        if key not in self._constants:
            self._constants[key] = torch.full((), value, dtype=dtype, device=device)
        return self._constants[key]

    def _update_loss_state(self, loss: Tensor) -> None:
        """Feed the current loss into the mean and choose the next momentum (device ops, in place)."""
        state = self._loss_state
        loss = loss.reshape(state["below"].shape)
        first = state["steps_total"] == 0
        state["epoch_steps"].add_(1)
        state["steps_total"].add_(1)
        if self.mean == "epoch":
            _, mean = running_mean_update(state["loss_sum"], state["epoch_steps"], loss)
        else:
            loss = loss.to(state["ema"].dtype)
            ema = torch.where(first, loss, ema_update(state["ema"], loss, self.ema_decay))
            mean = state["ema"].copy_(ema)
        state["last_mean"].copy_(mean)
        state["below"].copy_(torch.lt(loss, mean))
        state["below_steps"].add_(state["below"])

    # -- the step ------------------------------------------------------------------------

    def _group_momentum(self, group: dict[str, Any], device: torch.device, dtype: torch.dtype) -> Tensor:
        """The momentum of the next step for ``group``: ``initial_momentum`` at the first step, then the switch's choice."""
        state = self._loss_state
        below = state["below"] if state["below"].device == device else state["below"].to(device, non_blocking=True)
        first = state["steps_total"] == 0
        if first.device != device:
            first = first.to(device, non_blocking=True)
        chosen = choose_momentum(
            below,
            self._constant(group["momentum"][0], device, dtype),
            self._constant(group["momentum"][1], device, dtype),
        )
        return self._as_loss_shape(torch.where(first, self._constant(group["initial_momentum"], device, dtype), chosen))

    def _init_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor],
                    momentum_buffers: list[Tensor | None]) -> bool:
        """Collect ``group``'s parameters with a gradient, their gradients and buffers; create the loss state.

        torch's convention (``torch.optim.SGD._init_group``): the lists are filled
        in place, and ``torch.compile`` runs this eagerly rather than tracing it.
        Returns whether any parameter was collected.
        """
        self._ensure_loss_state()
        for p in self._params_with_grad(group):
            state = self.state[p]
            params.append(p)
            grads.append(p.grad)
            momentum_buffers.append(state.get("momentum_buffer"))
        return bool(params)

    def _step(self, loss: Tensor) -> None:
        """Update the parameters with this step's momentum, then feed ``loss`` into the mean."""
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            bufs: list[Tensor | None] = []
            self._init_group(group, params, grads, bufs)
            if not params:
                continue
            # The momentum takes the parameters' dtype (float32 for half types, whose
            # rounding of 0.95 would change the coefficient).
            dtype = torch.float32 if params[0].dtype in (torch.float16, torch.bfloat16) else params[0].dtype
            momentum = self._group_momentum(group, params[0].device, dtype)
            lcam(params, grads, bufs, lr=group["lr"], momentum=momentum,
                 weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                 maximize=group["maximize"], trial_axis=self.trial_axis, foreach=group["foreach"])
            for p, buf in zip(params, bufs):
                self.state[p]["momentum_buffer"] = buf
        self._update_loss_state(loss)

    # -- checkpointing -------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        """LCAM's loss statistics (saved under ``"lcam"``, in the loss's shape; the counters 0-dim).

        Copies, no reads: saving does not synchronise a GPU.
        """
        saved: dict[str, Any] = {"mean": self.mean, "ema_decay": self.ema_decay}
        for key, value in self._loss_state.items():
            saved[key] = value.reshape(()).clone() if key in ("epoch_steps", "steps_total") \
                else self._as_loss_shape(value).clone()
        return saved

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore the running mean / EMA, the counters and the latest decision.

        Also reads checkpoints of earlier lcamlab versions, which stored ``None``
        for statistics not yet created.
        """
        self._constants = {}  # a cache of device constants, refilled on demand (not saved)
        self.mean = extra["mean"]
        self.ema_decay = extra["ema_decay"]
        self._loss_state = {}
        # Nothing to restore if saved before the first step (earlier versions saved the int 0).
        steps_total = extra.get("steps_total")
        if steps_total is not None and not (isinstance(steps_total, int) and steps_total == 0):
            self._ensure_loss_state(extra)
