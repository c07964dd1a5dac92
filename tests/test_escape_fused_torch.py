"""The torch runner of the fused escape loop against the NumPy runner (hence the kernel), and its device path.

:func:`lcamlab.escape.fused_torch.run` is driven exactly as :func:`~lcamlab.escape.fused.simulate_fused`
drives the NumPy runner: the NumPy runner is swapped for a wrapper that hands ``fused_torch.run``
torch tensors of the same arrays (``torch.from_numpy`` shares their memory on the CPU; on CUDA the
state is copied back), so dropped trials, warm-up, chunking and the results are the runner's own.
On the CPU, in the data arm, every result must be bit for bit the NumPy runner's; the Gaussian
arms differ in the last bits of ``log``/``sin``/``cos``. CUDA tests skip without a CUDA device.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lcamlab.escape import fused, fused_numpy, fused_torch
from lcamlab.escape.design import sharp_valley_region
from lcamlab.escape.fused import simulate_fused
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.experiments.registry import preset

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the torch runner's CUDA path is not tested here")
STATE = ("theta", "buf1", "buf2", "buf3", "escape_step", "first_flag", "loss_sum", "below", "momentum_sum",
         "below_steps", "ring", "kick_at_escape", "kick_lag", "kick_count")
N = 48


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the tensors are small, and on a busy machine two threads' OpenMP waits cost 20x
    (measured: the Gaussian-arm tests took 25 s instead of 1 s). conftest.py restores the count."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module", params=[torch.float32, torch.float64], ids=["float32", "float64"])
def landscape(request):
    return StyblinskiTangLandscape(10, 500, 1.0, seed=0, dtype=request.param)


@pytest.fixture(scope="module")
def landscape64():
    return StyblinskiTangLandscape(10, 500, 1.0, seed=0, dtype=torch.float64)


def _torch_runner(device: str = "cpu", around=None):
    """A stand-in for ``fused_numpy.run``: the same call on torch tensors of ``device``."""

    def run(a, arrays):
        tensors = {name: None if array is None else torch.from_numpy(array).to(device)
                   for name, array in arrays.items()}
        if around is None:
            fused_torch.run(a, tensors)
        else:
            around(a, tensors)
        if device != "cpu":
            for name in STATE:
                if arrays.get(name) is not None:
                    arrays[name][...] = tensors[name].cpu().numpy()

    return run


def _simulate(landscape, spec, sqrt_k, region, *, runner=None, **options):
    """``simulate_fused`` on the NumPy runner, or with ``runner`` in its place."""
    if runner is None:
        return simulate_fused(landscape, spec, sqrt_k, region, runner="numpy", **options)
    with mock.patch.object(fused.fused_numpy, "run", runner):
        return simulate_fused(landscape, spec, sqrt_k, region, runner="numpy", **options)


def _assert_identical(got, ref):
    np.testing.assert_array_equal(got.escape_step, ref.escape_step)
    np.testing.assert_array_equal(got.final_theta, ref.final_theta)
    np.testing.assert_array_equal(got.kick_count, ref.kick_count)
    np.testing.assert_array_equal(got.kick_lag, ref.kick_lag)
    np.testing.assert_array_equal(got.kick_at_escape, ref.kick_at_escape)  # NaN where NaN
    np.testing.assert_array_equal(got.momentum_mean, ref.momentum_mean)
    np.testing.assert_array_equal(got.below_fraction, ref.below_fraction)
    assert got.trial_steps == ref.trial_steps


def _case(key: str, n: int = N):
    """The spec, sharpness and extra options of one optimizer kind (as tests/test_escape_fused.py)."""
    ks = np.repeat([8.0, 14.0, 20.0] if key == "adam" else [2.0, 2.6, 3.4], n // 3)
    extra = {"shuffled": {"below_probability": np.linspace(0.2, 0.8, n), "pair": (0.9, 0.95)},
             "matched": {"momentum": np.linspace(0.9, 0.95, n)}}.get(key, {})
    lr = {"sgd": 4e-3, "momentum": 4e-4, "matched": 4e-4, "lcam-above": 4e-4, "adam": 0.1, "adai": 4e-3,
          "adarem": 2.4e-3, "shuffled": 4e-4}[key]
    spec = preset("sgd", lr, momentum=0.925) if extra else preset(key, lr)
    return spec, np.sqrt(ks), extra


KEYS = ["sgd", "momentum", "matched", "lcam-above", "adam", "adai", "adarem", "shuffled"]


# ---------------------------------------------------------------------------------------------------------------
# the Philox stream


def test_philox_is_bit_for_bit_the_numpy_one():
    rng = np.random.default_rng(7)
    edges = np.array([0, 1, 2, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1], dtype=np.int64)
    words = [np.concatenate([edges, rng.integers(0, 2**32, 4000, dtype=np.int64),
                             rng.permutation(np.repeat(edges, 3))]) for _ in range(4)]
    for seed in (0, 1, 2**32 - 1, 2**32, 0x123456789ABCDEF0, 2**64 - 1):
        want = fused_numpy.philox(*words, seed)
        got = fused_torch.philox(*(torch.from_numpy(w) for w in words), seed)
        for w, g in zip(want, got):
            assert g.dtype == torch.int64
            np.testing.assert_array_equal(g.numpy(), w.astype(np.int64))
    # broadcasting and Python-int words
    want = fused_numpy.philox(words[0][:, None], 5, words[2][None, :50], 0x200, 99)
    got = fused_torch.philox(torch.from_numpy(words[0][:, None]), 5, torch.from_numpy(words[2][None, :50]), 0x200, 99)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g.numpy(), w.astype(np.int64))


@pytest.mark.parametrize("phase", [0, 0x40000000])
def test_the_stream_draws_are_the_numpy_ones(phase):
    steps = np.array([0, 1, 2, 1023, 2**31, 2**32 - 1, 2**32, 2**32 + 5], dtype=np.int64)
    ids = np.array([0, 1, 2, 17, 2_000_000_000, 2**32 - 1, 2**32 + 3], dtype=np.int64)
    seed = 0xDEADBEEF12345
    ts, ti = torch.from_numpy(steps), torch.from_numpy(ids)
    want = fused_numpy.mini_batch_indices(steps, ids, 3, 50_000, seed, phase)
    got = fused_torch.mini_batch_indices(ts, ti, 3, 50_000, seed, phase)
    assert got.shape == want.shape and got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(fused_torch.bernoulli_uniforms(ts, ti, seed, phase).numpy(),
                                  fused_numpy.bernoulli_uniforms(steps, ids, seed, phase))
    for dim in (10, 13):
        want = fused_numpy.gaussian_normals(steps, ids, dim, seed, phase)
        got = fused_torch.gaussian_normals(ts, ti, dim, seed, phase)
        assert got.shape == want.shape and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)
    # many normals: the same uniforms, so the same values up to log/sin/cos's last bits
    many = np.arange(300, dtype=np.int64)
    want = fused_numpy.gaussian_normals(many, many, 10, seed, phase)
    got = fused_torch.gaussian_normals(torch.from_numpy(many), torch.from_numpy(many), 10, seed, phase)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# the loop against the NumPy runner


@pytest.mark.parametrize("key", KEYS)
def test_the_data_arm_is_bit_for_bit_the_numpy_runner(landscape, key):
    region = sharp_valley_region(landscape)
    spec, sqrt_k, extra = _case(key)
    options = dict(budget=400, warmup=30, diagnostics=True, chunk=128, epoch_length=100, **extra)
    ref = _simulate(landscape, spec, sqrt_k, region, **options)
    got = _simulate(landscape, spec, sqrt_k, region, runner=_torch_runner(), **options)
    assert 5 <= ref.escaped.sum()  # escapes to compare, and (most kinds) censored trials too
    assert np.isfinite(ref.kick_at_escape[ref.escaped]).all() and ref.kick_count.sum() > 0
    _assert_identical(got, ref)


@pytest.mark.parametrize("key", ["sgd", "lcam-above", "shuffled", "adai"])
def test_mini_batches_without_diagnostics_and_far_trial_ids(landscape, key):
    # batch 3 (the mean over the batch, LCAM's mean loss); ids across 2**32 and a 64-bit key; LCAM's
    # epochs shorter than the warm-up (no running-mean reset while frozen)
    region = sharp_valley_region(landscape)
    spec, sqrt_k, extra = _case(key)
    ids = 2**32 - N // 2 + np.arange(N, dtype=np.int64)
    options = dict(budget=300, warmup=20, batch_size=3, chunk=100, trial_ids=ids, seed=2**63 + 12345,
                   epoch_length=15, **extra)
    ref = _simulate(landscape, spec, sqrt_k * 1.5, region, **options)
    got = _simulate(landscape, spec, sqrt_k * 1.5, region, runner=_torch_runner(), **options)
    assert ref.escaped.sum() >= 5
    _assert_identical(got, ref)


@pytest.mark.parametrize("key", ["momentum", "lcam-above"])
def test_the_eager_runners_stream_of_given_indices(landscape64, key):
    region = sharp_valley_region(landscape64)
    spec, sqrt_k, extra = _case(key)
    options = dict(budget=300, warmup=20, stream="torch", drop=False, chunk=64, diagnostics=True, **extra)
    ref = _simulate(landscape64, spec, sqrt_k, region, **options)
    got = _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner(), **options)
    assert ref.escaped.sum() >= 5
    _assert_identical(got, ref)


def test_sub_blocks_of_drawn_steps_change_nothing(landscape64, monkeypatch):
    region = sharp_valley_region(landscape64)
    spec, sqrt_k, extra = _case("shuffled")
    options = dict(budget=200, warmup=10, diagnostics=True, chunk=128, batch_size=2, **extra)
    whole = _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner(), **options)
    monkeypatch.setattr(fused_torch, "BLOCK_BYTES", 7 * N * 2 * 300)  # a handful of steps per block
    blocks = _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner(), **options)
    _assert_identical(blocks, whole)
    gauss = dict(budget=200, warmup=10, diagnostics=True, chunk=128, arm="gauss")
    monkeypatch.setattr(fused_torch, "BLOCK_BYTES", 256 << 20)
    whole = _simulate(landscape64, preset("sgd", 4e-3), sqrt_k, region, runner=_torch_runner(), **gauss)
    monkeypatch.setattr(fused_torch, "BLOCK_BYTES", 1)  # one step per block
    blocks = _simulate(landscape64, preset("sgd", 4e-3), sqrt_k, region, runner=_torch_runner(), **gauss)
    _assert_identical(blocks, whole)


@pytest.mark.parametrize("case", [("sgd", "gauss"), ("sgd", "iso"), ("adam", "gauss"), ("adai", "gauss")])
def test_the_gaussian_arms_give_nearly_all_the_numpy_escape_steps(landscape, case):
    key, arm = case
    region = sharp_valley_region(landscape)
    spec, sqrt_k, extra = _case(key, n=150)
    options = dict(budget=400, warmup=30, arm=arm, diagnostics=True, chunk=128, **extra)
    ref = _simulate(landscape, spec, sqrt_k, region, **options)
    got = _simulate(landscape, spec, sqrt_k, region, runner=_torch_runner(), **options)
    assert ref.escaped.sum() >= 20
    same = got.escape_step == ref.escape_step
    assert same.mean() >= 0.98
    # where the trajectories agree, the kicks (the drawn |z|) agree to float32 rounding
    lagged = same & (got.kick_lag == ref.kick_lag) & ref.escaped
    assert lagged.sum() >= 0.95 * (same & ref.escaped).sum()
    np.testing.assert_allclose(got.kick_at_escape[lagged], ref.kick_at_escape[lagged], rtol=1e-5)


def test_no_trials_or_no_steps_change_nothing(landscape64):
    fused_torch.run(SimpleNamespace(n=0, dim=10, batch=1, steps=5), {})
    fused_torch.run(SimpleNamespace(n=4, dim=10, batch=1, steps=0), {})
    calls = []

    def zero_steps(a, tensors):
        before = {name: t.clone() for name, t in tensors.items() if t is not None}
        steps, a.steps = a.steps, 0
        fused_torch.run(a, tensors)
        calls.append(all(torch.equal(before[name].view(torch.uint8), t.view(torch.uint8))  # bits: NaN kicks too
                         for name, t in tensors.items() if t is not None))
        a.steps = steps
        fused_torch.run(a, tensors)

    region = sharp_valley_region(landscape64)
    _simulate(landscape64, preset("adam", 0.1), np.ones(5), region, budget=3, runner=_torch_runner(around=zero_steps))
    assert calls and all(calls)


# ---------------------------------------------------------------------------------------------------------------
# no host synchronisation


_READS_BACK = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "nonzero_static", "masked_select", "equal",
               "_unique", "_unique2", "unique_dim", "unique_consecutive", "allclose", "masked_scatter"}


class _Ops(TorchDispatchMode):
    """Records the aten operations run, and any boolean-mask indexing."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()
        self.masks = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        if name in ("index", "index_put", "index_put_"):
            indices = args[1] if len(args) > 1 else ()
            self.masks += any(i is not None and i.dtype == torch.bool for i in indices)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("key,arm", [("lcam-above", "data"), ("shuffled", "data"), ("adai", "data"),
                                     ("adam", "gauss"), ("adarem", "data")])
