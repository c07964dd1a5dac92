r"""The fast escape runner: every trial of one optimizer through the compiled loop, until it escapes.

:func:`simulate_fused` prepares the inputs of :func:`lcamlab.escape.loop.escape_run` (the step
written once, in numba: the mini-batch draw, gradient, optimizer update, LCAM's running mean, kick
diagnostics and escape check fused into one loop over tiles of trials, on every core), calls it in
chunks of steps, drops escaped and censored trials between chunks, and collects the results. The
eager runner (:func:`lcamlab.escape.simulate.simulate_batched`, built on the real
:mod:`lcamlab.optim` optimizers) is its reference: on the eager runner's stream (``stream="torch"``)
and in float64 both give the same escape steps (``tests/test_escape_fused.py``); it is also the
runner for a CUDA landscape.

**Speed** (``lcamlab bench escape``, the README's table): the loop keeps a tile of 32 trials (one
SIMD lane each) in cache for a whole chunk of steps and draws its randomness inside the loop, where
a graph of per-step tensor operations (the eager runner, ``torch.compile``, JAX's ``vmap`` inside
``lax.scan``) streams the ``(trials, dim)`` state and the drawn indices through memory every step.
The per-k budgets with dropped trials save a further factor (33x on the v2 design against a common
budget).

**The random stream.** With ``stream="philox"`` a trial's mini-batch index at main-run
step :math:`t` is a pure function of ``(seed, trial id, t)``: common random numbers
across optimizers and noise arms, and a trial's trajectory does not depend on which
other trials are in the call. Hence escaped trials drop out, each sharpness gets its
own budget, and an interrupted run resumes, all without changing a single escape
step. With ``stream="torch"`` the loop reads the eager runner's ``torch.randint``
blocks instead (same blocks, same order), which is how the tests check it against
:func:`~lcamlab.escape.simulate.simulate_batched` step for step in float64.

**Noise arms** (:data:`ARMS`):

* ``data``: mini-batches of the training set, as the Adai paper (Appendix E);
* ``gauss``: the full-batch gradient plus Gaussian noise with the data's own
  state-dependent variance, :math:`g = \sqrt k\,[\mu(u) + \sqrt{D(u)/B}\,z]`,
  :math:`\mu(u) = \operatorname{mean}_x f'(u - x)`, :math:`D(u) = \operatorname{Var}_x f'(u - x)`
  per coordinate (a quadratic form in the empirical covariances of :math:`x, x^2, x^3`;
  the coordinates of a sample are independent, so the data's cross-covariances
  vanish up to sampling error). This is the diffusion theory's own assumption;
  the Box-Muller normals use 24-bit uniforms, so :math:`|z| \le 5.8`;
* ``iso``: the full-batch gradient plus isotropic noise of constant variance
  :math:`D(u_\text{start})` (a null without state dependence).

**Jump diagnostics** (``diagnostics=True``): at every step the largest standardized
gradient kick over the coordinates, :math:`\max_i |g_i/\sqrt k - \mu_i(u)| / \sqrt{D_i(u)/B}`
(in the Gaussian arms the drawn :math:`|z|`), kept for the last 32 steps; at an escape
the largest kick in the last ``window`` steps and its lag are recorded, and every
trial counts its steps with a kick above ``kick_threshold`` before it escapes (the
chance rate of a kick inside a window).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

import lcamlab.escape.loop as loop
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.regions import ExitRegion
from lcamlab.experiments.registry import OptimizerSpec

__all__ = ["ARMS", "FusedResult", "default_threads", "noise_moments", "gradient_noise", "simulate_fused",
           "supported"]

ARMS = tuple(loop.ARM_CODES)
MAX_DIM = 16  # the loop's tiles hold (dim, 32) arrays: small toys only


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def supported(spec: OptimizerSpec) -> bool:
    """Whether the fused loop runs ``spec`` (no weight decay, Nesterov, AMSGrad or EMA mean)."""
    options = spec.kwargs
    if options.get("weight_decay", 0.0) or options.get("nesterov", False) or options.get("amsgrad", False):
        return False
    if options.get("maximize", False) or options.get("mean", "epoch") != "epoch":
        return False
    return spec.kind in ("sgd", "lcam", "adam", "adai", "adarem", "scheduled")


def noise_moments(data: Tensor) -> tuple[np.ndarray, np.ndarray]:
    r"""Per coordinate the moments :math:`m_1, m_2, m_3` and the covariances of :math:`(x, x^2, x^3)`.

    With :math:`f'(u - x) = b_0(u) + b_1(u)\,x + b_2(u)\,x^2 + b_3\,x^3`
    (:math:`b_0 = 2u^3 - 16u + 5/2`, :math:`b_1 = 16 - 6u^2`, :math:`b_2 = 6u`, :math:`b_3 = -2`),
    the mean over the training set is :math:`b_0 + \sum_j b_j m_j` and the variance
    :math:`b^\top C\, b`. Returns ``(moments (dim, 3), cov (dim, 6) as C11, C22, C33, C12, C13, C23)``.
    """
    key = (data.data_ptr(), tuple(data.shape), data.dtype, data._version)
    if key in _MOMENTS:
        return _MOMENTS[key]
    x = data.detach().to(torch.float64).cpu().numpy()
    powers = np.stack([x, x**2, x**3], axis=0)  # (3, N, dim)
    means = powers.mean(1)  # (3, dim)
    centred = powers - means[:, None, :]
    cov = np.einsum("anc,bnc->abc", centred, centred) / x.shape[0]  # (3, 3, dim), population
    packed = np.stack([cov[0, 0], cov[1, 1], cov[2, 2], cov[0, 1], cov[0, 2], cov[1, 2]], axis=1)
    result = (np.ascontiguousarray(means.T), np.ascontiguousarray(packed))
    if len(_MOMENTS) > 16:
        _MOMENTS.clear()
    _MOMENTS[key] = result
    return result


_MOMENTS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # per training-set tensor (it is never modified)


def gradient_noise(landscape: StyblinskiTangLandscape, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean :math:`\mu(u)` and variance :math:`D(u)` of the per-sample :math:`f'(u - x)`, per coordinate (``u``: ``(..., dim)``)."""
    moments, cov = noise_moments(landscape.data)
    u = np.asarray(u, dtype=np.float64)
    b0 = (2 * u * u - 16) * u + 2.5
    b1, b2, b3 = 16 - 6 * u * u, 6 * u, -2.0 + 0 * u
    mu = b0 + b1 * moments[:, 0] + b2 * moments[:, 1] + b3 * moments[:, 2]
    c = cov
    var = (c[:, 0] * b1 * b1 + c[:, 1] * b2 * b2 + c[:, 2] * b3 * b3
           + 2 * (c[:, 3] * b1 * b2 + c[:, 4] * b1 * b3 + c[:, 5] * b2 * b3))
    return mu, var


