r"""The fused kernel's loop written step by step in torch: the fused escape runner on CUDA (and the CPU).

:func:`run` does what one call of ``escape_run`` in :file:`fused_kernel.cpp` does, and follows
:mod:`lcamlab.escape.fused_numpy` operation by operation, on torch tensors of one device:
the same Philox4x32-10 stream keyed by ``(seed, trial id, step)`` (so the same mini-batch
indices, normals and shuffled-control draws for every optimizer), the same per-sample
gradient of the Styblinski-Tang loss, the same optimizer updates in the same order of
operations and dtypes (float64 for the loss and momentum sums), the same LCAM running mean,
kick diagnostics and escape check. On the CPU, in the ``data`` arm, it gives the NumPy
runner's (hence the kernel's) escape steps and final parameters bit for bit; the Gaussian
arms use torch's ``log``/``sin``/``cos``, whose last bits differ from NumPy's (and between
devices).

**Why.** The compiled kernel is CPU-only. This runner is its CUDA path: every step is a few
dozen kernel launches over all trials at once (the ``(dim, n)`` state stays on the device),
and nothing in the step loop reads a value back to the host (no ``.item()``, no
``bool(tensor)``, no boolean-mask indexing or ``nonzero``, no device-to-host copy): the
escape bookkeeping is ``torch.where`` on full tensors, and the random numbers of a call are
drawn before the loop in one vectorised Philox pass (in sub-blocks of steps where one
block would exceed :data:`BLOCK_BYTES`). On the CPU the compiled kernel is much faster
(it keeps a tile of trials in L1 for a whole block of steps); use this runner there only
to check it against :mod:`~lcamlab.escape.fused_numpy`.

**Integer arithmetic.** Torch has no general ``uint64`` arithmetic, so Philox runs in
``int64``: words are kept in ``[0, 2^{32})``, the ``32 x 32``-bit products wrap modulo
:math:`2^{64}` (two's complement), and the high word of a product :math:`p` is
``(p >> 32) & 0xFFFFFFFF`` (the arithmetic shift drags in sign bits, the mask drops them).
Mini-batch indices ``(c0 * n_samples) >> 32`` are exact while ``n_samples < 2**31``.

**Exact square roots.** Torch's vectorised CPU ``sqrt`` is not correctly rounded (measured with
torch 2.13 on an AVX512 CPU: 17% of float32 and 1.4% of float64 results one ulp off NumPy's IEEE
``sqrt``), which would move the kicks and Adam's steps by an ulp; on the CPU :func:`_sqrt`
takes NumPy's square root of the tensor's memory instead (no device, nothing to synchronise).
CUDA's ``sqrt`` is IEEE (correctly rounded) and is used as it is.

**Exact scalar division.** On CUDA, ``tensor / python_float`` multiplies by the reciprocal
(one ulp off true division); every division by a constant here divides by a 0-dim device
tensor instead (made with ``torch.full``, a fill launch, not a host-to-device copy), so it is
IEEE division on both devices. ``torch.where`` likewise takes 0-dim device tensors, never
Python scalars.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["BLOCK_BYTES", "philox", "mini_batch_indices", "gaussian_normals", "bernoulli_uniforms", "run"]

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LOW = 0xFFFFFFFF
_RING = 32
_SGD, _LCAM, _ADAM, _ADAI, _ADAREM, _BERNOULLI = range(6)
_SCALE = 1.0 / 16777216.0  # 2**-24: exact in float32
_TAU32 = float(np.float32(2 * np.pi))  # the NumPy runner's np.float32(2 * pi)

BLOCK_BYTES = 256 << 20
"""Peak bytes of one block of drawn random numbers (Philox work arrays included); beyond it, sub-blocks of steps."""

_COUNTER_BYTES = 128  # Philox work per counter: 4 words, 2 products and temporaries, int64 (a generous estimate)


# ---------------------------------------------------------------------------------------------------------------
# the Philox4x32-10 stream


def _device_of(*values: Any) -> torch.device:
    for value in values:
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")


def philox(c0, c1, c2, c3, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Philox4x32-10 of the counters under the 64-bit key ``seed``, in ``int64`` arithmetic.

    Ten rounds of

    .. math::
        (c_0, c_1, c_2, c_3) \leftarrow \big(\mathrm{hi}(M_1 c_2) \oplus c_1 \oplus k_0,\;
        \mathrm{lo}(M_1 c_2),\; \mathrm{hi}(M_0 c_0) \oplus c_3 \oplus k_1,\; \mathrm{lo}(M_0 c_0)\big),
        \quad (k_0, k_1) \leftarrow (k_0 + W_0, k_1 + W_1) \bmod 2^{32},

    with :math:`\mathrm{hi}, \mathrm{lo}` the high and low 32-bit words of the 64-bit product.

    Args:
        c0, c1, c2, c3: counters, integer tensors (one device) or Python ints, broadcastable; only
            their low 32 bits are used (as in :func:`lcamlab.escape.fused_numpy.philox`).
        seed: the key, an integer in ``[0, 2**64)``.

    Returns:
        The four output words, ``int64`` tensors of the broadcast shape with values in ``[0, 2**32)``:
        bit for bit :func:`lcamlab.escape.fused_numpy.philox`.
    """
    device = _device_of(c0, c1, c2, c3)
    words = torch.broadcast_tensors(*(_int64(c, device) for c in (c0, c1, c2, c3)))
    c0, c1, c2, c3 = (w & _LOW for w in words)
    k0, k1 = seed & _LOW, (seed >> 32) & _LOW
    for _ in range(10):
        # products of two 32-bit words: up to 64 bits, wrapping in int64; the bits are the uint64 product's
        p0 = c0 * _M0
        p1 = c2 * _M1
        # in place on fresh tensors: fewer temporaries (memory traffic is the cost on the CPU)
        hi1 = p1 >> 32
        hi1 &= _LOW
        hi1 ^= c1
        hi1 ^= k0
        hi0 = p0 >> 32
        hi0 &= _LOW
        hi0 ^= c3
        hi0 ^= k1
        p1 &= _LOW
        p0 &= _LOW
        c0, c1, c2, c3 = hi1, p1, hi0, p0
        k0, k1 = (k0 + _W0) & _LOW, (k1 + _W1) & _LOW
    return c0, c1, c2, c3


