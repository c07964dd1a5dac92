"""Benchmark: one LCAM step against ``torch.optim.SGD(foreach=True)`` on the WRN-28-10 parameters.

``lcamlab bench optim [--device auto|cpu|cuda] [--steps N] [--rounds R] [--no-compile]``

Three optimizers update identical copies of the WRN-28-10 parameter tensors
(36.5 M parameters, shapes from :class:`lcamlab.models.wrn.WideResNet`) with
the same gradients:

* ``sgd``: ``torch.optim.SGD(momentum=0.9, weight_decay=5e-4, foreach=True)``, the baseline;
* ``lcam``: :class:`lcamlab.optim.LCAM` ``(0.9, 0.95)`` fed a device loss tensor;
* ``authors``: the published loop's step: SGD, then ``loss.item()``, the running
  mean on the host and the momentum rewritten in every param group;
* ``sgd compiled`` and ``lcam compiled`` (unless ``--no-compile``): the same two
  steps wrapped in ``torch.compile`` (inductor), each with a 0-dim tensor learning
  rate, torch's recipe for a compiled step that a scheduler changes without
  recompiling. Their compile time (the warm-up) is not timed.

Timing alternates the variants in rounds (so drift in clock speed or other load
hits all of them alike) and reports the median per-step time and its ratio to
SGD. Host synchronisations per step are counted on CUDA with
``torch.cuda.set_sync_debug_mode("warn")``; on the CPU there is no device to
wait for, so the column reads n/a. The issue's target: LCAM within 1.05x of
SGD's step time on CUDA, zero syncs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import time
import warnings

import torch

from lcamlab.optim import LCAM

__all__ = ["wrn_parameter_shapes", "measure", "compiled_ratio", "configure_parser", "main"]


def wrn_parameter_shapes(depth: int = 28, widen: int = 10, num_classes: int = 10) -> list[torch.Size]:
    """The parameter shapes of ``WideResNet(depth, widen)``, built on the meta device (no memory)."""
    from lcamlab.models.wrn import WideResNet

    with torch.device("meta"):
        model = WideResNet(depth=depth, widen=widen, num_classes=num_classes)
    return [p.shape for p in model.parameters()]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _AuthorsStep:
    """The published loop's optimizer step: SGD, ``loss.item()``, host-side mean, momentum rewrite."""

    def __init__(self, params, below=0.9, above=0.95):
        self.opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=True)
        self.below, self.above = below, above
        self.loss_sum, self.count = 0.0, 0

    def step(self, loss: torch.Tensor) -> None:
        self.opt.step()
        value = loss.item()  # the host synchronisation of the authors' loop
        self.loss_sum += value
        self.count += 1
        beta = self.below if value < self.loss_sum / self.count else self.above
        for group in self.opt.param_groups:
            group["momentum"] = beta


