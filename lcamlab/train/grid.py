"""The run sets behind the paper's WRN figures, built over as many sessions as it takes.

A figure of 000 compares momentum groups (digest section 1), and single runs
prove little (000 section 6: LCAM beats fixed momentum in about 80% of CIFAR-10
runs and 50% of CIFAR-100 runs), so each group is trained with several seeds:

======  ===========  ==========  ==================================================
figure  datasets     schedule    momentum groups (below, above)
======  ===========  ==========  ==================================================
fig3    CIFAR-10     step        (0.9, 0.9), (0.95, 0.95), (0.95, 0.9), (0.9, 0.95)
fig4    CIFAR-100    step        the same four groups
fig5    both         lcam-exp    fixed (0.9, 0.9) vs LCAM: (0.9, 0.95) on CIFAR-10,
                                 (0.93, 0.9) on CIFAR-100
======  ===========  ==========  ==================================================

The same protocol at laptop scale on Fashion-MNIST (:data:`RUN_SETS`; the small
CNN :class:`lcamlab.models.FMNet`, the schedules scaled to the epoch budget,
:mod:`lcamlab.train.schedules`):

===================  ================  ==================================================
run set              schedule          runs
===================  ================  ==================================================
``fig3-fmnist``      step-scaled       the four groups of Figures 3/4
``fig5-fmnist``      lcam-exp-scaled   fixed (0.9, 0.9), LCAM (0.9, 0.95) and (0.95, 0.9)
``controls-fmnist``  lcam-exp-scaled   the shuffled and mean-matched controls of the
                                       fig5-fmnist LCAM (0.9, 0.95) run of the same seed
``fmnist``           both              all three, interleaved seed by seed (references first)
===================  ================  ==================================================

A control run (``config.control``) is SGD whose momentum comes from its LCAM
reference run of the same seed (same initialisation, same mini-batches):
``shuffled`` draws below/above independently per step at the reference's
realised below-fraction of each epoch (:func:`lcamlab.train.runner.control_schedule`), ``matched``
uses fixed momentum at the reference's realised mean momentum. Its config
records the reference run (``control_reference``) and the values it used
(``control_values``); until the reference is finished the control is planned
without values and :func:`run_grid` fills them in just before training it.

Every run is LCAM (an equal pair is exactly SGD with that fixed momentum, and
LCAM still logs the below/above phase fractions). Runs are named
deterministically (``fig3-cifar10-m0.9-0.95-s0``), so :func:`run_grid` can skip
finished runs, resume unfinished ones and train missing ones, in any session,
on any GPU. A run folder whose stored configuration differs from the requested
one is reported and never mixed into the figure.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lcamlab.train.config import LOCATION_FIELDS, TrainConfig, config_differences
from lcamlab.train.groups import FIGURES, LCAM_FINAL_PAIRS, STEP_GROUPS
from lcamlab.train.runs import CONFIG_NAME, DIVERGED_NAME, epochs_done, run_state

__all__ = [
    "FIGURES",
    "PAPER_GROUPS",
    "FIGURE_DATASETS",
    "FIGURE_SCHEDULES",
    "RUN_SETS",
    "FMNIST_DEFAULTS",
    "run_set_names",
    "control_values_from",
    "resolve_control",
    "figure_groups",
    "figure_configs",
    "run_id_for",
    "run_state",
    "grid_status",
    "grid_conflicts",
    "refuse_conflicts",
    "run_grid",
    "grid_command",
    "GridConflictError",
]

# 000 Figures 3/4: black, blue, green, red (digest section 1; lcamlab.train.groups).
PAPER_GROUPS: dict[str, Any] = {
    "fig3": list(STEP_GROUPS),
    "fig4": list(STEP_GROUPS),
    # 000 Figure 5 ("final training"): fixed 0.9 against the dataset's LCAM pair.
    "fig5": {dataset: [(0.9, 0.9), pair] for dataset, pair in LCAM_FINAL_PAIRS.items()},
}
FIGURE_DATASETS = {"fig3": ("cifar10",), "fig4": ("cifar100",), "fig5": ("cifar10", "cifar100")}
FIGURE_SCHEDULES = {"fig3": "step", "fig4": "step", "fig5": "lcam-exp"}

# Fields that define the run set itself: set by the figure and the seeds, not by overrides.
_FIXED_BY_FIGURE = ("momentum", "seed", "figure", "run_id", "optimizer", "dataset", "control",
                    "control_reference", "control_values")

#: The Fashion-MNIST protocol's defaults, sized to fit the whole 72-run grid (8 seeds) in about an hour
#: on one CPU core (it took 42 minutes; notebooks 03/04 give the measurements); every one can be
#: overridden (``--epochs``, ``--train-subset``, ...).
FMNIST_DEFAULTS: dict[str, Any] = {
    "arch": "fmnet", "epochs": 12, "train_subset": 8000, "test_subset": 5000, "batch_size": 128, "lr": 0.1,
    "weight_decay": 5e-4, "runs_dir": "data/runs-fmnist", "channels_last": True,
}

#: The laptop-scale run sets: name -> figure, dataset, schedule, momentum groups, controls.
#: ``controls`` lists (control, reference group): each control of each LCAM reference.
RUN_SETS: dict[str, dict[str, Any]] = {
    "fig3-fmnist": {"figure": "fig3", "dataset": "fashion-mnist", "schedule": "step-scaled",
                    "groups": list(STEP_GROUPS), "controls": []},
    "fig5-fmnist": {"figure": "fig5", "dataset": "fashion-mnist", "schedule": "lcam-exp-scaled",
                    "groups": [(0.9, 0.9), (0.9, 0.95), (0.95, 0.9)], "controls": []},
    "controls-fmnist": {"figure": "fig5", "dataset": "fashion-mnist", "schedule": "lcam-exp-scaled",
                        "groups": [], "controls": [("shuffled", (0.9, 0.95)), ("matched", (0.9, 0.95))]},
}
# "fmnist": every run set above, seed by seed, each control after its reference.
_COMBINED = {"fmnist": ("fig5-fmnist", "controls-fmnist", "fig3-fmnist")}


def run_set_names() -> tuple[str, ...]:
    """Every name ``lcamlab grid`` accepts: the paper's figures and the Fashion-MNIST run sets."""
    return (*FIGURES, *RUN_SETS, *_COMBINED)


