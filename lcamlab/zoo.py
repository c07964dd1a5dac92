r"""The optimizer zoo: every optimizer of the suite on classic 2-D landscapes.

Three landscapes, each a textbook difficulty for gradient descent:

* ``quadratic``: an ill-conditioned bowl :math:`f = \tfrac{1}{2}(x^2 + \kappa y^2)`
  (condition number :math:`\kappa = 25`): plain SGD crawls along the flat
  direction while oscillating across the steep one.
* ``rosenbrock``: :math:`f = (1-x)^2 + 100 (y - x^2)^2`, a curved, narrow
  valley with its minimum at (1, 1).
* ``saddle``: :math:`f = \tfrac{1}{2} x^2 - \tfrac{1}{2} y^2 + \tfrac{1}{4} y^4`, a strict
  saddle at the origin between two minima at :math:`(0, \pm 1)`; starting
  next to the saddle shows how fast each method leaves it (saddle escape is
  the subject of the Adai paper, Xie et al. 2022, section 2).

A stochastic "mini-batch" version adds a linear data perturbation,
:math:`L_t(\theta) = f(\theta) + \sigma\,\xi_t^\top\theta` with
:math:`\xi_t \sim N(0, I)`, so the gradient carries noise of scale
:math:`\sigma` and the mini-batch loss fluctuates around :math:`f`, which is
what LCAM's running-mean test reads (the LCAM paper, Zhang et al. 2023,
section 3.4). Near a minimum where :math:`f \approx 0` the mini-batch loss can
be negative: the noise term :math:`\sigma\xi_t^\top\theta` has either sign.

Every optimizer runs on the same landscape, start, noise sequence and budget
with a trial axis of size one, built through the optimizer registry like the
toy and escape experiments (``trial_axis=True`` for lcamlab's optimizers,
torch's elementwise optimizers as they are). Gradients are analytic (the
landscapes are closed-form), which keeps one 300-step run to a few tens of milliseconds, fast
enough for the sliders of :mod:`lcamlab.zoo_widgets`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lcamlab import style
from lcamlab.experiments.registry import PRESETS, OptimizerSpec, preset, suite_keys
from lcamlab.optim import optimizer_step, start_epoch

__all__ = ["Landscape", "LANDSCAPES", "OPTIMIZERS", "LINE_STYLES", "DOUBLING_OPTIONS", "DIVERGED_LOSS",
           "PHASE_NOTE", "ZooRun", "zoo_spec", "noise_sequence", "run_spec", "run_zoo", "f_star", "max_curvature",
           "late_loss", "steps_to", "lowest_late_loss", "summary_table", "phase_table", "preset_momentum",
           "doubling_table", "doubling_answer", "stability_bound", "plot_landscape", "plot_trajectories",
           "plot_losses", "plot_lcam_phases", "landscape_figure", "phase_figure"]


@dataclass(frozen=True)
class Landscape:
    """A 2-D test function, its gradient and its plotting window."""

    name: str
    title: str
    loss: Callable[[torch.Tensor], torch.Tensor]      # (..., 2) -> (...)
    gradient: Callable[[torch.Tensor], torch.Tensor]  # (..., 2) -> (..., 2), the analytic gradient of ``loss``
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    # Learning rate per optimizer key (registry presets), chosen so every method moves without diverging
    # within the default budget: momentum methods get a tenth of plain SGD's rate or
    # more (momentum 0.9 multiplies the effective step by ten), Adai ten times
    # momentum's (the Adai paper's recommendation), AdaRem at most SGD's (its factor is at most 2).
    lr: dict[str, float] = field(default_factory=dict)


_KAPPA = 25.0


def _quadratic(theta: torch.Tensor) -> torch.Tensor:
    return 0.5 * (theta[..., 0] ** 2 + _KAPPA * theta[..., 1] ** 2)


def _quadratic_grad(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([theta[..., 0], _KAPPA * theta[..., 1]], dim=-1)


def _rosenbrock(theta: torch.Tensor) -> torch.Tensor:
    x, y = theta[..., 0], theta[..., 1]
    return (1 - x) ** 2 + 100.0 * (y - x ** 2) ** 2


def _rosenbrock_grad(theta: torch.Tensor) -> torch.Tensor:
    x, y = theta[..., 0], theta[..., 1]
    valley = y - x ** 2
    return torch.stack([-2.0 * (1 - x) - 400.0 * x * valley, 200.0 * valley], dim=-1)


def _saddle(theta: torch.Tensor) -> torch.Tensor:
    x, y = theta[..., 0], theta[..., 1]
    return 0.5 * x ** 2 - 0.5 * y ** 2 + 0.25 * y ** 4


def _saddle_grad(theta: torch.Tensor) -> torch.Tensor:
    x, y = theta[..., 0], theta[..., 1]
    return torch.stack([x, y ** 3 - y], dim=-1)


LANDSCAPES: dict[str, Landscape] = {
    "quadratic": Landscape(
        "quadratic", r"ill-conditioned quadratic $\frac{1}{2}(x^2 + 25y^2)$", _quadratic, _quadratic_grad,
        start=(-4.5, 1.2), minima=((0.0, 0.0),), xlim=(-5.0, 1.5), ylim=(-1.6, 1.6),
        lr={"sgd": 0.07, "momentum": 0.007, "lcam-above": 0.007, "lcam-below": 0.007, "adagrad": 0.8,
            "rmsprop": 0.03, "adam": 0.15, "adai": 0.07, "adarem": 0.035},
    ),
    "rosenbrock": Landscape(
        "rosenbrock", r"Rosenbrock $(1-x)^2 + 100(y-x^2)^2$", _rosenbrock, _rosenbrock_grad,
        start=(-1.2, 1.0), minima=((1.0, 1.0),), xlim=(-1.6, 1.5), ylim=(-0.4, 1.6),
        lr={"sgd": 1.5e-3, "momentum": 4e-4, "lcam-above": 4e-4, "lcam-below": 4e-4, "adagrad": 0.6,
            "rmsprop": 1e-2, "adam": 0.05, "adai": 4e-3, "adarem": 1.5e-3},
    ),
    "saddle": Landscape(
        "saddle", r"saddle $\frac{1}{2}x^2 - \frac{1}{2}y^2 + \frac{1}{4}y^4$", _saddle, _saddle_grad,
        start=(1.5, 1e-3), minima=((0.0, 1.0), (0.0, -1.0)), xlim=(-1.0, 1.8), ylim=(-1.5, 1.5),
        lr={"sgd": 0.05, "momentum": 0.005, "lcam-above": 0.005, "lcam-below": 0.005, "adagrad": 0.1,
            "rmsprop": 0.005, "adam": 0.02, "adai": 0.05, "adarem": 0.05},
    ),
}

# The zoo's optimizers: the registry presets of its suite (their labels, colours: the registry's).
OPTIMIZERS: tuple[str, ...] = suite_keys("zoo")

# How each path is drawn. SGD + momentum and LCAM often follow nearly the same path (LCAM is
# momentum with two values of beta): LCAM is drawn thick and translucent underneath, momentum
# thin and dashed on top, so both stay visible where they coincide.
LINE_STYLES: dict[str, dict] = {
    "momentum": {"linewidth": 1.0, "linestyle": (0, (3.5, 1.5)), "alpha": 1.0, "zorder": 6},
    "lcam": {"linewidth": 2.4, "linestyle": "-", "alpha": 0.7, "zorder": 3},
    "lcam-above": {"linewidth": 2.4, "linestyle": "-", "alpha": 0.7, "zorder": 3},
    "lcam-below": {"linewidth": 2.4, "linestyle": "-", "alpha": 0.7, "zorder": 3},
}
_DEFAULT_LINE = {"linewidth": 1.1, "linestyle": "-", "alpha": 0.9, "zorder": 4}

# A run has diverged once its mini-batch loss exceeds this (or is not finite): every landscape starts
# below 30, and a loss of 1e12 is many orders of magnitude away from any path that still converges.
DIVERGED_LOSS = 1e12

# Exercise "double the learning rate": what happens to plain SGD and SGD + momentum.
DOUBLING_OPTIONS = ("both converge", "only SGD diverges", "only momentum diverges", "both diverge")

# What the symlog loss axis of the phase figure shows (its caption).
PHASE_NOTE = (r"Loss axis (symlog): logarithmic beyond $\pm 10^{-2}$, linear in between (grey band). "
              r"The mini-batch loss $L_t = f(\theta_t) + \sigma\,\xi_t^\top\theta_t$ dips below 0 near the "
              r"minimum, where $f \approx 0$, because its noise term $\sigma\,\xi_t^\top\theta_t$ has either sign.")


def zoo_spec(key: str, landscape: str, lr_scale: float = 1.0) -> OptimizerSpec:
    """Optimizer ``key`` (one of :data:`OPTIMIZERS`, a registry preset) at ``landscape``'s learning rate."""
    if key not in OPTIMIZERS:
        raise ValueError(f"Invalid optimizer: {key!r} (choose from {list(OPTIMIZERS)})")
    return preset(key, LANDSCAPES[landscape].lr[key] * lr_scale)


