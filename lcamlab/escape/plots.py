r"""Figures of the escape notebook (``notebooks/02_saddle_escape.ipynb``), in the suite's style.

* :func:`plot_kramers`: the sharp-valley design's escape rates against :math:`k` with the
  maximum-likelihood Kramers fits, one panel per noise arm;
* :func:`plot_alpha`: the fitted :math:`\alpha` with its profile interval per setting and arm;
* :func:`plot_jumps`: one jump-driven escape, and the fraction of escapes after a large kick;
* :func:`plot_saddle`: iterations to leave the saddle against its negative curvature.

Colours, labels and markers are the registry's (:mod:`lcamlab.experiments.registry`, through
:mod:`lcamlab.style`); sizes come from :mod:`lcamlab.style`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcamlab import style
from lcamlab.experiments.registry import split_key

__all__ = ["plot_saddle", "plot_kramers", "plot_alpha", "plot_jumps"]


def _plain_log_ticks(axis) -> None:
    """Label a log axis with plain numbers (20, 0.001, 10,000) instead of mathtext powers: easier to
    read, and mathtext layout was most of the figures' rendering time. Every label is a plain
    decimal, so an axis never mixes formats (matplotlib's own LogFormatter writes 1e4 next to 1e+05)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):
            if x >= 1e4 and float(x).is_integer():
                return f"{x:,.0f}"
            return np.format_float_positional(x, precision=6, trim="-")

    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))


