r"""Where a trial starts and what counts as having left, in rescaled units :math:`u = \sqrt k\,\theta`.

* **half-space** (:class:`ExitRegion` ``kind="halfspace"``): a coordinate is outside once it
  lies beyond its valley boundary (the ridge, its local maximum). The sharp-valley design
  starts at the deep minimum (:func:`lcamlab.escape.design.sharp_valley_region`);
  :func:`valley_region` starts at the bottom of the shallower valley of the actual training
  loss (:class:`~lcamlab.escape.landscape.CriticalPoints`), the region on which the tests
  check the eager runner against the per-trial loop and the numba loop.
* **saddle** (:func:`saddle_region`, the Adai paper, Theorems 1-2, Propositions 1 and 3): every
  trial starts on the index-1 saddle of the same loss, coordinate 0 on its ridge,
  the others at the bottom of their shallow valley; it has left once
  :math:`|u_0 - u_\text{ridge}|` exceeds ``radius``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lcamlab.escape.landscape import StyblinskiTangLandscape

__all__ = ["ExitRegion", "valley_region", "saddle_region"]


@dataclass(frozen=True)
class ExitRegion:
    r"""Start point and exit rule, in rescaled units :math:`u = \sqrt k\,\theta` (numpy, ``(dim,)``).

    ``kind="halfspace"`` (valley): coordinate :math:`i` is outside when
    :math:`s_i (u_i - b_i) < 0`, beyond the valley boundary :math:`b_i` (:math:`s_i` the
    valley's side). ``kind="slab"`` (saddle): coordinate :math:`i` is outside when
    :math:`|u_i - c_i| > r_i`, with :math:`r_i = \infty` for coordinates that are not watched.
    """

    kind: str
    start: np.ndarray
    boundary: np.ndarray
    direction: np.ndarray

    def offset(self, boundary: Tensor, direction: Tensor) -> Tensor:
        """The constant of :meth:`outside`: :math:`s_i b_i` (half-space) or the centre (slab)."""
        return boundary * direction if self.kind == "halfspace" else boundary

    def outside(self, u: Tensor, offset: Tensor, direction: Tensor, out: Tensor | None = None) -> Tensor:
        """Per-coordinate "how far outside" (``> 0`` = outside), ``(trials, dim)``, written to ``out`` if given.

        ``offset`` comes from :meth:`offset`; for a slab ``direction`` holds the radii.
        """
        if self.kind == "halfspace":
            return torch.addcmul(offset, u, direction, value=-1.0, out=out)
        return torch.sub(u, offset, out=out).abs_().sub_(direction)


def valley_region(landscape: StyblinskiTangLandscape) -> ExitRegion:
    """Start at the shallow valley's bottom; the boundary is each coordinate's local maximum."""
    points = landscape.points
    return ExitRegion("halfspace", points.shallow_min.copy(), points.boundary.copy(), points.direction.copy())


def saddle_region(landscape: StyblinskiTangLandscape, radius: float) -> ExitRegion:
    r"""Start on the index-1 saddle: coordinate 0 on its ridge, the others at their shallow minima.

    The neighbourhood is the slab :math:`|u_0 - u_\text{ridge}| \le r` along the
    unstable (negative-curvature) direction. The stable coordinates are not watched:
    their fluctuations at the bottom of a valley, which the gradient noise makes
    at any minimum, are not saddle escape.

    Raises ``ValueError`` if the slab reaches a minimum: trials would then settle
    inside it and never leave (an unreachable boundary).
    """
    points = landscape.points
    start = points.shallow_min.copy()
    start[0] = points.boundary[0]
    nearest = min(abs(points.boundary[0] - points.shallow_min[0]), abs(points.boundary[0] - points.deep_min[0]))
    if not radius < nearest:
        raise ValueError(
            f"Unreachable saddle-neighbourhood boundary: radius {radius} reaches the nearest minimum "
            f"(distance {nearest:.3f} in u units), where trials would settle without ever leaving; "
            f"use a radius below {nearest:.3f}"
        )
    radii = np.full_like(start, np.inf)
    radii[0] = float(radius)
    return ExitRegion("slab", start, start.copy(), radii)

