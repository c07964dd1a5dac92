r"""The optimizer zoo: every optimizer of the suite on classic 2-D landscapes.

Three landscapes, each a textbook difficulty for gradient descent:

* ``quadratic``: an ill-conditioned bowl :math:`f = \tfrac{1}{2}(x^2 + \kappa y^2)`
  (condition number :math:`\kappa`): plain SGD crawls along the flat
  direction while oscillating across the steep one; momentum fixes the crawl.
* ``rosenbrock``: :math:`f = (1-x)^2 + 100 (y - x^2)^2`, a curved, narrow
  valley with its minimum at (1, 1).
* ``saddle``: :math:`f = \tfrac{1}{2} x^2 - \tfrac{1}{2} y^2 + \tfrac{1}{4} y^4`, a strict
  saddle at the origin between two minima at :math:`(0, \pm 1)`; starting
  next to the saddle shows how fast each method leaves it (004 section 2).

A stochastic "mini-batch" version adds a linear data perturbation,
:math:`f_\xi(\theta) = f(\theta) + \sigma\,\xi^\top\theta` with
:math:`\xi \sim N(0, I)`, so the gradient carries noise of scale
:math:`\sigma` and the mini-batch loss fluctuates around :math:`f`, which is
what LCAM's running-mean test reads (000 section 3.4).

Every optimizer runs on the same landscape, start, noise sequence and budget
with a trial axis of size one, through the same code path the toy and escape
experiments use (``trial_axis=True`` for lcamlab's optimizers, torch's
elementwise optimizers as they are).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from lcamlab import style
from lcamlab.experiments.registry import OptimizerSpec, preset
from lcamlab.optim import optimizer_step, start_epoch

__all__ = ["Landscape", "LANDSCAPES", "ZOO_OPTIMIZERS", "ZooRun", "zoo_spec", "run_zoo",
           "plot_landscape", "plot_trajectories", "plot_losses", "plot_lcam_phases"]


@dataclass(frozen=True)
class Landscape:
    """A 2-D test function with its plotting window."""

    name: str
    title: str
    loss: Callable[[torch.Tensor], torch.Tensor]  # (..., 2) -> (...)
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    # Learning rate per optimizer key (registry presets), chosen so every method moves without diverging
    # within the default budget: momentum methods get a tenth of plain SGD's rate or
    # more (momentum 0.9 multiplies the effective step by ten), Adai ten times
    # momentum's (004's recommendation), AdaRem at most SGD's (its factor a <= 2).
    lr: dict[str, float] = field(default_factory=dict)


def _quadratic(theta: torch.Tensor, kappa: float = 25.0) -> torch.Tensor:
    return 0.5 * (theta[..., 0] ** 2 + kappa * theta[..., 1] ** 2)


def _rosenbrock(theta: torch.Tensor) -> torch.Tensor:
    x, y = theta[..., 0], theta[..., 1]
    return (1 - x) ** 2 + 100.0 * (y - x ** 2) ** 2


def _saddle(theta: torch.Tensor) -> torch.Tensor:
    x, y = theta[..., 0], theta[..., 1]
    return 0.5 * x ** 2 - 0.5 * y ** 2 + 0.25 * y ** 4


LANDSCAPES: dict[str, Landscape] = {
    "quadratic": Landscape(
        "quadratic", r"ill-conditioned quadratic $\frac{1}{2}(x^2 + 25y^2)$", _quadratic,
        start=(-4.5, 1.2), minima=((0.0, 0.0),), xlim=(-5.0, 1.5), ylim=(-1.6, 1.6),
        lr={"sgd": 0.07, "momentum": 0.007, "lcam-above": 0.007, "lcam-below": 0.007, "adagrad": 0.8,
            "rmsprop": 0.03, "adam": 0.15, "adai": 0.07, "adarem": 0.035},
    ),
    "rosenbrock": Landscape(
        "rosenbrock", r"Rosenbrock $(1-x)^2 + 100(y-x^2)^2$", _rosenbrock,
        start=(-1.2, 1.0), minima=((1.0, 1.0),), xlim=(-1.6, 1.5), ylim=(-0.4, 1.6),
        lr={"sgd": 1.5e-3, "momentum": 4e-4, "lcam-above": 4e-4, "lcam-below": 4e-4, "adagrad": 0.6,
            "rmsprop": 1e-2, "adam": 0.05, "adai": 4e-3, "adarem": 1.5e-3},
    ),
    "saddle": Landscape(
        "saddle", r"saddle $\frac{1}{2}x^2 - \frac{1}{2}y^2 + \frac{1}{4}y^4$", _saddle,
        start=(1.5, 1e-3), minima=((0.0, 1.0), (0.0, -1.0)), xlim=(-1.0, 1.8), ylim=(-1.5, 1.5),
        lr={"sgd": 0.05, "momentum": 0.005, "lcam-above": 0.005, "lcam-below": 0.005, "adagrad": 0.1,
            "rmsprop": 0.005, "adam": 0.02, "adai": 0.05, "adarem": 0.05},
    ),
}

# registry preset key -> description. LCAM's pairs are the paper's two orientations.
ZOO_OPTIMIZERS: dict[str, str] = {
    "sgd": "SGD",
    "momentum": "SGD + momentum 0.9",
    "lcam-above": "LCAM (0.9, 0.95): more momentum above the mean",
    "lcam-below": "LCAM (0.95, 0.9): more momentum below the mean",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adai": "Adai",
    "adarem": "AdaRem",
}


def zoo_spec(key: str, landscape: str, lr_scale: float = 1.0) -> OptimizerSpec:
    """Optimizer ``key`` (a :data:`ZOO_OPTIMIZERS` key, a registry preset) at ``landscape``'s learning rate."""
    if key not in ZOO_OPTIMIZERS:
        raise ValueError(f"Invalid optimizer: {key!r} (choose from {list(ZOO_OPTIMIZERS)})")
    return preset(key, LANDSCAPES[landscape].lr[key] * lr_scale)


