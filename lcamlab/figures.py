"""Rebuild every figure headlessly by executing the notebooks with papermill.

    lcamlab figures [NAME ...] [--quick] [-p KEY VALUE ...] [--jobs N] [--dry-run]

Each notebook in notebooks/ has a cell tagged "parameters"; papermill injects
the values given here after it. The runner always passes absolute figures_dir
and data_dir, so figures land in figures/ (PNG for the README, PDF for papers)
and results in data/. Executed copies (with outputs) go to the git-ignored
notebooks/.build/ (hidden, so JupyterLab's file browser shows only the
notebooks). Notebooks run in parallel with --jobs; when one fails (a failing
cell, or a notebook file that cannot be read) the others still finish, and the
command exits non-zero naming the notebook and the failing cell.

Parameters. The parameters cell is read by papermill's own parser
(papermill.inspect_notebook), so lcamlab figures and plain papermill -p agree
on what a notebook declares. A line papermill cannot parse (for example a
comment containing "=") is reported once, naming the notebook and the line,
instead of papermill's bare "Unable to parse line". -p KEY VALUE values are
checked against the parameters cell before anything runs; a value's type is
the one papermill reports for the parameter (an annotation or "# type:"
comment, e.g. "# type: int|list"), else the type of its default:

  bool   True/False (true/false too);
  int    an integer in -2^63 .. 2^63-1 (a seed is >= 0);
  float  a finite number (an integer is converted). nan and inf are refused:
         no notebook of this suite has a float parameter where they mean
         anything (scales, rates, ratios), and accepted they would fail deep
         inside the notebook or silently produce empty figures;
  str    the text as given (quotes optional);
  list / dict  a Python literal of that type; list elements are checked
         against the default's element type when the default has one;
  a default of None: any Python literal, else the text.

The folders are options, not parameters: -p figures_dir / -p data_dir is
refused (use --figures-dir / --data-dir), so there is one way to choose them.

Where a build writes. figures/ holds the figures of the notebooks' default
parameters, the ones the README shows. A build with other parameters never
replaces them unless asked:

  --quick   first applies the small parameter set stored in each notebook's
            metadata (metadata.lcamlab.quick_parameters; the tests use the
            same), then any -p overrides. Every folder not given with
            --figures-dir, --data-dir or --build-dir is a new temporary one
            (printed), so a quick build leaves figures/ and the committed data/
            as it found them. A parameter the quick build does not read
            (metadata.lcamlab.quick_ignores, e.g. 02's trials: its quick build
            runs a fixed small design) is refused with --quick, since it would
            have no effect. Two quick builds at once never share a folder unless
            told to; when they do (the same --data-dir), the verified result
            cache lets both finish with the same tables.
  -p        a value that differs from the notebook's default writes the figures
            into a new temporary folder (printed) unless --figures-dir is given
            (--figures-dir figures replaces the committed ones on purpose).
            Results still go to data/: every cached table there is stored under
            a name hashed from its settings, so other settings add files beside
            the committed ones instead of replacing them. A notebook's rows of
            the claims ledger (data/claims.csv) and its fixed-name summary
            tables (data/paper_reproduction/fig*_fmnist.*) are not written
            (the notebooks' write_results parameter is set False) unless
            -p write_results True, or --data-dir, asks for them.

Each notebook's line counts the figure files (PNG and PDF of its declared
figures) that this build wrote.

Interrupting. Ctrl-C cancels the notebooks still queued, interrupts the
running kernels (a second Ctrl-C, or a kernel that does not stop within a few
seconds, kills them) and shuts them down; figures are written atomically and as
a PNG+PDF pair (lcamlab.style.save_figure), so nothing half-written is left.
The command then exits with status 130.

A full disk while a notebook runs fails that notebook with one line naming the
path and the fix (free space, or choose folders on another disk).
"""

from __future__ import annotations

import argparse
import ast
import errno
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcamlab.paths import DATA_DIR, FIGURES_DIR, NOTEBOOKS_DIR, REPO_ROOT

__all__ = [
    "REPO_ROOT",
    "NOTEBOOKS_DIR",
    "BuildResult",
    "NotebookError",
    "Parameter",
    "list_notebooks",
    "resolve_notebooks",
    "notebook_metadata",
    "parameter_specs",
    "unparsed_parameter_lines",
    "coerce_parameter",
    "execute_notebook",
    "build",
    "configure_parser",
    "main",
]

