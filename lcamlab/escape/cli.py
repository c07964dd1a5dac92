"""Styblinski-Tang valley and saddle escape-time experiments from the shell (``lcamlab escape``).

Subcommands:

* ``lcamlab escape run`` runs (or resumes, or reads from the cache) the valley experiment,
  the sharp-valley design of :mod:`lcamlab.escape.design` on the numba loop
  (:mod:`lcamlab.escape.loop`, run by :mod:`lcamlab.escape.fused`), with a checkpoint per (optimizer, arm, k) and progress
  with an ETA, and prints the Kramers fits, the jump diagnostics and LCAM against its
  controls;
* ``lcamlab escape saddle`` runs (or reads from the cache) the saddle experiment and
  prints the mean exit times and their power law in the negative curvature;
* ``lcamlab escape show FILE.csv`` prints the tables of a saved saddle result;
* ``lcamlab escape points`` prints the exact critical points of the training loss.

Results go to ``<data-dir>/escape/<experiment>_<config hash>.csv`` (+ ``.json``);
the same configuration is a cache hit, a different one a new file.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lcamlab.escape.cache import escape_dir, load_or_run, load_result
from lcamlab.escape.config import (
    SADDLE_LRS, EscapeConfig, check_size, default_optimizers, landscape_bytes, quick_config,
)
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.rates import saddle_exponent_table, saddle_table

__all__ = ["configure_parser", "main", "config_from_args"]


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number list {text!r} (expected e.g. 2,2.5,3)") from None
    if not values:
        raise argparse.ArgumentTypeError(f"invalid number list {text!r} (no values)")
    return values


def _key_list(text: str) -> tuple[str, ...]:
    keys = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    unknown = [k for k in keys if k not in SADDLE_LRS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"invalid optimizer(s) {unknown or text!r} (choose from {','.join(SADDLE_LRS)})")
    return keys


def _lr_override(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    key = key.strip().lower()
    if not sep or key not in SADDLE_LRS:
        raise argparse.ArgumentTypeError(f"invalid --lr {text!r} (expected KEY=VALUE with KEY one of {','.join(SADDLE_LRS)})")
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid --lr value in {text!r} (not a number)") from None


def _add_saddle_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EscapeConfig()
    parser.add_argument("--sharpness", type=_float_list, default=None, metavar="K1,K2,...",
                        help=f"sharpness values k > 0 (default: {', '.join(f'{k:.3g}' for k in defaults.sharpness)})")
    parser.add_argument("--trials", type=int, default=None, help=f"trials per (optimizer, k) (default {defaults.trials})")
    parser.add_argument("--budget", type=int, default=None,
                        help=f"iterations before a trial is censored (default {defaults.budget})")
    parser.add_argument("--optimizers", type=_key_list, default=None, metavar="KEYS",
                        help=f"comma-separated optimizer keys (default all: {','.join(SADDLE_LRS)})")
    parser.add_argument("--lr", type=_lr_override, action="append", default=[], metavar="KEY=VALUE",
                        help="override one optimizer's calibrated learning rate, e.g. --lr adam=0.05 (repeatable)")
    parser.add_argument("--dim", type=int, default=defaults.dim, help="parameter dimension n (default 10, as the Adai paper)")
    parser.add_argument("--samples", type=int, default=defaults.n_samples,
                        help="training-set size N (default 50000, as the Adai paper)")
    parser.add_argument("--noise-scale", type=float, default=defaults.noise_scale,
                        help="standard deviation of the Gaussian data samples (default 1.0)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="mini-batch size (default 1)")
    parser.add_argument("--radius", type=float, default=defaults.radius,
                        help="half-width of the saddle neighbourhood along the unstable direction, "
                             "in sqrt(k)*theta units (default 1.0)")
    parser.add_argument("--lcam-mean", choices=("epoch", "ema"), default=defaults.lcam_mean,
                        help="LCAM's running mean: the epoch mean of the LCAM paper (default) or an EMA")
    parser.add_argument("--epoch-length", type=int, default=None,
                        help="iterations per epoch for LCAM/AdaRem (default: one pass, samples // batch size)")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"iterations that warm the optimizer state up at the start point before the clock "
                             f"starts, parameters held fixed; 0 = the Adai paper's cold start (default {defaults.warmup})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training set and mini-batch stream (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="simulation precision (default float32)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (4 sharpness values, 24 trials, shorter budget) for a smoke test, written "
                             "into a new temporary folder (printed) unless --data-dir is given")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"results folder; tables go to DATA_DIR/escape/ (default {escape_dir().parent})")
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute and replace an existing result of the same configuration")
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``escape`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="escape_command", title="escape commands", metavar="COMMAND")
    saddle = sub.add_parser("saddle", help="time to leave an index-1 saddle vs its negative curvature",
                            description="Run (or read from data/escape/) the saddle experiment and print mean exit "
                                        "times and their power law in the negative curvature.")
    _add_saddle_arguments(saddle)
    points = sub.add_parser("points", help="exact critical points of the training loss",
                            description="Print each coordinate's valley minimum, boundary, deep minimum, barrier "
                                        "and curvatures, computed from the data's empirical moments.")
    points.add_argument("--dim", type=int, default=10, help="parameter dimension n (default 10)")
    points.add_argument("--samples", type=int, default=50_000, help="training-set size N (default 50000)")
    points.add_argument("--noise-scale", type=float, default=1.0, help="data standard deviation (default 1.0)")
    points.add_argument("--seed", type=int, default=0, help="seed of the training set (default 0)")
    points.add_argument("--sharpness", type=float, default=1.0,
                        help="also show positions and Hessian eigenvalues in theta at this k (default 1)")
    run = sub.add_parser("run", help="the valley experiment: is escape diffusive? (sharp valley, noise arms, Kramers fits)",
                         description="Run, resume or read from data/escape/ the sharp-valley design (lcamlab.escape.design): "
                                     "one checkpoint per (optimizer, arm, k); prints alpha per optimizer and arm, "
                                     "the jump diagnostics and LCAM against its controls.")
    run.add_argument("--quick", action="store_true",
                     help="a small design (SGD and LCAM with its controls, 32 trials, short escape times), written "
                          "into a new temporary folder (printed) unless --data-dir is given")
    run.add_argument("--trials", type=int, default=None, help="trials per (optimizer, arm, k) (default 6400)")
    run.add_argument("--optimizers", default=None, metavar="KEYS",
                     help="comma-separated (default sgd,adam,momentum,lcam-above,lcam-below,adai,adarem)")
    run.add_argument("--arms", default=None, metavar="ARMS", help="comma-separated noise arms (default data,gauss)")
    run.add_argument("--no-controls", action="store_true", help="leave out LCAM's shuffled and matched controls")
    run.add_argument("--data-dir", type=Path, default=None,
                     help=f"results folder; checkpoints and the table go to DATA_DIR/escape/ "
                          f"(default {escape_dir().parent})")
    run.add_argument("--overwrite", action="store_true", help="rebuild the cached table (checkpoints are reused)")
    show = sub.add_parser("show", help="print the tables of a saved saddle result",
                          description="Print the exit-time tables of a CSV written by `lcamlab escape saddle`.")
    show.add_argument("path", type=Path, help="the result CSV (its .json sidecar must sit beside it)")
    parser.set_defaults(escape_command=None)


def config_from_args(args: argparse.Namespace) -> EscapeConfig:
    """Build the :class:`EscapeConfig` an ``escape saddle`` command line asks for."""
    base = quick_config() if args.quick else EscapeConfig()
    keys = args.optimizers or tuple(SADDLE_LRS)
    lrs = dict(SADDLE_LRS)
    for key, lr in args.lr:
        if key not in keys:
            raise ValueError(f"Invalid --lr {key}={lr}: {key} is not among the optimizers run ({','.join(keys)})")
        lrs[key] = lr
    changes = dict(
        optimizers=default_optimizers(keys, lrs), dim=args.dim, n_samples=args.samples,
        noise_scale=args.noise_scale, batch_size=args.batch_size, lcam_mean=args.lcam_mean,
        epoch_length=args.epoch_length, seed=args.seed, device=args.device, dtype=args.dtype, radius=args.radius,
    )
    for name in ("sharpness", "trials", "budget", "warmup"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    config = base.replace(**changes)  # its own checks first (signs, types); then what the machine can hold
    for flag, value in (("--budget", config.budget), ("--epoch-length", config.epoch_length),
                        ("--batch-size", config.batch_size)):
        if value is not None:
            check_size(flag, value)
    check_size("--dim", config.dim, bytes_each=landscape_bytes(1, config.n_samples), what="the training set")
    check_size("--samples", config.n_samples, bytes_each=landscape_bytes(config.dim, 1), what="the training set")
    rows = len(config.sharpness)
    check_size("--trials", config.trials, bytes_each=rows * config.memory_per_trial(),
               fixed=landscape_bytes(config.dim, config.n_samples), what=f"{rows} sharpness values x the trials")
    check_size("--warmup", config.warmup, minimum=0, bytes_each=rows * config.trials * config.batch_size * 8,
               what="the warm-up's block of mini-batch indices")
    return config


def _quick_data_dir(args: argparse.Namespace, command: str) -> Path | None:
    """``--data-dir``; for ``--quick`` without one a new temporary folder (printed), as ``lcamlab figures --quick``:
    a quick run never writes into the repository's ``data/escape/``."""
    if not args.quick or args.data_dir is not None:
        return args.data_dir
    root = Path(tempfile.mkdtemp(prefix="lcamlab-escape-quick-"))
    print(f"lcamlab escape {command} --quick: writing into {root} (the repository's data/escape/ is left as it is; "
          f"--data-dir chooses another folder)")
    return root


