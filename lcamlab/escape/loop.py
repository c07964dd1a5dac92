r"""The fast escape loop: one step fused into one compiled loop over tiles of trials (numba).

:func:`escape_run` advances every trial of one call by ``steps`` iterations: the mini-batch
draw, the gradient, the optimizer update, LCAM's running mean, the kick diagnostics and the
escape check, without leaving the loop. Trials are processed in tiles of :data:`W` lanes; a
tile's state (parameters, optimizer moments) lives in small local arrays for the whole call,
and every loop over lanes has a constant trip count, so LLVM vectorises it across trials
(one SIMD lane per trial). Tiles are independent (a lane's randomness is a function of its
trial id and the step) and split over threads in contiguous ranges (the compiled function
releases the GIL); the results do not depend on the thread count.

**Why numba.** The loop is the hot path of the escape design (7.1e9 trial-steps). A graph of
per-step tensor operations (the eager runner, ``torch.compile``, JAX's ``vmap`` in
``lax.scan``) streams the ``(trials, dim)`` state and the drawn indices through memory every
step; a compiled loop keeps it in cache. numba compiles this module's plain Python to machine
code on first use, 5-10 s per variant here, and caches it on disk (``cache=True``: in
``__pycache__`` beside this file, or numba's per-user cache when the package folder is
read-only; ``NUMBA_CACHE_DIR`` moves it), so later processes load it in milliseconds. The
arithmetic is IEEE (no fast-math, no contraction; ``error_model="numpy"``: a division by zero
gives inf/NaN as in the eager runner instead of a check per lane that would stop vectorising).
The loop gives the escape steps of the C++ kernel it replaced bit for bit (checked on every
optimizer, arm, dtype, batch size and diagnostics setting before that kernel was deleted), so
the committed design caches stay valid.

**The random stream.** A counter-based Philox4x32-10 keyed by the seed, with counter
``(t low, t high ^ phase, trial id, word)``: a trial's randomness is a pure function of
``(seed, trial id, step)``, so dropping escaped trials, per-k budgets and resuming change no
escape step. Words: ``b`` (mini-batch sample ``b``), ``0x100 + 4j`` (the Box-Muller normals of
coordinates ``4j..4j+3``), ``0x200`` (the shuffled control's uniform); ``phase`` is
``0x40000000`` during the warm-up. With ``stream=1`` the indices come from the caller (the eager
runner's ``torch.randint`` blocks, for the parity tests).

**Arithmetic.** Every optimizer's update follows :mod:`lcamlab.optim` / ``torch.optim``
operation by operation in the landscape's dtype (``T``: float32 or float64), so on the same
stream and in float64 the loop gives the eager runner's escape steps
(:func:`lcamlab.escape.simulate.simulate_batched`, the reference). The Gaussian arms' normals
use float32 polynomial ``log`` and ``sin``/``cos`` (Cephes-style, float accuracy) on 24-bit
uniforms, so :math:`|z| \le 5.8`.

The per-optimizer branches are closure constants of the compiled function (:func:`_variant`):
each ``(kind, arm, diagnostics, batch 1, plain SGD)`` variant, per dtype, is compiled once,
without the branches it does not take, as a C++ template would be.
"""

from __future__ import annotations

import concurrent.futures
import math
import warnings
from typing import Any

import numpy as np


class LoopUnavailable(ImportError, ValueError):
    """numba, which compiles the escape loop, is missing, fails to import, or has its compiler turned off
    (``NUMBA_DISABLE_JIT``); a ``ValueError`` too, so the command line's error boundary prints it as one line."""


try:
    import numba
except (ImportError, ValueError) as _error:  # ValueError: numba's own settings, e.g. NUMBA_NUM_THREADS=0
    raise LoopUnavailable(f"the escape loop needs numba, which failed to import ({type(_error).__name__}: "
                          f"{_error}); check the NUMBA_* environment variables, or install it with "
                          f"`pip install numba` (or reinstall lcamlab: `pip install -e .`)") from None