@dataclass
class ZooRun:
    """One optimizer's run on one landscape."""

    optimizer: str              # style key (colour, line style): an OPTIMIZERS key, or "lcam" for any pair
    landscape: str
    path: np.ndarray            # (steps + 1, 2) positions (fewer rows if the run diverged and was stopped)
    losses: np.ndarray          # (steps,) mini-batch losses L_t
    true_losses: np.ndarray     # (steps + 1,) noiseless f along the path
    below: np.ndarray | None    # (steps,) LCAM's decisions (loss < running mean), else None
    running_mean: np.ndarray | None  # (steps,) the mean each loss was compared with
    label: str                  # legend label
    lr: float = float("nan")    # learning rate
    diverged_at: int | None = None  # first step whose loss exceeded DIVERGED_LOSS (run stopped there), else None

    @property
    def style_key(self) -> str:
        return self.optimizer

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def _check_landscape(landscape: str) -> Landscape:
    if landscape not in LANDSCAPES:
        raise ValueError(f"Invalid landscape: {landscape!r} (choose from {list(LANDSCAPES)})")
    return LANDSCAPES[landscape]


def noise_sequence(steps: int, noise: float, seed: int) -> torch.Tensor:
    r"""The shared perturbations :math:`\sigma\xi_t`, shape ``(steps, 1, 2)`` (float64)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(steps, 1, 2, generator=gen, dtype=torch.float64) * noise


def run_spec(landscape: str, spec: OptimizerSpec, perturbations: torch.Tensor, *, epoch_length: int = 25,
             key: str | None = None, stop_on_divergence: bool = False) -> ZooRun:
    r"""Run one optimizer (any registry spec) on ``landscape`` with the given perturbations.

    Args:
        landscape: a :data:`LANDSCAPES` key.
        spec: the optimizer (learning rate included).
        perturbations: :math:`\sigma\xi_t` from :func:`noise_sequence`; its length is the number of steps.
        epoch_length: steps per "epoch" for LCAM's running mean (``new_epoch`` every so many steps).
        key: style key of the run (default ``spec.style_key``); its legend label is ``spec.label``.
        stop_on_divergence: once the loss exceeds :data:`DIVERGED_LOSS` (or is not finite), stop and
            return the run so far with ``diverged_at`` set (the sliders use this); otherwise raise
            :class:`FloatingPointError`.
    """
    land = _check_landscape(landscape)
    key = key or spec.style_key or spec.kind
    steps = perturbations.shape[0]
    theta = torch.tensor([land.start], dtype=torch.float64, requires_grad=True)
    opt = spec.build([theta], trial_axis=True)
    is_lcam = hasattr(opt, "last_below")  # LCAM's decisions are recorded for the phase plot
    path = torch.empty(steps + 1, 2, dtype=torch.float64)
    path[0] = theta.detach()[0]
    losses = torch.empty(steps, dtype=torch.float64)
    below = torch.empty(steps, dtype=torch.bool)
    means = torch.empty(steps, dtype=torch.float64)
    diverged_at = None
    for t in range(steps):
        if t % epoch_length == 0:
            start_epoch(opt)
        with torch.no_grad():
            xi = perturbations[t]
            loss = land.loss(theta) + (xi * theta).sum(-1)  # (1,) mini-batch loss
            value = loss.item()
            if not abs(value) < DIVERGED_LOSS:  # also catches inf and nan
                diverged_at = t
                break
            theta.grad = land.gradient(theta) + xi
        optimizer_step(opt, loss)
        if is_lcam:
            below[t] = opt.last_below[0]
            means[t] = opt.last_mean[0]
        losses[t] = value
        path[t + 1] = theta.detach()[0]
    else:
        if not torch.isfinite(path[-1]).all():
            diverged_at = steps
    if diverged_at is not None and not stop_on_divergence:
        raise FloatingPointError(f"{key} diverged on {landscape} at step {diverged_at} with lr {spec.lr:g}: "
                                 f"lower lr_scale")
    done = steps if diverged_at is None else diverged_at
    path_arr = path[:done + 1].numpy() if diverged_at is None else path[:done].numpy()
    with torch.no_grad():
        true = land.loss(torch.from_numpy(path_arr)).numpy()
    return ZooRun(key, landscape, path_arr, losses[:done].numpy(), true,
                  below[:done].numpy() if is_lcam else None, means[:done].numpy() if is_lcam else None,
                  label=spec.label, lr=spec.lr, diverged_at=diverged_at)


def run_zoo(
    landscape: str,
    optimizers: Sequence[str] | None = None,
    *,
    steps: int = 300,
    noise: float = 0.2,
    epoch_length: int = 25,
    lr_scale: float = 1.0,
    seed: int = 0,
    stop_on_divergence: bool = False,
) -> dict[str, ZooRun]:
    r"""Run every optimizer on ``landscape`` from its start with the same noise sequence.

    Args:
        landscape: a :data:`LANDSCAPES` key.
        optimizers: :data:`OPTIMIZERS` keys (default all).
        steps: iterations per optimizer.
        noise: :math:`\sigma`, the scale of the mini-batch perturbation (0: full-batch).
        epoch_length: steps per "epoch" for LCAM's running mean (``new_epoch`` every so many steps).
        lr_scale: multiplies every learning rate (to explore stability).
        seed: seed of the noise sequence (shared by all optimizers).
        stop_on_divergence: return diverged runs (``diverged_at`` set) instead of raising.

    Raises:
        FloatingPointError: an optimizer diverged (unless ``stop_on_divergence``).
    """
    _check_landscape(landscape)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Invalid steps: {steps!r} (must be an integer >= 1)")
    if not noise >= 0:
        raise ValueError(f"Invalid noise: {noise} (must be >= 0)")
    if isinstance(epoch_length, bool) or not isinstance(epoch_length, int) or epoch_length < 1:
        raise ValueError(f"Invalid epoch_length: {epoch_length!r} (must be an integer >= 1)")
    if not lr_scale > 0:
        raise ValueError(f"Invalid lr_scale: {lr_scale} (must be > 0)")
    keys = list(OPTIMIZERS) if optimizers is None else list(optimizers)
    unknown = [k for k in keys if k not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"Invalid optimizer: {unknown[0]!r} (choose from {list(OPTIMIZERS)})")
    perturbations = noise_sequence(steps, noise, seed)
    return {key: run_spec(landscape, zoo_spec(key, landscape, lr_scale), perturbations, epoch_length=epoch_length,
                          key=key, stop_on_divergence=stop_on_divergence)
            for key in keys}


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def f_star(landscape: str) -> float:
    """The landscape's minimum value."""
    land = _check_landscape(landscape)
    return min(float(land.loss(torch.tensor(m, dtype=torch.float64))) for m in land.minima)


