r"""Adai: adaptive inertia (004 Algorithm 2), with AdaiW's decoupled weight decay.

Adai keeps SGD's single learning rate but gives every parameter element its own
momentum ("inertia") :math:`\beta_1`: elements whose bias-corrected second moment
:math:`\hat v` is large relative to the mean :math:`\bar v` get *less* inertia,
small ones more, bounded by :math:`1-\epsilon`.

The semantics are those of the authors' public implementation (004 footnote 2,
``adai_optim/adai.py``), in particular:

* :math:`\bar v` is the mean of :math:`\hat v` over **all elements of all
  parameters that have a gradient**, across every param group: one scalar per
  optimizer (one per trial with ``trial_axis=True``).
* Coupled L2 (``decoupled=False``) feeds :math:`g + \lambda\theta` into both moments;
  decoupled decay (``decoupled=True``, AdaiW, 004 Appendix G) multiplies the
  parameter by :math:`1-\eta\lambda` before the update.

Two deliberate departures, neither of which changes any finite trajectory of the
authors' code:

* the authors add the L2 term to ``p.grad`` in place; lcamlab leaves ``p.grad``
  untouched (a caller logging gradient norms after ``step`` would otherwise see
  the decay term);
* :math:`\bar v` is clamped below by the dtype's smallest normal number, so a
  step in which every gradient is exactly zero gives :math:`\beta_1 = 1-\epsilon`
  (read 0/0 as 0) instead of NaN. This matters with ``trial_axis=True``, where a
  single trial that has converged exactly would otherwise poison its own state.

No host synchronisation: :math:`\bar v` stays a device tensor; the only host
values are the step counters, which live on the CPU as in ``torch.optim.Adam``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.optim.base import (
    TrialOptimizer, foreach_descend_, check_bool, check_number, check_pair, check_trial_shapes,
    host_number, resolve_foreach, trial_rows, trial_view,
)

__all__ = ["Adai", "AdaiW", "adai"]


# --------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------


def _adai_second_moment(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    state_steps: Sequence[Tensor],
    *,
    lr: float | Tensor,
    beta2: float,
    weight_decay: float,
    decoupled: bool,
    trial_axis: bool,
    foreach: bool,
) -> tuple[list[Tensor], list[float], Tensor | None]:
    """Phase 1 of a step for one hyperparameter set.

    Applies the weight decay, advances the step counters, updates
    :math:`v` in place and returns ``(effective gradients, bias corrections
    1-beta2^t, sum of v_hat)``; the sum is 0-dim, or ``(T,)`` per trial.
    """
    if len(params) == 0:
        return [], [], None
    if foreach:
        torch._foreach_add_(state_steps, 1)
        if weight_decay != 0:
            if decoupled:
                torch._foreach_mul_(params, 1.0 - lr * weight_decay)
                eff_grads = list(grads)
            else:
                # a fresh list: p.grad stays as autograd left it
                eff_grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
        else:
            eff_grads = list(grads)
        bias_corrections = [1.0 - beta2 ** host_number(s) for s in state_steps]
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, eff_grads, eff_grads, value=1.0 - beta2)
        if trial_axis:
            sums = [trial_rows(v).sum(1) for v in exp_avg_sqs]
        else:
            # v >= 0, so its L1 norm is its sum: one multi-tensor reduction
            sums = list(torch._foreach_norm(exp_avg_sqs, 1))
        torch._foreach_div_(sums, bias_corrections)
        total = torch.stack(sums).sum(0)
        return eff_grads, bias_corrections, total

    eff_grads = []
    bias_corrections = []
    total: Tensor | None = None
    for p, g, v, step in zip(params, grads, exp_avg_sqs, state_steps):
        step.add_(1)
        if weight_decay != 0:
            if decoupled:
                p.mul_(1.0 - lr * weight_decay)
            else:
                g = g.add(p, alpha=weight_decay)
        eff_grads.append(g)
        bc2 = 1.0 - beta2 ** host_number(step)
        bias_corrections.append(bc2)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        s = (trial_rows(v).sum(1) if trial_axis else v.sum()) / bc2
        total = s if total is None else total + s
    return eff_grads, bias_corrections, total


def _elements(params: Sequence[Tensor], trial_axis: bool) -> int:
    """How many elements the mean of v_hat runs over (per trial with ``trial_axis``)."""
    return sum(p.numel() // (p.shape[0] if trial_axis else 1) for p in params)


def _clamped_mean(total: Tensor, count: int) -> Tensor:
    # 0/0 (all gradients exactly zero) must not give NaN: see the module docstring.
    mean = total / count
    return mean.clamp_min(torch.finfo(mean.dtype).tiny)


def _adai_inertia_update(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    beta1_prods: Sequence[Tensor],
    bias_corrections: Sequence[float],
    v_bar: Tensor,
    *,
    lr: float | Tensor,
    beta0: float,
    eps: float,
    trial_axis: bool,
    foreach: bool,
) -> None:
    """Phase 2: the adaptive inertia, the momentum and the parameter update, in place."""
    if len(params) == 0:
        return
    if foreach:
        v_bars = [trial_view(v_bar, p) if trial_axis else v_bar for p in params]
        ratio = torch._foreach_div(exp_avg_sqs, list(bias_corrections))
        torch._foreach_div_(ratio, v_bars)
        # beta1 = clamp(1 - beta0 * v_hat / v_bar, 0, 1 - eps)
        beta1 = ratio
        torch._foreach_mul_(beta1, -beta0)
        torch._foreach_add_(beta1, 1.0)
        torch._foreach_clamp_min_(beta1, 0.0)
        torch._foreach_clamp_max_(beta1, 1.0 - eps)
        torch._foreach_mul_(beta1_prods, beta1)
        one_minus_beta1 = torch._foreach_neg(beta1)
        torch._foreach_add_(one_minus_beta1, 1.0)
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_addcmul_(exp_avgs, one_minus_beta1, grads)
        bias_corrections1 = torch._foreach_neg(beta1_prods)
        torch._foreach_add_(bias_corrections1, 1.0)
        m_hat = torch._foreach_div(exp_avgs, bias_corrections1)
        foreach_descend_(params, m_hat, lr)
        return

    for p, g, m, v, prod, bc2 in zip(params, grads, exp_avgs, exp_avg_sqs, beta1_prods, bias_corrections):
        vb = trial_view(v_bar, p) if trial_axis else v_bar
        beta1 = v.div(bc2).div_(vb).mul_(-beta0).add_(1.0).clamp_(0.0, 1.0 - eps)
        prod.mul_(beta1)
        m.mul_(beta1).addcmul_(beta1.neg().add_(1.0), g)
        p.add_(m.div(prod.neg().add_(1.0)), alpha=-lr)


def adai(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    beta1_prods: Sequence[Tensor],
    state_steps: Sequence[Tensor],
    *,
    lr: float | Tensor,
    beta0: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    trial_axis: bool = False,
    foreach: bool | None = None,
) -> Tensor | None:
    r"""One Adai step (004 Algorithm 2) on a list of parameters, in place.

    .. math::

        g &\leftarrow g + \lambda\theta \quad(\text{coupled; or } \theta \leftarrow (1-\eta\lambda)\theta
            \text{ if decoupled})\\
        v &\leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad \hat v = v / (1-\beta_2^t),
            \qquad \bar v = \operatorname{mean}(\hat v)\\
        \beta_1 &= \operatorname{clip}\!\left(1 - \beta_0 \hat v/\bar v,\; 0,\; 1-\epsilon\right),
            \qquad \Pi \leftarrow \Pi\,\beta_1\\
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad \theta \leftarrow \theta - \eta\, m/(1-\Pi)

    :math:`\bar v` is the mean over all elements of all tensors passed (per trial
    with ``trial_axis``). The :class:`Adai` optimizer takes that mean across all
    its param groups; this function, given one hyperparameter set, across ``params``.

    Args:
        params: parameters with a gradient, updated in place.
        grads: their gradients (not modified).
        exp_avgs: :math:`m` per parameter (zeros initially), updated in place.
        exp_avg_sqs: :math:`v` per parameter (zeros initially), updated in place.
        beta1_prods: :math:`\Pi` per parameter (ones initially), updated in place.
        state_steps: 0-dim float step counters (CPU), incremented in place.
        lr: learning rate :math:`\eta`.
        beta0: :math:`\beta_0`, the inertia scale.
        beta2: :math:`\beta_2`, the second-moment decay.
        eps: :math:`\epsilon`, the inertia bound: :math:`\beta_1 \le 1-\epsilon`.
        weight_decay: :math:`\lambda`.
        decoupled: decoupled weight decay (AdaiW) instead of coupled L2.
        trial_axis: dim 0 of every parameter is an independent trial.
        foreach: multi-tensor ``torch._foreach_*`` path (default: when all
            parameters are on CUDA).

    Returns:
        :math:`\bar v` (0-dim, or ``(T,)`` with ``trial_axis``), or ``None`` for an empty list.
    """
    foreach = resolve_foreach(foreach, params)
    if trial_axis:
        check_trial_shapes(params)
    eff_grads, bias_corrections, total = _adai_second_moment(
        params, grads, exp_avg_sqs, state_steps, lr=lr, beta2=beta2, weight_decay=weight_decay,
        decoupled=decoupled, trial_axis=trial_axis, foreach=foreach,
    )
    if total is None:
        return None
    v_bar = _clamped_mean(total, _elements(params, trial_axis))
    _adai_inertia_update(
        params, eff_grads, exp_avgs, exp_avg_sqs, beta1_prods, bias_corrections, v_bar,
        lr=lr, beta0=beta0, eps=eps, trial_axis=trial_axis, foreach=foreach,
    )
    return v_bar


# --------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------


class Adai(TrialOptimizer):
    r"""Adaptive inertia optimizer (004 Algorithm 2); ``decoupled=True`` gives AdaiW.

    .. math::

        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \hat v_t = \frac{v_t}{1-\beta_2^t},\quad
        \beta_{1,t} = \operatorname{clip}\!\Big(1 - \beta_0\frac{\hat v_t}{\bar v_t}, 0, 1-\epsilon\Big)

        m_t = \beta_{1,t} m_{t-1} + (1-\beta_{1,t}) g_t,\quad
        \theta_{t+1} = \theta_t - \eta\,\frac{m_t}{1-\prod_{s\le t}\beta_{1,s}}

    with :math:`\bar v_t` the mean of :math:`\hat v_t` over all elements of all
    parameters that have a gradient, across all param groups (the authors'
    implementation; one mean per trial with ``trial_axis=True``). Weight decay
    :math:`\lambda`: coupled L2, :math:`g \leftarrow g + \lambda\theta`, or with
    ``decoupled=True`` (AdaiW, 004 Appendix G) :math:`\theta \leftarrow (1-\eta\lambda)\theta`
    before the update.

    Args:
        params: iterable of parameters or param-group dicts (groups may override
            every setting below except ``trial_axis``).
        lr: learning rate :math:`\eta`, required (no default: 004's numbers were
            lost in the extraction, and the authors' code has none either). Because
            :math:`m` is an average, not a sum, of gradients, choose it of the size of
            SGD's lr *without* momentum, about 10x SGD-with-momentum's (004 section 3:
            momentum leaves minima selection unchanged for :math:`\eta/(1-\beta)` fixed).
        betas: :math:`(\beta_0, \beta_2)`, default (0.1, 0.99) (004 section 5).
        eps: the inertia bound :math:`\epsilon` in (0, 1], default 1e-3, so the
            largest inertia is :math:`1-\epsilon`.
        weight_decay: :math:`\lambda \ge 0`.
        decoupled: decoupled weight decay (AdaiW) instead of coupled L2.
        trial_axis: dim 0 of every parameter is an independent trial (same
            length for all parameters); :math:`\bar v` is then taken per trial.
        foreach: multi-tensor ``torch._foreach_*`` path (default: on CUDA).

    Reference: 004 (Xie et al., "Adaptive Inertia"), section 5, Algorithm 2;
    Appendix G for AdaiW.

    Example:
        >>> import torch
        >>> from lcamlab.optim.adai import Adai
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = Adai([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad()
        ...     loss = (w ** 2).sum()
        ...     loss.backward()
        ...     opt.step()
        >>> bool(loss < 1e-3)
        True
    """

    _state_key = "adai"
    _group_fallbacks = {"foreach": None, "decoupled": False}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor,
        betas: tuple[float, float] = (0.1, 0.99),
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        trial_axis: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled=decoupled, foreach=foreach)
        super().__init__(params, defaults, trial_axis=trial_axis)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        beta0, beta2 = check_pair("betas", group["betas"], "a pair (beta0, beta2), e.g. (0.1, 0.99)")
        group["betas"] = (check_number("beta0 value", beta0, note="the paper uses 0.1"),
                          check_number("beta2 value", beta2, 0.0, 1.0, note="the paper uses 0.99"))
        group["eps"] = check_number(
            "eps value", group["eps"], 0.0, 1.0, low_open=True, high_open=False,
            note="the inertia bound: beta1 <= 1 - eps, and eps = 0 divides by 1 - prod(beta1) = 0; "
                 "the paper uses 1e-3",
        )
        group["decoupled"] = check_bool("decoupled", group["decoupled"])

    def _init_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor],
                    exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], prods: list[Tensor],
                    steps: list[Tensor]) -> bool:
        """Collect ``group``'s parameters with a gradient and their state, creating it on the first step.

        torch's convention (``torch.optim.Adam._init_group``): the lists are filled
        in place, and ``torch.compile`` runs this eagerly rather than tracing it.
        Returns whether any parameter was collected.
        """
        for p in self._params_with_grad(group):
            state = self.state[p]
            if len(state) == 0:
                # A float32 CPU counter, as in torch.optim.Adam: reading it never syncs a
                # GPU, and it counts exactly up to 2**24 steps. (Not float64: a compiled
                # graph drops in-place updates of 0-dim float64 CPU tensors, torch 2.13.)
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["beta1_prod"] = torch.ones_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            prods.append(state["beta1_prod"])
            steps.append(state["step"])
        return bool(params)

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Checkpoints of earlier lcamlab versions: their float64 step counters become float32 (see ``_init_group``)."""
        for state in self.state.values():
            if "step" in state and state["step"].dtype == torch.float64:
                state["step"] = state["step"].to(torch.float32)

    def _step(self, loss: None) -> None:
        r"""Both phases of :func:`adai`, with :math:`\bar v` spanning every group (authors' semantics)."""
        pending = []
        total: Tensor | None = None
        count = 0
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, prods, steps = [], [], [], [], [], []
            if not self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, prods, steps):
                continue
            foreach = resolve_foreach(group["foreach"], params)
            eff_grads, bias_corrections, group_total = _adai_second_moment(
                params, grads, exp_avg_sqs, steps, lr=group["lr"], beta2=group["betas"][1],
                weight_decay=group["weight_decay"], decoupled=group["decoupled"],
                trial_axis=self.trial_axis, foreach=foreach,
            )
            total = group_total if total is None else total + group_total
            count += _elements(params, self.trial_axis)
            pending.append((group, foreach, params, eff_grads, exp_avgs, exp_avg_sqs, prods, bias_corrections))
        if total is None:
            return
        v_bar = _clamped_mean(total, count)
        for group, foreach, params, eff_grads, exp_avgs, exp_avg_sqs, prods, bias_corrections in pending:
            _adai_inertia_update(
                params, eff_grads, exp_avgs, exp_avg_sqs, prods, bias_corrections, v_bar,
                lr=group["lr"], beta0=group["betas"][0], eps=group["eps"],
                trial_axis=self.trial_axis, foreach=foreach,
            )


class AdaiW(Adai):
    r"""Adai with decoupled weight decay (004 Appendix G): :class:`Adai` with ``decoupled=True``.

    .. math:: \theta \leftarrow (1-\eta\lambda)\,\theta, \text{ then the Adai update with the raw gradient.}

    Args: as :class:`Adai`, without ``decoupled``.

    Example:
        >>> import torch
        >>> from lcamlab.optim.adai import AdaiW
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = AdaiW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = torch.zeros(3)
        >>> opt.step()  # zero gradient: only the decay acts, w *= 1 - 0.1 * 0.5
        >>> w.detach()
        tensor([0.9500, 0.9500, 0.9500])
    """

    # an AdaiW pickled before groups recorded ``decoupled`` was decoupled all the same
    _group_fallbacks = {**Adai._group_fallbacks, "decoupled": True}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor,
        betas: tuple[float, float] = (0.1, 0.99),
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        trial_axis: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled=True, trial_axis=trial_axis, foreach=foreach)
