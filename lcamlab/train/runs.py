"""Reading finished and unfinished runs back: what the notebooks plot.

A run folder (see :mod:`lcamlab.train.runner`) holds ``config.json`` and
``metrics.jsonl``; :func:`read_run` turns it into a :class:`Run` with the
configuration as a dict and the per-epoch metrics as a pandas DataFrame (one
row per finished epoch: ``epoch``, ``train_loss`` (000's "average loss"),
``train_accuracy``, ``test_error``, ``test_loss``, ``lr``, ``phase_below``,
``phase_above``, ``epoch_seconds``, ``images_per_second``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "read_run", "load_runs", "run_state", "epochs_done"]

_CONFIG = "config.json"
_METRICS = "metrics.jsonl"
_FINISHED = "finished.json"
_DIVERGED = "diverged.json"


@dataclass
class Run:
    """One run folder, read back.

    Attributes:
        run_dir: the folder.
        config: the training configuration (the fields of :class:`TrainConfig`).
        metrics: one row per finished epoch (columns: the runner's ``METRIC_KEYS``).
        finished: every epoch is done (``finished.json`` exists).
        state: ``"partial"``, ``"finished"`` or ``"diverged"``.
        metadata: the whole ``config.json`` (provenance: commit, versions, device, sessions).
    """

    run_dir: Path
    config: dict[str, Any]
    metrics: Any  # pandas.DataFrame
    finished: bool
    state: str = "partial"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The folder name."""
        return self.run_dir.name

    @property
    def momentum(self) -> tuple[float, float]:
        """The (below, above) momentum pair of the run."""
        below, above = self.config["momentum"]
        return (float(below), float(above))


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def epochs_done(run_dir: str | os.PathLike) -> int:
    """Number of finished epochs recorded in ``metrics.jsonl`` (0 when none)."""
    return len(_read_rows(Path(run_dir) / _METRICS))


def run_state(run_dir: str | os.PathLike) -> str:
    """``"missing"`` (no run there), ``"partial"``, ``"finished"`` or ``"diverged"``.

    A folder without ``config.json`` counts as missing only if it does not exist;
    an existing folder that is not a run is reported as ``"partial"`` so it is
    never silently replaced (starting a run there raises ``FileExistsError``).
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "missing"
    if (run_dir / _FINISHED).exists():
        return "finished"
    if (run_dir / _DIVERGED).exists():
        return "diverged"
    return "partial"


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read one run folder.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json``.
    """
    import pandas as pd

    from lcamlab.train.runner import METRIC_KEYS

    run_dir = Path(run_dir)
    config_path = run_dir / _CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {config_path} is missing")
    metadata = json.loads(config_path.read_text())
    rows = _read_rows(run_dir / _METRICS)
    metrics = pd.DataFrame(rows, columns=list(METRIC_KEYS)) if rows else pd.DataFrame(columns=list(METRIC_KEYS))
    state = run_state(run_dir)
    return Run(run_dir=run_dir, config=dict(metadata.get("config", {})), metrics=metrics,
               finished=state == "finished", state=state, metadata=metadata)


def load_runs(runs_dir: str | os.PathLike) -> list[Run]:
    """Every run folder directly inside ``runs_dir``, sorted by run id (empty if none)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return [read_run(path) for path in sorted(runs_dir.iterdir()) if (path / _CONFIG).is_file()]