if numba.config.DISABLE_JIT:  # njit would hand back the plain Python loop: correct, but hours for a quick run
    raise LoopUnavailable("the escape loop needs numba's compiler, which NUMBA_DISABLE_JIT turns off (the loop "
                          "would run as plain Python, thousands of times slower); unset NUMBA_DISABLE_JIT")

__all__ = ["W", "RING", "MAXB", "KINDS", "ARM_CODES", "STATE", "LoopUnavailable", "escape_run", "cache_hits"]

W = 32      # lanes (trials) per tile
RING = 32   # kick history per trial (a power of two)
MAXB = 8    # largest mini-batch of the data arm
KINDS = {"sgd": 0, "lcam": 1, "adam": 2, "adai": 3, "adarem": 4, "bernoulli": 5}
ARM_CODES = {"data": 0, "gauss": 1, "iso": 2}
#: The per-trial arrays of a call, in :func:`escape_run`'s order (after ``indices``).
STATE = ("root", "trial_id", "budget", "escape_step", "theta", "buf1", "buf2", "buf3", "loss_sum", "below",
         "momentum", "momentum_sum", "below_steps", "ring", "kick_at_escape", "kick_lag", "kick_count", "first_flag")
STATE_START = 10  # arrays[STATE_START] is ``root``: after ints, reals, consts, data, ..., indices
_SGD, _LCAM, _ADAM, _ADAI, _ADAREM, _BERNOULLI = range(6)
_DATA, _GAUSS, _ISO = range(3)

_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S8 = np.uint64(8)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
# sin and cos of the octant centres (q + 1/2) pi/4
_SC = np.array([0.38268343236, 0.92387953251, 0.92387953251, 0.38268343236,
                -0.38268343236, -0.92387953251, -0.92387953251, -0.38268343236], dtype=np.float32)
_CC = np.array([0.92387953251, 0.38268343236, -0.38268343236, -0.92387953251,
                -0.92387953251, -0.38268343236, 0.38268343236, 0.92387953251], dtype=np.float32)
_F = np.float32
_UNIT = _F(1.0 / 16777216.0)  # 2^-24


@numba.njit(inline="always", error_model="numpy")
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the four 32-bit counter words (held in uint64) under the key ``(k0, k1)``."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@numba.njit(inline="always", error_model="numpy")
def _log(m, e):
    """``log(x)`` for float32 ``x = m 2^e`` in (0, 1], ``m`` in [0.5, 1) (Cephes' logf polynomial, float accuracy).

    The caller splits ``x`` by its bits (:func:`_split`): vector loops, where ``math.frexp`` is a call per lane.
    """
    if m < _F(0.70710678):
        e -= 1
        m = m + m - _F(1.0)
    else:
        m = m - _F(1.0)
    z = m * m
    y = _F(7.0376836292e-2)
    y = y * m - _F(1.1514610310e-1)
    y = y * m + _F(1.1676998740e-1)
    y = y * m - _F(1.2420140846e-1)
    y = y * m + _F(1.4249322787e-1)
    y = y * m - _F(1.6668057665e-1)
    y = y * m + _F(2.0000714765e-1)
    y = y * m - _F(2.4999993993e-1)
    y = y * m + _F(3.3333331174e-1)
    y = y * m * z
    fe = _F(e)
    y += _F(-2.12194440e-4) * fe
    y += _F(-0.5) * z
    return m + y + _F(0.693359375) * fe


@numba.njit(inline="always", error_model="numpy")
def _split(bits):
    """The exponent ``e`` and the bits of the mantissa ``m`` in [0.5, 1) of a positive float32: ``x = m 2^e``."""
    e = np.int32((bits >> np.uint32(23)) & np.uint32(0xFF)) - np.int32(126)
    return e, (bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F000000)


