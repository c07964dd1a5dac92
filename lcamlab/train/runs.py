"""Run folders: their file names, and reading finished and unfinished runs back (the one reader).

A run folder (written by :mod:`lcamlab.train.runner`) holds :data:`CONFIG_NAME`
and :data:`METRICS_NAME`, the checkpoint :data:`CHECKPOINT_NAME`, plus
:data:`FINISHED_NAME` once every epoch is done or :data:`DIVERGED_NAME` if
training stopped on a non-finite loss. :func:`read_run` turns it into a
:class:`Run` with the configuration as a dict and the per-epoch metrics as a
pandas DataFrame (one row per finished epoch, columns :data:`METRIC_KEYS`:
``epoch``, ``train_loss`` (000's "average loss"), ``train_accuracy``,
``test_error``, ``test_loss``, ``lr``, ``phase_below``, ``phase_above``,
``epoch_seconds``, ``images_per_second``). :func:`load_runs` reads every run
of a runs folder, optionally filtered by configuration, and
:func:`runs_frame` stacks runs into one tidy table; the training grid
(:mod:`lcamlab.train.grid`, :mod:`lcamlab.reports.plan`) and the reports
(:mod:`lcamlab.reports`) all read runs through this module.

Run states (one vocabulary everywhere, :func:`run_state`):

* ``"missing"``: no folder;
* ``"partial"``: started, not finished: still training, interrupted, or not
  past its first epoch yet (:attr:`Run.epochs_done` tells how far it got);
* ``"finished"``: ``finished.json`` exists;
* ``"diverged"``: ``diverged.json`` exists (never resumed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcamlab.train.config import TrainConfig
from lcamlab.train.groups import group_label

__all__ = [
    "CONFIG_NAME",
    "METRICS_NAME",
    "CHECKPOINT_NAME",
    "FINISHED_NAME",
    "DIVERGED_NAME",
    "METRIC_KEYS",
    "TIMING_KEYS",
    "Run",
    "read_run",
    "load_runs",
    "run_state",
    "epochs_done",
    "runs_frame",
]

#: The configuration and its provenance (:func:`lcamlab.provenance.run_metadata`), one entry per session.
CONFIG_NAME = "config.json"
#: One JSON object per finished epoch (:data:`METRIC_KEYS`).
METRICS_NAME = "metrics.jsonl"
#: Model, optimizer, epoch, RNG states, configuration and metric history, rewritten every epoch.
CHECKPOINT_NAME = "checkpoint.pt"
#: Written once every epoch is done.
FINISHED_NAME = "finished.json"
#: Written when the loss became NaN or infinite (the run is never resumed).
DIVERGED_NAME = "diverged.json"

#: The fields of one row of ``metrics.jsonl``, in order.
METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "test_error", "test_loss", "lr",
               "phase_below", "phase_above", "epoch_seconds", "images_per_second")
# Wall-clock fields: the only ones that differ between a run and its exact resume.
TIMING_KEYS = ("epoch_seconds", "images_per_second")

# A field absent from config.json was the trainer's default when the run was made.
_DEFAULTS = TrainConfig()


@dataclass
class Run:
    """One run folder, read back.

    Attributes:
        run_dir: the folder.
        config: the training configuration (the fields of :class:`TrainConfig`).
        metrics: one row per finished epoch, sorted by ``epoch`` (1-based); columns:
            :data:`METRIC_KEYS`, then any other logged field.
        finished: every epoch is done (``finished.json`` exists).
        state: ``"partial"``, ``"finished"`` or ``"diverged"`` (see :func:`run_state`).
        metadata: the whole ``config.json`` (provenance: commit, versions, device, sessions).
    """

    run_dir: Path
    config: dict[str, Any]
    metrics: Any  # pandas.DataFrame
    finished: bool
    state: str = "partial"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """Training stopped on a non-finite loss (``diverged.json`` exists)."""
        return self.state == "diverged"

    @property
    def run_id(self) -> str:
        """The folder name."""
        return self.run_dir.name

    @property
    def dataset(self) -> str:
        """``cifar10`` or ``cifar100``."""
        return str(self.config.get("dataset", _DEFAULTS.dataset))

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.config.get("seed", _DEFAULTS.seed))

    @property
    def momentum(self) -> tuple[float, float]:
        """The (below, above) momentum pair of the run (one value: a fixed momentum ``(m, m)``)."""
        value = self.config.get("momentum", _DEFAULTS.momentum)
        if isinstance(value, (int, float)):
            return (float(value), float(value))
        pair = [float(v) for v in value]
        return (pair[0], pair[0]) if len(pair) == 1 else (pair[0], pair[1])

    @property
    def group(self) -> str:
        """The ``"<below>-<above>"`` label of :attr:`momentum` (:func:`lcamlab.train.groups.group_label`)."""
        return group_label(self.momentum)

    @property
    def epochs_done(self) -> int:
        """The last finished epoch (0 when none)."""
        return int(self.metrics["epoch"].max()) if len(self.metrics) else 0

    @property
    def epochs_planned(self) -> int:
        """The number of epochs the run is configured for."""
        return int(self.config.get("epochs", _DEFAULTS.epochs))


def _read_metric_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``, one per epoch, sorted by epoch.

    A torn last line (a crash mid-append) is ignored; a later row for the same
    epoch (a resumed run repeating an epoch) replaces the earlier one.

    Raises:
        ValueError: a line other than the last is not a JSON object, or a row has no ``epoch``.
    """
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not JSON; the metrics log is damaged") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object; the metrics log is damaged")
        if "epoch" not in row:
            raise ValueError(f"{path}: line {number} has no 'epoch' field; the metrics log is damaged")
        row["epoch"] = int(row["epoch"])
        by_epoch[row["epoch"]] = row  # a resumed run's repeat of an epoch replaces the earlier row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def epochs_done(run_dir: str | os.PathLike) -> int:
    """The last finished epoch recorded in ``metrics.jsonl`` (0 when none)."""
    rows = _read_metric_rows(Path(run_dir) / METRICS_NAME)
    return rows[-1]["epoch"] if rows else 0