# Executed copies of the notebooks (git-ignored).
BUILD_DIR = NOTEBOOKS_DIR / ".build"  # hidden: JupyterLab's file browser shows only the notebooks
#: Seconds a running kernel gets to stop after Ctrl-C before it is killed.
INTERRUPT_GRACE_SECONDS = 5.0


class NotebookError(ValueError):
    """A notebook file that cannot be read as a notebook (the message names the file)."""


class BuildCancelled(Exception):
    """The build was interrupted (Ctrl-C) before this notebook finished."""


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
    cancelled: bool = False

    def describe(self) -> str:
        name = self.notebook.name
        if self.ok:
            return f"{name}: ok in {self.seconds:.1f} s, {len(self.figures)} figure files"
        if self.cancelled:
            return f"{name}: cancelled ({self.error or 'interrupted'})"
        where = f"cell {self.cell_index}" if self.cell_index is not None else "setup"
        return f"{name}: FAILED in {where}: {self.error} (executed copy: {self.executed_copy})"


@dataclass(frozen=True)
class Parameter:
    """One parameter of a notebook's ``parameters`` cell, as papermill reads it."""

    name: str
    default: str  # the source text of the default, e.g. '0.2' or '"cpu"'
    kind: str  # bool, int, float, str, list, dict, any, or a union such as "int|list"
    help: str = ""

    @property
    def default_value(self) -> Any:
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None


# --------------------------------------------------------------------------------------
# Finding and reading notebooks
# --------------------------------------------------------------------------------------


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
        if path.suffix == ".ipynb" and path.is_dir():
            raise ValueError(f"Invalid notebook {name!r}: a folder, not a notebook file")
        stem = path.stem if path.suffix == ".ipynb" else name
        matches = [p for p in available if p.stem == stem or p.stem[:2] == stem or p.stem[3:] == stem]
        if len(matches) != 1:
            listing = ", ".join(p.stem for p in available) or "none"
            raise ValueError(f"Unknown notebook: {name!r} (available: {listing})")
        chosen.append(matches[0])
    return list(dict.fromkeys(chosen))


def _read_notebook_json(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            nb = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotebookError(f"{path} is not a readable notebook (not JSON: {error}); restore it "
                            f"(git checkout -- {Path(path).name} for a committed one)") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path} is not a notebook (no list of cells); restore it")
    return nb


def notebook_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``lcamlab`` block of a notebook's metadata (quick parameters, declared figures)."""
    meta = _read_notebook_json(path).get("metadata", {})
    block = meta.get("lcamlab", {}) if isinstance(meta, dict) else {}
    return block if isinstance(block, dict) else {}


#: papermill's warning for a line of the parameters cell it skips (more than one ``=`` on it).
_UNPARSED = re.compile(r"Unable to parse line (\d+) '(.*)'\.", re.DOTALL)
_ASSIGNED = re.compile(r"\s*([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")


def _papermill_parameters(path: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str, str]]]:
    """``papermill.inspect_notebook(path)``, and the assignments its parser skipped.

    The skipped lines are the ones papermill itself reports while parsing ("Unable to parse
    line N '...'", logged as a warning): ``[(line, name, text)]`` for each such line that assigns
    a name papermill did not find elsewhere in the cell.
    """
    import papermill

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("papermill")
    handler = Collect(level=logging.WARNING)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # a quieter logging setup must not hide the parser's report
    try:
        inferred = papermill.inspect_notebook(str(path))
    except NotebookError:
        raise
    except Exception as error:  # nbformat / papermill reading a damaged notebook
        raise NotebookError(f"{path} is not a readable notebook ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:200]}); restore it") from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    skipped = []
    for message in messages:
        line = _UNPARSED.fullmatch(message)
        target = _ASSIGNED.match(line.group(2)) if line else None
        if target and target.group(1) not in inferred:
            skipped.append((int(line.group(1)), target.group(1), line.group(2).strip()))
    return inferred, skipped


def unparsed_parameter_lines(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """Assignments of the parameters cell that papermill's parser skips: ``[(line, name, text)]``.

    A parameter on such a line cannot be overridden with ``-p`` (papermill does not
    know it); the usual cause is a second ``=`` on the line, e.g. in its comment.
    """
    path = Path(path)
    _read_notebook_json(path)  # a clear message for a damaged file, before papermill's
    return _papermill_parameters(path)[1]


def _kind_of_value(value: Any) -> str:
    if value is None:
        return "any"
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", (list, tuple)),
                        ("dict", dict)):
        if isinstance(value, types):
            return kind
    return "any"