def test_the_loop_reads_nothing_back_and_its_launches_do_not_grow_with_the_trials(landscape64, key, arm):
    # a CPU stand-in for CUDA's sync check: no operation that reads a value back to the host (item,
    # bool, nonzero, boolean masks), and the same operations per step for 21 trials as for 42
    region = sharp_valley_region(landscape64)
    counts = []
    for n in (21, 42):
        spec, sqrt_k, extra = _case(key, n=n)
        modes = []

        def watched(a, tensors):
            with _Ops() as ops:
                fused_torch.run(a, tensors)
            modes.append((int(a.frozen), int(a.steps), ops))

        _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner(around=watched), budget=40, warmup=5,
                  arm=arm, diagnostics=True, drop=False, chunk=40, **extra)
        for _, _, ops in modes:
            assert not (_READS_BACK & set(ops.ops)), _READS_BACK & set(ops.ops)
            assert ops.masks == 0
        counts.append([sum(ops.ops.values()) for _, _, ops in modes])
    assert counts[0] == counts[1]
    per_step = counts[0][-1] / 40
    assert per_step < 150  # a few dozen launches a step (aten calls, views included), whatever the trials


@pytest.mark.parametrize("key,arm,options", [
    ("lcam-above", "data", {"batch_size": 2}), ("shuffled", "data", {}), ("adai", "data", {}), ("adam", "gauss", {}),
    ("adarem", "iso", {}), ("matched", "data", {}), ("momentum", "data", {"stream": "torch", "drop": False})])
