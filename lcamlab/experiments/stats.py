r"""The statistics of the suite: means and medians with intervals, paired differences,
censored-exponential rates, goodness of fit and fits. One home for each.

Intervals are 95% unless asked otherwise (:data:`CI_LEVEL`):

* :func:`mean_ci`: Student-t interval of a mean over trials;
* :func:`median_ci`: distribution-free order-statistic interval of a median
  (right-censored values as ``inf`` are fine);
* :func:`paired_ci`: the mean paired difference of two settings measured on the
  same trials (common random numbers), with its t-interval;
* :func:`censored_exponential_rate`: the rate of right-censored exponential waiting
  times (escapes) with an exact Poisson or profile-likelihood interval;
* :func:`exponential_gof`: are censored integer waiting times exponential? A
  bootstrap-calibrated Kolmogorov-Smirnov test;
* :func:`fit_line` and :func:`fit_log_rate`: weighted least-squares lines with a
  t-interval of the slope (:math:`\log\Gamma` against :math:`1/k` or :math:`1/\sqrt k`);
* :func:`chi2_quantile`, :func:`t_quantile`: the distribution quantiles they use.

**Censored rates.** In the Kramers picture (004 Theorem 3, Propositions 2 and 4)
leaving a valley is a rare, memoryless event: the waiting time :math:`T` is
exponential with rate :math:`\Gamma`, and 004 Appendix E (eqs. 119-120) estimates
:math:`\Gamma` as the inverse mean escape time. Trials still waiting at the budget
:math:`B` are *censored*; dropping them would bias :math:`\Gamma` upwards, so the
estimate is the censored maximum likelihood

.. math::

    \ell(\Gamma) = d \log\Gamma - \Gamma E, \qquad
    \hat\Gamma = \frac{d}{E}, \qquad
    d = \#\text{events}, \quad E = \sum_i \min(T_i, B) \ \text{(total exposure)},

which is 004's :math:`1/\bar T` when nothing is censored. Two intervals (decision):
``"chi2"`` (default), the exact Poisson (Garwood) interval
:math:`[\chi^2_{2d,\,\alpha/2} / 2E,\ \chi^2_{2d+2,\,1-\alpha/2} / 2E]` (without
censoring :math:`2\Gamma E \sim \chi^2_{2d}` exactly; with a fixed budget slightly
conservative, coverage inside [0.92, 0.98] in the tests; defined at :math:`d = 0`),
and ``"profile"``, the likelihood-ratio interval
:math:`\{\Gamma: 2[\ell(\hat\Gamma) - \ell(\Gamma)] \le \chi^2_{1,\,1-\alpha}\}`.

**Goodness of fit.** :func:`exponential_gof` compares the empirical CDF of the
waiting times on :math:`[1, B]` with the fitted :math:`1 - e^{-\hat\Gamma t}` and
calibrates the distance by a parametric bootstrap of the same design (integer
times :math:`\lceil\tau\rceil`, censoring at :math:`B`, rate re-estimated), so the
p-value accounts for the estimated rate, the censoring and the integer times (a
Lilliefors-type test).

**Fits.** 004 (Theorem 3, Propositions 2 and 4, Figure 6) predicts
:math:`\log\Gamma = a - c/k` for SGD, momentum and Adai and :math:`a - c/\sqrt k` for
Adam. :func:`fit_log_rate` fits both by weighted least squares with weights
:math:`d` (the delta-method variance of :math:`\log\hat\Gamma` is :math:`1/d`); with two
parameters each, the larger weighted :math:`R^2` is the better description.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.special import chdtri, stdtrit  # lighter to import than scipy.stats (notebook start-up)
from torch import Tensor

__all__ = [
    "CI_LEVEL",
    "mean_ci",
    "median_ci",
    "paired_ci",
    "chi2_quantile",
    "t_quantile",
    "EscapeRate",
    "censored_exponential_rate",
    "GoodnessOfFit",
    "exponential_gof",
    "LinearFit",
    "fit_line",
    "TRANSFORMS",
    "fit_log_rate",
    "KramersFit",
    "kramers_fit",
    "censored_ks",
]

CI_LEVEL = 0.95


def _float64(values: Tensor | Sequence[float]) -> Tensor:
    """``values`` as a flat float64 tensor (a copy of numpy input: pandas hands out read-only arrays)."""
    if isinstance(values, Tensor):
        return values.detach().to(torch.float64).flatten()
    return torch.from_numpy(np.array(values, dtype=np.float64).reshape(-1))


def mean_ci(values: Tensor | Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float, int]:
    r"""Mean of the finite values with a Student-t confidence interval.

    .. math:: \bar v \pm t_{(1+\text{level})/2,\,n-1}\, s/\sqrt n

    Returns:
        ``(mean, low, high, n)``; NaN bounds when fewer than two finite values.
    """
    v = _float64(values)
    v = v[torch.isfinite(v)]
    n = int(v.numel())
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(0.5 + level / 2, n - 1) * float(v.std(unbiased=True)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def paired_ci(values: Tensor | Sequence[float], reference: Tensor | Sequence[float],
              level: float = CI_LEVEL) -> tuple[float, float, float, int]:
    r"""Mean paired difference ``values - reference`` over trials with its t-interval.

    Both are measured on the same trials (the same mini-batches), so the trial-to-trial
    variation common to both cancels. Pairs with a non-finite member are left out
    (``inf - inf`` is NaN, ``inf - x`` infinite).

    Returns:
        ``(mean, low, high, n)`` as :func:`mean_ci`.
    """
    a = _float64(values)
    b = _float64(reference)
    if a.shape != b.shape:
        raise ValueError(f"Invalid paired data: {a.numel()} values against {b.numel()} reference values")
    return mean_ci(a - b, level)


def median_ci(values: Tensor | Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float, int]:
    r"""Median with a distribution-free confidence interval from order statistics.

    Values may be ``inf`` (e.g. a target never reached: right-censored); the
    median and its bounds are then still correct as long as they are finite
    order statistics, and ``inf`` otherwise. The interval is
    :math:`[v_{(j)}, v_{(k)}]` with :math:`j, k` the binomial(n, 1/2) quantiles.

    Returns:
        ``(median, low, high, n)``.
    """
    from scipy import stats

    v = _float64(values)
    v = v[~torch.isnan(v)]
    n = int(v.numel())
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    ordered = torch.sort(v).values
    if n % 2:
        median = float(ordered[n // 2])
    else:
        median = float((ordered[n // 2 - 1] + ordered[n // 2]) / 2)
    # 1-based ranks [j, n + 1 - j] with j = binomial(n, 1/2) quantile at alpha/2 (e.g. n = 100:
    # ranks 40 and 61, the textbook interval).
    j = max(int(stats.binom.ppf((1 - level) / 2, n, 0.5)), 1)
    return median, float(ordered[j - 1]), float(ordered[n - j]), n


# --------------------------------------------------------------------------------------
# Quantiles
# --------------------------------------------------------------------------------------


def chi2_quantile(q: float, dof: float) -> float:
    r"""Quantile ``q`` of the chi-square distribution with ``dof`` degrees of freedom, :math:`\chi^2_{\text{dof},q}`."""
    return float(chdtri(dof, 1.0 - q))


def t_quantile(q: float, dof: float) -> float:
    r"""Quantile ``q`` of Student's t distribution with ``dof`` degrees of freedom (:math:`t_{q,\,\text{dof}}`)."""
    return float(stdtrit(dof, q))