def max_curvature(landscape: str) -> float:
    r"""The largest Hessian eigenvalue :math:`\lambda_\max` at the landscape's minima."""
    land = _check_landscape(landscape)
    top = 0.0
    for minimum in land.minima:
        hessian = torch.autograd.functional.hessian(land.loss, torch.tensor(minimum, dtype=torch.float64))
        top = max(top, float(torch.linalg.eigvalsh(hessian).max()))
    return top


def late_loss(run: ZooRun, fraction: float = 1 / 3) -> float:
    r"""Mean :math:`f(\theta_t) - f^\star` over the last ``fraction`` of the run (inf if it diverged)."""
    if run.diverged:
        return math.inf
    n = max(1, int(round(len(run.true_losses) * fraction)))
    return float(np.mean(run.true_losses[-n:] - f_star(run.landscape)))


def steps_to(run: ZooRun, threshold: float) -> int | None:
    r"""The first step at which :math:`f(\theta_t) - f^\star < ` ``threshold`` (None if never)."""
    hits = np.flatnonzero(run.true_losses - f_star(run.landscape) < threshold)
    return int(hits[0]) if hits.size else None


def lowest_late_loss(runs: Mapping[str, ZooRun], fraction: float = 1 / 3) -> str:
    """The key of the run with the lowest :func:`late_loss`."""
    return min(runs, key=lambda k: late_loss(runs[k], fraction))