class GridConflictError(FileExistsError):
    """Run folders exist whose stored configuration differs from the requested one."""


def _check_figure(figure: str) -> None:
    if figure not in FIGURES and figure not in RUN_SETS and figure not in _COMBINED:
        raise ValueError(f"Invalid figure: {figure!r} (choose one of {', '.join(run_set_names())})")


# ----------------------------------------------------------------------------- controls


def control_values_from(rows: Sequence[dict[str, Any]], control: str, pair: tuple[float, float],
                        epochs: int) -> tuple[float, ...]:
    r"""The values a control takes from its reference run's ``metrics.jsonl`` rows.

    ``shuffled``: the per-epoch below-fractions :math:`p_e` (``phase_below``); ``matched``: the
    realised mean momentum :math:`\bar\beta = \frac1E\sum_e \big(p_e\,\beta_\text{below} +
    (1 - p_e)\,\beta_\text{above}\big)` (every epoch has the same number of steps).
    """
    fractions = [row.get("phase_below") for row in rows[:epochs]]
    if len(fractions) < epochs or any(p is None or not (0.0 <= p <= 1.0) for p in fractions):
        raise ValueError(f"Invalid reference run for a {control} control: {len(fractions)} epochs with a "
                         f"below-fraction, need {epochs} (is the reference an LCAM run, and finished?)")
    if control == "shuffled":
        return tuple(float(p) for p in fractions)
    below, above = pair
    return (sum(p * below + (1.0 - p) * above for p in fractions) / len(fractions),)


def resolve_control(config: TrainConfig) -> TrainConfig:
    """``config`` with ``control_values`` read from its finished reference run, or unchanged when the
    reference is not finished yet (or the values are already there)."""
    if config.control is None or config.control_values is not None or config.control_reference is None:
        return config
    from lcamlab.train.runs import read_run

    reference = Path(config.runs_dir) / config.control_reference
    if run_state(reference) != "finished":
        return config
    rows = read_run(reference).metrics.to_dict("records")
    values = control_values_from(rows, config.control, tuple(config.momentum), config.epochs)
    return config.replace(control_values=list(values))


def _run_set_configs(name: str, seed_values: list[int], overrides: dict[str, Any]) -> list[TrainConfig]:
    spec = RUN_SETS[name]
    base = {**FMNIST_DEFAULTS, "schedule": spec["schedule"], "optimizer": "lcam", "figure": spec["figure"]}
    base.update(overrides)
    configs = []
    for seed in seed_values:
        for pair in spec["groups"]:
            config = TrainConfig.from_overrides(base, dataset=spec["dataset"], momentum=pair, seed=seed)
            configs.append(config.replace(run_id=run_id_for(config)))
        for control, pair in spec["controls"]:
            reference = TrainConfig.from_overrides(base, dataset=spec["dataset"], momentum=pair, seed=seed)
            config = reference.replace(control=control, control_reference=run_id_for(reference))
            config = resolve_control(config.replace(run_id=run_id_for(config)))
            configs.append(config)
    return configs


