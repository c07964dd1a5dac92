"""The suite's statistics: intervals of means and medians, censored rates, goodness of fit and fits."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from lcamlab.experiments.stats import (
    censored_exponential_rate,
    chi2_quantile,
    exponential_gof,
    fit_line,
    fit_log_rate,
    mean_ci,
    median_ci,
    paired_ci,
    t_quantile,
)


def censored_sample(rng, rate, n, budget):
    """Integer escape iterations ceil(Exp(rate)), censored at budget: (exposure, escaped, steps)."""
    steps = np.maximum(np.ceil(rng.exponential(1.0 / rate, n)), 1.0)
    escaped = steps <= budget
    return np.minimum(steps, budget), escaped, np.where(escaped, steps, budget + 1)


@pytest.mark.parametrize("method", ["chi2", "profile"])
@pytest.mark.parametrize("rate, budget", [(1 / 400, 800), (1 / 3000, 2000)])
def test_interval_covers_the_true_rate_95_percent(method, rate, budget):
    rng = np.random.default_rng(12345)
    repetitions, covered, censored = 400, 0, 0
    for _ in range(repetitions):
        exposure, escaped, _ = censored_sample(rng, rate, 100, budget)
        censored += int((~escaped).sum())
        estimate = censored_exponential_rate(exposure, escaped, method=method)
        covered += estimate.lower <= rate <= estimate.upper
    assert censored > 0.1 * repetitions * 100  # the censoring is real
    assert 0.92 <= covered / repetitions <= 0.98


def test_estimator_without_censoring_is_the_inverse_mean():
    times = np.array([10.0, 20.0, 30.0, 40.0])
    estimate = censored_exponential_rate(times, np.ones(4, bool))
    assert estimate.rate == pytest.approx(1 / 25)
    assert estimate.mean_time == pytest.approx(25)
    assert estimate.lower < estimate.rate < estimate.upper


def test_no_escape_gives_zero_rate_and_a_finite_upper_bound():
    estimate = censored_exponential_rate(np.full(50, 1000.0), np.zeros(50, bool))
    assert estimate.rate == 0 and estimate.lower == 0
    # chi2_{2, 0.975} / (2 E) = -ln(0.025) / E
    assert estimate.upper == pytest.approx(-math.log(0.025) / 50_000, rel=1e-9)
    assert math.isinf(estimate.mean_time)


def test_bad_rate_inputs():
    with pytest.raises(ValueError, match="escape times"):
        censored_exponential_rate([0.0, 1.0], [True, True])
    with pytest.raises(ValueError, match="method"):
        censored_exponential_rate([1.0], [True], method="wald")
    with pytest.raises(ValueError, match="3 flags|2 times|escape flags"):
        censored_exponential_rate([1.0, 2.0], [True, True, False])


def test_goodness_of_fit_accepts_exponential_and_rejects_gamma():
    rng = np.random.default_rng(7)
    _, escaped, steps = censored_sample(rng, 1 / 300, 200, 1000)
    assert exponential_gof(steps, escaped, 1000, bootstraps=200, seed=1).p_value > 0.01
    # shape-4 gamma: a delayed, peaked escape (not memoryless)
    delayed = np.ceil(rng.gamma(4.0, 75.0, 200))
    assert exponential_gof(delayed, delayed <= 1000, 1000, bootstraps=200, seed=1).p_value < 0.01
    with pytest.raises(ValueError, match="budget"):
        exponential_gof(steps, escaped, 0)


def test_goodness_of_fit_p_values_are_calibrated():
    # under the null (exponential, censored) about 10% of p-values fall below 0.1
    rng = np.random.default_rng(3)
    p_values = []
    for i in range(120):
        _, escaped, steps = censored_sample(rng, 1 / 200, 60, 400)
        p_values.append(exponential_gof(steps, escaped, 400, bootstraps=100, seed=i).p_value)
    rejections = np.mean(np.asarray(p_values) < 0.1)
    assert 0.02 <= rejections <= 0.2


def test_fits_recover_known_slopes_exactly():
    k = np.linspace(1.5, 5.0, 8)
    rate = 0.3 * np.exp(-12.0 / k)
    fit = fit_log_rate(k, rate, np.full(8, 50), transform="1/k")
    assert fit.slope == pytest.approx(-12.0, rel=1e-10)
    assert fit.intercept == pytest.approx(math.log(0.3), rel=1e-10)
    assert fit.r2 == pytest.approx(1.0)
    sqrt_law = 0.3 * np.exp(-7.0 / np.sqrt(k))
    fit = fit_log_rate(k, sqrt_law, None, transform="1/sqrt(k)")
    assert fit.slope == pytest.approx(-7.0, rel=1e-10)


def test_fit_needs_three_points_with_escapes():
    with pytest.raises(ValueError, match="usable points"):
        fit_log_rate([1.0, 2.0, 3.0], [0.1, 0.0, 0.2], [5, 0, 5])
    with pytest.raises(ValueError, match="sharpness k"):
        fit_log_rate([0.0, 2.0, 3.0], [0.1, 0.1, 0.2])
    with pytest.raises(ValueError, match="transform"):
        fit_log_rate([1.0, 2.0, 3.0], [0.1, 0.1, 0.2], transform="k")


def test_fit_line_recovers_an_exact_line():
    line = fit_line([0, 1, 2, 3], [1, 3, 5, 7])
    assert line.slope == pytest.approx(2.0) and line.r2 == pytest.approx(1.0)


def test_quantiles_match_scipy():
    assert chi2_quantile(0.975, 7) == pytest.approx(stats.chi2.ppf(0.975, 7), rel=1e-12)
    assert t_quantile(0.975, 5) == pytest.approx(stats.t.ppf(0.975, 5), rel=1e-12)


def test_paired_interval_and_read_only_input():
    # mean_ci and median_ci themselves are tested in test_toys_measurements.py
    diff, low, high, n = paired_ci([2.0, 3.0, 5.0], [1.0, 1.0, 2.0])
    assert diff == pytest.approx(2.0) and n == 3 and low < 2.0 < high
    assert math.isnan(mean_ci([1.0])[1])
    frozen = np.arange(1.0, 6.0)
    frozen.flags.writeable = False  # as pandas' to_numpy() hands them out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_ci(frozen)[0] == 3.0 and median_ci(frozen)[0] == 3.0
    with pytest.raises(ValueError, match="paired"):
        paired_ci([1.0, 2.0], [1.0])


# -- Kramers' law on censored escape times (escape v2) ------------------------------------------

from lcamlab.experiments.stats import censored_ks, exponential_gof, kramers_fit  # noqa: E402


def _kramers_data(alpha, seed, *, trials=1000, kmax=4.0, c=12.0, p=1.0, a=math.log(0.01), points=12):
    """Censored exponential escape counts from log rate = a + p log k - c k^-alpha (budget 5 mean times)."""
    rng = np.random.default_rng(seed)
    k = np.geomspace(1.0, kmax, points)
    rate = np.exp(a + p * np.log(k) - c * k ** -alpha)
    escapes, exposure = [], []
    for r in rate:
        times = rng.exponential(1.0 / r, size=trials)
        budget = 5.0 / r
        escapes.append(int((times <= budget).sum()))
        exposure.append(float(np.minimum(times, budget).sum()))
    return k, np.array(escapes), np.array(exposure)


@pytest.mark.parametrize("alpha, kmax, c", [(1.0, 4.0, 12.0), (0.5, 16.0, 11.0)])
def test_kramers_fit_interval_covers_alpha_about_95_percent(alpha, kmax, c):
    replications = 80
    covered = 0
    estimates = []
    for seed in range(replications):
        fit = kramers_fit(*_kramers_data(alpha, seed, kmax=kmax, c=c), grid=100)
        covered += fit.alpha_low <= alpha <= fit.alpha_high
        estimates.append(fit.alpha)
    # binomial(80, 0.95): 95% of runs give 72..80 covered
    assert covered / replications >= 0.88, covered
    assert abs(np.median(estimates) - alpha) < 0.1 * alpha + 0.05


def test_kramers_fit_distinguishes_1_from_half_and_recovers_the_parameters():
    k, d, E = _kramers_data(1.0, 0, trials=20_000)
    fit = kramers_fit(k, d, E)
    assert fit.alpha_low <= 1.0 <= fit.alpha_high
    assert fit.excludes(0.5) and not fit.excludes(1.0)
    assert abs(fit.c - 12.0) < 2.0 and abs(fit.p - 1.0) < 0.5
    assert fit.deviance_p > 0.001


def test_kramers_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="need >= 5"):
        kramers_fit([1, 2, 3], [1, 2, 3], [10, 10, 10])
    with pytest.raises(ValueError, match="must be > 0"):
        kramers_fit([1, 2, 3, 4, -5], [1] * 5, [10] * 5)


def test_censored_ks_equals_the_grid_test_and_rejects_a_gamma():
    rng = np.random.default_rng(3)
    times = np.ceil(rng.exponential(40.0, size=400))
    escaped = times <= 150
    grid = exponential_gof(times, escaped, 150, bootstraps=50)
    jumps = censored_ks(times, escaped, 150, bootstraps=50)
    assert jumps.ks == pytest.approx(grid.ks, abs=1e-12)
    gamma = np.ceil(rng.gamma(4.0, 10.0, size=400))
    assert censored_ks(gamma, gamma <= 150, 150, bootstraps=100).p_value < 0.05
