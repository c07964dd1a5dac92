"""Rebuild every figure headlessly by executing the notebooks with papermill.

``lcamlab figures [NAME ...] [--quick] [-p KEY VALUE ...] [--jobs N]``

Each notebook in ``notebooks/`` has a cell tagged ``parameters``; papermill
injects the values given here after it. The runner always passes absolute
``figures_dir`` and ``data_dir``, so figures land in ``figures/`` (PNG for the
README, PDF for papers) and results in ``data/``. ``--quick`` first applies the
small parameter set stored in each notebook's metadata
(``metadata.lcamlab.quick_parameters``; the tests use the same), then any
``-p`` overrides, which are checked against the notebook's declared
parameters. Executed copies (with outputs) go to the git-ignored
``notebooks/_build/``. Notebooks run in parallel with ``--jobs``; when one
fails the others still finish, and the command exits non-zero naming the
notebook and the failing cell.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcamlab.paths import DATA_DIR, FIGURES_DIR, NOTEBOOKS_DIR, REPO_ROOT

__all__ = [
    "REPO_ROOT",
    "NOTEBOOKS_DIR",
    "BuildResult",
    "list_notebooks",
    "resolve_notebooks",
    "notebook_metadata",
    "declared_parameters",
    "execute_notebook",
    "build",
    "configure_parser",
    "main",
]

# Executed copies of the notebooks (git-ignored).
BUILD_DIR = NOTEBOOKS_DIR / "_build"


@dataclass
class BuildResult:
    """What happened to one notebook."""

    notebook: Path
    ok: bool
    seconds: float
    executed_copy: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    error: str | None = None
    cell_index: int | None = None

    def describe(self) -> str:
        name = self.notebook.name
        if self.ok:
            return f"{name}: ok in {self.seconds:.1f} s, {len(self.figures)} figure files"
        where = f"cell {self.cell_index}" if self.cell_index is not None else "setup"
        return f"{name}: FAILED in {where}: {self.error} (executed copy: {self.executed_copy})"


def list_notebooks(notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """The suite's notebooks, ``NN_name.ipynb``, in order."""
    notebooks_dir = Path(notebooks_dir)
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def resolve_notebooks(names: list[str] | None, notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """Turn names (``00``, ``00_optimizer_zoo``, ``optimizer_zoo`` or a path) into notebook paths."""
    available = list_notebooks(notebooks_dir)
    if not names:
        if not available:
            raise FileNotFoundError(f"No notebooks (NN_name.ipynb) found in {notebooks_dir}")
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        stem = path.stem if path.suffix == ".ipynb" else name
        matches = [p for p in available if p.stem == stem or p.stem[:2] == stem or p.stem[3:] == stem]
        if len(matches) != 1:
            listing = ", ".join(p.stem for p in available) or "none"
            raise ValueError(f"Unknown notebook: {name!r} (available: {listing})")
        chosen.append(matches[0])
    return list(dict.fromkeys(chosen))


def notebook_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``lcamlab`` block of a notebook's metadata (quick parameters, declared figures)."""
    with open(path, encoding="utf-8") as handle:
        nb = json.load(handle)
    return nb.get("metadata", {}).get("lcamlab", {})


def declared_parameters(path: str | os.PathLike) -> dict[str, Any]:
    """The names and defaults of the ``parameters`` cell, as papermill sees them."""
    import papermill

    inferred = papermill.inspect_notebook(str(path))
    return {name: info.get("default") for name, info in inferred.items()}


def _parse_value(text: str) -> Any:
    """``-p`` values: Python literals (numbers, True, None, lists, quoted strings), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _failure_details(error: BaseException) -> tuple[str, int | None]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        return f"{error.ename}: {error.evalue}", error.cell_index
    return f"{type(error).__name__}: {error}", None


def execute_notebook(
    notebook: str | os.PathLike,
    *,
    parameters: dict[str, Any] | None = None,
    quick: bool = False,
    figures_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    build_dir: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    progress: bool = False,
) -> BuildResult:
    """Execute one notebook with papermill; never raises for a failing cell (see ``BuildResult``).

    Args:
        notebook: path of the notebook.
        parameters: overrides for the ``parameters`` cell; unknown names are an error.
        quick: apply ``metadata.lcamlab.quick_parameters`` first.
        figures_dir: where figures go (default ``figures/``); passed as ``figures_dir``.
        data_dir: where results and caches go (default ``data/``); passed as ``data_dir``.
        build_dir: where the executed copy goes (default ``notebooks/_build/``).
        kernel_name: the Jupyter kernel to run.
        progress: show papermill's per-cell progress bar.
    """
    import papermill

    notebook = Path(notebook).resolve()
    build_dir = Path(build_dir) if build_dir is not None else BUILD_DIR
    build_dir.mkdir(parents=True, exist_ok=True)
    executed = build_dir / notebook.name
    figures_dir = Path(figures_dir if figures_dir is not None else FIGURES_DIR).resolve()
    data_dir = Path(data_dir if data_dir is not None else DATA_DIR).resolve()
    figures_dir.mkdir(parents=True, exist_ok=True)

    meta = notebook_metadata(notebook)
    declared = declared_parameters(notebook)
    values: dict[str, Any] = {}
    if quick:
        values.update(meta.get("quick_parameters", {}))
    values.update(parameters or {})
    values["figures_dir"] = str(figures_dir)
    values["data_dir"] = str(data_dir)
    unknown = sorted(set(values) - set(declared))
    start = time.perf_counter()
    if unknown:
        return BuildResult(
            notebook, False, 0.0, executed, values,
            error=f"unknown parameter(s) {unknown}; {notebook.name} declares {sorted(declared)}",
        )
    try:
        papermill.execute_notebook(
            str(notebook), str(executed), parameters=values, kernel_name=kernel_name,
            cwd=str(notebook.parent), progress_bar=progress, log_output=False,
        )
    except Exception as error:  # a failing cell, a dead kernel: report, keep building others
        message, cell = _failure_details(error)
        return BuildResult(notebook, False, time.perf_counter() - start, executed, values,
                           error=message, cell_index=cell)
    seconds = time.perf_counter() - start
    figures, missing = [], []
    # With user overrides a notebook may legitimately draw fewer panels (say, one
    # landscape); the declared set is checked for the default and quick builds.
    for stem in meta.get("figures", []) if not parameters else []:
        for suffix in (".png", ".pdf"):
            path = figures_dir / f"{stem}{suffix}"
            (figures if path.exists() else missing).append(path)
    if missing:
        return BuildResult(notebook, False, seconds, executed, values, figures,
                           error=f"declared figures not written: {[p.name for p in missing]}")
    return BuildResult(notebook, True, seconds, executed, values, figures)


def build(
    names: list[str] | None = None,
    *,
    quick: bool = False,
    parameters: dict[str, Any] | None = None,
    jobs: int = 1,
    figures_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    build_dir: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
    show_progress: bool | None = None,
) -> list[BuildResult]:
    """Execute the chosen notebooks (all by default), ``jobs`` at a time.

    ``parameters`` go to every notebook that declares them; a name no chosen
    notebook declares is an error (a typo would otherwise be silently ignored).
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"Invalid jobs: {jobs!r} (must be an integer >= 1)")
    notebooks = resolve_notebooks(names, notebooks_dir)
    parameters = dict(parameters or {})
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    for key in parameters:
        if not any(key in d for d in declared.values()):
            known = sorted({k for d in declared.values() for k in d})
            raise ValueError(f"Unknown parameter {key!r} for {[nb.stem for nb in notebooks]}; known: {known}")
    if show_progress is None:
        show_progress = sys.stderr.isatty()

    # Share the cores between parallel kernels instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // min(jobs, len(notebooks)))
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPLBACKEND")}
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ["MPLBACKEND"] = "Agg"

    def run_one(nb: Path) -> BuildResult:
        own = {k: v for k, v in parameters.items() if k in declared[nb]}
        return execute_notebook(nb, parameters=own, quick=quick, figures_dir=figures_dir,
                                data_dir=data_dir, build_dir=build_dir,
                                progress=show_progress and jobs == 1)

    results: list[BuildResult] = []
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(notebooks), desc="notebooks", unit="nb", disable=not show_progress)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_one, nb): nb for nb in notebooks}
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                bar.update(1)
                bar.write(("  ok    " if result.ok else "  FAIL  ") + result.describe())
        bar.close()
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    order = {nb: i for i, nb in enumerate(notebooks)}
    return sorted(results, key=lambda r: order[r.notebook])


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab figures``."""
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="notebooks to run: 00, 00_optimizer_zoo or optimizer_zoo (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="use each notebook's small parameters (the ones the tests use)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a notebook parameter (VALUE is a Python literal or a string); repeatable")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="notebooks executed in parallel (default 1)")
    parser.add_argument("--figures-dir", default=None, help="where figures are written (default: figures/)")
    parser.add_argument("--data-dir", default=None, help="where results and caches go (default: data/)")
    parser.add_argument("--build-dir", default=None,
                        help="where executed copies go (default: notebooks/_build/, git-ignored)")
    parser.add_argument("--list", action="store_true", help="list the notebooks and their parameters, then exit")


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab figures``."""
    if args.list:
        for nb in resolve_notebooks(args.names or None):
            meta = notebook_metadata(nb)
            print(f"{nb.stem}")
            for key, default in declared_parameters(nb).items():
                print(f"    {key} = {default}")
            if meta.get("quick_parameters"):
                print(f"    --quick: {meta['quick_parameters']}")
        return 0
    parameters = {key: _parse_value(value) for key, value in args.parameter}
    start = time.perf_counter()
    results = build(args.names or None, quick=args.quick, parameters=parameters, jobs=args.jobs,
                    figures_dir=args.figures_dir, data_dir=args.data_dir, build_dir=args.build_dir)
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} of {len(results)} notebooks built in "
          f"{time.perf_counter() - start:.1f} s")
    for result in results:
        print("  " + result.describe())
    if failed:
        print(f"lcamlab figures: {len(failed)} notebook(s) failed: "
              + ", ".join(f"{r.notebook.name} (cell {r.cell_index})" for r in failed), file=sys.stderr)
        return 1
    return 0
