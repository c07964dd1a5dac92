"""Benchmark: the batched escape experiment against a straightforward per-trial Python loop.

``lcamlab bench escape [--trials N] [--budget B] [--loop-trials M | --full-loop] [--dtype float64]``

Both variants run the *same* valley-escape experiment (the default configuration
of :class:`lcamlab.escape.EscapeConfig`: 8 optimizer settings x 8 sharpness values x
100 trials) on the same training set and the same mini-batch index stream:

* ``batched``: :func:`lcamlab.escape.simulate_batched`, every trial of every
  sharpness of one optimizer as one ``(trials, dim)`` tensor, one tensor operation
  per step for all of them;
* ``looped``: :func:`lcamlab.escape.simulate_looped`, one optimizer per trial,
  autograd on the literal loss, the shared runner's per-trial reference
  (:func:`lcamlab.experiments.trials.looped`) that stops each trial at its
  escape (so it does no work after an escape, unlike the batched run, which
  steps until every trial has left or the budget).

Agreement: escape iterations must be identical and the final positions of
censored trials equal to 1e-9 (float64 by default, so rounding does not make a
trial cross a boundary one iteration apart).

The loop is slow, so by default it runs ``--loop-trials`` trials per
(optimizer, k) (the first ones, which the batched run also contains); its time
for the whole experiment is then *extrapolated* as (its measured seconds per
iteration) x (the iterations the loop would run on all trials, which is exactly
every trial's warm-up plus its escape iteration capped at the budget, known from
the batched run). ``--full-loop`` runs every trial in the loop instead and measures
the ratio directly. Target: at least 50x.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lcamlab.escape.config import OPTIMIZER_KEYS, EscapeConfig, default_sharpness
from lcamlab.escape.experiment import make_landscape, trial_layout
from lcamlab.escape.regions import valley_region
from lcamlab.escape.simulate import simulate_batched, simulate_looped

__all__ = ["compare", "configure_parser", "main"]


def compare(config: EscapeConfig, *, loop_trials: int | None = 1, log=print) -> list[dict]:
    """Run both variants per optimizer setting; return one row of timings and agreement each.

    Args:
        config: the valley experiment (its dtype should be float64 for exact agreement).
        loop_trials: trials per sharpness value run by the loop (``None``: all).
        log: progress printer (``None`` for silence).
    """
    if loop_trials is not None and not (1 <= loop_trials <= config.trials):
        raise ValueError(f"Invalid --loop-trials: {loop_trials} (must be between 1 and --trials {config.trials})")
    landscape = make_landscape(config)
    region = valley_region(landscape)
    ks, trial = trial_layout(config)
    sqrt_k = torch.as_tensor(np.sqrt(ks))
    subset = np.arange(len(ks)) if loop_trials is None else np.flatnonzero(trial < loop_trials)
    common = config.simulation_options()
    # one untimed step of each kind first: imports and allocator warm-up are not part of either variant
    simulate_batched(landscape, config.optimizers[0], sqrt_k[:2], region, **{**common, "budget": 2, "warmup": 0})
    simulate_looped(landscape, config.optimizers[0], sqrt_k[:2], region, **{**common, "budget": 2, "warmup": 0})
    rows = []
    for key, spec in zip(config.keys, config.optimizers):
        batched = simulate_batched(landscape, spec, sqrt_k, region, **common)
        looped = simulate_looped(landscape, spec, sqrt_k, region, trial_subset=subset, **common)
        same_steps = batched.escape_step[subset] == looped.escape_step
        censored = ~looped.escaped & same_steps
        theta_error = (float(np.max(np.abs(batched.final_theta[subset][censored] - looped.final_theta[censored])))
                       if censored.any() else 0.0)
        # the loop's work on every trial: its warm-up plus its steps up to its escape (or the budget)
        all_iterations = int(np.minimum(batched.escape_step, config.budget).sum()) + config.warmup * len(ks)
        per_iteration = looped.seconds / max(looped.iterations, 1)
        looped_all = per_iteration * all_iterations if loop_trials is not None else looped.seconds
        row = {
            "optimizer": key,
            "batched_s": batched.seconds,
            "batched_iterations": batched.iterations,
            "loop_trials": len(subset),
            "loop_s": looped.seconds,
            "loop_us_per_iteration": per_iteration * 1e6,
            "loop_all_s": looped_all,
            "speedup": looped_all / batched.seconds,
            "agree": bool(same_steps.all() and theta_error <= 1e-9),
            "mismatched_trials": int((~same_steps).sum()),
            "max_theta_error": theta_error,
        }
        rows.append(row)
        if log is not None:
            log(f"  {key:<11} batched {batched.seconds:6.2f} s | loop {looped.seconds:6.1f} s on "
                f"{len(subset)} trials -> {looped_all:7.1f} s for all | {row['speedup']:6.1f}x | "
                f"{'agree' if row['agree'] else 'DISAGREE'}")
    return rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab bench escape``."""
    defaults = EscapeConfig()
    parser.add_argument("--trials", type=int, default=defaults.trials,
                        help=f"trials per (optimizer, k) in the batched run (default {defaults.trials})")
    parser.add_argument("--sharpness-count", type=int, default=len(defaults.sharpness),
                        help=f"number of sharpness values, the default grid (default {len(defaults.sharpness)})")
    parser.add_argument("--budget", type=int, default=defaults.budget,
                        help=f"iterations before a trial is censored (default {defaults.budget})")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZER_KEYS),
                        help="comma-separated optimizer keys (default all eight settings)")
    parser.add_argument("--loop-trials", type=int, default=1,
                        help="trials per (optimizer, k) the per-trial loop runs; its time for all trials is "
                             "extrapolated from its measured cost per iteration (default 1)")
    parser.add_argument("--full-loop", action="store_true",
                        help="run every trial in the loop too (slow: several minutes), no extrapolation")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision of both variants (default float64, for exact agreement)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and mini-batch stream (default 0)")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table; exit status 1 if the variants disagree."""
    keys = [k.strip() for k in args.optimizers.split(",") if k.strip()]
    base = EscapeConfig()
    unknown = [k for k in keys if k not in base.keys]
    if unknown or not keys:
        raise ValueError(f"Invalid --optimizers {args.optimizers!r} (choose from {','.join(OPTIMIZER_KEYS)})")
    if args.sharpness_count < 1:
        raise ValueError(f"Invalid --sharpness-count: {args.sharpness_count} (must be >= 1)")
    config = base.replace(
        trials=args.trials, budget=args.budget, sharpness=default_sharpness(args.sharpness_count),
        optimizers=tuple(base.spec(k) for k in keys), dtype=args.dtype, seed=args.seed,
    )
    trials_total = len(config.sharpness) * config.trials
    print(f"lcamlab bench escape: {len(keys)} optimizer settings x {len(config.sharpness)} sharpness values x "
          f"{config.trials} trials, budget {config.budget}, {config.dtype}, cpu, torch threads during the run: 1")
    print(f"batched: {trials_total} trials per setting as one tensor; loop: "
          f"{'every trial' if args.full_loop else f'{args.loop_trials} trials per k, extrapolated to all'}")
    started = time.perf_counter()
    rows = compare(config, loop_trials=None if args.full_loop else args.loop_trials)
    batched = sum(r["batched_s"] for r in rows)
    looped = sum(r["loop_all_s"] for r in rows)
    agree = all(r["agree"] for r in rows)
    print()
    print(f"{'optimizer':<11} {'batched s':>10} {'loop us/it':>11} {'loop s (all)':>13} {'speed-up':>9}  agree")
    for r in rows:
        print(f"{r['optimizer']:<11} {r['batched_s']:>10.2f} {r['loop_us_per_iteration']:>11.0f} "
              f"{r['loop_all_s']:>13.1f} {r['speedup']:>8.1f}x  "
              f"{'yes' if r['agree'] else 'NO (%d trials differ)' % r['mismatched_trials']}")
    print(f"{'total':<11} {batched:>10.2f} {'':>11} {looped:>13.1f} {looped / batched:>8.1f}x  "
          f"{'yes' if agree else 'NO'}")
    how = "measured" if args.full_loop else "loop time extrapolated from its measured cost per iteration"
    print(f"speed-up batched vs per-trial loop: {looped / batched:.1f}x ({how}; target >= 50x); "
          f"benchmark wall time {time.perf_counter() - started:.0f} s")
    return 0 if agree else 1