def summary_table(runs_by_landscape: Mapping[str, Mapping[str, ZooRun]], threshold: float = 1e-2):
    r"""One row per optimizer: per landscape its learning rate, the first step with
    :math:`f - f^\star <` ``threshold`` and the mean :math:`f - f^\star` over the last third."""
    import pandas as pd

    rows = []
    keys = list(dict.fromkeys(k for runs in runs_by_landscape.values() for k in runs))
    for key in keys:
        first = next(runs[key] for runs in runs_by_landscape.values() if key in runs)
        row: dict[str, object] = {"optimizer": first.label}
        for name, runs in runs_by_landscape.items():
            run = runs.get(key)
            if run is None:
                continue
            hit = steps_to(run, threshold)
            row[f"{name}: lr"] = run.lr
            row[f"{name}: steps to f−f* < {threshold:g}"] = "never" if hit is None else hit
            row[f"{name}: late f−f*"] = late_loss(run)
        rows.append(row)
    return pd.DataFrame(rows)


def phase_table(runs: Sequence[ZooRun]):
    """One row per LCAM run: the share of steps whose loss was below the running mean, overall and per half."""
    import pandas as pd

    rows = []
    for run in runs:
        if run.below is None:
            raise ValueError(f"Invalid run: {run.optimizer} is not an LCAM run (no phases recorded)")
        half = len(run.below) // 2
        rows.append({"optimizer": run.label, "steps": len(run.below), "below the mean": run.below.mean(),
                     "below, first half": run.below[:half].mean(), "below, second half": run.below[half:].mean()})
    return pd.DataFrame(rows)


