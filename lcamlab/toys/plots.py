r"""Figures of the weight-traction notebook, shared by the static figures, the sliders and the GIF.

Every function draws from recorded runs or measured tables (never from typed-in
numbers) in the suite's style (:mod:`lcamlab.style`): optimizer colours from
:func:`lcamlab.style.optimizer_color`, LCAM's phases shaded with
:data:`lcamlab.style.PHASE_COLORS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lcamlab import style
from lcamlab.toys.runner import ToyRun
from lcamlab.toys.spring import SpringPair

__all__ = [
    "trajectory_limits",
    "draw_landscape",
    "draw_trajectory_panel",
    "plot_trajectories",
    "plot_loss_phases",
    "plot_phase_agreement",
    "plot_drift",
    "plot_sparsity",
    "plot_oscillation",
]


def _freeze_layout(fig) -> Any:
    """Solve the constrained layout once, then fix it.

    Saving a figure as PNG and PDF with a tight bounding box draws it four times
    or more; with the layout frozen no draw re-solves it (about 40% of a draw's cost).
    """
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return fig


def _colour(run_: ToyRun) -> str:
    return style.optimizer_color(run_.spec.style_key)


def trajectory_limits(runs: Sequence[ToyRun], *, n_show: int = 4, margin: float = 0.12) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits that hold every trial-mean path, the start, the optimum and most of the shown trials."""
    samples, anchors = [], []
    for r in runs:
        samples.append(r.trajectory[:, :n_show, :2].reshape(-1, 2))
        anchors.append(r.trajectory[:, :, :2].mean(dim=1))
        anchors.append(r.toy.optimum()[:1, :2])
    def finite(points: torch.Tensor) -> torch.Tensor:
        points = points.to(torch.float64)
        return points[torch.isfinite(points).all(dim=1)]

    anchor = finite(torch.cat(anchors))
    low, high = anchor.min(dim=0).values, anchor.max(dim=0).values
    sample = finite(torch.cat(samples))
    if sample.numel():  # individual noisy trials: ignore their most extreme 0.2%
        low = torch.minimum(low, torch.quantile(sample, 0.002, dim=0))
        high = torch.maximum(high, torch.quantile(sample, 0.998, dim=0))
    span = (high - low).clamp_min(1e-6)
    low, high = low - margin * span, high + margin * span
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def draw_landscape(ax, toy: SpringPair, xlim: tuple[float, float], ylim: tuple[float, float], *, trial: int = 0,
                   levels: int = 9) -> None:
    r"""Contours of the population loss of trial ``trial`` and the valley floor :math:`\theta_n = c_n(\theta_s)`."""
    sub = toy.subset([trial])
    grid_n = torch.linspace(*xlim, 60, dtype=torch.float64)
    grid_s = torch.linspace(*ylim, 60, dtype=torch.float64)
    nn, ss = torch.meshgrid(grid_n, grid_s, indexing="xy")
    theta = torch.stack([nn, ss], dim=-1).reshape(-1, 1, 2).to(sub.dtype)
    excess = sub.excess_loss(theta).reshape(nn.shape).to(torch.float64)
    top = float(excess.max())
    lv = np.geomspace(max(top * 1e-3, 1e-6), top, levels)
    ax.contour(nn.numpy(), ss.numpy(), excess.numpy(), levels=lv, colors="0.8", linewidths=0.6, zorder=0)
    floor = sub.centre_n(grid_s.to(sub.dtype).unsqueeze(-1))[:, 0].to(torch.float64)
    ax.plot(floor.numpy(), grid_s.numpy(), ls="--", lw=0.8, color="0.55", zorder=1)


def draw_trajectory_panel(ax, run_: ToyRun, *, n_show: int = 4, show_phase: bool = True) -> dict[str, Any]:
    """One optimizer in the (theta_n, theta_s) plane: a few trials thin, the trial mean thick.

    For LCAM, the first shown trial's points are coloured by its phase (below /
    above the running mean). Returns the artists (used by the sliders to update
    them in place).
    """
    colour = _colour(run_)
    traj = run_.trajectory[:, :, :2].to(torch.float64).numpy()
    artists: dict[str, Any] = {"trials": [], "phase": None}
    for i in range(min(n_show, traj.shape[1])):
        (line,) = ax.plot(traj[:, i, 0], traj[:, i, 1], color=colour, lw=0.6, alpha=0.45, zorder=2)
        artists["trials"].append(line)
    mean = traj.mean(axis=1)
    (artists["mean"],) = ax.plot(mean[:, 0], mean[:, 1], color=colour, lw=2.0, zorder=4)
    if show_phase and run_.lcam_below is not None and run_.trajectory.shape[0] == run_.steps + 1:
        below = run_.lcam_below[:, 0].numpy()
        colours = np.where(below, style.PHASE_COLORS["below"], style.PHASE_COLORS["above"])
        artists["phase"] = ax.scatter(traj[:-1, 0, 0], traj[:-1, 0, 1], c=colours, s=3, lw=0, zorder=3)
    start = run_.toy.initial_point()[0].to(torch.float64).numpy()
    optimum = run_.toy.optimum()[0].to(torch.float64).numpy()
    ax.plot(*start, "o", color="black", ms=4, zorder=5)
    ax.plot(*optimum, "*", color="black", ms=9, zorder=5)
    return artists


def plot_trajectories(runs: Mapping[str, ToyRun], *, n_show: int = 4, ncols: int = 3, title: str | None = None):
    r"""The analogue of 000 Figure 2: every optimizer's path in the :math:`(\theta_n, \theta_s)` plane.

    One panel per optimizer on shared axes, over contours of the population
    loss and the valley floor (dashed).
    """
    items = list(runs.items())
    nrows = math.ceil(len(items) / ncols)
    fig, axes = style.new_figure(nrows, ncols, width="double", aspect=0.85, sharex=True, sharey=True)
    axes = np.atleast_1d(axes).ravel()
    xlim, ylim = trajectory_limits([r for _, r in items], n_show=n_show)
    toy = items[0][1].toy
    for ax, (label, r) in zip(axes, items):
        if isinstance(toy, SpringPair):
            draw_landscape(ax, r.toy, xlim, ylim)
        draw_trajectory_panel(ax, r, n_show=n_show)
        ax.set_title(label, color=_colour(r), fontsize=9)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("θₙ (light, non-sparse)")
    for ax in axes[::ncols]:
        ax.set_ylabel("θₛ (heavy, sparse)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _freeze_layout(fig)


def _shade_phases(ax, steps: np.ndarray, below: np.ndarray) -> None:
    """Shade every step by its phase (below: blue, above: orange), two artists per axis."""
    if below.size == 0:
        return
    # Step t's band spans [t - 0.5, t + 0.5]: duplicate the edges so fill_between draws boxes.
    edges = np.repeat(np.concatenate([steps - 0.5, [steps[-1] + 0.5]]), 2)[1:-1]
    transform = ax.get_xaxis_transform()
    for key, mask in (("below", below), ("above", ~below)):
        where = np.repeat(mask, 2)
        ax.fill_between(edges, 0, 1, where=where, transform=transform, color=style.PHASE_COLORS[key],
                        alpha=0.22, lw=0, zorder=0, step=None, interpolate=False)


def plot_loss_phases(run_: ToyRun, *, trial: int = 0, first_step: int = 40, last_step: int = 200):
    r"""Loss curve with LCAM's below/above phases shaded, and what the light weight does meanwhile.

    Top: the mini-batch loss of one trial and the running mean of its epoch.
    Bottom: :math:`\theta_n - c_n(\theta_s)`, the light weight's displacement from
    its valley floor (its loss share is :math:`L_n = \tfrac12 a_n (\theta_n - c_n)^2`),
    under the same shading.
    """
    toy = run_.toy
    if not isinstance(toy, SpringPair):
        raise ValueError("plot_loss_phases needs a SpringPair run")
    if not 0 <= first_step < last_step <= run_.steps:
        raise ValueError(f"Invalid step window [{first_step}, {last_step}) for a run of {run_.steps} steps")
    steps = np.arange(first_step, last_step) + 1  # step t evaluates L_t at theta_{t-1}
    loss = run_.loss[first_step:last_step, trial].to(torch.float64).numpy()
    all_loss = run_.loss[:, trial].to(torch.float64)
    spe = run_.steps_per_epoch
    running = torch.empty_like(all_loss)
    for start in range(0, run_.steps, spe):
        chunk = all_loss[start:start + spe]
        running[start:start + spe] = torch.cumsum(chunk, 0) / torch.arange(1, chunk.numel() + 1)
    running = running[first_step:last_step].numpy()
    decision = run_.lcam_below if run_.lcam_below is not None else run_.below
    below = decision[first_step:last_step, trial].numpy()
    theta = run_.before_steps()[first_step:last_step, :, :].to(torch.float64)
    sub = toy.subset([trial])
    theta_t = theta[:, trial:trial + 1, :].to(sub.dtype)
    displacement = (theta_t[..., 0] - sub.centre_n(theta_t[..., 1]))[:, 0].to(torch.float64).numpy()

    fig, (ax1, ax2) = style.new_figure(2, 1, width="double", aspect=0.27, sharex=True)
    _shade_phases(ax1, steps, below)
    ax1.plot(steps, loss, color=_colour(run_), lw=1.0, label="mini-batch loss L(t)")
    ax1.step(steps, running, where="mid", color="black", lw=0.9, ls="--", label="running epoch mean")
    ax1.set_ylabel("loss")
    _shade_phases(ax2, steps, below)
    ax2.plot(steps, displacement, color="black", lw=1.0, label="θₙ − cₙ(θₛ)   (Lₙ = ½ aₙ · displacement²)")
    ax2.axhline(0, color="0.5", lw=0.6)
    ax2.set_ylabel("Θₙ displacement")
    for boundary in range(first_step - first_step % spe + spe, last_step, spe):
        for ax in (ax1, ax2):
            ax.axvline(boundary + 0.5, color="0.3", lw=0.6, ls=":")
    ax2.set_xlabel(f"step (dotted: epoch boundaries every {spe} steps)")
    from matplotlib.patches import Patch

    handles = ax1.get_legend_handles_labels()[0] + [
        Patch(color=style.PHASE_COLORS["below"], alpha=0.4, label="below mean"),
        Patch(color=style.PHASE_COLORS["above"], alpha=0.4, label="above mean"),
    ]
    low, high = ax1.get_ylim()
    ax1.set_ylim(low, high + 0.3 * (high - low))  # headroom for the legend
    ax1.legend(handles=handles, loc="upper right", ncols=4)
    low, high = ax2.get_ylim()
    ax2.set_ylim(low, high + 0.3 * (high - low))
    ax2.legend(loc="upper right")
    ax1.set_title(f"{run_.spec.label}, trial {trial}: loss phases and the light weight's swing")
    return _freeze_layout(fig)


def _heatmap(ax, values: np.ndarray, low: np.ndarray | None, high: np.ndarray | None, xlabels: Sequence[str],
             ylabels: Sequence[str], *, vmin: float, vmax: float, cmap: str, fmt: str = "{:.2f}",
             origin: str = "lower") -> Any:
    image = ax.imshow(values, origin=origin, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.grid(False)
    norm, colormap = image.norm, image.get_cmap()
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if not np.isfinite(v):
                text, colour = "n/a", "black"  # blank cell
            else:
                text = fmt.format(v)
                if low is not None and high is not None and np.isfinite(low[i, j]):
                    text += "\n±" + fmt.format((high[i, j] - low[i, j]) / 2)
                r, g, b, _ = colormap(float(norm(v)))
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"  # readable on any cell
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=colour)
    return image


def plot_phase_agreement(frame) -> Any:
    """Measurement 1: agreement and eq. (12) R^2 heat maps, one row per learning rate."""
    rates = sorted(frame["lr"].unique())
    fig, axes = style.new_figure(len(rates), 3, width="double", aspect=0.95, squeeze=False)
    ratios = sorted(frame["mass_ratio"].unique())
    noises = sorted(frame["noise"].unique())
    panels = (
        ("agreement", "phase agreement\n(decision = true phase of Θₙ)", 0.5, 1.0, "viridis"),
        ("sign_agreement", "left/right reading\n(above = Θₙ left of centre)", 0.0, 1.0, "coolwarm"),
        ("eq12_r2", "eq. 12: R² of ΔL on ΔLₙ", 0.0, 1.0, "viridis"),
    )
    for row, lr in enumerate(rates):
        sub = frame[frame["lr"] == lr]
        for col, (key, title, vmin, vmax, cmap) in enumerate(panels):
            grid = np.full((len(noises), len(ratios)), np.nan)
            lo, hi = grid.copy(), grid.copy()
            for _, rec in sub.iterrows():
                i, j = noises.index(rec["noise"]), ratios.index(rec["mass_ratio"])
                grid[i, j], lo[i, j], hi[i, j] = rec[key], rec[f"{key}_low"], rec[f"{key}_high"]
            ax = axes[row, col]
            image = _heatmap(ax, grid, lo, hi, [f"{r:g}" for r in ratios], [f"{n:g}" for n in noises],
                             vmin=vmin, vmax=vmax, cmap=cmap)
            ax.set_title(f"{title}, lr={lr:g}" if row == 0 else f"lr={lr:g}", fontsize=8)
            if row == len(rates) - 1:
                ax.set_xlabel("mass ratio aₙ/aₛ")
            if col == 0:
                ax.set_ylabel("noise σ")
            fig.colorbar(image, ax=ax, shrink=0.8)
    return _freeze_layout(fig)


def plot_drift(frame) -> Any:
    r"""Measurement 2: centre-of-mass drift and lean versus :math:`\beta_\text{above} - \beta_\text{below}`."""
    fig, axes = style.new_figure(1, 2, width="double", aspect=0.7)
    a = frame["asymmetry"].to_numpy()
    colours = [style.optimizer_color("lcam-above") if x > 0 else style.optimizer_color("lcam-below") if x < 0
               else style.optimizer_color("momentum") for x in a]
    panels = (("com", "centre-of-mass drift\n(progress vs fixed momentum)"),
              ("lean", "lean: Θₛ progress − Θₙ progress\n(> 0: towards the sparse side)"))
    for ax, (key, title) in zip(axes, panels):
        y = frame[f"{key}_drift"].to_numpy()
        lo = frame[f"{key}_drift_low"].to_numpy()
        hi = frame[f"{key}_drift_high"].to_numpy()
        ax.axhline(0, color="0.4", lw=0.8)
        ax.axvline(0, color="0.4", lw=0.8)
        ax.plot(a, y, color="0.5", lw=0.8, zorder=1)
        for x, m, l, h, c in zip(a, y, lo, hi, colours):
            ax.errorbar([x], [m], yerr=[[m - l], [h - m]], fmt="o", color=c, ms=4, capsize=2, zorder=2)
        ax.set_xlabel("asymmetry β(above) − β(below)")
        ax.set_title(title, fontsize=9)
        ymin, ymax = ax.get_ylim()
        ax.text(0.02, 0.04, "accelerate below\n(sparse side)", transform=ax.transAxes, fontsize=7,
                color=style.optimizer_color("lcam-below"), va="bottom")
        ax.text(0.98, 0.96, "accelerate above\n(non-sparse side)", transform=ax.transAxes, fontsize=7,
                color=style.optimizer_color("lcam-above"), ha="right", va="top")
    axes[0].set_ylabel("drift (fraction of the way to the optimum)")
    return _freeze_layout(fig)


def plot_sparsity(frame) -> Any:
    """Measurement 3: loss at the budget and iterations to target per (optimizer, sparsity), and the claim."""
    optimizers = list(dict.fromkeys(frame["optimizer"]))
    sparsities = sorted(frame["sparsity"].unique())
    fig, axes = style.new_figure(1, 3, width="double", aspect=1.0, gridspec_kw={"width_ratios": [1.15, 1, 1]})
    grids = {}
    for key in ("log10_loss", "iters"):
        grid = np.full((len(optimizers), len(sparsities)), np.nan)
        for _, rec in frame.iterrows():
            grid[optimizers.index(rec["optimizer"]), sparsities.index(rec["sparsity"])] = rec[key]
        grids[key] = grid
    finite = grids["log10_loss"][np.isfinite(grids["log10_loss"])]
    _heatmap(axes[0], grids["log10_loss"], None, None, [f"{s:g}" for s in sparsities], optimizers,
             vmin=float(finite.min()), vmax=float(finite.max()), cmap="viridis_r", origin="upper")
    axes[0].set_title("log₁₀ excess loss at the budget\n(lower is better)", fontsize=8)
    iters = grids["iters"]
    finite_iters = iters[np.isfinite(iters)]
    vmax = float(finite_iters.max()) if finite_iters.size else 1.0
    _heatmap(axes[1], iters, None, None, [f"{s:g}" for s in sparsities], [""] * len(optimizers),
             vmin=0.0, vmax=vmax, cmap="viridis_r", fmt="{:.0f}", origin="upper")
    axes[1].set_title("median iterations to target\n(n/a: most trials never reach it)", fontsize=8)
    for ax in axes[:2]:
        ax.set_xlabel("sparsity")
    below_label = next(o for o in optimizers if o.startswith("LCAM (0.95"))
    rows = frame[frame["optimizer"] == below_label].sort_values("sparsity")
    s = rows["sparsity"].to_numpy()
    ax = axes[2]
    ax.axhline(0, color="0.4", lw=0.8)
    for key, colour, label, offset in (
        ("vs_above", style.optimizer_color("lcam-below"), "log₁₀ loss at budget", -0.006),
    ):
        m = rows[key].to_numpy()
        lo = rows[f"{key}_low"].to_numpy()
        hi = rows[f"{key}_high"].to_numpy()
        ax.errorbar(np.arange(len(s)) + offset, m, yerr=[m - lo, hi - m], fmt="o-", color=colour, ms=4, capsize=2,
                    label=label)
    ax.set_xticks(range(len(s)), [f"{v:g}" for v in s])
    ax.set_xlabel("sparsity")
    ax.set_title(f"{below_label} − LCAM (0.9, 0.95)\n(< 0: accelerating the sparse side wins)", fontsize=8)
    ax.set_ylabel("paired difference, log₁₀ loss")
    return _freeze_layout(fig)


def plot_oscillation(frame) -> Any:
    """Measurement 4: oscillation index Q per optimizer with 95% CIs."""
    fig, ax = style.new_figure(1, 1, width="one-and-half", aspect=0.5)
    labels = frame["optimizer"].tolist()
    q = frame["Q"].to_numpy()
    lo = frame["Q_low"].to_numpy()
    hi = frame["Q_high"].to_numpy()
    colours = [style.optimizer_color(k) for k in frame["key"]]
    x = np.arange(len(labels))
    ax.bar(x, q, color=colours, edgecolor="black", lw=0.5)
    ax.errorbar(x, q, yerr=[q - lo, hi - q], fmt="none", color="black", capsize=3, lw=0.8)
    ax.axhline(1.0, color="0.4", lw=0.8, ls="--")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("Q = mean(path length / displacement)")
    ax.set_title("Oscillation index (003 section 3.2.2); 1 = straight path", fontsize=9)
    return _freeze_layout(fig)