def test_the_loop_runs_on_a_device_without_host_data(landscape64, key, arm, options):
    # a second stand-in for CUDA: on the meta device (shapes, no data) reading a value back (item, bool,
    # nonzero, masks, .cpu()) raises, and so does any tensor made on the CPU and mixed in
    region = sharp_valley_region(landscape64)
    spec, sqrt_k, extra = _case(key, n=12)
    calls = []

    def on_meta(a, tensors):
        fused_torch.run(a, {name: None if t is None else t.to("meta") for name, t in tensors.items()})
        calls.append(int(a.frozen))

    _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner(around=on_meta), budget=20, warmup=3, arm=arm,
              diagnostics=True, chunk=20, **extra, **options)
    assert calls == [1, 0]


@needs_cuda
def test_cuda_runs_without_a_host_sync(landscape64):
    region = sharp_valley_region(landscape64)

    def strict(a, tensors):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            fused_torch.run(a, tensors)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()

    for key, arm in (("lcam-above", "data"), ("shuffled", "data"), ("adai", "data"), ("adam", "gauss"),
                     ("adarem", "iso"), ("matched", "data")):
        spec, sqrt_k, extra = _case(key)
        result = _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner("cuda", around=strict), budget=200,
                           warmup=10, arm=arm, diagnostics=True, chunk=64, batch_size=2, **extra)
        assert result.escape_step.min() >= 1


