r"""AdaRem-S: AdaRem on spheres with the sphere learning rate (003 Algorithm 2, section 3.4).

A weight followed by BatchNorm is *scale invariant*: :math:`L(c\theta) = L(\theta)`
for :math:`c > 0`, hence (003 section 3.4, Li & Arora 2019)

.. math::

    \langle\nabla L(\theta), \theta\rangle = 0, \qquad \nabla L(c\theta) = \nabla L(\theta)/c .

Weight decay then only changes the weight's norm, and through it the gradient's
size, which makes AdaRem's momentum a poor record of the update trend. AdaRem-S
keeps every such weight on a sphere of fixed radius :math:`R` (its initial
norm) and puts the effect of weight decay into a learning-rate schedule.

Derivation of the sphere learning rate. Take the *Euclidean* run, AdaRem with
weight decay :math:`\gamma` and no constraint,

.. math:: \theta^E_{t+1} = (1-\eta\gamma)\,\theta^E_t - \eta\, a_t\odot g^E_t ,

and write :math:`\theta^E_t = \alpha_t\hat\theta_t` with :math:`|\hat\theta_t| = R`, i.e.
:math:`\alpha_t = |\theta^E_t|/R` (:math:`\alpha_0 = 1`). Scale invariance gives
:math:`g^E_t = g_t/\alpha_t`, with :math:`g_t` the gradient at the sphere point
:math:`\hat\theta_t`. Dividing the Euclidean step by :math:`\alpha_t`:

.. math::

    \tilde\theta_{t+1} := \theta^E_{t+1}/\alpha_t
      = (1-\eta\gamma)\,\hat\theta_t - \frac{\eta}{\alpha_t^2}\, a_t\odot g_t ,
    \qquad \hat\theta_{t+1} = R\,\tilde\theta_{t+1}/|\tilde\theta_{t+1}| .

So the sphere run takes the step with the **sphere learning rate**
:math:`\eta^S_t = \eta/\alpha_t^2` (003 section 3.4.1: :math:`\eta_t = \eta'_t/\alpha_t^2`),
re-projects, and stays on the ray of the Euclidean run. The norm follows from
the same similar triangles (003 Figure 3): :math:`|\theta^E_{t+1}| = \alpha_t|\tilde\theta_{t+1}|`,

.. math:: \alpha_{t+1} = \alpha_t\,|\tilde\theta_{t+1}|/R .

Expanding :math:`|\tilde\theta_{t+1}|^2` gives

.. math::

    |\theta^E_{t+1}|^2 = (1-\eta\gamma)^2|\theta^E_t|^2
      - 2\eta(1-\eta\gamma)\langle\theta^E_t, a_t\odot g^E_t\rangle + \eta^2|a_t\odot g^E_t|^2 .

With a uniform :math:`a_t` (SGD; AdaRem's first step) the middle term vanishes
by orthogonality and this is the familiar
:math:`|\theta^E_{t+1}|^2 = (1-\eta\gamma)^2|\theta^E_t|^2 + \eta^2|a_t g^E_t|^2`. AdaRem's
:math:`a_t` is *not* uniform, so :math:`a_t\odot g_t` is not orthogonal to
:math:`\theta`; lcamlab therefore uses the exact form above, read off the
pre-projection norm that the projection computes anyway.

What is and is not equivalent. The sphere's momentum averages the sphere
gradients :math:`g_t`, the Euclidean run's averages :math:`g_t/\alpha_t`; that
difference is AdaRem-S's purpose (003 section 3.4), so the two runs share
:math:`a_t`, and hence their directions exactly, when :math:`\lambda^\tau b_t = 0`
(SGD limit; the first step, where :math:`m = 0`) or when :math:`\beta = 0`
(:math:`m_t = g_{t-1}`, and the scalar :math:`1/\alpha_{t-1}` cancels in :math:`b_t` up to
:math:`\epsilon`). Elsewhere AdaRem-S is the paper's *improved* method, not a copy.

Decisions:

* Algorithm 2 writes the decay with the sphere rate, :math:`-\hat\eta_t\gamma\hat\theta_t`.
  After re-projection a decay only rescales the gradient step (by
  :math:`1/(1-\hat\eta\gamma)`); the equivalence above needs :math:`1/(1-\eta\gamma)`, so
  the decay uses the base rate :math:`\eta`. The two differ by
  :math:`O(\eta\gamma\,|1-\alpha_t^{-2}|)` per step.
* Which weights are spherical: by default every parameter with two or more
  dimensions (conv and linear weights, which precede BatchNorm in the networks
  of 003), counting dimensions after the trial axis with ``trial_axis=True``;
  1-D biases and BatchNorm affine parameters follow plain AdaRem. Set
  ``spherical=True``/``False`` on a param group to override. A weight that is not
  really scale invariant still works, but the equivalence no longer holds.
* :math:`R` is the norm at the parameter's first step, per tensor (per trial
  with ``trial_axis``); a zero-initialised spherical weight has no sphere and
  gives NaN (not checked: checking would synchronise the device).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.optim.adarem import AdaRem, _descend, _update_momentum, adarem
from lcamlab.optim.base import check_bool, resolve_foreach, trial_rows, trial_view

__all__ = ["AdaRemS", "adarem_s"]


def _norm(p: Tensor, trial_axis: bool) -> Tensor:
    """:math:`|p|` as a 0-dim tensor, or per trial shaped ``(T, 1, ..., 1)``."""
    if not trial_axis:
        return torch.linalg.vector_norm(p)
    return trial_view(torch.linalg.vector_norm(trial_rows(p), dim=1), p)


def adarem_s(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor],
    radii: Sequence[Tensor],
    alphas: Sequence[Tensor],
    *,
    lr: float | Tensor,
    beta: float,
    lam: float,
    epoch: int | Tensor,
    weight_decay: float = 0.0,
    eps: float = 1e-8,
    sphere_lr: bool = True,
    trial_axis: bool = False,
    foreach: bool | None = None,
) -> None:
    r"""One AdaRem-S step (003 Algorithm 2) on spherical parameters, in place.

    .. math::

        a_t = 1 + \lambda^\tau \frac{g_t\, m_t}{|g_t|\max|m_t| + \epsilon},\quad
        \tilde\theta = (1-\eta\gamma)\hat\theta_t - \frac{\eta}{\alpha_t^2} a_t\odot g_t,\quad
        \alpha_{t+1} = \alpha_t\frac{|\tilde\theta|}{R},\quad
        \hat\theta_{t+1} = R\frac{\tilde\theta}{|\tilde\theta|},\quad
        m_{t+1} = \beta m_t + (1-\beta) g_t

    See the module docstring for the derivation.

    Args:
        params: spherical parameters :math:`\hat\theta` (norm :math:`R`), updated in place.
        grads: their gradients (not modified).
        momentum_buffers: :math:`m` (zeros initially), updated in place.
        radii: :math:`R` per parameter: 0-dim, or ``(T, 1, ..., 1)`` with ``trial_axis``.
        alphas: :math:`\alpha = |\theta^E|/R` per parameter, same shapes as
            ``radii`` (ones initially), updated in place.
        lr: the base (Euclidean) learning rate :math:`\eta`.
        beta: momentum decay :math:`\beta`.
        lam: :math:`\lambda`.
        epoch: :math:`\tau`, the epoch index (0 in the first epoch): an int, or a 0-dim tensor
            under ``torch.compile``.
        weight_decay: :math:`\gamma` of the equivalent Euclidean run.
        eps: :math:`\epsilon > 0`.
        sphere_lr: use :math:`\eta/\alpha_t^2` (003's SLR). ``False`` is the
            ablation "projected AdaRem with the plain rate": the step uses
            :math:`\eta` and :math:`\alpha` stays 1.
        trial_axis: dim 0 of every parameter is an independent trial.
        foreach: multi-tensor ``torch._foreach_*`` path (default: on CUDA).
    """
    if len(params) == 0:
        return
    foreach = resolve_foreach(foreach, params)
    _descend(params, grads, momentum_buffers, lr=lr, lam=lam, epoch=epoch, weight_decay=weight_decay,
             eps=eps, trial_axis=trial_axis, foreach=foreach, alphas=alphas if sphere_lr else None)
    # Back onto the spheres; |pre-projection| * alpha is the Euclidean run's norm (similar triangles).
    if foreach:
        if trial_axis:
            norms = [_norm(p, True) for p in params]
        else:
            norms = list(torch._foreach_norm(params))
        if sphere_lr:
            torch._foreach_mul_(alphas, torch._foreach_div(norms, radii))
        torch._foreach_mul_(params, torch._foreach_div(radii, norms))
    else:
        for p, radius, alpha in zip(params, radii, alphas):
            norm = _norm(p, trial_axis)
            if sphere_lr:
                alpha.mul_(norm / radius)
            p.mul_(radius / norm)
    _update_momentum(momentum_buffers, grads, beta=beta, foreach=foreach)


class AdaRemS(AdaRem):
    r"""AdaRem-S (003 Algorithm 2): AdaRem on spheres for scale-invariant weights.

    Spherical parameters (default: every parameter with ``ndim >= 2`` after the
    trial axis; override per group with ``spherical=True/False``) keep their
    initial norm :math:`R` and use the sphere learning rate :math:`\eta/\alpha_t^2`,
    where :math:`\alpha_t = |\theta^E_t|/R` follows the norm of the equivalent
    unconstrained AdaRem run with weight decay :math:`\gamma`:

    .. math::

        \tilde\theta = (1-\eta\gamma)\hat\theta_t - \frac{\eta}{\alpha_t^2}\, a_t\odot g_t,\qquad
        \alpha_{t+1} = \alpha_t|\tilde\theta|/R,\qquad
        \hat\theta_{t+1} = R\,\tilde\theta/|\tilde\theta|

    with AdaRem's :math:`a_t` and :math:`m_t` (:class:`~lcamlab.optim.adarem.AdaRem`).
    The other parameters follow plain AdaRem. For a scale-invariant loss,
    :math:`\hat\theta_t/R` equals the direction of the Euclidean weight-decayed
    run wherever the two share :math:`a_t` (module docstring: derivation and
    limits). ``state[p]["alpha"]`` and ``state[p]["radius"]`` hold
    :math:`\alpha_t` and :math:`R`.

    Args:
        params: iterable of parameters or param-group dicts.
        lr: base (Euclidean) learning rate :math:`\eta`, required; 003 uses
            SGD-momentum's (0.4 at batch 1024 on ImageNet).
        beta: momentum decay in [0, 1), default 0.9.
        lam: :math:`\lambda` in [0, 1], default 0.999.
        weight_decay: :math:`\gamma`: for spherical parameters the decay of the
            equivalent Euclidean run (it shrinks :math:`\alpha`, which raises the
            sphere rate: Li & Arora's exponential schedule); for the others
            AdaRem's decay.
        eps: :math:`\epsilon > 0`, default 1e-8.
        spherical: ``None`` (default: ``ndim >= 2``), ``True`` or ``False``; a
            per-group setting.
        sphere_lr: ``True`` (003's SLR); ``False`` is the plain-rate ablation.
        trial_axis: dim 0 of every parameter is an independent trial; :math:`R`
            and :math:`\alpha` are then per trial.
        foreach: multi-tensor ``torch._foreach_*`` path (default: on CUDA).

    Reference: 003, section 3.4 (scale invariance, sphere learning rate) and Algorithm 2.

    Example:
        >>> import torch
        >>> from lcamlab.optim.adarem_s import AdaRemS
        >>> w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # 2-D: spherical, R = 5
        >>> opt = AdaRemS([w], lr=0.1, weight_decay=0.1)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     u = w / w.norm()  # a scale-invariant loss
        ...     loss = (u[0, 0] - 1.0) ** 2
        ...     loss.backward()
        ...     opt.step()
        >>> round(float(w.detach().norm()), 6)
        5.0
        >>> bool(opt.state[w]["alpha"] < 1.0)  # the Euclidean twin decayed
        True
    """

    _state_key = "adarem_s"
    _group_fallbacks = {**AdaRem._group_fallbacks, "spherical": None, "sphere_lr": True}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor,
        beta: float = 0.9,
        lam: float = 0.999,
        weight_decay: float = 0.0,
        eps: float = 1e-8,
        spherical: bool | None = None,
        sphere_lr: bool = True,
        trial_axis: bool = False,
        foreach: bool | None = None,
    ) -> None:
        self._sphere_defaults = dict(spherical=spherical, sphere_lr=sphere_lr)
        super().__init__(params, lr=lr, beta=beta, lam=lam, weight_decay=weight_decay, eps=eps,
                         trial_axis=trial_axis, foreach=foreach)

    def _more_defaults(self) -> dict[str, Any]:
        return dict(self._sphere_defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        group["spherical"] = check_bool("spherical", group["spherical"], optional=True,
                                        note="None: the parameters with ndim >= 2")
        group["sphere_lr"] = check_bool("sphere_lr", group["sphere_lr"])

    def is_spherical(self, p: Tensor, group: dict[str, Any]) -> bool:
        """Whether ``p`` (a parameter of ``group``) lives on a sphere."""
        if group["spherical"] is not None:
            return bool(group["spherical"])
        return p.dim() - (1 if self.trial_axis else 0) >= 2

    def _step(self, loss: None) -> None:
        for group in self.param_groups:
            flat: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
            sphere: tuple[list[Tensor], ...] = ([], [], [], [], [])
            collected: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
            self._init_group(group, *collected)
            for p, g, m in zip(*collected):
                if not self.is_spherical(p, group):
                    for lst, x in zip(flat, (p, g, m)):
                        lst.append(x)
                    continue
                state = self.state[p]
                if "radius" not in state:
                    state["radius"] = _norm(p, self.trial_axis).clone()
                    state["alpha"] = torch.ones_like(state["radius"])
                for lst, x in zip(sphere, (p, g, m, state["radius"], state["alpha"])):
                    lst.append(x)
            settings = self._settings(group)
            adarem(*flat, **settings)
            adarem_s(*sphere, sphere_lr=group["sphere_lr"], **settings)
        self._stepped_in_epoch.fill_(True)
