"""The fused escape loop (numba): eager parity on the same stream, dropped trials, threads, the Gaussian arm.

The eager torch runner is the reference: on its stream and in float64 the loop gives its escape
steps. On the Philox stream the loop's own invariances are tested: dropping trials, per-k budgets
and the thread count change no result; the Gaussian arm has the data arm's covariance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lcamlab.escape.design import sharp_valley_region
from lcamlab.escape import loop
from lcamlab.escape.fused import gradient_noise, simulate_fused
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.regions import ExitRegion, valley_region
from lcamlab.escape.simulate import simulate_batched
from lcamlab.experiments.registry import preset

LRS = {"sgd": 2e-3, "momentum": 2e-4, "adam": 0.1, "adai": 2e-3, "adarem": 1.2e-3, "lcam-above": 2e-4,
       "lcam-below": 2e-4}


@pytest.fixture(scope="module")
def landscape64():
    return StyblinskiTangLandscape(10, 2000, 1.0, seed=0, dtype=torch.float64)


@pytest.mark.parametrize("key", list(LRS))
def test_fused_gives_the_eager_escape_steps_on_the_same_stream(landscape64, key):
    region = valley_region(landscape64)
    sqrt_k = torch.as_tensor(np.sqrt(np.repeat([2.5, 3.5, 5.0], 12)))
    options = dict(budget=400, warmup=50, chunk=64, epoch_length=100)
    eager = simulate_batched(landscape64, preset(key, LRS[key]), sqrt_k, region, **options)
    fused = simulate_fused(landscape64, preset(key, LRS[key]), sqrt_k.numpy(), region, stream="torch", drop=False,
                           **options)
    assert fused.info["runner"] == "numba"
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


@pytest.mark.parametrize("key", ["sgd", "lcam-above", "adam", "shuffled"])
def test_threads_and_the_call_size_change_no_result(key):
    """Tiles split over threads, and steps split over calls, give the same results bit for bit."""
    landscape = StyblinskiTangLandscape(10, 2000, 1.0, seed=0, dtype=torch.float32)
    region = sharp_valley_region(landscape)
    ks = np.repeat([20.0, 35.0] if key == "adam" else [2.0, 2.6], 50)  # 100 trials: a partial last tile
    lr = {"sgd": 4e-3, "lcam-above": 4e-4, "adam": 0.1, "shuffled": 4e-4}[key]
    extra = {"below_probability": np.full(100, 0.4), "pair": (0.9, 0.95)} if key == "shuffled" else {}
    spec = preset("sgd", lr, momentum=0.925) if extra else preset(key, lr)
    options = dict(budget=400, warmup=30, diagnostics=True, epoch_length=200, **extra)
    one = simulate_fused(landscape, spec, np.sqrt(ks), region, threads=1, chunk=128, **options)
    two = simulate_fused(landscape, spec, np.sqrt(ks), region, threads=2, chunk=37, **options)
    many = simulate_fused(landscape, spec, np.sqrt(ks), region, threads=64, chunk=400, drop=False, **options)
    assert one.escaped.sum() >= 10 and (~one.escaped).sum() >= 1
    for other in (two, many):
        np.testing.assert_array_equal(other.escape_step, one.escape_step)
        np.testing.assert_array_equal(other.final_theta[~one.escaped], one.final_theta[~one.escaped])
        np.testing.assert_array_equal(other.kick_at_escape, one.kick_at_escape)
        np.testing.assert_array_equal(other.kick_lag, one.kick_lag)
        np.testing.assert_array_equal(other.kick_count, one.kick_count)
        np.testing.assert_array_equal(other.momentum_mean, one.momentum_mean)
        np.testing.assert_array_equal(other.below_fraction, one.below_fraction)


def test_the_philox_stream_is_the_reference_philox4x32_10():
    """Philox4x32-10 of the Random123 known-answer vectors (Salmon et al. 2011, kat_vectors)."""
    mask = 0xFFFFFFFF
    cases = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((mask, mask, mask, mask), (mask, mask), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for counter, key, expected in cases:
        words = loop._philox(*(np.uint64(c) for c in counter), *(np.uint64(k) for k in key))
        assert tuple(int(w) for w in words) == expected


def test_bad_arguments(landscape64):
    region = valley_region(landscape64)
    with pytest.raises(ValueError, match="noise arm"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, arm="levy")
    with pytest.raises(ValueError, match="mini-batch loss"):
        simulate_fused(landscape64, preset("lcam-above", 1e-3), np.ones(4), region, budget=10, arm="gauss")
    with pytest.raises(ValueError, match="common budget"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, stream="torch")
    with pytest.raises(ValueError, match="batch_size"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, batch_size=9)
    with pytest.raises(ValueError, match="window"):
        simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, window=33)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="Invalid threads"):
            simulate_fused(landscape64, preset("sgd", 1e-3), np.ones(4), region, budget=10, threads=bad)
    assert math.isfinite(float(gradient_noise(landscape64, landscape64.points.deep_min)[1].sum()))


def test_the_box_muller_polynomials_are_float_accurate():
    """The loop's float32 log and sin/cos (vector-friendly polynomials) against numpy's, on the 24-bit grid."""
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**24, 4000)
    u = ((words.astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-24)).astype(np.float32)
    angle = (words.astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)
    logs = []
    for bits in u.view(np.uint32):
        exponent, mantissa_bits = loop._split(bits)  # x = m 2^e, m in [0.5, 1)
        logs.append(loop._log(np.array([mantissa_bits], np.uint32).view(np.float32)[0], exponent))
    logs = np.array(logs, dtype=np.float64)
    np.testing.assert_allclose(logs, np.log(u.astype(np.float64)), rtol=3e-7, atol=1e-7)
    sines, cosines = np.array([loop._sincos_2pi(a) for a in angle], dtype=np.float64).T
    np.testing.assert_allclose(sines, np.sin(2 * np.pi * angle.astype(np.float64)), atol=5e-7)
    np.testing.assert_allclose(cosines, np.cos(2 * np.pi * angle.astype(np.float64)), atol=5e-7)
