r"""AdaRem: adaptive gradient method with resilience and momentum (003 Algorithm 1).

AdaRem is SGD whose per-element learning rate is stretched when the current
gradient agrees in sign with the momentum (the parameter's recent trend) and
shrunk when it disagrees, which damps oscillations (003 section 3.3):

.. math::

    b_{t,i} = \frac{g_{t,i}\, m_{t,i}}{|g_{t,i}|\,\max_j |m_{t,j}| + \epsilon} \in [-1, 1],
    \qquad a_t = 1 + \lambda^{\tau} b_t

where :math:`\tau` counts epochs (003 section 4.1.1: "multiplying :math:`\lambda`
once per epoch is enough"). The momentum :math:`m` is only a direction
estimate: it never enters the step itself, only the learning-rate factor
:math:`a`.

Decisions the paper leaves open (marked in the project's digest, section 4):

* :math:`\max_j |m_{t,j}|` is taken over the parameter tensor :math:`m_t`
  belongs to (per trial with ``trial_axis=True``).
* :math:`\tau` starts at 0 in the first epoch (Algorithm 1 runs "for t = 0 to T"),
  so the first epoch uses :math:`a \in [0, 2]`; 003's text quotes
  :math:`[1-\lambda, 1+\lambda]`, i.e. the bound from the second epoch on.
  :meth:`AdaRem.new_epoch` marks an epoch boundary and counts only boundaries
  that follow at least one step, so calling it at the start of every epoch, at
  the end of every epoch, or both, gives the same :math:`\tau`.
* The projection :math:`\Pi_{\mathcal F}` of Algorithm 1 belongs to the online
  convex optimisation analysis (bounded feasible set); here
  :math:`\mathcal F = \mathbb R^n` and it is the identity. AdaRem-S
  (:mod:`lcamlab.optim.adarem_s`) is the variant that projects (onto spheres).

The spherical variant (:class:`~lcamlab.optim.adarem_s.AdaRemS`) subclasses
:class:`AdaRem`: it shares its validation, epoch counter and resilience factor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.optim.base import (
    TrialOptimizer, check_number, check_trial_shapes, foreach_descend_, host_number, resolve_foreach,
    trial_rows, trial_view,
)

__all__ = ["AdaRem", "adarem", "resilience_factors"]


# --------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------


def _max_abs(t: Tensor, trial_axis: bool) -> Tensor:
    """:math:`\\max|t|` over the tensor, or per trial shaped to broadcast over ``t``."""
    if not trial_axis:
        return t.abs().amax()
    return trial_view(trial_rows(t.abs()).amax(1), t)


def resilience_factors(
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor],
    *,
    lam: float,
    epoch: int | Tensor,
    eps: float,
    trial_axis: bool = False,
    foreach: bool = False,
) -> list[Tensor]:
    r"""AdaRem's learning-rate factors :math:`a = 1 + \lambda^\tau b` (003 eqs. 1-2), new tensors.

    .. math:: b_i = \frac{g_i m_i}{|g_i| \max_j|m_j| + \epsilon}

    with the max over each tensor (per trial with ``trial_axis``).

    Args:
        grads: gradients :math:`g`.
        momentum_buffers: momenta :math:`m` (before this step's update).
        lam: :math:`\lambda`.
        epoch: :math:`\tau`, the epoch index (0 in the first epoch): an int, or a 0-dim tensor
            under ``torch.compile``.
        eps: :math:`\epsilon > 0`.
        trial_axis: dim 0 is an independent trial.
        foreach: multi-tensor path (same numbers, bit for bit).

    Returns:
        One factor tensor per gradient.
    """
    lam_t = float(lam) ** epoch
    if foreach:
        if trial_axis:
            m_max = [_max_abs(m, True) for m in momentum_buffers]
        else:
            # the inf-norm is max|m|: one multi-tensor reduction, exact
            m_max = list(torch._foreach_norm(momentum_buffers, float("inf")))
        denom = torch._foreach_abs(grads)
        torch._foreach_mul_(denom, m_max)
        torch._foreach_add_(denom, eps)
        factors = torch._foreach_mul(grads, momentum_buffers)
        torch._foreach_div_(factors, denom)
        torch._foreach_mul_(factors, lam_t)
        torch._foreach_add_(factors, 1.0)
        return list(factors)
    factors = []
    for g, m in zip(grads, momentum_buffers):
        denom = g.abs().mul_(_max_abs(m, trial_axis)).add_(eps)
        factors.append(g.mul(m).div_(denom).mul_(lam_t).add_(1.0))
    return factors


def adarem(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor],
    *,
    lr: float | Tensor,
    beta: float,
    lam: float,
    epoch: int | Tensor,
    weight_decay: float = 0.0,
    eps: float = 1e-8,
    trial_axis: bool = False,
    foreach: bool | None = None,
) -> None:
    r"""One AdaRem step (003 Algorithm 1) on a list of parameters, in place.

    .. math::

        a_t = 1 + \lambda^\tau \frac{g_t\, m_t}{|g_t| \max|m_t| + \epsilon},\qquad
        \theta_{t+1} = \theta_t - \eta\, a_t \odot g_t - \eta\gamma\,\theta_t,\qquad
        m_{t+1} = \beta m_t + (1-\beta) g_t

    Args:
        params: parameters with a gradient, updated in place.
        grads: their gradients (not modified).
        momentum_buffers: :math:`m` per parameter (zeros initially: :math:`m_0 = 0`),
            updated in place after the parameter update.
        lr: learning rate :math:`\eta`.
        beta: momentum decay :math:`\beta`.
        lam: :math:`\lambda`.
        epoch: :math:`\tau`, the epoch index (0 in the first epoch): an int, or a 0-dim tensor
            under ``torch.compile``.
        weight_decay: :math:`\gamma`.
        eps: :math:`\epsilon > 0` (with :math:`\epsilon = 0` the first step is 0/0).
        trial_axis: dim 0 of every parameter is an independent trial; the max
            runs per trial.
        foreach: multi-tensor ``torch._foreach_*`` path (default: when all
            parameters are on CUDA).
    """
    if len(params) == 0:
        return
    foreach = resolve_foreach(foreach, params)
    _descend(params, grads, momentum_buffers, lr=lr, lam=lam, epoch=epoch, weight_decay=weight_decay,
             eps=eps, trial_axis=trial_axis, foreach=foreach)
    _update_momentum(momentum_buffers, grads, beta=beta, foreach=foreach)


def _descend(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor],
    *,
    lr: float | Tensor,
    lam: float,
    epoch: int | Tensor,
    weight_decay: float,
    eps: float,
    trial_axis: bool,
    foreach: bool,
    alphas: Sequence[Tensor] | None = None,
) -> None:
    r""":math:`\theta \leftarrow \theta - \eta\,(a \odot g / \alpha^2 + \gamma\theta)`, in place.

    AdaRem's parameter update, shared with AdaRem-S, which passes its
    :math:`\alpha` (the sphere learning rate); without ``alphas``,
    :math:`\alpha = 1`. Reads the momenta (before their update), does not change them.
    """
    if trial_axis:
        check_trial_shapes(params)
    steps = resilience_factors(grads, momentum_buffers, lam=lam, epoch=epoch, eps=eps,
                               trial_axis=trial_axis, foreach=foreach)
    if foreach:
        torch._foreach_mul_(steps, grads)
        if alphas is not None:
            torch._foreach_div_(steps, torch._foreach_mul(alphas, alphas))
        if weight_decay != 0:
            torch._foreach_add_(steps, params, alpha=weight_decay)
        foreach_descend_(params, steps, lr)
        return
    for i, (p, g, step) in enumerate(zip(params, grads, steps)):
        step.mul_(g)
        if alphas is not None:
            step.div_(alphas[i] * alphas[i])
        if weight_decay != 0:
            step.add_(p, alpha=weight_decay)  # the decay reads the pre-step weight
        p.add_(step, alpha=-lr)


def _update_momentum(momentum_buffers: Sequence[Tensor], grads: Sequence[Tensor], *, beta: float,
                     foreach: bool) -> None:
    r""":math:`m \leftarrow \beta m + (1-\beta) g`, in place."""
    if foreach:
        torch._foreach_mul_(momentum_buffers, beta)
        torch._foreach_add_(momentum_buffers, grads, alpha=1.0 - beta)
        return
    for m, g in zip(momentum_buffers, grads):
        m.mul_(beta).add_(g, alpha=1.0 - beta)


# --------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------


class AdaRem(TrialOptimizer):
    r"""AdaRem (003 Algorithm 1): SGD with a momentum-guided per-element learning rate.

    .. math::

        a_t = 1 + \lambda^\tau\,\frac{g_t \odot m_t}{|g_t|\,\max|m_t| + \epsilon},\qquad
        \theta_{t+1} = \theta_t - \eta\, a_t \odot g_t - \eta\gamma\theta_t,\qquad
        m_{t+1} = \beta m_t + (1-\beta) g_t,\quad m_0 = 0

    :math:`\max|m_t|` runs over the parameter tensor (per trial with
    ``trial_axis=True``); :math:`\tau` is the epoch index, 0 in the first epoch,
    advanced by :meth:`new_epoch` (see the module docstring).

    Args:
        params: iterable of parameters or param-group dicts (groups may override
            every setting below except ``trial_axis``).
        lr: learning rate :math:`\eta`, required; 003 borrows SGD-momentum's
            (0.4 for ImageNet at batch 1024, section 4.1.1).
        beta: momentum decay :math:`\beta` in [0, 1), default 0.9.
        lam: :math:`\lambda` in [0, 1], default 0.999 (003 section 4.1.1).
        weight_decay: :math:`\gamma \ge 0`, applied as in Algorithm 1
            (:math:`-\eta\gamma\theta_t`, not through :math:`a`).
        eps: :math:`\epsilon > 0`, default 1e-8.
        trial_axis: dim 0 of every parameter is an independent trial.
        foreach: multi-tensor ``torch._foreach_*`` path (default: on CUDA).

    Reference: 003 ("Adaptive gradient method with resilience and momentum"),
    section 3.3 and Algorithm 1.

    Example:
        >>> import torch
        >>> from lcamlab.optim.adarem import AdaRem
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = AdaRem([w], lr=0.1)
        >>> for epoch in range(3):
        ...     for _ in range(20):
        ...         opt.zero_grad()
        ...         loss = (w ** 2).sum()
        ...         loss.backward()
        ...         opt.step()
        ...     opt.new_epoch()
        >>> opt.epoch, bool(loss < 1e-6)
        (3, True)
    """

    _state_key = "adarem"

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor,
        beta: float = 0.9,
        lam: float = 0.999,
        weight_decay: float = 0.0,
        eps: float = 1e-8,
        trial_axis: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(lr=lr, beta=beta, lam=lam, weight_decay=weight_decay, eps=eps,
                        foreach=foreach, **self._more_defaults())
        # CPU tensors changed in place (a compiled step drops assignments to optimizer
        # attributes and would bake a Python epoch into its graph); int64 and bool,
        # so reading them never synchronises a GPU.
        self._epoch = torch.zeros((), dtype=torch.int64)
        self._stepped_in_epoch = torch.zeros((), dtype=torch.bool)
        super().__init__(params, defaults, trial_axis=trial_axis)

    # -- configuration -----------------------------------------------------------------

    def _more_defaults(self) -> dict[str, Any]:
        """Settings a subclass adds to every group (AdaRem-S: ``spherical``, ``sphere_lr``)."""
        return {}

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        group["beta"] = check_number("beta value", group["beta"], 0.0, 1.0,
                                     note="momentum decay; the paper uses 0.9")
        group["lam"] = check_number("lam value", group["lam"], 0.0, 1.0, high_open=False,
                                    note="lambda; the paper uses 0.999")
        group["eps"] = check_number("eps value", group["eps"], 0.0, low_open=True,
                                    note="on the first step m = 0 and b = 0/(0 + eps); default 1e-8")

    # -- epochs --------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        r"""The epoch index :math:`\tau` in :math:`\lambda^\tau` (0 in the first epoch)."""
        return int(self._epoch)

    def new_epoch(self) -> None:
        r"""Mark an epoch boundary: :math:`\tau` advances if a step was taken since the last boundary.

        Idempotent between steps, so calling it at the start of every epoch, at
        the end, or both, gives the first epoch :math:`\tau = 0`.
        """
        self._epoch.add_(self._stepped_in_epoch)
        self._stepped_in_epoch.fill_(False)

    # -- the step ------------------------------------------------------------------------

    def _init_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor],
                    bufs: list[Tensor]) -> bool:
        """Collect ``group``'s parameters with a gradient and their momenta (zeros on the first step).

        torch's convention (``torch.optim.SGD._init_group``): the lists are filled
        in place, and ``torch.compile`` runs this eagerly rather than tracing it.
        Returns whether any parameter was collected.
        """
        for p in self._params_with_grad(group):
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            bufs.append(state["momentum_buffer"])
        return bool(params)

    def _settings(self, group: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments :func:`adarem` (and :func:`~lcamlab.optim.adarem_s.adarem_s`) take from ``group``."""
        return dict(lr=group["lr"], beta=group["beta"], lam=group["lam"], epoch=host_number(self._epoch),
                    weight_decay=group["weight_decay"], eps=group["eps"],
                    trial_axis=self.trial_axis, foreach=group["foreach"])

    def _step(self, loss: None) -> None:
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            bufs: list[Tensor] = []
            self._init_group(group, params, grads, bufs)
            adarem(params, grads, bufs, **self._settings(group))
        self._stepped_in_epoch.fill_(True)

    # -- checkpointing -------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        """The epoch counter (saved under ``"adarem"``, ``"adarem_s"`` for AdaRem-S)."""
        return {"epoch": int(self._epoch), "stepped_in_epoch": bool(self._stepped_in_epoch)}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._epoch = torch.tensor(int(extra["epoch"]), dtype=torch.int64)
        self._stepped_in_epoch = torch.tensor(bool(extra["stepped_in_epoch"]))
