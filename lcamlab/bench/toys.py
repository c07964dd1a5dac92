"""Benchmark: the batched toy runner against a per-trial Python loop.

``lcamlab bench toys [--toy spring|chain] [--optimizer lcam] [--trials N] [--steps S] [--dtype float64]``

Both variants run the *same* trials of a toy (:class:`lcamlab.toys.SpringPair`
or :class:`lcamlab.toys.ProductChain`) with the same optimizer on the same
mini-batches, in one run:

* ``batched``: :func:`lcamlab.toys.run`, all trials as one ``(trials, dim)``
  tensor, one optimizer, a fixed handful of tensor operations per step;
* ``looped``: :func:`lcamlab.toys.run_looped`, one toy and one optimizer per
  trial in a Python loop over trials inside the loop over steps (each step's
  mini-batches are drawn once for all trials, exactly as the batched runner
  draws them, and handed out slice by slice).

Agreement: trajectories, losses and (for LCAM) every below/above decision must
match; in float64 (the default) the spring agrees bit for bit and the product
chain to rounding (its reductions over a one-trial slice may sum in another
order), checked to a relative 1e-9. The command prints both timings and the
speed-up, and exits 1 if the numbers disagree.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from lcamlab.toys import ProductChain, SpringPair, ToySystem
from lcamlab.experiments.registry import PRESETS, preset
from lcamlab.toys.runner import ToyRun, run, run_looped

__all__ = ["make_toy", "compare", "configure_parser", "main"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def make_toy(name: str, trials: int, dtype: torch.dtype) -> ToySystem:
    """The benchmark's toy: the notebook's spring, or a product chain with a sparsity grid across trials."""
    if name == "spring":
        mass_ratio = torch.linspace(2.0, 50.0, trials, dtype=torch.float64)  # a different spring per trial
        return SpringPair(trials, mass_ratio=mass_ratio, coupling=0.8, noise=0.2, dtype=dtype)
    if name == "chain":
        sparsity = torch.linspace(0.0, 0.9, trials, dtype=torch.float64)
        return ProductChain(trials, sparsity=sparsity, dtype=dtype)
    raise ValueError(f"Invalid toy: {name!r} (choose 'spring' or 'chain')")


def _difference(a: ToyRun, b: ToyRun) -> tuple[float, bool]:
    """Largest relative difference of trajectories and losses, and whether the decisions agree."""
    def rel(x: torch.Tensor, y: torch.Tensor) -> float:
        scale = torch.maximum(x.abs(), y.abs()).clamp_min(1e-300)
        return float(((x - y).abs() / scale).max())

    decisions = True
    if a.lcam_below is not None:
        decisions = bool(torch.equal(a.lcam_below, b.lcam_below))
    decisions = decisions and bool(torch.equal(a.below, b.below))
    return max(rel(a.trajectory, b.trajectory), rel(a.loss, b.loss)), decisions


def compare(toy_name: str, key: str, *, trials: int, steps: int, steps_per_epoch: int, lr: float,
            dtype: torch.dtype, seed: int) -> dict[str, Any]:
    """Run both variants on the same trials; returns timings, the speed-up and the agreement."""
    toy = make_toy(toy_name, trials, dtype)
    spec = preset(key, lr)  # "lcam": LCAM at its default (0.9, 0.95); "momentum": SGD with 0.9
    kwargs = dict(steps=steps, steps_per_epoch=steps_per_epoch, seed=seed)
    run(toy.subset(slice(0, 1)), spec, steps=2, steps_per_epoch=steps_per_epoch, seed=seed)  # warm-up (imports)
    batched = run(toy, spec, **kwargs)
    looped = run_looped(toy, spec, **kwargs)
    difference, decisions = _difference(batched, looped)
    tolerance = 0.0 if toy_name == "spring" and dtype == torch.float64 else 1e-9 if dtype == torch.float64 else 1e-4
    return {
        "toy": toy_name, "optimizer": spec.label, "trials": trials, "steps": steps,
        "dtype": str(dtype).replace("torch.", ""),
        "batched_s": batched.wall_seconds, "looped_s": looped.wall_seconds,
        "speedup": looped.wall_seconds / batched.wall_seconds,
        "max_rel_difference": difference, "decisions_agree": decisions,
        "same_numbers": decisions and difference <= tolerance, "tolerance": tolerance,
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toy", choices=("spring", "chain"), default="spring",
                        help="toy system: the SpringPair of notebook 01 or a ProductChain (default: spring)")
    parser.add_argument("--optimizer", choices=list(PRESETS), default="lcam",
                        help="optimizer, a registry preset (default: lcam, with momentum (0.9, 0.95))")
    parser.add_argument("--trials", type=int, default=200, help="number of trials (default: 200)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (default: 200)")
    parser.add_argument("--steps-per-epoch", type=int, default=40,
                        help="epoch length of LCAM's running mean (default: 40)")
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (default: 0.02)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float64",
                        help="parameter dtype; float64 makes the agreement exact (default: float64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mini-batch stream (default: 0)")


def _check_sizes(args: argparse.Namespace) -> None:
    """Refuse counts the machine cannot hold, before anything is allocated (one line at the command line).

    Each variant records, per trial, the trajectory ``(steps + 1, dim)``, the losses and two decision
    flags per step; the looped variant also holds its per-trial pieces while it concatenates them:
    three such records per trial in all.
    """
    from lcamlab.escape.config import check_size  # the one memory bound of the command line

    check_size("--steps-per-epoch", args.steps_per_epoch)
    check_size("--trials", args.trials)
    dtype = _DTYPES[args.dtype]
    item = torch.empty((), dtype=dtype).element_size()
    dim = make_toy(args.toy, 1, dtype).dim
    # --steps first, for one trial (so a huge --steps is named as the culprit), then --trials at those steps
    steps = check_size("--steps", args.steps, bytes_each=3 * (dim * item + item + 2), fixed=3 * dim * item,
                       what=f"one {args.toy} trial of that many steps")
    check_size("--trials", args.trials, bytes_each=3 * ((steps + 1) * dim * item + steps * (item + 2)),
               what=f"{args.toy} trials of {steps} steps")


def main(args: argparse.Namespace) -> int:
    _check_sizes(args)
    if not args.lr > 0:
        raise ValueError(f"Invalid --lr: {args.lr} (must be > 0)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads add overhead to both variants alike
    try:
        row = compare(args.toy, args.optimizer, trials=args.trials, steps=args.steps,
                      steps_per_epoch=args.steps_per_epoch, lr=args.lr, dtype=_DTYPES[args.dtype], seed=args.seed)
    finally:
        torch.set_num_threads(threads)  # a process-wide setting: leave it as we found it
    trial_steps = row["trials"] * row["steps"]
    print(f"toy={row['toy']} optimizer={row['optimizer']} trials={row['trials']} steps={row['steps']} "
          f"dtype={row['dtype']}")
    print(f"{'variant':<10} {'seconds':>9} {'trial-steps/s':>15}")
    print(f"{'batched':<10} {row['batched_s']:>9.3f} {trial_steps / row['batched_s']:>15,.0f}")
    print(f"{'looped':<10} {row['looped_s']:>9.3f} {trial_steps / row['looped_s']:>15,.0f}")
    print(f"speed-up (looped / batched): {row['speedup']:.1f}x")
    verdict = "same numbers" if row["same_numbers"] else "NUMBERS DIFFER"
    print(f"agreement: {verdict} (max relative difference {row['max_rel_difference']:.2e}, tolerance "
          f"{row['tolerance']:.0e}; decisions {'identical' if row['decisions_agree'] else 'differ'})")
    return 0 if row["same_numbers"] else 1