def _sqrt(x: Tensor) -> Tensor:
    """The correctly rounded square root of ``x`` (as NumPy's): NumPy's on the CPU, torch's on CUDA."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sqrt(x.numpy()))
    return torch.sqrt(x)


def _counter(t: Tensor, phase: int) -> tuple[Tensor, Tensor]:
    """The step's two counter words: its low 32 bits and its high bits xor the phase (warm-up: ``0x40000000``)."""
    return t & _LOW, (t >> 32) ^ phase


def _int64(values: Any, device: torch.device) -> Tensor:
    """``values`` as an int64 tensor on ``device`` (integers by their low 64 bits, two's complement).

    Tensors are converted on their device; a Python int becomes a 0-dim tensor by a fill launch
    (no host-to-device copy, so nothing to synchronise); other array-likes (uint64 arrays included,
    by their bits) are copied over.
    """
    if isinstance(values, Tensor):
        return values.to(device=device, dtype=torch.int64)
    if isinstance(values, (int, np.integer)):
        wrapped = (int(values) + 2**63) % 2**64 - 2**63
        return torch.full((), wrapped, dtype=torch.int64, device=device)
    array = np.asarray(values)
    if array.dtype == np.uint64:
        array = array.view(np.int64)  # the same bits
    return torch.as_tensor(array.astype(np.int64), device=device)


def _indices(steps: Tensor, ids: Tensor, batch: int, n_samples: int, seed: int, phase: int) -> Tensor:
    """The mini-batch indices in the runner's layout ``(len(steps), batch, len(ids))`` (one row per sample slot)."""
    device = ids.device
    lo, hi = _counter(steps[:, None, None], phase)
    c0, _, _, _ = philox(lo, hi, (ids & _LOW)[None, None, :], torch.arange(batch, device=device)[None, :, None], seed)
    return (c0 * n_samples) >> 32  # floor(c0 * n / 2**32): exact while n_samples < 2**31


def mini_batch_indices(steps, ids, batch: int, n_samples: int, seed: int, phase: int = 0) -> Tensor:
    r"""The sample indices of main-run steps ``steps`` for trials ``ids``: ``(len(steps), len(ids), batch)`` int64.

    Index :math:`\lfloor c_0 N / 2^{32} \rfloor` of the Philox block
    ``(step low word, step high word ^ phase, trial id, slot)``; bit for bit
    :func:`lcamlab.escape.fused_numpy.mini_batch_indices` (on ``ids``' device).
    """
    ids = _int64(ids, _device_of(ids, steps))
    steps = _int64(steps, ids.device)
    return _indices(steps, ids, batch, n_samples, seed, phase).transpose(1, 2).contiguous()