@dataclass
class ZooRun:
    """One optimizer's run on one landscape."""

    optimizer: str
    landscape: str
    path: np.ndarray            # (steps + 1, 2) positions
    losses: np.ndarray          # (steps,) mini-batch losses
    true_losses: np.ndarray     # (steps + 1,) noiseless f along the path
    below: np.ndarray | None    # (steps,) LCAM's decisions (loss < running mean), else None
    running_mean: np.ndarray | None  # (steps,) the mean each loss was compared with

    @property
    def style_key(self) -> str:
        return self.optimizer


def run_zoo(
    landscape: str,
    optimizers: list[str] | None = None,
    *,
    steps: int = 300,
    noise: float = 0.2,
    epoch_length: int = 25,
    lr_scale: float = 1.0,
    seed: int = 0,
) -> dict[str, ZooRun]:
    r"""Run every optimizer on ``landscape`` from its start with the same noise sequence.

    Args:
        landscape: a :data:`LANDSCAPES` key.
        optimizers: :data:`ZOO_OPTIMIZERS` keys (default all).
        steps: iterations per optimizer.
        noise: :math:`\sigma`, the scale of the mini-batch perturbation (0: full-batch).
        epoch_length: steps per "epoch" for LCAM's running mean (``new_epoch`` every so many steps).
        lr_scale: multiplies every learning rate (to explore stability).
        seed: seed of the noise sequence (shared by all optimizers).
    """
    if landscape not in LANDSCAPES:
        raise ValueError(f"Invalid landscape: {landscape!r} (choose from {list(LANDSCAPES)})")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Invalid steps: {steps!r} (must be an integer >= 1)")
    if noise < 0:
        raise ValueError(f"Invalid noise: {noise} (must be >= 0)")
    if not isinstance(epoch_length, int) or epoch_length < 1:
        raise ValueError(f"Invalid epoch_length: {epoch_length!r} (must be an integer >= 1)")
    if not lr_scale > 0:
        raise ValueError(f"Invalid lr_scale: {lr_scale} (must be > 0)")
    spec = LANDSCAPES[landscape]
    keys = list(ZOO_OPTIMIZERS) if optimizers is None else list(optimizers)
    unknown = [k for k in keys if k not in ZOO_OPTIMIZERS]
    if unknown:
        raise ValueError(f"Invalid optimizer: {unknown[0]!r} (choose from {list(ZOO_OPTIMIZERS)})")
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(steps, 1, 2, generator=gen, dtype=torch.float64) * noise
    runs = {}
    for key in keys:
        theta = torch.tensor([spec.start], dtype=torch.float64, requires_grad=True)
        opt = zoo_spec(key, landscape, lr_scale).build([theta], trial_axis=True)
        is_lcam = hasattr(opt, "last_below")  # LCAM's decisions are recorded for the phase plot
        path = [theta.detach()[0].clone()]
        losses, below, means = [], [], []
        for t in range(steps):
            if t % epoch_length == 0:
                start_epoch(opt)
            opt.zero_grad()
            loss = spec.loss(theta) + (xi[t] * theta).sum(-1)  # (1,) mini-batch loss
            loss.sum().backward()
            optimizer_step(opt, loss.detach())
            if is_lcam:
                below.append(bool(opt.last_below[0]))
                means.append(float(opt.last_mean[0]))
            losses.append(loss.item())
            if not torch.isfinite(theta).all():
                raise FloatingPointError(
                    f"{key} diverged on {landscape} at step {t} with lr {spec.lr[key] * lr_scale:g}: "
                    f"lower lr_scale"
                )
            path.append(theta.detach()[0].clone())
        path_arr = torch.stack(path).numpy()
        with torch.no_grad():
            true = spec.loss(torch.from_numpy(path_arr)).numpy()
        runs[key] = ZooRun(key, landscape, path_arr, np.array(losses), true,
                           np.array(below) if is_lcam else None, np.array(means) if is_lcam else None)
    return runs


