"""The ``lcamlab`` command line (also ``python -m lcamlab``).

Every subcommand lives in the module that implements it; this file is only the
index. A subcommand module provides two functions:

* ``configure_parser(parser: argparse.ArgumentParser) -> None`` adds its arguments;
* ``main(args: argparse.Namespace) -> int`` runs it and returns the exit status.

The error boundary is :func:`main`: everything a user can cause (a bad value, a
missing or damaged file, a full disk, a folder that is a file, Ctrl-C) ends as one
line ``lcamlab: error: <what, which path, the fix>`` and exit status 2 (130 for
Ctrl-C), never as a traceback. :func:`describe_error` writes that line for the
known failure types; ``--debug`` (anywhere on the command line) or
``LCAMLAB_DEBUG=1`` also prints the traceback (:func:`debug_from_env` reads the
variable: ``1/true/yes/on`` or ``0/false/no/off``; any other value is refused). Before a subcommand computes
anything, :func:`preflight` checks what it will need at the end: its output
folders and files (``--runs-dir``, ``--figures-dir``, ``escape --data-dir``,
``bench wrn --out``), ``--device`` and ``--seed``, so that a result is never
computed only to be lost for want of a place to write it.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import tarfile
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "UsageError", "SUBCOMMANDS", "BENCHMARKS", "KNOWN_ERRORS", "describe_error",
           "preflight", "check_device", "check_seed", "DEBUG_ENV", "debug_from_env"]

#: ``LCAMLAB_DEBUG=1`` prints the traceback of an error as well as its one line.
DEBUG_ENV = "LCAMLAB_DEBUG"
_SWITCH = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("", "0", "false", "no", "off"), False)}


class UsageError(Exception):
    """A mistake the user can fix; printed as ``lcamlab: error: <message>``."""


def debug_from_env() -> bool:
    """Whether ``$LCAMLAB_DEBUG`` asks for tracebacks: the one reader of its value (case and spaces ignored).

    Raises:
        UsageError: a value that is neither on (``1``, ``true``, ``yes``, ``on``) nor off (unset, empty,
            ``0``, ``false``, ``no``, ``off``).
    """
    value = os.environ.get(DEBUG_ENV, "")
    try:
        return _SWITCH[value.strip().lower()]
    except KeyError:
        raise UsageError(f"Invalid {DEBUG_ENV}={value!r}: use 1, true, yes or on to show tracebacks, "
                         f"0, false, no or off (or leave it unset) not to") from None


#: What the boundary turns into one line (anything else is a bug: its traceback is shown).
KNOWN_ERRORS: tuple[type[BaseException], ...] = (UsageError, ValueError, OSError, EOFError, tarfile.TarError)


# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "figures": ("lcamlab.figures", "rebuild figures by executing the notebooks headlessly (papermill)"),
    "escape": ("lcamlab.escape.cli", "Styblinski-Tang valley and saddle escape-time experiments"),
    "train": ("lcamlab.train.cli", "train a Wide-ResNet on CIFAR-10/100 or FMNet on Fashion-MNIST (resumable, DDP)"),
    "grid": ("lcamlab.train.grid_cli", "create, resume and complete the run set of a paper figure"),
    "paper": ("lcamlab.paper.cli", "the LCAM paper's published curves: extract and summarise them"),
    "claims": ("lcamlab.experiments.claims_cli", "the claims ledger: print it, write the README's findings from it"),
    "lab": ("lcamlab.lab", "open JupyterLab on the repository with the notebooks in front"),
}

# lcamlab bench NAME: benchmarks are scripts that print ratios measured side by side in one run.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "optim": ("lcamlab.bench.optim_step", "LCAM step vs torch SGD(foreach) on the WRN-28-10 shapes"),
    "toys": ("lcamlab.bench.toys", "batched toy runner vs a per-trial Python loop"),
    "escape": ("lcamlab.bench.escape", "numba escape loop vs the eager batched runner "
                                         "(--vs-loop: the eager runner vs a per-trial Python loop)"),
    "wrn": ("lcamlab.bench.wrn", "WRN-28-10 training throughput: lcamlab engine vs the authors' loop"),
    "gpu": ("lcamlab.bench.gpu", "the GPU check: every CUDA test and the CUDA benchmarks, one table and JSON report"),
}


def _add_module_parser(subparsers, name: str, module_name: str, help_text: str) -> None:
    module = importlib.import_module(module_name)
    parser = subparsers.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0])
    module.configure_parser(parser)
    parser.set_defaults(_handler=module.main)


# reStructuredText of the modules' docstrings that --help shows: ``x``, :func:`x`, **x**, `text <url>`_, a
# literal block's "::"
_MARKUP = ((re.compile(r":[a-z]+:`~?([^`]+)`"), r"\1"), (re.compile(r"``([^`]+)``"), r"\1"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"\1"), (re.compile(r"`([^`<]+?) <([^>]+)>`_"), r"\1 (\2)"),
           (re.compile(r"::$", re.MULTILINE), ":"))


def plain_text(text: str | None) -> str | None:
    """``text`` with the reStructuredText markup of a docstring removed, as a terminal shows help."""
    if text is None:
        return None
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Every description, epilog and option help of ``parser`` and its subcommands as plain text."""
    parser.description, parser.epilog = plain_text(parser.description), plain_text(parser.epilog)
    for action in parser._actions:  # argparse keeps them here; it has no public accessor
        action.help = plain_text(action.help) if isinstance(action.help, str) else action.help
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _plain_help(sub)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser. Only the chosen subcommand's module is imported, so ``--help`` stays fast."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from lcamlab import __version__

    parser = argparse.ArgumentParser(
        prog="lcamlab",
        description="lcamlab: optimizer-dynamics research notebooks (LCAM, Adai, AdaRem, escape times, WRN/CIFAR).",
    )
    parser.add_argument("--version", action="version", version=f"lcamlab {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"on an error, also print the traceback (anywhere on the line; or {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(title="subcommands", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            _add_module_parser(subparsers, name, module_name, help_text)
        else:
            subparsers.add_parser(name, help=help_text)
    bench = subparsers.add_parser("bench", help="benchmarks that print side-by-side speed ratios",
                                  description="Benchmarks: each prints ratios measured side by side in one run.")
    # required: "lcamlab bench" alone is a usage error (exit 2), like "lcamlab paper"
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="NAME", dest="benchmark", required=True)
    bench_name = None
    if chosen == "bench":
        rest = argv[argv.index("bench") + 1:]
        bench_name = next((a for a in rest if not a.startswith("-")), None)
    for name, (module_name, help_text) in BENCHMARKS.items():
        if name == bench_name:
            _add_module_parser(bench_sub, name, module_name, help_text)
        else:
            bench_sub.add_parser(name, help=help_text)
    _plain_help(parser)
    return parser


def _split_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` may stand anywhere before a ``--``; it is taken out before parsing."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    return debug, [a for i, a in enumerate(argv) if not (i < end and a == "--debug")]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lcamlab`` console script (the one error boundary)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, argv = _split_debug(argv)
    shown = warnings.showwarning
    try:
        debug = debug or debug_from_env()
        if not debug:
            warnings.showwarning = _one_line_warning
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        handler = getattr(args, "_handler", None)
        if handler is None:  # "lcamlab" alone: show what there is
            parser.print_help()
            return 2
        preflight(args)
        return int(handler(args) or 0)
    except BrokenPipeError:  # `lcamlab ... | head`: the reader left; not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python's recipe for a closed pipe
        except OSError:
            pass
        return 141
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("lcamlab: interrupted (Ctrl-C): stopped; files are written atomically, so nothing is half-written "
              "(a training run continues with `lcamlab train --resume RUN_DIR`)", file=sys.stderr)
        return 130
    except KNOWN_ERRORS as error:
        if debug:
            traceback.print_exc()
        print(f"lcamlab: error: {describe_error(error)}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line ``lcamlab: warning: ...`` (``--debug`` shows Python's usual form)."""
    try:
        print(f"lcamlab: warning: {_one_line(message)}", file=file or sys.stderr)
    except OSError:
        pass


# --------------------------------------------------------------------------------------
# One line per error
# --------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _where(error: OSError) -> str:
    names = [n for n in (error.filename, getattr(error, "filename2", None)) if n is not None]
    return " -> ".join(os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in names)


def _describe_os_error(error: OSError) -> str:
    path = _where(error)
    at = f" {path}" if path else ""
    code = error.errno
    if code == errno.ENOSPC:
        return (f"no space left on device while writing{at}: free space on that disk (or choose a folder on "
                f"another one) and run the command again")
    if code == errno.EDQUOT:
        return f"disk quota exceeded while writing{at}: free space or choose another folder, then run it again"
    if code == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0) if path else 0
        return (f"file name too long:{at} (a name of {longest} bytes; most file systems allow 255): "
                f"choose a shorter name (e.g. a shorter --run-id or folder)")
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied:{at}: choose a location you can write to (or fix its permissions)"
    if code == errno.EROFS:
        return f"read-only file system:{at}: choose a folder on a writable disk"
    if isinstance(error, IsADirectoryError) or code == errno.EISDIR:
        return f"{path or 'the path'} is a folder, but a file was expected: give the path of a file"
    if isinstance(error, NotADirectoryError) or code == errno.ENOTDIR:
        return (f"{path or 'the path'}: a part of this path is a file, not a folder: choose a path whose "
                f"parents are folders")
    if isinstance(error, FileExistsError) or code == errno.EEXIST:
        kind = "a file" if path and Path(path).is_file() else "already there"
        return f"{path or 'the path'} exists ({kind}): choose another path or move it away"
    if isinstance(error, FileNotFoundError) or code == errno.ENOENT:
        return f"no such file or folder:{at}: check the path"
    reason = error.strerror or str(error)
    return f"{reason}:{at}" if at else reason


def describe_error(error: BaseException) -> str:
    """The one line (without ``lcamlab: error: ``) that the boundary prints for ``error``.

    Messages lcamlab writes itself (any exception raised with a message, whose
    class is not an OS error carrying an errno) are printed as they are; an OS
    error is described by its errno with the path it names and the fix.
    """
    if isinstance(error, OSError) and error.errno is not None and not type(error).__module__.startswith("lcamlab"):
        return _one_line(_describe_os_error(error))
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        return _one_line(error.strerror)
    if isinstance(error, (EOFError, tarfile.TarError)):
        return _one_line(f"a file ended early or is not a valid archive ({type(error).__name__}: {error}); "
                         f"replace it (run with --debug to see which file)")
    text = str(error)
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    return _one_line(text or type(error).__name__)


# --------------------------------------------------------------------------------------
# Checks before any computation
# --------------------------------------------------------------------------------------


def check_device(name: str, flag: str = "--device") -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` on a machine that has it; otherwise ``ValueError``."""
    if not isinstance(name, str) or name == "auto":
        return
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"Invalid {flag} {name!r}: not a device name; use cpu, cuda or cuda:N "
                         f"(N a number, e.g. cuda:0)") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"Invalid {flag} {name!r}: lcamlab runs on cpu or cuda (cuda:N); use one of those")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Invalid {flag} {name!r}: CUDA is not available here; use {flag} cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"Invalid {flag} {name!r}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")


def check_seed(value, flag: str = "--seed") -> None:
    """A seed is an integer in ``0 .. 2**63 - 1`` everywhere (train, escape, bench, figures)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"Invalid {flag}: {value!r} (must be an integer in 0..2**63-1, as for lcamlab train)")


# handler module -> [(attribute, option, kind)] of the locations it writes at the end
_OUTPUTS: dict[str, list[tuple[str, str, str]]] = {
    "lcamlab.figures": [("figures_dir", "--figures-dir", "folder"), ("data_dir", "--data-dir", "folder"),
                        ("build_dir", "--build-dir", "folder")],
    "lcamlab.escape.cli": [("data_dir", "--data-dir", "folder")],
    "lcamlab.bench.wrn": [("out", "--out", "file")],
    "lcamlab.train.cli": [("runs_dir", "--runs-dir", "folder")],
    "lcamlab.train.grid_cli": [("runs_dir", "--runs-dir", "folder")],
}


def preflight(args: argparse.Namespace) -> None:
    """Check ``args`` before the subcommand computes anything (see the module docstring)."""
    module = getattr(getattr(args, "_handler", None), "__module__", "")
    if isinstance(getattr(args, "device", None), str):
        check_device(args.device)
    if isinstance(getattr(args, "seed", None), int):  # one integer seed (a list or None is the command's own)
        check_seed(args.seed)
    escape_command = getattr(args, "escape_command", None)
    if module == "lcamlab.escape.cli" and escape_command == "show" and Path(args.path).is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(args.path))
    if module == "lcamlab.escape.cli" and escape_command not in ("saddle", "run"):  # show and points write nothing
        return
    if module == "lcamlab.train.cli" and getattr(args, "resume", None) is not None:
        return
    for attribute, flag, kind in _OUTPUTS.get(module, []):
        value = getattr(args, attribute, None)
        if value is None:
            continue
        # imported here: it imports torch (2 s), which a command without outputs may never need
        from lcamlab.provenance import check_output_file, check_output_folder

        if kind == "folder":
            check_output_folder(value, flag)
            if module == "lcamlab.escape.cli":
                check_output_folder(Path(value) / "escape", f"{flag} (its escape/ folder)")
        else:
            check_output_file(value, flag)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
