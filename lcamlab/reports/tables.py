r"""Our WRN/CIFAR runs as numbers: seed aggregation, final values, win rates and Table 1.

A training run (:mod:`lcamlab.train`) is a folder holding ``config.json`` (the
configuration, with provenance), ``metrics.jsonl`` (one JSON object per finished
epoch: ``epoch`` (1-based), ``train_loss``, ``test_error`` (%), ``lr``, ...) and,
once all epochs are done, ``finished.json``. :func:`lcamlab.train.runs.runs_frame`
reads runs into a tidy frame, one row per (run, epoch), which needs no data set
and trains nothing; this module turns that frame into:

* the mean over seeds with its min-max band per epoch (:func:`aggregate_seeds`);
* each run's value at one epoch (:func:`final_values`) and per-group summaries
  next to the paper's value at the same epoch (:func:`group_summary`);
* Table 1 rows at a fixed epoch: mean, standard deviation (``ddof=1``, the
  sample standard deviation over seeds), best seed and the win rate against
  fixed momentum 0.9, paired by seed (:func:`table1_rows`, :func:`win_rate`),
  next to the LCAM paper's Table 1 (:func:`table1_comparison`, :func:`table1_display`,
  :func:`table1_markdown`, :func:`save_table1`).

Runs that are missing, partial (still training, interrupted, or without a
finished epoch yet), finished or diverged (:func:`lcamlab.train.runs.run_state`)
are all handled: a partial run contributes the epochs it has, and every table
states how many seeds stand behind each number.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcamlab import paper, provenance
from lcamlab.data.cifar import DATASET_TITLES
from lcamlab.train.groups import group_name

__all__ = [
    "DATASET_NAMES",
    "PAPER_SOURCE",
    "aggregate_seeds",
    "final_values",
    "win_rate",
    "table1_rows",
    "table1_comparison",
    "table1_display",
    "table1_markdown",
    "save_table1",
    "group_summary",
]

#: Display names of the datasets (``"cifar10" -> "CIFAR-10"``), as :data:`lcamlab.data.DATASET_TITLES`.
DATASET_NAMES = DATASET_TITLES

#: The ``source`` of the published rows of Table 1 (Zhang et al., 2023, "Asymmetric Momentum:
#: A Rethinking of Gradient Descent", Table 1).
PAPER_SOURCE = "LCAM paper"


# ----------------------------------------------------------------------------- aggregation


def aggregate_seeds(frame: pd.DataFrame, metric: str, by: Sequence[str] = ("dataset", "group")) -> pd.DataFrame:
    r"""Mean over seeds with the min-max band, per epoch.

    .. math:: \bar y(e) = \frac{1}{n_e} \sum_{s:\,e \le E_s} y_s(e), \qquad
              [\min_s y_s(e),\ \max_s y_s(e)]

    where :math:`E_s` is the last epoch seed :math:`s` has logged: a partial run
    contributes the epochs it has, and ``n`` says how many seeds each point averages.

    Args:
        frame: :func:`lcamlab.train.runs.runs_frame` output.
        metric: a logged column, e.g. ``"test_error"`` or ``"train_loss"``.
        by: grouping columns besides ``epoch``.
    Returns:
        Columns ``*by, epoch, mean, min, max, n``.
    """
    columns = [*by, "epoch", "mean", "min", "max", "n"]
    if frame.empty or metric not in frame:
        return pd.DataFrame(columns=columns)
    rows = frame.dropna(subset=[metric])
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby([*by, "epoch"], sort=True)[metric]
    result = grouped.agg(["mean", "min", "max", "count"]).rename(columns={"count": "n"}).reset_index()
    return result[columns]


def _epoch_used(last_epochs: pd.Series, epoch: int) -> int:
    return int(epoch) if (last_epochs >= epoch).all() else int(last_epochs.min())


def final_values(
    frame: pd.DataFrame,
    *,
    epoch: int = 120,
    metric: str = "test_error",
) -> pd.DataFrame:
    """Each run's value at ``epoch``, or, per dataset, at the last epoch every run has reached.

    Comparing runs at one epoch per dataset keeps the table fair when some runs
    are still training: if any run of a dataset has not reached ``epoch``, the
    dataset's epoch becomes the latest epoch all its runs have. Diverged runs
    (stopped on a non-finite loss) have no final value and are left out.

    Returns:
        Columns dataset, group, seed, run_id, epoch, value (one row per run).
    """
    if epoch < 1:
        raise ValueError(f"Invalid epoch: {epoch} (must be >= 1)")
    columns = ["dataset", "group", "seed", "run_id", "epoch", "value"]
    if frame.empty or metric not in frame:
        return pd.DataFrame(columns=columns)
    rows = frame.dropna(subset=[metric])
    if "state" in rows:
        rows = rows[rows.state != "diverged"]
    out = []
    for dataset, part in rows.groupby("dataset", sort=True):
        last = part.groupby("run_id")["epoch"].max()
        used = _epoch_used(last, epoch)
        at = part[part.epoch == used]
        out.append(pd.DataFrame({"dataset": dataset, "group": at.group, "seed": at.seed, "run_id": at.run_id,
                                 "epoch": used, "value": at[metric]}))
    if not out:
        return pd.DataFrame(columns=columns)
    return pd.concat(out, ignore_index=True)[columns].sort_values(["dataset", "group", "seed"]).reset_index(drop=True)


def win_rate(candidate: pd.Series | Mapping[int, float], baseline: pd.Series | Mapping[int, float]) -> tuple[int, int, float]:
    r"""Fraction of seeds on which the candidate beats the baseline (lower is better).

    .. math:: w = \frac{1}{|S|} \sum_{s \in S} \mathbf 1[y^{cand}_s < y^{base}_s],
              \qquad S = \text{seeds present in both}

    Runs are paired by seed (same initialisation and data order; the LCAM paper's
    section 6 speaks of a "probability of improvement"); a tie is not a win.

    Args:
        candidate, baseline: value per seed (index = seed).
    Returns:
        ``(wins, pairs, rate)``; ``rate`` is NaN without a common seed.
    """
    cand = pd.Series(candidate, dtype=float)
    base = pd.Series(baseline, dtype=float)
    seeds = cand.index.intersection(base.index)
    pairs = int(len(seeds))
    if pairs == 0:
        return 0, 0, float("nan")
    wins = int((cand.loc[seeds].to_numpy() < base.loc[seeds].to_numpy()).sum())
    return wins, pairs, wins / pairs


def table1_rows(
    frame: pd.DataFrame,
    *,
    epoch: int = 120,
    baseline: str = "0.9-0.9",
    metric: str = "test_error",
    ddof: int = 1,
) -> pd.DataFrame:
    r"""Our side of Table 1: per dataset and group, at ``epoch`` (see :func:`final_values`).

    .. math:: \bar y = \frac1n\sum_s y_s,\quad
              \sigma = \sqrt{\frac{1}{n-\mathrm{ddof}}\sum_s (y_s-\bar y)^2},\quad
              \text{best} = \min_s y_s

    with the win rate against ``baseline`` from :func:`win_rate` (the LCAM paper, section 6:
    LCAM beats fixed 0.9 in about 80% of CIFAR-10 and 50% of CIFAR-100 runs).

    Args:
        frame: :func:`lcamlab.train.runs.runs_frame` output.
        epoch: the epoch compared (the paper's Table 1: 120 for LCAM).
        baseline: the reference group (fixed momentum 0.9).
        metric: the column compared (test error %).
        ddof: delta degrees of freedom of the standard deviation (1: sample std;
            NaN for a single seed).
    Returns:
        Columns dataset, group, name (the paper's Figure 5: "Fixed 0.9", "LCAM 0.9-0.95"), epoch,
        n_seeds, mean, std, best, worst, wins, pairs, win_rate.
    """
    if ddof < 0:
        raise ValueError(f"Invalid ddof: {ddof} (must be >= 0)")
    columns = ["dataset", "group", "name", "epoch", "n_seeds", "mean", "std", "best", "worst", "wins", "pairs", "win_rate"]
    finals = final_values(frame, epoch=epoch, metric=metric)
    rows = []
    for (dataset, group), part in finals.groupby(["dataset", "group"], sort=True):
        values = part.value.to_numpy(float)
        n = len(values)
        std = float(np.std(values, ddof=ddof)) if n > ddof else float("nan")
        base = finals[(finals.dataset == dataset) & (finals.group == baseline)]
        if group == baseline:
            wins, pairs, rate = 0, 0, float("nan")
        else:
            wins, pairs, rate = win_rate(part.set_index("seed").value, base.set_index("seed").value)
        rows.append({
            "dataset": dataset, "group": group, "name": group_name(group, "fig5"), "epoch": int(part.epoch.iloc[0]),
            "n_seeds": n, "mean": float(values.mean()), "std": std, "best": float(values.min()),
            "worst": float(values.max()), "wins": wins, "pairs": pairs, "win_rate": rate,
        })
    return pd.DataFrame(rows, columns=columns)


def table1_comparison(paper_table1: pd.DataFrame, ours: pd.DataFrame, *, label: str = "ours") -> pd.DataFrame:
    """The LCAM paper's Table 1 and our rows in one tidy table.

    Returns:
        Columns source, method, epochs, dataset, test_error, std, best, n_seeds, win_rate, note:
        the paper's rows (``source=PAPER_SOURCE``, one published number each) then ours
        (``test_error`` = mean over seeds at the epoch stated in ``epochs``).
    """
    rows = []
    for row in paper_table1.itertuples(index=False):
        rows.append({"source": PAPER_SOURCE, "method": row.method, "epochs": int(row.epochs), "dataset": row.dataset,
                     "test_error": float(row.test_error), "std": np.nan, "best": np.nan, "n_seeds": np.nan,
                     "win_rate": np.nan, "note": row.note if isinstance(row.note, str) else ""})
    for row in ours.itertuples(index=False):
        rows.append({"source": label, "method": row.name, "epochs": int(row.epoch),
                     "dataset": row.dataset, "test_error": row.mean, "std": row.std, "best": row.best,
                     "n_seeds": row.n_seeds, "win_rate": row.win_rate,
                     "note": "" if math.isnan(row.win_rate) else f"wins {row.wins}/{row.pairs} vs Fixed 0.9"})
    return pd.DataFrame(rows, columns=["source", "method", "epochs", "dataset", "test_error", "std", "best",
                                       "n_seeds", "win_rate", "note"])


def table1_display(comparison: pd.DataFrame, datasets: Sequence[str] = ("cifar10", "cifar100")) -> pd.DataFrame:
    """Table 1 for reading: one row per (source, method, epochs), one text column per dataset.

    The paper's cells hold its published number (and its note); ours read
    ``mean ± std (best b; n seeds; win w%)``, std with ddof=1. Render it with
    :func:`lcamlab.style.show_table` or :func:`table1_markdown`.
    """
    def cell(row: pd.Series) -> str:
        if row.source == PAPER_SOURCE:
            note = f" ({row.note})" if row.note else ""
            return f"{row.test_error:.2f}{note}"
        parts = [f"best {row.best:.2f}", f"n={int(row.n_seeds)}"]
        if not math.isnan(row.win_rate):
            parts.append(f"win {100 * row.win_rate:.0f}%")
        std = "" if math.isnan(row["std"]) else f" ± {row['std']:.2f}"
        return f"{row.test_error:.2f}{std} ({'; '.join(parts)})"

    names = [DATASET_NAMES.get(d, d) for d in datasets]
    rows = []
    keys = comparison[["source", "method", "epochs"]].drop_duplicates()
    for key in keys.itertuples(index=False):
        part = comparison[(comparison.source == key.source) & (comparison.method == key.method)
                          & (comparison.epochs == key.epochs)]
        record = {"source": key.source, "method": key.method, "epochs": str(int(key.epochs))}
        for dataset, name in zip(datasets, names):
            match = part[part.dataset == dataset]
            record[name] = cell(match.iloc[0]) if len(match) else "-"
        rows.append(record)
    return pd.DataFrame(rows, columns=["source", "method", "epochs", *names])


def table1_markdown(comparison: pd.DataFrame, datasets: Sequence[str] = ("cifar10", "cifar100")) -> str:
    """Table 1 as a markdown table (:func:`table1_display`'s rows), for the stored ``.md`` file."""
    shown = table1_display(comparison, datasets)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + " --- |" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in record) + " |" for record in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table1(
    comparison: pd.DataFrame,
    data_dir: str | os.PathLike,
    *,
    finals: pd.DataFrame,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """Write Table 1 under ``<data_dir>/paper_reproduction/`` as CSV + JSON sidecar + markdown.

    The file name carries a hash of everything the table is computed from (the
    config and every run's value used), so a different set of runs never
    overwrites another's table, and the same inputs are a cache hit (nothing is
    rewritten).

    Args:
        comparison: :func:`table1_comparison` output.
        data_dir: the results folder.
        finals: :func:`final_values` output (the per-run inputs; stored in the sidecar).
        config: what produced the table (epoch, baseline, runs folder, ...).
    Returns:
        ``{"csv": path, "markdown": path, "status": "written" | "cached"}``.
    """
    inputs = {"config": provenance.to_jsonable(dict(config)),
              "runs": provenance.to_jsonable(finals.to_dict(orient="records"))}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:12]
    folder = Path(data_dir) / "paper_reproduction"
    csv_path = folder / f"table1-{key}.csv"
    md_path = csv_path.with_suffix(".md")
    if csv_path.exists():
        return {"csv": csv_path, "markdown": md_path, "status": "cached"}
    metadata = provenance.run_metadata(
        dict(config), description="The LCAM paper's Table 1 with our runs (std over seeds with ddof=1; win rate "
                                  "paired by seed)",
        runs=inputs["runs"], cache_key=key,
    )
    provenance.save_table(csv_path, comparison, metadata)
    provenance.atomic_write_text(md_path, table1_markdown(comparison))
    return {"csv": csv_path, "markdown": md_path, "status": "written"}


def group_summary(
    frame: pd.DataFrame,
    *,
    metric: str = "test_error",
    epoch: int | None = None,
    paper_curves: pd.DataFrame | None = None,
    figure: str | None = None,
    groups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per dataset and group at one epoch: seeds, mean, min, max, and the paper's value there.

    Args:
        frame: :func:`lcamlab.train.runs.runs_frame` output.
        metric: the column summarised.
        epoch: the epoch (default: the last epoch every run of the dataset has reached).
        paper_curves, figure: the published curves to read the same epoch from.
        groups: row order within a dataset (default: the paper's order when ``paper_curves``
            and ``figure`` are given, else sorted); groups not listed follow.
    Returns:
        Columns dataset, group, name, epoch, n_seeds, mean, min, max, paper.
    """
    columns = ["dataset", "group", "name", "epoch", "n_seeds", "mean", "min", "max", "paper"]
    finals = final_values(frame, epoch=epoch if epoch is not None else 10**9, metric=metric)
    rows = []
    for (dataset, group), part in finals.groupby(["dataset", "group"], sort=True):
        used = int(part.epoch.iloc[0])
        published = np.nan
        if paper_curves is not None and figure is not None:
            curve = paper.paper_curve(paper_curves, figure, dataset, metric, group)
            hit = curve.loc[curve.epoch == used, "value"]
            published = float(hit.iloc[0]) if len(hit) else np.nan
        rows.append({"dataset": dataset, "group": group, "name": group_name(group, figure), "epoch": used,
                     "n_seeds": len(part), "mean": part.value.mean(), "min": part.value.min(),
                     "max": part.value.max(), "paper": published})
    table = pd.DataFrame(rows, columns=columns)
    if groups is None and paper_curves is not None and figure is not None:
        groups = paper.paper_groups(paper_curves, figure)
    if groups and len(table):
        rank = {g: i for i, g in enumerate(groups)}
        table = table.assign(_rank=table.group.map(lambda g: rank.get(g, len(rank))))
        table = table.sort_values(["dataset", "_rank"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    return table
