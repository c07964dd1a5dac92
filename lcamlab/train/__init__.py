"""The WRN-28-10 / CIFAR training engine (000 section 4; digest section 2).

Fast on one GPU (device-resident data, channels_last, bf16 autocast, optional
``torch.compile``, no host synchronisation per step), exact on resume (atomic
checkpoints at every epoch end; data order and learning rate are functions of
the epoch), data-parallel under ``torchrun``. Used by ``lcamlab train``,
``lcamlab grid`` and the paper notebooks::

    from lcamlab.train import TrainConfig, train, read_run
    run_dir = train(TrainConfig.from_overrides(epochs=10, depth=16, widen=4, seed=1))
    print(read_run(run_dir).metrics[["epoch", "train_loss", "test_error"]])

Modules: :mod:`~lcamlab.train.config` (the configuration),
:mod:`~lcamlab.train.schedules` (learning rates), :mod:`~lcamlab.train.engine`
(the step), :mod:`~lcamlab.train.runner` (runs, checkpoints, resume),
:mod:`~lcamlab.train.runs` (the run folder's files; reading runs back),
:mod:`~lcamlab.train.groups` (momentum-group labels and names, the paper's
groups), :mod:`~lcamlab.train.grid` (the figures' run sets; planning and completing them
for the notebooks is :mod:`lcamlab.reports.plan`'s job, a layer above),
:mod:`~lcamlab.train.distributed` (DDP helpers).
"""

from __future__ import annotations

from lcamlab.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from lcamlab.train.engine import Engine
from lcamlab.train.grid import (
    FIGURES,
    PAPER_GROUPS,
    figure_configs,
    figure_groups,
    grid_command,
    grid_status,
    run_grid,
    run_id_for,
)
from lcamlab.train.runner import METRIC_KEYS, RunBusyError, TrainingDivergedError, resume, train
from lcamlab.train.runs import Run, load_runs, read_run, run_state
from lcamlab.train.schedules import learning_rate

__all__ = [
    "TrainConfig",
    "OPTIMIZERS",
    "SCHEDULES",
    "Engine",
    "learning_rate",
    "train",
    "resume",
    "TrainingDivergedError",
    "RunBusyError",
    "METRIC_KEYS",
    "Run",
    "read_run",
    "load_runs",
    "run_state",
    "FIGURES",
    "PAPER_GROUPS",
    "figure_groups",
    "figure_configs",
    "run_id_for",
    "grid_status",
    "run_grid",
    "grid_command",
]
