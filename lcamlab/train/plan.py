"""Planning and completing the run sets behind the paper's WRN figures, for the notebooks.

:func:`plan_grid` builds one figure panel's run set (:mod:`lcamlab.train.grid`)
and looks at what exists, training nothing; :func:`describe_plan` says in a few
lines what is finished, partial or missing, with the exact ``lcamlab grid``
command that trains the rest; :func:`complete_grid` trains what is missing.

:func:`prepare_panels` is what notebooks 03 (000 Figures 3/4) and 04 (Figure 5,
Table 1) call: it maps the notebook's datasets to their panels
(:func:`panel_figures`), optionally writes synthetic CIFAR-format archives
(quick mode), plans every panel, optionally trains the missing runs, and reads
the runs back into one tidy frame (:func:`lcamlab.train.runs.runs_frame`)
for :mod:`lcamlab.reports`.

:func:`prepare_fmnist` does the same for the Fashion-MNIST run sets
(:data:`lcamlab.train.grid.RUN_SETS`): the notebooks' panels of our own runs
at laptop scale, with LCAM's controls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab.data import DATASET_TITLES, cifar_sources, default_data_dir, synthetic
from lcamlab.paths import REPO_ROOT
from lcamlab.train import grid
from lcamlab.train.config import TrainConfig
from lcamlab.train.groups import FIGURES
from lcamlab.train.runs import runs_frame

__all__ = [
    "GridPlan",
    "plan_grid",
    "complete_grid",
    "describe_plan",
    "panel_figures",
    "PanelRuns",
    "prepare_panels",
    "FmnistRuns",
    "prepare_fmnist",
]


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
    try:
        return str(resolved.relative_to(REPO_ROOT))
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


def complete_grid(plan: GridPlan, *, progress: str = "none",
                  log: Callable[[str], None] | None = print) -> GridPlan:
    """Train what ``plan`` lacks through :func:`lcamlab.train.grid.run_grid` (finished runs are
    skipped, partial ones resumed), then return the refreshed plan.

    Args:
        plan: :func:`plan_grid`'s result.
        progress: as for :func:`lcamlab.train.runner.train` (``"none"``: no per-epoch output).
        log: where :func:`~lcamlab.train.grid.run_grid`'s one-line status messages go (``None``: silent).
    """
    grid.run_grid(plan.configs, plan.runs_dir, progress=progress, log=log)
    status = grid.grid_status(plan.configs, plan.runs_dir)
    return GridPlan(plan.figure, plan.dataset, plan.configs, status, plan.command, plan.runs_dir)


def _missing_cifar(plan: GridPlan) -> str | None:
    """A hint when the dataset the runs need is not where the trainer will look."""
    if not plan.configs or plan.configs[0].download:
        return None
    data_dir = plan.configs[0].data_dir
    folder = Path(data_dir) if data_dir else default_data_dir()
    if any(path.exists() for path in cifar_sources(plan.dataset, folder)):
        return None
    return (f"  ({DATASET_TITLES.get(plan.dataset, plan.dataset)} is not in {folder}: add --download to fetch the "
            f"official archive, or --data-dir DIR where it is)")


def describe_plan(plan: GridPlan) -> str:
    """A few lines for a notebook: how many runs exist, which are missing, and the command."""
    counts = plan.status.state.value_counts()
    summary = ", ".join(f"{counts[state]} {state}" for state in
                        ("finished", "partial", "missing", "diverged", "conflict") if state in counts)
    lines = [f"{plan.figure} {DATASET_TITLES.get(plan.dataset, plan.dataset)}: {len(plan.status)} runs "
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


# ----------------------------------------------------------------------------- the notebooks' run sets


def panel_figures(figures: Sequence[str], datasets: Iterable[str]) -> dict[str, str]:
    """The panel of each dataset: ``{dataset: figure}`` among ``figures``.

    ``panel_figures(("fig3", "fig4"), ["cifar10", "cifar100"])`` is
    ``{"cifar10": "fig3", "cifar100": "fig4"}`` (000 Figure 3: CIFAR-10, Figure 4:
    CIFAR-100); ``panel_figures(("fig5",), ...)`` gives ``"fig5"`` for both, as
    Figure 5 has one panel per dataset (:data:`lcamlab.train.grid.FIGURE_DATASETS`).

    Raises:
        ValueError: a figure that is not one of 000's, or a dataset none of ``figures`` shows.
    """
    available: dict[str, str] = {}
    for figure in figures:
        if figure not in FIGURES:
            raise ValueError(f"Invalid figure: {figure!r} (choose one of {', '.join(FIGURES)})")
        for dataset in grid.FIGURE_DATASETS[figure]:
            available.setdefault(dataset, figure)
    datasets = list(datasets)
    unknown = [d for d in datasets if d not in available]
    if unknown:
        raise ValueError(f"Invalid datasets: {unknown} (choose from {sorted(available)})")
    return {dataset: available[dataset] for dataset in datasets}


@dataclass
class PanelRuns:
    """The runs of a notebook's panels: the plans, the runs read back, and what was printed.

    Attributes:
        panels: ``{dataset: figure}`` (:func:`panel_figures`).
        plans: ``{dataset: GridPlan}``, refreshed after training.
        frame: :func:`lcamlab.train.runs.runs_frame` of every run with a logged epoch.
        runs_dir: the runs folder.
        seeds: the seeds per group, as given (``N`` or a list).
        settings: the training overrides every run got (``epochs``, ``depth``, ...).
        synthetic_cifar: the runs train on synthetic CIFAR-format archives (quick mode).
        text: every line :func:`prepare_panels` printed.
    """

    panels: dict[str, str]
    plans: dict[str, GridPlan]
    frame: pd.DataFrame
    runs_dir: Path
    seeds: int | Sequence[int]
    settings: dict[str, Any]
    synthetic_cifar: bool
    text: str

    @property
    def run_dirs(self) -> list[Path]:
        """Every panel's run folders with at least one logged epoch."""
        return [run_dir for plan in self.plans.values() for run_dir in plan.run_dirs]

    def setting(self, name: str) -> Any:
        """A training field of these runs: the override given, else the trainer's default."""
        return self.settings[name] if name in self.settings else getattr(TrainConfig(), name)

    @property
    def provenance(self) -> dict[str, Any]:
        """What produced these runs, for the provenance and cache key of tables built from them."""
        return {"runs_dir": str(self.runs_dir), "seeds": self.seeds, "epochs": self.setting("epochs"),
                "depth": self.setting("depth"), "widen": self.setting("widen"),
                "synthetic_cifar": self.synthetic_cifar}