@dataclass
class FusedResult:
    """Per trial: escape step (``budget + 1`` where censored or diverged), flags, budgets, diagnostics; the work done.

    ``diverged``: the trial's position overflowed (a NaN "outside" value) before any escape; it is
    neither escaped nor censored, and a rate must leave it out (its count is reported).

    ``kick_at_escape`` / ``kick_lag``: the largest standardized kick in the ``window`` steps up to the
    escape and how many steps before the escape it came (NaN / -1 without an escape or diagnostics);
    ``kick_count``: steps before the escape (or the budget) with a kick above the threshold;
    ``momentum_mean``: the mean momentum used before the escape (momentum kinds; NaN otherwise);
    ``below_fraction``: LCAM's / the shuffled control's fraction of steps at the below value.
    """

    escape_step: np.ndarray
    escaped: np.ndarray
    budget: np.ndarray
    final_theta: np.ndarray
    diverged: np.ndarray
    kick_at_escape: np.ndarray
    kick_lag: np.ndarray
    kick_count: np.ndarray
    momentum_mean: np.ndarray
    below_fraction: np.ndarray
    trial_steps: int
    steps: int
    seconds: float
    info: dict = field(default_factory=dict)

    @property
    def exposure(self) -> np.ndarray:
        return np.minimum(self.escape_step, self.budget)