def plot_saddle(table: pd.DataFrame, exponents: pd.DataFrame):
    r"""Mean iterations to leave the saddle against :math:`|\lambda|` (log-log), and relative to SGD.

    Left: mean exit iteration with its 95% interval (markers) and the fitted power law (lines,
    :func:`lcamlab.escape.rates.saddle_exponent_table`).
    Right: each optimizer's mean divided by SGD's at the same curvature (below 1 =
    leaves faster than SGD). Returns ``(fig, axes)``.
    """
    fig, axes = style.new_figure(1, 2, width="double", aspect=0.95)
    fits = exponents.set_index("optimizer")
    reference = table[table["optimizer"] == "sgd"].set_index("k")["mean_time"] if (table["optimizer"] == "sgd").any() else None
    for key, group in table.groupby("optimizer", sort=False):
        color = style.optimizer_color(key)
        x = group["negative_curvature"].to_numpy()
        err = np.vstack([group["mean_time"] - group["mean_lower"], group["mean_upper"] - group["mean_time"]])
        label = style.optimizer_label(key)
        if key in fits.index:
            label += f" (p = {fits.loc[key, 'exponent']:.2f})"
        axes[0].errorbar(x, group["mean_time"], yerr=err, fmt=style.optimizer_marker(key), color=color,
                         markersize=4, capsize=2, elinewidth=0.8, label=label)
        if key in fits.index:  # the fitted power law over the curvatures measured
            line = np.geomspace(x.min(), x.max(), 20)
            axes[0].plot(line, np.exp(fits.loc[key, "intercept"]) * line ** fits.loc[key, "exponent"], color=color,
                         linewidth=0.9)
        if reference is not None:
            ratio = group["mean_time"].to_numpy() / reference.reindex(group["k"]).to_numpy()
            axes[1].plot(x, ratio, style.optimizer_marker(key) + "-", color=color, markersize=4, linewidth=0.9)
    for ax in axes:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("negative curvature |λ| = k·|L₀″(ridge)|")
    axes[0].set_yscale("log")
    _plain_log_ticks(axes[0].yaxis)
    axes[0].set_ylabel("iterations to leave the saddle")
    axes[0].set_title("mean exit time (markers), fit T ∝ |λ|^p (lines)")
    axes[1].axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axes[1].set_ylabel("mean exit time / SGD's")
    axes[1].set_title("relative to SGD (below 1: faster)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3)
    return fig, axes


# --------------------------------------------------------------------------------------
# The valley experiment (the sharp-valley design, lcamlab.escape.design)
# --------------------------------------------------------------------------------------

_ARM_STYLE = {"data": ("-", "o"), "gauss": ("--", "s"), "iso": (":", "^")}


def _control_style(key: str) -> tuple[str, str]:
    base, control = split_key(key)
    colour = style.optimizer_color(base)
    return colour, {None: "-", "shuffled": ":", "matched": "--"}[control]


def _label_two_and_five(value: float, _position) -> str:
    exponent = np.floor(np.log10(value)) if value > 0 else 0.0
    return f"{value:g}" if round(value / 10 ** exponent) in (2, 5) else ""


def _minor_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(_label_two_and_five)


_ARM_TITLES = {"data": "data noise (batch 1)", "gauss": "Gaussian noise (the data's variance)",
               "iso": "isotropic noise (null)"}


def plot_kramers(points: pd.DataFrame, alphas: pd.DataFrame, *, optimizers=None):
    r"""Escape rate against k (log-log) with the maximum-likelihood Kramers fits, one panel per noise arm.

    Points: censored rate with its 95% interval; curves: :math:`\exp(a + p\log k - c k^{-\hat\alpha})`.
    One legend for all panels, below them. Returns ``(fig, axes)``.
    """
    arms = [a for a in ("data", "gauss", "iso") if a in set(points["arm"])]
    fig, axes = style.new_figure(1, len(arms), width="double", aspect=0.5 * len(arms) / 2 + 0.25, squeeze=False)
    axes = axes[0]
    fits = alphas.set_index(["optimizer", "arm"])
    keys = optimizers or [k for k in dict.fromkeys(points["optimizer"]) if split_key(k)[1] is None]
    handles: dict[str, object] = {}
    for ax, arm in zip(axes, arms):
        for key in keys:
            group = points[(points["optimizer"] == key) & (points["arm"] == arm)].sort_values("k")
            if group.empty:
                continue
            colour = style.optimizer_color(key)
            err = np.vstack([group["rate"] - group["rate_lower"], group["rate_upper"] - group["rate"]])
            handle = ax.errorbar(group["k"], group["rate"], yerr=err, fmt=style.optimizer_marker(key), color=colour,
                                 markersize=3, capsize=1.5, elinewidth=0.7, label=style.optimizer_label(key))
            handles.setdefault(key, handle)
            if (key, arm) in fits.index:
                f = fits.loc[(key, arm)]
                grid = np.geomspace(group["k"].min(), group["k"].max(), 80)
                ax.plot(grid, np.exp(f["a"] + f["p"] * np.log(grid) - f["c"] * grid ** -f["alpha"]), color=colour,
                        linewidth=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
        ax.xaxis.set_minor_formatter(_minor_formatter())  # 20 and 50, not 20 30 40 60 running together
        ax.set_xlabel("sharpness k")
        ax.set_title(_ARM_TITLES.get(arm, arm), fontsize=9)
    axes[0].set_ylabel("escape rate Γ per iteration")
    fig.legend(list(handles.values()), [style.optimizer_label(k) for k in handles], loc="outside lower center",
               ncol=min(4, len(handles)))
    return fig, axes


def plot_alpha(alphas: pd.DataFrame):
    r"""The fitted :math:`\alpha` with its 95% profile interval per optimizer and arm, against 1, 2/3 and 1/2."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    from matplotlib.transforms import blended_transform_factory

    rows = alphas.reset_index(drop=True)
    fig, ax = style.new_figure(1, 1, width="double", aspect=0.2 + 0.028 * len(rows))
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows.itertuples()):
        colour, _ = _control_style(row.optimizer)
        marker = _ARM_STYLE.get(row.arm, ("-", "o"))[1]
        ax.errorbar(row.alpha, yi, xerr=[[row.alpha - row.alpha_low], [row.alpha_high - row.alpha]], fmt=marker,
                    color=colour, capsize=2, markersize=4, elinewidth=1.0,
                    markerfacecolor=colour if row.deviance_p >= 0.01 else "white")
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for value, name, where in ((1.0, "1: diffusion,\nT ∝ ηk", "left"), (2 / 3, "2/3: single\njumps", "center"),
                               (0.5, "1/2: diffusion,\nT ∝ η√k (Adam)", "right")):
        ax.axvline(value, color="0.5", linewidth=0.7, linestyle=":")
        ax.text(value, 1.01, name, transform=top, fontsize=8, va="bottom", ha=where, color="0.3")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{style.optimizer_label(r.optimizer)} / {r.arm}" for r in rows.itertuples()])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xscale("log")
    ax.set_xlim(min(0.2, rows["alpha_low"].min() * 0.8), max(4.5, rows["alpha_high"].max() * 1.15))
    ticks = [t for t in (0.25, 0.5, 2 / 3, 1.0, 1.5, 2.0, 3.0, 4.0)
             if rows["alpha_low"].min() * 0.8 <= t <= rows["alpha_high"].max() * 1.2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "2/3" if abs(v - 2 / 3) < 1e-9 else f"{v:g}"))
    ax.set_xlabel("α in log Γ = a + p log k − c k^(−α)   (open marker: Kramers' law rejected, fit p < 0.01)")
    return fig, ax


def plot_jumps(points: pd.DataFrame, trace: dict):
    """Left: one jump-driven escape (u of the escaping coordinate and the kicks); right: kick fraction vs k.

    One legend below both panels names every mark: the path, the valley's minimum where it
    starts and the ridge it crosses (the reference lines), the kicks (bars, right-hand axis)
    and each optimizer's curve with the chance line.
    """
    from matplotlib.patches import Patch

    fig, axes = style.new_figure(1, 2, width="double", aspect=0.78)
    ax = axes[0]
    steps = np.asarray(trace["steps"]) - trace["escape_step"]
    kick_colour = style.optimizer_color("sgd")
    path = ax.plot(steps, trace["u"], color="black", linewidth=1.0, marker="o", markersize=2.5,
                   label="u, the escaping coordinate")[0]
    ridge = ax.axhline(trace["boundary"], color="0.5", linestyle="--", linewidth=0.7,
                       label="ridge: the valley's boundary")
    start = ax.axhline(trace["start"], color="0.5", linestyle=":", linewidth=0.7,
                       label="start: the valley's minimum")
    ax.set_xlabel("iterations relative to the escape")
    ax.set_ylabel("coordinate u = √k·θ")
    twin = ax.twinx()
    twin.bar(steps[1:] - 0.5, np.abs(trace["kick"]), width=0.8, color=kick_colour, alpha=0.5)
    twin.set_ylabel("|kick| (noise SDs)")
    kicks = Patch(color=kick_colour, alpha=0.5, label="|kick| per step (bars, right axis)")
    ax.set_zorder(twin.get_zorder() + 1)  # the path over the bars
    ax.patch.set_visible(False)
    ax.set_title(f"SGD, k = {trace['k']:.2f}: one kick of {abs(trace['kick'][int(np.argmax(np.abs(trace['kick'])))]):.1f} SDs",
                 fontsize=9)
    ax = axes[1]
    data = points[points["arm"] == "data"]
    for key, group in data.groupby("optimizer", sort=False):
        if split_key(key)[1]:  # LCAM's controls: the figure shows the settings
            continue
        group = group.sort_values("k")
        ax.plot(group["mean_time"], group["kick_fraction"], marker=style.optimizer_marker(key), markersize=3,
                color=style.optimizer_color(key), label=style.optimizer_label(key), linewidth=0.9)
    chance = data.groupby("k_index")["kick_chance"].mean().mean()
    ax.axhline(chance, color="0.4", linestyle="--", linewidth=0.8, label=f"chance ({chance:.0%})")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("mean escape time (iterations; flatter valleys →)")
    ax.set_ylabel("fraction after a kick > 6 SDs")
    ax.set_title("fraction of escapes after a large kick (20 steps)", fontsize=9)
    ax.set_ylim(0, 1.05)
    handles, labels = ax.get_legend_handles_labels()
    left = [path, ridge, start, kicks]
    fig.legend(left + handles, [h.get_label() for h in left] + labels, loc="outside lower center", ncol=4)
    return fig, axes
