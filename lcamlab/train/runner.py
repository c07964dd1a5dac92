r"""The training runner: start, checkpoint, resume and log a WRN/CIFAR run.

A run lives in ``<runs_dir>/<run_id>/`` (file names: :mod:`lcamlab.train.runs`):

* ``config.json``: the configuration and its provenance (seed, git commit,
  package and torch versions, device; :func:`lcamlab.provenance.run_metadata`),
  plus one entry per session that trained it;
* ``metrics.jsonl``: one JSON object per finished epoch (:data:`METRIC_KEYS`);
* ``checkpoint.pt``: written atomically at the end of every epoch: model,
  optimizer (LCAM's running mean and decision included), the epoch, the RNG
  states and the configuration (nanoGPT style), and the metric history;
* ``finished.json`` once every epoch is done, ``diverged.json`` if the loss
  became NaN or infinite, or a parameter or buffer (BatchNorm statistics) did:
  a checkpoint is only written, and only read back, when every tensor is finite.

The folder appears complete or not at all: everything is validated first (the
subsets against the data), ``config.json`` is written into a temporary folder
that is then renamed into place; a folder that never finished an epoch is
started afresh by ``train`` with the same run id. A resumed run continues on the
data it started with (``config.json`` records its identity), and the temporary
files of writes a killed process left are removed under the run's lock.

Exact resume. The data order and augmentation of epoch ``e`` are a pure
function of ``(seed, e)`` (:class:`lcamlab.data.DeviceLoader`), the learning
rate a pure function of ``(epoch, iteration)`` (:mod:`lcamlab.train.schedules`),
and the checkpoint holds everything else, so a run killed at any point and
resumed with :func:`resume` (``lcamlab train --resume RUN_DIR``) produces the
same ``metrics.jsonl`` as an uninterrupted one (bit for bit on the CPU).

Under ``torchrun --nproc_per_node N`` the same functions train with
DistributedDataParallel (see :mod:`lcamlab.train.distributed`); rank 0 writes
the files.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lcamlab import provenance
from lcamlab.optim import start_epoch
from lcamlab.train.config import LOCATION_FIELDS, TrainConfig
from lcamlab.train.distributed import DistContext, all_reduce_sum, broadcast_object, gather_objects, init_from_env
from lcamlab.train.engine import Engine
from lcamlab.train.runs import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    DIVERGED_NAME,
    FINISHED_NAME,
    METRIC_KEYS,
    METRICS_NAME,
    TIMING_KEYS,
)
from lcamlab.train.schedules import learning_rate

__all__ = [
    "train",
    "resume",
    "build_model",
    "build_optimizer",
    "optimizer_spec",
    "control_schedule",
    "default_run_id",
    "resolve_device",
    "TrainingDivergedError",
    "RunBusyError",
    "METRIC_KEYS",
    "TIMING_KEYS",
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "CONFIG_NAME",
    "FINISHED_NAME",
    "DIVERGED_NAME",
]

# The run folder's file names and metric fields live in lcamlab.train.runs (its one reader);
# they are re-exported here for the writer's callers.
LOCK_NAME = ".lock"
CHECKPOINT_FORMAT = 1

EpochCallback = Callable[[int, Path, dict], None]
ModelFactory = Callable[[TrainConfig, int], nn.Module]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class RunBusyError(RuntimeError):
    """Another process is training this run right now."""


class CheckpointError(ValueError):
    """A checkpoint that is unreadable, incomplete or not good (non-finite values); the message says what to do."""


class RunFolderError(ValueError):
    """A run folder that cannot be created, restarted or resumed as asked; the message says what to do."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (a full disk); the previous checkpoint is intact."""


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


def default_run_id(config: TrainConfig) -> str:
    """The run folder name derived from a config, e.g. ``lcam-cifar10-step-m0.9-0.95-s0``.

    Grid runs (``config.figure`` set) are named by the figure instead:
    ``fig3-cifar10-m0.9-0.95-s0`` (:func:`lcamlab.train.grid.run_id_for`).
    """
    below, above = config.momentum
    control = "" if config.control is None else f"-{config.control}"
    if config.figure is not None:
        return f"{config.figure}-{config.dataset}-m{below:g}-{above:g}{control}-s{config.seed}"
    if config.optimizer in ("sgd", "lcam"):
        momentum = f"-m{below:g}" if below == above else f"-m{below:g}-{above:g}"
    else:
        momentum = ""
    return f"{config.optimizer}-{config.dataset}-{config.schedule}{momentum}{control}-s{config.seed}"