# --------------------------------------------------------------------------------------
# Censored exponential rates and their goodness of fit
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EscapeRate:
    """A censored exponential rate estimate with its interval (events per unit of exposure)."""

    rate: float
    lower: float
    upper: float
    escapes: int
    exposure: float
    trials: int
    method: str
    confidence: float

    @property
    def mean_time(self) -> float:
        """:math:`1/\\hat\\Gamma` (inf without events)."""
        return math.inf if self.rate == 0 else 1.0 / self.rate

    def as_dict(self) -> dict:
        return asdict(self)


def _check_times(times, escaped) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=float).reshape(-1)
    e = np.asarray(escaped, dtype=bool).reshape(-1)
    if t.shape != e.shape:
        raise ValueError(f"Invalid escape data: {t.shape[0]} times but {e.shape[0]} escape flags")
    if t.size == 0:
        raise ValueError("Invalid escape data: no trials")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("Invalid escape times: every time (or censoring budget) must be finite and > 0")
    return t, e


def censored_exponential_rate(
    times, escaped, *, confidence: float = CI_LEVEL, method: str = "chi2"
) -> EscapeRate:
    r"""Maximum-likelihood rate of right-censored exponential waiting times with an interval.

    .. math:: \hat\Gamma = \frac{d}{\sum_i t_i}, \qquad
              \text{chi2: } \Big[\frac{\chi^2_{2d,\alpha/2}}{2E}, \frac{\chi^2_{2d+2,1-\alpha/2}}{2E}\Big]

    Args:
        times: per trial the waiting time, or the censoring time (the budget)
            where the event did not happen (the *exposure*).
        escaped: per trial whether the event happened.
        confidence: interval level in (0, 1).
        method: ``"chi2"`` (exact Poisson / Garwood) or ``"profile"`` (likelihood ratio).

    Returns:
        :class:`EscapeRate`. Reference: 004 Appendix E eqs. 119-120 (uncensored form).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"Invalid confidence: {confidence!r} (must be in (0, 1), e.g. 0.95)")
    if method not in ("chi2", "profile"):
        raise ValueError(f"Invalid interval method: {method!r} (choose 'chi2' or 'profile')")
    t, e = _check_times(times, escaped)
    d = int(e.sum())
    exposure = float(t.sum())
    rate = d / exposure
    alpha = 1.0 - confidence
    if method == "chi2":
        lower = 0.0 if d == 0 else chi2_quantile(alpha / 2, 2 * d) / (2 * exposure)
        upper = chi2_quantile(1 - alpha / 2, 2 * d + 2) / (2 * exposure)
    else:
        from scipy import optimize

        critical = chi2_quantile(confidence, 1)
        if d == 0:
            lower, upper = 0.0, critical / (2 * exposure)
        else:
            # 2 d (x - 1 - log x) = critical with x = Gamma / Gamma_hat, one root on each side of 1
            def excess(x: float) -> float:
                return 2 * d * (x - 1 - math.log(x)) - critical

            lower = rate * optimize.brentq(excess, 1e-300, 1.0)
            hi = 2.0
            while excess(hi) < 0:
                hi *= 2
            upper = rate * optimize.brentq(excess, 1.0, hi)
    return EscapeRate(rate, float(lower), float(upper), d, exposure, int(t.size), method, confidence)


@dataclass(frozen=True)
class GoodnessOfFit:
    """Kolmogorov-Smirnov distance to the fitted exponential and its bootstrap p-value."""

    ks: float
    p_value: float
    bootstraps: int


def _ks_distance(times: np.ndarray, escaped: np.ndarray, budget: int, rate: np.ndarray) -> np.ndarray:
    """KS distance on [1, budget] between integer-time ECDFs and 1 - exp(-rate t); rows are data sets."""
    n = times.shape[-1]
    grid = np.arange(1, budget + 1)
    t = np.where(escaped, times, budget + 1).astype(np.int64)
    counts = np.zeros(t.shape[:-1] + (budget + 2,), dtype=np.int64)
    rows = np.arange(t.shape[0])[:, None] if t.ndim == 2 else None
    if rows is None:
        np.add.at(counts, t, 1)
    else:
        np.add.at(counts, (np.broadcast_to(rows, t.shape), t), 1)
    ecdf = np.cumsum(counts[..., 1:budget + 1], axis=-1) / n
    model = 1.0 - np.exp(-np.multiply.outer(np.atleast_1d(rate), grid))
    if t.ndim == 1:
        model = model[0]
    return np.max(np.abs(ecdf - model), axis=-1)


def exponential_gof(
    times, escaped, budget: int, *, bootstraps: int = 300, seed: int = 0
) -> GoodnessOfFit:
    r"""Are the waiting times exponential (the Kramers picture)? A censored, bootstrap-calibrated KS test.

    .. math:: D = \max_{1 \le t \le B} \Big| \hat F_n(t) - (1 - e^{-\hat\Gamma t}) \Big|,
              \qquad p = \frac{1 + \#\{D^* \ge D\}}{1 + N_\text{boot}}

    with :math:`D^*` computed the same way on data simulated from the fit
    (:math:`\lceil\tau\rceil`, :math:`\tau \sim \text{Exp}(\hat\Gamma)`, censored at
    :math:`B`, rate re-estimated). Times must be integer iterations >= 1
    (reference: the exponential law of 004 Theorem 3).

    Args:
        times: waiting iteration per trial (anything > ``budget`` or a non-escaped
            flag counts as censored).
        escaped: per-trial event flags.
        budget: the censoring budget :math:`B` (integer >= 1).
        bootstraps: number of parametric bootstrap samples.
        seed: seed of the bootstrap (numpy ``default_rng``).

    Returns:
        :class:`GoodnessOfFit`; ``p_value`` is NaN when fewer than 2 events.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"Invalid budget: {budget!r} (must be an integer >= 1)")
    if isinstance(bootstraps, bool) or not isinstance(bootstraps, (int, np.integer)) or bootstraps < 1:
        raise ValueError(f"Invalid number of bootstraps: {bootstraps!r} (must be an integer >= 1)")
    t = np.asarray(times, dtype=float).reshape(-1)
    e = np.asarray(escaped, dtype=bool).reshape(-1) & (t <= budget)
    t = np.where(e, t, budget)
    if np.any(t < 1) or np.any(t != np.round(t)):
        raise ValueError("Invalid escape times: expected integer iterations >= 1")
    n = t.size
    rate = e.sum() / t.sum()
    if e.sum() < 2:
        return GoodnessOfFit(float("nan"), float("nan"), 0)
    observed = float(_ks_distance(t, e, int(budget), np.array([rate]))[()])
    rng = np.random.default_rng(seed)
    tau = np.ceil(rng.exponential(1.0 / rate, size=(bootstraps, n)))
    tau = np.maximum(tau, 1.0)
    e_star = tau <= budget
    t_star = np.minimum(tau, budget)
    rate_star = e_star.sum(1) / t_star.sum(1)
    simulated = _ks_distance(t_star, e_star, int(budget), rate_star)
    p_value = (1 + np.sum(simulated >= observed - 1e-12)) / (1 + bootstraps)
    return GoodnessOfFit(observed, float(p_value), int(bootstraps))


