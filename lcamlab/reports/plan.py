"""Planning and completing the run sets behind the paper's WRN figures, for the notebooks.

:func:`plan_grid` builds one figure panel's run set (:mod:`lcamlab.train.grid`)
and looks at what exists, training nothing; :func:`describe_plan` says in a few
lines what is finished, partial or missing, with the exact ``lcamlab grid``
command that trains the rest; :func:`complete_grid` trains what is missing.

:func:`prepare_panels` is what notebooks 03 (the LCAM paper's Figures 3/4) and 04
(its Figure 5 and Table 1) call: it maps the notebook's datasets to their panels
(:func:`panel_figures`), optionally writes synthetic CIFAR-format archives
(quick mode), plans every panel, optionally trains the missing runs, and reads
the runs back into one tidy frame (:func:`lcamlab.train.runs.runs_frame`)
for the report functions of :mod:`lcamlab.reports`.

:func:`prepare_fmnist` does the same for the Fashion-MNIST run sets
(:data:`lcamlab.train.grid.RUN_SETS`): the notebooks' panels of our own runs
at laptop scale, with LCAM's controls.

**Where the data are looked for.** A notebook's ``data_dir`` decides, not the
folder lcamlab happens to be installed from (:func:`data_locations`):

* CIFAR: ``cifar_dir`` if given, else ``$LCAMLAB_DATA_DIR``, else ``<data_dir>/cifar``;
* Fashion-MNIST: ``fashion_dir`` if given, else ``$LCAMLAB_FASHION_MNIST_DIR``,
  else the system package's folder (``/usr/share/datasets/fashion-mnist``) when it
  holds the four files, else ``<data_dir>/fashion-mnist``. Its uint8 cache goes
  to ``<data_dir>/fashion-mnist/cache`` when the files sit in a read-only folder
  (the files are linked into ``<data_dir>/fashion-mnist``, which the runs then read);
* runs: ``runs_dir`` if given, else ``<data_dir>/runs`` (CIFAR) and
  ``<data_dir>/runs-fmnist`` (Fashion-MNIST; the committed logs when ``data_dir``
  is the repository's ``data/``).

The printed ``lcamlab grid`` commands name ``--data-dir`` / ``--runs-dir`` whenever
they differ from what the command line would use by itself.
"""

from __future__ import annotations

import os
import shlex
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab.data import DATASET_TITLES, cifar_sources, default_data_dir, synthetic
from lcamlab.paths import REPO_ROOT
from lcamlab.reports.fmnist import fmnist_frame
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
    "data_locations",
    "describe_locations",
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
    are dropped, so the printed command only names what differs from the paper's protocol.
    ``data_dir`` is given to every run; the command names it (``--data-dir``) only when it
    is not the folder ``lcamlab grid`` uses by itself (:func:`lcamlab.data.default_data_dir`).

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
    data_path = None
    if data_dir is not None and Path(data_dir).expanduser().resolve() != default_data_dir().expanduser().resolve():
        data_path = _display_path(data_dir)
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


#: :func:`describe_plan` names at most this many missing runs (then says how many more).
_LISTED_PER_STATE = 4