def preset_momentum(key: str) -> float:
    """The fixed momentum of a registry preset that has one (0 for plain SGD)."""
    if PRESETS[key].kind != "sgd":
        raise ValueError(f"Invalid optimizer: {key!r} has no single fixed momentum (only SGD presets do)")
    return float(PRESETS[key].options.get("momentum", 0.0))


def doubling_table(runs: Mapping[str, ZooRun]):
    """One row per SGD-type run: its learning rate, the largest stable rate for its momentum, where it diverged."""
    import pandas as pd

    rows = []
    for key, run in runs.items():
        rows.append({"optimizer": run.label, "learning rate": run.lr,
                     "largest stable rate": stability_bound(run.landscape, preset_momentum(key)),
                     "diverged at step": "no" if run.diverged_at is None else run.diverged_at,
                     "late f−f*": late_loss(run)})
    return pd.DataFrame(rows)


def doubling_answer(runs: Mapping[str, ZooRun]) -> str:
    """Which of ``runs["sgd"]`` and ``runs["momentum"]`` diverged, as one of :data:`DOUBLING_OPTIONS`."""
    sgd, momentum = runs["sgd"].diverged, runs["momentum"].diverged
    return DOUBLING_OPTIONS[int(sgd) + 2 * int(momentum)]


def stability_bound(landscape: str, momentum: float = 0.0) -> float:
    r"""The largest stable learning rate of (heavy-ball) gradient descent near the landscape's minima:
    :math:`\eta < 2(1 + \beta)/\lambda_\max` (:math:`2/\lambda_\max` without momentum)."""
    if not 0 <= momentum < 1:
        raise ValueError(f"Invalid momentum: {momentum!r} (must be in [0, 1))")
    return 2 * (1 + momentum) / max_curvature(landscape)


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def _line(key: str, max_width: float | None = None) -> dict:
    line = dict(LINE_STYLES.get(key, _DEFAULT_LINE))
    if max_width is not None:
        line["linewidth"] = min(line["linewidth"], max_width)
    return line