def resolve_device(name: str, context: DistContext | None = None) -> torch.device:
    """``"auto"`` -> ``cuda`` if available else ``cpu``; under torchrun ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Invalid device: {name!r} (CUDA is not available here; use --device cpu)")
        if context is not None and context.enabled:
            device = torch.device("cuda", context.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """``WideResNet(depth, widen, num_classes, dropout)`` (000 section 4; digest section 2), or with
    ``arch="fmnet"`` the small Fashion-MNIST CNN :class:`lcamlab.models.FMNet`."""
    from lcamlab.models.wrn import WideResNet

    if config.arch == "fmnet":
        from lcamlab.models.small import FMNet

        return FMNet(num_classes=num_classes, in_channels=1 if config.dataset == "fashion-mnist" else 3)
    return WideResNet(depth=config.depth, widen=config.widen, num_classes=num_classes, dropout=config.dropout)


def optimizer_spec(config: TrainConfig) -> "OptimizerSpec":
    r"""The registry spec of ``config.optimizer`` with the config's lr, momentum and weight decay.

    * ``sgd``: ``torch.optim.SGD`` with momentum :math:`\beta` (one value), coupled L2;
    * ``lcam``: :class:`lcamlab.optim.LCAM` with ``(below, above)`` (000 Algorithm 1);
    * ``adai`` / ``adaiw``: Adai with coupled / decoupled weight decay (004 Algorithm 2);
    * ``adarem``: AdaRem (003 Algorithm 1; its own beta 0.9, decay :math:`-\eta\gamma\theta`);
    * ``adam`` / ``adamw``: torch's, default betas.
    """
    from lcamlab.experiments.registry import OptimizerSpec

    if config.control is not None:
        from lcamlab.experiments.controls import control_specs

        lcam = OptimizerSpec("lcam", float(config.lr), {"weight_decay": float(config.weight_decay),
                                                         "momentum": tuple(config.momentum)})
        return next(iter(control_specs(lcam, (config.control,)).values()))
    options: dict[str, Any] = {"weight_decay": float(config.weight_decay)}
    if config.optimizer == "sgd":
        options["momentum"] = config.momentum[0]
    elif config.optimizer == "lcam":
        options.update(momentum=tuple(config.momentum), initial_momentum=config.initial_momentum)
    return OptimizerSpec(config.optimizer, float(config.lr), options)


class _EpochBernoulli:
    """``t -> momentum``: below with the epoch's probability ``p[t // n]``, drawn from ``(seed, t)`` alone."""

    def __init__(self, pair: tuple[float, float], fractions: Sequence[float], seed: int, iterations: int) -> None:
        from lcamlab.experiments.controls import bernoulli_schedule

        self.iterations = int(iterations)
        self.schedules = [bernoulli_schedule(pair, p, seed) for p in fractions]

    def __call__(self, t: int):
        epoch = min(int(t) // self.iterations, len(self.schedules) - 1)
        return self.schedules[epoch](t)


def _train_size(config: TrainConfig) -> int:
    full = {"cifar10": 50000, "cifar100": 50000, "fashion-mnist": 60000}[config.dataset]
    return config.train_subset if config.train_subset is not None else full


def control_schedule(config: TrainConfig):
    r"""The momentum schedule of a control run, for :class:`lcamlab.optim.ScheduledMomentum`.

    * ``shuffled``: step :math:`t` of epoch :math:`e = \lfloor t / n \rfloor` uses ``below`` with
      probability :math:`p_e` (the reference run's realised below-fraction of epoch :math:`e`,
      ``config.control_values``), else ``above``; the draw is a pure function of ``(seed, t)``
      (:func:`lcamlab.experiments.controls.bernoulli_schedule`), so a resumed run continues it.
    * ``matched``: the fixed number ``config.control_values[0]``.

    ``n`` is the number of training batches per epoch, ``ceil(N / batch_size)`` with ``N`` the
    training subset (or the dataset's full size: pass ``train_subset`` for a smaller set).
    """
    if config.control is None or config.control_values is None:
        raise ValueError(f"Invalid control config: control {config.control!r} with values "
                         f"{config.control_values!r} (a control needs the values of its reference run)")
    if config.control == "matched":
        return float(config.control_values[0])
    iterations = -(-_train_size(config) // config.batch_size)
    return _EpochBernoulli(tuple(config.momentum), config.control_values, config.seed, iterations)


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over ``params`` (:func:`optimizer_spec`, built by the registry).

    Every parameter is decayed, BatchNorm included, as in the authors' loop. A control
    (``config.control``) is :class:`lcamlab.optim.ScheduledMomentum` with the schedule
    of :func:`control_schedule` (from ``config.control_values``).
    """
    if config.control is not None:
        return optimizer_spec(config).build(list(params), momentum=control_schedule(config))
    return optimizer_spec(config).build(list(params))


def _load_data(config: TrainConfig, context: DistContext):
    """The dataset (rank 0 first, so only one replica downloads or builds the cache)."""
    from lcamlab.data import load_cifar, load_fashion_mnist

    def load():
        if config.dataset == "fashion-mnist":
            return load_fashion_mnist(config.data_dir, download=config.download, expected_md5=config.data_md5)
        return load_cifar(config.dataset, config.data_dir, download=config.download,
                          expected_md5=config.data_md5)

    data = None
    failure: BaseException | None = None
    if context.is_main:
        try:
            data = load()
        except (FileNotFoundError, ValueError, OSError) as caught:
            if not context.enabled:
                raise
            failure = caught
    message = broadcast_object(None if failure is None else f"{type(failure).__name__}: {failure}", context)
    if failure is not None:
        raise failure
    if message is not None:
        raise FileNotFoundError(f"rank 0 could not load the data ({message})")
    if data is None:
        data = load()
    return data


def _subset(images, labels, n: int | None):
    if n is None:
        return images, labels
    if n > images.shape[0]:
        raise ValueError(f"Invalid subset size: {n} (the set holds only {images.shape[0]} images)")
    return images[:n], labels[:n]


def _make_loaders(config: TrainConfig, data, device: torch.device):
    from lcamlab.data import NORMALIZATIONS, DeviceLoader
    from lcamlab.data.fashion_mnist import FASHION_MNIST_NORMALIZATION

    mean, std = FASHION_MNIST_NORMALIZATION if config.normalization == "fashion-mnist" \
        else NORMALIZATIONS[config.normalization]
    train_x, train_y = _subset(data.train_images, data.train_labels, config.train_subset)
    test_x, test_y = _subset(data.test_images, data.test_labels, config.test_subset)
    train_loader = DeviceLoader(train_x, train_y, batch_size=config.batch_size, train=True, seed=config.seed,
                                mean=mean, std=std, device=device, drop_last=False, pad=config.crop_pad,
                                channels_last=config.channels_last)
    test_loader = DeviceLoader(test_x, test_y, batch_size=config.eval_batch_size, train=False, seed=config.seed,
                               mean=mean, std=std, device=device, drop_last=False,
                               channels_last=config.channels_last)
    return train_loader, test_loader, int(train_x.shape[0])


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


@contextmanager
def _run_lock(run_dir: Path, context: DistContext):
    """An exclusive lock on the run folder while this job trains it (taken by rank 0).

    ``flock`` is released by the kernel when the process dies (even by SIGKILL),
    so a killed run never leaves a stale lock behind.
    """
    handle = None
    failure: str | None = None
    if context.is_main:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no locking
            fcntl = None
        if fcntl is not None:
            handle = open(run_dir / LOCK_NAME, "a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                handle.close()
                handle = None
                failure = (f"Run {run_dir} is being trained by another process ({owner}); "
                           f"wait for it to finish or stop it before resuming")
            else:
                handle.seek(0)
                handle.truncate()
                host = os.uname().nodename if hasattr(os, "uname") else "this host"
                handle.write(f"pid {os.getpid()} on {host}")
                handle.flush()
    failure = broadcast_object(failure, context)  # every replica stops if the run is busy
    if failure is not None:
        raise RunBusyError(failure)
    try:
        yield
    finally:
        if handle is not None:
            handle.close()


def _format_row(row: dict[str, Any], epochs: int) -> str:
    phase = "" if row["phase_below"] is None else f"  below {row['phase_below']:.3f}"
    return (f"epoch {row['epoch']:>3}/{epochs}  train_loss {row['train_loss']:.4f}  "
            f"train_acc {row['train_accuracy']:6.2f}%  test_err {row['test_error']:6.2f}%  "
            f"test_loss {row['test_loss']:.4f}  lr {row['lr']:.3g}{phase}  "
            f"{row['epoch_seconds']:.1f} s  {row['images_per_second']:.0f} img/s")


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    # Rewritten whole and atomically: a kill never leaves a torn line, and the file
    # always equals the history stored in the checkpoint.
    text = "".join(json.dumps(row) + "\n" for row in history)
    provenance.atomic_write_text(run_dir / METRICS_NAME, text)


def _append_session(run_dir: Path, session: dict[str, Any]) -> None:
    path = run_dir / CONFIG_NAME
    record = _read_json(path, _CONFIG_FIX)
    record.setdefault("sessions", []).append(session)
    provenance.atomic_write_json(path, record)


_CONFIG_FIX = ("it holds the run's configuration and provenance: restore it from a backup (the configuration is "
               "also stored in checkpoint.pt: torch.load(path, weights_only=True)['config']), or start the run "
               "afresh under another --run-id")


def _read_json(path: Path, fix: str) -> Any:
    """A run folder's JSON file; an unreadable one is a :class:`RunFolderError` naming it and ``fix``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFolderError(f"{path} is not readable JSON ({error}); {fix}") from None


def _non_finite(state: dict[str, Any], context: DistContext | None = None) -> list[str]:
    """Names of the floating-point tensors in ``state`` holding NaN or inf (one host sync)."""
    names = [name for name, value in state.items()
             if isinstance(value, torch.Tensor) and value.is_floating_point()]
    if not names:
        return []
    finite = torch.stack([torch.isfinite(state[name]).all() for name in names])
    if context is not None and context.enabled:  # every replica takes the same decision
        bad = all_reduce_sum((~finite).sum(), context)
        local = [n for n, ok in zip(names, finite.tolist()) if not ok]
        return local or (["(a tensor on another replica)"] if int(bad) else [])
    return [name for name, ok in zip(names, finite.tolist()) if not ok]


def _shown(names: list[str], limit: int = 4) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


_CHECKPOINT_KEYS = ("format", "config", "epoch", "model", "optimizer", "rng", "history")


def _checkpoint_fix(run_dir: Path) -> str:
    path = run_dir / CHECKPOINT_NAME
    return (f"if you kept a copy of an earlier {CHECKPOINT_NAME}, put it back and resume again; otherwise move this "
            f"one away (mv {path} {path}.damaged) and `lcamlab train --resume {run_dir}` restarts the run from "
            f"epoch 1 with its stored configuration")


def _read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run's verified checkpoint, or ``None`` without one (the run then starts at epoch 1).

    Raises:
        CheckpointError: unreadable (truncated, random, empty, refused by ``weights_only``),
            incomplete, of another format, or holding non-finite parameters or buffers.
    """
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types here; all mean "not a checkpoint we can use"
        reason = " ".join(str(error).split()).split(". ")[0][:160] or "no detail"
        raise CheckpointError(f"Checkpoint {path} is unreadable ({type(error).__name__}: {reason}); "
                              f"{_checkpoint_fix(run_dir)}") from None
    missing = [key for key in _CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(f"Checkpoint {path} is not a complete lcamlab checkpoint (it lacks "
                              f"{', '.join(missing)}); {_checkpoint_fix(run_dir)}")
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"Invalid checkpoint {path}: format {checkpoint.get('format')!r} "
                              f"(this lcamlab reads format {CHECKPOINT_FORMAT}); {_checkpoint_fix(run_dir)}")
    epoch, model = checkpoint["epoch"], checkpoint["model"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1 or not isinstance(model, dict) \
            or not isinstance(checkpoint["history"], list) or len(checkpoint["history"]) != epoch:
        raise CheckpointError(f"Checkpoint {path} is inconsistent (epoch {epoch!r}, "
                              f"{len(checkpoint['history']) if isinstance(checkpoint['history'], list) else '?'} "
                              f"history rows); {_checkpoint_fix(run_dir)}")
    bad = _non_finite(model)
    if bad:
        raise CheckpointError(f"Checkpoint {path} (epoch {epoch}) holds non-finite values in {len(bad)} tensor(s) "
                              f"({_shown(bad)}): the run had diverged by then; {_checkpoint_fix(run_dir)}, or "
                              f"start a new run with a lower --lr")
    return checkpoint


def _save_checkpoint(state: dict[str, Any], run_dir: Path) -> None:
    """Write the checkpoint atomically; a full disk is a :class:`CheckpointWriteError` saying nothing was lost."""
    path = run_dir / CHECKPOINT_NAME
    try:
        provenance.atomic_torch_save(state, path)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        kept = (f"nothing was lost: the checkpoint of epoch {state['epoch'] - 1} is intact, and resuming continues "
                f"from it" if state["epoch"] > 1 else
                "this was the run's first checkpoint, so resuming starts again from epoch 1")
        raise CheckpointWriteError(
            error.errno, f"No space left on device while writing the checkpoint of epoch {state['epoch']} to "
                         f"{path}; the files already there are intact (the new checkpoint was never renamed into "
                         f"place): {kept}. Free space on that disk and continue with "
                         f"`lcamlab train --resume {run_dir}`", str(path),
        ) from error


_TEMPORARY_OF = ("checkpoint.pt", "config.json", "metrics.jsonl", "finished.json", "diverged.json")


def _clean_stale_temporaries(run_dir: Path, progress: str) -> None:
    """Remove the temporary files of writes a killed process left (``.checkpoint.pt.*.tmp``, ...).

    Called under the run's lock, so no live writer owns them.
    """
    removed, size = 0, 0
    for path in run_dir.iterdir():
        name = path.name
        if name.startswith(".") and name.endswith(".tmp") and path.is_file() \
                and any(name.startswith(f".{stem}.") for stem in _TEMPORARY_OF):
            try:
                size += path.stat().st_size
                path.unlink()
                removed += 1
            except OSError:
                pass
    if removed and progress != "none":
        print(f"{run_dir}: removed {removed} temporary file(s) of an interrupted write ({size / 2**20:.1f} MiB)",
              flush=True)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    *,
    progress: str = "auto",
    on_epoch_end: EpochCallback | None = None,
    model_factory: ModelFactory | None = None,
) -> Path:
    """Train a new run; returns its folder ``<runs_dir>/<run_id>``.

    Args:
        config: the run's configuration (validated again here).
        progress: ``"auto"`` (a tqdm bar per epoch when stderr is a terminal, else
            one line per epoch), ``"bar"``, ``"lines"`` or ``"none"``.
        on_epoch_end: called as ``on_epoch_end(epoch, run_dir, row)`` after the
            epoch's checkpoint and metrics are written (``epoch`` 1-based), e.g. for
            live plots in a notebook.
        model_factory: ``model_factory(config, num_classes) -> nn.Module`` instead of
            the Wide-ResNet (other architectures; pass the same one to :func:`resume`).

    Raises:
        FileExistsError: the run folder exists (resume it, or choose another run id).
        FileNotFoundError: the CIFAR data is missing (the message says how to get it).
        TrainingDivergedError: the loss became NaN or infinite.
    """
    config = config.replace()  # a validated copy: the caller's object is never mutated
    if config.run_id is None:
        config = config.replace(run_id=default_run_id(config))
    run_dir = Path(config.runs_dir) / config.run_id
    return _session(config, run_dir, fresh=True, progress=progress, on_epoch_end=on_epoch_end,
                    model_factory=model_factory)


def resume(
    run_dir: str | os.PathLike,
    *,
    progress: str = "auto",
    on_epoch_end: EpochCallback | None = None,
    model_factory: ModelFactory | None = None,
    **overrides: Any,
) -> Path:
    """Continue a run from its last checkpoint, exactly; returns the run folder.

    A finished run is left as it is. A run killed before its first checkpoint
    starts again from epoch 1 with its stored configuration.

    Args:
        run_dir: the run's folder.
        progress, on_epoch_end, model_factory: as for :func:`train`.
        **overrides: location fields only (``device``, ``data_dir``, ``download``,
            ``compile``): where the run continues, never what it computes.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run folder.
        ValueError: an override that would change the experiment.
        TrainingDivergedError: the run had diverged, or diverges again.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: it is not a run folder (no {CONFIG_NAME}); "
            f"runs live in <runs_dir>/<run_id>/, e.g. data/runs/lcam-cifar10-step-m0.9-0.95-s0"
        )
    changing = sorted(set(overrides) - (LOCATION_FIELDS - {"runs_dir", "run_id"}))
    if changing:
        raise ValueError(
            f"Cannot change {', '.join(changing)} when resuming {run_dir}: a resumed run keeps its "
            f"configuration (only device, data_dir, download, compile may change); start a new run instead"
        )
    if (run_dir / DIVERGED_NAME).exists():
        try:
            detail = _read_json(run_dir / DIVERGED_NAME, "").get("message", "")
        except (RunFolderError, AttributeError):
            detail = f"its {run_dir / DIVERGED_NAME} is unreadable"
        raise TrainingDivergedError(
            f"Run {run_dir} diverged and is not resumed ({detail}); start a new run with another "
            f"--run-id (e.g. a lower --lr), or delete {DIVERGED_NAME} to retry"
        )
    record = _read_json(config_path, _CONFIG_FIX)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise RunFolderError(f"{config_path} holds no 'config' record; {_CONFIG_FIX}")
    try:
        config = TrainConfig.from_dict(record["config"]).replace(**overrides, runs_dir=str(run_dir.parent),
                                                                 run_id=run_dir.name)
    except ValueError as error:
        raise RunFolderError(f"Cannot resume {run_dir}: its stored configuration ({config_path}) is not valid here "
                             f"({error}); {_restart_hint(run_dir)}") from None
    return _session(config, run_dir, fresh=False, progress=progress, on_epoch_end=on_epoch_end,
                    model_factory=model_factory)


# --------------------------------------------------------------------------------------
# One training session (a fresh run, or the continuation of one)
# --------------------------------------------------------------------------------------


def _session(config: TrainConfig, run_dir: Path, *, fresh: bool, progress: str,
             on_epoch_end: EpochCallback | None, model_factory: ModelFactory | None) -> Path:
    if progress not in ("auto", "bar", "lines", "none"):
        raise ValueError(f"Invalid progress: {progress!r} (auto, bar, lines or none)")
    device_type = "cuda" if (config.device == "auto" and torch.cuda.is_available()) \
        or config.device.startswith("cuda") else "cpu"
    context = init_from_env(device_type)
    try:
        device = resolve_device(config.device, context)
        if fresh:
            _raise_everywhere(_new_run_problem(run_dir) if context.is_main else None, context)
        data = _load_data(config, context)
        if fresh:
            _create_run_dir(config, run_dir, device, context, data)
        elif (run_dir / FINISHED_NAME).exists():
            if context.is_main and progress != "none":
                print(f"{run_dir}: already finished ({FINISHED_NAME}); nothing to do", flush=True)
            return run_dir
        else:
            _check_resumable(config, run_dir, data)
        with _run_lock(run_dir, context):
            if context.is_main:
                _clean_stale_temporaries(run_dir, progress)
            _train_loop(config, run_dir, data, device, context, progress=progress,
                        on_epoch_end=on_epoch_end, model_factory=model_factory, fresh=fresh)
        return run_dir
    finally:
        context.destroy()


def _refuse_existing(run_dir: Path) -> None:
    raise FileExistsError(
        f"Run folder {run_dir} already exists and lcamlab never overwrites a run; continue it with "
        f"`lcamlab train --resume {run_dir}` or choose another --run-id"
    )


def _raise_everywhere(error: BaseException | None, context: DistContext) -> None:
    """Raise rank 0's ``error`` (or nothing) on every replica."""
    error = broadcast_object(error, context)
    if error is not None:
        raise error


def _run_files(run_dir: Path) -> list[str]:
    """What a run folder holds, without its lock and the temporaries of interrupted writes."""
    return sorted(p.name for p in run_dir.iterdir()
                  if p.name != LOCK_NAME and not (p.name.startswith(".") and p.name.endswith(".tmp")))


def _never_started(run_dir: Path) -> bool:
    """A run folder with its configuration but no finished epoch (no checkpoint), not finished, not diverged."""
    return ((run_dir / CONFIG_NAME).is_file() and not (run_dir / CHECKPOINT_NAME).exists()
            and not (run_dir / FINISHED_NAME).exists() and not (run_dir / DIVERGED_NAME).exists())


def _restart_hint(run_dir: Path) -> str:
    if _never_started(run_dir):
        return (f"this run never finished an epoch, so nothing is lost by starting it afresh: run `lcamlab train` "
                f"with valid options and --run-id {run_dir.name} --runs-dir {run_dir.parent} (the folder is reused)")
    return "start a new run under another --run-id"


def _new_run_problem(run_dir: Path) -> BaseException | None:
    """Why a new run cannot go to ``run_dir`` (checked before the data is loaded), or ``None``."""
    try:
        provenance.check_output_folder(run_dir.parent, "--runs-dir")
        provenance.check_output_folder(run_dir, "--run-id")
    except ValueError as error:
        return error
    if not run_dir.is_dir():
        return None
    files = _run_files(run_dir)
    if not files or _never_started(run_dir):
        return None  # empty, or never finished an epoch: reused (_create_run_dir)
    if CONFIG_NAME not in files:
        return RunFolderError(f"{run_dir} exists and is not a run folder (no {CONFIG_NAME}; it holds "
                              f"{', '.join(files[:5])}{' ...' if len(files) > 5 else ''}): move it away or choose "
                              f"another --run-id")
    try:
        _refuse_existing(run_dir)
    except FileExistsError as error:
        return error
    return None


def _data_identity(data) -> dict[str, Any]:
    return {"source": str(data.source), "md5": getattr(data, "md5", None),
            "content_sha256": getattr(data, "content_sha256", None) or None,
            "train_images": int(data.train_images.shape[0]), "test_images": int(data.test_images.shape[0])}


def _check_data_fits(config: TrainConfig, data) -> None:
    """The subsets a config asks for exist in ``data`` (checked before a run folder is created)."""
    for name, split, images in (("train_subset", "training", data.train_images),
                                ("test_subset", "test", data.test_images)):
        wanted = getattr(config, name)
        if wanted is not None and wanted > int(images.shape[0]):
            raise ValueError(f"Invalid --{name.replace('_', '-')}: {wanted} (the {split} set in {data.source} holds "
                             f"only {int(images.shape[0])} images); choose at most {int(images.shape[0])}")


def _check_resumable(config: TrainConfig, run_dir: Path, data) -> None:
    """A resumed run continues on the data it started with, and its subsets fit that data."""
    record = _read_json(run_dir / CONFIG_NAME, _CONFIG_FIX)
    stored = record.get("data") if isinstance(record, dict) else None
    found = _data_identity(data)
    if isinstance(stored, dict):
        key = "content_sha256" if stored.get("content_sha256") and found["content_sha256"] else "md5"
        if stored.get(key) and found.get(key) and stored[key] != found[key]:
            raise RunFolderError(
                f"Cannot resume {run_dir} on other data: it was trained on {stored.get('source')} ({key} "
                f"{stored[key]}, {stored.get('train_images')} training images), but --data-dir now gives "
                f"{found['source']} ({key} {found[key]}, {found['train_images']} training images); point "
                f"--data-dir at the data the run started with, or start a new run under another --run-id"
            )
    try:
        _check_data_fits(config, data)
    except ValueError as error:
        raise RunFolderError(f"Cannot resume {run_dir}: {error}; {_restart_hint(run_dir)}") from None


def _create_run_dir(config: TrainConfig, run_dir: Path, device: torch.device, context: DistContext,
                    data) -> None:
    """Create the run folder complete (``config.json`` in place) or not at all.

    Everything is validated first (the subsets against the data); the folder is
    filled under a temporary name and renamed into place. A folder that exists
    but never finished an epoch (or is empty) is started afresh, under its lock.
    """
    error: BaseException | None = None
    if context.is_main:
        try:
            _check_data_fits(config, data)
            record = provenance.run_metadata(config.to_dict(), seed=config.seed, device=device,
                                             run_id=config.run_id, world_size=context.world_size,
                                             data=_data_identity(data))
            record["sessions"] = []
            if run_dir.is_dir() and _run_files(run_dir):
                _restart_never_started(run_dir, record)
            else:
                if run_dir.is_dir():  # an empty folder (at most a lock or debris of a killed write): replaced
                    for leftover in run_dir.iterdir():
                        if leftover.is_file():
                            leftover.unlink()
                provenance.create_folder_atomically(
                    run_dir, lambda folder: provenance.atomic_write_json(folder / CONFIG_NAME, record))
        except FileExistsError:
            try:
                _refuse_existing(run_dir)
            except FileExistsError as refused:
                error = refused
        except (ValueError, OSError, RunBusyError) as caught:
            error = caught
    _raise_everywhere(error, context)


def _restart_never_started(run_dir: Path, record: dict[str, Any]) -> None:
    """Start a run folder that never finished an epoch afresh with ``record`` (nothing computed is lost)."""
    import fcntl

    with open(run_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(f"Run {run_dir} is being trained by another process; wait for it to finish or "
                               f"stop it") from None
        if not _never_started(run_dir):  # another process finished an epoch meanwhile
            _refuse_existing(run_dir)
        print(f"{run_dir}: this run never finished an epoch; starting it afresh with the configuration given",
              file=sys.stderr, flush=True)
        provenance.atomic_write_json(run_dir / CONFIG_NAME, record)
        (run_dir / METRICS_NAME).unlink(missing_ok=True)


def _resolve_progress(progress: str, context: DistContext) -> str:
    if not context.is_main:
        return "none"
    if progress == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return progress


def _train_loop(config: TrainConfig, run_dir: Path, data, device: torch.device, context: DistContext, *,
                progress: str, on_epoch_end: EpochCallback | None, model_factory: ModelFactory | None,
                fresh: bool) -> None:
    progress = _resolve_progress(progress, context)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    checkpoint = None
    if not fresh:
        checkpoint = _read_checkpoint(run_dir)  # every replica reads the same file
        if checkpoint is not None:
            stored = TrainConfig.from_dict(checkpoint["config"])
            if stored.experiment_dict() != config.experiment_dict():
                raise ValueError(f"Invalid run {run_dir}: {CONFIG_NAME} and {CHECKPOINT_NAME} disagree "
                                 f"about the configuration")

    # The initialisation is a function of the seed alone (identical on every replica).
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(config.seed)
    factory = model_factory or build_model
    model = factory(config, data.num_classes).to(device)
    if context.enabled and device.type == "cuda" and config.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if context.rank > 0:
        # Different dropout masks per replica (the parameters come from rank 0 anyway).
        torch.manual_seed(config.seed + 1_000_003 * context.rank)
    optimizer = build_optimizer(config, model.parameters())
    engine = Engine(model, optimizer, device=device, amp=config.amp, channels_last=config.channels_last,
                    compile=config.compile, distributed=context.enabled, context=context)
    train_loader, test_loader, n_train = _make_loaders(config, data, device)
    iterations = len(train_loader)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    if checkpoint is not None:
        try:
            engine.model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            raise CheckpointError(f"Checkpoint {run_dir / CHECKPOINT_NAME} does not fit this run's model and "
                                  f"optimizer ({' '.join(str(error).split())[:160]}); "
                                  f"{_checkpoint_fix(run_dir)}") from None
        states = checkpoint["rng"]
        _set_rng_state(states[context.rank] if context.rank < len(states) else states[0], device)
        history = list(checkpoint["history"])
        start_epoch = int(checkpoint["epoch"])
    if context.is_main:
        _write_metrics(run_dir, history)  # the checkpoint's history is the truth after a kill
        _append_session(run_dir, {
            "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "start_epoch": start_epoch,
            "device": provenance.describe_device(device), "world_size": context.world_size,
            "git_commit": provenance.git_commit()["commit"], "torch_version": torch.__version__,
        })

    for epoch in range(start_epoch, config.epochs):
        row = _train_epoch(config, engine, train_loader, test_loader, epoch, iterations, n_train,
                           context, progress)
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])):
            _diverged(config, run_dir, row, epoch, context)
        # a good checkpoint has finite parameters AND buffers (BatchNorm statistics), not only a finite loss
        bad_tensors = _non_finite(engine.model.state_dict(), context)
        if bad_tensors:
            _diverged(config, run_dir, row, epoch, context, tensors=bad_tensors)
        history.append(row)
        if context.is_main:
            _save_checkpoint({
                "format": CHECKPOINT_FORMAT,
                "config": config.to_dict(),
                "epoch": epoch + 1,  # epochs done
                "model": engine.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": gather_objects(_rng_state(device), context),
                "history": history,
                "schedule": {"name": config.schedule, "base_lr": config.lr, "next_epoch": epoch + 1,
                             "iterations_per_epoch": iterations},
                "data_order": {"seed": config.seed, "next_epoch": epoch + 1,
                               "rule": "DeviceLoader.epoch(e) is a function of (seed, e)"},
            }, run_dir)
            _write_metrics(run_dir, history)
        else:
            gather_objects(_rng_state(device), context)  # matches rank 0's collective
        if progress in ("bar", "lines"):
            _print_line(_format_row(row, config.epochs), progress)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, run_dir, dict(row))

    if context.is_main:
        provenance.atomic_write_json(run_dir / FINISHED_NAME, provenance.run_metadata(
            config.to_dict(), seed=config.seed, device=device, epochs=config.epochs,
            final=history[-1] if history else None))