def _print_frame(frame: pd.DataFrame, columns: list[str], formats: dict[str, str]) -> None:
    shown = frame[columns].copy()
    for column, fmt in formats.items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, f=fmt: f.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else str(v))
    print(shown.to_string(index=False))


def _print_saddle(result) -> None:
    table = saddle_table(result.frame)
    print("\nIterations to leave the saddle neighbourhood (mean, 95% t-interval):")
    _print_frame(table, ["optimizer", "k", "negative_curvature", "trials", "censored", "diverged", "mean_time",
                         "mean_lower", "mean_upper", "median_time"],
                 {"k": "{:.4g}", "negative_curvature": "{:.4g}", "mean_time": "{:.1f}", "mean_lower": "{:.1f}",
                  "mean_upper": "{:.1f}", "median_time": "{:.0f}"})
    diverged = int(table["diverged"].sum())
    if diverged:
        print(f"{diverged} trial(s) diverged (their positions overflowed to NaN): they are neither escaped nor "
              f"censored and are left out of the means; use a smaller --sharpness or --lr")
    exponents = saddle_exponent_table(table)
    print("\nmean time ~ |lambda|^p:")
    _print_frame(exponents, ["optimizer", "exponent", "exponent_lower", "exponent_upper", "r2"],
                 {"exponent": "{:.2f}", "exponent_lower": "{:.2f}", "exponent_upper": "{:.2f}", "r2": "{:.3f}"})
    unfitted = exponents[exponents["exponent"].isna()]
    if len(unfitted):
        print(f"no exponent for {', '.join(unfitted['optimizer'])}: the power law needs 3 or more sharpness values "
              f"with a finite mean time (give more --sharpness values)")


