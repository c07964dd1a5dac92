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

On a Slurm cluster (``pip install "lcamlab[cluster]"``), ``--executor slurm`` submits the runs
that still need training as one job array, one task per run, requeued and resumed from the
run's last epoch after a time-out or preemption; ``--status`` then shows each task's Slurm
state next to its run state (lcamlab.train.slurm)::

    lcamlab grid fig3 --seeds 4 --executor slurm --slurm-partition gpu --gpus 1 --cpus 8 --time 12:00:00
    lcamlab grid fig3 --seeds 4 --status
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    cluster = parser.add_argument_group(
        "cluster (submitit: pip install \"lcamlab[cluster]\"; the resources need --executor)")
    cluster.add_argument("--executor", default=None, metavar="{slurm,local,debug}",
                         help="submit the runs that need training as one submitit job array: slurm (sbatch), "
                              "local (subprocesses on this machine, same time-out and requeue) or debug (in this "
                              "process); default: train them here, one after the other")
    cluster.add_argument("--wait", action="store_true",
                         help="with --executor: wait until every task has ended, then print the grid's status")
    cluster.add_argument("--time", default=None, metavar="T",
                         help="wall-clock limit of one task, in Slurm's format (90, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]); "
                              "a run that needs longer is requeued and resumes (slurm, local; required)")
    cluster.add_argument("--gpus", type=int, default=None, metavar="N", help="GPUs per task (slurm, local)")
    cluster.add_argument("--cpus", type=int, default=None, metavar="N", help="CPUs per task (slurm)")
    cluster.add_argument("--mem", type=float, default=None, metavar="GB", help="memory per task in GB (slurm)")
    cluster.add_argument("--slurm-partition", default=None, metavar="NAME", help="Slurm partition(s), comma-separated")
    cluster.add_argument("--slurm-array-parallelism", type=int, default=None, metavar="N",
                         help="at most N tasks of the array at once (slurm; submitit's default 256)")
    cluster.add_argument("--signal-delay", type=int, default=None, metavar="S",
                         help="seconds before --time at which the task is signalled to requeue "
                              "(slurm, local; submitit's defaults 90 and 30)")
    cluster.add_argument("--max-requeue", type=int, default=None, metavar="N",
                         help="requeues after time-outs before a task gives up (slurm, local; submitit's default 3)")
    add_config_arguments(parser, exclude=("momentum", "seed", "figure", "run_id", "optimizer"))


_RESOURCE_ARGS = ("time", "gpus", "cpus", "mem", "slurm_partition", "slurm_array_parallelism", "signal_delay",
                  "max_requeue")


def _resources(args: argparse.Namespace):
    """The ``Resources`` of the command line (or one line: a resource or --wait without --executor)."""
    from lcamlab.train.slurm import EXECUTORS, Resources, parse_time

    # "is not": a value of 0 (--gpus 0, --max-requeue 0) is given, though 0 == False
    given = [name for name in (*_RESOURCE_ARGS, "wait") if getattr(args, name) is not None
             and getattr(args, name) is not False]
    if args.executor is not None and args.executor not in EXECUTORS:
        raise ValueError(f"Invalid --executor {args.executor!r}: choose one of {', '.join(EXECUTORS)} (slurm on a "
                         f"cluster's login node, local to try the grid's tasks here first)")
    if args.executor is None:
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} applies to a submitted grid only: add --executor "
                             f"slurm (or local, debug), or leave it out")
        return None
    if args.status and given:
        raise ValueError(f"--{given[0].replace('_', '-')} has no effect with --status (it submits nothing)")

    return Resources(partition=args.slurm_partition, gpus=args.gpus,
                     time_min=None if args.time is None else parse_time(args.time), cpus=args.cpus,
                     mem_gb=args.mem, array_parallelism=args.slurm_array_parallelism,
                     signal_delay_s=args.signal_delay, max_requeue=args.max_requeue)


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
    return range(args.first_seed, args.first_seed + count)  # a range: figure_configs bounds it before listing it


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab grid``; returns the exit status."""
    from lcamlab.train.grid import figure_configs, grid_status, run_grid

    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ValueError(f"Invalid --threads: {args.threads} (must be >= 1)")
        torch.set_num_threads(args.threads)
    resources = _resources(args)
    overrides = config_overrides(args)
    dataset = overrides.pop("dataset", None)
    configs = figure_configs(args.grid_figure, dataset=dataset, seeds=_seeds(args), **overrides)
    if args.status:
        _print_status(configs)
        return 0
    if args.executor is not None:
        from lcamlab.train.slurm import submit_grid, wait_for

        submitted = submit_grid(configs, args.executor, resources, name=f"lcamlab-{args.grid_figure}",
                                threads=args.threads)
        if not submitted:
            print("nothing to submit: every run is finished, diverged, already submitted or waiting for its "
                  "reference")
            return 0
        if not (args.wait or args.executor == "debug"):
            print(f"{len(submitted)} task(s) submitted; see where they stand with the same command and --status "
                  f"instead of --executor")
            return 0
        failed = wait_for(submitted)
        _print_status(configs)
        return 1 if failed else 0
    run_dirs = run_grid(configs, progress=args.progress)
    states = grid_status(configs)["state"].value_counts().to_dict()
    print(f"{len(run_dirs)} runs: " + "; ".join(f"{n} {state}" for state, n in sorted(states.items())))
    return 0 if set(states) <= {"finished"} else 1


def _print_status(configs) -> None:
    """The grid's run states; with the job id and state of each run submitted from this runs folder."""
    from lcamlab.train.grid import grid_status

    table = grid_status(configs)
    columns = ["run_id", "state", "epochs_done", "epochs"]
    from lcamlab.train.slurm import SUBMITIT_DIR, job_states

    submitted_here = configs and (Path(configs[0].runs_dir) / SUBMITIT_DIR).is_dir()
    jobs = job_states(configs[0].runs_dir, table["run_id"]) if submitted_here else {}
    if jobs:
        table["job"] = [jobs.get(run_id, ("", ""))[0] for run_id in table["run_id"]]
        table["job_state"] = [jobs.get(run_id, ("", ""))[1] for run_id in table["run_id"]]
        columns += ["job", "job_state"]
    print(table[columns].to_string(index=False))
    for _, row in table[table["state"] == "conflict"].iterrows():
        print(f"conflict in {row['run_dir']}: {row['conflict']}", file=sys.stderr)
    counts = table["state"].value_counts().to_dict()
    print("; ".join(f"{n} {state}" for state, n in sorted(counts.items())))