# --------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearFit:
    r"""A weighted least-squares line :math:`y = a + b x` with a t-interval for the slope."""

    transform: str
    slope: float
    slope_lower: float
    slope_upper: float
    intercept: float
    r2: float
    points: int
    confidence: float

    def as_dict(self) -> dict:
        return asdict(self)


def fit_line(x, y, weights=None, *, confidence: float = CI_LEVEL, transform: str = "x") -> LinearFit:
    r"""Weighted least squares :math:`\min \sum_i w_i (y_i - a - b x_i)^2`, slope interval from :math:`t_{n-2}`.

    .. math::

        \hat s^2 = \frac{\sum_i w_i r_i^2}{n-2}, \qquad
        \operatorname{se}(b) = \sqrt{\hat s^2 / \sum_i w_i (x_i - \bar x_w)^2}, \qquad
        R^2 = 1 - \frac{\sum_i w_i r_i^2}{\sum_i w_i (y_i - \bar y_w)^2}

    The residual scale is estimated (not assumed from the weights), so the
    interval also covers misfit of the straight line.

    Args:
        x, y: the points (non-finite ones and those with weight 0 are left out).
        weights: :math:`w_i` (default equal).
        confidence: level of the slope interval.
        transform: a name for ``x``, stored in the result.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    if not (x.shape == y.shape == w.shape):
        raise ValueError(f"Invalid fit data: x, y and weights have shapes {x.shape}, {y.shape}, {w.shape}")
    keep = np.isfinite(x) & np.isfinite(y) & (w > 0)
    x, y, w = x[keep], y[keep], w[keep]
    n = x.size
    if n < 3 or np.ptp(x) == 0:
        raise ValueError(
            f"Invalid fit: {n} usable points with distinct x needed >= 3 (points with no escapes "
            f"have no log rate; raise the budget or the trials)"
        )
    xm = np.sum(w * x) / np.sum(w)
    ym = np.sum(w * y) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - ym)) / sxx
    intercept = ym - slope * xm
    residual = y - intercept - slope * x
    rss = np.sum(w * residual**2)
    tss = np.sum(w * (y - ym) ** 2)
    dof = n - 2
    se = math.sqrt(rss / dof / sxx) if dof > 0 else math.inf
    half = t_quantile(0.5 + confidence / 2, dof) * se
    r2 = 1.0 - rss / tss if tss > 0 else float("nan")
    return LinearFit(transform, float(slope), float(slope - half), float(slope + half), float(intercept),
                     float(r2), int(n), confidence)


#: The abscissas of :func:`fit_log_rate`: name -> x(k).
TRANSFORMS = {"1/k": lambda k: 1.0 / np.asarray(k, dtype=float),
              "1/sqrt(k)": lambda k: 1.0 / np.sqrt(np.asarray(k, dtype=float))}


def fit_log_rate(k, rate, escapes=None, *, transform: str = "1/k", confidence: float = CI_LEVEL) -> LinearFit:
    r"""Fit :math:`\log\Gamma = a + b\,x(k)` with :math:`x = 1/k` or :math:`1/\sqrt k` (004 Figure 6).

    Args:
        k: sharpness values.
        rate: rates (points with rate 0 are left out: no log).
        escapes: events per point, the weights (default: equal weights).
        transform: ``"1/k"`` or ``"1/sqrt(k)"`` (:data:`TRANSFORMS`).
        confidence: level of the slope interval.

    Returns:
        :class:`LinearFit` (its slope is :math:`b`, negative when sharper valleys are left faster).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"Invalid transform: {transform!r} (choose one of {list(TRANSFORMS)})")
    k = np.asarray(k, dtype=float)
    if np.any(~(k > 0)):
        raise ValueError(f"Invalid sharpness k: {k[~(k > 0)][0]} (must be > 0)")
    rate = np.asarray(rate, dtype=float)
    with np.errstate(divide="ignore"):
        y = np.where(rate > 0, np.log(np.where(rate > 0, rate, 1.0)), np.nan)
    return fit_line(TRANSFORMS[transform](k), y, escapes, confidence=confidence, transform=transform)


