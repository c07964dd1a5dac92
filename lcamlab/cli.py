"""The ``lcamlab`` command line (also ``python -m lcamlab``).

Every subcommand lives in the module that implements it; this file is only the
index. A subcommand module provides two functions:

* ``configure_parser(parser: argparse.ArgumentParser) -> None`` adds its arguments;
* ``main(args: argparse.Namespace) -> int`` runs it and returns the exit status.

Errors a user can fix (bad arguments, missing data, an existing run folder) are
raised as :class:`lcamlab.cli.UsageError` or ``ValueError`` / ``FileNotFoundError``
/ ``FileExistsError`` and printed as one clear line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "UsageError", "SUBCOMMANDS", "BENCHMARKS"]


class UsageError(Exception):
    """A mistake the user can fix; printed as ``lcamlab: error: <message>``."""


# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "figures": ("lcamlab.figures", "rebuild figures by executing the notebooks headlessly (papermill)"),
    "escape": ("lcamlab.escape.cli", "Styblinski-Tang valley and saddle escape-time experiments"),
    "train": ("lcamlab.train.cli", "train a Wide-ResNet on CIFAR-10/100 (resumable, DDP under torchrun)"),
    "grid": ("lcamlab.train.grid_cli", "create, resume and complete the run set of a paper figure"),
    "paper": ("lcamlab.paper.cli", "the LCAM paper's published curves: extract and summarise them"),
}

# lcamlab bench NAME: benchmarks are scripts that print ratios measured side by side in one run.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "optim": ("lcamlab.bench.optim_step", "LCAM step vs torch SGD(foreach) on the WRN-28-10 shapes"),
    "toys": ("lcamlab.bench.toys", "batched toy runner vs a per-trial Python loop"),
    "escape": ("lcamlab.bench.escape", "batched escape experiment vs a per-trial Python loop"),
    "wrn": ("lcamlab.bench.wrn", "WRN-28-10 training throughput: lcamlab engine vs the authors' loop"),
}


def _add_module_parser(subparsers, name: str, module_name: str, help_text: str) -> None:
    module = importlib.import_module(module_name)
    parser = subparsers.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0])
    module.configure_parser(parser)
    parser.set_defaults(_handler=module.main)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser. Only the chosen subcommand's module is imported, so ``--help`` stays fast."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from lcamlab import __version__

    parser = argparse.ArgumentParser(
        prog="lcamlab",
        description="lcamlab: optimizer-dynamics research notebooks (LCAM, Adai, AdaRem, escape times, WRN/CIFAR).",
    )
    parser.add_argument("--version", action="version", version=f"lcamlab {__version__}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            _add_module_parser(subparsers, name, module_name, help_text)
        else:
            subparsers.add_parser(name, help=help_text)
    bench = subparsers.add_parser("bench", help="benchmarks that print side-by-side speed ratios",
                                  description="Benchmarks: each prints ratios measured side by side in one run.")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="NAME")
    bench_name = None
    if chosen == "bench":
        rest = argv[argv.index("bench") + 1:]
        bench_name = next((a for a in rest if not a.startswith("-")), None)
    for name, (module_name, help_text) in BENCHMARKS.items():
        if name == bench_name:
            _add_module_parser(bench_sub, name, module_name, help_text)
        else:
            bench_sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lcamlab`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler = getattr(args, "_handler", None)
    if handler is None:
        # "lcamlab" or "lcamlab bench" alone: show what there is.
        if argv and argv[0] == "bench":
            parser.parse_args(["bench", "--help"])
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"lcamlab: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lcamlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