def plot_landscape(ax, landscape: str, *, levels: int = 30, resolution: int = 300):
    """Log-spaced contours of the noiseless landscape, its minima as stars, the start as a dot.

    Returns the contour set (the sliders replace it when the landscape changes).
    """
    spec = _check_landscape(landscape)
    x = np.linspace(*spec.xlim, resolution)
    y = np.linspace(*spec.ylim, resolution)
    grid = torch.from_numpy(np.stack(np.meshgrid(x, y), axis=-1))
    z = spec.loss(grid).numpy()
    shifted = z - z.min() + 1e-3
    contours = ax.contour(x, y, shifted, levels=np.geomspace(shifted.min() * 10, shifted.max(), levels),
                          colors="0.75", linewidths=0.6, zorder=1)
    ax.set_xlim(spec.xlim)
    ax.set_ylim(spec.ylim)
    style.clip_on_purpose(ax, "the landscape's window: a path that swings or diverges beyond it is cut at its edge")
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.set_title(spec.title)
    return contours


def _mark_start_and_minima(ax, landscape: str) -> list:
    spec = LANDSCAPES[landscape]
    artists = [ax.plot(*minimum, marker="*", color="k", markersize=9, linestyle="none", zorder=8)[0]
               for minimum in spec.minima]
    artists.append(ax.plot(*spec.start, marker="o", color="k", markersize=4, linestyle="none", zorder=8)[0])
    return artists


def _markers(run: ZooRun, points: int) -> dict:
    """The registry's marker of the run's optimizer on a dozen of its points: nine paths stay apart in greyscale."""
    return {"marker": style.optimizer_marker(run.style_key), "markersize": 3.5, "markevery": style.marker_every(points)}


def plot_trajectories(ax, runs: Mapping[str, ZooRun]) -> None:
    """Every run's path over its landscape's contours (SGD + momentum dashed on top of LCAM)."""
    first = next(iter(runs.values()))
    plot_landscape(ax, first.landscape)
    _mark_start_and_minima(ax, first.landscape)
    for run in runs.values():
        ax.plot(run.path[:, 0], run.path[:, 1], color=style.optimizer_color(run.style_key), label=run.label,
                **_line(run.style_key), **_markers(run, len(run.path)))