# --------------------------------------------------------------------------------------
# Kramers' law on censored escape times (escape v2), and a censored KS test that scales
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KramersFit:
    r"""Maximum-likelihood fit of :math:`\log\Gamma = a + p\log k - c\,k^{-\alpha}` with a profile interval of :math:`\alpha`.

    ``alpha_low`` / ``alpha_high`` are the 95% profile-likelihood bounds; ``open_low`` /
    ``open_high`` say the profile did not fall below the cutoff inside the searched
    range ``[alpha_min, alpha_max]`` on that side (the bound is then the range's end).
    ``deviance`` and ``deviance_p``: Poisson deviance of the fit against the saturated
    model (``points - 4`` degrees of freedom), the fit's goodness.
    """

    a: float
    p: float
    c: float
    alpha: float
    alpha_low: float
    alpha_high: float
    open_low: bool
    open_high: bool
    loglik: float
    deviance: float
    deviance_p: float
    points: int
    escapes: int
    confidence: float

    @property
    def alpha_se(self) -> float:
        """Half the interval's width over the normal quantile (the achieved standard error)."""
        return (self.alpha_high - self.alpha_low) / (2 * 1.959963984540054)

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (an open side counts as not excluding)."""
        return bool((value < self.alpha_low and not self.open_low) or (value > self.alpha_high and not self.open_high))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["alpha_se"] = self.alpha_se
        return out


def _poisson_glm(X: np.ndarray, d: np.ndarray, E: np.ndarray, beta: np.ndarray | None = None,
                 iterations: int = 100) -> tuple[np.ndarray, float]:
    r"""Maximise :math:`\sum_k d_k \eta_k - E_k e^{\eta_k}`, :math:`\eta = X\beta` (Newton with step halving)."""
    def loglik(b: np.ndarray) -> float:
        eta = X @ b
        return float(np.sum(d * eta - E * np.exp(np.minimum(eta, 700))))

    if beta is None:
        y = np.log((d + 0.5) / E)
        w = d + 0.5
        beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    current = loglik(beta)
    for _ in range(iterations):
        mu = E * np.exp(np.minimum(X @ beta, 700))
        grad = X.T @ (d - mu)
        hess = (X * mu[:, None]).T @ X
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(len(beta)), grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        scale = 1.0
        while scale > 1e-8:
            trial = beta + scale * step
            value = loglik(trial)
            if value >= current - 1e-12:
                break
            scale /= 2
        improvement = value - current
        beta, current = trial, value
        if abs(improvement) < 1e-10:
            break
    return beta, current


def kramers_fit(k, escapes, exposure, *, confidence: float = CI_LEVEL, alpha_min: float = 0.05,
                alpha_max: float = 4.0, grid: int = 160) -> KramersFit:
    r"""Fit Kramers' law :math:`\log\Gamma(k) = a + p\log k - c\,k^{-\alpha}` to censored escape counts.

    The escape times at each sharpness are exponential with rate :math:`\Gamma_k`, so
    their censored likelihood is :math:`\prod_k \Gamma_k^{d_k} e^{-\Gamma_k E_k}` (``escapes``
    :math:`d_k`, total ``exposure`` :math:`E_k`): a Poisson model with log link. For
    fixed :math:`\alpha` it is linear in :math:`(a, p, c)` (Newton); :math:`\alpha` is
    profiled over a log grid of ``grid`` values in ``[alpha_min, alpha_max]`` and
    refined, and its interval is :math:`\{\alpha: 2[\ell_\max - \ell_p(\alpha)] \le \chi^2_{1}\}`.

    Reference: the diffusion theory of 004 (Theorem 3, Propositions 2 and 4) gives
    :math:`\alpha = 1` (SGD, momentum, Adai) and :math:`1/2` (Adam).
    """
    from scipy import optimize

    k = np.asarray(k, dtype=float).reshape(-1)
    d = np.asarray(escapes, dtype=float).reshape(-1)
    E = np.asarray(exposure, dtype=float).reshape(-1)
    if not (k.shape == d.shape == E.shape) or k.size < 5:
        raise ValueError(f"Invalid Kramers fit data: {k.size} points (need >= 5 with k, escapes and exposure)")
    if np.any(k <= 0) or np.any(E <= 0):
        raise ValueError("Invalid Kramers fit data: every k and exposure must be > 0")
    logk = np.log(k)
    cache: dict[float, tuple[np.ndarray, float]] = {}

    def profile(alpha: float, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        X = np.stack([np.ones_like(k), logk, -k ** -alpha], 1)
        beta, value = _poisson_glm(X, d, E, start)
        cache[alpha] = (beta, value)
        return beta, value

    alphas = np.geomspace(alpha_min, alpha_max, grid)
    values = np.empty(grid)
    start = None
    for i, alpha in enumerate(alphas):
        start, values[i] = profile(float(alpha), start)
    best = int(np.argmax(values))
    lo_i, hi_i = max(best - 1, 0), min(best + 1, grid - 1)
    if hi_i > lo_i:
        res = optimize.minimize_scalar(lambda a_: -profile(float(a_), cache[float(alphas[best])][0])[1],
                                       bounds=(alphas[lo_i], alphas[hi_i]), method="bounded",
                                       options={"xatol": 1e-6})
        alpha_hat = float(res.x)
    else:
        alpha_hat = float(alphas[best])
    beta_hat, lmax = profile(alpha_hat, cache[float(alphas[best])][0])
    if values[best] > lmax:
        alpha_hat, lmax, beta_hat = float(alphas[best]), float(values[best]), cache[float(alphas[best])][0]
    cutoff = chi2_quantile(confidence, 1) / 2

    def excess(alpha: float) -> float:
        near = min(cache, key=lambda a_: abs(math.log(a_ / alpha)))
        return lmax - profile(alpha, cache[near][0])[1] - cutoff

    below = alphas < alpha_hat
    left = np.flatnonzero(below & (lmax - values > cutoff))
    if left.size:
        j = left.max()
        low = optimize.brentq(excess, alphas[j], alpha_hat, xtol=1e-6)
        open_low = False
    else:
        low, open_low = alpha_min, True
    right = np.flatnonzero(~below & (lmax - values > cutoff))
    if right.size:
        j = right.min()
        high = optimize.brentq(excess, alpha_hat, alphas[j], xtol=1e-6)
        open_high = False
    else:
        high, open_high = alpha_max, True
    eta = np.stack([np.ones_like(k), logk, -k ** -alpha_hat], 1) @ beta_hat
    mu = E * np.exp(eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d * np.log(d / mu), 0.0) - (d - mu)
    deviance = float(2 * np.sum(terms))
    dof = k.size - 4
    from scipy.special import chdtrc

    deviance_p = float(chdtrc(dof, deviance)) if dof > 0 else float("nan")
    return KramersFit(float(beta_hat[0]), float(beta_hat[1]), float(beta_hat[2]), alpha_hat, float(low),
                      float(high), open_low, open_high, float(lmax), deviance, deviance_p, int(k.size),
                      int(d.sum()), confidence)


def censored_ks(times, escaped, budget: int, *, bootstraps: int = 200, seed: int = 0) -> GoodnessOfFit:
    r"""The censored exponential KS test of :func:`exponential_gof`, for budgets of any size.

    The same statistic (:math:`\max_{1 \le t \le B} |\hat F_n(t) - 1 + e^{-\hat\Gamma t}|` over
    integer :math:`t`) and the same parametric bootstrap, evaluated only where the
    empirical CDF jumps (the maximum of the distance between jumps lies at an end),
    so the work grows with the number of trials, not with the budget.
    """
    t = np.asarray(times, dtype=float).reshape(-1)
    e = np.asarray(escaped, dtype=bool).reshape(-1) & (t <= budget)
    t = np.where(e, t, budget)
    n = t.size
    if e.sum() < 2:
        return GoodnessOfFit(float("nan"), float("nan"), 0)

    def distance(tt: np.ndarray, ee: np.ndarray) -> float:
        rate = ee.sum() / tt.sum()
        jumps = np.sort(tt[ee])
        if jumps.size == 0:
            return float(1.0 - math.exp(-rate * budget))
        values, counts = np.unique(jumps, return_counts=True)
        after = np.cumsum(counts) / n
        before = np.concatenate([[0.0], after[:-1]])
        model_at = 1.0 - np.exp(-rate * values)
        model_before = 1.0 - np.exp(-rate * (values - 1))
        ends = [np.abs(after - model_at).max(), np.abs(before - model_before).max(),
                abs(after[-1] - (1.0 - math.exp(-rate * budget))), abs(0.0 - (1.0 - math.exp(-rate)))
                if values[0] > 1 else 0.0]
        return float(max(ends))

    observed = distance(t, e)
    rate = e.sum() / t.sum()
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(bootstraps):
        tau = np.maximum(np.ceil(rng.exponential(1.0 / rate, size=n)), 1.0)
        es = tau <= budget
        if es.sum() < 1:
            continue
        if distance(np.minimum(tau, budget), es) >= observed - 1e-12:
            exceed += 1
    return GoodnessOfFit(observed, float((1 + exceed) / (1 + bootstraps)), int(bootstraps))