@numba.njit(inline="always", error_model="numpy")
def _sincos_2pi(u):
    """``(sin 2 pi u, cos 2 pi u)`` for float32 ``u`` in [0, 1): the octant's centre plus a polynomial."""
    x8 = u * _F(8.0)
    q = int(x8)
    r = (x8 - _F(q) - _F(0.5)) * _F(0.78539816339)  # |r| <= pi/8
    z = r * r
    s = ((_F(-1.9515295891e-4) * z + _F(8.3321608736e-3)) * z - _F(1.6666654611e-1)) * z * r + r
    c = (((_F(2.443315711809948e-5) * z - _F(1.388731625493765e-3)) * z + _F(4.166664568298827e-2)) * z * z
         - _F(0.5) * z + _F(1.0))
    sc = _SC[q & 7]
    cc = _CC[q & 7]
    return sc * c + cc * s, cc * c - sc * s


def escape_run(kind: int, arm: int, diag: bool, b1: bool, plain: bool, *arrays, threads: int = 1) -> None:
    """Advance every trial ``ints[1]`` iterations, updating the state arrays in place.

    Args:
        kind, arm, diag, b1, plain: the variant: :data:`KINDS` code, :data:`ARM_CODES` code,
            kick diagnostics, batch size 1, plain SGD (no momentum buffer).
        ints: ``(n_samples, steps, t0, frozen, stream, window, opt_step, epoch_count, epoch_length,
            has_decision, seed)`` (int64; ``t0``: main-run step of the first iteration, or the warm-up's
            own index when ``frozen``; ``stream``: 0 Philox, 1 ``indices``; ``opt_step``: optimizer steps
            before this call; ``epoch_count``: losses in LCAM's current mean; ``epoch_length``: LCAM's mean
            resets at main-run multiples of it, 0 never; ``has_decision``: LCAM has a decision).
        reals: ``(lr, beta, beta_below, beta_above, beta1, beta2, eps, beta0, lam_t, kick_threshold,
            initial_momentum)`` (float64).
        consts: ``(batch size, smallest normal)`` in ``T``.
        data: ``(n_samples, dim)`` training set; ``moments`` ``(dim, 3)`` and ``cov`` ``(dim, 6)``
            (float64, :func:`lcamlab.escape.fused.noise_moments`); ``iso_sd`` ``(dim,)``; ``offset``,
            ``direction`` ``(dim,)``: outside when any ``offset - u * direction > 0``.
        indices: ``(steps, n, batch)`` int64 with ``stream=1`` (else unused).
        root ... first_flag: per trial (``n``): sqrt(k), ids, budgets, escape steps (0: not yet; ``-t``: the
            position diverged, a NaN "outside" value, at step ``t`` before any escape), and the
            state; ``theta`` and ``buf1..3`` are ``(dim, n)``, ``ring`` ``(n, RING)``.
    """
    run_tiles = _variant(int(kind), int(arm), bool(diag), bool(b1), bool(plain), arrays)
    tiles = (arrays[STATE_START].shape[0] + W - 1) // W
    workers = max(1, min(int(threads), tiles))
    bounds = [tiles * part // workers for part in range(workers + 1)]
    if workers == 1:
        run_tiles(0, tiles, *arrays)
        return
    # Tiles are independent (a lane's randomness is a function of its trial id and the step), so they
    # split over threads in contiguous ranges with results identical for any thread count.
    futures = [_pool(workers).submit(run_tiles, bounds[part], bounds[part + 1], *arrays) for part in range(workers)]
    for future in futures:
        future.result()


def cache_hits() -> int:
    """How many compiled variants this process has loaded from numba's on-disk cache (not compiled)."""
    return sum(sum(run.stats.cache_hits.values()) for run in _VARIANTS.values())


_POOL: list[tuple[int, concurrent.futures.ThreadPoolExecutor]] = []  # (its size, the pool)


def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """A thread pool of at least ``workers`` threads (the loop releases the GIL), kept between calls."""
    if not _POOL or _POOL[0][0] < workers:
        if _POOL:
            _POOL.pop()[1].shutdown(wait=True)
        _POOL.append((workers, concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                                     thread_name_prefix="lcamlab-escape")))
    return _POOL[0][1]


_VARIANTS: dict[tuple[int, int, bool, bool, bool], Any] = {}