def plot_landscape(ax, landscape: str, *, levels: int = 30) -> None:
    """Log-spaced contours of the noiseless landscape, its minima as stars."""
    spec = LANDSCAPES[landscape]
    x = np.linspace(*spec.xlim, 300)
    y = np.linspace(*spec.ylim, 300)
    grid = torch.from_numpy(np.stack(np.meshgrid(x, y), axis=-1))
    z = spec.loss(grid).numpy()
    shifted = z - z.min() + 1e-3
    ax.contour(x, y, shifted, levels=np.geomspace(shifted.min() * 10, shifted.max(), levels),
               colors="0.75", linewidths=0.6)
    for minimum in spec.minima:
        ax.plot(*minimum, marker="*", color="k", markersize=9, linestyle="none", zorder=5)
    ax.plot(*spec.start, marker="o", color="k", markersize=4, zorder=5)
    ax.set_xlim(spec.xlim)
    ax.set_ylim(spec.ylim)
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.set_title(spec.title)


def plot_trajectories(ax, runs: dict[str, ZooRun]) -> None:
    """Every run's path over its landscape's contours."""
    first = next(iter(runs.values()))
    plot_landscape(ax, first.landscape)
    for run in runs.values():
        ax.plot(run.path[:, 0], run.path[:, 1], color=style.optimizer_color(run.style_key),
                label=ZOO_OPTIMIZERS[run.optimizer], linewidth=1.1, alpha=0.9)


def plot_losses(ax, runs: dict[str, ZooRun]) -> None:
    """The noiseless loss along each path (minus the landscape's minimum), log scale."""
    first = next(iter(runs.values()))
    spec = LANDSCAPES[first.landscape]
    floor = min(float(spec.loss(torch.tensor(m, dtype=torch.float64))) for m in spec.minima)
    for run in runs.values():
        ax.plot(np.maximum(run.true_losses - floor, 1e-12), color=style.optimizer_color(run.style_key),
                label=ZOO_OPTIMIZERS[run.optimizer])
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"$f(\theta) - f^\star$")


def plot_lcam_phases(ax_path, ax_loss, run: ZooRun) -> None:
    """LCAM's path with each step marked by its phase, and its loss against the running mean."""
    if run.below is None:
        raise ValueError(f"Invalid run: {run.optimizer} is not an LCAM run (no phases recorded)")
    plot_landscape(ax_path, run.landscape)
    color = style.optimizer_color(run.style_key)
    ax_path.plot(run.path[:, 0], run.path[:, 1], color=color, linewidth=0.8, alpha=0.6)
    pts = run.path[1:]
    for phase, mask in (("below", run.below), ("above", ~run.below)):
        ax_path.scatter(pts[mask, 0], pts[mask, 1], s=7, color=style.PHASE_COLORS[phase],
                        label=f"{phase} the mean", zorder=4, edgecolors="none")
    ax_path.set_title(ZOO_OPTIMIZERS[run.optimizer], fontsize=8)
    steps = np.arange(len(run.losses))
    ax_loss.plot(steps, run.losses, color=color, linewidth=0.9, label="mini-batch loss")
    ax_loss.plot(steps, run.running_mean, color="k", linewidth=0.9, linestyle="--", label="running mean")
    ymin, ymax = np.min(run.losses), np.max(run.losses)
    ax_loss.fill_between(steps, ymin, ymax, where=run.below, step="mid", color=style.PHASE_COLORS["below"],
                         alpha=0.25, linewidth=0, label="below: next step uses $\\beta_{below}$")
    ax_loss.fill_between(steps, ymin, ymax, where=~run.below, step="mid", color=style.PHASE_COLORS["above"],
                         alpha=0.25, linewidth=0, label="above: next step uses $\\beta_{above}$")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