@needs_cuda
@pytest.mark.parametrize("key", ["sgd", "lcam-above", "adam", "adai"])
def test_cuda_gives_the_cpu_escape_steps(landscape64, key):
    region = sharp_valley_region(landscape64)
    spec, sqrt_k, extra = _case(key, n=300)
    options = dict(budget=400, warmup=30, diagnostics=True, chunk=128, **extra)
    cpu = _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner("cpu"), **options)
    cuda = _simulate(landscape64, spec, sqrt_k, region, runner=_torch_runner("cuda"), **options)
    assert cpu.escaped.sum() >= 30
    assert (cuda.escape_step == cpu.escape_step).mean() >= 0.99


# ---------------------------------------------------------------------------------------------------------------
# the torch runner as simulate_fused runs it (runner="torch"; the runner of a CUDA landscape)


@pytest.mark.parametrize("key", ["lcam-above", "adam", "shuffled"])
def test_simulate_fused_runs_the_torch_runner_itself(landscape, key):
    region = sharp_valley_region(landscape)
    spec, sqrt_k, extra = _case(key)
    options = dict(budget=400, warmup=30, diagnostics=True, chunk=96, epoch_length=150, **extra)
    ref = simulate_fused(landscape, spec, sqrt_k, region, runner="numpy", **options)
    got = simulate_fused(landscape, spec, sqrt_k, region, runner="torch", **options)
    assert got.info["runner"] == "torch" and got.info["device"] == "cpu"
    assert ref.escaped.sum() >= 5 and (~ref.escaped).sum() >= 1
    _assert_identical(got, ref)