def describe_plan(plan: GridPlan) -> str:
    """A few lines for a notebook: how many runs exist, which are missing, and the command.

    Partial, diverged and conflicting runs are each named; missing ones up to
    ``_LISTED_PER_STATE`` (4), then counted: the command trains them all.
    """
    counts = plan.status.state.value_counts()
    summary = ", ".join(f"{counts[state]} {state}" for state in
                        ("finished", "partial", "missing", "diverged", "conflict") if state in counts)
    lines = [f"{plan.figure} {DATASET_TITLES.get(plan.dataset, plan.dataset)}: {len(plan.status)} runs "
             f"({summary}) in {plan.runs_dir}"]
    shown: dict[str, int] = {}
    for row in plan.status.itertuples(index=False):
        if row.state not in ("partial", "missing", "conflict", "diverged"):
            continue
        shown[row.state] = shown.get(row.state, 0) + 1
        if shown[row.state] > _LISTED_PER_STATE and row.state == "missing":
            continue  # the command below trains them all; the count above says how many
        if row.state == "partial":
            lines.append(f"  partial: {row.run_id} ({row.epochs_done}/{row.epochs} epochs)")
        else:
            why = f": {row.conflict}" if row.state == "conflict" else ""
            lines.append(f"  {row.state}: {row.run_id}{why}")
    if shown.get("missing", 0) > _LISTED_PER_STATE:
        lines.append(f"  ... and {shown['missing'] - _LISTED_PER_STATE} more missing")
    if len(plan.incomplete):
        lines.append("Train the missing runs (from the repository root) with:")
        lines.append(f"  {plan.command}")
        hint = _missing_cifar(plan)
        if hint:
            lines.append(textwrap.fill(hint.strip(), width=100, initial_indent="  ", subsequent_indent="   "))
    else:
        lines.append("Every run of this panel is finished.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the notebooks' run sets


def panel_figures(figures: Sequence[str], datasets: Iterable[str]) -> dict[str, str]:
    """The panel of each dataset: ``{dataset: figure}`` among ``figures``.

    ``panel_figures(("fig3", "fig4"), ["cifar10", "cifar100"])`` is
    ``{"cifar10": "fig3", "cifar100": "fig4"}`` (the LCAM paper's Figure 3: CIFAR-10,
    Figure 4: CIFAR-100); ``panel_figures(("fig5",), ...)`` gives ``"fig5"`` for both, as
    Figure 5 has one panel per dataset (:data:`lcamlab.train.grid.FIGURE_DATASETS`).

    Raises:
        ValueError: a figure that is not one of the paper's, or a dataset none of ``figures`` shows.
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
        cifar_dir: the CIFAR folder (None: ``$LCAMLAB_DATA_DIR``, else ``<data_dir>/cifar``:
            :func:`lcamlab.data.default_data_dir` of ``data_dir``).
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

    data_path = Path(data_dir).expanduser().resolve()
    runs_path = Path(runs_dir).expanduser().resolve() if runs_dir else data_path / "runs"
    cifar_path, data_md5 = data_locations(data_path, cifar_dir=cifar_dir)["cifar"], {}
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
        runs_dir: the runs folder (None: ``<data_dir>/runs-fmnist``; with the repository's ``data/``,
            the committed logs).
        fashion_dir: the Fashion-MNIST files (None: ``$LCAMLAB_FASHION_MNIST_DIR``, else the system
            package's folder, else ``<data_dir>/fashion-mnist``: :func:`data_locations`).
        run: train missing runs and resume partial ones (seed by seed, references first).
        synthetic: generate small Fashion-MNIST-format IDX files under ``data_dir`` and train on them.
        synthetic_train_images, synthetic_test_images: their sizes (they become the subsets).
        progress: per-epoch output while training.
        log: where each printed line goes (``None``: silent).
        **train_overrides: training fields for every run (``epochs``, ``train_subset``, ...); a value
            of None keeps the run set's default (:data:`lcamlab.train.grid.FMNIST_DEFAULTS`).
    """
    from lcamlab.data.fashion_mnist import fashion_mnist_dir, synthetic_fashion_mnist

    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if log is not None:
            log(text)

    for name in run_sets:
        if name not in grid.RUN_SETS:
            raise ValueError(f"Invalid run set: {name!r} (choose from {', '.join(grid.RUN_SETS)})")
    data_path = Path(data_dir).expanduser().resolve()
    overrides = {k: v for k, v in train_overrides.items() if v is not None}  # None: the run set's default
    command_data_dir = None
    if synthetic:
        folder, digest = synthetic_fashion_mnist(data_path, n_train=synthetic_train_images,
                                                 n_test=synthetic_test_images)
        overrides.update(data_dir=str(folder), data_md5=digest, train_subset=synthetic_train_images,
                         test_subset=synthetic_test_images)
        command_data_dir = folder
        say(f"Generated Fashion-MNIST-format files (not Fashion-MNIST: numbers below only exercise the "
            f"pipeline): {folder}")
    else:
        where = data_locations(data_path, fashion_dir=fashion_dir)
        folder = where["fashion-mnist"]
        if folder != fashion_mnist_dir().expanduser().resolve():
            command_data_dir = folder
        # runs read the files through <data_dir>/fashion-mnist when the cache cannot sit beside them
        overrides["data_dir"] = str(_fashion_reader(folder, where["fashion-mnist-cache"]) if run else folder)
    if runs_dir is not None:
        runs_path = Path(runs_dir).expanduser().resolve()
    else:
        runs_path = data_path / "runs-fmnist"
    overrides["runs_dir"] = str(runs_path)
    seed_values = grid._seed_list(seeds)

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
    # one command per run set, in training order (a control's reference first); all three: `fmnist`
    names = ["fmnist"] if set(run_sets) == set(grid.RUN_SETS) else list(run_sets)
    parts = [*_seed_arguments(seed_values), "--threads", "1"]
    for key, value in shown.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):  # BooleanOptionalAction: --channels-last / --no-channels-last
            parts.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            parts += [f"--{flag}", str(value)]
    if runs_path != (REPO_ROOT / grid.FMNIST_DEFAULTS["runs_dir"]).resolve():
        parts += ["--runs-dir", _display_path(runs_path)]
    if command_data_dir is not None:
        parts += ["--data-dir", _display_path(command_data_dir)]
    command = " && ".join(shlex.join(["lcamlab", "grid", name, *parts]) for name in names)
    incomplete = status[status.state.isin(["missing", "partial"])]
    partial = incomplete[incomplete.state == "partial"]
    missing = incomplete[incomplete.state == "missing"]
    for row in [*partial.itertuples(index=False), *missing.head(_LISTED_PER_STATE).itertuples(index=False)]:
        say(f"  {row.state}: {row.run_id}")
    if len(missing) > _LISTED_PER_STATE:
        say(f"  ... and {len(missing) - _LISTED_PER_STATE} more missing")
    if len(incomplete):
        say(f"Train the missing runs (from the repository root) with:\n  {command}")
    usable = status[status.state.isin(["partial", "finished", "diverged"])]
    frame = fmnist_frame([Path(p) for p in usable.run_dir])
    settings = {key: getattr(configs[0], key) for key in ("arch", "epochs", "train_subset", "test_subset",
                                                           "batch_size", "lr", "weight_decay")} if configs else {}
    say(f"Runs read: {frame.run_id.nunique() if len(frame) else 0} ({len(frame)} epoch rows)")
    return FmnistRuns(run_sets=tuple(run_sets), configs=configs, status=status, frame=frame, runs_dir=runs_path,
                      settings=settings, synthetic=bool(synthetic), command=command, text="\n".join(lines))


