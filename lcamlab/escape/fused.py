r"""The fast escape runner: the whole step fused into one compiled loop, float32, on every core.

**Why a kernel, not ``torch.compile`` or JAX.** Today's eager runner
(:func:`lcamlab.escape.simulate.simulate_batched`) issues a dozen tensor operations per step, each
streaming the ``(trials, dim)`` state through memory, and draws its mini-batch indices with
``torch.randint``. A compiled graph of the same per-step operations (``torch.compile``; JAX's
``vmap`` inside ``lax.scan``) still reads and writes the state and the drawn indices once per step:
plain SGD written that way in JAX ran 4.5e7 trial-steps/s here, the fused kernel 1.9e8 (``lcamlab
bench escape --jax``, below). :file:`fused_kernel.cpp` instead keeps a tile of 32 trials (one SIMD
lane each) in L1 for a whole block of steps, draws the randomness inside the loop from a
counter-based Philox4x32-10 stream, and fuses the gradient, the optimizer update, the escape check
and the kick diagnostics; tiles are split over worker threads (``threads``, default every usable
CPU; results do not depend on it). It is a plain C ABI compiled with the system C++ compiler, one
small library per variant (optimizer kind, noise arm, diagnostics; about 0.5 s each, cached under
``~/.cache/lcamlab``) and called through :mod:`ctypes`, so it needs no torch headers.

**Without a C++ compiler** (or when compiling fails) one line on stderr says so and the same
loop runs in NumPy (:mod:`lcamlab.escape.fused_numpy`: the same Philox stream and arithmetic,
the kernel's escape steps; the tests compare them), fast enough for the quick build and the
notebook's sliders, far too slow for the full design.

**Compiler flags.** ``-O2``: measured on this machine with the kernel's first version (8192 trials x
1024 steps, one thread) it
runs SGD, LCAM and Adai as fast as ``-O3`` (5.5e7, 3.2e7 and 3.8e7 trial-steps/s), Adam with
Gaussian noise 2.4x faster (3.0e7 against 1.25e7), and compiles in 0.4 s per variant against
2-3 s (a fresh machine builds about 9 variants for the notebook's quick build). IEEE arithmetic
without contraction (``-ffp-contract=off``, no fast-math) makes the two give identical results:
re-running units of the committed design with ``-O2`` gave their stored escape steps exactly.

**Speed** (``lcamlab bench escape --jax``, 8192 trials x 2048 steps, float32, this 2-core AMD
EPYC with AVX-512, quiet, 2026-11-30), trial-steps per second:

=========  ===========  ===========  ===========  ===========
optimizer  eager 1 thr  eager 2 thr  fused 1 thr  fused 2 thr
=========  ===========  ===========  ===========  ===========
SGD        1.55e7       2.74e7       9.27e7       1.88e8
Adam       1.32e7       1.94e7       6.84e7       1.37e8
LCAM       1.01e7       1.53e7       6.06e7       1.20e8
=========  ===========  ===========  ===========  ===========

Against the eager runner as it runs (one thread, :func:`~lcamlab.escape.simulate.cpu_threads`) the
fused runner on both cores is 12.1x (SGD), 10.3x (Adam) and 12.0x (LCAM) faster; thread for
thread 5.2-6.0x; against the eager runner given both cores 6.9-7.9x. Plain SGD in JAX: 4.5e7.
What the hand-written AVX-512 paths bought (same stream, same escape steps; measured one
thread, best of 5): loading the sampled rows whole and transposing them in registers instead of
``vgatherdps`` 1.2x, Philox with ``vpmuludq`` instead of GCC's ``vpmullq`` widening 1.15x, vector
loops for the per-lane momentum choice (scalar stores read back as vectors had stalled LCAM's
step) 1.35x on LCAM, the escape test as one maximum per lane 1.09x, 32-lane tiles 1.07x;
prefetching rows one to eight steps ahead did not help.
The per-k budgets with dropped trials save a further factor (33x on the v2 design against a
common budget); the v2 design's 7.1e9 trial-steps take 84 s of simulation.

**CUDA.** The kernel is CPU-only; on a CUDA landscape :func:`simulate_fused` runs the same loop as
tensor operations on the device (:mod:`lcamlab.escape.fused_torch`: no host synchronisation inside
a call; on the CPU it gives the kernel's data-arm escape steps bit for bit). Its speed on a GPU has
not been measured (no GPU was available).

**The random stream.** With ``stream="philox"`` a trial's mini-batch index at main-run
step :math:`t` is a pure function of ``(seed, trial id, t)``: common random numbers
across optimizers and noise arms, and a trial's trajectory does not depend on which
other trials are in the call. Hence escaped trials drop out, each sharpness gets its
own budget, and an interrupted run resumes, all without changing a single escape
step. With ``stream="torch"`` the runner reads the eager runner's ``torch.randint``
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

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lcamlab.escape import fused_numpy, fused_torch
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.regions import ExitRegion
from lcamlab.escape.simulate import cpu_threads
from lcamlab.experiments.registry import OptimizerSpec

__all__ = ["ARMS", "FusedResult", "KernelUnavailable", "compiler", "default_threads", "kernel_library", "runner_name",
           "noise_moments", "gradient_noise", "simulate_fused", "supported"]

ARMS = ("data", "gauss", "iso")
RUNNERS = ("auto", "kernel", "numpy", "torch")
_ARM_CODE = {"data": 0, "gauss": 1, "iso": 2}
_KIND = {"sgd": 0, "lcam": 1, "adam": 2, "adai": 3, "adarem": 4, "bernoulli": 5}
_SOURCE = Path(__file__).with_name("fused_kernel.cpp")
_FLAGS = ["-O2", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
          "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-std=c++17"]
RING = 32


class _Args(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_int64) for name in
                 ("n", "dim", "n_samples", "batch", "steps", "t0", "frozen", "kind", "arm", "stream",
                  "diagnostics", "window")]
                + [("seed", ctypes.c_uint64)]
                + [(name, ctypes.c_double) for name in
                   ("lr", "beta", "beta_below", "beta_above", "beta1", "beta2", "eps", "beta0", "lam_t",
                    "kick_threshold")]
                + [(name, ctypes.c_int64) for name in ("opt_step", "epoch_count", "epoch_length", "has_decision")]
                + [("initial_momentum", ctypes.c_double)]
                + [(name, ctypes.c_void_p) for name in
                   ("data", "moments", "cov", "iso_sd", "offset", "direction", "indices", "root", "trial_id",
                    "budget", "escape_step", "theta", "buf1", "buf2", "buf3", "loss_sum", "below", "momentum",
                    "momentum_sum", "below_steps", "ring", "kick_at_escape", "kick_lag", "kick_count",
                    "first_flag")]
                + [("threads", ctypes.c_int64)])


def _cache_dir() -> Path:
    base = os.environ.get("LCAMLAB_KERNEL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lcamlab")
    return Path(base)


_LIBS: dict[tuple, ctypes.CDLL] = {}


class KernelUnavailable(RuntimeError):
    """The fused kernel cannot be built here (no C++ compiler, or the compiler failed); one line says why."""


def compiler() -> str | None:
    """The C++ compiler the kernel is built with (``$CXX``, else ``g++``), or ``None`` when none is found."""
    name = os.environ.get("CXX", "g++")
    return shutil.which(name)


def kernel_library(variant: tuple = (torch.float32, "sgd", "data", False, True, True)) -> ctypes.CDLL:
    """The compiled kernel of one variant ``(dtype, kind, arm, diagnostics, batch 1, plain SGD)``.

    Each variant is its own small library, built on first use (about 0.4 s of compiler time) and cached by
    source, flags, variant and machine under ``~/.cache/lcamlab`` (or ``$LCAMLAB_KERNEL_DIR``).

    Raises:
        KernelUnavailable: no C++ compiler, or compiling failed (the message is one line).
    """
    if variant in _LIBS:
        return _LIBS[variant]
    dtype, kind, arm, diag, b1, plain = variant
    defines = [f"-DESC_T={'float' if dtype == torch.float32 else 'double'}", f"-DESC_KIND={_KIND[kind]}",
               f"-DESC_ARM={_ARM_CODE[arm]}", f"-DESC_DIAG={int(bool(diag))}", f"-DESC_B1={int(bool(b1))}",
               f"-DESC_PLAIN={int(bool(plain))}"]
    source = _SOURCE.read_bytes()
    machine = os.uname().machine + os.uname().nodename  # -march=native: one build per machine
    tag = hashlib.sha256(source + " ".join(_FLAGS + defines).encode() + machine.encode()).hexdigest()[:20]
    folder = _cache_dir()
    target = folder / f"escape_kernel_{tag}.so"
    if not target.exists():
        name = os.environ.get("CXX", "g++")
        path = compiler()
        if path is None:
            raise KernelUnavailable(f"no C++ compiler ({name!r} not found; install g++ or set CXX)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                out = Path(tmp) / target.name
                subprocess.run([path, *_FLAGS, *defines, str(_SOURCE), "-o", str(out)], check=True,
                               capture_output=True, text=True)
                os.replace(out, target)  # atomic: concurrent builds end with one complete library
        except subprocess.CalledProcessError as error:
            first = next((line for line in error.stderr.splitlines() if "error" in line.lower()),
                         error.stderr.strip().splitlines()[0] if error.stderr.strip() else f"exit {error.returncode}")
            raise KernelUnavailable(f"compiling {_SOURCE.name} with {name!r} failed: {first.strip()}") from None
        except OSError as error:
            raise KernelUnavailable(f"building {_SOURCE.name} failed: {error}") from None
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as error:
        raise KernelUnavailable(f"loading {target.name} failed: {error}") from None
    lib.escape_run.argtypes = [ctypes.POINTER(_Args)]
    lib.escape_run.restype = ctypes.c_int
    _LIBS[variant] = lib
    return lib


_FALLBACK_SAID: set[str] = set()


def _kernel_or_none(variant: tuple, runner: str):
    """The kernel's ``escape_run`` for ``variant``, or ``None`` for the NumPy runner (saying why, once)."""
    if runner == "numpy":
        return None
    try:
        return kernel_library(variant).escape_run
    except KernelUnavailable as error:
        if runner == "kernel":
            raise
        reason = str(error)
        if reason not in _FALLBACK_SAID:
            _FALLBACK_SAID.add(reason)
            print(f"lcamlab: the fused escape kernel is not available ({reason}); escape simulations run on "
                  f"the slower NumPy runner", file=sys.stderr)
        return None