def figure_groups(figure: str, dataset: str) -> list[tuple[float, float]]:
    """The momentum pairs (below, above) of a figure's panel for ``dataset``."""
    _check_figure(figure)
    groups = PAPER_GROUPS[figure]
    if isinstance(groups, dict):
        if dataset not in groups:
            raise ValueError(f"Invalid dataset for {figure}: {dataset!r} (choose one of {', '.join(groups)})")
        return list(groups[dataset])
    return list(groups)


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"Invalid seeds: {seeds!r} (a number of seeds N > 0, or a list of seeds)")
    if isinstance(seeds, int):
        if seeds <= 0:
            raise ValueError(f"Invalid seeds: {seeds} (the number of seeds must be > 0)")
        seeds = range(seeds)
    if isinstance(seeds, range) and seeds and seeds[-1] >= _SEED_END:
        raise ValueError(f"Invalid seeds: {seeds.start}..{seeds[-1]} (a seed is at most 2**63-1, as for "
                         f"lcamlab train)")
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values):
        raise ValueError(f"Invalid seeds: {seeds!r} (a non-empty list of integers >= 0)")
    if len(set(values)) != len(values):
        raise ValueError(f"Invalid seeds: {seeds!r} (repeated seed)")
    return values


# Seeds are integers in 0..2**63-1 everywhere (lcamlab.cli.check_seed).
_SEED_END = 2**63