_KNOWN_KINDS = {"bool", "int", "float", "str", "list", "dict", "any", "none", "tuple"}


def _kind(info: dict[str, Any], default: str) -> str:
    declared = str(info.get("inferred_type_name") or "None").replace(" ", "").lower()
    parts = [p for p in re.split(r"[|,]", declared.replace("optional[", "").replace("union[", "").strip("]")) if p]
    if declared not in ("none", "") and parts and all(p in _KNOWN_KINDS for p in parts):
        return "|".join(sorted({"list" if p == "tuple" else "any" if p == "none" else p for p in parts}))
    try:
        return _kind_of_value(ast.literal_eval(default))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "any"


def parameter_specs(path: str | os.PathLike) -> dict[str, Parameter]:
    """The parameters of a notebook's ``parameters`` cell, read by papermill's parser.

    Raises:
        NotebookError: the file is not a readable notebook.
    """
    path = Path(path)
    _read_notebook_json(path)  # a clear message for a damaged file, before papermill's
    inferred, _ = _papermill_parameters(path)
    return {name: Parameter(name, str(info.get("default")), _kind(info, str(info.get("default"))),
                            str(info.get("help") or ""))
            for name, info in inferred.items()}


# --------------------------------------------------------------------------------------
# -p values against the parameters cell
# --------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """``-p`` values: Python literals (numbers, True, None, lists, quoted strings), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


_FLOAT_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_INT_LIMIT = 2**63


def _from_text(text: str, kind: str) -> Any:
    stripped = text.strip()
    kinds = kind.split("|")
    if stripped.lower() in _FLOAT_WORDS and "float" in kinds:
        return float(stripped)
    if stripped.lower() in ("true", "false") and "bool" in kinds:
        return stripped.lower() == "true"
    if re.fullmatch(r"[+-]?\d{20,}", stripped):  # beyond any 64-bit integer (and Python's literal limit)
        return _TooLong(stripped)
    value = _parse_value(stripped)
    if kinds == ["str"] and not isinstance(value, str):
        return text
    return value


@dataclass(frozen=True)
class _TooLong:
    digits: str


def _check_one(kind: str, value: Any, name: str, spec: Parameter, element: str | None = None) -> tuple[bool, Any, str]:
    """``(ok, converted, reason)`` for one kind (``element``: the kind of a list's elements, if known)."""
    if isinstance(value, _TooLong):
        return False, value, f"an integer of {len(value.digits.lstrip('+-'))} digits is out of range " \
                             f"(-2**63 .. 2**63-1)"
    if kind == "any":
        return True, value, ""
    if kind == "bool":
        return (True, value, "") if isinstance(value, bool) else (False, value, "expected True or False")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return False, value, "expected an integer"
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            return False, value, "out of range (-2**63 .. 2**63-1)"
        if (name == "seed" or name.endswith("_seed")) and value < 0:
            return False, value, "a seed must be >= 0"
        return True, value, ""
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value, "expected a number"
        if isinstance(value, int) and not -_INT_LIMIT <= value < _INT_LIMIT:
            return False, value, "out of range"
        if not math.isfinite(float(value)):
            return False, value, "expected a finite number (nan and inf are refused: see lcamlab figures --help)"
        return True, float(value), ""
    if kind == "str":
        return (True, value, "") if isinstance(value, str) else (False, value, "expected a string")
    if kind == "dict":
        if not isinstance(value, dict):
            return False, value, "expected a dict literal, e.g. {'a': 1}"
        return True, value, ""
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            return False, value, "expected a list literal, e.g. [1, 2]"
        value = list(value)
        default = spec.default_value
        element_kinds = set()
        if isinstance(default, (list, tuple)) and default:
            element_kinds = {_kind_of_value(v) for v in default}
        if element_kinds == {"int", "float"}:
            element_kinds = {"float"}
        if element is not None:
            element_kinds = {element}
        if len(element_kinds) == 1 and element_kinds != {"any"}:
            (element,) = element_kinds
            converted = []
            for item in value:
                ok, item, reason = _check_one(element, item, name, spec)
                if not ok:
                    return False, value, f"list elements must be {element}: {reason}"
                converted.append(item)
            value = converted
        return True, value, ""
    return True, value, ""


#: The parameter of the notebooks that write the claims ledger (and fixed-name summary tables) into
#: ``data_dir``: set False by :func:`build` for a build with non-default values into the default data folder.
WRITE_RESULTS = "write_results"

