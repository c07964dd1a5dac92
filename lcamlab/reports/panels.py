r"""What notebooks 03 and 04 show of our runs next to the paper's, one call per notebook cell.

The run sets come from :func:`lcamlab.reports.plan.prepare_panels` (a
:class:`~lcamlab.reports.plan.PanelRuns`: the ``{dataset: figure}`` panels and the
runs read back as a tidy frame); this module turns them into

* what the paper published, as tables sized for a notebook (:func:`show_paper_panels`,
  :func:`show_paper_final`);
* the figures, ours over the paper's (:func:`plot_panels`; the notebooks save
  them as ``<figure>_<dataset>``: ``fig3_cifar10``, ``fig4_cifar100``,
  ``fig5_cifar10``, ``fig5_cifar100``);
* the per-group summary at the last common epoch (:func:`show_groups`);
* Table 1 with its cached CSV and figure (:func:`table1_report`; the notebook saves it as ``table1``)
  and the reading of the paper's win-rate claims (:func:`describe_table1`).

Figures are returned, never saved here: the notebook names and saves each one
(``style.show(fig, name, figures_dir)``), as it does every other figure. In a
notebook, tables are shown as HTML (:func:`lcamlab.style.show_table`) and
sentences as Markdown, so nothing wraps mid-word; with ``show=False`` nothing is
displayed and the same content is returned. The paper is Zhang et al. (2023),
"Asymmetric Momentum: A Rethinking of Gradient Descent" (the "LCAM paper").
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
    table1_display,
    table1_markdown,
    table1_rows,
)

__all__ = [
    "PAPER_WIN_RATES",
    "show_paper_panels",
    "show_paper_final",
    "plot_panels",
    "group_tables",
    "show_groups",
    "Table1Report",
    "table1_report",
    "describe_table1",
    "show_markdown",
]

#: The LCAM paper's section 6: the share of runs in which LCAM beats fixed momentum 0.9.
PAPER_WIN_RATES = {"cifar10": 0.8, "cifar100": 0.5}


def show_markdown(text: str) -> None:
    """In a notebook: display ``text`` as Markdown (wraps at words, unlike printed text)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def show_paper_panels(published: pd.DataFrame, panels: Mapping[str, str], *,
                      show: bool = True) -> dict[str, pd.DataFrame]:
    """What the paper published in each panel of Figures 3/4, one table per panel.

    Per group (:func:`lcamlab.paper.panel_table`): the points drawn, the first epoch, the
    test error at 120 and 150, the final loss and the average loss across each
    learning-rate drop, :math:`\\ell(e)/\\ell(e-1)` (empty where the curve starts later).

    Returns:
        ``{dataset: table}``; with ``show``, each is displayed (:func:`lcamlab.style.show_table`).
    """
    tables = {}
    for dataset, figure in panels.items():
        table = paper.panel_table(published, figure, dataset)
        tables[dataset] = table
        if show:
            style.show_table(table, digits=3, caption=f"The LCAM paper's Figure {figure[3:]} "
                                                      f"({DATASET_NAMES[dataset]}), per group")
    return tables