def _available_memory() -> int:
    """Bytes this machine can still give a process: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the
    free physical pages (``sysconf``)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_plan_fits(figure: str, dataset: str | None, seeds: int | range, overrides: dict[str, Any]) -> None:
    """Refuse a grid whose plan cannot be held in memory, before planning it.

    The plan holds one :class:`TrainConfig` per run, and every seed brings the same runs, so the
    plan of ``N`` seeds takes ``N`` times the bytes of one seed's plan, measured here with
    :mod:`tracemalloc` (a few runs, milliseconds); it must fit in :func:`_available_memory`.
    ``lcamlab grid fig3 --seeds 1000000000`` would need terabytes: refused in one line, instead
    of growing until the kernel kills the process.
    """
    import tracemalloc

    count = seeds if isinstance(seeds, int) else len(seeds)
    first = 0 if isinstance(seeds, int) else seeds.start
    if count <= 1:  # nothing to multiply (and _seed_list says what is wrong with 0 or less)
        return
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        one_seed = figure_configs(figure, dataset=dataset, seeds=[first], **overrides)
        per_seed = tracemalloc.get_traced_memory()[0] - before
    finally:
        if started:
            tracemalloc.stop()
    needed, available = per_seed * count, _available_memory()
    if needed > available:
        raise ValueError(
            f"Invalid --seeds {count}: the {figure} grid would plan {count * len(one_seed)} runs, about "
            f"{needed / 1e9:.1f} GB for the plan alone, and this machine has {available / 1e9:.1f} GB available "
            f"(at most {available // max(per_seed, 1)} seeds here); choose fewer seeds (a figure needs a few)")


def figure_configs(figure: str, *, dataset: str | None = None, seeds: int | Sequence[int] = 1,
                   **overrides: Any) -> list[TrainConfig]:
    """The training configurations of a paper figure.

    Args:
        figure: ``"fig3"``, ``"fig4"`` or ``"fig5"``.
        dataset: restrict to one dataset (default: the figure's; fig5 has both).
        seeds: ``N`` for seeds ``0..N-1``, a ``range`` of seeds, or an explicit list of seeds;
            a number or range whose plan would not fit in this machine's memory is refused
            before anything is planned (:func:`_check_plan_fits`).
        **overrides: other :class:`TrainConfig` fields for every run (``epochs``,
            ``depth``, ``runs_dir``, ...); momentum, seed, optimizer, figure and
            run id are the figure's.

    Returns:
        One validated config per (dataset, momentum group, seed), in that order,
        each with its deterministic ``run_id``.
    """
    _check_figure(figure)
    if isinstance(seeds, (int, range)) and not isinstance(seeds, bool):
        _check_plan_fits(figure, dataset, seeds, overrides)
    overrides = {key.replace("-", "_"): value for key, value in overrides.items()}
    fixed = sorted(set(overrides) & set(_FIXED_BY_FIGURE))
    if fixed:
        raise ValueError(
            f"Cannot override {', '.join(fixed)} in a figure grid: the figure defines the momentum groups, "
            f"the optimizer and the run names; choose the seeds with seeds= (--seeds) and the dataset with "
            f"dataset= (--dataset)"
        )
    if figure in RUN_SETS or figure in _COMBINED:
        if dataset is not None and dataset != "fashion-mnist":
            raise ValueError(f"Invalid dataset for {figure}: {dataset!r} (the run set is fashion-mnist)")
        seed_values = _seed_list(seeds)
        names = _COMBINED.get(figure, (figure,))
        # seed by seed, so a grid cut short leaves complete seeds (paired comparisons) behind
        return [config for seed in seed_values for name in names
                for config in _run_set_configs(name, [seed], overrides)]
    datasets = FIGURE_DATASETS[figure] if dataset is None else (dataset,)
    seed_values = _seed_list(seeds)
    base = {"schedule": FIGURE_SCHEDULES[figure], "epochs": 150, "optimizer": "lcam", "figure": figure}
    base.update(overrides)
    configs = []
    for name in datasets:
        for pair in figure_groups(figure, name):
            for seed in seed_values:
                config = TrainConfig.from_overrides(base, dataset=name, momentum=pair, seed=seed)
                configs.append(config.replace(run_id=run_id_for(config)))
    return configs


def run_id_for(config: TrainConfig) -> str:
    """The deterministic run folder name, e.g. ``fig3-cifar10-m0.9-0.95-s0``."""
    from lcamlab.train.runner import default_run_id

    return default_run_id(config)


def _with_runs_dir(configs: Iterable[TrainConfig], runs_dir: str | os.PathLike | None) -> list[TrainConfig]:
    out = []
    for config in configs:
        changes: dict[str, Any] = {}
        if runs_dir is not None:
            changes["runs_dir"] = os.fspath(runs_dir)
        if config.run_id is None:
            changes["run_id"] = run_id_for(config)
        out.append(config.replace(**changes) if changes else config)
    return out


def _stored_config(run_dir: Path) -> dict[str, Any] | None:
    import json

    path = run_dir / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text()).get("config", {}))
    except (OSError, ValueError):
        return None


def grid_conflicts(configs: Iterable[TrainConfig], runs_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Run folders that exist but do not hold the requested run: ``{run_dir: what differs}``."""
    conflicts = {}
    for config in _with_runs_dir(configs, runs_dir):
        run_dir = Path(config.runs_dir) / config.run_id
        if not run_dir.exists():
            continue
        stored = _stored_config(run_dir)
        if stored is None:
            conflicts[str(run_dir)] = "the folder exists but is not a run (no readable config.json)"
            continue
        requested = config.to_dict()
        if config.control is not None and config.control_values is None:
            requested.pop("control_values")  # planned: the values come from the reference when it is done
            stored = {k: v for k, v in stored.items() if k != "control_values"}
        differences = config_differences(stored, requested)
        if differences:
            conflicts[str(run_dir)] = ", ".join(
                f"{name}: stored {old!r} vs requested {new!r}" for name, (old, new) in differences.items())
    return conflicts


def grid_status(configs: Iterable[TrainConfig], runs_dir: str | os.PathLike | None = None):
    """One row per requested run: where it stands.

    Returns:
        A pandas DataFrame with columns ``run_id, dataset, momentum_below,
        momentum_above, seed, state, epochs_done, epochs, run_dir, conflict``;
        ``state`` is ``missing``, ``partial``, ``finished``, ``diverged`` or
        ``conflict`` (the folder holds a different configuration, described in
        ``conflict``).
    """
    import pandas as pd

    configs = _with_runs_dir(configs, runs_dir)
    conflicts = grid_conflicts(configs)
    rows = []
    for config in configs:
        run_dir = Path(config.runs_dir) / config.run_id
        state = run_state(run_dir)
        conflict = conflicts.get(str(run_dir), "")
        rows.append({
            "run_id": config.run_id,
            "dataset": config.dataset,
            "momentum_below": config.momentum[0],
            "momentum_above": config.momentum[1],
            "seed": config.seed,
            "state": "conflict" if conflict else state,
            "epochs_done": epochs_done(run_dir) if state != "missing" else 0,
            "epochs": config.epochs,
            "run_dir": str(run_dir),
            "conflict": conflict,
        })
    return pd.DataFrame(rows, columns=["run_id", "dataset", "momentum_below", "momentum_above", "seed",
                                       "state", "epochs_done", "epochs", "run_dir", "conflict"])


def refuse_conflicts(configs: Iterable[TrainConfig], runs_dir: str | os.PathLike | None = None) -> list[TrainConfig]:
    """``configs`` with their run folder set (``runs_dir`` overrides), after checking no folder holds
    another configuration (:func:`grid_conflicts`).

    Raises:
        GridConflictError: one line listing up to three conflicting folders and the fix.
    """
    configs = _with_runs_dir(configs, runs_dir)
    conflicts = grid_conflicts(configs)
    if conflicts:
        listing = "; ".join(f"{path} ({why})" for path, why in list(conflicts.items())[:3])
        more = f"; and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        raise GridConflictError(
            f"{len(conflicts)} run folder(s) hold a different configuration than requested, so they are not "
            f"mixed into this grid: {listing}{more}. Use the same options as the stored runs, or another "
            f"--runs-dir for this configuration"
        )
    return configs