def prepare_panels(
    panels: dict[str, str],
    *,
    seeds: int | Sequence[int],
    data_dir: str | os.PathLike,
    runs_dir: str | os.PathLike | None = None,
    cifar_dir: str | os.PathLike | None = None,
    run: bool = False,
    synthetic_cifar: bool = False,
    synthetic_train_images: int = 512,
    synthetic_test_images: int = 256,
    progress: str = "none",
    log: Callable[[str], None] | None = print,
    **train_overrides: Any,
) -> PanelRuns:
    """Plan every panel's runs, train the missing ones if asked, and read the runs back.

    For each ``(dataset, figure)`` of ``panels``: :func:`plan_grid`, then with
    ``run`` :func:`complete_grid`, then :func:`describe_plan`; finally every usable
    run is read into one frame. Each line is passed to ``log`` as soon as it is known.

    Args:
        panels: ``{dataset: figure}`` (:func:`panel_figures`).
        seeds: seeds per momentum group: ``N`` (0..N-1) or a list.
        data_dir: the results folder (runs default to ``<data_dir>/runs``; synthetic archives go here).
        runs_dir: the runs folder (None: ``<data_dir>/runs``).
        cifar_dir: the CIFAR folder (None: the trainer's default, :func:`lcamlab.data.default_data_dir`).
        run: train the missing runs and resume the partial ones.
        synthetic_cifar: train on small synthetic CIFAR-format archives written under ``data_dir``
            (:func:`lcamlab.data.synthetic_cifar`) instead of CIFAR.
        synthetic_train_images, synthetic_test_images: the synthetic archives' sizes.
        progress: per-epoch output while training (as for :func:`lcamlab.train.runner.train`).
        log: where each printed line goes (``None``: silent; the lines are in :attr:`PanelRuns.text`).
        **train_overrides: training fields for every run (``epochs``, ``depth``, ``widen``, ...).
    Returns:
        A :class:`PanelRuns`.
    """
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if log is not None:
            log(text)

    data_path = Path(data_dir).resolve()
    runs_path = Path(runs_dir).resolve() if runs_dir else data_path / "runs"
    cifar_path, data_md5 = cifar_dir, {}
    if synthetic_cifar:
        cifar_path, data_md5 = synthetic.synthetic_cifar(data_path, list(panels), n_train=synthetic_train_images,
                                                         n_test=synthetic_test_images)
        say(f"Synthetic CIFAR-format archives (not CIFAR: numbers below only exercise the pipeline): {cifar_path}")
    plans = {}
    for dataset, figure in panels.items():
        plan = plan_grid(figure, dataset=dataset, seeds=seeds, runs_dir=runs_path, data_dir=cifar_path,
                         data_md5=data_md5.get(dataset), **train_overrides)
        if run and len(plan.incomplete):
            plan = complete_grid(plan, progress=progress, log=say)
        plans[dataset] = plan
        say(describe_plan(plan) + "\n")
    frame = runs_frame([run_dir for plan in plans.values() for run_dir in plan.run_dirs])
    result = PanelRuns(panels=dict(panels), plans=plans, frame=frame, runs_dir=runs_path, seeds=seeds,
                       settings=dict(train_overrides), synthetic_cifar=bool(synthetic_cifar), text="")
    say(f"Runs read: {frame.run_id.nunique()} ({len(frame)} epoch rows); "
        f"WRN-{result.setting('depth')}-{result.setting('widen')}, {result.setting('epochs')} epochs planned")
    result.text = "\n".join(lines)
    return result


