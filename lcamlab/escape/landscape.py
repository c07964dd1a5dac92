r"""The Styblinski-Tang training loss of the Adai paper, Appendix E, with sharpness and exact critical points.

The per-sample loss of a parameter vector :math:`\theta \in \mathbb R^n` on a data
sample :math:`x \in \mathbb R^n` is the Styblinski-Tang function evaluated at the
rescaled, shifted point :math:`y = \sqrt k\,\theta - x`:

.. math::

    f(y) = \tfrac12 \sum_{i=1}^n \left(y_i^4 - 16 y_i^2 + 5 y_i\right), \qquad
    \ell(\theta; x) = f(\sqrt k\,\theta - x), \qquad
    L(\theta) = \frac1N \sum_{j=1}^N \ell(\theta; x_j).

The training set is :math:`N` Gaussian samples :math:`x_j \sim \mathcal N(0, \sigma^2 I)`
(the Adai paper, Appendix E: 50 000 samples; :math:`\sigma` is the *noise scale*). Rescaling
every parameter by :math:`\sqrt k` multiplies the Hessian by :math:`k` and leaves
the loss values, hence the barrier heights, unchanged: :math:`k` is the relative
sharpness of the Adai paper's Figure 6.

It is convenient to work in the rescaled coordinates :math:`u = \sqrt k\,\theta`,
where the landscape does not depend on :math:`k`. Per coordinate the training
loss is a quartic whose coefficients are the data's empirical moments
:math:`m_p = \frac1N\sum_j x_{ji}^p`:

.. math::

    L_i(u) = \tfrac12 u^4 - 2 m_1 u^3 + (3 m_2 - 8) u^2 + (-2 m_3 + 16 m_1 + \tfrac52) u
             + \tfrac12 m_4 - 8 m_2 - \tfrac52 m_1 .

**Decision** (documented in :mod:`lcamlab.escape`): the data noise shifts the
critical points of the mean loss (for :math:`\sigma = 1`, :math:`E\,L_i = \frac12(u^4 - 10u^2 + 5u)`
+ const: minima near -2.35 and +2.09 instead of the noiseless -2.90 and +2.75),
so the valley minimum and the valley boundary are computed from the actual
training loss, as the real roots of :math:`L_i'(u)` (:func:`numpy.roots`), never
hard-coded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "styblinski_tang",
    "make_training_data",
    "training_loss_coefficients",
    "CriticalPoints",
    "critical_points",
    "StyblinskiTangLandscape",
]


def styblinski_tang(y: Tensor) -> Tensor:
    r"""The Styblinski-Tang function summed over the last dimension.

    .. math:: f(y) = \tfrac12 \sum_i (y_i^4 - 16 y_i^2 + 5 y_i)

    Noiseless 1-D critical points: minima -2.903534 (global) and +2.746803 (local),
    maximum +0.156731 (the Adai paper, Appendix E).
    """
    y2 = y * y
    return 0.5 * ((y2 - 16.0) * y2 + 5.0 * y).sum(-1)


def make_training_data(
    n_samples: int = 50_000,
    dim: int = 10,
    noise_scale: float = 1.0,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    r"""The training set :math:`x_j \sim \mathcal N(0, \sigma^2 I_n)`, ``(n_samples, dim)``, on the CPU.

    Drawn in float64 from a :class:`torch.Generator` seeded with ``seed`` and
    then cast, so the same seed gives the same data in every dtype (the Adai paper, Appendix E:
    50 000 Gaussian samples).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"Invalid number of training samples: {n_samples!r} (must be an integer >= 1)")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"Invalid dimension: {dim!r} (must be an integer >= 1)")
    if not (isinstance(noise_scale, (int, float)) and math.isfinite(noise_scale) and noise_scale >= 0):
        raise ValueError(f"Invalid noise scale: {noise_scale!r} (must be a finite number >= 0)")
    generator = torch.Generator().manual_seed(int(seed))
    data = torch.randn(n_samples, dim, generator=generator, dtype=torch.float64) * float(noise_scale)
    return data.to(dtype)