def run_grid(configs: Iterable[TrainConfig], runs_dir: str | os.PathLike | None = None, *,
             progress: str = "auto", on_epoch_end: Callable | None = None,
             log: Callable[[str], None] | None = print) -> list[Path]:
    """Complete a run set: skip finished runs, resume partial ones, train missing ones.

    Conflicts are checked for every run before any training starts.

    Args:
        configs: the runs (e.g. :func:`figure_configs`).
        runs_dir: overrides every config's ``runs_dir``.
        progress, on_epoch_end: as for :func:`lcamlab.train.runner.train`.
        log: where the one-line status messages go (``None``: silent).

    Returns:
        The run folders, in the order of ``configs``.

    Raises:
        GridConflictError: a run folder holds another configuration (nothing is trained).
    """
    from lcamlab.train.runner import RunBusyError, TrainingDivergedError, resume, train

    say = log or (lambda _message: None)
    configs = refuse_conflicts(configs, runs_dir)
    run_dirs = []
    for index, config in enumerate(configs, start=1):
        run_dir = Path(config.runs_dir) / config.run_id
        run_dirs.append(run_dir)
        state = run_state(run_dir)
        prefix = f"[{index}/{len(configs)}] {config.run_id}:"
        try:
            if state == "finished":
                say(f"{prefix} finished, skipped")
            elif state == "diverged":
                say(f"{prefix} diverged earlier (see {run_dir / DIVERGED_NAME}), skipped")
            elif state == "partial":
                say(f"{prefix} resuming after epoch {epochs_done(run_dir)}")
                location = {k: getattr(config, k) for k in LOCATION_FIELDS - {"runs_dir", "run_id"}}
                resume(run_dir, progress=progress, on_epoch_end=on_epoch_end, **location)
            elif config.control is not None and config.control_values is None:
                config = resolve_control(config)
                if config.control_values is None:
                    say(f"{prefix} skipped: its reference run {config.control_reference} is not finished "
                        f"(train it first; it comes earlier in this grid)")
                    continue
                say(f"{prefix} training (values from {config.control_reference})")
                train(config, progress=progress, on_epoch_end=on_epoch_end)
            else:
                say(f"{prefix} training")
                train(config, progress=progress, on_epoch_end=on_epoch_end)
        except RunBusyError as error:
            say(f"{prefix} skipped: {error}")
        except TrainingDivergedError as error:
            say(f"{prefix} {error}")
    return run_dirs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def grid_command(figure: str, *, dataset: str | None = None, seeds: int | Sequence[int] = 1,
                 runs_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                 **overrides: Any) -> str:
    """The exact ``lcamlab grid`` shell command that produces a figure's runs.

    The arguments are those of :func:`figure_configs` (checked by building the
    configs); the command reproduces the same run set, e.g.
    ``lcamlab grid fig3 --seeds 3 --epochs 150``.
    """
    figure_configs(figure, dataset=dataset, seeds=seeds, runs_dir=runs_dir if runs_dir is not None else "data/runs",
                   data_dir=None if data_dir is None else os.fspath(data_dir), **overrides)
    parts = ["lcamlab", "grid", figure]
    seed_values = _seed_list(seeds)
    if seed_values == list(range(seed_values[0], seed_values[0] + len(seed_values))):
        parts += ["--seeds", str(len(seed_values))]
        if seed_values[0] != 0:
            parts += ["--first-seed", str(seed_values[0])]
    else:
        parts += ["--seed-list", *map(str, seed_values)]
    if dataset is not None:
        parts += ["--dataset", dataset]
    if runs_dir is not None:
        parts += ["--runs-dir", os.fspath(runs_dir)]
    if data_dir is not None:
        parts += ["--data-dir", os.fspath(data_dir)]
    for key, value in overrides.items():
        name = key.replace("-", "_")
        if value is None:
            continue  # the default
        if isinstance(value, bool):
            parts.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, float):
            parts += [_flag(name), repr(value)]
        else:
            parts += [_flag(name), str(value)]
    return shlex.join(parts)
