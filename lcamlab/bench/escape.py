"""Benchmark: the numba escape loop against the eager runner and JAX (and the eager runner against a loop).

``lcamlab bench escape [--trials N] [--steps S] [--repeats R] [--threads T] [--jax]`` (default):
trial-steps per second of the numba loop (:func:`lcamlab.escape.fused.simulate_fused`, float32,
Philox stream) and of the eager batched runner (:func:`lcamlab.escape.simulate_batched`, float32),
side by side in one run, for SGD, momentum, Adam and LCAM on the same workload (v2's sharp valley
at k = 1, the design's learning rates, no trial dropped, so both do the same trial-steps). Each
runner is timed on one thread and on ``T`` threads (default: every CPU the process may use), each
``--repeats`` times, interleaved, and the best is kept (the machine is shared). Two speed-ups are
printed: on one thread each, and on the whole machine with each runner at its faster thread count
(the eager runner pins torch to one thread by design; the benchmark times it on ``T`` as well).
``--jax`` adds plain SGD written as a researcher would in JAX (:func:`jax_sgd_runner`): what the
loop has to beat. Each optimizer's first call is timed apart (numba compiles the loop's variant, or
loads it from its on-disk cache). The benchmark then checks that the loop gives the eager runner's
escape steps on the eager runner's own stream (float64).

``lcamlab bench escape --vs-loop [--trials N] [--budget B] [--loop-trials M | --full-loop]``: the
eager runner against its per-trial reference, described below.

Both variants run the *same* saddle-escape experiment (the default configuration
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
import importlib.util
import time

import numpy as np
import torch

from lcamlab.escape.config import SADDLE_LRS, EscapeConfig, check_size, saddle_sharpness
from lcamlab.escape.experiment import make_landscape, trial_layout
from lcamlab.escape.regions import saddle_region
from lcamlab.escape.simulate import simulate_batched, simulate_looped

__all__ = ["check_parity", "compare", "compare_runners", "configure_parser", "jax_sgd_runner", "main"]


def compare(config: EscapeConfig, *, loop_trials: int | None = 1, log=print) -> list[dict]:
    """Run both variants per optimizer setting; return one row of timings and agreement each.

    Args:
        config: the saddle experiment (its dtype should be float64 for exact agreement).
        loop_trials: trials per sharpness value run by the loop (``None``: all).
        log: progress printer (``None`` for silence).
    """
    if loop_trials is not None and not (1 <= loop_trials <= config.trials):
        raise ValueError(f"Invalid --loop-trials: {loop_trials} (must be between 1 and --trials {config.trials})")
    landscape = make_landscape(config)
    region = saddle_region(landscape, config.radius)
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


RUNNER_KEYS = ("sgd", "momentum", "adam", "lcam-above")


def jax_sgd_runner(landscape, region, *, lr: float, trials: int, steps: int, seed: int = 0):
    r"""Plain SGD's escape run written as a researcher would in JAX: one trial's step ``vmap``-ed over trials
    inside ``lax.scan`` over steps, jitted, float32 (needs ``pip install 'jax[cpu]'``).

    The step is the fused runner's: :math:`u = \theta` (k = 1), one sampled row :math:`x`,
    :math:`g = f'(u - x) = 2.5 + (2y^2 - 16)\,y` with :math:`y = u - x`, :math:`\theta \leftarrow \theta - \eta g`,
    and the trial's first step outside the half-space is recorded. Indices come from ``jax.random``
    (another stream than the loop's Philox, so escape steps differ trial by trial; the work is the same).
    ``landscape`` and ``region``: the training set and the half-space valley region, as for
    :func:`~lcamlab.escape.fused.simulate_fused`. Returns ``run()``: one timed call (blocks until the
    result is ready), returning the escape steps.
    """
    import jax
    import jax.numpy as jnp

    boundary, direction = landscape.tensor(region.boundary), landscape.tensor(region.direction)
    table = jnp.asarray(landscape.data.cpu().numpy(), dtype=jnp.float32)
    off = jnp.asarray(region.offset(boundary, direction).cpu().numpy(), dtype=jnp.float32)
    dirn = jnp.asarray(direction.cpu().numpy(), dtype=jnp.float32)
    n_samples = table.shape[0]

    def trial_step(theta, escaped_at, x, t):
        y = theta - x
        theta = theta - lr * (2.5 + (2.0 * y * y - 16.0) * y)
        outside = jnp.any(off - theta * dirn > 0)
        return theta, jnp.where((escaped_at == 0) & outside, t + 1, escaped_at)

    def scan_step(carry, t):
        theta, escaped_at, key = carry
        key, sub = jax.random.split(key)
        x = table[jax.random.randint(sub, (trials,), 0, n_samples)]  # one row per trial
        theta, escaped_at = jax.vmap(trial_step, in_axes=(0, 0, 0, None))(theta, escaped_at, x, t)
        return (theta, escaped_at, key), None

    @jax.jit
    def run_all(theta, escaped_at, key):
        (theta, escaped_at, _), _ = jax.lax.scan(scan_step, (theta, escaped_at, key), jnp.arange(steps))
        return escaped_at

    theta0 = jnp.broadcast_to(jnp.asarray(np.asarray(region.start), dtype=jnp.float32), (trials, table.shape[1]))
    escaped0 = jnp.zeros(trials, dtype=jnp.int32)
    key0 = jax.random.PRNGKey(seed)
    run_all(theta0, escaped0, key0).block_until_ready()  # compile outside the timing
    return lambda: np.asarray(run_all(theta0, escaped0, key0).block_until_ready())


def compare_runners(*, trials: int = 8192, steps: int = 2048, repeats: int = 3, keys=RUNNER_KEYS,
                    diagnostics: bool = False, threads: int | None = None, jax: bool = False,
                    log=print) -> list[dict]:
    """Trial-steps per second of the numba loop and the eager runner on the same workload, best of ``repeats``.

    Each runner is timed on one thread and on ``threads`` (default every usable CPU): the eager runner
    pins torch to one thread by design (:func:`lcamlab.escape.simulate.cpu_threads`), and is timed on
    ``threads`` too to show what that choice costs. Per optimizer the row holds the four rates, the
    speed-up on one thread each (``same_threads``) and on the whole machine, each runner at its faster
    setting (``machine``), and the loop's first call in seconds (``first_call_s``: numba compiles the
    variant, or loads it from its cache: ``cache_hit``); with ``jax=True`` SGD's row adds
    :func:`jax_sgd_runner`'s rate.
    """
    from lcamlab.escape.design import DesignConfig, make_design_landscape, sharp_valley_region
    from lcamlab.escape.fused import default_threads, simulate_fused
    from lcamlab.escape.loop import cache_hits

    threads = default_threads() if threads is None else int(threads)
    design = DesignConfig()
    landscape = make_design_landscape(design)
    region = sharp_valley_region(landscape)
    sqrt_k = np.ones(trials)
    settings = sorted({1, threads})
    rows = []
    for key in keys:
        spec = design.spec(key)
        # one untimed short run of each first (allocator, first-call costs); the loop's is its compile time
        simulate_batched(landscape, spec, torch.as_tensor(sqrt_k), region, budget=16)
        hits = cache_hits()
        started = time.perf_counter()
        simulate_fused(landscape, spec, sqrt_k[:64], region, budget=16, drop=False, diagnostics=diagnostics)
        first_call = time.perf_counter() - started
        cache_hit = cache_hits() > hits
        best: dict[str, float] = {}
        jax_run = None
        if jax and key == "sgd":
            jax_run = jax_sgd_runner(landscape, region, lr=spec.lr, trials=trials, steps=steps)
        for _ in range(repeats):
            for n in settings:
                e = simulate_batched(landscape, spec, torch.as_tensor(sqrt_k), region, budget=steps, chunk=256,
                                     threads=n)
                best[f"eager_{n}"] = max(best.get(f"eager_{n}", 0.0), trials * e.iterations / e.seconds)
            for n in settings:
                f = simulate_fused(landscape, spec, sqrt_k, region, budget=steps, drop=False, chunk=1024,
                                   diagnostics=diagnostics, threads=n)
                best[f"fused_{n}"] = max(best.get(f"fused_{n}", 0.0), f.trial_steps / f.seconds)
            if jax_run is not None:
                started = time.perf_counter()
                jax_run()
                best["jax"] = max(best.get("jax", 0.0), trials * steps / (time.perf_counter() - started))
        eager_best = max(best["eager_1"], best[f"eager_{threads}"])
        row = {"optimizer": key, "threads": threads, "eager_1": best["eager_1"], "eager_n": best[f"eager_{threads}"],
               "fused_1": best["fused_1"], "fused_n": best[f"fused_{threads}"],
               "same_threads": best["fused_1"] / best["eager_1"],
               "machine": best[f"fused_{threads}"] / eager_best,
               "jax": best.get("jax", float("nan")), "first_call_s": first_call, "cache_hit": cache_hit}
        rows.append(row)
        if log is not None:
            log(f"  {key:<11} eager {eager_best:9.3e} | numba {row['fused_n']:9.3e} trial-steps/s | "
                f"{row['machine']:5.1f}x | first call {first_call:.1f} s ({'cache' if cache_hit else 'compiled'})")
    return rows


def check_parity(keys=RUNNER_KEYS, log=print) -> bool:
    """The loop (on the eager runner's torch stream) and the eager runner give the same escape steps, float64,
    on the design's sharp valley (a 5000-sample training set) at the design's learning rates."""
    from lcamlab.escape.design import DESIGN_LRS, sharp_valley_region
    from lcamlab.escape.fused import simulate_fused
    from lcamlab.escape.landscape import StyblinskiTangLandscape
    from lcamlab.experiments.registry import preset

    landscape = StyblinskiTangLandscape(10, 5000, 1.0, seed=0, dtype=torch.float64)
    region = sharp_valley_region(landscape)
    agree = True
    for key in keys:
        spec = preset(key, DESIGN_LRS[key])
        # sharpness values with escapes within the budget (Adam's temperature grows like sqrt(k): larger k)
        sqrt_k = torch.as_tensor(np.sqrt(np.repeat([8.0, 16.0, 32.0] if key == "adam" else [1.5, 2.0, 3.0], 32)))
        options = dict(budget=1500, warmup=200, chunk=256, epoch_length=500)
        e = simulate_batched(landscape, spec, sqrt_k, region, **options)
        f = simulate_fused(landscape, spec, sqrt_k.numpy(), region, stream="torch", drop=False, **options)
        same = bool(np.array_equal(e.escape_step, f.escape_step))
        agree &= same
        if log is not None:
            log(f"  {key:<11} {int(e.escaped.sum())}/{len(e.escaped)} escaped; escape steps "
                f"{'identical' if same else 'DIFFER'}")
    return agree


def _cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


#: Flags of one mode only: given in the other, they are refused (they would do nothing there).
_VS_LOOP_ONLY = ("budget", "sharpness_count", "optimizers", "loop_trials", "full_loop", "dtype", "seed")
_RUNNERS_ONLY = ("steps", "repeats", "threads", "jax", "diagnostics")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab bench escape``."""
    defaults = EscapeConfig()
    parser.add_argument("--vs-loop", action="store_true",
                        help="the previous benchmark: the eager batched runner against a per-trial Python loop")
    parser.add_argument("--steps", type=int, default=None,
                        help="without --vs-loop only: steps per timed run of the loop-vs-eager comparison "
                             "(default 2048)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="without --vs-loop only: timed runs of each runner, best kept (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="without --vs-loop only: threads of the multi-threaded timings (default: every CPU "
                             "this process may use)")
    parser.add_argument("--jax", action="store_true",
                        help="without --vs-loop only: also time plain SGD written in JAX (vmap inside lax.scan; "
                             "needs jax installed)")
    parser.add_argument("--diagnostics", action="store_true",
                        help="without --vs-loop only: time the loop with its kick diagnostics on (as the v2 design "
                             "runs it)")
    parser.add_argument("--trials", type=int, default=None,
                        help=f"both modes: trials (default 8192); --vs-loop: trials per (optimizer, k) "
                             f"(default {defaults.trials})")
    parser.add_argument("--sharpness-count", type=int, default=None,
                        help=f"--vs-loop only: number of sharpness values, the default grid "
                             f"(default {len(defaults.sharpness)})")
    parser.add_argument("--budget", type=int, default=None,
                        help=f"--vs-loop only: iterations before a trial is censored (default {defaults.budget})")
    parser.add_argument("--optimizers", default=None,
                        help="--vs-loop only: comma-separated optimizer keys (default all eight settings)")
    parser.add_argument("--loop-trials", type=int, default=None,
                        help="--vs-loop only: trials per (optimizer, k) the per-trial loop runs; its time for all "
                             "trials is extrapolated from its measured cost per iteration (default 1)")
    parser.add_argument("--full-loop", action="store_true",
                        help="--vs-loop only: run every trial in the loop too (slow: several minutes), no "
                             "extrapolation")
    parser.add_argument("--dtype", choices=("float64", "float32"), default=None,
                        help="--vs-loop only: precision of both variants (default float64, for exact agreement)")
    parser.add_argument("--seed", type=int, default=None,
                        help="--vs-loop only: seed of the data and mini-batch stream (default 0)")


def _refuse_other_mode(args: argparse.Namespace) -> None:
    """A flag of the other mode would be silently ignored: refuse it, naming the mode it belongs to."""
    other, mode = (_RUNNERS_ONLY, "without --vs-loop") if args.vs_loop else (_VS_LOOP_ONLY, "with --vs-loop")
    given = [name for name in other if getattr(args, name) is not None and getattr(args, name) is not False]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"Invalid flag(s) {flags}: they only act {mode} (see lcamlab bench escape --help)")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table; exit status 1 if the variants disagree."""
    _refuse_other_mode(args)
    if not args.vs_loop:
        from lcamlab.escape.fused import default_threads

        steps = check_size("--steps", 2048 if args.steps is None else args.steps)
        repeats = check_size("--repeats", 3 if args.repeats is None else args.repeats)
        threads = check_size("--threads", default_threads() if args.threads is None else args.threads)
        if threads > 4 * default_threads():  # torch dies of SIGSEGV starting a million threads
            raise ValueError(f"Invalid --threads {threads}: more than 4 x the {default_threads()} CPU(s) this "
                             f"process may use (more only times oversubscription); use --threads "
                             f"{4 * default_threads()} or less")
        # the eager runner's state and a block of "outside" values, the loop's state and its results
        trials = check_size("--trials", 8192 if args.trials is None else args.trials,
                            bytes_each=(min(256, steps) + 12) * 10 * 8 + 1200, what="the timed runs")
        with_jax = args.jax
        if with_jax and importlib.util.find_spec("jax") is None:
            print("lcamlab bench escape: --jax needs JAX (pip install 'jax[cpu]'); timing without it")
            with_jax = False
        torch.set_num_threads(1)
        import numba

        print(f"lcamlab bench escape: numba loop vs eager runner, {trials} trials x {steps} steps, float32, "
              f"cpu ({_cpu_name()}), 1 and {threads} threads, torch {torch.__version__}, numba {numba.__version__}, "
              f"sharp valley at k = 1, best of {repeats} (interleaved)"
              + (", the loop with kick diagnostics" if args.diagnostics else ""))
        started = time.perf_counter()
        rows = compare_runners(trials=trials, steps=steps, repeats=repeats, diagnostics=args.diagnostics,
                               threads=threads, jax=with_jax)
        n = threads
        print("\ntrial-steps per second; speed-up of the numba loop on one thread each, and on the machine "
              "(each runner at its faster thread count); the loop's first call (compile, or cache load)")
        print(f"{'optimizer':<11} {'eager 1t':>10} {f'eager {n}t':>10} {'numba 1t':>10} {f'numba {n}t':>10} "
              f"{'x (1t)':>7} {'x (machine)':>12} {'first call':>16}" + (f" {'jax':>10}" if with_jax else ""))
        for r in rows:
            first = f"{r['first_call_s']:.1f} s " + ("cache" if r["cache_hit"] else "compile")
            print(f"{r['optimizer']:<11} {r['eager_1']:>10.3e} {r['eager_n']:>10.3e} {r['fused_1']:>10.3e} "
                  f"{r['fused_n']:>10.3e} {r['same_threads']:>6.1f}x {r['machine']:>11.1f}x {first:>16}"
                  + (f" {r['jax']:>10.3e}" if with_jax and r["optimizer"] == "sgd" else ""))
        if with_jax and rows and rows[0]["optimizer"] == "sgd":
            r = rows[0]
            eager_best = max(r["eager_1"], r["eager_n"])
            print(f"SGD in JAX (vmap inside lax.scan, jit): {r['jax'] / eager_best:.1f}x the eager "
                  f"runner; the numba loop is {r['fused_n'] / r['jax']:.1f}x JAX")
        print("\nagreement on the eager runner's stream (float64):")
        agree = check_parity()
        print(f"benchmark wall time {time.perf_counter() - started:.0f} s")
        return 0 if agree else 1
    base = EscapeConfig()
    text = ",".join(SADDLE_LRS) if args.optimizers is None else args.optimizers
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in base.keys]
    if unknown or not keys:
        raise ValueError(f"Invalid --optimizers {text!r} (choose from {','.join(SADDLE_LRS)})")
    count = check_size("--sharpness-count", len(base.sharpness) if args.sharpness_count is None
                       else args.sharpness_count, bytes_each=8)
    config = base.replace(
        trials=check_size("--trials", base.trials if args.trials is None else args.trials),
        budget=check_size("--budget", base.budget if args.budget is None else args.budget),
        sharpness=saddle_sharpness(count), optimizers=tuple(base.spec(k) for k in keys),
        dtype=args.dtype or "float64", seed=0 if args.seed is None else args.seed,
    )
    check_size("--trials", config.trials, bytes_each=count * config.memory_per_trial(),
               what=f"{count} sharpness values x the trials")
    if args.full_loop and args.loop_trials is not None:
        raise ValueError("Invalid --loop-trials with --full-loop: the full loop runs every trial (give one of them)")
    loop_trials = check_size("--loop-trials", 1 if args.loop_trials is None else args.loop_trials)
    trials_total = len(config.sharpness) * config.trials
    print(f"lcamlab bench escape: {len(keys)} optimizer settings x {len(config.sharpness)} sharpness values x "
          f"{config.trials} trials, budget {config.budget}, {config.dtype}, cpu, torch threads during the run: 1")
    print(f"batched: {trials_total} trials per setting as one tensor; loop: "
          f"{'every trial' if args.full_loop else f'{loop_trials} trials per k, extrapolated to all'}")
    started = time.perf_counter()
    rows = compare(config, loop_trials=None if args.full_loop else loop_trials)
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