def training_loss_coefficients(data: Tensor | np.ndarray) -> np.ndarray:
    r"""Per-coordinate quartic coefficients of the training loss in :math:`u = \sqrt k\,\theta`.

    .. math::

        L_i(u) = \tfrac12 u^4 - 2 m_1 u^3 + (3 m_2 - 8) u^2 + (-2 m_3 + 16 m_1 + \tfrac52) u
                 + \tfrac12 m_4 - 8 m_2 - \tfrac52 m_1,
        \qquad m_p = \frac1N \sum_j x_{ji}^p .

    Args:
        data: training samples, ``(N, dim)``.

    Returns:
        float64 array ``(dim, 5)``, highest power first (:func:`numpy.polyval` order).
    """
    x = np.asarray(data.detach().cpu().double() if isinstance(data, Tensor) else data, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"Invalid training data shape {x.shape} (expected (samples, dim))")
    m1, m2, m3, m4 = (np.mean(x**p, axis=0) for p in (1, 2, 3, 4))
    return np.stack(
        [
            np.full_like(m1, 0.5),
            -2.0 * m1,
            3.0 * m2 - 8.0,
            -2.0 * m3 + 16.0 * m1 + 2.5,
            0.5 * m4 - 8.0 * m2 - 2.5 * m1,
        ],
        axis=1,
    )


@dataclass(frozen=True)
class CriticalPoints:
    r"""Critical points of the training loss per coordinate, in :math:`u = \sqrt k\,\theta` units.

    All arrays have shape ``(dim,)``. ``shallow_min`` is the bottom of the
    shallower valley (the higher of the two minima; the saddle's stable coordinates sit there),
    ``boundary`` the local maximum that separates it from ``deep_min``;
    ``direction`` is +1 where the shallow valley lies at ``u > boundary`` and -1
    otherwise. Curvatures are :math:`L_i''` at each point (multiply by :math:`k`
    for the Hessian eigenvalues in :math:`\theta`); ``barrier`` is
    :math:`L_i(\text{boundary}) - L_i(\text{shallow\_min})`.
    """

    shallow_min: np.ndarray
    boundary: np.ndarray
    deep_min: np.ndarray
    direction: np.ndarray
    loss_shallow: np.ndarray
    loss_boundary: np.ndarray
    loss_deep: np.ndarray
    curvature_shallow: np.ndarray
    curvature_boundary: np.ndarray
    curvature_deep: np.ndarray

    @property
    def barrier(self) -> np.ndarray:
        """Barrier height out of the shallow valley, per coordinate."""
        return self.loss_boundary - self.loss_shallow

    @property
    def dim(self) -> int:
        return int(self.shallow_min.shape[0])

    def in_theta(self, k: float) -> dict[str, np.ndarray]:
        r"""Positions in :math:`\theta = u / \sqrt k` and Hessian eigenvalues :math:`k L_i''` at sharpness ``k``."""
        if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
            raise ValueError(f"Invalid sharpness k: {k!r} (must be > 0)")
        root = math.sqrt(k)
        return {
            "shallow_min": self.shallow_min / root,
            "boundary": self.boundary / root,
            "deep_min": self.deep_min / root,
            "hessian_shallow": k * self.curvature_shallow,
            "hessian_boundary": k * self.curvature_boundary,
            "hessian_deep": k * self.curvature_deep,
        }


