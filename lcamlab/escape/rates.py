r"""The escape experiments' tables: rates, sharpness slopes, saddle exit times, LCAM's place.

Built on :mod:`lcamlab.experiments.stats` (the censored exponential rate and its
interval, the exponential goodness of fit, the weighted fits, the t-interval of a
mean), from the per-trial frames of :func:`lcamlab.escape.experiment.run_escape`:

* :func:`rate_table`: per (optimizer, k) the censored rate with its interval and the
  KS test of the exponential law (the Adai paper, Appendix E eqs. 119-120, Theorem 3);
* :func:`slope_table`: per optimizer the slopes of :math:`\log\Gamma` against
  :math:`1/k` and :math:`1/\sqrt k` and which fits better (the Adai paper's Figure 6);
* :func:`saddle_table`, :func:`saddle_exponent_table`: saddle exit times and their
  power law in the negative curvature (the Adai paper, Theorems 1-2, Proposition 1);
* :func:`rate_ratios`, :func:`lcam_comparison`: LCAM against the other optimizers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lcamlab.experiments.stats import (
    CI_LEVEL,
    TRANSFORMS,
    censored_exponential_rate,
    exponential_gof,
    fit_line,
    fit_log_rate,
    mean_ci,
)

__all__ = [
    "rate_table",
    "slope_table",
    "saddle_table",
    "saddle_exponent_table",
    "rate_ratios",
    "lcam_comparison",
]


def rate_table(
    frame: pd.DataFrame, budget: int, *, confidence: float = CI_LEVEL, method: str = "chi2",
    bootstraps: int = 300, seed: int = 0,
) -> pd.DataFrame:
    """One row per (optimizer, k): escapes, exposure, rate with interval, mean time, KS test.

    Args:
        frame: per-trial rows (``optimizer, k, escaped, exposure, escape_step, hessian``).
        budget: the experiment's budget (censoring time).
        confidence, method: see :func:`censored_exponential_rate`.
        bootstraps, seed: see :func:`exponential_gof`.
    """
    rows = []
    for (optimizer, k), group in frame.groupby(["optimizer", "k"], sort=False):
        estimate = censored_exponential_rate(group["exposure"], group["escaped"], confidence=confidence, method=method)
        gof = exponential_gof(group["escape_step"], group["escaped"], int(budget), bootstraps=bootstraps, seed=seed)
        rows.append({
            "optimizer": optimizer, "k": float(k), "inverse_k": 1.0 / float(k), "inverse_sqrt_k": 1.0 / math.sqrt(k),
            "hessian": float(group["hessian"].iloc[0]), "trials": estimate.trials, "escapes": estimate.escapes,
            "escaped_fraction": estimate.escapes / estimate.trials, "exposure": estimate.exposure,
            "rate": estimate.rate, "rate_lower": estimate.lower, "rate_upper": estimate.upper,
            "mean_time": estimate.mean_time, "ks": gof.ks, "ks_p": gof.p_value,
        })
    return pd.DataFrame(rows)


def slope_table(rates: pd.DataFrame, *, confidence: float = CI_LEVEL) -> pd.DataFrame:
    r"""Per optimizer: slopes of :math:`\log\Gamma` against :math:`1/k` and :math:`1/\sqrt k`, and the better fit.

    Columns: ``optimizer``, then for each transform ``slope_*``, ``slope_*_lower``,
    ``slope_*_upper``, ``r2_*``, and ``points``, ``better`` (the transform with the
    higher :math:`R^2`) and ``r2_difference`` (``r2_1/k - r2_1/sqrt(k)``).
    """
    rows = []
    for optimizer, group in rates.groupby("optimizer", sort=False):
        row: dict = {"optimizer": optimizer}
        fits = {}
        for transform in TRANSFORMS:
            try:
                fit = fit_log_rate(group["k"], group["rate"], group["escapes"], transform=transform,
                                   confidence=confidence)
            except ValueError:
                fit = None
            fits[transform] = fit
            tag = "inv_k" if transform == "1/k" else "inv_sqrt_k"
            row[f"slope_{tag}"] = fit.slope if fit else float("nan")
            row[f"slope_{tag}_lower"] = fit.slope_lower if fit else float("nan")
            row[f"slope_{tag}_upper"] = fit.slope_upper if fit else float("nan")
            row[f"intercept_{tag}"] = fit.intercept if fit else float("nan")
            row[f"r2_{tag}"] = fit.r2 if fit else float("nan")
            row["points"] = fit.points if fit else 0
        if fits["1/k"] and fits["1/sqrt(k)"]:
            row["r2_difference"] = fits["1/k"].r2 - fits["1/sqrt(k)"].r2
            row["better"] = "1/k" if row["r2_difference"] > 0 else "1/sqrt(k)"
        else:
            row["r2_difference"] = float("nan")
            row["better"] = "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def saddle_table(frame: pd.DataFrame, *, confidence: float = CI_LEVEL) -> pd.DataFrame:
    r"""Per (optimizer, k): mean time to leave the saddle's neighbourhood with a t-interval.

    Saddle exits are not rare events (the Adai paper, Theorems 1-2: the displacement grows
    like :math:`e^{|\lambda| t}`), so the summary is the mean exit iteration and
    :math:`\bar T \pm t_{n-1} s/\sqrt n`; ``censored`` counts trials still inside at
    the budget (their budget enters the mean, which is then a lower bound).
    """
    rows = []
    for (optimizer, k), group in frame.groupby(["optimizer", "k"], sort=False):
        times = group["exposure"].to_numpy(dtype=float)
        mean, lower, upper, n = mean_ci(times, confidence)
        rows.append({
            "optimizer": optimizer, "k": float(k), "negative_curvature": float(abs(group["hessian"].iloc[0])),
            "trials": n, "censored": int((~group["escaped"]).sum()), "mean_time": mean,
            "mean_lower": lower, "mean_upper": upper, "median_time": float(np.median(times)),
        })
    return pd.DataFrame(rows)


def saddle_exponent_table(saddle: pd.DataFrame, *, confidence: float = CI_LEVEL) -> pd.DataFrame:
    r"""Per optimizer: the exponent :math:`p` in :math:`\bar T \propto |\lambda|^{p}` (log-log least squares).

    The Adai paper's Theorem 1 gives :math:`\bar T \propto 1/|\lambda|` up to a logarithm for SGD;
    Proposition 1 makes Adam's escape nearly Hessian-independent (:math:`|p|` smaller).
    """
    rows = []
    for optimizer, group in saddle.groupby("optimizer", sort=False):
        fit = fit_line(np.log(group["negative_curvature"]), np.log(group["mean_time"]), None,
                       confidence=confidence, transform="log|lambda|")
        rows.append({"optimizer": optimizer, "exponent": fit.slope, "exponent_lower": fit.slope_lower,
                     "exponent_upper": fit.slope_upper, "r2": fit.r2, "points": fit.points})
    return pd.DataFrame(rows)


def rate_ratios(rates: pd.DataFrame, key: str, reference: str) -> pd.DataFrame:
    r"""Per sharpness, :math:`\hat\Gamma_\text{key} / \hat\Gamma_\text{reference}` (points where both escaped).

    Also the ratio's rough 95% interval from the two log-rate variances
    (:math:`1/d_1 + 1/d_2`, delta method).
    """
    a = rates[rates["optimizer"] == key].set_index("k")
    b = rates[rates["optimizer"] == reference].set_index("k")
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    keep = (a["escapes"] > 0) & (b["escapes"] > 0)
    a, b = a[keep], b[keep]
    log_ratio = np.log(a["rate"] / b["rate"])
    se = np.sqrt(1.0 / a["escapes"] + 1.0 / b["escapes"])
    return pd.DataFrame({"k": common[keep], "ratio": np.exp(log_ratio).to_numpy(),
                         "ratio_lower": np.exp(log_ratio - 1.96 * se).to_numpy(),
                         "ratio_upper": np.exp(log_ratio + 1.96 * se).to_numpy()})


def lcam_comparison(
    rates: pd.DataFrame,
    slopes: pd.DataFrame,
    saddle: pd.DataFrame | None = None,
    *,
    lcam_keys: tuple[str, ...] = ("lcam-above", "lcam-below"),
    references: tuple[str, ...] = ("momentum-0.925", "momentum", "sgd", "adam", "adai"),
) -> pd.DataFrame:
    r"""Where LCAM lands: its escape rates and sharpness slope against the other optimizers.

    One row per (LCAM orientation, reference optimizer): the geometric mean over
    sharpness of the rate ratio (with the smallest and largest ratio), the
    :math:`1/k` slopes of both with their intervals and whether those intervals
    overlap, and, if a saddle table is given, the geometric-mean ratio of their
    mean saddle exit times. Neither the LCAM paper nor the Adai paper reports these numbers; they are
    measurements of this experiment.
    """
    rows = []
    fits = slopes.set_index("optimizer")
    for key in lcam_keys:
        if key not in fits.index:
            continue
        for reference in references:
            if reference not in fits.index or reference == key:
                continue
            ratios = rate_ratios(rates, key, reference)
            row = {
                "lcam": key, "reference": reference, "points": len(ratios),
                "rate_ratio_geomean": float(np.exp(np.mean(np.log(ratios["ratio"])))) if len(ratios) else np.nan,
                "rate_ratio_min": float(ratios["ratio"].min()) if len(ratios) else np.nan,
                "rate_ratio_max": float(ratios["ratio"].max()) if len(ratios) else np.nan,
                "faster_at_all_k": bool((ratios["ratio_lower"] > 1).all()) if len(ratios) else False,
                "slower_at_all_k": bool((ratios["ratio_upper"] < 1).all()) if len(ratios) else False,
                "slope_lcam": fits.loc[key, "slope_inv_k"],
                "slope_lcam_lower": fits.loc[key, "slope_inv_k_lower"],
                "slope_lcam_upper": fits.loc[key, "slope_inv_k_upper"],
                "slope_reference": fits.loc[reference, "slope_inv_k"],
                "slope_reference_lower": fits.loc[reference, "slope_inv_k_lower"],
                "slope_reference_upper": fits.loc[reference, "slope_inv_k_upper"],
            }
            row["slopes_overlap"] = bool(row["slope_lcam_lower"] <= row["slope_reference_upper"]
                                         and row["slope_reference_lower"] <= row["slope_lcam_upper"])
            if saddle is not None and {key, reference} <= set(saddle["optimizer"]):
                a = saddle[saddle["optimizer"] == key].set_index("k")["mean_time"]
                b = saddle[saddle["optimizer"] == reference].set_index("k")["mean_time"]
                common = a.index.intersection(b.index)
                row["saddle_time_ratio_geomean"] = float(np.exp(np.mean(np.log(a[common] / b[common]))))
            rows.append(row)
    return pd.DataFrame(rows)