# ----------------------------------------------------------------------------- Fashion-MNIST


@dataclass
class FmnistRuns:
    """The Fashion-MNIST runs of a notebook: the run sets' status, the runs read back, what was printed.

    Attributes:
        run_sets: the :data:`lcamlab.train.grid.RUN_SETS` names, in training order.
        configs: every run's configuration (controls after their references).
        status: :func:`lcamlab.train.grid.grid_status` of ``configs``.
        frame: :func:`lcamlab.reports.fmnist.fmnist_frame` of every run with a logged epoch.
        runs_dir: the runs folder.
        settings: the training fields every run shares (epochs, subsets, model, ...).
        synthetic: the runs train on generated Fashion-MNIST-format files (quick mode).
        command: the ``lcamlab grid`` command that trains what is missing.
        text: every line :func:`prepare_fmnist` printed.
    """

    run_sets: tuple[str, ...]
    configs: list[Any]
    status: pd.DataFrame
    frame: pd.DataFrame
    runs_dir: Path
    settings: dict[str, Any]
    synthetic: bool
    command: str
    text: str

    @property
    def setting_text(self) -> str:
        """One line on how the runs were made, for tables and the claims ledger."""
        s = self.settings
        seeds = int(self.frame.seed.nunique()) if len(self.frame) else 0
        data = "generated Fashion-MNIST-format data (quick mode)" if self.synthetic else "Fashion-MNIST"
        model = "FMNet CNN" if s["arch"] == "fmnet" else "Wide-ResNet"
        return (f"{data}, {model}, {s['epochs']} epochs, {s['train_subset'] or 60000} training and "
                f"{s['test_subset'] or 10000} test images, batch {s['batch_size']}, {seeds} seeds")