def _settings(spec: OptimizerSpec) -> dict[str, Any]:
    """The loop's kind and hyperparameters of ``spec`` (the optimizers' own defaults)."""
    o = spec.kwargs
    if spec.kind == "sgd":
        return {"kind": "sgd", "beta": float(o.get("momentum", 0.0)), "dampening": float(o.get("dampening", 0.0))}
    if spec.kind == "lcam":
        below, above = spec.momentum  # type: ignore[misc]
        initial = o.get("initial_momentum")
        return {"kind": "lcam", "beta_below": below, "beta_above": above,
                "initial_momentum": float(min(below, above) if initial is None else initial)}
    if spec.kind == "scheduled":
        return {"kind": "bernoulli"}
    if spec.kind == "adam":
        b1, b2 = o.get("betas", (0.9, 0.999))
        return {"kind": "adam", "beta1": float(b1), "beta2": float(b2), "eps": float(o.get("eps", 1e-8))}
    if spec.kind == "adai":
        b0, b2 = o.get("betas", (0.1, 0.99))
        return {"kind": "adai", "beta0": float(b0), "beta2": float(b2), "eps": float(o.get("eps", 1e-3))}
    if spec.kind == "adarem":
        return {"kind": "adarem", "beta": float(o.get("beta", 0.9)), "lam": float(o.get("lam", 0.999)),
                "eps": float(o.get("eps", 1e-8))}
    raise ValueError(f"Invalid optimizer for the fused loop: kind {spec.kind!r} "
                     f"(choose sgd, lcam, adam, adai, adarem or scheduled)")