def gaussian_normals(steps, ids, dim: int, seed: int, phase: int = 0) -> Tensor:
    r"""The Box-Muller normals of the Gaussian arms: ``(len(steps), dim, len(ids))`` float32 (24-bit uniforms).

    Each Philox block ``(step, step high ^ phase, trial id, 0x100 + 4j)`` gives coordinates
    :math:`4j .. 4j+3`: with :math:`u_1, u_3 \in (0, 1)` and :math:`u_2, u_4 \in [0, 1)`,
    :math:`z = \sqrt{-2\log u_1}\,(\cos 2\pi u_2, \sin 2\pi u_2)` and likewise from
    :math:`u_3, u_4`. The same uniforms as :func:`lcamlab.escape.fused_numpy.gaussian_normals`;
    torch's ``log``/``sin``/``cos`` may differ from NumPy's in the last bits.
    """
    ids = _int64(ids, _device_of(ids, steps))
    steps = _int64(steps, ids.device)
    lo, hi = _counter(steps[:, None, None], phase)
    groups = torch.arange(0, dim, 4, dtype=torch.int64, device=ids.device)
    c0, c1, c2, c3 = philox(lo, hi, (ids & _LOW)[None, None, :], (0x100 + groups)[None, :, None], seed)
    # 24-bit integers are exact in float32; the +0.5 keeps u1, u3 away from 0 (log)
    u1 = ((c0 >> 8).to(torch.float32) + 0.5) * _SCALE
    u2 = (c1 >> 8).to(torch.float32) * _SCALE
    u3 = ((c2 >> 8).to(torch.float32) + 0.5) * _SCALE
    u4 = (c3 >> 8).to(torch.float32) * _SCALE
    r1 = _sqrt(-2.0 * torch.log(u1))
    r2 = _sqrt(-2.0 * torch.log(u3))
    a1 = _TAU32 * u2
    a2 = _TAU32 * u4
    z = torch.stack([r1 * torch.cos(a1), r1 * torch.sin(a1), r2 * torch.cos(a2), r2 * torch.sin(a2)], dim=2)
    return z.reshape(z.shape[0], -1, z.shape[-1])[:, :dim]  # (s, g, 4, n) -> coordinate 4g + j


def bernoulli_uniforms(steps, ids, seed: int, phase: int = 0) -> Tensor:
    """The shuffled control's uniforms in ``[0, 1)``, ``(len(steps), len(ids))`` float32 (Philox word ``0x200``)."""
    ids = _int64(ids, _device_of(ids, steps))
    steps = _int64(steps, ids.device)
    lo, hi = _counter(steps[:, None], phase)
    c0, _, _, _ = philox(lo, hi, (ids & _LOW)[None, :], 0x200, seed)
    return (c0 >> 8).to(torch.float32) * _SCALE


# ---------------------------------------------------------------------------------------------------------------
# the loop


def run(a: Any, tensors: dict[str, Tensor | None]) -> None:
    r"""One call of the kernel: advance every trial ``a.steps`` iterations, updating ``tensors`` in place.

    The semantics of :func:`lcamlab.escape.fused_numpy.run` on torch tensors. Per step :math:`t`
    and trial, with :math:`u = \sqrt k\,\theta` and the per-sample loss
    :math:`f(y) = \tfrac12 \sum_c (y_c^4 - 16 y_c^2 + 5 y_c)`, :math:`y = u - x`:

    * gradient: ``data`` arm :math:`g_u = \frac1B \sum_b f'(u - x_{i_b})`, :math:`f'(y) = 2y^3 - 16y + 5/2`,
      the indices :math:`i_b` from the Philox stream (or ``tensors["indices"]`` with ``a.stream == 1``);
      Gaussian arms :math:`g_u = \mu(u) + s\,z` with :math:`s = \sqrt{D(u)/B}` (``gauss``) or the
      constant ``iso_sd / sqrt(B)`` (``iso``); then :math:`g = \sqrt k\, g_u`;
    * the optimizer update (``a.kind``: SGD with momentum :math:`b = \beta b + g`, LCAM's
      :math:`\beta` chosen by the sign of its mini-batch loss against the epoch's running mean,
      the shuffled control's drawn :math:`\beta`, Adam, Adai, AdaRem), skipped for the
      parameters while ``a.frozen`` (warm-up);
    * diagnostics (``a.diagnostics``): the largest standardized kick
      :math:`\max_c |g_{u,c} - \mu_c| / s_c` into a 32-step ring, the count of kicks above
      ``a.kick_threshold``, and at an escape the largest kick of the last ``a.window`` steps and its lag;
    * the escape check: the first step :math:`t + 1 \le` budget with some
      :math:`\text{offset}_c - u_c\,\text{direction}_c > 0` is recorded in ``escape_step``.

    Args:
        a: the kernel's argument structure (sizes, settings, counters; ``_Args`` in
            :mod:`lcamlab.escape.fused`; only its scalar fields are read).
        tensors: the kernel's arrays as torch tensors on one device, with the names, shapes and
            dtypes of the NumPy runner's arrays (state ``(dim, n)``, ``ring`` ``(n, 32)``, ...;
            ``None`` where the kernel gets a null pointer). Updated in place.

    Trials thrown far out overflow to inf/NaN silently, as in the kernel. Nothing in the step
    loop synchronises with the host.
    """
    n, steps = int(a.n), int(a.steps)
    if n == 0 or steps == 0:
        return
    with torch.no_grad():
        _run(a, tensors)