def run_state(run_dir: str | os.PathLike) -> str:
    """``"missing"`` (no run there), ``"partial"``, ``"finished"`` or ``"diverged"``.

    ``"partial"`` covers every started, unfinished run, with or without a
    finished epoch. A folder without ``config.json`` counts as missing only if
    it does not exist; an existing folder that is not a run is reported as
    ``"partial"`` so it is never silently replaced (starting a run there raises
    ``FileExistsError``).
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "missing"
    if (run_dir / FINISHED_NAME).exists():
        return "finished"
    if (run_dir / DIVERGED_NAME).exists():
        return "diverged"
    return "partial"


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read one run folder.

    ``config.json`` may hold the configuration under ``"config"`` (the
    :func:`lcamlab.provenance.run_metadata` record the trainer writes) or at
    the top level.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json``.
        ValueError: ``config.json`` is not a JSON object, or ``metrics.jsonl`` is damaged
            before its last line (the message names the file).
    """
    import pandas as pd

    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {config_path} is missing")
    try:
        metadata = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON ({error}): restore it from a copy, or move the run "
                         f"folder {run_dir} away and train the run again") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{config_path} does not hold a JSON object: restore it from a copy, or move the run "
                         f"folder {run_dir} away and train the run again")
    config = dict(metadata["config"] if isinstance(metadata.get("config"), dict) else metadata)
    if config.get("seed") is None and metadata.get("seed") is not None:
        config["seed"] = metadata["seed"]
    rows = _read_metric_rows(run_dir / METRICS_NAME)
    extra = [key for row in rows for key in row if key not in METRIC_KEYS]
    columns = list(METRIC_KEYS) + list(dict.fromkeys(extra))
    metrics = pd.DataFrame(rows, columns=columns).astype({"epoch": "int64"})
    state = run_state(run_dir)
    return Run(run_dir=run_dir, config=config, metrics=metrics, finished=state == "finished", state=state,
               metadata=metadata)


def _matches(config: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    for key, wanted in where.items():
        value = config.get(key)
        if key == "momentum":
            if value is None:
                return False
            try:
                if group_label(value) != group_label(wanted):
                    return False
            except ValueError:
                return False
        elif isinstance(wanted, (list, tuple, set, frozenset)) and not isinstance(value, (list, tuple)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def load_runs(runs_dir: str | os.PathLike, **where: Any) -> list[Run]:
    """Every run folder directly inside ``runs_dir`` whose configuration matches ``where``.

    Args:
        runs_dir: folder with one sub-folder per run (a missing folder: no runs).
        **where: ``config key = value`` filters, e.g. ``dataset="cifar10", schedule="step"``;
            a list/tuple/set value means "one of"; ``momentum`` compares pairs
            (``0.9`` matches ``(0.9, 0.9)``).
    Returns:
        The matching runs, sorted by run id (empty if none).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = []
    for path in sorted(runs_dir.iterdir()):
        if (path / CONFIG_NAME).is_file():
            run = read_run(path)
            if _matches(run.config, where):
                runs.append(run)
    return runs


# ----------------------------------------------------------------------------- many runs as one table


def _as_runs(runs: Iterable[Any]) -> list[Run]:
    """Normalise ``runs``: :class:`Run` objects pass through, paths are read with :func:`read_run`
    (a path without ``config.json``, e.g. a run not started yet, is skipped)."""
    loaded = []
    for item in runs:
        if isinstance(item, Run):
            loaded.append(item)
        elif isinstance(item, (str, os.PathLike)):
            if (Path(item) / CONFIG_NAME).is_file():
                loaded.append(read_run(item))
        else:
            raise ValueError(f"Cannot read a run from {item!r} (expected a run folder path or a "
                             f"lcamlab.train.runs.Run)")
    return loaded


_FRAME_KEYS = ["run_id", "dataset", "schedule", "group", "momentum_below", "momentum_above", "seed", "state", "epoch"]


def runs_frame(runs: Iterable[Any]):
    """One row per (run, epoch): run_id, dataset, schedule, group, momentum_below,
    momentum_above, seed, state (finished / partial / diverged), epoch, then the logged metrics.

    ``runs``: :class:`Run` objects (e.g. ``load_runs(runs_dir)``) or run folder paths
    (those without ``config.json`` are skipped); runs without a finished epoch add no rows.

    Returns:
        A pandas DataFrame sorted by dataset, group, seed and epoch.
    """
    import numpy as np
    import pandas as pd

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