#: Parameters every notebook declares that are folders: chosen with the option, never with -p.
FOLDER_OPTIONS = {"figures_dir": "--figures-dir", "data_dir": "--data-dir"}


def _refuse_folder_parameter(key: str, value: Any) -> None:
    if key in FOLDER_OPTIONS:
        raise ValueError(f"Invalid -p {key} {value}: the folder is an option of lcamlab figures, not a parameter "
                         f"(one way to choose it): use {FOLDER_OPTIONS[key]} {value} instead")


def coerce_parameter(notebook: str | os.PathLike, spec: Parameter, value: Any, *, text: bool = False) -> Any:
    """``value`` checked (and converted) against ``spec``; ``ValueError`` naming the notebook otherwise.

    Args:
        notebook: the notebook (for the message).
        spec: the parameter as declared (:func:`parameter_specs`).
        value: the value, or with ``text=True`` the command line's text (parsed per the kind).
    """
    given = value
    if text:
        value = _from_text(str(value), spec.kind)
    reasons = []
    kinds = spec.kind.split("|")
    # "int|list": a number, or a list of such numbers (e.g. seeds: N or [0, 2, 5])
    scalars = [k for k in kinds if k in ("bool", "int", "float", "str")]
    element = scalars[0] if "list" in kinds and len(scalars) == 1 else None
    for kind in kinds:
        ok, converted, reason = _check_one(kind, value, spec.name, spec, element if kind == "list" else None)
        if ok:
            return converted
        reasons.append(reason)
    shown = given if text else repr(given)
    if len(str(shown)) > 60:
        shown = str(shown)[:57] + "..."
    raise ValueError(f"Invalid -p {spec.name} {shown}: {'; '.join(dict.fromkeys(reasons))}; "
                     f"{Path(notebook).name} declares {spec.name} = {spec.default} ({spec.kind})")


# --------------------------------------------------------------------------------------
# Executing, with cancellation
# --------------------------------------------------------------------------------------


class _Cancellation:
    """Shared by one build: whether it was cancelled, and the kernels it started."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._managers: list[Any] = []
        self.manager_class = self._make_manager_class()

    def _make_manager_class(self):
        from jupyter_client.manager import AsyncKernelManager

        cancellation = self

        class TrackedKernelManager(AsyncKernelManager):
            async def start_kernel(self, **kwargs):  # type: ignore[override]
                if cancellation.event.is_set():
                    raise BuildCancelled("interrupted before its kernel started")
                # The kernel's own log lines on stderr (e.g. "running over TCP without encryption",
                # about a loopback-only connection) are noise in a headless build; a failing cell or a
                # dead kernel is reported through papermill. LCAMLAB_DEBUG=1 keeps them.
                from lcamlab.cli import debug_from_env  # the one reader of LCAMLAB_DEBUG's value

                if not debug_from_env():
                    kwargs.setdefault("stderr", subprocess.DEVNULL)
                await super().start_kernel(**kwargs)
                with cancellation._lock:
                    cancellation._managers.append(self)

        return TrackedKernelManager

    def on_cell_start(self, cell=None, cell_index=None, **_: Any) -> None:
        if self.event.is_set():
            raise BuildCancelled(f"interrupted before cell {cell_index}")

    def _signal_kernels(self, sig: int) -> None:
        with self._lock:
            managers = list(self._managers)
        for manager in managers:
            provisioner = getattr(manager, "provisioner", None)
            pid = getattr(provisioner, "pid", None) or getattr(getattr(provisioner, "process", None), "pid", None)
            if not pid:
                continue
            try:
                os.killpg(pid, sig)  # kernels run in their own session: the group is the kernel's
            except (ProcessLookupError, PermissionError, OSError):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass

    def interrupt(self) -> None:
        self.event.set()
        self._signal_kernels(signal.SIGINT)

    def kill(self) -> None:
        self.event.set()
        self._signal_kernels(signal.SIGKILL)


_NO_SPACE = re.compile(r"\[Errno 28\][^:']*(?::\s*'(.*)')?")


def _failure_details(error: BaseException, folders: str) -> tuple[str, int | None]:
    """``(message, cell)`` of a failed execution; a full disk (in the kernel or here) says where and the fix."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        message, cell = f"{error.ename}: {error.evalue}", error.cell_index
        full = _NO_SPACE.match(str(error.evalue)) if error.ename in ("OSError", "IOError") else None
        path = full.group(1) if full else None
    else:
        message, cell = f"{type(error).__name__}: {error}", None
        full = isinstance(error, OSError) and error.errno == errno.ENOSPC
        path = error.filename if full else None
    if full:
        message = (f"no space left on device while writing {path or folders}: free space on that disk, or choose "
                   f"folders on another one (--figures-dir, --data-dir, --build-dir), and run the command again")
    return message, cell