def _run(a: Any, tensors: dict[str, Tensor | None]) -> None:
    """:func:`run` for ``n, steps > 0``: :func:`lcamlab.escape.fused_numpy._run` line by line (same names)."""
    n, dim, batch, steps = int(a.n), int(a.dim), int(a.batch), int(a.steps)
    kind, arm, frozen, diag = int(a.kind), int(a.arm), bool(a.frozen), bool(a.diagnostics)
    data = tensors["data"]
    dtype, dev = data.dtype, data.device
    T = np.float32 if dtype == torch.float32 else np.float64

    def c(x: float) -> float:
        """``x`` rounded to the working dtype, as the NumPy runner's ``T(x)`` (then exact in torch's scalar ops)."""
        return float(T(x))

    def full(x: float, dt: torch.dtype = dtype) -> Tensor:
        """A 0-dim device tensor (a fill launch, no host-to-device copy): exact division, torch.where operand."""
        return torch.full((), x, dtype=dt, device=dev)

    theta = tensors["theta"]
    buf1, buf2, buf3 = tensors["buf1"], tensors["buf2"], tensors["buf3"]
    root, ids, budget = tensors["root"], tensors["trial_id"], tensors["budget"]
    esc, first = tensors["escape_step"], tensors["first_flag"]
    loss_sum, below = tensors["loss_sum"], tensors["below"]
    mom = tensors["momentum"]
    if mom is None:
        mom = torch.full((n,), float(a.beta), dtype=torch.float64, device=dev)
    msum, bsteps = tensors["momentum_sum"], tensors["below_steps"]
    ring, kesc, klag, kcount = tensors["ring"], tensors["kick_at_escape"], tensors["kick_lag"], tensors["kick_count"]
    moments, cov = tensors["moments"], tensors["cov"]
    m1, m2, m3 = (moments[:, j].to(dtype)[:, None] for j in range(3))
    cc = [cov[:, j].to(dtype)[:, None] for j in range(6)]
    iso = (tensors["iso_sd"] / full(math.sqrt(float(batch)), torch.float64)).to(dtype)[:, None]
    offset, direction = tensors["offset"][:, None], tensors["direction"][:, None]
    neg_lr = -c(a.lr)
    inv_b = float(T(1) / T(batch))
    batch_t, dim_t = full(float(batch)), full(float(dim))
    floor_t = full(c(1e-30))  # the variance floor
    b3 = c(-2)  # the constant cubic coefficient b_3
    m3b = b3 * m3  # the NumPy runner's bb3 * m3 (and cc[2] * bb3 * bb3 below): constants, hoisted
    c2b = cc[2] * b3 * b3
    phase = 0x40000000 if frozen else 0
    t0, seed = int(a.t0), int(a.seed)
    stream, n_samples = int(a.stream), int(a.n_samples)
    data_t = data.T.contiguous() if arm == 0 else None  # (dim, n_samples): the gather writes (dim, n) rows
    given = None
    if arm == 0 and stream == 1:
        given = tensors["indices"].reshape(steps, n, batch).transpose(1, 2).contiguous()  # (steps, batch, n)

    # the call's random numbers, drawn before the loop (in sub-blocks of steps where one block is too large)
    per_step = 0
    if arm == 0 and given is None:
        per_step += n * batch * (_COUNTER_BYTES + 8)
    if arm != 0:
        groups = (dim + 3) // 4
        per_step += n * groups * (_COUNTER_BYTES + 4 * 4 * 6) + n * dim * data.element_size()
    if kind == _BERNOULLI:
        per_step += n * (_COUNTER_BYTES + 4)
    block = steps if per_step == 0 else max(1, min(steps, BLOCK_BYTES // per_step))

    def draw(st0: int) -> dict[str, Tensor]:
        ts = torch.arange(t0 + st0, t0 + min(st0 + block, steps), dtype=torch.int64, device=dev)
        out: dict[str, Tensor] = {}
        if arm == 0 and given is None:
            out["indices"] = _indices(ts, ids, batch, n_samples, seed, phase)
        if arm != 0:
            out["normals"] = gaussian_normals(ts, ids, dim, seed, phase).to(dtype)
        if kind == _BERNOULLI:
            out["uniforms"] = bernoulli_uniforms(ts, ids, seed, phase)
        return out

    plain = kind == _SGD and tensors["momentum"] is None and float(a.beta) == 0.0
    epoch_count = int(a.epoch_count)
    epoch_length = int(a.epoch_length)
    has_decision = bool(a.has_decision)
    beta_below, beta_above = float(a.beta_below), float(a.beta_above)
    below_t, above_t = full(beta_below, torch.float64), full(beta_above, torch.float64)
    initial_t = full(float(a.initial_momentum), torch.float64)
    zero64 = full(0.0, torch.float64)
    mom32 = mom.to(torch.float32)
    kick_threshold = float(np.float32(a.kick_threshold))
    escape_at = torch.arange(t0 + 1, t0 + steps + 1, dtype=torch.int64, device=dev)  # t + 1, as 0-dim device views
    window = int(a.window)
    if diag and not frozen and window > 0:
        # the ring columns of the lags 0 .. window-1 at every step: (t - lag) mod 32
        lags = torch.arange(window, dtype=torch.int64, device=dev)
        columns = (torch.arange(t0, t0 + steps, dtype=torch.int64, device=dev)[:, None] - lags[None, :]) & (_RING - 1)
    if kind == _ADAI:
        tiny_t = full(float(np.finfo(T).tiny))
        zero_t, top_t = full(0.0), full(c(1.0 - float(a.eps)))
    draws: dict[str, Tensor] = {}
    for st in range(steps):
        if st % block == 0:
            draws = draw(st)
        j = st % block
        t = t0 + st
        opt_t = int(a.opt_step) + st + 1
        if kind == _LCAM and not frozen and epoch_length > 0 and t % epoch_length == 0:
            epoch_count = 0
            loss_sum.zero_()
        u = theta * root  # (dim, n)
        if arm != 0 or diag:
            # mean and variance of f'(u - x) over the training set (fused.noise_moments)
            b0 = (2.0 * u * u - 16.0) * u + 2.5
            bb1, bb2 = 16.0 - 6.0 * u * u, 6.0 * u
            mu = b0 + bb1 * m1 + bb2 * m2 + m3b
            var = (cc[0] * bb1 * bb1 + cc[1] * bb2 * bb2 + c2b
                   + 2.0 * (cc[3] * bb1 * bb2 + cc[4] * bb1 * b3 + cc[5] * bb2 * b3))
            sd = _sqrt(torch.where(var > floor_t, var, floor_t) * inv_b)
        if arm == 0:
            rows = given[st] if given is not None else draws["indices"][j]  # (batch, n)
            acc = lacc = None
            for b in range(batch):
                y = u - data_t.index_select(1, rows[b])  # (dim, n): u - x of the sampled rows
                gb = 2.5 + (-16.0 + 2.0 * y * y) * y
                acc = gb if acc is None else acc + gb
                if kind == _LCAM:
                    y2 = y * y
                    lb = (y2 - 16.0) * y2 + 5.0 * y
                    lacc = lb if lacc is None else lacc + lb
            gv = acc if batch == 1 else acc / batch_t
            if kind == _LCAM:
                lc = lacc if batch == 1 else lacc / batch_t
            if diag:
                kick = ((gv - mu) / sd).abs().to(torch.float32).amax(dim=0)
        else:
            z = draws["normals"][j]
            gv = mu + (sd if arm == 1 else iso) * z
            if diag:
                kick = z.abs().to(torch.float32).amax(dim=0)
        g = gv * root
        if kind in (_SGD, _LCAM, _BERNOULLI):
            if plain:
                step = g
            else:
                if kind == _SGD:
                    bw = mom
                elif kind == _LCAM:
                    bw = torch.where(below != 0, below_t, above_t) if has_decision else initial_t.expand(n)
                else:
                    bw = torch.where(draws["uniforms"][j] < mom32, below_t, above_t)
                if not frozen:
                    active = esc == 0
                    msum += torch.where(active, bw, zero64)
                    if kind != _SGD:
                        bsteps += (active & (bw == beta_below)).to(torch.float64)
                beta = bw.to(dtype)
                step = torch.where(first != 0, buf1 * beta + g, g)
                buf1.copy_(step)
                first.fill_(1)
            if not frozen:
                theta.copy_(theta + neg_lr * step)
        elif kind == _ADAM:
            b1, b2 = float(a.beta1), float(a.beta2)
            bc1, bc2 = 1.0 - b1 ** opt_t, 1.0 - b2 ** opt_t
            step_size, bc2_sqrt = T(float(a.lr) / bc1), T(np.sqrt(bc2))
            m = buf1 + c(1.0 - b1) * (g - buf1)
            v = buf2 * c(b2) + (c(1.0 - b2) * g) * g
            buf1.copy_(m)
            buf2.copy_(v)
            if not frozen:
                theta.copy_(theta + float(-step_size) * (m / (_sqrt(v) / full(float(bc2_sqrt)) + c(a.eps))))
        elif kind == _ADAI:
            b2 = float(a.beta2)
            tbc2_t = full(float(T(1.0 - b2 ** opt_t)))
            v = buf2 * c(b2) + (c(1.0 - b2) * g) * g
            buf2.copy_(v)
            total = v[0] + 0.0  # 0 + v[0]: the NumPy runner starts from zeros (the kernel's order of summation)
            for k in range(1, dim):
                total = total + v[k]
            vbar = total / tbc2_t / dim_t
            vbar = torch.where(vbar < tiny_t, tiny_t, vbar)  # np.maximum(vbar, tiny), NaN kept
            b1c = 1.0 + (v / tbc2_t / vbar) * (-c(a.beta0))
            b1c = torch.where(b1c < zero_t, zero_t, b1c)  # np.maximum / np.minimum, NaN kept
            b1c = torch.where(b1c > top_t, top_t, b1c)
            buf3.copy_(buf3 * b1c)
            m = buf1 * b1c + (1.0 - b1c) * g
            buf1.copy_(m)
            if not frozen:
                theta.copy_(theta + neg_lr * (m / (1.0 - buf3)))
        elif kind == _ADAREM:
            mmax = buf1.abs().amax(dim=0)
            m = buf1
            factor = ((g * m) / (g.abs() * mmax + c(a.eps))) * c(a.lam_t) + 1.0
            if not frozen:
                theta.copy_(theta + neg_lr * (factor * g))
            buf1.copy_(m * c(a.beta) + c(1.0 - float(a.beta)) * g)
        if kind == _LCAM:
            epoch_count += 1
            total = lc[0] + 0.0  # 0 + lc[0], then the coordinates in the kernel's order
            for k in range(1, dim):
                total = total + lc[k]
            lw = (0.5 * total).to(torch.float64)
            loss_sum += lw
            below.copy_(lw < loss_sum / full(float(epoch_count), torch.float64))
            has_decision = True
        if frozen:
            continue
        if diag:
            ring[:, t & (_RING - 1)] = kick
            kcount += ((esc == 0) & (kick > kick_threshold)).to(torch.float64)
        u = theta * root
        out = ((offset - u * direction) > 0.0).any(dim=0)
        new = out & (esc == 0) & (budget >= t + 1)
        if diag:
            width = min(window, t + 1)
            if width > 0:
                history = ring.index_select(1, columns[st, :width])  # (n, width), lag 0 first
                lag = history.argmax(dim=1)  # the first (most recent) of equal largest kicks
                kesc.copy_(torch.where(new, history.gather(1, lag[:, None])[:, 0], kesc))
                klag.copy_(torch.where(new, lag, klag))
            else:  # no window (the kernel's empty search): kick -1 at lag 0
                kesc.copy_(torch.where(new, full(-1.0, kesc.dtype), kesc))
                klag.copy_(torch.where(new, full(0, klag.dtype), klag))
        esc.copy_(torch.where(new, escape_at[st], esc))
