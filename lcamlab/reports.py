"""Our WRN/CIFAR runs next to the paper's: seed aggregation, Table 1 and the paired panels.

A training run (:mod:`lcamlab.train`) is a folder holding ``config.json`` (the
configuration, with provenance), ``metrics.jsonl`` (one JSON object per finished
epoch: ``epoch`` (1-based), ``train_loss``, ``test_error`` (%), ``lr``, ...) and,
once all epochs are done, ``finished.json``. This module reads those folders
through :mod:`lcamlab.train.runs` (:func:`~lcamlab.train.runs.read_run`,
:func:`~lcamlab.train.runs.load_runs`), which needs no data set and trains
nothing, and turns them into:

* a tidy frame, one row per (run, epoch) (:func:`runs_frame`);
* the mean over seeds with its min-max band per epoch (:func:`aggregate_seeds`);
* Table 1 rows at a fixed epoch: mean, standard deviation (``ddof=1``, the
  sample standard deviation over seeds), best seed and the win rate against
  fixed momentum 0.9, paired by seed (:func:`table1_rows`), next to 000 Table 1
  (:func:`table1_comparison`);
* the figures of notebooks 03/04: our runs (solid, min-max band) over the
  paper's published curves (dashed) in the paper's group colours
  (:func:`plot_groups`, :func:`plot_table1`).

Runs that are missing, partial (still training, interrupted, or without a
finished epoch yet), finished or diverged (:func:`lcamlab.train.runs.run_state`)
are all handled: a partial run contributes the epochs it has, and every plot and
table states how many seeds stand behind each number.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcamlab import paper, provenance, style
from lcamlab.train.runs import Run, read_run

__all__ = [
    "DATASET_NAMES",
    "runs_frame",
    "run_inventory",
    "aggregate_seeds",
    "final_values",
    "win_rate",
    "table1_rows",
    "table1_comparison",
    "table1_markdown",
    "save_table1",
    "group_summary",
    "synthetic_cifar",
    "GridPlan",
    "plan_grid",
    "complete_grid",
    "describe_plan",
    "plot_groups",
    "plot_table1",
]

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
METRIC_COLUMNS = ("train_loss", "train_accuracy", "test_error", "test_loss", "lr",
                  "phase_below", "phase_above", "epoch_seconds", "images_per_second")


# ----------------------------------------------------------------------------- reading runs


def _as_runs(runs: Iterable[Any]) -> list[Run]:
    """Normalise ``runs``: :class:`~lcamlab.train.runs.Run` objects pass through, paths are read
    with :func:`~lcamlab.train.runs.read_run` (a path without ``config.json``, e.g. a run not
    started yet, is skipped)."""
    loaded = []
    for item in runs:
        if isinstance(item, Run):
            loaded.append(item)
        elif isinstance(item, (str, os.PathLike)):
            if (Path(item) / "config.json").is_file():
                loaded.append(read_run(item))
        else:
            raise ValueError(f"Cannot read a run from {item!r} (expected a run folder path or a "
                             f"lcamlab.train.runs.Run)")
    return loaded


_FRAME_KEYS = ["run_id", "dataset", "schedule", "group", "momentum_below", "momentum_above", "seed", "state", "epoch"]


def runs_frame(runs: Iterable[Any]) -> pd.DataFrame:
    """One row per (run, epoch): run_id, dataset, schedule, group, momentum_below,
    momentum_above, seed, state (finished / partial / diverged), epoch, then the logged metrics.

    ``runs``: :class:`~lcamlab.train.runs.Run` objects (e.g. ``load_runs(runs_dir)``) or run
    folder paths (those without ``config.json`` are skipped); runs without a finished epoch add no rows."""
    frames = []
    for run in _as_runs(runs):
        if run.metrics.empty:
            continue
        frame = run.metrics.copy()
        below, above = run.momentum
        identity = {
            "run_id": run.run_id, "dataset": run.dataset, "schedule": run.config.get("schedule"),
            "group": run.group, "momentum_below": below, "momentum_above": above,
            "seed": run.seed, "state": run.state,
        }
        for key, value in identity.items():
            frame[key] = value
        frames.append(frame)
    if not frames:
        return pd.DataFrame({key: pd.Series(dtype=object) for key in _FRAME_KEYS + ["train_loss", "test_error"]})
    frame = pd.concat(frames, ignore_index=True)
    for column in ("train_loss", "test_error"):
        if column not in frame:
            frame[column] = np.nan
    ordered = _FRAME_KEYS + [c for c in frame.columns if c not in _FRAME_KEYS]
    return frame[ordered].sort_values(["dataset", "group", "seed", "epoch"]).reset_index(drop=True)


def run_inventory(runs: Iterable[Any]) -> pd.DataFrame:
    """One row per run: run_id, dataset, group, seed, epochs_done, epochs_planned, state
    (:func:`lcamlab.train.runs.run_state`'s vocabulary); ``runs`` as for :func:`runs_frame`."""
    rows = []
    for run in _as_runs(runs):
        rows.append({"run_id": run.run_id, "dataset": run.dataset, "group": run.group, "seed": run.seed,
                     "epochs_done": run.epochs_done, "epochs_planned": run.epochs_planned, "state": run.state})
    return pd.DataFrame(rows, columns=["run_id", "dataset", "group", "seed", "epochs_done", "epochs_planned", "state"])


# ----------------------------------------------------------------------------- aggregation


def aggregate_seeds(frame: pd.DataFrame, metric: str, by: Sequence[str] = ("dataset", "group")) -> pd.DataFrame:
    r"""Mean over seeds with the min-max band, per epoch.

    .. math:: \bar y(e) = \frac{1}{n_e} \sum_{s:\,e \le E_s} y_s(e), \qquad
              [\min_s y_s(e),\ \max_s y_s(e)]

    where :math:`E_s` is the last epoch seed :math:`s` has logged: a partial run
    contributes the epochs it has, and ``n`` says how many seeds each point averages.

    Args:
        frame: :func:`runs_frame` output.
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

    Runs are paired by seed (same initialisation and data order, 000 section 6's
    "probability of improvement"); a tie is not a win.

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

    with the win rate against ``baseline`` from :func:`win_rate` (000 section 6:
    LCAM beats fixed 0.9 in about 80% of CIFAR-10 and 50% of CIFAR-100 runs).

    Args:
        frame: :func:`runs_frame` output.
        epoch: the epoch compared (000 Table 1: 120 for LCAM).
        baseline: the reference group (fixed momentum 0.9).
        metric: the column compared (test error %).
        ddof: delta degrees of freedom of the standard deviation (1: sample std;
            NaN for a single seed).
    Returns:
        Columns dataset, group, name (000 Figure 5's: "Fixed 0.9", "LCAM 0.9-0.95"), epoch,
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
            "dataset": dataset, "group": group, "name": paper.group_name(group, "fig5"), "epoch": int(part.epoch.iloc[0]),
            "n_seeds": n, "mean": float(values.mean()), "std": std, "best": float(values.min()),
            "worst": float(values.max()), "wins": wins, "pairs": pairs, "win_rate": rate,
        })
    return pd.DataFrame(rows, columns=columns)


def table1_comparison(paper_table1: pd.DataFrame, ours: pd.DataFrame, *, label: str = "ours") -> pd.DataFrame:
    """000 Table 1 and our rows in one tidy table.

    Returns:
        Columns source, method, epochs, dataset, test_error, std, best, n_seeds, win_rate, note:
        the paper's rows (``source="000 Table 1"``, one published number each) then ours
        (``test_error`` = mean over seeds at the epoch stated in ``epochs``).
    """
    rows = []
    for row in paper_table1.itertuples(index=False):
        rows.append({"source": "000 Table 1", "method": row.method, "epochs": int(row.epochs), "dataset": row.dataset,
                     "test_error": float(row.test_error), "std": np.nan, "best": np.nan, "n_seeds": np.nan,
                     "win_rate": np.nan, "note": row.note if isinstance(row.note, str) else ""})
    for row in ours.itertuples(index=False):
        rows.append({"source": label, "method": row.name, "epochs": int(row.epoch),
                     "dataset": row.dataset, "test_error": row.mean, "std": row.std, "best": row.best,
                     "n_seeds": row.n_seeds, "win_rate": row.win_rate,
                     "note": "" if math.isnan(row.win_rate) else f"wins {row.wins}/{row.pairs} vs Fixed 0.9"})
    return pd.DataFrame(rows, columns=["source", "method", "epochs", "dataset", "test_error", "std", "best",
                                       "n_seeds", "win_rate", "note"])


def table1_markdown(comparison: pd.DataFrame, datasets: Sequence[str] = ("cifar10", "cifar100")) -> str:
    """Table 1 as a markdown table: one row per (source, method, epochs), one column per dataset.

    Our cells read ``mean ± std (best b; n seeds; win w%)``; std uses ddof=1.
    """
    def cell(row: pd.Series) -> str:
        if row.source == "000 Table 1":
            note = f" ({row.note})" if row.note else ""
            return f"{row.test_error:.2f}{note}"
        parts = [f"best {row.best:.2f}", f"n={int(row.n_seeds)}"]
        if not math.isnan(row.win_rate):
            parts.append(f"win {100 * row.win_rate:.0f}%")
        std = "" if math.isnan(row["std"]) else f" ± {row['std']:.2f}"
        return f"{row.test_error:.2f}{std} ({'; '.join(parts)})"

    header = "| source | method | epochs | " + " | ".join(DATASET_NAMES.get(d, d) for d in datasets) + " |"
    lines = [header, "|" + " --- |" * (3 + len(datasets))]
    keys = comparison[["source", "method", "epochs"]].drop_duplicates()
    for key in keys.itertuples(index=False):
        part = comparison[(comparison.source == key.source) & (comparison.method == key.method)
                          & (comparison.epochs == key.epochs)]
        cells = []
        for dataset in datasets:
            match = part[part.dataset == dataset]
            cells.append(cell(match.iloc[0]) if len(match) else "-")
        lines.append(f"| {key.source} | {key.method} | {key.epochs} | " + " | ".join(cells) + " |")
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
        dict(config), description="000 Table 1 with our runs (std over seeds with ddof=1; win rate paired by seed)",
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
        frame: :func:`runs_frame` output.
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
        rows.append({"dataset": dataset, "group": group, "name": paper.group_name(group, figure), "epoch": used,
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


# ----------------------------------------------------------------------------- run grids


def synthetic_cifar(
    data_dir: str | os.PathLike,
    datasets: Sequence[str],
    *,
    n_train: int = 512,
    n_test: int = 256,
    seed: int = 0,
) -> tuple[Path, dict[str, str]]:
    """CIFAR-format archives of synthetic images for tiny end-to-end runs (quick mode, CI).

    Written once by :func:`lcamlab.data.write_synthetic_cifar` into
    ``<data_dir>/cifar-synthetic-n<n_train>-t<n_test>-s<seed>/`` and reused afterwards: the
    archives are byte-reproducible, so their MD5 (which the trainer verifies through
    ``data_md5``) stays the same between sessions.

    Returns:
        ``(folder, {dataset: archive MD5})``.
    """
    from lcamlab.data import file_md5, write_synthetic_cifar

    folder = Path(data_dir) / f"cifar-synthetic-n{n_train}-t{n_test}-s{seed}"
    archives = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
    md5 = {}
    for dataset in datasets:
        if dataset not in archives:
            raise ValueError(f"Invalid dataset: {dataset!r} (choose one of {sorted(archives)})")
        archive = folder / archives[dataset]
        if not archive.is_file():
            archive = write_synthetic_cifar(folder, dataset, n_train=n_train, n_test=n_test, seed=seed)
        md5[dataset] = file_md5(archive)
    return folder, md5


@dataclass
class GridPlan:
    """The runs one panel of a paper figure needs, and where each stands.

    Attributes:
        figure, dataset: the panel (``fig3``/``fig4``/``fig5``; ``cifar10``/``cifar100``).
        configs: the training configurations (:func:`lcamlab.train.grid.figure_configs`).
        status: :func:`lcamlab.train.grid.grid_status` (run_id, state, epochs_done, run_dir, ...).
        command: the exact ``lcamlab grid`` command that trains the missing runs
            (run from the repository root).
        runs_dir: the runs folder.
    """

    figure: str
    dataset: str
    configs: list[Any]
    status: pd.DataFrame
    command: str
    runs_dir: Path

    @property
    def run_dirs(self) -> list[Path]:
        """Folders holding this grid's runs with at least one logged epoch (conflicts excluded)."""
        usable = self.status[self.status.state.isin(["partial", "finished", "diverged"])]
        return [Path(p) for p in usable.run_dir]

    @property
    def incomplete(self) -> pd.DataFrame:
        """Rows of runs still to train: missing or partial."""
        return self.status[self.status.state.isin(["missing", "partial"])]


def _display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the repository root when inside it (commands run from there)."""
    resolved = Path(path).expanduser().resolve()
    root = Path(__file__).resolve().parent.parent
    try:
        return str(resolved.relative_to(root))
    except ValueError:
        return str(resolved)


def plan_grid(
    figure: str,
    *,
    dataset: str,
    seeds: int | Sequence[int],
    runs_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> GridPlan:
    """Build a figure panel's run set and look at what exists (nothing is trained).

    Overrides equal to the paper's defaults (:class:`lcamlab.train.config.TrainConfig`)
    are dropped, so the printed command only names what differs from 000's protocol.

    Args:
        figure: ``fig3``, ``fig4`` or ``fig5``.
        dataset: the panel's dataset.
        seeds: number of seeds (0..N-1) or a list.
        runs_dir: the runs folder.
        data_dir: the CIFAR folder (None: the trainer's default).
        **overrides: other training fields (``epochs``, ``depth``, ``widen``, ...).
    Returns:
        A :class:`GridPlan`.
    """
    from lcamlab.train import grid
    from lcamlab.train.config import TrainConfig

    defaults = TrainConfig()
    changed = {key: value for key, value in overrides.items()
               if not (hasattr(defaults, key) and getattr(defaults, key) == value)}
    runs_path = Path(runs_dir).expanduser().resolve()
    data_path = None if data_dir is None else _display_path(data_dir)
    configs = grid.figure_configs(figure, dataset=dataset, seeds=seeds, runs_dir=str(runs_path),
                                  data_dir=None if data_dir is None else str(Path(data_dir).resolve()), **changed)
    status = grid.grid_status(configs, runs_path)
    command = grid.grid_command(figure, dataset=dataset, seeds=seeds, runs_dir=_display_path(runs_path),
                                data_dir=data_path, **changed)
    return GridPlan(figure=figure, dataset=dataset, configs=configs, status=status, command=command,
                    runs_dir=runs_path)


def complete_grid(plan: GridPlan, *, progress: str = "none") -> GridPlan:
    """Train what ``plan`` lacks through :func:`lcamlab.train.grid.run_grid` (finished runs are
    skipped, partial ones resumed), then return the refreshed plan."""
    from lcamlab.train import grid

    grid.run_grid(plan.configs, plan.runs_dir, progress=progress)
    status = grid.grid_status(plan.configs, plan.runs_dir)
    return GridPlan(plan.figure, plan.dataset, plan.configs, status, plan.command, plan.runs_dir)


_CIFAR_FILES = {"cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py"),
                "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python")}


def _missing_cifar(plan: GridPlan) -> str | None:
    """A hint when the dataset the runs need is not where the trainer will look."""
    from lcamlab.data import default_data_dir

    if not plan.configs or plan.configs[0].download:
        return None
    data_dir = plan.configs[0].data_dir
    folder = Path(data_dir) if data_dir else default_data_dir()
    if any((folder / name).exists() for name in _CIFAR_FILES.get(plan.dataset, ())):
        return None
    return (f"  ({DATASET_NAMES.get(plan.dataset, plan.dataset)} is not in {folder}: add --download to fetch the "
            f"official archive, or --data-dir DIR where it is)")


def describe_plan(plan: GridPlan) -> str:
    """A few lines for a notebook: how many runs exist, which are missing, and the command."""
    counts = plan.status.state.value_counts()
    summary = ", ".join(f"{counts[state]} {state}" for state in
                        ("finished", "partial", "missing", "diverged", "conflict") if state in counts)
    lines = [f"{plan.figure} {DATASET_NAMES.get(plan.dataset, plan.dataset)}: {len(plan.status)} runs "
             f"({summary}) in {plan.runs_dir}"]
    for row in plan.status.itertuples(index=False):
        if row.state == "partial":
            lines.append(f"  partial: {row.run_id} ({row.epochs_done}/{row.epochs} epochs)")
        elif row.state in ("missing", "conflict", "diverged"):
            why = f": {row.conflict}" if row.state == "conflict" else ""
            lines.append(f"  {row.state}: {row.run_id}{why}")
    if len(plan.incomplete):
        lines.append("Train the missing runs (from the repository root) with:")
        lines.append(f"  {plan.command}")
        hint = _missing_cifar(plan)
        if hint:
            lines.append(hint)
    else:
        lines.append("Every run of this panel is finished.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures


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

    Every group is drawn in the paper's colour (:func:`lcamlab.style.paper_group_color`);
    a group without runs shows only the paper's curve, and its legend entry says so.

    Args:
        ours: :func:`runs_frame` output (any datasets; filtered to ``dataset``), or None.
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
    labels = [g if isinstance(g, str) else paper.group_label(g) for g in groups]
    ours = ours if ours is not None else pd.DataFrame(columns=_FRAME_KEYS)
    ours = ours[ours.dataset == dataset] if len(ours) else ours
    fig, axes = style.new_figure(1, len(metrics), width="double", aspect=0.72, squeeze=False)
    axes = axes[0]
    seeds_per_group = {g: ours[ours.group == g].seed.nunique() if len(ours) else 0 for g in labels}
    last_epochs = [float(ours.epoch.max())] if len(ours) else []
    if paper_curves is not None and figure is not None:
        shown = paper_curves[(paper_curves.figure == figure) & (paper_curves.dataset == dataset)]
        last_epochs += [float(shown.epoch.max())] if len(shown) else []
    epochs_per_group = {g: int(ours[ours.group == g].epoch.max()) if seeds_per_group[g] else 0 for g in labels}
    for ax, metric in zip(axes, metrics):
        aggregated = aggregate_seeds(ours, metric) if len(ours) else aggregate_seeds(pd.DataFrame(), metric)
        has_paper = False
        for group in labels:
            color = style.paper_group_color(paper.parse_group(group))
            if paper_curves is not None and figure is not None:
                curve = paper.paper_curve(paper_curves, figure, dataset, metric, group)
                if len(curve):
                    has_paper = True
                    ax.plot(curve.epoch, curve.value, color=color, ls="--", lw=1.0, alpha=0.85, zorder=2)
            mine = aggregated[aggregated.group == group] if len(aggregated) else aggregated
            if len(mine):
                ax.fill_between(mine.epoch.astype(float), mine["min"].astype(float), mine["max"].astype(float),
                                color=color, alpha=0.2, lw=0, zorder=1)
                ax.plot(mine.epoch, mine["mean"], color=color, lw=1.6, zorder=3,
                        marker="o" if len(mine) <= 5 else None, ms=3)
        for epoch in drop_epochs:
            ax.axvline(epoch, color="0.55", lw=0.7, ls=":", zorder=0)
        if metric in log_metrics:
            ax.set_yscale("log")
        if last_epochs:  # the same epoch axis on every panel, also on one without data
            ax.set_xlim(0, max(last_epochs) + 2)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(paper.METRICS.get(metric, metric))
        ax.set_title(f"{DATASET_NAMES[dataset]}: {paper.METRICS.get(metric, metric).lower()}")
        if metric in log_metrics:
            low, high = ax.get_ylim()
            if high < 10 * low:  # less than a decade: label the minor ticks plainly
                from matplotlib.ticker import FuncFormatter

                ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
        if figure is not None and not has_paper:
            ax.text(0.98, 0.02, f"000 publishes no {metric.replace('_', ' ')} curve here", transform=ax.transAxes,
                    fontsize=7, color="0.4", va="bottom", ha="right")
        if ours.empty and not has_paper:
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="0.4")
    group_handles = []
    for group in labels:
        n = seeds_per_group[group]
        runs = f"{n} seed{'s' if n != 1 else ''}, {epochs_per_group[group]} ep" if n else "no runs"
        group_handles.append(Line2D([], [], color=style.paper_group_color(paper.parse_group(group)), lw=2,
                                    label=f"{paper.group_name(group, figure)} ({runs})"))
    key_handles = [Line2D([], [], color="0.2", lw=1.6, label="ours: mean over seeds, band min-max")]
    if figure is not None:
        key_handles.append(Line2D([], [], color="0.2", lw=1.0, ls="--", label=f"paper (000 Figure {figure[3:]})"))
    if drop_epochs:
        key_handles.append(Line2D([], [], color="0.55", lw=0.7, ls=":", label="learning-rate drops"))
    fig.legend(handles=_rows_legend([group_handles, key_handles]), loc="outside lower center",
               ncol=max(len(group_handles), len(key_handles)))
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
    (bar), and 000 Table 1's rows as dashed reference lines.

    Args:
        finals: :func:`final_values` output.
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
                       label=f"000: {row.method}, {row.epochs} ep ({row.test_error:.2f})")
        epochs_used = set()
        for position, group in enumerate(groups[dataset]):
            color = style.paper_group_color(paper.parse_group(group))
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
        ax.set_xticklabels([paper.group_name(g, "fig5") for g in groups[dataset]])
        ax.set_xlim(-0.6, len(groups[dataset]) - 0.4)
        name = DATASET_NAMES.get(dataset, dataset)
        if epochs_used:
            ax.set_title(f"{name}: test error at epoch {', '.join(str(e) for e in sorted(epochs_used))}")
        else:
            ax.set_title(f"{name}: 000 Table 1 (no runs yet)")
        ax.set_ylabel("Test error (%)")
        ax.legend(loc="best", fontsize=6)
    if title:
        fig.suptitle(title)
    return fig, axes
