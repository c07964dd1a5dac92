"""The fused escape runner: eager parity on the same stream, dropped trials, the Gaussian arm's covariance.

The compiled kernel and its NumPy runner (used where no C++ compiler is found) are tested alike:
the same escape steps as the eager torch runner on its stream, and as each other on the Philox
stream. Tests of the kernel itself skip, naming the reason, when no compiler is found.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lcamlab.escape.design import sharp_valley_region
from lcamlab.escape import fused
from lcamlab.escape.fused import KernelUnavailable, compiler, gradient_noise, simulate_fused
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.regions import ExitRegion, valley_region
from lcamlab.escape.simulate import simulate_batched
from lcamlab.experiments.registry import preset

LRS = {"sgd": 2e-3, "momentum": 2e-4, "adam": 0.1, "adai": 2e-3, "adarem": 1.2e-3, "lcam-above": 2e-4,
       "lcam-below": 2e-4}


needs_compiler = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++ or $CXX) to build the fused "
                                    "escape kernel; the NumPy runner is tested instead")
RUNNERS = [pytest.param("kernel", marks=needs_compiler), "numpy"]


@pytest.fixture(scope="module")
def landscape64():
    return StyblinskiTangLandscape(10, 2000, 1.0, seed=0, dtype=torch.float64)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("key", list(LRS))
def test_fused_gives_the_eager_escape_steps_on_the_same_stream(landscape64, key, runner):
    region = valley_region(landscape64)
    sqrt_k = torch.as_tensor(np.sqrt(np.repeat([2.5, 3.5, 5.0], 12)))
    options = dict(budget=400, warmup=50, chunk=64, epoch_length=100)
    eager = simulate_batched(landscape64, preset(key, LRS[key]), sqrt_k, region, **options)
    fused = simulate_fused(landscape64, preset(key, LRS[key]), sqrt_k.numpy(), region, stream="torch", drop=False,
                           runner=runner, **options)
    assert fused.info["runner"] == runner
    assert eager.escaped.sum() >= 5  # the comparison has escapes in it
    np.testing.assert_array_equal(fused.escape_step, eager.escape_step)
    censored = ~eager.escaped
    np.testing.assert_allclose(fused.final_theta[censored], eager.final_theta[censored], atol=1e-9)


def test_dropping_trials_and_per_k_budgets_change_no_escape_step(landscape64):
    region = sharp_valley_region(landscape64)
    ks = np.repeat([2.0, 2.6, 3.4], 40)
    spec = preset("sgd", 4e-3)
    common = simulate_fused(landscape64, spec, np.sqrt(ks), region, budget=3000, drop=False, chunk=128, warmup=20)
    budgets = np.select([ks == 2.0, ks == 2.6], [3000, 150], 30)
    per_k = simulate_fused(landscape64, spec, np.sqrt(ks), region, budget=budgets, drop=True, chunk=128, warmup=20)
    within = common.escape_step <= budgets
    assert within.sum() > 60 and (~within).sum() > 0
    np.testing.assert_array_equal(per_k.escape_step[within], common.escape_step[within])
    assert np.all(per_k.escape_step[~within] == budgets[~within] + 1)
    assert per_k.trial_steps < common.trial_steps / 2
    # hence the same censored rates per k (on the per-k budget's censoring)
    for k in np.unique(ks):
        rows = ks == k
        b = budgets[rows][0]
        censored_common = np.minimum(common.escape_step[rows], b + 1)
        assert (np.minimum(censored_common, b).sum() == per_k.exposure[rows].sum())


def _one_step_gradients(landscape, u, arm, trials, seed=5):
    """Per-sample gradients at ``u`` (k = 1) from one plain SGD step of every trial: g = (theta0 - theta1) / lr."""
    lr = 1e-6
    region = ExitRegion("halfspace", np.asarray(u, dtype=float), np.full(landscape.dim, 50.0),
                        np.ones(landscape.dim))
    result = simulate_fused(landscape, preset("sgd", lr), np.ones(trials), region, budget=1, drop=False, arm=arm,
                            seed=seed)
    return (np.asarray(u)[None, :] - result.final_theta) / lr


@pytest.mark.parametrize("where", ["valley", "ridge"])
def test_gaussian_arm_has_the_data_arm_covariance_and_mean(where):
    # the design's training set (50 000 samples): its empirical cross-covariances are about 0.01
    landscape64 = StyblinskiTangLandscape(10, 50_000, 1.0, seed=0, dtype=torch.float64)
    points = landscape64.points
    u = points.deep_min if where == "valley" else 0.5 * (points.deep_min + points.boundary)
    data = _one_step_gradients(landscape64, u, "data", 100_000)
    gauss = _one_step_gradients(landscape64, u, "gauss", 100_000)
    mu, var = gradient_noise(landscape64, u)
    # a variance estimate's relative standard error is sqrt((kurtosis - 1) / n): about 0.02 for the
    # cubic of a Gaussian (kurtosis up to about 46) and 0.0045 for a Gaussian; 5 of them
    for sample, rtol in ((data, 0.1), (gauss, 0.025)):
        cov = np.cov(sample.T)
        sd = np.sqrt(np.diag(cov))
        np.testing.assert_allclose(np.diag(cov), var, rtol=rtol)
        # off-diagonal correlations vanish (independent coordinates of a sample)
        corr = cov / np.outer(sd, sd)
        assert np.abs(corr[~np.eye(len(u), dtype=bool)]).max() < 0.03
        np.testing.assert_allclose(sample.mean(0), mu, atol=5 * np.sqrt(var / len(sample)).max())
    # and the two arms' covariance matrices agree with each other
    np.testing.assert_allclose(np.cov(gauss.T), np.cov(data.T), atol=0.1 * var.max())


def test_kick_diagnostics_and_realised_momentum(landscape64):
    region = sharp_valley_region(landscape64)
    ks = np.full(64, 2.4)
    lcam = simulate_fused(landscape64, preset("lcam-above", 4e-4), np.sqrt(ks), region, budget=4000, warmup=50,
                          diagnostics=True)
    assert lcam.escaped.sum() > 10
    assert np.all(np.isfinite(lcam.kick_at_escape[lcam.escaped]))
    assert np.all((lcam.kick_lag[lcam.escaped] >= 0) & (lcam.kick_lag[lcam.escaped] < 20))
    assert np.all((lcam.below_fraction > 0) & (lcam.below_fraction < 1))
    # lcam-above is momentum=(below 0.9, above 0.95); the very first step uses the initial 0.9
    np.testing.assert_allclose(lcam.momentum_mean, 0.9 * lcam.below_fraction + 0.95 * (1 - lcam.below_fraction),
                               atol=0.05 / 20)
    shuffled = simulate_fused(landscape64, preset("sgd", 4e-4), np.sqrt(ks), region, budget=4000, warmup=50,
                              below_probability=lcam.below_fraction, pair=(0.9, 0.95))
    assert abs(shuffled.below_fraction.mean() - lcam.below_fraction.mean()) < 0.02


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [("sgd", 4e-3, "data"), ("sgd", 4e-3, "gauss"), ("sgd", 4e-3, "iso"),
                                  ("momentum", 4e-4, "data"), ("adam", 0.1, "gauss"), ("adai", 4e-3, "data"),
                                  ("adarem", 2.4e-3, "data"), ("lcam-above", 4e-4, "data"), ("shuffled", 4e-4, "data"),
                                  ("matched", 4e-4, "data")])
def test_the_numpy_runner_gives_the_kernels_results_on_the_philox_stream(case, dtype):
    key, lr, arm = case
    landscape = StyblinskiTangLandscape(10, 2000, 1.0, seed=0, dtype=dtype)
    region = sharp_valley_region(landscape)
    ks = np.repeat([20.0, 35.0, 50.0] if key == "adam" else [2.0, 2.6, 3.4], 16)
    extra = {"shuffled": {"below_probability": np.full(48, 0.5), "pair": (0.9, 0.95)},
             "matched": {"momentum": np.full(48, 0.92)}}.get(key, {})
    spec = preset("sgd", lr, momentum=0.925) if extra else preset(key, lr)
    options = dict(budget=1500, warmup=30, arm=arm, diagnostics=True, chunk=256, epoch_length=200, **extra)
    kernel = simulate_fused(landscape, spec, np.sqrt(ks), region, runner="kernel", **options)
    numpy_ = simulate_fused(landscape, spec, np.sqrt(ks), region, runner="numpy", **options)
    assert kernel.escaped.sum() >= 5
    np.testing.assert_array_equal(numpy_.escape_step, kernel.escape_step)
    np.testing.assert_array_equal(numpy_.kick_count, kernel.kick_count)
    np.testing.assert_array_equal(numpy_.kick_lag, kernel.kick_lag)
    np.testing.assert_allclose(numpy_.kick_at_escape, kernel.kick_at_escape, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(numpy_.momentum_mean, kernel.momentum_mean, equal_nan=True)
    np.testing.assert_allclose(numpy_.below_fraction, kernel.below_fraction, equal_nan=True)


@needs_compiler
@pytest.mark.parametrize("key", ["sgd", "lcam-above", "adam"])
def test_threads_and_the_portable_build_change_no_result(monkeypatch, tmp_path, key):
    """Tiles split over threads, and the build without the AVX-512 paths, give the same results bit for bit."""
    landscape = StyblinskiTangLandscape(10, 2000, 1.0, seed=0, dtype=torch.float32)
    region = sharp_valley_region(landscape)
    ks = np.repeat([20.0, 35.0] if key == "adam" else [2.0, 2.6], 50)  # 100 trials: a partial last tile
    lr = {"sgd": 4e-3, "lcam-above": 4e-4, "adam": 0.1}[key]
    options = dict(budget=400, warmup=30, diagnostics=True, chunk=128, epoch_length=200, runner="kernel")
    one = simulate_fused(landscape, preset(key, lr), np.sqrt(ks), region, threads=1, **options)
    three = simulate_fused(landscape, preset(key, lr), np.sqrt(ks), region, threads=3, **options)
    monkeypatch.setenv("LCAMLAB_KERNEL_DIR", str(tmp_path / "kernels"))
    monkeypatch.setattr(fused, "_LIBS", {})
    monkeypatch.setattr(fused, "_FLAGS", [*fused._FLAGS, "-mno-avx512f"])
    portable = simulate_fused(landscape, preset(key, lr), np.sqrt(ks), region, threads=2, **options)
    assert one.escaped.sum() >= 10 and (~one.escaped).sum() >= 1
    for other in (three, portable):
        np.testing.assert_array_equal(other.escape_step, one.escape_step)
        np.testing.assert_array_equal(other.final_theta, one.final_theta)
        np.testing.assert_array_equal(other.kick_at_escape, one.kick_at_escape)
        np.testing.assert_array_equal(other.kick_count, one.kick_count)
        np.testing.assert_array_equal(other.momentum_mean, one.momentum_mean)


def test_without_a_compiler_one_line_says_so_and_the_numpy_runner_runs(monkeypatch, tmp_path, capsys, landscape64):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    monkeypatch.setenv("LCAMLAB_KERNEL_DIR", str(tmp_path / "kernels"))  # an empty cache: nothing prebuilt
    monkeypatch.setattr(fused, "_LIBS", {})
    monkeypatch.setattr(fused, "_FALLBACK_SAID", set())
    region = sharp_valley_region(landscape64)
    spec = preset("sgd", 4e-3)
    first = simulate_fused(landscape64, spec, np.sqrt(np.full(24, 2.6)), region, budget=2000)
    again = simulate_fused(landscape64, spec, np.sqrt(np.full(24, 2.6)), region, budget=2000, arm="gauss")
    assert first.info["runner"] == again.info["runner"] == "numpy" and first.escaped.sum() > 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no C++ compiler ('no-such-compiler-here' not found" in err
    assert "Traceback" not in err and "NumPy runner" in err
    assert fused.runner_name() == "numpy"
    with pytest.raises(KernelUnavailable, match="no C\\+\\+ compiler") as info:
        simulate_fused(landscape64, spec, np.ones(4), region, budget=10, runner="kernel")
    assert "\n" not in str(info.value)


def test_a_failing_compiler_is_one_line_too(monkeypatch, tmp_path, capsys, landscape64):
    failing = tmp_path / "cxx"
    failing.write_text("#!/bin/sh\necho 'fused_kernel.cpp:1: error: this compiler is broken' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CXX", str(failing))
    monkeypatch.setenv("LCAMLAB_KERNEL_DIR", str(tmp_path / "kernels"))
    monkeypatch.setattr(fused, "_LIBS", {})
    monkeypatch.setattr(fused, "_FALLBACK_SAID", set())
    result = simulate_fused(landscape64, preset("sgd", 4e-3), np.ones(8), sharp_valley_region(landscape64), budget=5)
    assert result.info["runner"] == "numpy"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this compiler is broken" in err


def test_bad_arguments(landscape64):
    region = valley_region(landscape64)
    with pytest.raises(ValueError, match="noise arm"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, arm="levy")
    with pytest.raises(ValueError, match="mini-batch loss"):
        simulate_fused(landscape64, preset("lcam-above", 1e-3), np.ones(4), region, budget=10, arm="gauss")
    with pytest.raises(ValueError, match="common budget"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, stream="torch")
    with pytest.raises(ValueError, match="Invalid runner"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, runner="gpu")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="Invalid threads"):
            simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, threads=bad)
    assert math.isfinite(float(gradient_noise(landscape64, landscape64.points.deep_min)[1].sum()))