@needs_cuda
@pytest.mark.parametrize("key", ["sgd", "lcam-above", "adam"])
def test_a_cuda_landscape_runs_the_torch_runner_on_its_device(key):
    cpu_landscape = StyblinskiTangLandscape(10, 500, 1.0, seed=0, dtype=torch.float64)
    cuda_landscape = StyblinskiTangLandscape(10, 500, 1.0, seed=0, dtype=torch.float64, device="cuda")
    region = sharp_valley_region(cpu_landscape)
    spec, sqrt_k, extra = _case(key, n=300)
    options = dict(budget=400, warmup=30, diagnostics=True, chunk=128, **extra)
    cpu = simulate_fused(cpu_landscape, spec, sqrt_k, region, runner="numpy", **options)
    cuda = simulate_fused(cuda_landscape, spec, sqrt_k, region, **options)
    assert cuda.info["runner"] == "torch" and cuda.info["device"].startswith("cuda")
    assert cpu.escaped.sum() >= 30
    assert (cuda.escape_step == cpu.escape_step).mean() >= 0.99
    with pytest.raises(ValueError, match="run on the CPU"):
        simulate_fused(cuda_landscape, spec, sqrt_k, region, runner="kernel", **options)


@needs_cuda
@pytest.mark.parametrize("key", ["momentum", "lcam-above"])
def test_on_cuda_the_torch_runner_gives_the_eager_runners_escape_steps_on_its_stream(key):
    from lcamlab.escape.regions import valley_region
    from lcamlab.escape.simulate import simulate_batched

    landscape = StyblinskiTangLandscape(10, 2000, 1.0, seed=0, dtype=torch.float64, device="cuda")
    region = valley_region(landscape)
    sqrt_k = torch.as_tensor(np.sqrt(np.repeat([2.5, 3.5, 5.0], 12)))
    options = dict(budget=400, warmup=50, chunk=64, epoch_length=100)
    spec = preset(key, 2e-4)
    eager = simulate_batched(landscape, spec, sqrt_k.to("cuda"), region, **options)
    got = simulate_fused(landscape, spec, sqrt_k.numpy(), region, stream="torch", drop=False, **options)
    assert eager.escaped.sum() >= 5
    assert (got.escape_step == eager.escape_step).mean() >= 0.99