def _seed_arguments(seed_values: Sequence[int]) -> list[str]:
    """``--seeds N [--first-seed K]`` for consecutive seeds, else ``--seed-list ...`` (as :func:`grid.grid_command`)."""
    values = list(seed_values)
    if values == list(range(values[0], values[0] + len(values))):
        return ["--seeds", str(len(values))] + (["--first-seed", str(values[0])] if values[0] else [])
    return ["--seed-list", *map(str, values)]


def data_locations(data_dir: str | os.PathLike, *, cifar_dir: str | os.PathLike | None = None,
                   fashion_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Where a notebook whose results folder is ``data_dir`` looks for its data sets.

    The rule (the README's "Where the data are looked for"):

    * ``"cifar"``: ``cifar_dir``, else ``$LCAMLAB_DATA_DIR``, else ``<data_dir>/cifar``;
    * ``"fashion-mnist"``: ``fashion_dir``, else ``$LCAMLAB_FASHION_MNIST_DIR``, else the system
      package's folder when it holds the four files, else ``<data_dir>/fashion-mnist``;
    * ``"fashion-mnist-cache"``: the folder whose ``cache/`` holds the decoded uint8 arrays: the
      Fashion-MNIST folder when writable (or not yet created) and not the system package's, else
      ``<data_dir>/fashion-mnist``.

    Never the folder lcamlab is installed from: a notebook run from another checkout, with
    ``data_dir = "../data"``, reads and writes that checkout's ``data/``.

    Returns:
        ``{"cifar": Path, "fashion-mnist": Path, "fashion-mnist-cache": Path}``, absolute.
    """
    from lcamlab import paths
    from lcamlab.data.fashion_mnist import FASHION_MNIST_SYSTEM_DIR, fashion_mnist_dir

    data = Path(data_dir).expanduser().resolve()
    cifar = Path(cifar_dir) if cifar_dir is not None else default_data_dir(data)
    if fashion_dir is not None:
        fashion = Path(fashion_dir).expanduser().resolve()
    else:
        fashion = fashion_mnist_dir().expanduser().resolve()  # $LCAMLAB_FASHION_MNIST_DIR, system folder, ...
        if fashion == paths.data_dir("fashion-mnist").resolve():  # ... or the installed checkout's: use ours
            fashion = data / "fashion-mnist"
    # as lcamlab.data.load_fashion_mnist: never write into the system package's folder (or a read-only one)
    writable = fashion != FASHION_MNIST_SYSTEM_DIR.resolve() and (not fashion.exists() or os.access(fashion, os.W_OK))
    return {"cifar": cifar.expanduser().resolve(), "fashion-mnist": fashion,
            "fashion-mnist-cache": fashion if writable else data / "fashion-mnist"}


def _fashion_reader(folder: Path, cache_root: Path) -> Path:
    """The folder the runs read Fashion-MNIST from, so that its cache lands in ``cache_root/cache``.

    ``folder`` itself when the cache can go beside the files; else ``cache_root`` with a link to
    each of ``folder``'s four files (made once; a file already there is kept). Where links cannot
    be made, ``folder`` (the cache then goes where :func:`lcamlab.data.load_fashion_mnist` puts it).
    """
    from lcamlab.data.fashion_mnist import FASHION_MNIST_FILES

    if cache_root == folder or not folder.is_dir():
        return folder
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        for pair in FASHION_MNIST_FILES.values():
            for name in pair:
                source = next((folder / n for n in (name, name[:-3]) if (folder / n).is_file()), None)
                present = any((cache_root / n).is_file() for n in (name, name[:-3]))
                if source is not None and not present:
                    (cache_root / source.name).symlink_to(source)
    except OSError:
        return folder
    return cache_root


def describe_locations(data_dir: str | os.PathLike, *, cifar_dir: str | os.PathLike | None = None,
                       fashion_dir: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None,
                       fashion_runs_dir: str | os.PathLike | None = None) -> str:
    """Where a notebook looks for its data and runs (:func:`data_locations`), as Markdown lines."""
    where = data_locations(data_dir, cifar_dir=cifar_dir, fashion_dir=fashion_dir)
    data = Path(data_dir).expanduser().resolve()
    runs = Path(runs_dir).expanduser().resolve() if runs_dir else data / "runs"
    fashion_runs = Path(fashion_runs_dir).expanduser().resolve() if fashion_runs_dir else data / "runs-fmnist"

    def state(path: Path) -> str:
        return "" if path.exists() else " (not there yet)"

    lines = [f"- CIFAR archives: `{_display_path(where['cifar'])}`{state(where['cifar'])}",
             f"- CIFAR runs: `{_display_path(runs)}`{state(runs)}",
             f"- Fashion-MNIST files: `{_display_path(where['fashion-mnist'])}`{state(where['fashion-mnist'])}; "
             f"its cache: `{_display_path(where['fashion-mnist-cache'] / 'cache')}`",
             f"- Fashion-MNIST runs: `{_display_path(fashion_runs)}`{state(fashion_runs)}"]
    return "\n".join(lines)
