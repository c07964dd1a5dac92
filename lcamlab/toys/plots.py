r"""Figures of the weight-traction notebook, shared by the static figures, the sliders and the GIF.

Every function draws from recorded runs or measured tables (never from typed-in
numbers) in the suite's style (:mod:`lcamlab.style`): optimizer colours and labels
from the registry (:func:`lcamlab.style.optimizer_color`, :func:`lcamlab.style.optimizer_label`),
LCAM's phases shaded with :data:`lcamlab.style.PHASE_COLORS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lcamlab import style
from lcamlab.experiments.registry import split_key
from lcamlab.toys.runner import ToyRun
from lcamlab.toys.spring import SpringPair

__all__ = [
    "trajectory_limits",
    "draw_landscape",
    "draw_trajectory_panel",
    "plot_trajectories",
    "plot_loss_phases",
    "plot_phase_agreement",
    "plot_traction",
    "plot_sparsity",
    "plot_oscillation",
]


def _freeze_layout(fig) -> Any:
    """Solve the constrained layout once, then fix it.

    Saving a figure as PNG and PDF with a tight bounding box draws it four times
    or more; with the layout frozen no draw re-solves it (about 40% of a draw's cost).
    The layout engine is run directly, not through a draw that renders nothing (the
    same layout, a quarter cheaper).
    """
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
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


def _spaced(points: np.ndarray, xlim: tuple[float, float], ylim: tuple[float, float], *, spacing: float) -> np.ndarray:
    """Indices of ``points`` (n, 2) at least ``spacing`` apart (in fractions of the axes), greedily along the path."""
    scale = np.array([max(xlim[1] - xlim[0], 1e-12), max(ylim[1] - ylim[0], 1e-12)])
    scaled = points / scale
    keep, last = [], None
    for i, point in enumerate(scaled):
        if not np.isfinite(point).all():
            continue
        if last is None or np.hypot(*(point - last)) >= spacing:
            keep.append(i)
            last = point
    return np.asarray(keep, dtype=int)


def draw_trajectory_panel(ax, run_: ToyRun, *, n_show: int = 4, show_phase: bool = True,
                          phase_size: float = 12.0, dot_spacing: float = 0.022) -> dict[str, Any]:
    """One optimizer in the (theta_n, theta_s) plane: a few trials thin, the trial mean thick.

    For LCAM, the first shown trial's path is drawn on top as dots coloured by
    its phase (below / above the running mean): ``phase_size`` points² each with a
    thin dark rim, at least ``dot_spacing`` (a fraction of the axes, whose limits
    should be set first) apart along the path, so that both colours stay visible
    on LCAM's own colour at a 760-pixel display width. Returns the artists.
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
        keep = _spaced(traj[:-1, 0, :], ax.get_xlim(), ax.get_ylim(), spacing=dot_spacing)
        colours = np.where(below[keep], style.PHASE_COLORS["below"], style.PHASE_COLORS["above"])
        artists["phase"] = ax.scatter(traj[:-1, 0, 0][keep], traj[:-1, 0, 1][keep], c=colours, s=phase_size,
                                      edgecolors="0.25", linewidths=0.3, zorder=6)
    start = run_.toy.initial_point()[0].to(torch.float64).numpy()
    optimum = run_.toy.optimum()[0].to(torch.float64).numpy()
    ax.plot(*start, "o", color="black", ms=4, zorder=5)
    ax.plot(*optimum, "*", color="black", ms=9, zorder=5)
    return artists


def plot_trajectories(runs: Mapping[str, ToyRun], *, n_show: int = 4, ncols: int = 3, title: str | None = None):
    r"""The toy analogue of the LCAM paper's Figure 2: every optimizer's path in the plane.

    The plane is :math:`(\theta_n, \theta_s)`.

    One panel per optimizer on shared axes, over contours of the population
    loss and the valley floor (dashed); a legend under the panels explains the
    marks, including LCAM's phase dots.
    """
    items = list(runs.items())
    nrows = math.ceil(len(items) / ncols)
    fig, axes = style.new_figure(nrows, ncols, width="double", aspect=0.85, sharex=True, sharey=True)
    axes = np.atleast_1d(axes).ravel()
    xlim, ylim = trajectory_limits([r for _, r in items], n_show=n_show)
    toy = items[0][1].toy
    for ax, (label, r) in zip(axes, items):
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
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
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=style.KEY_COLOR, lw=2.0, label="mean over trials"),
               Line2D([], [], color=style.KEY_COLOR, lw=0.6, alpha=0.6, label="single trials"),
               Line2D([], [], color="0.55", lw=0.8, ls="--", label="valley floor cₙ(θₛ)"),
               Line2D([], [], color="black", marker="o", ls="", ms=4, label="start"),
               Line2D([], [], color="black", marker="*", ls="", ms=8, label="optimum")]
    if any(r.lcam_below is not None for _, r in items):
        handles += [Line2D([], [], color=style.PHASE_COLORS[key], marker="o", ls="", ms=5, mec="0.2", mew=0.4,
                           label=f"LCAM, trial 0: loss {key} its mean") for key in ("below", "above")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
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
                    # the half-width without its leading zero ("±.01"): the cell is narrow
                    half = fmt.format((high[i, j] - low[i, j]) / 2)
                    text += "\n±" + (half[1:] if half.startswith("0.") else half)
                r, g, b, _ = colormap(float(norm(v)))
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"  # readable on any cell
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    return image


def plot_phase_agreement(frame) -> Any:
    """Measurement 1: agreement and eq. (12) R^2 heat maps, one row per learning rate."""
    rates = sorted(frame["lr"].unique())
    fig, axes = style.new_figure(len(rates), 3, width="double", aspect=0.95, squeeze=False)
    ratios = sorted(frame["mass_ratio"].unique())
    noises = sorted(frame["noise"].unique())
    panels = (  # key, title, colour range, colour map, the colour bar's quantity
        ("agreement", "phase agreement\n(decision = true phase of Θₙ)", 0.5, 1.0, "viridis", "fraction of steps"),
        ("sign_agreement", "left/right reading\n(above = Θₙ left of centre)", 0.0, 1.0, "coolwarm",
         "fraction of steps"),
        ("eq12_r2", "eq. 12: R² of ΔL on ΔLₙ", 0.0, 1.0, "viridis", "R²"),
    )
    for row, lr in enumerate(rates):
        sub = frame[frame["lr"] == lr]
        for col, (key, title, vmin, vmax, cmap, scale) in enumerate(panels):
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
            fig.colorbar(image, ax=ax, shrink=0.8).set_label(scale, fontsize=8)
    return _freeze_layout(fig)


# How LCAM and its controls are drawn (lcamlab.experiments.controls): LCAM in its colour, solid;
# the phase-shuffled control dashed, the mean-matched one dotted. A difference LCAM − control keeps
# the control's colour and marker, but solid with an open marker: never the control's own look.
_SETTING_STYLE = {"LCAM": ("-", "o"), "shuffled": ("--", "s"), "matched": (":", "^")}
_DIFFERENCE_STYLE = {"linestyle": "-", "markerfacecolor": "white"}
_CONTROL_COLOURS = {"shuffled": "#777777", "matched": "#6B6B9A"}

# The heavy weight's own progress (theta_s, in the table) is left out: the centre of mass follows it.
_DRIFT_TITLES = {
    "com": "centre of mass\n(dominated by Θₛ)",
    "lean": "lean Θₛ − Θₙ\n(> 0: sparse side)",
    "theta_n": "Θₙ progress\n(light, quick)",
}


def _errorbar(ax, x, frame, key: str, **kwargs) -> None:
    m = frame[key].to_numpy(dtype=float)
    lo = frame[f"{key}_low"].to_numpy(dtype=float)
    hi = frame[f"{key}_high"].to_numpy(dtype=float)
    ax.errorbar(x, m, yerr=[np.nan_to_num(m - lo), np.nan_to_num(hi - m)], capsize=2, ms=3.5, **kwargs)


def plot_traction(frame) -> Any:
    r"""Measurement 2: LCAM and its controls against fixed momentum, and LCAM minus each control.

    Top row: drift against fixed momentum at the pair's midpoint (same mini-batches)
    of LCAM, its phase-shuffled control and its mean-matched control, for every
    asymmetry :math:`\beta_\text{above} - \beta_\text{below}`. Bottom row: the
    paired differences LCAM − shuffled (effect of loss control) and LCAM − matched
    (effect of the asymmetry beyond the mean momentum). 95% intervals.
    """
    keys = list(_DRIFT_TITLES)
    fig, axes = style.new_figure(2, len(keys), width="double", aspect=0.8, sharex=True)
    asymmetries = np.sort(frame["asymmetry"].unique())
    step = float(np.min(np.diff(asymmetries))) if len(asymmetries) > 1 else 0.02
    lcam_colour = style.optimizer_color("lcam")
    for col, key in enumerate(keys):
        top, bottom = axes[0, col], axes[1, col]
        for i, setting in enumerate(("LCAM", "shuffled", "matched")):
            rows = frame[frame["setting"] == setting].sort_values("asymmetry")
            ls, marker = _SETTING_STYLE[setting]
            colour = lcam_colour if setting == "LCAM" else _CONTROL_COLOURS[setting]
            label = {"LCAM": "LCAM", "shuffled": "phase-shuffled control",
                     "matched": "mean-matched control"}[setting]
            _errorbar(top, rows["asymmetry"].to_numpy() + (i - 1) * 0.08 * step, rows, key, color=colour, ls=ls,
                      marker=marker, label=label)
        for i, (setting, control) in enumerate((("LCAM - shuffled", "shuffled"), ("LCAM - matched", "matched"))):
            rows = frame[frame["setting"] == setting].sort_values("asymmetry")
            _errorbar(bottom, rows["asymmetry"].to_numpy() + (i - 0.5) * 0.08 * step, rows, key,
                      color=_CONTROL_COLOURS[control], marker=_SETTING_STYLE[control][1], **_DIFFERENCE_STYLE,
                      label={"shuffled": "LCAM − shuffled: loss control",
                             "matched": "LCAM − matched: beyond the mean momentum"}[control])
        for ax in (top, bottom):
            ax.axhline(0, color="0.4", lw=0.8)
            ax.axvline(0, color="0.4", lw=0.6)
        top.set_title(_DRIFT_TITLES[key], fontsize=8)
        bottom.set_xlabel("β(above) − β(below)")
        ticks = sorted({float(asymmetries.min()), 0.0, float(asymmetries.max())})  # more would overlap at 8 pt
        bottom.set_xticks(ticks, [f"{v:+g}".replace("-", "−") if v else "0" for v in ticks])
    axes[0, 0].set_ylabel("Θ drift vs fixed β")
    axes[1, 0].set_ylabel("LCAM − control (Θ)")
    handles = axes[0, 0].get_legend_handles_labels()[0] + axes[1, 0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    return _freeze_layout(fig)


def _sparsity_axis(ax, sparsities: Sequence[float]) -> None:
    ax.set_xticks(range(len(sparsities)), [f"{v:g}" for v in sparsities])
    ax.set_xlabel("sparsity")


def plot_sparsity(curves, best) -> Any:
    """Measurement 3: loss against learning rate per sparsity, and every optimizer at its best rate.

    Top row, one panel per sparsity: log10 excess loss at the budget on the
    evaluation seed against the learning rate (rates where a trial diverged are
    left out); the large black-rimmed marker on each curve is the rate chosen on the tuning seed.
    Bottom row: at the chosen rates, the total, frequent-feature and rare-feature
    losses against sparsity, and LCAM minus its controls (paired, 95% intervals).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    sparsities = sorted(curves["sparsity"].unique())
    position = {s: i for i, s in enumerate(sparsities)}
    fig = plt.figure(figsize=(7.2, 6.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.25])
    upper = np.atleast_1d(top.subplots(1, len(sparsities), sharey=True))
    lower = np.atleast_1d(bottom.subplots(1, 4))
    evaluation = curves[curves["seed_role"] == "evaluation"]
    settings = best[best["kind"] == "setting"]
    keys = list(dict.fromkeys(curves["key"]))
    low = float(evaluation[evaluation["diverged"] == 0]["log10_loss"].min())
    for ax, s in zip(upper, sparsities):
        for key in keys:
            rows = evaluation[(evaluation["key"] == key) & (evaluation["sparsity"] == s)].sort_values("lr")
            rows = rows[rows["diverged"] == 0]
            colour, marker = style.optimizer_color(key), style.optimizer_marker(key)
            ax.plot(rows["lr"], rows["log10_loss"], color=colour, lw=1.0, marker=marker, ms=2.5)
            chosen = settings[(settings["setting"] == key) & (settings["sparsity"] == s)]
            if len(chosen):
                ax.plot(chosen["lr"], chosen["log10_loss"], marker, color=colour, ms=5.5, mec="black", mew=0.6)
        ax.set_xscale("log")
        ax.set_ylim(low - 0.2, 0.5)
        ax.set_title(f"sparsity {s:g}", fontsize=8)
        ax.set_xlabel("learning rate")
    upper[0].set_ylabel("log₁₀ excess loss\nat the budget")
    top.legend(handles=[Line2D([], [], color=style.optimizer_color(k), marker=style.optimizer_marker(k), ms=3.5,
                               label=style.optimizer_label(k)) for k in keys],
               loc="outside lower center", ncols=min(len(keys), 5))
    panels = (("log10_loss", "total, at the best rates"), ("log10_frequent", "frequent features (Θₙ)"),
              ("log10_rare", "rare features (Θₛ)"))
    plain = [k for k in dict.fromkeys(settings["setting"]) if split_key(k)[1] is None]
    for ax, (column, title) in zip(lower, panels):
        for key in plain:
            rows = settings[settings["setting"] == key].sort_values("sparsity")
            _errorbar(ax, rows["sparsity"].map(position), rows, column, color=style.optimizer_color(key),
                      marker=style.optimizer_marker(key), lw=1.0)
        ax.set_title(title, fontsize=8)
        _sparsity_axis(ax, sparsities)
    lower[0].set_ylabel("log₁₀ excess loss")
    ax = lower[3]
    paired = best[best["kind"] == "paired"]
    effect_handles = []
    for name in dict.fromkeys(paired["setting"]):
        a, _, b = name.partition(" - ")
        if not a.startswith("lcam"):
            continue
        control = split_key(b)[1]
        rows = paired[paired["setting"] == name].sort_values("sparsity")
        ls, marker = _SETTING_STYLE.get(control, ("-", "D"))
        label = f"{style.optimizer_label(a)} − " + (f"its {control} control" if control
                                                     else style.optimizer_label(b))
        _errorbar(ax, rows["sparsity"].map(position), rows, "log10_loss", color=style.optimizer_color(a), ls=ls,
                  marker=marker, lw=1.0)
        effect_handles.append(Line2D([], [], color=style.optimizer_color(a), ls=ls, marker=marker, ms=3.5,
                                     label=label))
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_title("LCAM − control, paired\n(< 0: LCAM better)", fontsize=8)
    _sparsity_axis(ax, sparsities)
    if effect_handles:
        bottom.legend(handles=effect_handles, loc="outside lower center", ncols=2)
    return _freeze_layout(fig)


def plot_oscillation(frame) -> Any:
    """Measurement 4: Q at the AdaRem paper's convention, at matched progress, and against the final loss.

    Top left: Q at one base learning rate (the AdaRem paper's convention). Top
    right: Q of each trial's path up to a common excess loss (matched progress),
    each optimizer at the notebook's rate. Bottom: Q against the final loss over
    each optimizer's learning-rate sweep. 95% intervals.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    style.apply()
    sweep = frame[frame["part"] == "sweep"]
    keys = list(dict.fromkeys(sweep["key"]))
    fig = plt.figure(figsize=(7.2, 7.0), layout="constrained")
    axes = fig.subplot_mosaic([["convention", "progress"], ["sweep", "sweep"]], height_ratios=[1.0, 1.1])

    def bars(ax, rows, column: str, reached: bool) -> None:
        y = np.arange(len(rows))[::-1]
        q = rows[column].to_numpy(dtype=float)
        lo = rows[f"{column}_low"].to_numpy(dtype=float)
        hi = rows[f"{column}_high"].to_numpy(dtype=float)
        ax.barh(y, np.nan_to_num(q), color=[style.optimizer_color(k) for k in rows["key"]], edgecolor="black",
                lw=0.5)
        ax.errorbar(q, y, xerr=[np.nan_to_num(q - lo), np.nan_to_num(hi - q)], fmt="none", color="black",
                    capsize=2, lw=0.8)
        for position, value in zip(y, q):
            if not np.isfinite(value):
                ax.text(0.08, position, "never reached", va="center", fontsize=8, color="0.3")
        labels = [f"{r['optimizer']}\nlr {r['lr']:g}" + (f", {r['reached']:.0%} reached" if reached else "")
                  for _, r in rows.iterrows()]
        ax.set_yticks(y, labels)
        ax.axvline(1.0, color="0.4", lw=0.8, ls="--")
        ax.set_xlabel("oscillation index Q (1: a straight path)")
        ax.set_xlim(left=0)

    convention = sweep[sweep["convention"].astype(bool)]
    bars(axes["convention"], convention, "Q", False)
    axes["convention"].set_title("one base rate\n(the AdaRem paper's convention; Adam 1/100)", fontsize=9)
    own = sweep[sweep["own"].astype(bool)]
    bars(axes["progress"], own, "Q_progress", True)
    axes["progress"].set_title("matched progress: each path up to\na common excess loss", fontsize=9)
    ax = axes["sweep"]
    for key in keys:
        rows = sweep[(sweep["key"] == key) & (sweep["diverged"] == 0)].sort_values("lr")
        colour, marker = style.optimizer_color(key), style.optimizer_marker(key)
        ax.plot(rows["log10_final"], rows["Q"], "-" + marker, color=colour, ms=3.5, lw=1.2)
        chosen = rows[rows["own"].astype(bool)]
        ax.plot(chosen["log10_final"], chosen["Q"], "o", color=colour, ms=8, mfc="none", mew=1.5)
    ax.set_xlabel("log₁₀ final excess loss (left: closer to the optimum)")
    ax.set_ylabel("oscillation index Q")
    ax.set_title("Q against the final loss over a learning-rate sweep (○: the notebook's rate)", fontsize=9)
    names = dict(zip(sweep["key"], sweep["optimizer"]))
    ax.legend(handles=[Line2D([], [], color=style.optimizer_color(k), marker=style.optimizer_marker(k), ms=4,
                              label=names[k])
                       for k in keys], loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _freeze_layout(fig)


# -- tables: the same data as the figures, for lcamlab.style.show_table ---------------------------


def _pm(value: float, low: float, high: float) -> str:
    """``"0.0316 ± 0.0007"``: a mean and the half-width of its 95% interval, to the interval's precision."""
    if not np.isfinite(value):
        return "–"
    half = (high - low) / 2 if np.isfinite(low) and np.isfinite(high) else math.nan
    if not np.isfinite(half) or half <= 0:
        return f"{value:.3g}"
    decimals = min(max(1 - math.floor(math.log10(half)), 0), 6)
    return f"{value:.{decimals}f} ± {half:.{decimals}f}".replace("-", "−")


def trajectory_table(runs: Mapping[str, ToyRun]):
    """One row per optimizer: final excess loss and mean position over the trials, and the run's time."""
    import pandas as pd

    rows = []
    for label, r in runs.items():
        position = r.final.double().mean(dim=0)
        rows.append({"optimizer": label, "final excess loss": float(r.excess_loss()[-1].mean()),
                     "mean θₙ": float(position[0]), "mean θₛ": float(position[1]),
                     "trials": r.toy.trials, "seconds": round(r.wall_seconds, 3)})
    return pd.DataFrame(rows)


def interval_table(values: Mapping[str, Any], names: Mapping[str, str] | None = None):
    """Mean and 95% interval over trials of each per-trial tensor in ``values`` (one row each)."""
    import pandas as pd

    from lcamlab.experiments.stats import mean_ci

    rows = []
    for key, tensor in values.items():
        mean, low, high, n = mean_ci(tensor)
        rows.append({"quantity": (names or {}).get(key, key), "mean": mean, "95% low": low, "95% high": high,
                     "trials": n})
    return pd.DataFrame(rows)


def phase_table(frame, *, top: int = 5):
    """Measurement 1's ``top`` grid cells with the best phase agreement."""
    best = frame.sort_values("agreement", ascending=False).head(top)
    return _table(best, {"lr": "learning rate", "mass_ratio": "mass ratio", "noise": "noise σ"},
                  {"agreement": "phase agreement", "sign_agreement": "left/right reading", "eq12_r2": "eq. 12 R²"})


def _table(frame, plain: Mapping[str, str], intervals: Mapping[str, str]):
    import pandas as pd

    out = pd.DataFrame({name: frame[column].to_numpy() for column, name in plain.items()})
    for column, name in intervals.items():
        if f"{column}_low" in frame:
            out[name] = [_pm(v, lo, hi) for v, lo, hi in zip(frame[column], frame[f"{column}_low"],
                                                               frame[f"{column}_high"])]
        else:
            out[name] = frame[column].to_numpy()
    return out


def traction_tables(frame, *, key: str = "com"):
    """Measurement 2 as two tables: drift ``key`` of LCAM, its controls and the differences per asymmetry
    (mean ± half-width of the 95% interval), and what LCAM's momentum was on average per asymmetry."""
    import pandas as pd

    settings = ["LCAM", "shuffled", "matched", "LCAM - shuffled", "LCAM - matched"]
    drift = {}
    for asymmetry, rows in frame.groupby("asymmetry", sort=True):
        by = rows.set_index("setting")
        drift[asymmetry] = {
            s.replace(" - ", " − "): _pm(by.loc[s, key], by.loc[s, f"{key}_low"], by.loc[s, f"{key}_high"])
            if s in by.index else "–" for s in settings}
    drift_table = pd.DataFrame.from_dict(drift, orient="index").rename_axis("β(above) − β(below)").reset_index()
    first = frame.drop_duplicates("asymmetry").sort_values("asymmetry")
    momentum = first[["asymmetry", "below", "above", "realised_mean", "below_fraction", "agreement", "eq12_r2"]]
    momentum = momentum.rename(columns={
        "asymmetry": "β(above) − β(below)", "below": "β below", "above": "β above", "realised_mean": "realised mean β",
        "below_fraction": "share of steps below", "agreement": "phase agreement", "eq12_r2": "eq. 12 R²"})
    return drift_table, momentum.reset_index(drop=True)


def sparsity_tables(best):
    """Measurement 3 as two tables with one column per sparsity: each setting's log10 excess loss at its
    chosen rate (± half-width of the 95% interval; the rate in brackets), and the paired differences."""
    import pandas as pd

    def pivot(rows, name) -> Any:
        table: dict[str, dict[str, str]] = {}
        for _, r in rows.iterrows():
            label = name(r)
            cell = _pm(r["log10_loss"], r["log10_loss_low"], r["log10_loss_high"])
            if np.isfinite(r.get("lr", np.nan)):
                cell += f" (lr {r['lr']:g})"
            table.setdefault(label, {})[f"sparsity {r['sparsity']:g}"] = cell
        return pd.DataFrame.from_dict(table, orient="index").rename_axis("setting").reset_index()

    def paired_name(r) -> str:
        a, _, b = str(r["setting"]).partition(" - ")
        base, control = split_key(b)
        return f"{style.optimizer_label(a)} − " + (f"its {control} control" if control and base == a
                                                    else style.optimizer_label(b))

    return (pivot(best[best["kind"] == "setting"], lambda r: style.optimizer_label(str(r["setting"]))),
            pivot(best[best["kind"] == "paired"], paired_name))


def oscillation_tables(frame):
    """Measurement 4 as two tables: every optimizer at the notebook's rate (Q over the run, final loss, Q at
    matched progress and the share of trials that got there), and the paired contrasts."""
    sweep = frame[frame["part"] == "sweep"]
    own = sweep[sweep["own"].astype(bool)]
    own_table = _table(own, {"optimizer": "optimizer", "lr": "lr"},
                       {"Q": "Q over the run", "log10_final": "log₁₀ final excess loss",
                        "Q_progress": "Q at matched progress", "reached": "share that got there",
                        "steps_to_level": "mean steps to get there"})
    paired = frame[frame["part"] == "paired"]
    paired_table = _table(paired, {"optimizer": "contrast", "regime": "regime", "lr": "lr",
                                   "lr_reference": "lr of the reference"}, {"Q": "difference in Q"})
    return own_table, paired_table