def critical_points(coefficients: np.ndarray, *, imag_tol: float = 1e-9) -> CriticalPoints:
    r"""Exact critical points of each coordinate's quartic: the real roots of :math:`L_i'(u)`.

    .. math:: L_i'(u) = 4 a_0 u^3 + 3 a_1 u^2 + 2 a_2 u + a_3 = 0

    solved with :func:`numpy.roots` and polished by two Newton steps in float64.
    A coordinate with a single real root has one valley only: there is no
    boundary to cross, and a :class:`ValueError` says so (lower the noise scale).

    Args:
        coefficients: ``(dim, 5)`` quartic coefficients, highest power first
            (:func:`training_loss_coefficients`).
        imag_tol: roots with ``|imag| <= imag_tol * max(1, |root|)`` count as real.

    Returns:
        :class:`CriticalPoints`.
    """
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if coefficients.ndim != 2 or coefficients.shape[1] != 5:
        raise ValueError(f"Invalid quartic coefficients shape {coefficients.shape} (expected (dim, 5))")
    if np.any(coefficients[:, 0] <= 0):
        raise ValueError("Invalid quartic coefficients: the leading coefficient must be > 0 (a bounded-below loss)")
    fields: dict[str, list[float]] = {name: [] for name in CriticalPoints.__dataclass_fields__}
    for i, quartic in enumerate(coefficients):
        derivative = np.polyder(quartic)
        second = np.polyder(derivative)
        roots = np.roots(derivative)
        real = np.sort(roots[np.abs(roots.imag) <= imag_tol * np.maximum(1.0, np.abs(roots))].real)
        if real.size != 3 or np.min(np.diff(real)) <= 1e-9:
            raise ValueError(
                f"Unreachable valley boundary: coordinate {i} of the training loss has a single valley "
                f"(critical points {np.round(roots, 4).tolist()}), so there is no boundary to cross; "
                f"lower the noise scale (data standard deviation)"
            )
        for _ in range(2):  # Newton polish: roots of a cubic to full float64 accuracy
            real = real - np.polyval(derivative, real) / np.polyval(second, real)
        values = np.polyval(quartic, real)
        low, top, high = real
        shallow_is_high = values[2] >= values[0]
        shallow, deep = (high, low) if shallow_is_high else (low, high)
        fields["shallow_min"].append(shallow)
        fields["boundary"].append(top)
        fields["deep_min"].append(deep)
        fields["direction"].append(1.0 if shallow_is_high else -1.0)
        fields["loss_shallow"].append(np.polyval(quartic, shallow))
        fields["loss_boundary"].append(np.polyval(quartic, top))
        fields["loss_deep"].append(np.polyval(quartic, deep))
        fields["curvature_shallow"].append(np.polyval(second, shallow))
        fields["curvature_boundary"].append(np.polyval(second, top))
        fields["curvature_deep"].append(np.polyval(second, deep))
    return CriticalPoints(**{name: np.asarray(values, dtype=np.float64) for name, values in fields.items()})


class StyblinskiTangLandscape:
    r"""The training set, its per-sample loss and gradient, and the exact critical points.

    .. math::

        \nabla_\theta\, \ell(\theta; x) = \sqrt k\, f'(\sqrt k\,\theta - x), \qquad
        f'(y) = 2y^3 - 16y + \tfrac52 .

    The sharpness :math:`k` is *not* a property of the landscape: every call takes
    a per-trial ``sqrt_k`` tensor, so trials of different sharpness share one
    tensor (the Adai paper's Appendix E rescales parameters by :math:`\sqrt k`).

    Args:
        dim: number of coordinates :math:`n` (the Adai paper: 10).
        n_samples: training-set size :math:`N` (the Adai paper: 50 000).
        noise_scale: data standard deviation :math:`\sigma`; 0 means no gradient
            noise at all, so a trial started at a minimum never moves and a
            :class:`ValueError` is raised by the experiments.
        seed: seed of the training set.
        device, dtype: where the training set lives for the simulation.
    """

    def __init__(
        self,
        dim: int = 10,
        n_samples: int = 50_000,
        noise_scale: float = 1.0,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        data64 = make_training_data(n_samples, dim, noise_scale, seed=seed)
        self.dim = dim
        self.n_samples = n_samples
        self.noise_scale = float(noise_scale)
        self.seed = int(seed)
        self.coefficients = training_loss_coefficients(data64)
        self.points = critical_points(self.coefficients)
        self.data = data64.to(device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    def tensor(self, values: np.ndarray) -> Tensor:
        """A per-coordinate numpy array as a ``(dim,)`` tensor on the landscape's device and dtype."""
        return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(device=self.device, dtype=self.dtype)

    def training_loss_u(self, u: np.ndarray | float, coordinate: int) -> np.ndarray:
        """The full training loss of one coordinate at rescaled position(s) ``u`` (float64, numpy)."""
        return np.polyval(self.coefficients[coordinate], u)