def prepare_fmnist(
    run_sets: Sequence[str],
    *,
    seeds: int | Sequence[int],
    data_dir: str | os.PathLike,
    runs_dir: str | os.PathLike | None = None,
    fashion_dir: str | os.PathLike | None = None,
    run: bool = False,
    synthetic: bool = False,
    synthetic_train_images: int = 512,
    synthetic_test_images: int = 256,
    progress: str = "none",
    log: Callable[[str], None] | None = print,
    **train_overrides: Any,
) -> FmnistRuns:
    """Plan the Fashion-MNIST run sets, train the missing runs if asked, and read the runs back.

    Args:
        run_sets: names from :data:`lcamlab.train.grid.RUN_SETS` (``fig3-fmnist``, ``fig5-fmnist``,
            ``controls-fmnist``); controls come after the runs they reference.
        seeds: seeds per series: ``N`` (0..N-1) or a list.
        data_dir: the results folder (generated data go here in quick mode).
        runs_dir: the runs folder (None: :data:`lcamlab.train.grid.FMNIST_DEFAULTS`' ``data/runs-fmnist``
            of the repository; in quick mode ``<data_dir>/runs-fmnist``).
        fashion_dir: the Fashion-MNIST files (None: :func:`lcamlab.data.fashion_mnist_dir`).
        run: train missing runs and resume partial ones (seed by seed, references first).
        synthetic: generate small Fashion-MNIST-format IDX files under ``data_dir`` and train on them.
        synthetic_train_images, synthetic_test_images: their sizes (they become the subsets).
        progress: per-epoch output while training.
        log: where each printed line goes (``None``: silent).
        **train_overrides: training fields for every run (``epochs``, ``train_subset``, ...); a value
            of None keeps the run set's default (:data:`lcamlab.train.grid.FMNIST_DEFAULTS`).
    """
    from lcamlab.data.fashion_mnist import synthetic_fashion_mnist
    from lcamlab.reports.fmnist import fmnist_frame

    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if log is not None:
            log(text)

    for name in run_sets:
        if name not in grid.RUN_SETS:
            raise ValueError(f"Invalid run set: {name!r} (choose from {', '.join(grid.RUN_SETS)})")
    data_path = Path(data_dir).resolve()
    overrides = {k: v for k, v in train_overrides.items() if v is not None}  # None: the run set's default
    if synthetic:
        folder, digest = synthetic_fashion_mnist(data_path, n_train=synthetic_train_images,
                                                 n_test=synthetic_test_images)
        overrides.update(data_dir=str(folder), data_md5=digest, train_subset=synthetic_train_images,
                         test_subset=synthetic_test_images)
        say(f"Generated Fashion-MNIST-format files (not Fashion-MNIST: numbers below only exercise the "
            f"pipeline): {folder}")
    elif fashion_dir is not None:
        overrides["data_dir"] = str(Path(fashion_dir).resolve())
    if runs_dir is not None:
        runs_path = Path(runs_dir).resolve()
    elif synthetic:
        runs_path = data_path / "runs-fmnist"
    else:
        runs_path = (REPO_ROOT / grid.FMNIST_DEFAULTS["runs_dir"]).resolve()
    overrides["runs_dir"] = str(runs_path)
    seed_values = list(range(seeds)) if isinstance(seeds, int) else list(seeds)

    def configs_now() -> list[Any]:
        return [c for seed in seed_values for name in run_sets
                for c in grid.figure_configs(name, seeds=[seed], **overrides)]

    configs = configs_now()
    if run:
        grid.run_grid(configs, runs_path, progress=progress, log=say)
        configs = configs_now()  # the controls now carry the values of their references
    status = grid.grid_status(configs, runs_path)
    counts = status.state.value_counts()
    say(f"{' + '.join(run_sets)}: {len(status)} runs (" + ", ".join(
        f"{counts[s]} {s}" for s in ("finished", "partial", "missing", "diverged", "conflict") if s in counts)
        + f") in {_display_path(runs_path)}")
    shown = {k: v for k, v in overrides.items() if k not in ("runs_dir", "data_dir", "data_md5")
             and grid.FMNIST_DEFAULTS.get(k, object()) != v}
    parts = ["lcamlab", "grid", "fmnist" if set(run_sets) == set(grid.RUN_SETS) else run_sets[0],
             "--seeds", str(len(seed_values)), "--threads", "1"]
    for key, value in shown.items():
        parts += ["--" + key.replace("_", "-"), str(value)]
    command = " ".join(parts) + ("" if runs_path == (REPO_ROOT / grid.FMNIST_DEFAULTS["runs_dir"]).resolve()
                                 else f" --runs-dir {_display_path(runs_path)}")
    incomplete = status[status.state.isin(["missing", "partial"])]
    for row in incomplete.itertuples(index=False):
        say(f"  {row.state}: {row.run_id}")
    if len(incomplete):
        say(f"Train the missing runs (from the repository root) with:\n  {command}")
    usable = status[status.state.isin(["partial", "finished", "diverged"])]
    frame = fmnist_frame([Path(p) for p in usable.run_dir])
    settings = {key: getattr(configs[0], key) for key in ("arch", "epochs", "train_subset", "test_subset",
                                                           "batch_size", "lr", "weight_decay")} if configs else {}
    say(f"Runs read: {frame.run_id.nunique() if len(frame) else 0} ({len(frame)} epoch rows)")
    return FmnistRuns(run_sets=tuple(run_sets), configs=configs, status=status, frame=frame, runs_dir=runs_path,
                      settings=settings, synthetic=bool(synthetic), command=command, text="\n".join(lines))