def _resolve_values(notebook: Path, specs: dict[str, Parameter], meta: dict[str, Any], *, quick: bool,
                    parameters: dict[str, Any] | None, text_parameters: dict[str, str] | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if quick:
        values.update(meta.get("quick_parameters", {}))
    for key, value in [*(parameters or {}).items(), *(text_parameters or {}).items()]:
        _refuse_folder_parameter(key, value)
    for key, value in (parameters or {}).items():
        values[key] = coerce_parameter(notebook, specs[key], value) if key in specs else value
    for key, text in (text_parameters or {}).items():
        values[key] = coerce_parameter(notebook, specs[key], text, text=True) if key in specs else text
    return values


def execute_notebook(
    notebook: str | os.PathLike,
    *,
    parameters: dict[str, Any] | None = None,
    text_parameters: dict[str, str] | None = None,
    quick: bool = False,
    figures_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    build_dir: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    progress: bool = False,
    _cancellation: _Cancellation | None = None,
) -> BuildResult:
    """Execute one notebook with papermill; never raises for a failing cell (see ``BuildResult``).

    Args:
        notebook: path of the notebook.
        parameters: overrides for the ``parameters`` cell (checked against it); unknown names are an error.
        text_parameters: overrides as command-line text (parsed per the declared type).
        quick: apply ``metadata.lcamlab.quick_parameters`` first.
        figures_dir: where figures go (default ``figures/``); passed as ``figures_dir``.
        data_dir: where results and caches go (default ``data/``); passed as ``data_dir``.
        build_dir: where the executed copy goes (default ``notebooks/.build/``).
        kernel_name: the Jupyter kernel to run.
        progress: show papermill's per-cell progress bar.
    """
    import papermill

    notebook = Path(notebook).resolve()
    build_dir = Path(build_dir) if build_dir is not None else BUILD_DIR
    executed = build_dir / notebook.name
    figures_dir = Path(figures_dir if figures_dir is not None else FIGURES_DIR).resolve()
    data_dir = Path(data_dir if data_dir is not None else DATA_DIR).resolve()
    start = time.perf_counter()
    try:
        meta = notebook_metadata(notebook)
        specs = parameter_specs(notebook)
    except NotebookError as error:
        return BuildResult(notebook, False, 0.0, executed, {}, error=str(error))
    try:
        values = _resolve_values(notebook, specs, meta, quick=quick, parameters=parameters,
                                 text_parameters=text_parameters)
    except ValueError as error:
        return BuildResult(notebook, False, 0.0, executed, {}, error=str(error))
    values["figures_dir"] = str(figures_dir)
    values["data_dir"] = str(data_dir)
    unknown = sorted(set(values) - set(specs))
    if unknown:
        return BuildResult(
            notebook, False, 0.0, executed, values,
            error=f"unknown parameter(s) {unknown}; {notebook.name} declares {sorted(specs)}",
        )
    cancellation = _cancellation
    if cancellation is not None and cancellation.event.is_set():
        return BuildResult(notebook, False, 0.0, executed, values, error="not started", cancelled=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)
    # the declared figures as they are now: the ones this execution writes are counted afterwards
    declared = [figures_dir / f"{stem}{suffix}" for stem in meta.get("figures", []) for suffix in (".png", ".pdf")]
    before = {path: _stamp(path) for path in declared}
    # the executed copy is written under a private name and renamed at the end: two builds
    # of the same notebook at once never write into each other's copy
    fd, partial = tempfile.mkstemp(prefix=f".{notebook.stem}.", suffix=".ipynb", dir=build_dir)
    os.close(fd)
    engine: dict[str, Any] = {}
    if cancellation is not None:
        engine = {"kernel_manager_class": cancellation.manager_class, "on_cell_start": cancellation.on_cell_start}
    error: BaseException | None = None
    try:
        papermill.execute_notebook(
            str(notebook), partial, parameters=values, kernel_name=kernel_name,
            cwd=str(notebook.parent), progress_bar=progress, log_output=False, **engine,
        )
    except Exception as caught:  # a failing cell, a dead kernel, a cancellation: report, keep building others
        error = caught
    finally:
        if os.path.getsize(partial) > 0:
            os.replace(partial, executed)
        else:
            os.unlink(partial)
    seconds = time.perf_counter() - start
    if error is not None:
        if cancellation is not None and cancellation.event.is_set():
            return BuildResult(notebook, False, seconds, executed, values, error="interrupted", cancelled=True)
        message, cell = _failure_details(error, f"into {figures_dir} or {data_dir}")
        return BuildResult(notebook, False, seconds, executed, values, error=message, cell_index=cell)
    # A figure counts when this execution wrote it (save_figure renames a new file into place, so its
    # stamp changes even when the bytes are the same). With user overrides a notebook may legitimately
    # draw fewer panels (say, one landscape); the declared set is checked for the default and quick builds.
    figures = [path for path in declared if _stamp(path) not in (None, before[path])]
    missing = [path for path in declared if path not in figures] if not (parameters or text_parameters) else []
    if missing:
        return BuildResult(notebook, False, seconds, executed, values, figures,
                           error=f"declared figures not written: {[p.name for p in missing]}")
    return BuildResult(notebook, True, seconds, executed, values, figures)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """``(inode, mtime in ns, size)`` of a file, or ``None``: it changes whenever the file is replaced."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


# --------------------------------------------------------------------------------------
# Building a set of notebooks
# --------------------------------------------------------------------------------------


def _scratch_root() -> Path:
    """A new temporary folder for a build that must not write over figures/ (or, quick, data/)."""
    return Path(tempfile.mkdtemp(prefix="lcamlab-figures-"))


def build(
    names: list[str] | None = None,
    *,
    quick: bool = False,
    parameters: dict[str, Any] | None = None,
    text_parameters: dict[str, str] | None = None,
    jobs: int = 1,
    figures_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    build_dir: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
    show_progress: bool | None = None,
    dry_run: bool = False,
    log=None,
) -> list[BuildResult]:
    """Execute the chosen notebooks (all by default), ``jobs`` at a time.

    ``parameters`` (Python values) and ``text_parameters`` (command-line text) go
    to every notebook that declares them, checked against its parameters cell
    before anything runs; a name no chosen notebook declares is an error (a typo
    would otherwise be silently ignored). A quick build without explicit folders
    writes into a temporary folder (see the module docstring). ``dry_run``
    checks everything and executes nothing. Ctrl-C cancels the build (queued
    notebooks never start, running kernels are interrupted and shut down) and
    re-raises ``KeyboardInterrupt``.
    """
    from lcamlab.provenance import check_output_folder

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"Invalid jobs: {jobs!r} (must be an integer >= 1)")
    say = log if log is not None else (lambda text: print(text, file=sys.stderr, flush=True))
    notebooks = resolve_notebooks(names, notebooks_dir)
    parameters = dict(parameters or {})
    text_parameters = dict(text_parameters or {})
    specs: dict[Path, dict[str, Parameter]] = {}
    unreadable: dict[Path, str] = {}
    unparsed: dict[Path, list[tuple[int, str, str]]] = {}
    for nb in notebooks:
        try:
            specs[nb] = parameter_specs(nb)
        except NotebookError as error:
            unreadable[nb] = str(error)
            continue
        skipped = unparsed[nb] = unparsed_parameter_lines(nb)
        if skipped:
            say(f"lcamlab figures: {nb.name}: papermill cannot parse line(s) "
                + "; ".join(f"{line} ({text!r})" for line, _, text in skipped)
                + " of its parameters cell (a second '=' on the line?): "
                + ", ".join(name for _, name, _ in skipped) + " cannot be set with -p")
    known = {k for d in specs.values() for k in d}
    for key, value in [*parameters.items(), *text_parameters.items()]:
        _refuse_folder_parameter(key, value)
        if key not in known:
            hidden = [nb.name for nb in specs for _, name, _ in unparsed[nb] if name == key]
            if hidden:
                raise ValueError(f"Parameter {key!r} of {hidden[0]} is on a line papermill cannot parse (a second "
                                 f"'=' in its comment?), so it cannot be set with -p; fix that line of the "
                                 f"parameters cell")
            raise ValueError(f"Unknown parameter {key!r} for {[nb.stem for nb in notebooks]}; known: {sorted(known)}")
    # every value is checked against every notebook that declares it, before anything runs
    changed: set[str] = set()  # parameters whose value differs from a notebook's default
    for nb, declared in specs.items():
        ignored = notebook_metadata(nb).get("quick_ignores", []) if quick else []
        for key, value, text in [*((k, v, False) for k, v in parameters.items()),
                                 *((k, v, True) for k, v in text_parameters.items())]:
            if key not in declared:
                continue
            if key in ignored:
                raise ValueError(f"Invalid -p {key} with --quick: {nb.name}'s quick build does not read {key} "
                                 f"(it runs its own small fixed setting), so the value would have no effect; drop "
                                 f"--quick to run with it, or drop -p {key}")
            if coerce_parameter(nb, declared[key], value, text=text) != declared[key].default_value:
                changed.add(key)

    # data/ holds the results of the default parameters too: the tables there are cached under a name
    # hashed from their settings (other settings add files beside them), but a notebook's ledger rows
    # and fixed-name summary tables would be replaced, so a build with other values into the default
    # data folder does not write them (the notebooks' write_results), unless -p write_results True asks
    keep_results = (bool(changed - {WRITE_RESULTS}) and not quick and data_dir is None
                    and WRITE_RESULTS not in parameters and WRITE_RESULTS not in text_parameters
                    and any(WRITE_RESULTS in declared for declared in specs.values()))
    if keep_results:
        parameters = {**parameters, WRITE_RESULTS: False}
    scratch = None
    if not dry_run and ((quick and None in (figures_dir, data_dir, build_dir)) or (changed and figures_dir is None)):
        # figures/ holds the default figures: a quick build writes every folder not given into a
        # temporary one, a build with other parameters at least its figures
        scratch = _scratch_root()
        figures_dir = figures_dir if figures_dir is not None else scratch / "figures"
        if quick:
            data_dir = data_dir if data_dir is not None else scratch / "data"
            build_dir = build_dir if build_dir is not None else scratch / "build"
    for value, flag in ((figures_dir, "--figures-dir"), (data_dir, "--data-dir"), (build_dir, "--build-dir")):
        if value is not None:
            check_output_folder(value, flag)
    if scratch is not None and quick:
        say(f"lcamlab figures --quick: writing into {scratch} (the repository's figures/ and data/ are left as "
            f"they are; --figures-dir, --data-dir, --build-dir choose other folders)")
    elif scratch is not None:
        say(f"lcamlab figures: -p {', '.join(sorted(changed))} differ from the notebooks' defaults: writing the "
            f"figures into {figures_dir} (figures/ keeps the default ones; --figures-dir figures replaces them)")
    if keep_results and not dry_run:
        say(f"lcamlab figures: the claims ledger and the summary tables in data/ keep the default parameters' "
            f"results (-p {WRITE_RESULTS} True writes this build's; --data-dir gives it a folder of its own)")
    if dry_run:
        results = []
        for nb in notebooks:
            if nb in unreadable:
                results.append(BuildResult(nb, False, 0.0, Path(build_dir or BUILD_DIR) / nb.name,
                                           error=unreadable[nb]))
                continue
            own = {k: v for k, v in parameters.items() if k in specs[nb]}
            own_text = {k: v for k, v in text_parameters.items() if k in specs[nb]}
            values = _resolve_values(nb, specs[nb], notebook_metadata(nb), quick=quick, parameters=own,
                                     text_parameters=own_text)
            results.append(BuildResult(nb, True, 0.0, Path(build_dir or BUILD_DIR) / nb.name, values))
        return results
    if show_progress is None:
        show_progress = sys.stderr.isatty()

    # Share the cores between parallel kernels instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // min(jobs, len(notebooks)))
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPLBACKEND")}
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ["MPLBACKEND"] = "Agg"
    cancellation = _Cancellation()

    def run_one(nb: Path) -> BuildResult:
        if nb in unreadable:
            return BuildResult(nb, False, 0.0, Path(build_dir or BUILD_DIR) / nb.name, error=unreadable[nb])
        own = {k: v for k, v in parameters.items() if k in specs[nb]}
        own_text = {k: v for k, v in text_parameters.items() if k in specs[nb]}
        return execute_notebook(nb, parameters=own, text_parameters=own_text, quick=quick, figures_dir=figures_dir,
                                data_dir=data_dir, build_dir=build_dir, progress=show_progress and jobs == 1,
                                _cancellation=cancellation)

    results: list[BuildResult] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(notebooks), desc="notebooks", unit="nb", disable=not show_progress)
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures: dict[Future, Path] = {}
    try:
        futures = {pool.submit(run_one, nb): nb for nb in notebooks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                results.append(result)
                bar.update(1)
                bar.write("  " + result.describe())
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        stopped = _cancel(pool, futures, cancellation)
        say("lcamlab figures: interrupted: " + stopped)
        raise
    finally:
        bar.close()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if scratch is not None:
        say(f"lcamlab figures{' --quick' if quick else ''}: figures in {figures_dir}")
    order = {nb: i for i, nb in enumerate(notebooks)}
    return sorted(results, key=lambda r: order[r.notebook])


def _cancel(pool: ThreadPoolExecutor, futures: dict[Future, Path], cancellation: _Cancellation) -> str:
    """Stop a build: cancel queued notebooks, interrupt running kernels, kill them if they linger."""
    previous = signal.getsignal(signal.SIGINT)
    escalate = threading.Event()

    def again(signum, frame):  # a second Ctrl-C while stopping: kill the kernels now
        escalate.set()

    try:
        signal.signal(signal.SIGINT, again)
    except ValueError:  # not the main thread
        previous = None
    try:
        pool.shutdown(wait=False, cancel_futures=True)
        cancellation.interrupt()
        not_started = [nb.stem for f, nb in futures.items() if f.cancelled()]
        running = [f for f in futures if not f.done()]
        deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
        killed = False
        while any(not f.done() for f in running):
            wait(running, timeout=0.2)
            if not killed and (escalate.is_set() or time.monotonic() > deadline):
                cancellation.kill()
                killed = True
                deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
            elif killed and time.monotonic() > deadline:
                break  # threads that still wait on a dead kernel: leave them, the kernels are gone
        stopped = [futures[f].stem for f in running]
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    parts = []
    if stopped:
        parts.append(f"stopped {', '.join(stopped)} ({'killed' if killed else 'interrupted'}, kernels shut down)")
    if not_started:
        parts.append(f"never started {', '.join(not_started)}")
    return "; ".join(parts) or "nothing was running"


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab figures``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="notebooks to run: 00, 00_optimizer_zoo or optimizer_zoo (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="use each notebook's small parameters (the ones the tests use); without the --*-dir "
                             "options, writes into a temporary folder, never over figures/ or data/")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a notebook parameter, checked against the type of its parameters cell "
                             "(VALUE is a Python literal or a string); repeatable")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="notebooks executed in parallel (default 1)")
    parser.add_argument("--figures-dir", default=None,
                        help="where figures are written (default: figures/; with --quick, or with a -p value other "
                             "than the notebook's default, a new temporary folder, printed)")
    parser.add_argument("--data-dir", default=None, help="where results and caches go (default: data/)")
    parser.add_argument("--build-dir", default=None,
                        help="where executed copies go (default: notebooks/.build/, git-ignored and hidden)")
    parser.add_argument("--list", action="store_true", help="list the notebooks and their parameters, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the notebooks and every -p value, print what would run, execute nothing")


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab figures``."""
    if args.list:
        status = 0
        for nb in resolve_notebooks(args.names or None):
            try:
                specs = parameter_specs(nb)
                meta = notebook_metadata(nb)
            except NotebookError as error:
                print(f"{nb.stem}: not readable: {error}")
                status = 1
                continue
            print(f"{nb.stem}")
            for spec in specs.values():
                print(f"    {spec.name} = {spec.default}  ({spec.kind})")
            for line, name, text in unparsed_parameter_lines(nb):
                print(f"    {name}: line {line} is not parsed by papermill (cannot be set with -p): {text}")
            if meta.get("quick_parameters"):
                print(f"    --quick: {meta['quick_parameters']}")
        return status
    text_parameters = {key: value for key, value in args.parameter}
    start = time.perf_counter()
    results = build(args.names or None, quick=args.quick, text_parameters=text_parameters, jobs=args.jobs,
                    figures_dir=args.figures_dir, data_dir=args.data_dir, build_dir=args.build_dir,
                    dry_run=args.dry_run)
    failed = [r for r in results if not r.ok]
    if args.dry_run:
        for result in results:
            shown = {k: v for k, v in result.parameters.items() if k not in ("figures_dir", "data_dir")}
            print(f"  would run {result.notebook.name} with {shown}" if result.ok else "  " + result.describe())
        return 1 if failed else 0
    # one line per notebook was printed as it finished; this is the one summary
    print(f"{len(results) - len(failed)} of {len(results)} notebooks built in {time.perf_counter() - start:.1f} s")
    if failed:
        print(" ".join((f"lcamlab figures: {len(failed)} notebook(s) failed: " + ", ".join(
            f"{r.notebook.name} ({'cell ' + str(r.cell_index) if r.cell_index is not None else r.error})"
            for r in failed)).split()), file=sys.stderr)
        return 1
    return 0