def _print_line(text: str, progress: str) -> None:
    if progress == "bar":
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        print(text, flush=True)


def _train_epoch(config: TrainConfig, engine: Engine, train_loader, test_loader, epoch: int,
                 iterations: int, n_train: int, context: DistContext, progress: str) -> dict[str, Any]:
    optimizer = engine.optimizer
    start_epoch(optimizer)  # LCAM: the running mean restarts (000 Algorithm 1); AdaRem: t advances
    device = engine.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    batches = train_loader.epoch(epoch)
    bar = None
    if progress == "bar":
        from tqdm.auto import tqdm

        bar = tqdm(total=iterations, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                   file=sys.stderr, unit="batch", dynamic_ncols=True)
    started = time.perf_counter()
    lr = config.lr
    for iteration, (x, y) in enumerate(batches):
        lr = learning_rate(config.schedule, config.lr, epoch, iteration, iterations, config.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, hits = engine.train_step(x, y)
        loss_sum += loss
        correct += hits
        if bar is not None:
            bar.update(1)
    phases = optimizer.phase_fractions() if hasattr(optimizer, "phase_fractions") else None
    # The one host synchronisation of the training phase.
    correct = all_reduce_sum(correct, context)
    train_values = torch.stack([loss_sum, correct.to(torch.float64)]).tolist()
    phase_values = phases.tolist() if phases is not None else None
    train_seconds = time.perf_counter() - started
    evaluation = engine.evaluate(test_loader)
    test_values = torch.stack([evaluation["loss"], evaluation["error"]]).tolist()
    epoch_seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return {
        "epoch": epoch + 1,
        "train_loss": train_values[0] / iterations,
        "train_accuracy": 100.0 * train_values[1] / n_train,
        "test_error": test_values[1],
        "test_loss": test_values[0],
        "lr": lr,
        "phase_below": None if phase_values is None else float(phase_values[0]),
        "phase_above": None if phase_values is None else float(phase_values[1]),
        "epoch_seconds": epoch_seconds,
        "images_per_second": n_train / train_seconds if train_seconds > 0 else float("inf"),
    }


def _diverged(config: TrainConfig, run_dir: Path, row: dict[str, Any], epoch: int, context: DistContext,
              tensors: list[str] | None = None) -> None:
    kept = (f"its last good checkpoint (epoch {epoch}) is kept in {run_dir / CHECKPOINT_NAME}" if epoch > 0
            else "no checkpoint was written (it diverged in the first epoch)")
    bad = [f"{name} {row[key]}" for key, name in (("train_loss", "mean training loss"), ("test_loss", "test loss"))
           if not math.isfinite(row[key])]
    if tensors:
        bad.append(f"{len(tensors)} parameter/buffer tensor(s) ({_shown(tensors)})")
    message = (f"Training diverged in epoch {epoch + 1}: {' and '.join(bad)} (not finite) with lr {config.lr} "
               f"and optimizer {config.optimizer}; the run stopped and {kept}. Lower --lr (or change the "
               f"optimizer) and start a new run")
    if context.is_main:
        provenance.atomic_write_json(run_dir / DIVERGED_NAME, provenance.run_metadata(
            config.to_dict(), seed=config.seed, epoch=epoch + 1, message=message, metrics=row))
    raise TrainingDivergedError(message)
