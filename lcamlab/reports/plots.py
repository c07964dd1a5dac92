"""Our WRN/CIFAR runs next to the paper's, as figures: the group panels and Table 1.

* :func:`plot_groups`: our runs (mean over seeds, solid, min-max band) over the
  paper's published curves (dashed) in the paper's group colours, one panel per
  metric (the LCAM paper's Figures 3-5);
* :func:`plot_table1`: each seed's final test error, mean ± std, and the paper's
  Table 1 rows as reference lines.

Every legend and title states how many seeds and epochs stand behind the lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lcamlab import paper, style
from lcamlab.reports.tables import DATASET_NAMES, aggregate_seeds
from lcamlab.train.groups import group_label, group_name, parse_group
from lcamlab.train.runs import runs_frame

__all__ = ["plot_groups", "plot_table1"]


def plot_groups(
    ours: pd.DataFrame | None,
    paper_curves: pd.DataFrame | None,
    *,
    dataset: str,
    groups: Sequence[str | tuple[float, float]],
    figure: str | None = None,
    metrics: Sequence[str] = ("test_error", "train_loss"),
    log_metrics: Sequence[str] = ("train_loss",),
    drop_epochs: Sequence[int] = (),
    title: str | None = None,
):
    """Our runs (mean over seeds, min-max band) over the paper's curves (dashed), one panel per metric.

    Every group is drawn in the paper's colour and marker (:func:`lcamlab.style.paper_group_color`,
    :func:`lcamlab.style.paper_group_marker`: the groups stay apart in greyscale); a group without
    runs shows only the paper's curve, and its legend entry (dashed, as that curve) says so. The
    epoch axis spans the epochs drawn (the paper's Figure 3 curves start at epoch 62), and only the
    learning-rate drops inside it are marked.

    Args:
        ours: :func:`lcamlab.train.runs.runs_frame` output (any datasets; filtered to ``dataset``), or None.
        paper_curves: :func:`lcamlab.paper.load_curves` output, or None.
        dataset: ``cifar10`` or ``cifar100``.
        groups: momentum groups (labels ``"0.9-0.95"`` or pairs) in drawing order.
        figure: the paper figure overlaid (``fig3``/``fig4``/``fig5``); None: no overlay.
        metrics: one panel per metric.
        log_metrics: metrics drawn on a log scale (the paper's loss panels).
        drop_epochs: epochs marked with a dotted line (learning-rate drops).
        title: figure title.
    Returns:
        ``(fig, axes)``.
    """
    from matplotlib.lines import Line2D

    if dataset not in DATASET_NAMES:
        raise ValueError(f"Invalid dataset: {dataset!r} (choose one of {sorted(DATASET_NAMES)})")
    if not metrics:
        raise ValueError("Invalid metrics: empty (choose from 'test_error', 'train_loss')")
    labels = [g if isinstance(g, str) else group_label(g) for g in groups]
    ours = ours if ours is not None else runs_frame([])
    ours = ours[ours.dataset == dataset] if len(ours) else ours
    fig, axes = style.new_figure(1, len(metrics), width="double", aspect=0.72, squeeze=False)
    axes = axes[0]
    seeds_per_group = {g: ours[ours.group == g].seed.nunique() if len(ours) else 0 for g in labels}
    shown = paper_curves[(paper_curves.figure == figure) & (paper_curves.dataset == dataset)] \
        if paper_curves is not None and figure is not None else pd.DataFrame(columns=["epoch"])
    epochs = [float(e) for frame in (ours, shown) if len(frame) for e in (frame.epoch.min(), frame.epoch.max())]
    epochs_per_group = {g: int(ours[ours.group == g].epoch.max()) if seeds_per_group[g] else 0 for g in labels}
    drawn_paper: set[str] = set()
    drawn_drops = False
    for ax, metric in zip(axes, metrics):
        aggregated = aggregate_seeds(ours, metric) if len(ours) else aggregate_seeds(pd.DataFrame(), metric)
        has_paper = False
        for group in labels:
            color = style.paper_group_color(parse_group(group))
            marker = style.paper_group_marker(parse_group(group))
            if paper_curves is not None and figure is not None:
                curve = paper.paper_curve(paper_curves, figure, dataset, metric, group)
                if len(curve):
                    has_paper = True
                    drawn_paper.add(group)
                    ax.plot(curve.epoch, curve.value, color=color, ls="--", lw=1.0, alpha=0.85, zorder=2,
                            marker=marker, ms=3, markevery=style.marker_every(len(curve)))
            mine = aggregated[aggregated.group == group] if len(aggregated) else aggregated
            if len(mine):
                ax.fill_between(mine.epoch.astype(float), mine["min"].astype(float), mine["max"].astype(float),
                                color=color, alpha=0.2, lw=0, zorder=1)
                ax.plot(mine.epoch, mine["mean"], color=color, lw=1.6, zorder=3, marker=marker, ms=3,
                        markevery=style.marker_every(len(mine)))
        if epochs:  # the same epoch axis on every panel, from the first epoch drawn to the last
            ax.set_xlim(max(0.0, min(epochs) - 2), max(epochs) + 2)
        for epoch in drop_epochs:
            if not epochs or min(epochs) - 2 < epoch < max(epochs) + 2:  # a drop before the data is not drawn
                drawn_drops = True
                ax.axvline(epoch, color="0.55", lw=0.7, ls=":", zorder=0)
        if metric in log_metrics:
            ax.set_yscale("log")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(paper.METRICS.get(metric, metric))
        ax.set_title(f"{DATASET_NAMES[dataset]}: {paper.METRICS.get(metric, metric).lower()}")
        if metric in log_metrics:
            low, high = ax.get_ylim()
            if high < 10 * low:  # less than a decade: label every tick plainly (one number format per axis)
                from matplotlib.ticker import FuncFormatter

                plain = FuncFormatter(lambda value, _: f"{value:.3g}")
                ax.yaxis.set_major_formatter(plain)
                ax.yaxis.set_minor_formatter(plain)
        if figure is not None and not has_paper:
            ax.text(0.98, 0.02, f"the paper publishes no {metric.replace('_', ' ')} curve here",
                    transform=ax.transAxes, fontsize=8, color="0.4", va="bottom", ha="right")
        if ours.empty and not has_paper:
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="0.4")
    # Each group's entry is drawn as its lines are: solid with our runs, dashed with only the paper's
    # curve; a group with neither is left out (no entry without a line to point at).
    group_handles = []
    for group in labels:
        n = seeds_per_group[group]
        if not n and group not in drawn_paper:
            continue
        runs = f"{n} seed{'s' if n != 1 else ''}, {epochs_per_group[group]} ep" if n else "no runs"
        group_handles.append(Line2D([], [], color=style.paper_group_color(parse_group(group)), lw=2,
                                    ls="-" if n else "--", marker=style.paper_group_marker(parse_group(group)),
                                    ms=4, label=f"{group_name(group, figure)} ({runs})"))
    key_handles = []
    if any(seeds_per_group.values()):
        key_handles.append(Line2D([], [], color=style.KEY_COLOR, lw=1.6, label="ours: mean over seeds, band min-max"))
    if drawn_paper:
        key_handles.append(Line2D([], [], color=style.KEY_COLOR, lw=1.0, ls="--",
                                  label=f"the LCAM paper's Figure {figure[3:]}"))
    if drawn_drops:
        key_handles.append(Line2D([], [], color="0.55", lw=0.7, ls=":", label="learning-rate drops"))
    rows = [row for row in (group_handles, key_handles) if row]
    if rows:
        fig.legend(handles=_rows_legend(rows), loc="outside lower center", ncol=max(len(row) for row in rows))
    if title:
        fig.suptitle(title)
    return fig, axes


def _rows_legend(rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Order legend handles so that matplotlib's column-major fill shows one list per row."""
    from matplotlib.lines import Line2D

    ncol = max(len(row) for row in rows)
    blank = Line2D([], [], alpha=0.0, label=" ")
    padded = [list(row) + [blank] * (ncol - len(row)) for row in rows]
    return [padded[r][c] for c in range(ncol) for r in range(len(rows))]


def plot_table1(
    finals: pd.DataFrame,
    paper_table1: pd.DataFrame,
    *,
    groups: Mapping[str, Sequence[str]],
    title: str | None = None,
):
    """Table 1 as a figure: per dataset, each seed's final test error (dots), mean ± std
    (bar), and the LCAM paper's Table 1 rows as dashed reference lines.

    Args:
        finals: :func:`lcamlab.reports.tables.final_values` output.
        paper_table1: :func:`lcamlab.paper.load_table1` output.
        groups: per dataset, the groups shown (e.g. fixed 0.9 and the LCAM pair).
        title: figure title.
    Returns:
        ``(fig, axes)``.
    """
    datasets = list(groups)
    if not datasets:
        raise ValueError("Invalid groups: empty (map each dataset to its groups)")
    fig, axes = style.new_figure(1, len(datasets), width="double", aspect=0.8, squeeze=False)
    axes = axes[0]
    line_styles = ["--", "-.", ":"]
    for ax, dataset in zip(axes, datasets):
        published = paper_table1[paper_table1.dataset == dataset]
        for index, row in enumerate(published.itertuples(index=False)):
            ax.axhline(row.test_error, color="0.35", lw=0.9, ls=line_styles[index % len(line_styles)],
                       label=f"paper: {row.method}, {row.epochs} ep ({row.test_error:.2f})")
        epochs_used = set()
        for position, group in enumerate(groups[dataset]):
            color = style.paper_group_color(parse_group(group))
            part = finals[(finals.dataset == dataset) & (finals.group == group)] if len(finals) else finals
            if not len(part):
                ax.text(position, 0.04, "no runs", transform=ax.get_xaxis_transform(), ha="center", color="0.4")
                continue
            epochs_used.update(int(e) for e in part.epoch)
            values = part.value.to_numpy(float)
            # deterministic spread so overlapping seeds stay visible
            offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(position + offsets, values, color=color, s=16, zorder=3, edgecolor="white", lw=0.4)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(position + 0.28, values.mean(), yerr=std, color=color, fmt="s", ms=5, capsize=3, zorder=3)
        ax.set_xticks(range(len(groups[dataset])))
        ax.set_xticklabels([group_name(g, "fig5") for g in groups[dataset]])
        ax.set_xlim(-0.6, len(groups[dataset]) - 0.4)
        name = DATASET_NAMES.get(dataset, dataset)
        if epochs_used:
            ax.set_title(f"{name}: test error at epoch {', '.join(str(e) for e in sorted(epochs_used))}")
        else:
            ax.set_title(f"{name}: the paper's Table 1 (no runs yet)")
        ax.set_ylabel("Test error (%)")
        ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig, axes
