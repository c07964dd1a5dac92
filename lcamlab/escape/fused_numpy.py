r"""The fused kernel's loop written step by step in NumPy: the runner used where no C++ compiler is found.

:func:`run` does what one call of ``escape_run`` in :file:`fused_kernel.cpp` does, on the
same arrays and with the same arithmetic, vectorised over the trials instead of over
tiles of 16 lanes: the same Philox4x32-10 stream (so the same mini-batch indices and
the same trials for every optimizer), the same optimizer updates operation by
operation, the same LCAM running mean, kick diagnostics and escape check. In the
``data`` arm it gives the kernel's escape steps; the Gaussian arms use NumPy's
``log``/``sin``/``cos`` where the kernel uses float polynomials, so their normals
differ in the last bits.

It is slower than the kernel (a few dozen NumPy operations per step; measured by
``tests/test_escape_fused.py``), fast enough for the quick build and the notebook's
sliders, too slow for the full design (minutes of kernel time become hours).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["philox", "mini_batch_indices", "gaussian_normals", "bernoulli_uniforms", "run"]

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LOW = np.uint64(0xFFFFFFFF)
_RING = 32
_SGD, _LCAM, _ADAM, _ADAI, _ADAREM, _BERNOULLI = range(6)


def philox(c0, c1, c2, c3, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32-10 of the counters (broadcastable integer arrays) under the 64-bit key ``seed``."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _LOW for c in np.broadcast_arrays(c0, c1, c2, c3))
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & _LOW,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & _LOW)
        k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def _counter(t: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=np.uint64)
    return t & _LOW, (t >> np.uint64(32)) ^ np.uint64(phase)


def mini_batch_indices(steps: np.ndarray, ids: np.ndarray, batch: int, n_samples: int, seed: int,
                       phase: int = 0) -> np.ndarray:
    """The sample indices of main-run steps ``steps`` for trials ``ids``: ``(len(steps), len(ids), batch)``."""
    lo, hi = _counter(np.asarray(steps)[:, None, None], phase)
    c0, _, _, _ = philox(lo, hi, np.asarray(ids, dtype=np.uint64)[None, :, None] & _LOW,
                         np.arange(batch, dtype=np.uint64)[None, None, :], seed)
    return ((c0 * np.uint64(n_samples)) >> np.uint64(32)).astype(np.int64)


def gaussian_normals(steps: np.ndarray, ids: np.ndarray, dim: int, seed: int, phase: int = 0) -> np.ndarray:
    """The Box-Muller normals of the Gaussian arms: ``(len(steps), dim, len(ids))`` float32 (24-bit uniforms)."""
    lo, hi = _counter(np.asarray(steps)[:, None, None], phase)
    groups = np.arange(0, dim, 4, dtype=np.uint64)
    c0, c1, c2, c3 = philox(lo, hi, np.asarray(ids, dtype=np.uint64)[None, None, :] & _LOW,
                            (np.uint64(0x100) + groups)[None, :, None], seed)
    scale = np.float32(1.0 / 16777216.0)
    half = np.float32(0.5)
    u1 = ((c0 >> np.uint64(8)).astype(np.float32) + half) * scale
    u2 = (c1 >> np.uint64(8)).astype(np.float32) * scale
    u3 = ((c2 >> np.uint64(8)).astype(np.float32) + half) * scale
    u4 = (c3 >> np.uint64(8)).astype(np.float32) * scale
    r1 = np.sqrt(np.float32(-2.0) * np.log(u1))
    r2 = np.sqrt(np.float32(-2.0) * np.log(u3))
    a1 = np.float32(2 * np.pi) * u2
    a2 = np.float32(2 * np.pi) * u4
    z = np.stack([r1 * np.cos(a1), r1 * np.sin(a1), r2 * np.cos(a2), r2 * np.sin(a2)], axis=2)  # (s, g, 4, n)
    return z.reshape(z.shape[0], -1, z.shape[-1])[:, :dim].astype(np.float32)


def bernoulli_uniforms(steps: np.ndarray, ids: np.ndarray, seed: int, phase: int = 0) -> np.ndarray:
    """The shuffled control's uniforms, ``(len(steps), len(ids))`` float32."""
    lo, hi = _counter(np.asarray(steps)[:, None], phase)
    c0, _, _, _ = philox(lo, hi, np.asarray(ids, dtype=np.uint64)[None, :] & _LOW, np.uint64(0x200), seed)
    return (c0 >> np.uint64(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def run(a: Any, arrays: dict[str, np.ndarray | None]) -> None:
    """One call of the kernel: advance every trial ``a.steps`` iterations, updating ``arrays`` in place.

    ``a``: the kernel's argument structure (sizes, settings, counters; see ``_Args`` in
    :mod:`lcamlab.escape.fused`); ``arrays``: its arrays as NumPy views (``None`` where the
    kernel gets a null pointer). Trials thrown far out overflow to inf/NaN silently, as in the kernel.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _run(a, arrays)


def _run(a: Any, arrays: dict[str, np.ndarray | None]) -> None:
    n, dim, batch, steps = int(a.n), int(a.dim), int(a.batch), int(a.steps)
    if n == 0 or steps == 0:
        return
    kind, arm, frozen, diag = int(a.kind), int(a.arm), bool(a.frozen), bool(a.diagnostics)
    data = arrays["data"]
    T = data.dtype.type
    theta = arrays["theta"]
    buf1, buf2, buf3 = arrays["buf1"], arrays["buf2"], arrays["buf3"]
    root = arrays["root"]
    ids = arrays["trial_id"]
    budget = arrays["budget"]
    esc = arrays["escape_step"]
    first = arrays["first_flag"]
    loss_sum, below = arrays["loss_sum"], arrays["below"]
    mom = arrays["momentum"] if arrays["momentum"] is not None else np.full(n, float(a.beta))
    msum, bsteps = arrays["momentum_sum"], arrays["below_steps"]
    ring, kesc, klag, kcount = arrays["ring"], arrays["kick_at_escape"], arrays["kick_lag"], arrays["kick_count"]
    moments, cov = arrays["moments"], arrays["cov"]
    m1, m2, m3 = (moments[:, j].astype(T)[:, None] for j in range(3))
    cc = [cov[:, j].astype(T)[:, None] for j in range(6)]
    iso = (arrays["iso_sd"] / np.sqrt(float(batch))).astype(T)[:, None]
    offset, direction = arrays["offset"][:, None], arrays["direction"][:, None]
    lr = T(a.lr)
    inv_b = T(1) / T(batch)
    phase = 0x40000000 if frozen else 0
    t0 = int(a.t0)
    ts = np.arange(t0, t0 + steps)
    seed = int(a.seed)
    if arm == 0:
        if int(a.stream) == 1:
            indices = np.asarray(arrays["indices"]).reshape(steps, n, batch)
        else:
            indices = mini_batch_indices(ts, ids, batch, int(a.n_samples), seed, phase)
        columns = np.arange(dim)[:, None]
    else:
        normals = gaussian_normals(ts, ids, dim, seed, phase).astype(T)
    if kind == _BERNOULLI:
        uniforms = bernoulli_uniforms(ts, ids, seed, phase)
    plain = kind == _SGD and arrays["momentum"] is None and float(a.beta) == 0.0
    epoch_count = int(a.epoch_count)
    has_decision = bool(a.has_decision)
    rows = np.arange(n)
    for st in range(steps):
        t = t0 + st
        opt_t = int(a.opt_step) + st + 1
        if kind == _LCAM and not frozen and int(a.epoch_length) > 0 and t % int(a.epoch_length) == 0:
            epoch_count = 0
            loss_sum[:] = 0.0
        u = theta * root  # (dim, n)
        if arm != 0 or diag:
            b0 = (T(2) * u * u - T(16)) * u + T(2.5)
            bb1, bb2, bb3 = T(16) - T(6) * u * u, T(6) * u, T(-2)
            mu = b0 + bb1 * m1 + bb2 * m2 + bb3 * m3
            var = (cc[0] * bb1 * bb1 + cc[1] * bb2 * bb2 + cc[2] * bb3 * bb3
                   + T(2) * (cc[3] * bb1 * bb2 + cc[4] * bb1 * bb3 + cc[5] * bb2 * bb3))
            sd = np.sqrt(np.where(var > T(1e-30), var, T(1e-30)) * inv_b)
        if arm == 0:
            acc = None
            lacc = None
            for b in range(batch):
                y = u - data[indices[st, :, b][None, :], columns]
                gb = T(2.5) + (T(-16) + T(2) * y * y) * y
                acc = gb if acc is None else acc + gb
                if kind == _LCAM:
                    y2 = y * y
                    lb = (y2 - T(16)) * y2 + T(5) * y
                    lacc = lb if lacc is None else lacc + lb
            gv = acc if batch == 1 else acc / T(batch)
            if kind == _LCAM:
                lc = lacc if batch == 1 else lacc / T(batch)
            if diag:
                kick = np.abs((gv - mu) / sd).astype(np.float32).max(axis=0)
        else:
            z = normals[st]
            gv = mu + (sd if arm == 1 else iso) * z
            if diag:
                kick = np.abs(z).astype(np.float32).max(axis=0)
        g = gv * root
        if kind in (_SGD, _LCAM, _BERNOULLI):
            if plain:
                step = g
            else:
                if kind == _SGD:
                    bw = mom.astype(np.float64)
                elif kind == _LCAM:
                    bw = (np.where(below != 0, float(a.beta_below), float(a.beta_above)) if has_decision
                          else np.full(n, float(a.initial_momentum)))
                else:
                    bw = np.where(uniforms[st] < mom.astype(np.float32), float(a.beta_below), float(a.beta_above))
                if not frozen:
                    active = esc == 0
                    msum += np.where(active, bw, 0.0)
                    if kind != _SGD:
                        bsteps += (active & (bw == float(a.beta_below))).astype(np.float64)
                beta = bw.astype(T)
                step = np.where(first != 0, buf1 * beta + g, g)
                buf1[...] = step
                first[...] = 1
            if not frozen:
                theta[...] = theta + (-lr) * step
        elif kind == _ADAM:
            b1, b2 = float(a.beta1), float(a.beta2)
            bc1, bc2 = 1.0 - b1 ** opt_t, 1.0 - b2 ** opt_t
            step_size, bc2_sqrt = T(float(a.lr) / bc1), T(np.sqrt(bc2))
            m = buf1 + T(1.0 - b1) * (g - buf1)
            v = buf2 * T(b2) + (T(1.0 - b2) * g) * g
            buf1[...] = m
            buf2[...] = v
            if not frozen:
                theta[...] = theta + (-step_size) * (m / (np.sqrt(v) / bc2_sqrt + T(a.eps)))
        elif kind == _ADAI:
            b2 = float(a.beta2)
            tbc2 = T(1.0 - b2 ** opt_t)
            v = buf2 * T(b2) + (T(1.0 - b2) * g) * g
            buf2[...] = v
            total = np.zeros(n, dtype=T)
            for c in range(dim):  # the kernel's order of summation
                total = total + v[c]
            vbar = np.maximum(total / tbc2 / T(dim), np.finfo(T).tiny)
            b1c = T(1) + (v / tbc2 / vbar) * (-T(a.beta0))
            b1c = np.minimum(np.maximum(b1c, T(0)), T(1.0 - float(a.eps)))
            buf3[...] = buf3 * b1c
            m = buf1 * b1c + (T(1) - b1c) * g
            buf1[...] = m
            if not frozen:
                theta[...] = theta + (-lr) * (m / (T(1) - buf3))
        elif kind == _ADAREM:
            mmax = np.abs(buf1).max(axis=0)
            m = buf1
            factor = ((g * m) / (np.abs(g) * mmax + T(a.eps))) * T(a.lam_t) + T(1)
            if not frozen:
                theta[...] = theta + (-lr) * (factor * g)
            buf1[...] = m * T(a.beta) + T(1.0 - float(a.beta)) * g
        if kind == _LCAM:
            epoch_count += 1
            lw = _sequential_loss(lc, T)
            loss_sum += lw
            below[...] = lw < loss_sum / epoch_count
            has_decision = True
        if frozen:
            continue
        if diag:
            ring[:, t & (_RING - 1)] = kick
            kcount += ((esc == 0) & (kick > np.float32(a.kick_threshold))).astype(np.float64)
        u = theta * root
        out = ((offset - u * direction) > T(0)).any(axis=0)
        new = out & (esc == 0) & (t + 1 <= budget)
        if new.any():
            esc[new] = t + 1
            if diag:
                where = rows[new]
                window = min(int(a.window), t + 1)
                lags = np.arange(window)
                history = ring[where[:, None], (t - lags)[None, :] & (_RING - 1)]
                lag = np.argmax(history, axis=1)  # the first (most recent) of equal largest kicks
                kesc[where] = history[np.arange(len(where)), lag]
                klag[where] = lag


def _sequential_loss(lc: np.ndarray, T) -> np.ndarray:
    """Half the summed coordinate losses, added in the kernel's order, as float64."""
    total = np.zeros(lc.shape[1], dtype=T)
    for c in range(lc.shape[0]):
        total = total + lc[c]
    return (T(0.5) * total).astype(np.float64)