def simulate_fused(
    landscape: StyblinskiTangLandscape,
    spec: OptimizerSpec,
    sqrt_k: Tensor | np.ndarray,
    region: ExitRegion,
    *,
    budget: int | np.ndarray,
    arm: str = "data",
    batch_size: int = 1,
    seed: int = 0,
    stream: str = "philox",
    warmup: int = 0,
    epoch_length: int | None = None,
    chunk: int = 1024,
    drop: bool = True,
    trial_ids: np.ndarray | None = None,
    diagnostics: bool = False,
    window: int = 20,
    kick_threshold: float = 6.0,
    momentum: np.ndarray | None = None,
    below_probability: np.ndarray | None = None,
    pair: tuple[float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    start_step: int = 0,
    threads: int | None = None,
) -> FusedResult:
    r"""Run every trial of one optimizer in the compiled loop until it escapes or reaches its budget.

    Args:
        landscape: training set and critical points on the CPU (its dtype, float32 or float64, is
            the loop's; on CUDA use the eager runner, :func:`lcamlab.escape.simulate.simulate_batched`).
        spec: the optimizer (:func:`supported`); ``kind="scheduled"`` is the phase-shuffled
            control of LCAM: momentum ``pair[0]`` with probability ``below_probability`` per trial and
            step (an independent draw), else ``pair[1]``.
        sqrt_k: per-trial :math:`\sqrt k`.
        region: start point and exit rule (a half-space valley region).
        budget: the censoring step, one for all or one per trial.
        arm: ``"data"``, ``"gauss"`` or ``"iso"`` (:data:`ARMS`).
        batch_size: samples per mini-batch (data arm, at most 8) or the variance divisor (Gaussian arms).
        seed: key of the Philox stream (``stream="philox"``) or the eager runner's seed (``"torch"``).
        stream: ``"philox"`` or ``"torch"`` (the eager runner's blocks; needs a common budget and
            ``drop=False``).
        warmup: steps that warm the optimizer's state at the start point (parameters held there).
        epoch_length: LCAM's epoch (running-mean reset) and AdaRem's :math:`\lambda^\tau` period
            (default one pass, ``n_samples // batch_size``).
        chunk: steps per call of the loop (with ``stream="torch"``: the eager runner's block size).
        drop: remove escaped and censored trials between calls.
        trial_ids: the trials' ids in the Philox stream (default ``0..n-1``).
        diagnostics: record kicks (module docstring).
        window, kick_threshold: the kick window (steps, at most 32) and threshold (noise SDs).
        momentum: per-trial fixed momentum (``kind="sgd"``: the mean-matched control per trial).
        below_probability, pair: the shuffled control's per-trial below-fraction and momentum pair.
        progress: ``progress(steps_done, active_trials)`` after every call.
        start_step: the main-run step the trials are at (their stream position; ``region.start`` is
            then where they are): continues a stateless optimizer's (SGD's) trajectory.
        threads: the loop's threads (default :func:`default_threads`).
            Tiles of trials are independent, so the results do not depend on it.
    """
    if arm not in ARMS:
        raise ValueError(f"Invalid noise arm: {arm!r} (choose from {', '.join(ARMS)})")
    if stream not in ("philox", "torch"):
        raise ValueError(f"Invalid stream: {stream!r} (choose 'philox' or 'torch')")
    if region.kind != "halfspace":
        raise ValueError("The fused loop runs valley escapes only (the saddle stays on the eager runner)")
    if not supported(spec):
        raise ValueError(f"Invalid optimizer for the fused loop: {spec} (weight decay, Nesterov, AMSGrad "
                         f"and the EMA mean run on the eager runner)")
    threads = default_threads() if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"Invalid threads: {threads!r} (a positive integer)")
    settings = _settings(spec)
    if below_probability is not None:  # the shuffled control: SGD with a drawn momentum
        if spec.kind not in ("sgd", "scheduled"):
            raise ValueError("below_probability (the shuffled control) goes with an SGD or scheduled spec")
        settings = {"kind": "bernoulli"}
    kind = settings["kind"]
    if kind in ("lcam", "bernoulli") and arm != "data":
        raise ValueError(f"Invalid arm {arm!r} for {spec.style_key}: LCAM and its shuffled control need a "
                         f"mini-batch loss (run them in the data arm)")
    if kind == "bernoulli" and (below_probability is None or pair is None):
        raise ValueError("The shuffled control needs below_probability (per trial) and the momentum pair")
    if settings.get("dampening"):
        raise ValueError("Invalid SGD setting for the fused loop: dampening")
    if landscape.device.type != "cpu":
        raise ValueError(f"Invalid landscape device {landscape.device} for the fused loop: it runs on the CPU "
                         f"(on CUDA run lcamlab.escape.simulate.simulate_batched)")
    dtype = landscape.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"Invalid dtype for the fused loop: {dtype} (float32 or float64)")
    dim, batch_size = landscape.dim, int(batch_size)
    if not 1 <= dim <= MAX_DIM:
        raise ValueError(f"Invalid landscape dim {dim} for the fused loop (1 to {MAX_DIM}; larger ones run on "
                         f"the eager runner)")
    if not 1 <= batch_size <= (loop.MAXB if arm == "data" else 2**31):
        raise ValueError(f"Invalid batch_size: {batch_size} (1 to {loop.MAXB} in the data arm)")
    if not 1 <= int(window) <= loop.RING:
        raise ValueError(f"Invalid window: {window!r} (1 to {loop.RING} steps)")
    if isinstance(sqrt_k, Tensor):
        sqrt_k = sqrt_k.detach().cpu().numpy()
    T = np.float32 if dtype == torch.float32 else np.float64
    root = np.asarray(sqrt_k, dtype=np.float64).reshape(-1).astype(T)
    n_all = int(root.size)
    if np.isnan(root).any() or (root <= 0).any():
        raise ValueError("Invalid sqrt_k: every value must be > 0 (a NaN or a sign would be no sharpness)")
    for name, values in (("budget", budget), ("trial_ids", trial_ids)):
        if values is not None and not np.issubdtype(np.asarray(values).dtype, np.integer):
            raise ValueError(f"Invalid {name}: integers expected, got {np.asarray(values).dtype} (it would be cut)")
    budgets_all = np.broadcast_to(np.asarray(budget, dtype=np.int64), (n_all,)).copy()
    if np.any(budgets_all < 1):
        raise ValueError("Invalid budget: every budget must be >= 1")
    if stream == "torch" and (drop or np.ptp(budgets_all) != 0):
        raise ValueError("stream='torch' replays the eager runner's blocks: use a common budget and drop=False")
    ids_all = np.arange(n_all, dtype=np.int64) if trial_ids is None else np.asarray(trial_ids, dtype=np.int64)
    epoch_length = int(epoch_length or max(1, landscape.n_samples // batch_size))
    started = time.perf_counter()

    # constant inputs
    data = np.ascontiguousarray(landscape.data.numpy())
    moments, cov = noise_moments(landscape.data)
    _, var_start = gradient_noise(landscape, np.asarray(region.start, dtype=np.float64))
    iso_sd = np.sqrt(var_start)  # the isotropic arm's noise SD (D at the start point)
    boundary = landscape.tensor(region.boundary)
    direction = landscape.tensor(region.direction)
    offset = np.ascontiguousarray(region.offset(boundary, direction).numpy())
    direction = np.ascontiguousarray(direction.numpy())
    consts = np.array([batch_size, np.finfo(T).tiny], dtype=T)

    # per-trial state: (dim, n) and (n,) arrays, the loop's layout
    state: dict[str, np.ndarray] = {
        "root": root,
        "trial_id": ids_all.copy(),
        "budget": budgets_all.copy(),
        "escape_step": np.zeros(n_all, np.int64),
        "theta": np.ascontiguousarray((landscape.tensor(region.start).numpy()[None, :] / root[:, None]).T),
        "buf1": np.zeros((dim, n_all), T),
        "buf2": np.zeros((dim, n_all if kind in ("adam", "adai") else 0), T),
        "buf3": np.ones((dim, n_all if kind == "adai" else 0), T),
        "loss_sum": np.zeros(n_all),
        "below": np.zeros(n_all, np.uint8),
        # SGD: the per-trial momentum (the matched control) or beta; the shuffled control: p(below)
        "momentum": np.broadcast_to(np.asarray(below_probability if kind == "bernoulli" else momentum
                                               if momentum is not None else settings.get("beta", 0.0),
                                               np.float64), (n_all,)).copy(),
        "momentum_sum": np.zeros(n_all),
        "below_steps": np.zeros(n_all),
        "ring": np.zeros((n_all, loop.RING), np.float32),
        "kick_at_escape": np.full(n_all, np.nan, np.float32),
        "kick_lag": np.full(n_all, -1, np.int64),
        "kick_count": np.zeros(n_all),
        "first_flag": np.zeros(n_all, np.int64),
    }
    position = np.arange(n_all)
    plain = kind == "sgd" and momentum is None and settings.get("beta", 0.0) == 0.0
    variant = (loop.KINDS[kind], loop.ARM_CODES[arm], bool(diagnostics), batch_size == 1, plain)
    lo, hi = pair if pair is not None else (settings.get("beta_below", 0.0), settings.get("beta_above", 0.0))
    lam = settings.get("lam", 1.0)
    reals = np.array([spec.lr, settings.get("beta", 0.0), lo, hi, settings.get("beta1", 0.0),
                      settings.get("beta2", 0.0), settings.get("eps", 0.0), settings.get("beta0", 0.0), 1.0,
                      kick_threshold, settings.get("initial_momentum", 0.0)], dtype=np.float64)
    counters = {"opt_step": 0, "epoch_count": 0, "has_decision": 0}
    no_indices = np.zeros((0, 0, 0), np.int64)
    generator = None
    if stream == "torch":
        generator = torch.Generator()
        generator.manual_seed(int(seed) + 1)  # as lcamlab.escape.simulate: seed itself draws the training set

    def call(steps: int, t0: int, frozen: bool) -> None:
        indices = no_indices
        if stream == "torch":
            indices = torch.randint(landscape.n_samples, (steps, n_all, batch_size), generator=generator).numpy()
        ints = np.array([landscape.n_samples, steps, t0, int(frozen), int(stream == "torch"), window,
                         counters["opt_step"], counters["epoch_count"], epoch_length if kind == "lcam" else 0,
                         counters["has_decision"], np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF).astype(np.int64)],
                        dtype=np.int64)
        tau = 0 if frozen else (1 if warmup > 0 else 0) + t0 // epoch_length  # AdaRem's epoch counter
        reals[8] = lam ** tau
        loop.escape_run(*variant, ints, reals, consts, data, moments, cov, iso_sd, offset, direction,
                        indices, *(state[name] for name in loop.STATE), threads=threads)
        counters["opt_step"] += steps
        if kind == "lcam":
            counters["has_decision"] = 1
            last = t0 + steps - 1
            counters["epoch_count"] = counters["epoch_count"] + steps if frozen else (last % epoch_length) + 1

    out_escape = np.zeros(n_all, dtype=np.int64)
    out_theta = np.zeros((n_all, dim))
    out = {"kick_at_escape": np.full(n_all, np.nan), "kick_lag": np.full(n_all, -1, np.int64),
           "kick_count": np.zeros(n_all), "momentum_sum": np.zeros(n_all), "below_steps": np.zeros(n_all)}

    def harvest(done: np.ndarray) -> None:
        where = position[done]
        out_escape[where] = state["escape_step"][done]
        out_theta[where] = state["theta"][:, done].T
        for name in out:
            out[name][where] = state[name][done]

    trial_steps = 0
    if warmup:
        call(warmup, 0, True)
        trial_steps += warmup * n_all
    t = int(start_step)
    top = int(budgets_all.max())
    while position.size and t < top:
        steps = min(chunk, top - t)
        if kind == "adarem":  # lambda^tau is constant within an epoch
            steps = min(steps, epoch_length - t % epoch_length)
        if drop:
            steps = min(steps, int(state["budget"].max()) - t)
        call(steps, t, False)
        trial_steps += steps * int(position.size)
        t += steps
        if progress is not None:
            progress(t, int(position.size))
        if stream == "torch" and bool((state["escape_step"] != 0).all()):
            break
        if drop:
            done = (state["escape_step"] != 0) | (state["budget"] <= t)
            if done.any():
                harvest(done)
                keep = ~done
                position = position[keep]
                state = {name: np.ascontiguousarray(array[:, keep] if array.ndim == 2 and name != "ring"
                                                    else array[keep]) if array.size else array[:, :0]
                         for name, array in state.items()}
    if position.size:
        harvest(np.ones(position.size, dtype=bool))
    escaped = out_escape > 0
    diverged = out_escape < 0
    escape_step = np.where(escaped, out_escape, budgets_all + 1)
    # the steps a trial ran: to its escape, its divergence or its budget
    counted = np.where(diverged, -out_escape, np.minimum(escape_step, budgets_all)).astype(np.float64)
    is_momentum = kind in ("sgd", "lcam", "bernoulli")
    return FusedResult(
        escape_step=escape_step, escaped=escaped, budget=budgets_all, final_theta=out_theta, diverged=diverged,
        kick_at_escape=out["kick_at_escape"], kick_lag=out["kick_lag"], kick_count=out["kick_count"],
        momentum_mean=out["momentum_sum"] / counted if is_momentum else np.full(n_all, np.nan),
        below_fraction=out["below_steps"] / counted if kind in ("lcam", "bernoulli") else np.full(n_all, np.nan),
        trial_steps=trial_steps, steps=t, seconds=time.perf_counter() - started,
        info={"arm": arm, "stream": stream, "kind": kind, "dtype": str(dtype).replace("torch.", ""),
              "runner": "numba", "device": "cpu"},
    )
