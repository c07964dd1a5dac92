r"""What notebooks 03 and 04 show of our runs next to the paper's, one call per notebook cell.

The run sets come from :func:`lcamlab.train.plan.prepare_panels` (a
:class:`~lcamlab.train.plan.PanelRuns`: the ``{dataset: figure}`` panels and the
runs read back as a tidy frame); this module turns them into

* the figures, ours over the paper's (:func:`plot_panels`, written as
  ``<figure>_<dataset>.png/.pdf``: ``fig3_cifar10``, ``fig4_cifar100``,
  ``fig5_cifar10``, ``fig5_cifar100``);
* the per-group summary at the last common epoch (:func:`describe_groups`);
* Table 1 with its cached CSV and figure (:func:`table1_report`, ``table1.png``)
  and the reading of the paper's win-rate claims (:func:`describe_table1`).

Nothing here trains: missing runs only mean fewer lines and rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab import paper, style
from lcamlab.reports.plots import plot_groups, plot_table1
from lcamlab.reports.tables import (
    DATASET_NAMES,
    final_values,
    group_summary,
    save_table1,
    table1_comparison,
    table1_markdown,
    table1_rows,
)

__all__ = [
    "PAPER_WIN_RATES",
    "plot_panels",
    "describe_groups",
    "Table1Report",
    "table1_report",
    "describe_table1",
]

#: 000 section 6: the share of runs in which LCAM beats fixed momentum 0.9.
PAPER_WIN_RATES = {"cifar10": 0.8, "cifar100": 0.5}


def _keep(fig: Any, name: str, figures_dir: str | os.PathLike, show: bool) -> None:
    """Save ``fig`` as ``<figures_dir>/<name>.png/.pdf``; with ``show``, also display it (notebooks)."""
    if show:
        style.show(fig, name, figures_dir)
    else:
        style.save_figure(fig, name, figures_dir)


def plot_panels(
    frame: pd.DataFrame,
    published: pd.DataFrame,
    panels: Mapping[str, str],
    figures_dir: str | os.PathLike,
    *,
    title: str,
    drop_epochs: Sequence[int] = (),
    show: bool = True,
) -> list[tuple[Any, Any]]:
    """One :func:`~lcamlab.reports.plots.plot_groups` figure per panel, saved as ``<figure>_<dataset>``.

    Each panel shows the paper's groups of that figure and dataset
    (:func:`lcamlab.paper.paper_groups`), ours over the paper's curves.

    Args:
        frame: our runs (:func:`lcamlab.train.runs.runs_frame`).
        published: the paper's curves (:func:`lcamlab.paper.load_curves`).
        panels: ``{dataset: figure}``.
        figures_dir: where the PNG and PDF go.
        title: the figure title, a format string with the fields ``number`` (the paper's
            figure number) and ``dataset`` (its display name).
        drop_epochs: epochs marked as learning-rate drops.
        show: display each saved figure (:func:`lcamlab.style.show`, in a notebook) and close it;
            False: only save it.
    Returns:
        ``[(fig, axes), ...]`` in the order of ``panels``.
    """
    figures = []
    for dataset, figure in panels.items():
        fig, axes = plot_groups(frame, published, dataset=dataset, groups=paper.paper_groups(published, figure, dataset),
                                figure=figure, drop_epochs=drop_epochs,
                                title=title.format(number=figure[3:], dataset=DATASET_NAMES[dataset]))
        _keep(fig, f"{figure}_{dataset}", figures_dir, show)
        figures.append((fig, axes))
    return figures


def describe_groups(
    frame: pd.DataFrame,
    published: pd.DataFrame,
    panels: Mapping[str, str],
    *,
    epochs_planned: int,
    drop_epochs: Sequence[int] = paper.STEP_DROP_EPOCHS,
) -> str:
    r"""Per panel, at the last epoch every run has reached: each group's test error and loss, ours and the paper's.

    Rows: the group's name, seeds, our mean / min / max test error, the paper's test
    error at the same epoch, our mean loss and the paper's (:func:`group_summary`).
    Then the group with the lowest mean test error, ours and the paper's, and, once
    every run is past the last drop, our average loss across each drop,
    :math:`\ell(e)/\ell(e-1)`.

    Args:
        frame: our runs (:func:`lcamlab.train.runs.runs_frame`).
        published: the paper's curves.
        panels: ``{dataset: figure}``.
        epochs_planned: the runs' configured epochs (printed for reference).
        drop_epochs: the learning-rate drops (000's step schedule: 32, 62, 92).
    """
    lines = []
    if frame.empty:
        lines.append("No runs yet: the figures show only the paper's curves. Train them with the commands above.")
    for dataset, figure in panels.items():
        mine = frame[frame.dataset == dataset]
        if mine.empty:
            continue
        error = group_summary(mine, metric="test_error", paper_curves=published, figure=figure)
        loss = group_summary(mine, metric="train_loss", paper_curves=published, figure=figure)
        epoch = int(error.epoch.iloc[0])
        lines.append(f"{DATASET_NAMES[dataset]} at epoch {epoch} (of {epochs_planned} planned):")
        table = error[["name", "n_seeds", "mean", "min", "max", "paper"]].rename(
            columns={"mean": "error_mean", "min": "error_min", "max": "error_max", "paper": "error_paper"})
        table["loss_mean"], table["loss_paper"] = loss["mean"].to_numpy(), loss["paper"].to_numpy()
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        best = error.loc[error["mean"].idxmin(), "name"]
        line = f"  lowest mean test error in our runs: {best}"
        if error.paper.notna().any():
            line += f"; in the paper at epoch {epoch}: {error.loc[error.paper.idxmin(), 'name']}"
        lines.append(line)
        if drop_epochs and epoch >= max(drop_epochs):
            ratios = mine.pivot_table(index="epoch", columns="group", values="train_loss")
            drops = {e: (ratios.loc[e] / ratios.loc[e - 1]).round(3).to_dict() for e in drop_epochs}
            lines.append(f"  our average loss across the drops, after / before: {drops}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class Table1Report:
    """Table 1 of our runs next to 000's, and where it was stored.

    Attributes:
        rows: :func:`~lcamlab.reports.tables.table1_rows` (our side: mean, std, best, win rate).
        finals: :func:`~lcamlab.reports.tables.final_values` (each run's value used).
        comparison: :func:`~lcamlab.reports.tables.table1_comparison` (000's rows, then ours).
        saved: :func:`~lcamlab.reports.tables.save_table1`'s result, or None without runs.
        figure: ``(fig, axes)`` of :func:`~lcamlab.reports.plots.plot_table1`.
        text: the markdown table and where it was stored.
    """

    rows: pd.DataFrame
    finals: pd.DataFrame
    comparison: pd.DataFrame
    saved: dict[str, Any] | None
    figure: tuple[Any, Any]
    text: str


def table1_report(
    frame: pd.DataFrame,
    paper_table1: pd.DataFrame,
    published: pd.DataFrame,
    datasets: Sequence[str],
    *,
    epoch: int,
    data_dir: str | os.PathLike,
    figures_dir: str | os.PathLike,
    provenance: Mapping[str, Any],
    baseline: str = "0.9-0.9",
    figure: str = "fig5",
    show: bool = True,
    log: Callable[[str], None] | None = print,
) -> Table1Report:
    """Our Table 1 at ``epoch`` next to 000's: computed, stored (cached by content), drawn.

    The table is stored by :func:`~lcamlab.reports.tables.save_table1` under
    ``<data_dir>/paper_reproduction/`` with ``{"table_epoch", "baseline", **provenance}``
    as its configuration: the same runs and settings are a cache hit. The figure
    (:func:`~lcamlab.reports.plots.plot_table1`, the groups of ``figure`` per dataset)
    is saved as ``table1``.

    Args:
        frame: our runs (:func:`lcamlab.train.runs.runs_frame`).
        paper_table1: 000 Table 1 (:func:`lcamlab.paper.load_table1`).
        published: the paper's curves (for the groups of ``figure``).
        datasets: the columns of the table and the panels of the figure.
        epoch: the epoch compared (000: LCAM at 120).
        data_dir: the results folder (the stored paths are absolute).
        figures_dir: where ``table1.png/.pdf`` go.
        provenance: what produced the runs (:attr:`lcamlab.train.plan.PanelRuns.provenance`).
        baseline: the group the win rate is counted against (fixed 0.9).
        figure: the paper figure whose groups are drawn.
        show: display the saved figure (:func:`lcamlab.style.show`) and close it; False: only save it.
        log: where the table's text goes before the figure is shown (``None``: silent; it is also
            :attr:`Table1Report.text`).
    """
    rows = table1_rows(frame, epoch=epoch, baseline=baseline)
    finals = final_values(frame, epoch=epoch)
    comparison = table1_comparison(paper_table1, rows)
    lines = [table1_markdown(comparison, datasets=datasets)]
    saved = None
    if len(rows):
        saved = save_table1(comparison, Path(data_dir).resolve(), finals=finals,
                            config={"table_epoch": epoch, "baseline": baseline, **provenance})
        lines.append(f"Table 1 {saved['status']}: {saved['csv']} (+ .json, .md)")
    text = "\n".join(lines)
    if log is not None:
        log(text)
    fig, axes = plot_table1(finals, paper_table1,
                            groups={d: paper.paper_groups(published, figure, d) for d in datasets},
                            title="Table 1: test error per seed (dots), mean ± std (squares), 000's rows (lines)")
    _keep(fig, "table1", figures_dir, show)
    return Table1Report(rows=rows, finals=finals, comparison=comparison, saved=saved, figure=(fig, axes), text=text)


def describe_table1(rows: pd.DataFrame, paper_table1: pd.DataFrame) -> str:
    """Our Table 1 rows in words, against 000 section 6's win rates and 000's LCAM row.

    Per row: mean, seeds, std and best; for LCAM the seeds won against fixed 0.9 next
    to :data:`PAPER_WIN_RATES`. Then our LCAM mean minus 000's LCAM entry per dataset.
    """
    lines = []
    if rows.empty:
        lines.append("No runs yet: the figures show only the paper's curves and Table 1's published rows.")
    for row in rows.itertuples(index=False):
        text = (f"{DATASET_NAMES[row.dataset]} {row.name} at epoch {row.epoch}: {row.mean:.2f} % mean over "
                f"{row.n_seeds} seed(s), std {row.std:.2f}, best {row.best:.2f}")
        if row.pairs:
            text += (f"; beats fixed 0.9 on {row.wins}/{row.pairs} seeds ({100 * row.win_rate:.0f} %, "
                     f"paper: about {100 * PAPER_WIN_RATES[row.dataset]:.0f} %)")
        lines.append(text)
    for row in paper_table1[paper_table1.method.str.contains("LCAM")].itertuples(index=False):
        ours = rows[(rows.dataset == row.dataset) & (rows.group != "0.9-0.9")]
        if len(ours):
            gap = ours["mean"].iloc[0] - row.test_error
            lines.append(f"{DATASET_NAMES[row.dataset]}: our LCAM mean minus 000's LCAM row ({row.test_error:.2f} %): "
                         f"{gap:+.2f} points at epoch {int(ours.epoch.iloc[0])}")
    return "\n".join(lines)