def _points(args: argparse.Namespace) -> int:
    check_size("--dim", args.dim, bytes_each=landscape_bytes(1, args.samples), what="the training set")
    check_size("--samples", args.samples, bytes_each=landscape_bytes(args.dim, 1), what="the training set")
    if not 0 < args.sharpness < math.inf:
        raise ValueError(f"Invalid --sharpness {args.sharpness}: must be a finite number > 0")
    landscape = StyblinskiTangLandscape(args.dim, args.samples, args.noise_scale, seed=args.seed)
    points = landscape.points
    theta = points.in_theta(args.sharpness)
    frame = pd.DataFrame({
        "coordinate": np.arange(points.dim), "shallow_min_u": points.shallow_min, "boundary_u": points.boundary,
        "deep_min_u": points.deep_min, "barrier": points.barrier, "curvature_min": points.curvature_shallow,
        "curvature_ridge": points.curvature_boundary,
        f"shallow_min_theta(k={args.sharpness:g})": theta["shallow_min"],
        f"boundary_theta(k={args.sharpness:g})": theta["boundary"],
    })
    print("Critical points of the training loss per coordinate (u = sqrt(k) * theta):")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    return 0


def design_from_args(args: argparse.Namespace):
    """The :class:`~lcamlab.escape.design.DesignConfig` an ``escape run`` command line asks for."""
    from lcamlab.escape.design import DESIGN_LRS, DesignConfig, quick_design, unit_count
    from lcamlab.escape.fused import ARMS

    design = quick_design() if args.quick else DesignConfig()
    changes = {}
    if args.trials is not None:
        check_size("--trials", args.trials, minimum=2)
        changes["trials"] = args.trials
    if args.optimizers is not None:  # an empty --optimizers '' is refused, not read as the default
        keys = tuple(k.strip() for k in args.optimizers.split(",") if k.strip())
        unknown = [k for k in keys if k not in DESIGN_LRS]
        if unknown or not keys:
            raise ValueError(f"Invalid --optimizers {args.optimizers!r} (choose from {','.join(DESIGN_LRS)})")
        changes["optimizers"] = keys
    if args.arms is not None:
        arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
        if not arms or any(a not in ARMS for a in arms):
            raise ValueError(f"Invalid --arms {args.arms!r} (choose from {','.join(ARMS)})")
        changes["arms"] = arms
    if args.no_controls:
        changes["controls"] = False
    design = design.replace(**changes)
    # checked before the calibrations run: every unit's table rows are held at once, plus one unit's loop state
    check_size("--trials", design.trials, minimum=2, bytes_each=unit_count(design) * 300 + design.dim * 40 + 600,
               what=f"{unit_count(design)} units x the trials")
    return design