def plot_losses(ax, runs: Mapping[str, ZooRun]) -> None:
    """The noiseless loss along each path (minus the landscape's minimum), log scale."""
    first = next(iter(runs.values()))
    floor = f_star(first.landscape)
    for run in runs.values():
        ax.plot(np.maximum(run.true_losses - floor, 1e-12), color=style.optimizer_color(run.style_key),
                label=run.label, **_line(run.style_key, max_width=1.6), **_markers(run, len(run.true_losses)))
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"$f(\theta) - f^\star$ (noiseless)")


def plot_lcam_phases(ax_path, ax_loss, run: ZooRun, *, linthresh: float = 1e-2) -> None:
    """LCAM's path with each step marked by its phase, and its mini-batch loss against the running mean.

    The loss axis is symlog (linear within ``±linthresh``): the mini-batch loss can be negative near
    the minimum (see :data:`PHASE_NOTE`).
    """
    if run.below is None:
        raise ValueError(f"Invalid run: {run.optimizer} is not an LCAM run (no phases recorded)")
    plot_landscape(ax_path, run.landscape)
    _mark_start_and_minima(ax_path, run.landscape)
    color = style.optimizer_color(run.style_key)
    ax_path.plot(run.path[:, 0], run.path[:, 1], color=color, linewidth=1.0, alpha=0.8, zorder=3)
    points = run.path[1:len(run.below) + 1]
    for phase, mask in (("below", run.below), ("above", ~run.below)):
        ax_path.scatter(points[mask, 0], points[mask, 1], s=22, color=style.PHASE_COLORS[phase],
                        edgecolors="0.15", linewidths=0.5, label=f"{phase} the running mean", zorder=4)
    ax_path.set_title(run.label)
    steps = np.arange(len(run.losses))
    ymin, ymax = float(np.min(run.losses)), float(np.max(run.losses))
    ax_loss.fill_between(steps, ymin, ymax, where=run.below, step="mid", color=style.PHASE_COLORS["below"],
                         alpha=0.3, linewidth=0, label=r"below: next step uses $\beta_{below}$")
    ax_loss.fill_between(steps, ymin, ymax, where=~run.below, step="mid", color=style.PHASE_COLORS["above"],
                         alpha=0.3, linewidth=0, label=r"above: next step uses $\beta_{above}$")
    ax_loss.plot(steps, run.losses, color=color, linewidth=0.9, label=r"mini-batch loss $L_t$")
    ax_loss.plot(steps, run.running_mean, color="k", linewidth=1.0, linestyle="--", label="running mean")
    ax_loss.set_yscale("symlog", linthresh=linthresh)
    ax_loss.axhspan(-linthresh, linthresh, color="0.5", alpha=0.08, linewidth=0, zorder=0)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel(r"mini-batch loss $L_t$ (symlog)")


def landscape_figure(runs: Mapping[str, ZooRun]):
    """Paths over the contours (left) and noiseless loss curves (right) with one legend below; returns the figure."""
    fig, (ax_path, ax_loss) = style.new_figure(1, 2, width="double", aspect=0.85)
    plot_trajectories(ax_path, runs)
    plot_losses(ax_loss, runs)
    handles, labels = ax_path.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, handlelength=2.6)
    return fig


def phase_figure(runs: Sequence[ZooRun]):
    """One column per LCAM run: its phases along the path (top) and its loss against the running mean
    (bottom), one legend and the loss axis' caption below; returns the figure."""
    runs = list(runs)
    fig, axes = style.new_figure(2, len(runs), width="double", aspect=0.75, squeeze=False)
    for column, run in enumerate(runs):
        plot_lcam_phases(axes[0, column], axes[1, column], run)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    more, more_labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles + more, labels + more_labels, loc="outside upper center", ncol=3)
    fig.text(0.5, -0.01, PHASE_NOTE, ha="center", va="top", fontsize=8, wrap=True)
    return fig
