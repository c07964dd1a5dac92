"""``lcamlab grid``: create, resume and complete the run set of a paper figure.

``lcamlab grid fig3 --seeds 3`` trains the four momentum groups of the LCAM paper's Figure 3
(CIFAR-10, step schedule) with seeds 0, 1, 2: twelve runs in
``data/runs/fig3-cifar10-m<below>-<above>-s<seed>/``. Finished runs are skipped
and unfinished ones resumed, so the same command can be repeated in later
sessions, or on several GPUs at once (a run being trained elsewhere is skipped).
Examples::

    lcamlab grid fig4 --seeds 5 --status          # where the CIFAR-100 grid stands
    lcamlab grid fig5 --dataset cifar100 --seeds 4 --first-seed 4
    lcamlab grid fig3 --seeds 2 --epochs 40 --runs-dir data/runs-short
    lcamlab grid fmnist --seeds 8 --threads 1     # the Fashion-MNIST grid of notebooks 03/04
"""

from __future__ import annotations

import argparse
import sys

from lcamlab.train.cli import add_config_arguments, config_overrides

__all__ = ["configure_parser", "main"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab grid``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("grid_figure", metavar="FIGURE", help="fig3 (CIFAR-10 groups), fig4 (CIFAR-100 groups), "
                        "fig5 (final training, both datasets), or a Fashion-MNIST run set: fig3-fmnist, "
                        "fig5-fmnist, controls-fmnist, or fmnist (all three, seed by seed)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="number of seeds per momentum group (default 1)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="K",
                        help="seeds K..K+N-1 (split a grid across machines; default 0)")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None, metavar="S",
                        help="explicit seeds instead of --seeds/--first-seed")
    parser.add_argument("--status", action="store_true", help="print where every run stands and train nothing")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (torch.set_num_threads; default: torch's)")
    parser.add_argument("--progress", default="auto", metavar="MODE",
                        help="auto (a progress bar on a terminal, else one line per epoch), bar, lines or none")
    add_config_arguments(parser, exclude=("momentum", "seed", "figure", "run_id", "optimizer"))


def _seeds(args: argparse.Namespace):
    if args.seed_list is not None:
        if args.seeds is not None or args.first_seed != 0:
            raise ValueError("Invalid seeds: give either --seed-list or --seeds/--first-seed, not both")
        return list(args.seed_list)
    count = 1 if args.seeds is None else args.seeds
    if count <= 0:
        raise ValueError(f"Invalid --seeds: {count} (the number of seeds must be > 0)")
    if args.first_seed < 0:
        raise ValueError(f"Invalid --first-seed: {args.first_seed} (must be >= 0)")
    return list(range(args.first_seed, args.first_seed + count))


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab grid``; returns the exit status."""
    from lcamlab.train.grid import figure_configs, grid_status, run_grid

    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ValueError(f"Invalid --threads: {args.threads} (must be >= 1)")
        torch.set_num_threads(args.threads)
    overrides = config_overrides(args)
    dataset = overrides.pop("dataset", None)
    configs = figure_configs(args.grid_figure, dataset=dataset, seeds=_seeds(args), **overrides)
    if args.status:
        table = grid_status(configs)
        columns = ["run_id", "state", "epochs_done", "epochs"]
        print(table[columns].to_string(index=False))
        for _, row in table[table["state"] == "conflict"].iterrows():
            print(f"conflict in {row['run_dir']}: {row['conflict']}", file=sys.stderr)
        counts = table["state"].value_counts().to_dict()
        print("; ".join(f"{n} {state}" for state, n in sorted(counts.items())))
        return 0
    run_dirs = run_grid(configs, progress=args.progress)
    states = grid_status(configs)["state"].value_counts().to_dict()
    print(f"{len(run_dirs)} runs: " + "; ".join(f"{n} {state}" for state, n in sorted(states.items())))
    return 0 if set(states) <= {"finished"} else 1