def _variant(kind: int, arm: int, diag: bool, b1: bool, plain: bool, arrays: tuple):
    """The loop of one variant, compiled on first use (and cached on disk by numba).

    ``kind`` ... ``plain`` are closure constants of the compiled function, so each variant is
    compiled without the branches it does not take (as a C++ template would be). The first call
    with ``arrays``' types is a call over no tiles (it compiles, or loads numba's cache, and runs
    nothing): if numba's on-disk cache of it is damaged (a cut or garbled ``.nbi`` / ``.nbc`` raises
    while loading), its index is emptied, one warning names the folder, and the variant is compiled anew
    (kept in memory only, if the index cannot even be replaced: a folder in its place, no permission).
    """
    key = (kind, arm, diag, b1, plain)
    if key not in _VARIANTS:
        _VARIANTS[key] = _compile(*key)
    run_tiles = _VARIANTS[key]
    if not run_tiles.overloads:
        try:
            run_tiles(0, 0, *arrays)
        except Exception as error:  # numba's loader raises whatever the damaged bytes give (pickle, LLVM, ...)
            if run_tiles.overloads:  # it compiled: not the cache's fault
                raise
            cache = run_tiles._cache  # numba's cache of this function (no public handle)
            try:
                cache.flush()
                on_disk, fix = True, ""
            except OSError:  # the index cannot even be replaced (a folder in its place, no permission)
                on_disk, fix = False, f"; this process compiles without it (move {cache.cache_path} away)"
            warnings.warn(f"numba's on-disk cache of the escape loop in {cache.cache_path} is unreadable "
                          f"({type(error).__name__}); recompiling it (5-10 s){fix}", stacklevel=2)
            run_tiles = _VARIANTS[key] = _compile(*key, cache=on_disk)
            run_tiles(0, 0, *arrays)
    return run_tiles


