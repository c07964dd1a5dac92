r"""SpringPair: the two coupled weight groups of 000 Figures 1-2 as a quadratic toy.

The LCAM paper (000 sections 3.1-3.4, 001 section 3.1) pictures training as two
coupled groups of weights tied together like the two ends of a spring: a light,
quick, *non-sparse* group :math:`\Theta_n` and a heavy, slow, *sparse* group
:math:`\Theta_s`. :class:`SpringPair` is the smallest system with exactly that
structure: one scalar per group, each tied to its own optimum by its own spring
and tied to the other by a coupling spring (the paper's "traction rod"
:math:`L_\eta`), with stochastic-gradient noise as in the diffusion picture of
004 section 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lcamlab.toys.base import (
    ToySystem,
    check_nonnegative,
    check_positive,
    check_probability,
    per_trial,
)

__all__ = ["SpringPair"]


class SpringPair(ToySystem):
    r"""Two coupled weights, a stiff/light :math:`\Theta_n` and a soft/heavy :math:`\Theta_s`.

    With :math:`x = \theta - \theta^*` the displacement from the optimum, the
    population loss is

    .. math::

        L(\theta) = \tfrac12 x^\top H x + \sigma^2, \qquad
        H = \begin{pmatrix} a_n & -\rho\sqrt{a_n a_s} \\ -\rho\sqrt{a_n a_s} & a_s \end{pmatrix},
        \qquad a_s = a_n / r .

    As springs: :math:`\tfrac12 x^\top H x = \tfrac12(1-\rho)(a_n x_n^2 + a_s x_s^2)
    + \tfrac12\rho\,(\sqrt{a_n}\,x_n - \sqrt{a_s}\,x_s)^2`, each weight tied to its
    optimum by its own spring and the two tied to each other by a coupling
    spring of stiffness :math:`\rho` (the paper's "traction rod" :math:`L_\eta`).
    :math:`a_n` (``stiffness``) is the curvature of the light weight,
    :math:`a_s = a_n/r` that of the heavy one (``mass_ratio`` :math:`r`: under
    gradient descent a weight's response time is 1/curvature, which is what the
    paper calls its mass), :math:`\rho \in [0, 1)` (``coupling``) the coupling:
    0 for independent weights, towards 1 a rigid rod (a long, narrow, tilted
    valley whose slow direction has curvature :math:`\approx a_s(1-\rho^2)`).
    The optimum :math:`\theta^*` is a knob; the loss there is :math:`\sigma^2`.

    **Mini-batches.** One example is a shift :math:`\xi \sim \mathcal N(0, \sigma^2 H^{-1})`
    of the optimum with per-example loss :math:`\ell(\theta;\xi) = \tfrac12 (x-\xi)^\top H (x-\xi)`
    (least squares with noisy targets). A mini-batch averages :math:`B` examples:

    .. math::

        L_B(\theta) = \tfrac12\,\lVert H^{1/2}x - \eta\rVert^2 + \tfrac{\sigma^2}{2B}\,\chi^2_{2(B-1)},
        \qquad \eta = H^{1/2}\bar\xi \sim \mathcal N\!\big(0, \tfrac{\sigma^2}{B} I\big),

        \nabla L_B = H x - H^{1/2}\eta, \qquad
        \operatorname{Cov}[\nabla L_B] = \frac{\sigma^2}{B}\,H .

    The gradient noise covariance is the Hessian over the batch size, the
    diffusion picture of 004 section 2 (eq. 3; :math:`\sigma = 1` is its
    Fisher = Hessian case). The :math:`\chi^2` term is the examples' scatter
    about their mean, which does not depend on :math:`\theta` but makes the
    *value* of the mini-batch loss noisy, as in real training; :meth:`sample_batch`
    draws these two sufficient statistics, which is exactly equivalent in
    distribution to averaging :math:`B` examples (sample mean and scatter of
    Gaussians are independent) at a cost independent of :math:`B`.

    **Which side is** :math:`\Theta_n` **on?** For fixed :math:`\theta_s` the
    light weight oscillates about the bottom of its valley

    .. math::

        c_n(\theta_s) = \theta_n^* + \rho\sqrt{a_s/a_n}\,(\theta_s - \theta_s^*),

    and the loss splits exactly into its part and the heavy weight's part
    (:meth:`loss_split`):

    .. math::

        \tfrac12 x^\top H x = \underbrace{\tfrac12 a_n\,(\theta_n - c_n)^2}_{L_n}
            + \underbrace{\tfrac12 a_s (1-\rho^2)\, x_s^2}_{L_s}.

    000 eq. (12), :math:`\Delta\mathrm{Loss} \approx k\,\Delta L_n`, is the claim
    that the loss's changes come mostly from :math:`L_n`.

    **Centre of mass** (:meth:`centre_of_mass`): with masses :math:`m_n = 1/a_n`,
    :math:`m_s = 1/a_s` (response times), :math:`X = (m_n\theta_n + m_s\theta_s)/(m_n + m_s)`;
    the traction of 000 section 3.4 is a drift of :math:`X`.

    Args:
        trials: number of independent trials ``T`` (dim 0 of the parameters).
        stiffness: :math:`a_n > 0`, float or ``(T,)``.
        mass_ratio: :math:`r = a_n / a_s > 0`, float or ``(T,)``.
        coupling: :math:`\rho \in [0, 1)`, float or ``(T,)``.
        optimum: :math:`(\theta_n^*, \theta_s^*)`, a pair or ``(T, 2)``.
        start: the initial point :math:`\theta_0`, a pair or ``(T, 2)``.
        noise: :math:`\sigma \ge 0`, float or ``(T,)``.
        batch_size: :math:`B \ge 1`.
        dtype: parameter dtype (float32 for speed, float64 for exactness).

    Reference: 000 sections 3.1-3.4 (Figures 1-2, eq. 12), 001 section 3.1,
    004 section 2 (noise covariance).
    """

    coordinate_names = ("theta_n", "theta_s")

    def __init__(
        self,
        trials: int = 100,
        *,
        stiffness: float | Sequence[float] | Tensor = 1.0,
        mass_ratio: float | Sequence[float] | Tensor = 20.0,
        coupling: float | Sequence[float] | Tensor = 0.8,
        optimum: Sequence[float] | Tensor = (1.0, 1.0),
        start: Sequence[float] | Tensor = (-1.0, -1.0),
        noise: float | Sequence[float] | Tensor = 0.3,
        batch_size: int = 16,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"Invalid trials: {trials!r} (must be an int >= 1)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size!r} (must be an int >= 1)")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"Invalid dtype: {dtype} (use torch.float32 or torch.float64)")
        check_positive("stiffness", stiffness)
        check_positive("mass_ratio", mass_ratio)
        check_probability("coupling", coupling)
        check_nonnegative("noise", noise)
        self.trials = trials
        self.dim = 2
        self.dtype = dtype
        self.batch_size = batch_size
        self.stiffness = per_trial("stiffness", stiffness, trials, dtype)
        self.mass_ratio = per_trial("mass_ratio", mass_ratio, trials, dtype)
        self.coupling = per_trial("coupling", coupling, trials, dtype)
        self.noise = per_trial("noise", noise, trials, dtype)
        self._optimum = self._point("optimum", optimum)
        self._start = self._point("start", start)
        self._derive()

    def _point(self, name: str, value: Any) -> Tensor:
        point = torch.as_tensor(value, dtype=self.dtype)
        if point.shape == (2,):
            point = point.expand(self.trials, 2)
        if point.shape != (self.trials, 2) or not bool(torch.isfinite(point).all()):
            raise ValueError(
                f"Invalid {name}: {value!r} (expected a finite pair (theta_n, theta_s) or shape ({self.trials}, 2))"
            )
        return point.clone()

    def _derive(self) -> None:
        """Hessian entries, its square root (closed form for 2x2 SPD) and the split's constants."""
        a_n = self.stiffness
        a_s = self.stiffness / self.mass_ratio
        self.h_nn = a_n
        self.h_ss = a_s
        self.h_ns = -self.coupling * torch.sqrt(a_n * a_s)
        # sqrt of a 2x2 SPD matrix: (H + sqrt(det H) I) / sqrt(tr H + 2 sqrt(det H)).
        root_det = torch.sqrt(self.h_nn * self.h_ss - self.h_ns**2)
        scale = torch.sqrt(self.h_nn + self.h_ss + 2 * root_det)
        sqrt_h = torch.empty(self.trials, 2, 2, dtype=self.dtype)
        sqrt_h[:, 0, 0] = (self.h_nn + root_det) / scale
        sqrt_h[:, 1, 1] = (self.h_ss + root_det) / scale
        sqrt_h[:, 0, 1] = self.h_ns / scale
        sqrt_h[:, 1, 0] = self.h_ns / scale
        self.sqrt_hessian = sqrt_h
        # Columns of H^{1/2} as (T, 2): H^{1/2} v = col0 * v_0 + col1 * v_1, two elementwise ops
        # per product instead of a batched matmul of T tiny matrices (the step's hot path).
        self._sqrt_col0 = sqrt_h[:, :, 0].contiguous()
        self._sqrt_col1 = sqrt_h[:, :, 1].contiguous()
        self.noise_std = self.noise / math.sqrt(self.batch_size)
        self.schur_s = self.h_ss - self.h_ns**2 / self.h_nn
        # (trials, 1) views for broadcasting against (trials, 2)
        self._noise_std_col = self.noise_std.unsqueeze(1)
        self._scatter_scale = 0.5 * self.noise**2 / self.batch_size
        self._scatter_shape = torch.full((self.trials,), float(self.batch_size - 1), dtype=self.dtype)

    # -- knobs ---------------------------------------------------------------------------------

    def hessian(self) -> Tensor:
        """:math:`H`, ``(T, 2, 2)``."""
        h = torch.empty(self.trials, 2, 2, dtype=self.dtype)
        h[:, 0, 0] = self.h_nn
        h[:, 1, 1] = self.h_ss
        h[:, 0, 1] = self.h_ns
        h[:, 1, 0] = self.h_ns
        return h

    def noise_covariance(self) -> Tensor:
        r"""The documented gradient-noise covariance :math:`\sigma^2 H / B`, ``(T, 2, 2)``."""
        return self.hessian() * (self.noise**2 / self.batch_size).view(-1, 1, 1)

    def config(self) -> dict[str, Any]:
        def knob(t: Tensor) -> Any:
            return float(t[0]) if bool((t == t[0]).all()) else t.tolist()

        return {
            "toy": "SpringPair",
            "trials": self.trials,
            "stiffness": knob(self.stiffness),
            "mass_ratio": knob(self.mass_ratio),
            "coupling": knob(self.coupling),
            "noise": knob(self.noise),
            "optimum": self._optimum[0].tolist() if bool((self._optimum == self._optimum[0]).all()) else self._optimum.tolist(),
            "start": self._start[0].tolist() if bool((self._start == self._start[0]).all()) else self._start.tolist(),
            "batch_size": self.batch_size,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def subset(self, index: slice | Sequence[int] | Tensor) -> "SpringPair":
        pick = lambda t: self._index_knob(t, index)  # noqa: E731
        return SpringPair(
            self._count(index, self.trials),
            stiffness=pick(self.stiffness),
            mass_ratio=pick(self.mass_ratio),
            coupling=pick(self.coupling),
            optimum=pick(self._optimum),
            start=pick(self._start),
            noise=pick(self.noise),
            batch_size=self.batch_size,
            dtype=self.dtype,
        )

    # -- data ----------------------------------------------------------------------------------

    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        r"""One mini-batch per trial: ``(eta (T, 2), scatter (T,))``.

        ``eta`` :math:`= H^{1/2}\bar\xi \sim \mathcal N(0, \sigma^2/B\, I)`` and
        ``scatter`` :math:`= \tfrac{\sigma^2}{2B}\chi^2_{2(B-1)}` (drawn as
        :math:`2\,\mathrm{Gamma}(B-1)`).
        """
        eta = torch.randn((self.trials, 2), generator=generator, dtype=self.dtype).mul_(self._noise_std_col)
        if self.batch_size > 1:
            # chi^2 with 2(B-1) degrees of freedom = 2 * Gamma(B-1, 1).
            gamma = torch._standard_gamma(self._scatter_shape, generator=generator)
            scatter = gamma.mul_(2.0 * self._scatter_scale)
        else:
            scatter = torch.zeros(self.trials, dtype=self.dtype)
        return eta, scatter

    # -- loss ----------------------------------------------------------------------------------

    def _sqrt_h_times(self, v: Tensor) -> Tensor:
        return torch.addcmul(self._sqrt_col0 * v[:, :1], self._sqrt_col1, v[:, 1:])

    def _residual(self, theta: Tensor, eta: Tensor) -> Tensor:
        r""":math:`u = H^{1/2}(\theta - \theta^*) - \eta`."""
        return self._sqrt_h_times(theta - self._optimum).sub_(eta)

    def loss_and_grad(self, theta: Tensor, batch: tuple[Tensor, ...], *, need_loss: bool = True) -> tuple[Tensor, Tensor]:
        eta, scatter = batch
        u = self._residual(theta, eta)
        loss = torch.add(scatter, (u * u).sum(dim=1), alpha=0.5)
        return loss, self._sqrt_h_times(u)

    def minibatch_loss(self, theta: Tensor, batch: tuple[Tensor, ...]) -> Tensor:
        eta, scatter = batch
        u = self._residual(theta, eta)
        return 0.5 * (u**2).sum(dim=1) + scatter

    def population_loss(self, theta: Tensor) -> Tensor:
        """:math:`\\tfrac12 x^\\top H x + \\sigma^2`; ``theta`` may have leading dims ``(..., T, 2)``."""
        x = theta - self._optimum
        quad = self.h_nn * x[..., 0] ** 2 + 2 * self.h_ns * x[..., 0] * x[..., 1] + self.h_ss * x[..., 1] ** 2
        return 0.5 * quad + self.noise**2

    def optimum(self) -> Tensor:
        return self._optimum.clone()

    def optimal_loss(self) -> Tensor:
        return self.noise**2

    def initial_point(self) -> Tensor:
        return self._start.clone()

    # -- the spring picture ----------------------------------------------------------------------

    def centre_n(self, theta_s: Tensor) -> Tensor:
        r"""Bottom of :math:`\Theta_n`'s valley for given :math:`\theta_s`: :math:`c_n(\theta_s)`.

        ``theta_s`` has shape ``(..., T)`` (trial axis last).
        """
        return self._optimum[:, 0] - (self.h_ns / self.h_nn) * (theta_s - self._optimum[:, 1])

    def loss_split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(L_n, L_s)`` with :math:`L_n + L_s = \tfrac12 x^\top H x` exactly.

        ``theta`` has shape ``(..., T, 2)``; results ``(..., T)``.
        """
        displacement_n = theta[..., 0] - self.centre_n(theta[..., 1])
        x_s = theta[..., 1] - self._optimum[:, 1]
        return 0.5 * self.h_nn * displacement_n**2, 0.5 * self.schur_s * x_s**2

    def centre_of_mass(self, theta: Tensor) -> Tensor:
        r""":math:`X = (\theta_n/a_n + \theta_s/a_s) / (1/a_n + 1/a_s)`, shape ``(..., T)``."""
        m_n = 1.0 / self.h_nn
        m_s = 1.0 / self.h_ss
        return (m_n * theta[..., 0] + m_s * theta[..., 1]) / (m_n + m_s)