def measure(
    device: str | torch.device = "cpu",
    *,
    steps: int = 10,
    rounds: int = 5,
    depth: int = 28,
    widen: int = 10,
    seed: int = 0,
    compiled: bool = True,
) -> dict[str, dict[str, float | None]]:
    """Median ms per step, ratio to SGD and host syncs per step for sgd, lcam, authors (and the compiled pair)."""
    device = torch.device(device)
    if steps < 1 or rounds < 1:
        raise ValueError(f"Invalid steps/rounds: {steps}/{rounds} (both must be >= 1)")
    shapes = wrn_parameter_shapes(depth, widen)
    gen = torch.Generator(device=device).manual_seed(seed)
    grads = [torch.randn(s, generator=gen, device=device) * 1e-2 for s in shapes]
    losses = torch.rand(steps, generator=gen, device=device) + 1.0

    def fresh_params():
        params = [torch.zeros(s, device=device, requires_grad=True) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g
        return params

    sgd = torch.optim.SGD(fresh_params(), lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=True)
    lcam = LCAM(fresh_params(), lr=0.1, momentum=(0.9, 0.95), weight_decay=5e-4, foreach=True)
    authors = _AuthorsStep(fresh_params())
    variants = {
        "sgd": lambda i: sgd.step(),
        "lcam": lambda i: lcam.step(loss=losses[i]),
        "authors": lambda i: authors.step(losses[i]),
    }
    if compiled:
        lr = lambda: torch.tensor(0.1, device=device)  # noqa: E731 - a tensor: see the module docstring
        sgd_c = torch.optim.SGD(fresh_params(), lr=lr(), momentum=0.9, weight_decay=5e-4, foreach=True)
        lcam_c = LCAM(fresh_params(), lr=lr(), momentum=(0.9, 0.95), weight_decay=5e-4, foreach=True)
        sgd_step = torch.compile(lambda: sgd_c.step())
        lcam_step = torch.compile(lambda loss: lcam_c.step(loss=loss))
        variants["sgd compiled"] = lambda i: sgd_step()
        variants["lcam compiled"] = lambda i: lcam_step(losses[i])
    # Warm-up: creates momentum buffers, LCAM's device constants, allocator pools.
    for run in variants.values():
        for i in range(2):
            run(i)
    _sync(device)

    timings: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            for i in range(steps):
                variants[name](i)
            _sync(device)
            timings[name].append((time.perf_counter() - start) / steps * 1e3)

    syncs: dict[str, float | None] = {name: None for name in variants}
    if device.type == "cuda":
        for name, run in variants.items():
            _sync(device)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    for i in range(steps):
                        run(i)
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            syncs[name] = sum("synchroniz" in str(w.message).lower() for w in caught) / steps

    base = statistics.median(timings["sgd"])
    return {
        name: {"ms_per_step": statistics.median(t), "ratio_to_sgd": statistics.median(t) / base,
               "syncs_per_step": syncs[name]}
        for name, t in timings.items()
    }


def compiled_ratio(results: dict[str, dict[str, float | None]]) -> float:
    """Compiled LCAM's step time over compiled SGD's, from :func:`measure` (with ``compiled=True``)."""
    return results["lcam compiled"]["ms_per_step"] / results["sgd compiled"]["ms_per_step"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab bench optim``."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per timed block (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (default 5)")
    parser.add_argument("--depth", type=int, default=28, help="WRN depth whose shapes are used (default 28)")
    parser.add_argument("--widen", type=int, default=10, help="WRN widen factor (default 10)")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile rows (their warm-up compiles for tens of seconds)")


def _check_sizes(args: argparse.Namespace) -> None:
    """Refuse sizes the machine cannot hold, before anything is allocated (one line at the command line).

    The benchmark holds one float32 gradient per parameter, three parameter copies with
    their momentum buffers (sgd, lcam, authors), two more of each with ``--compile``, and
    a foreach step's temporary copy. A WRN's parameter count is affine in its depth (each
    6 layers add one block to each of the three groups), so it is counted on the meta
    device at depths 10 and 16 and extrapolated exactly, without building the model asked for.
    """
    from lcamlab.escape.config import check_size  # the one memory bound of the command line
    from lcamlab.models.wrn import WideResNet

    check_size("--rounds", args.rounds)
    check_size("--steps", args.steps, bytes_each=4, what="that many steps' losses")
    WideResNet.check_arguments(args.depth, args.widen)
    copies = 1 + 2 * 3 + (2 * 2 if args.compile else 0) + 1
    smallest, next_ = (sum(torch.Size(s).numel() for s in wrn_parameter_shapes(d, args.widen)) for d in (10, 16))
    # --widen first, at the smallest depth: the count grows about as widen**2, so need / widen bytes per unit
    # of widen over-estimates a narrower WRN, and the widen suggested is one that fits
    check_size("--widen", args.widen, bytes_each=smallest * 4 * copies / args.widen,
               what=f"WRN-10-{args.widen}'s parameters with {copies} float32 copies (gradients, optimizer states)")
    per_depth = (next_ - smallest) / 6 * 4 * copies
    check_size("--depth", args.depth, minimum=10, bytes_each=per_depth, fixed=smallest * 4 * copies - 10 * per_depth,
               what=f"WRN-{args.depth}-{args.widen}'s parameters with {copies} float32 copies (gradients, "
                    f"optimizer states)")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"Invalid device: {device!r} (CUDA is not available here; use --device cpu)")
    _check_sizes(args)  # before anything is printed or measured
    shapes = wrn_parameter_shapes(args.depth, args.widen)
    n_params = sum(torch.Size(s).numel() for s in shapes)
    from lcamlab.provenance import describe_device

    print(f"optimizer step on WRN-{args.depth}-{args.widen} shapes: {len(shapes)} tensors, "
          f"{n_params / 1e6:.2f} M parameters, float32")
    print(f"device: {describe_device(device)}; torch {torch.__version__}; "
          f"{_dt.date.today().isoformat()}; {args.rounds} rounds x {args.steps} steps, median")
    results = measure(device, steps=args.steps, rounds=args.rounds, depth=args.depth, widen=args.widen,
                      compiled=args.compile)
    print(f"{'variant':<15}{'ms/step':>10}{'vs SGD':>9}{'host syncs/step':>18}")
    for name, row in results.items():
        syncs = "n/a (cpu)" if row["syncs_per_step"] is None else f"{row['syncs_per_step']:.2f}"
        print(f"{name:<15}{row['ms_per_step']:>10.3f}{row['ratio_to_sgd']:>8.3f}x{syncs:>18}")
    print(f"LCAM / SGD step time ratio: {results['lcam']['ratio_to_sgd']:.3f}")
    if args.compile:
        print(f"compiled LCAM / compiled SGD step time ratio: {compiled_ratio(results):.3f}")
    return 0