def runner_name(runner: str = "auto") -> str:
    """``"kernel"`` if the fused kernel can be used here (building its plain SGD variant if needed), else ``"numpy"``."""
    return "kernel" if _kernel_or_none((torch.float32, "sgd", "data", False, True, True), runner) else "numpy"


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def supported(spec: OptimizerSpec) -> bool:
    """Whether the fused kernel runs ``spec`` (no weight decay, Nesterov, AMSGrad or EMA mean)."""
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
    """Per trial: escape step (``budget + 1`` where censored), flags, budgets, diagnostics; and the work done.

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


def _ptr(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _settings(spec: OptimizerSpec) -> dict[str, Any]:
    """The kernel's kind and hyperparameters of ``spec`` (the optimizers' own defaults)."""
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
    raise ValueError(f"Invalid optimizer for the fused runner: kind {spec.kind!r} "
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
    runner: str = "auto",
    threads: int | None = None,
) -> FusedResult:
    r"""Run every trial of one optimizer in the fused kernel until it escapes or reaches its budget.

    Args:
        landscape: training set and critical points (its dtype, float32 or float64, and its device are used;
            on CUDA the torch runner runs).
        spec: the optimizer (:func:`supported`); ``kind="scheduled"`` is the phase-shuffled
            control of LCAM: momentum ``pair[0]`` with probability ``below_probability`` per trial and
            step (an independent draw), else ``pair[1]``.
        sqrt_k: per-trial :math:`\sqrt k`.
        region: start point and exit rule (a half-space valley region).
        budget: the censoring step, one for all or one per trial.
        arm: ``"data"``, ``"gauss"`` or ``"iso"`` (:data:`ARMS`).
        batch_size: samples per mini-batch (data arm) or the variance divisor (Gaussian arms).
        seed: key of the Philox stream (``stream="philox"``) or the eager runner's seed (``"torch"``).
        stream: ``"philox"`` or ``"torch"`` (the eager runner's blocks; needs a common budget and
            ``drop=False``).
        warmup: steps that warm the optimizer's state at the start point (parameters held there).
        epoch_length: LCAM's epoch (running-mean reset) and AdaRem's :math:`\lambda^\tau` period
            (default one pass, ``n_samples // batch_size``).
        chunk: steps per kernel call (with ``stream="torch"``: the eager runner's block size).
        drop: remove escaped and censored trials between calls.
        trial_ids: the trials' ids in the Philox stream (default ``0..n-1``).
        diagnostics: record kicks (module docstring).
        window, kick_threshold: the kick window (steps) and threshold (noise SDs).
        momentum: per-trial fixed momentum (``kind="sgd"``: the mean-matched control per trial).
        below_probability, pair: the shuffled control's per-trial below-fraction and momentum pair.
        progress: ``progress(steps_done, active_trials)`` after every call.
        start_step: the main-run step the trials are at (their stream position; ``region.start`` is
            then where they are): continues a stateless optimizer's (SGD's) trajectory.
        runner: ``"auto"`` (on the CPU the compiled kernel; where it cannot be built, one line on stderr says
            why and the NumPy runner of :mod:`lcamlab.escape.fused_numpy` runs instead; on CUDA the torch
            runner), ``"kernel"`` (the kernel or :class:`KernelUnavailable`), ``"numpy"`` or ``"torch"``
            (:mod:`lcamlab.escape.fused_torch`: the same loop as tensor operations on the landscape's device).
        threads: the kernel's worker threads (default :func:`default_threads`: every CPU this process may
            use). Tiles of trials are independent, so the results do not depend on it.
    """
    if runner not in RUNNERS:
        raise ValueError(f"Invalid runner: {runner!r} (choose from {', '.join(map(repr, RUNNERS))})")
    if arm not in ARMS:
        raise ValueError(f"Invalid noise arm: {arm!r} (choose from {', '.join(ARMS)})")
    if stream not in ("philox", "torch"):
        raise ValueError(f"Invalid stream: {stream!r} (choose 'philox' or 'torch')")
    if region.kind != "halfspace":
        raise ValueError("The fused runner runs valley escapes only (the saddle stays on the eager runner)")
    if not supported(spec):
        raise ValueError(f"Invalid optimizer for the fused runner: {spec} (weight decay, Nesterov, AMSGrad "
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
    device = landscape.device
    if device.type != "cpu" and runner in ("kernel", "numpy"):
        raise ValueError(f"Invalid runner {runner!r} for a landscape on {device}: the kernel and the NumPy runner "
                         f"run on the CPU (use runner='torch' or 'auto')")
    use_torch = runner == "torch" or device.type != "cpu"
    dtype = landscape.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"Invalid dtype for the fused runner: {dtype} (float32 or float64)")
    plain = kind == "sgd" and momentum is None and settings.get("beta", 0.0) == 0.0
    run = None if use_torch else _kernel_or_none((dtype, kind, arm, bool(diagnostics), int(batch_size) == 1, plain),
                                                 runner)
    dim = landscape.dim
    if isinstance(sqrt_k, Tensor):
        sqrt_k = sqrt_k.detach().cpu().numpy()
    root_all = torch.as_tensor(np.asarray(sqrt_k, dtype=np.float64).reshape(-1)).to(device=device, dtype=dtype)
    n_all = int(root_all.numel())
    budgets_all = np.broadcast_to(np.asarray(budget, dtype=np.int64), (n_all,)).copy()
    if np.any(budgets_all < 1):
        raise ValueError("Invalid budget: every budget must be >= 1")
    if stream == "torch" and (drop or np.ptp(budgets_all) != 0):
        raise ValueError("stream='torch' replays the eager runner's blocks: use a common budget and drop=False")
    ids_all = np.arange(n_all, dtype=np.int64) if trial_ids is None else np.asarray(trial_ids, dtype=np.int64)
    epoch_length = int(epoch_length or max(1, landscape.n_samples // batch_size))
    started = time.perf_counter()

    # constant inputs
    data = landscape.data.contiguous()
    moments, cov = noise_moments(landscape.data)
    start = np.asarray(region.start, dtype=np.float64)
    _, var_start = gradient_noise(landscape, start)
    moments_t = torch.from_numpy(moments).to(device)
    cov_t = torch.from_numpy(cov).to(device)
    iso_t = torch.from_numpy(np.sqrt(var_start)).to(device)
    boundary = landscape.tensor(region.boundary)
    direction = landscape.tensor(region.direction)
    offset = region.offset(boundary, direction).contiguous()
    direction = direction.contiguous()

    # per-trial state, (dim, n) layout
    start_u = landscape.tensor(region.start)
    theta = (start_u.expand(n_all, -1) / root_all.reshape(-1, 1)).T.contiguous()
    zeros = lambda: torch.zeros(dim, n_all, dtype=dtype, device=device)  # noqa: E731
    buf1 = zeros()
    buf2 = zeros() if kind in ("adam", "adai") else None
    buf3 = torch.ones(dim, n_all, dtype=dtype, device=device) if kind == "adai" else None
    root = root_all.clone()
    ids = torch.from_numpy(ids_all.copy()).to(device)
    budgets = torch.from_numpy(budgets_all.copy()).to(device)
    escape = torch.zeros(n_all, dtype=torch.int64, device=device)
    first = torch.zeros(n_all, dtype=torch.int64, device=device)
    loss_sum = torch.zeros(n_all, dtype=torch.float64, device=device)
    below = torch.zeros(n_all, dtype=torch.uint8, device=device)
    if kind == "bernoulli":
        mom = torch.from_numpy(np.broadcast_to(np.asarray(below_probability, np.float64), (n_all,)).copy())
    elif momentum is not None:
        mom = torch.from_numpy(np.broadcast_to(np.asarray(momentum, np.float64), (n_all,)).copy())
    else:
        mom = None
    mom = None if mom is None else mom.to(device)
    mom_sum = torch.zeros(n_all, dtype=torch.float64, device=device)
    below_steps = torch.zeros(n_all, dtype=torch.float64, device=device)
    ring = torch.zeros(n_all, RING, dtype=torch.float32, device=device)
    kick_esc = torch.full((n_all,), float("nan"), dtype=torch.float32, device=device)
    kick_lag = torch.full((n_all,), -1, dtype=torch.int64, device=device)
    kick_count = torch.zeros(n_all, dtype=torch.float64, device=device)
    position = torch.arange(n_all, device=device)

    # results, full size
    out_escape = np.zeros(n_all, dtype=np.int64)
    out_theta = np.zeros((n_all, dim))
    out = {"kick_at_escape": np.full(n_all, np.nan), "kick_lag": np.full(n_all, -1, np.int64),
           "kick_count": np.zeros(n_all), "momentum_sum": np.zeros(n_all), "below_steps": np.zeros(n_all)}

    args = _Args()
    args.dim, args.n_samples, args.batch = dim, landscape.n_samples, int(batch_size)
    args.kind, args.arm = _KIND[kind], _ARM_CODE[arm]
    args.stream = 1 if stream == "torch" else 0
    args.diagnostics, args.window = int(bool(diagnostics)), int(window)
    args.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    args.lr = spec.lr
    args.beta = settings.get("beta", 0.0)
    lo, hi = pair if pair is not None else (settings.get("beta_below", 0.0), settings.get("beta_above", 0.0))
    args.beta_below, args.beta_above = float(lo), float(hi)
    args.beta1, args.beta2 = settings.get("beta1", 0.0), settings.get("beta2", 0.0)
    args.eps, args.beta0 = settings.get("eps", 0.0), settings.get("beta0", 0.0)
    args.kick_threshold = float(kick_threshold)
    args.threads = int(threads)
    args.initial_momentum = settings.get("initial_momentum", 0.0)
    args.epoch_length = epoch_length if kind == "lcam" else 0
    args.data, args.moments, args.cov, args.iso_sd = _ptr(data), _ptr(moments_t), _ptr(cov_t), _ptr(iso_t)
    args.offset, args.direction = _ptr(offset), _ptr(direction)
    if settings.get("dampening"):
        raise ValueError("Invalid SGD setting for the fused runner: dampening")
    constant_tensors = {"data": data, "moments": moments_t, "cov": cov_t, "iso_sd": iso_t, "offset": offset,
                        "direction": direction}
    constant_arrays = None if use_torch else {name: tensor.numpy() for name, tensor in constant_tensors.items()}
    generator = None
    if stream == "torch":
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed) + 1)  # as lcamlab.escape.simulate: seed itself draws the training set
    state = {"opt_step": 0, "epoch_count": 0, "has_decision": 0}

    def call(steps: int, t0: int, frozen: bool, indices: Tensor | None) -> None:
        args.n, args.steps, args.t0, args.frozen = int(root.numel()), int(steps), int(t0), int(frozen)
        args.opt_step, args.epoch_count, args.has_decision = state["opt_step"], state["epoch_count"], state["has_decision"]
        tau = (1 if (warmup > 0) else 0) + (t0 // epoch_length) if not frozen else 0
        args.lam_t = settings.get("lam", 1.0) ** tau
        args.indices = _ptr(indices)
        tensors = (("root", root), ("trial_id", ids), ("budget", budgets), ("escape_step", escape),
                   ("theta", theta), ("buf1", buf1), ("buf2", buf2), ("buf3", buf3),
                   ("loss_sum", loss_sum), ("below", below), ("momentum", mom),
                   ("momentum_sum", mom_sum), ("below_steps", below_steps), ("ring", ring),
                   ("kick_at_escape", kick_esc), ("kick_lag", kick_lag), ("kick_count", kick_count),
                   ("first_flag", first))
        if use_torch:  # the torch runner (CUDA): the same loop on the tensors themselves
            with cpu_threads(device, 1):  # on the CPU: small tensors, threads only add synchronisation
                fused_torch.run(args, {**dict(tensors), **constant_tensors, "indices": indices})
            code = 0
        elif run is None:  # the NumPy runner: the same loop on NumPy views of the same tensors
            arrays = {name: None if tensor is None else tensor.numpy() for name, tensor in tensors}
            arrays.update(constant_arrays)
            arrays["indices"] = None if indices is None else indices.numpy()
            fused_numpy.run(args, arrays)
            code = 0
        else:
            for name, tensor in tensors:
                setattr(args, name, _ptr(tensor))
            code = run(ctypes.byref(args))
        if code:
            raise RuntimeError(f"fused escape kernel refused the call (code {code}: dim <= 16, batch <= 8)")
        state["opt_step"] += steps
        if kind == "lcam":
            state["has_decision"] = 1
            last = t0 + steps - 1
            state["epoch_count"] = state["epoch_count"] + steps if frozen else (last % epoch_length) + 1

    trial_steps = 0
    if warmup:
        indices = None
        if stream == "torch":
            indices = torch.randint(landscape.n_samples, (warmup, n_all, batch_size), generator=generator,
                                    device=device)
        call(warmup, 0, True, indices)
        trial_steps += warmup * n_all
    t = int(start_step)
    top = int(budgets_all.max())
    while root.numel() and t < top:
        steps = min(chunk, top - t)
        if kind == "adarem":  # lambda^tau is constant within an epoch
            steps = min(steps, epoch_length - t % epoch_length)
        if drop:
            steps = min(steps, int(budgets.max()) - t)
        indices = None
        if stream == "torch":
            indices = torch.randint(landscape.n_samples, (steps, n_all, batch_size), generator=generator,
                                    device=device)
        call(steps, t, False, indices)
        trial_steps += steps * int(root.numel())
        t += steps
        if progress is not None:
            progress(t, int(root.numel()))
        if stream == "torch" and bool((escape > 0).all()):
            break
        if drop:
            done = (escape > 0) | (budgets <= t)
            if bool(done.any()):
                _harvest(done, position, escape, theta, kick_esc, kick_lag, kick_count, mom_sum, below_steps,
                         out_escape, out_theta, out)
                keep = ~done
                position = position[keep]
                root, ids, budgets, escape, first = root[keep], ids[keep], budgets[keep], escape[keep], first[keep]
                loss_sum, below, mom_sum, below_steps = loss_sum[keep], below[keep], mom_sum[keep], below_steps[keep]
                ring, kick_esc, kick_lag, kick_count = ring[keep].contiguous(), kick_esc[keep], kick_lag[keep], kick_count[keep]
                mom = mom[keep] if mom is not None else None
                theta = theta[:, keep].contiguous()
                buf1 = buf1[:, keep].contiguous()
                buf2 = buf2[:, keep].contiguous() if buf2 is not None else None
                buf3 = buf3[:, keep].contiguous() if buf3 is not None else None
    if root.numel():
        _harvest(torch.ones(root.numel(), dtype=torch.bool, device=device), position, escape, theta, kick_esc, kick_lag,
                 kick_count, mom_sum, below_steps, out_escape, out_theta, out)
    escaped = out_escape > 0
    escape_step = np.where(escaped, out_escape, budgets_all + 1)
    counted = np.minimum(escape_step, budgets_all).astype(np.float64)
    is_momentum = kind in ("sgd", "lcam", "bernoulli")
    return FusedResult(
        escape_step=escape_step, escaped=escaped, budget=budgets_all, final_theta=out_theta,
        kick_at_escape=out["kick_at_escape"], kick_lag=out["kick_lag"], kick_count=out["kick_count"],
        momentum_mean=out["momentum_sum"] / counted if is_momentum else np.full(n_all, np.nan),
        below_fraction=out["below_steps"] / counted if kind in ("lcam", "bernoulli") else np.full(n_all, np.nan),
        trial_steps=trial_steps, steps=t, seconds=time.perf_counter() - started,
        info={"arm": arm, "stream": stream, "kind": kind, "dtype": str(dtype).replace("torch.", ""),
              "runner": "torch" if use_torch else "numpy" if run is None else "kernel", "device": str(device)},
    )


def _harvest(done, position, escape, theta, kick_esc, kick_lag, kick_count, mom_sum, below_steps,
             out_escape, out_theta, out) -> None:
    host = lambda tensor: tensor.cpu().numpy()  # noqa: E731  (no copy on the CPU)
    where = host(position[done])
    out_escape[where] = host(escape[done])
    out_theta[where] = host(theta[:, done].T.to(torch.float64))
    out["kick_at_escape"][where] = host(kick_esc[done].to(torch.float64))
    out["kick_lag"][where] = host(kick_lag[done])
    out["kick_count"][where] = host(kick_count[done])
    out["momentum_sum"][where] = host(mom_sum[done])
    out["below_steps"][where] = host(below_steps[done])
