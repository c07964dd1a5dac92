"""lcamlab train: train (or resume) one run: a Wide-ResNet on CIFAR-10/100, or FMNet on Fashion-MNIST.

Every option is a field of lcamlab.train.TrainConfig; what is not
given keeps the LCAM paper's value (its section 4: WRN-28-10, batch 128, lr 0.1,
weight decay 5e-4, 150 epochs, LCAM (0.9, 0.95), step schedule). Without --arch
each data set gets its model: the WRN for CIFAR, FMNet for Fashion-MNIST (whose
1-channel images the WRN cannot take). Examples:

    lcamlab train --dataset fashion-mnist --epochs 1 --train-subset 2000 --download
    lcamlab train --dataset cifar100 --momentum 0.93 0.9 --schedule lcam-exp --seed 1
    lcamlab train --optimizer sgd --momentum 0.9 --epochs 200 --schedule wrn
    lcamlab train --resume data/runs/lcam-cifar10-step-m0.9-0.95-s0
    torchrun --nproc_per_node 8 -m lcamlab train --run-id wide-8gpu
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from lcamlab.train.config import LOCATION_FIELDS, TrainConfig

__all__ = ["configure_parser", "main", "add_config_arguments", "config_overrides"]

# How each annotation (a string under `from __future__ import annotations`) is parsed.
_TYPES = {
    "str": str, "str | None": str, "int": int, "int | None": int,
    "float": float, "float | None": float,
}


def add_config_arguments(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """One option per :class:`TrainConfig` field (help from the field, default: the paper's).

    Options not given on the command line are absent from the parsed namespace,
    so :func:`config_overrides` returns only what the user chose.
    """
    group = parser.add_argument_group("training configuration (defaults: the paper's)")
    for spec in dataclasses.fields(TrainConfig):
        if spec.name in exclude:
            continue
        flag = "--" + spec.name.replace("_", "-")
        default = spec.default if spec.default is not dataclasses.MISSING else None
        help_text = spec.metadata.get("help", spec.name)
        if "(default" not in help_text:  # some fields describe their default themselves
            help_text += f" (default: {_show(default)})"
        kwargs = dict(dest=spec.name, default=argparse.SUPPRESS, help=help_text)
        if spec.type == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif spec.type == "tuple[float, float]":
            group.add_argument(flag, nargs="+", type=float, metavar="BETA", **kwargs)
        elif spec.type == "tuple[float, ...] | None":
            group.add_argument(flag, nargs="+", type=float, metavar="X", **kwargs)
        else:
            metavar = spec.name.upper()
            group.add_argument(flag, type=_TYPES[spec.type], metavar=metavar, **kwargs)


def _show(value) -> str:
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" for v in value)
    return "none" if value is None else str(value)


def config_overrides(args: argparse.Namespace) -> dict:
    """The config fields given on the command line: ``{field: value}``."""
    return {name: getattr(args, name) for name in TrainConfig.field_names() if hasattr(args, name)}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab train``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR exactly from its last checkpoint (only --device, "
                             "--data-dir, --download and --compile may be given with it)")
    parser.add_argument("--progress", default="auto", metavar="MODE",
                        help="auto (a progress bar on a terminal, else one line per epoch), bar, lines or none")
    add_config_arguments(parser, exclude=("figure",))


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab train``; returns the exit status (1 if the training diverged)."""
    from lcamlab.train.runner import RunBusyError, TrainingDivergedError, resume, train

    overrides = config_overrides(args)
    try:
        if args.resume is not None:
            experiment = sorted(set(overrides) - LOCATION_FIELDS)
            if experiment:
                raise ValueError(
                    f"--resume continues a run with its stored configuration; remove "
                    f"{', '.join('--' + n.replace('_', '-') for n in experiment)} (only --device, --data-dir, "
                    f"--download, --compile may change), or start a new run without --resume"
                )
            location = {k: v for k, v in overrides.items() if k not in ("runs_dir", "run_id")}
            run_dir = resume(args.resume, progress=args.progress, **location)
        else:
            config = TrainConfig.from_overrides(overrides)
            run_dir = train(config, progress=args.progress)
    except TrainingDivergedError as error:
        print(f"lcamlab: training diverged: {error}", file=sys.stderr)
        return 1
    except RunBusyError as error:
        print(f"lcamlab: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one replica reports
        print(f"run folder: {run_dir}")
    return 0