def show_paper_final(published: pd.DataFrame, paper_table1: pd.DataFrame, *,
                     show: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's Figure 5 curves (test error at 120 and 150) and its Table 1, as two tables.

    Returns:
        ``(figure 5 table, Table 1)`` (:func:`lcamlab.paper.final_training_table`,
        :func:`lcamlab.paper.table1_wide`); with ``show``, both are displayed.
    """
    curves = paper.final_training_table(published)
    table1 = paper.table1_wide(paper_table1)
    if show:
        style.show_table(curves, digits=4, caption="The LCAM paper's Figure 5: published test error (%)")
        style.show_table(table1, caption="The LCAM paper's Table 1: test error (%) of WRN-28-10")
    return curves, table1


def plot_panels(
    frame: pd.DataFrame,
    published: pd.DataFrame,
    panels: Mapping[str, str],
    *,
    title: str,
    drop_epochs: Sequence[int] = (),
) -> dict[str, tuple[Any, Any]]:
    """One :func:`~lcamlab.reports.plots.plot_groups` figure per panel (the notebooks save it as
    ``<figure>_<dataset>``).

    Each panel shows the paper's groups of that figure and dataset
    (:func:`lcamlab.paper.paper_groups`), ours over the paper's curves.

    Args:
        frame: our runs (:func:`lcamlab.train.runs.runs_frame`).
        published: the paper's curves (:func:`lcamlab.paper.load_curves`).
        panels: ``{dataset: figure}``.
        title: the figure title, a format string with the fields ``number`` (the paper's
            figure number) and ``dataset`` (its display name).
        drop_epochs: epochs marked as learning-rate drops.
    Returns:
        ``{dataset: (fig, axes)}`` in the order of ``panels``.
    """
    figures = {}
    for dataset, figure in panels.items():
        figures[dataset] = plot_groups(
            frame, published, dataset=dataset, groups=paper.paper_groups(published, figure, dataset), figure=figure,
            drop_epochs=drop_epochs, title=title.format(number=figure[3:], dataset=DATASET_NAMES[dataset]))
    return figures


def group_tables(
    frame: pd.DataFrame,
    published: pd.DataFrame,
    panels: Mapping[str, str],
    *,
    drop_epochs: Sequence[int] = paper.STEP_DROP_EPOCHS,
) -> list[dict[str, Any]]:
    r"""Per panel with runs, at the last epoch every run has reached: each group, ours and the paper's.

    Returns:
        One dict per panel with runs: ``dataset``, ``figure``, ``epoch``, ``table`` (per group:
        seeds, our mean / min / max test error, the paper's test error at that epoch, our
        mean loss and the paper's; :func:`group_summary`), ``lowest`` (our group with the
        lowest mean test error), ``lowest_paper`` (the paper's at that epoch, or None) and
        ``drops`` (our average loss across each drop, :math:`\ell(e)/\ell(e-1)`, once every run
        is past the last one; else None).
    """
    panels_out = []
    for dataset, figure in panels.items():
        mine = frame[frame.dataset == dataset] if len(frame) else frame
        if mine.empty:
            continue
        error = group_summary(mine, metric="test_error", paper_curves=published, figure=figure)
        loss = group_summary(mine, metric="train_loss", paper_curves=published, figure=figure)
        epoch = int(error.epoch.iloc[0])
        table = pd.DataFrame({
            "group": error.name, "seeds": error.n_seeds, "test error, mean (%)": error["mean"],
            "min": error["min"], "max": error["max"], "paper's (%)": error.paper,
            "loss, mean": loss["mean"].to_numpy(), "paper's loss": loss["paper"].to_numpy()})
        drops = None
        if drop_epochs and epoch >= max(drop_epochs):
            ratios = mine.pivot_table(index="epoch", columns="group", values="train_loss")
            drops = {e: (ratios.loc[e] / ratios.loc[e - 1]).round(3).to_dict() for e in drop_epochs}
        panels_out.append({
            "dataset": dataset, "figure": figure, "epoch": epoch, "table": table,
            "lowest": error.loc[error["mean"].idxmin(), "name"],
            "lowest_paper": error.loc[error.paper.idxmin(), "name"] if error.paper.notna().any() else None,
            "drops": drops})
    return panels_out


def _group_sentences(panel: Mapping[str, Any]) -> list[str]:
    line = f"lowest mean test error in our runs: {panel['lowest']}"
    if panel["lowest_paper"] is not None:
        line += f"; in the paper at epoch {panel['epoch']}: {panel['lowest_paper']}"
    lines = [line]
    if panel["drops"] is not None:
        lines.append(f"our average loss across the drops, after / before: {panel['drops']}")
    return lines


_NO_RUNS = "No runs yet: the figures show only the paper's curves. Train them with the commands above."


def show_groups(
    frame: pd.DataFrame,
    published: pd.DataFrame,
    panels: Mapping[str, str],
    *,
    epochs_planned: int,
    drop_epochs: Sequence[int] = paper.STEP_DROP_EPOCHS,
    show: bool = True,
) -> list[dict[str, Any]]:
    """:func:`group_tables`, displayed: one table per panel with runs, then its sentences (Markdown)."""
    panels_out = group_tables(frame, published, panels, drop_epochs=drop_epochs)
    if show:
        if not panels_out:
            show_markdown(_NO_RUNS)
        for panel in panels_out:
            style.show_table(panel["table"], digits=4, caption=f"{DATASET_NAMES[panel['dataset']]} at epoch "
                                                               f"{panel['epoch']} (of {epochs_planned} planned)")
            show_markdown("\n".join(f"- {line}" for line in _group_sentences(panel)))
    return panels_out


@dataclass
class Table1Report:
    """Table 1 of our runs next to the paper's, and where it was stored.

    Attributes:
        rows: :func:`~lcamlab.reports.tables.table1_rows` (our side: mean, std, best, win rate).
        finals: :func:`~lcamlab.reports.tables.final_values` (each run's value used).
        comparison: :func:`~lcamlab.reports.tables.table1_comparison` (the paper's rows, then ours).
        saved: :func:`~lcamlab.reports.tables.save_table1`'s result, or None without runs.
        figure: ``(fig, axes)`` of :func:`~lcamlab.reports.plots.plot_table1`.
        display: :func:`~lcamlab.reports.tables.table1_display` (the table as shown).
        text: the markdown table and where it was stored.
    """

    rows: pd.DataFrame
    finals: pd.DataFrame
    comparison: pd.DataFrame
    saved: dict[str, Any] | None
    figure: tuple[Any, Any]
    text: str
    display: pd.DataFrame | None = None


def table1_report(
    frame: pd.DataFrame,
    paper_table1: pd.DataFrame,
    published: pd.DataFrame,
    datasets: Sequence[str],
    *,
    epoch: int,
    data_dir: str | os.PathLike,
    provenance: Mapping[str, Any],
    baseline: str = "0.9-0.9",
    figure: str = "fig5",
    show: bool = True,
    log: Callable[[str], None] | None = print,
) -> Table1Report:
    """Our Table 1 at ``epoch`` next to the paper's: computed, stored (cached by content), shown, drawn.

    The table is stored by :func:`~lcamlab.reports.tables.save_table1` under
    ``<data_dir>/paper_reproduction/`` with ``{"table_epoch", "baseline", **provenance}``
    as its configuration: the same runs and settings are a cache hit. The figure
    (:func:`~lcamlab.reports.plots.plot_table1`, the groups of ``figure`` per dataset)
    is returned in :attr:`Table1Report.figure` (the notebooks save it as ``table1``).

    Args:
        frame: our runs (:func:`lcamlab.train.runs.runs_frame`).
        paper_table1: the paper's Table 1 (:func:`lcamlab.paper.load_table1`).
        published: the paper's curves (for the groups of ``figure``).
        datasets: the columns of the table and the panels of the figure.
        epoch: the epoch compared (the paper: LCAM at 120).
        data_dir: the results folder (the stored paths are absolute).
        provenance: what produced the runs (:attr:`lcamlab.reports.plan.PanelRuns.provenance`).
        baseline: the group the win rate is counted against (fixed 0.9).
        figure: the paper figure whose groups are drawn.
        show: display the table (:func:`lcamlab.style.show_table`); False: display nothing.
        log: where the line saying where the table was stored goes (``None``: silent); without
            ``show``, the markdown table goes there too. Both are :attr:`Table1Report.text`.
    """
    rows = table1_rows(frame, epoch=epoch, baseline=baseline)
    finals = final_values(frame, epoch=epoch)
    comparison = table1_comparison(paper_table1, rows)
    shown = table1_display(comparison, datasets=datasets)
    markdown = table1_markdown(comparison, datasets=datasets)
    stored = None
    saved = None
    if len(rows):
        saved = save_table1(comparison, Path(data_dir).resolve(), finals=finals,
                            config={"table_epoch": epoch, "baseline": baseline, **provenance})
        stored = f"Table 1 {saved['status']}: {saved['csv']} (+ .json, .md)"
    text = "\n".join([markdown] + ([stored] if stored else []))
    if show:
        style.show_table(shown, caption="Table 1: the paper's rows, then ours (test error %, mean ± std over "
                                        "seeds; win: seeds beating fixed 0.9)")
        if stored and log is not None:
            log(stored)
    elif log is not None:
        log(text)
    fig, axes = plot_table1(finals, paper_table1,
                            groups={d: paper.paper_groups(published, figure, d) for d in datasets},
                            title="Table 1: test error per seed (dots), mean ± std (squares), "
                                  "the paper's rows (lines)")
    return Table1Report(rows=rows, finals=finals, comparison=comparison, saved=saved, figure=(fig, axes), text=text,
                        display=shown)


def describe_table1(rows: pd.DataFrame, paper_table1: pd.DataFrame, *, show: bool = False) -> str:
    """Our Table 1 rows in words, against the paper's win rates (its section 6) and its LCAM row.

    Per row: mean, seeds, std and best; for LCAM the seeds won against fixed 0.9 next
    to :data:`PAPER_WIN_RATES`. Then our LCAM mean minus the paper's LCAM entry per dataset.
    With ``show``, the lines are also displayed as a Markdown list (in a notebook).
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
            lines.append(f"{DATASET_NAMES[row.dataset]}: our LCAM mean minus the paper's LCAM row "
                         f"({row.test_error:.2f} %): {gap:+.2f} points at epoch {int(ours.epoch.iloc[0])}")
    if show:
        show_markdown("\n".join(f"- {line}" for line in lines))
    return "\n".join(lines)