def _compile(kind: int, arm: int, diag: bool, b1: bool, plain: bool, cache: bool = True):
    """:func:`_variant`'s function (numba compiles it at its first call; ``cache``: kept on disk)."""

    @numba.njit(nogil=True, cache=cache, error_model="numpy")
    def run_tiles(first_tile, end_tile, ints, reals, consts, data, moments, cov, iso_sd, offset, direction,
                  indices, rootp, trial_id, budget, escape_step, theta, buf1, buf2, buf3, loss_sum, below, momentum,
                  momentum_sum, below_steps, ring, kick_at_escape, kick_lag, kick_count, first_flag):
        D = data.shape[1]
        n_samples, steps, t0, frozen_i, stream, window = ints[0], ints[1], ints[2], ints[3], ints[4], ints[5]
        opt_step, epoch_length = ints[6], ints[8]
        seed = np.uint64(ints[10])
        frozen = frozen_i != 0
        dt = data.dtype
        scratch = np.empty(1, dt)  # T(x): a store into a T array (a float literal would promote to float64)
        fB = consts[0]
        tiny = consts[1]
        zero = _cast(0.0, scratch)
        one = _cast(1.0, scratch)
        f2, f16, f25, f6 = _cast(2.0, scratch), _cast(16.0, scratch), _cast(2.5, scratch), _cast(6.0, scratch)
        fneg2, fneg16, f5, fhalf = _cast(-2.0, scratch), _cast(-16.0, scratch), _cast(5.0, scratch), _cast(0.5, scratch)
        ffloor = _cast(1e-30, scratch)
        B = int(fB)
        k0 = seed & _MASK
        k1 = seed >> _S32
        phase = np.uint64(0x40000000) if frozen else np.uint64(0)
        # per-coordinate constants in T
        cm1 = np.empty(D, dt)
        cm2 = np.empty(D, dt)
        cm3 = np.empty(D, dt)
        cc = np.empty((D, 6), dt)
        ciso = np.empty(D, dt)
        for c in range(D):
            cm1[c] = moments[c, 0]
            cm2[c] = moments[c, 1]
            cm3[c] = moments[c, 2]
            for j in range(6):
                cc[c, j] = cov[c, j]
            ciso[c] = iso_sd[c] / math.sqrt(np.float64(B))
        inv_b = one / fB
        lr = _cast(reals[0], scratch)
        beta_below, beta_above, b0_init = reals[2], reals[3], reals[10]
        threshold = np.float32(reals[9])
        # scratch of one step
        idx = np.empty((MAXB, W), np.int64)
        z = np.empty((D, W), dt)
        uni = np.empty((4, W), np.float32)  # the Gaussian arms' uniforms, and their bits
        uni_bits = uni.view(np.uint32)
        mant = np.empty((2, W), np.float32)
        mant_bits = mant.view(np.uint32)
        expo = np.empty((2, W), np.int32)
        z4 = np.empty((4, W), np.float32)
        ubern = np.empty(W, np.float32)
        g = np.empty((D, W), dt)
        loss = np.empty(W, dt)
        xcol = np.empty((D, W), dt)
        kick = np.empty(W, np.float32)
        beta = np.empty(W, dt)
        total = np.empty(W, dt)
        vbar = np.empty(W, dt)
        mmax = np.empty(W, dt)
        worst = np.empty(W, dt)
        lost = np.empty(W, dt)
        # a tile's state (lanes beyond `lanes` copy the last real one and are never stored)
        th = np.empty((D, W), dt)
        m1 = np.zeros((D, W), dt)
        m2 = np.zeros((D, W), dt)
        m3 = np.ones((D, W), dt)
        root = np.empty(W, dt)
        id32 = np.empty(W, np.uint64)
        bud = np.empty(W, np.int64)
        esc = np.empty(W, np.int64)
        first = np.empty(W, np.int64)
        lsum = np.zeros(W, np.float64)
        blw = np.zeros(W, np.uint8)
        mom = np.empty(W, np.float64)
        msum = np.empty(W, np.float64)
        bsteps = np.empty(W, np.float64)
        kcount = np.empty(W, np.float64)
        kesc = np.empty(W, np.float32)
        klag = np.empty(W, np.int64)
        hist = np.zeros((RING, W), np.float32)
        n = rootp.shape[0]
        for tile in range(first_tile, end_tile):
            i0 = tile * W
            lanes = min(W, n - i0)
            epoch_count = ints[7]  # LCAM's losses in the current mean, before this call
            has_decision = ints[9] != 0
            # ---- load the tile
            for w in range(W):
                i = i0 + min(w, lanes - 1)
                root[w] = rootp[i]
                id32[w] = np.uint64(trial_id[i]) & _MASK
                bud[w] = budget[i]
                esc[w] = escape_step[i] if w < lanes else 1  # padding lanes count as escaped
                first[w] = first_flag[i]
                if kind == _LCAM:
                    lsum[w] = loss_sum[i]
                    blw[w] = below[i]
                mom[w] = momentum[i]
                msum[w] = momentum_sum[i]
                bsteps[w] = below_steps[i]
                kcount[w] = kick_count[i]
                kesc[w] = kick_at_escape[i]
                klag[w] = kick_lag[i]
                if diag:
                    for r in range(RING):
                        hist[r, w] = ring[i, r]
                for c in range(D):
                    th[c, w] = theta[c, i]
                    if not plain:
                        m1[c, w] = buf1[c, i]
                    if kind == _ADAM or kind == _ADAI:
                        m2[c, w] = buf2[c, i]
                    if kind == _ADAI:
                        m3[c, w] = buf3[c, i]
            for st in range(steps):
                t = t0 + st
                opt_t = opt_step + st + 1  # this step's optimizer step count (1-based)
                tu = np.uint64(t)
                tlo = tu & _MASK
                thi = (tu >> _S32) ^ phase
                # LCAM: a new epoch starts at main-run steps that are multiples of the epoch length
                if kind == _LCAM:
                    if (not frozen) and epoch_length > 0 and t % epoch_length == 0:
                        epoch_count = 0
                        for w in range(W):
                            lsum[w] = 0.0
                # ---- randomness of this step
                if arm == _DATA:
                    if stream == 1:
                        for b in range(B):
                            for w in range(W):
                                idx[b, w] = indices[st, i0 + min(w, lanes - 1), b]
                    else:
                        ns = np.uint64(n_samples)
                        for b in range(B):
                            for w in range(W):
                                c0, _c1, _c2, _c3 = _philox(tlo, thi, id32[w], np.uint64(b), k0, k1)
                                idx[b, w] = np.int64((c0 * ns) >> _S32)
                else:
                    for c4 in range(0, D, 4):
                        # two Box-Muller pairs from four 32-bit words (24-bit uniforms: |z| <= 5.8)
                        for w in range(W):
                            c0, c1, c2, c3 = _philox(tlo, thi, id32[w], np.uint64(0x100 + c4), k0, k1)
                            uni[0, w] = (_F(c0 >> _S8) + _F(0.5)) * _UNIT
                            uni[1, w] = _F(c1 >> _S8) * _UNIT
                            uni[2, w] = (_F(c2 >> _S8) + _F(0.5)) * _UNIT
                            uni[3, w] = _F(c3 >> _S8) * _UNIT
                        for w in range(W):
                            expo[0, w], mant_bits[0, w] = _split(uni_bits[0, w])
                            expo[1, w], mant_bits[1, w] = _split(uni_bits[2, w])
                        for w in range(W):
                            r1 = np.sqrt(_F(-2.0) * _log(mant[0, w], expo[0, w]))
                            r2 = np.sqrt(_F(-2.0) * _log(mant[1, w], expo[1, w]))
                            s1, co1 = _sincos_2pi(uni[1, w])
                            s2, co2 = _sincos_2pi(uni[3, w])
                            z4[0, w] = r1 * co1
                            z4[1, w] = r1 * s1
                            z4[2, w] = r2 * co2
                            z4[3, w] = r2 * s2
                        for j in range(min(4, D - c4)):
                            for w in range(W):
                                z[c4 + j, w] = z4[j, w]
                if kind == _BERNOULLI:
                    for w in range(W):
                        c0, _c1, _c2, _c3 = _philox(tlo, thi, id32[w], np.uint64(0x200), k0, k1)
                        ubern[w] = _F(c0 >> _S8) * _UNIT
                # ---- gradient (and loss, kicks) at the current parameters
                if arm == _DATA and b1:
                    for c in range(D):
                        for w in range(W):
                            xcol[c, w] = data[idx[0, w], c]
                for w in range(W):
                    loss[w] = zero
                    kick[w] = np.float32(0.0)
                for c in range(D):
                    a1 = cm1[c]
                    a2 = cm2[c]
                    a3 = cm3[c]
                    C0, C1, C2, C3, C4, C5 = cc[c, 0], cc[c, 1], cc[c, 2], cc[c, 3], cc[c, 4], cc[c, 5]
                    iso = ciso[c]
                    for w in range(W):
                        u = th[c, w] * root[w]
                        mu = zero
                        sd = one
                        lc = zero
                        if arm != _DATA or diag:
                            # mean and standard deviation of f'(u - x) over the training set
                            p0 = (f2 * u * u - f16) * u + f25
                            p1 = f16 - f6 * u * u
                            p2 = f6 * u
                            p3 = fneg2
                            mu = p0 + p1 * a1 + p2 * a2 + p3 * a3
                            var = (C0 * p1 * p1 + C1 * p2 * p2 + C2 * p3 * p3
                                   + f2 * (C3 * p1 * p2 + C4 * p1 * p3 + C5 * p2 * p3))
                            floor = ffloor
                            sd = np.sqrt((var if var > floor else floor) * inv_b)
                        if arm == _DATA:
                            if b1:
                                y = u - xcol[c, w]
                                # torch.addcmul(2.5, addcmul(-16, y, y, 2), y)
                                gv = f25 + (fneg16 + f2 * y * y) * y
                                if kind == _LCAM:
                                    y2 = y * y
                                    lc = (y2 - f16) * y2 + f5 * y
                            else:
                                acc = zero
                                lacc = zero
                                for b in range(B):
                                    y = u - data[idx[b, w], c]
                                    acc += f25 + (fneg16 + f2 * y * y) * y
                                    y2 = y * y
                                    lacc += (y2 - f16) * y2 + f5 * y
                                gv = acc / fB
                                if kind == _LCAM:
                                    lc = lacc / fB
                            if diag:
                                kz = np.float32(abs((gv - mu) / sd))
                                kick[w] = kick[w] if kick[w] > kz else kz
                        else:
                            scale = sd if arm == _GAUSS else iso
                            gv = mu + scale * z[c, w]
                            if diag:
                                kz = np.float32(abs(z[c, w]))
                                kick[w] = kick[w] if kick[w] > kz else kz
                        g[c, w] = gv * root[w]
                        if kind == _LCAM:
                            loss[w] = loss[w] + lc
                # ---- the optimizer update
                if kind == _SGD or kind == _LCAM or kind == _BERNOULLI:
                    if not plain:
                        for w in range(W):
                            if kind == _SGD:
                                bw = mom[w]
                            elif kind == _LCAM:
                                bw = (beta_below if blw[w] != 0 else beta_above) if has_decision else b0_init
                            else:
                                bw = beta_below if ubern[w] < np.float32(mom[w]) else beta_above
                            beta[w] = bw  # a store into the T array rounds to T
                            if not frozen:
                                active = esc[w] == 0
                                msum[w] += bw if active else 0.0  # + 0.0 leaves a (non-negative) sum unchanged
                                if kind != _SGD:
                                    bsteps[w] += 1.0 if (active and bw == beta_below) else 0.0
                    for c in range(D):
                        for w in range(W):
                            if plain:
                                step = g[c, w]
                            else:
                                bv = m1[c, w] * beta[w] + g[c, w] if first[w] != 0 else g[c, w]
                                m1[c, w] = bv
                                step = bv
                            moved = th[c, w] + (-lr) * step
                            th[c, w] = th[c, w] if frozen else moved
                    if not plain:
                        for w in range(W):
                            first[w] = 1
                elif kind == _ADAM:
                    bc1 = 1.0 - reals[4] ** np.float64(opt_t)
                    bc2 = 1.0 - reals[5] ** np.float64(opt_t)
                    step_size = _cast(reals[0] / bc1, scratch)
                    bc2_sqrt = _cast(math.sqrt(bc2), scratch)
                    w1 = _cast(1.0 - reals[4], scratch)
                    be2 = _cast(reals[5], scratch)
                    w2 = _cast(1.0 - reals[5], scratch)
                    eps = _cast(reals[6], scratch)
                    for c in range(D):
                        for w in range(W):
                            gv = g[c, w]
                            m = m1[c, w] + w1 * (gv - m1[c, w])  # lerp(m, g, 1 - beta1)
                            v = m2[c, w] * be2 + (w2 * gv) * gv  # mul_(beta2).addcmul_(g, g, value=1-beta2)
                            m1[c, w] = m
                            m2[c, w] = v
                            denom = np.sqrt(v) / bc2_sqrt + eps
                            moved = th[c, w] + (-step_size) * (m / denom)
                            th[c, w] = th[c, w] if frozen else moved
                elif kind == _ADAI:
                    bc2 = 1.0 - reals[5] ** np.float64(opt_t)
                    be2 = _cast(reals[5], scratch)
                    w2 = _cast(1.0 - reals[5], scratch)
                    tbc2 = _cast(bc2, scratch)
                    beta0 = _cast(reals[7], scratch)
                    top = _cast(1.0 - reals[6], scratch)
                    fD = _cast(np.float64(D), scratch)
                    for w in range(W):
                        total[w] = zero
                    for c in range(D):
                        for w in range(W):
                            v = m2[c, w] * be2 + (w2 * g[c, w]) * g[c, w]
                            m2[c, w] = v
                            total[w] += v
                    for w in range(W):
                        x = total[w] / tbc2 / fD
                        vbar[w] = tiny if x < tiny else x  # std::max(x, tiny)
                    for c in range(D):
                        for w in range(W):
                            bb = one + (m2[c, w] / tbc2 / vbar[w]) * (-beta0)
                            bb = zero if bb < zero else bb
                            bb = top if top < bb else bb
                            m3[c, w] = m3[c, w] * bb
                            m = m1[c, w] * bb + (one - bb) * g[c, w]
                            m1[c, w] = m
                            moved = th[c, w] + (-lr) * (m / (one - m3[c, w]))
                            th[c, w] = th[c, w] if frozen else moved
                elif kind == _ADAREM:
                    for w in range(W):
                        mmax[w] = zero
                    for c in range(D):
                        for w in range(W):
                            a = abs(m1[c, w])
                            mmax[w] = a if mmax[w] < a else mmax[w]  # std::max(mmax, |m|)
                    lam = _cast(reals[8], scratch)
                    eps = _cast(reals[6], scratch)
                    be = _cast(reals[1], scratch)
                    w1 = _cast(1.0 - reals[1], scratch)
                    for c in range(D):
                        for w in range(W):
                            gv = g[c, w]
                            m = m1[c, w]
                            denom = abs(gv) * mmax[w] + eps
                            factor = ((gv * m) / denom) * lam + one
                            moved = th[c, w] + (-lr) * (factor * gv)
                            th[c, w] = th[c, w] if frozen else moved
                            m1[c, w] = m * be + w1 * gv
                # ---- LCAM: feed this step's loss (at the parameters before the step) into the running mean
                if kind == _LCAM:
                    epoch_count += 1
                    for w in range(W):
                        lw = fhalf * loss[w]
                        lsum[w] += np.float64(lw)
                        mean = lsum[w] / np.float64(epoch_count)
                        blw[w] = np.uint8(1) if np.float64(lw) < mean else np.uint8(0)
                    has_decision = True
                if frozen:
                    continue
                # ---- kicks and the escape check
                if diag:
                    slot = t & (RING - 1)
                    for w in range(W):
                        hist[slot, w] = kick[w]
                        if esc[w] == 0 and kick[w] > threshold:
                            kcount[w] += 1.0
                # outside when any coordinate's (offset - u * direction) > 0: the largest of them > 0 (NaN never
                # counts); a NaN one is a diverged position (overflowed), which ends the trial as not escaped
                for w in range(W):
                    worst[w] = zero
                    lost[w] = zero
                for c in range(D):
                    o = offset[c]
                    d = direction[c]
                    for w in range(W):
                        v = o - (th[c, w] * root[w]) * d
                        worst[w] = v if v > worst[w] else worst[w]
                        lost[w] = one if v != v else lost[w]
                fresh = False
                for w in range(W):
                    fresh = fresh or ((worst[w] > zero or lost[w] != zero) and esc[w] == 0)
                if fresh:
                    for w in range(W):
                        if lost[w] != zero and esc[w] == 0 and t + 1 <= bud[w]:
                            esc[w] = -(t + 1)  # diverged at this step
                        elif worst[w] > zero and esc[w] == 0 and t + 1 <= bud[w]:
                            esc[w] = t + 1
                            if diag:
                                best = np.float32(-1.0)
                                lag = 0
                                for j in range(min(window, t + 1)):
                                    kv = hist[(t - j) & (RING - 1), w]
                                    if kv > best:
                                        best = kv
                                        lag = j
                                kesc[w] = best
                                klag[w] = lag
            # ---- store
            for w in range(lanes):
                i = i0 + w
                escape_step[i] = esc[w]
                first_flag[i] = first[w]
                if kind == _LCAM:
                    loss_sum[i] = lsum[w]
                    below[i] = blw[w]
                momentum_sum[i] = msum[w]
                below_steps[i] = bsteps[w]
                kick_count[i] = kcount[w]
                kick_at_escape[i] = kesc[w]
                kick_lag[i] = klag[w]
                if diag:
                    for r in range(RING):
                        ring[i, r] = hist[r, w]
                for c in range(D):
                    theta[c, i] = th[c, w]
                    if not plain:
                        buf1[c, i] = m1[c, w]
                    if kind == _ADAM or kind == _ADAI:
                        buf2[c, i] = m2[c, w]
                    if kind == _ADAI:
                        buf3[c, i] = m3[c, w]

    return run_tiles


@numba.njit(inline="always", error_model="numpy")
def _cast(value, scratch):
    """``T(value)`` with ``T`` the dtype of the one-element array ``scratch``."""
    scratch[0] = value
    return scratch[0]