def _run_design(args: argparse.Namespace) -> int:
    from lcamlab.escape import analysis, report
    from lcamlab.escape.design import load_or_run_design

    design = design_from_args(args)
    entry = load_or_run_design(design, _quick_data_dir(args, "run"), overwrite=args.overwrite, log=print)
    points = entry.frame
    alphas = analysis.alpha_table(points)
    print()
    print(report.design_summary(points, entry.metadata))
    print()
    print(report.alpha_summary(alphas))
    print()
    print(report.jump_summary(analysis.jump_table(points)))
    controls = analysis.control_table(points, alphas)
    if len(controls):
        print()
        print(report.control_summary(controls))
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the chosen ``escape`` subcommand; returns the exit status."""
    command = getattr(args, "escape_command", None)
    if command is None:
        raise ValueError("Missing escape command: choose one of run, saddle, show, points (see lcamlab escape --help)")
    if command == "points":
        return _points(args)
    if command == "show":
        result = load_result(args.path)
        print(f"{args.path}: {result.config.experiment}, {len(result.frame)} trials")
        _print_saddle(result)
        return 0
    if command == "run":
        return _run_design(args)
    config = config_from_args(args)
    result = load_or_run(config, _quick_data_dir(args, "saddle"), overwrite=args.overwrite, progress=args.progress,
                         log=print)
    _print_saddle(result)
    return 0
