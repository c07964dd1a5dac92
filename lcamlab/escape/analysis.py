r"""The valley experiment's tables: per point, Kramers' law per optimizer and arm, jumps, LCAM against its controls.

From the per-trial frame of :func:`lcamlab.escape.design.load_units`:

* :func:`point_table`: per (optimizer, arm, k) the censored rate with its 95%
  interval, the censored KS test of the exponential law
  (:func:`lcamlab.experiments.stats.censored_ks`), the jump diagnostics and LCAM's
  realised momentum;
* :func:`alpha_table`: per (optimizer, arm) the maximum-likelihood Kramers fit
  :math:`\log\Gamma = a + p\log k - c\,k^{-\alpha}` with the profile interval of
  :math:`\alpha` (:func:`lcamlab.experiments.stats.kramers_fit`), whether it excludes
  1 and 1/2, and the exponent's span :math:`c\,k^{-\hat\alpha}` over the grid;
* :func:`two_line_table`: the old comparison, weighted least-squares lines of
  :math:`\log\hat\Gamma` against :math:`1/k` and :math:`1/\sqrt k` (secondary view);
* :func:`jump_table`: per (optimizer, arm) the fraction of escapes preceded by a kick
  above the threshold within the window, against its chance rate;
* :func:`control_table`: LCAM against its phase-shuffled and mean-matched controls
  (rate ratios pooled over k, and their :math:`\alpha`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lcamlab.experiments.registry import split_key
from lcamlab.experiments.stats import censored_exponential_rate, censored_ks, fit_log_rate, kramers_fit

__all__ = ["point_table", "alpha_table", "two_line_table", "jump_table", "control_table", "EXPECTED_ALPHA"]

#: The diffusion theory's alpha (the Adai paper: temperature proportional to eta k, Adam's to eta sqrt(k)).
EXPECTED_ALPHA = {"adam": 0.5}


def expected_alpha(optimizer: str) -> float:
    return EXPECTED_ALPHA.get(split_key(optimizer)[0], 1.0)


def point_table(frame: pd.DataFrame, *, window: int = 20, threshold: float = 6.0, bootstraps: int = 200,
                seed: int = 0) -> pd.DataFrame:
    """One row per (optimizer, arm, k): rate, KS test, jump diagnostics, realised momentum, work."""
    rows = []
    for (optimizer, arm, k_index), group in frame.groupby(["optimizer", "arm", "k_index"], sort=False):
        budget = int(group["budget"].iloc[0])
        lost = group["diverged"].to_numpy(bool) if "diverged" in group else np.zeros(len(group), bool)
        group = group[~lost]  # a diverged trial (overflowed position) is neither an escape nor censored
        exposure = np.minimum(group["escape_step"].to_numpy(), budget)
        escaped = group["escaped"].to_numpy(bool)
        rate = censored_exponential_rate(exposure, escaped)
        gof = censored_ks(group["escape_step"].to_numpy(), escaped, budget, bootstraps=bootstraps, seed=seed)
        kicks = group["kick_at_escape"].to_numpy(float)[escaped]
        q = float(group["kick_count"].sum() / exposure.sum())  # chance of a kick above the threshold per step
        rows.append({
            "optimizer": optimizer, "arm": arm, "k_index": int(k_index), "k": float(group["k"].iloc[0]),
            "trials": len(group), "diverged": int(lost.sum()), "budget": budget, "escapes": rate.escapes, "exposure": rate.exposure,
            "rate": rate.rate, "rate_lower": rate.lower, "rate_upper": rate.upper, "mean_time": rate.mean_time,
            "ks": gof.ks, "ks_p": gof.p_value,
            "kick_fraction": float(np.mean(kicks > threshold)) if kicks.size else float("nan"),
            "kick_chance": 1.0 - (1.0 - q) ** window, "kick_per_step": q,
            "kick_median": float(np.median(kicks)) if kicks.size else float("nan"),
            "momentum_mean": float(np.nanmean(group["momentum_mean"])) if group["momentum_mean"].notna().any()
            else float("nan"),
            "below_fraction": float(np.nanmean(group["below_fraction"])) if group["below_fraction"].notna().any()
            else float("nan"),
            "trial_steps": int(group["trial_steps"].iloc[0]), "seconds": float(group["seconds"].iloc[0]),
        })
    return pd.DataFrame(rows)


_ALPHA_COLUMNS = ["optimizer", "arm", "alpha", "alpha_low", "alpha_high", "alpha_se", "open_low", "open_high",
                  "expected", "excludes_1", "excludes_half", "excludes_two_thirds", "p", "c", "a", "exponent_high",
                  "exponent_low", "k_min", "k_max", "k_ratio", "deviance", "deviance_p", "points", "escapes",
                  "trials_per_k", "ks_rejected"]


def alpha_table(points: pd.DataFrame, *, min_mean_time: float = 0.0) -> pd.DataFrame:
    """Per (optimizer, arm): the Kramers fit, its alpha interval, and what it excludes.

    ``min_mean_time``: fit only the points whose mean escape time is at least this (the
    rare-event regime; a sensitivity check, since Kramers' law is an asymptotic law).
    """
    rows = []
    for (optimizer, arm), group in points.groupby(["optimizer", "arm"], sort=False):
        group = group[group["mean_time"] >= min_mean_time].sort_values("k")
        if len(group) < 5:  # an unfinished run: too few points to fit
            continue
        fit = kramers_fit(group["k"], group["escapes"], group["exposure"])
        ks = group["k"].to_numpy()
        span = fit.c * ks ** -fit.alpha
        rows.append({
            "optimizer": optimizer, "arm": arm, "alpha": fit.alpha, "alpha_low": fit.alpha_low,
            "alpha_high": fit.alpha_high, "alpha_se": fit.alpha_se, "open_low": fit.open_low,
            "open_high": fit.open_high, "expected": expected_alpha(optimizer),
            "excludes_1": fit.excludes(1.0), "excludes_half": fit.excludes(0.5),
            "excludes_two_thirds": fit.excludes(2.0 / 3.0), "p": fit.p, "c": fit.c, "a": fit.a,
            "exponent_high": float(span.max()), "exponent_low": float(span.min()),
            "k_min": float(ks.min()), "k_max": float(ks.max()), "k_ratio": float(ks.max() / ks.min()),
            "deviance": fit.deviance, "deviance_p": fit.deviance_p, "points": fit.points,
            "escapes": fit.escapes, "trials_per_k": int(group["trials"].iloc[0]),
            "ks_rejected": int((group["ks_p"] < 0.05).sum()),
        })
    return pd.DataFrame(rows, columns=_ALPHA_COLUMNS)


def two_line_table(points: pd.DataFrame) -> pd.DataFrame:
    """The old view: weighted least-squares lines of log rate against 1/k and 1/sqrt(k), R^2 of each."""
    rows = []
    for (optimizer, arm), group in points.groupby(["optimizer", "arm"], sort=False):
        if len(group) < 3:
            continue
        row = {"optimizer": optimizer, "arm": arm}
        for transform, tag in (("1/k", "inv_k"), ("1/sqrt(k)", "inv_sqrt_k")):
            fit = fit_log_rate(group["k"], group["rate"], group["escapes"], transform=transform)
            row[f"slope_{tag}"], row[f"r2_{tag}"] = fit.slope, fit.r2
        row["better"] = "1/k" if row["r2_inv_k"] > row["r2_inv_sqrt_k"] else "1/sqrt(k)"
        row["r2_difference"] = row["r2_inv_k"] - row["r2_inv_sqrt_k"]
        rows.append(row)
    return pd.DataFrame(rows)


def jump_table(points: pd.DataFrame) -> pd.DataFrame:
    """Per (optimizer, arm): escapes preceded by a kick above the threshold, against chance, pooled over k."""
    rows = []
    for (optimizer, arm), group in points.groupby(["optimizer", "arm"], sort=False):
        escapes = group["escapes"].to_numpy(float)
        with_kick = float(np.nansum(group["kick_fraction"] * escapes))
        chance = float(np.sum(group["kick_chance"] * escapes))
        fraction = with_kick / escapes.sum()
        se = math.sqrt(max(fraction * (1 - fraction), 1e-12) / escapes.sum())
        rows.append({
            "optimizer": optimizer, "arm": arm, "escapes": int(escapes.sum()),
            "kick_fraction": fraction, "kick_fraction_lower": max(0.0, fraction - 1.96 * se),
            "kick_fraction_upper": min(1.0, fraction + 1.96 * se), "kick_chance": chance / escapes.sum(),
            "kick_fraction_sharpest": float(group.sort_values("k")["kick_fraction"].iloc[-1]),
            "kick_fraction_flattest": float(group.sort_values("k")["kick_fraction"].iloc[0]),
            "kick_median": float(np.average(group["kick_median"].fillna(0), weights=escapes)),
            "kick_per_step": float(np.average(group["kick_per_step"], weights=group["exposure"])),
            "ks_rejected": int((group["ks_p"] < 0.05).sum()), "points": len(group),
        })
    return pd.DataFrame(rows)


def control_table(points: pd.DataFrame, alphas: pd.DataFrame | None = None) -> pd.DataFrame:
    r"""LCAM against each of its controls: the rate ratio per k pooled as a geometric mean with a 95% interval.

    The log ratio at each k has variance :math:`1/d_1 + 1/d_2` (delta method, independent
    Poisson counts; the common random numbers only make it conservative); the pooled
    log ratio is the mean over k, variance the mean variance over K.
    """
    rows = []
    data = points[points["arm"] == "data"]
    fits = alphas.set_index(["optimizer", "arm"]) if alphas is not None else None
    for lcam in ("lcam-above", "lcam-below"):
        base = data[data["optimizer"] == lcam].set_index("k_index")
        if base.empty:
            continue
        for control in ("shuffled", "matched"):
            other = data[data["optimizer"] == f"{lcam}:{control}"].set_index("k_index")
            common = base.index.intersection(other.index)
            if len(common) == 0:
                continue
            a, b = base.loc[common], other.loc[common]
            keep = (a["escapes"] > 0) & (b["escapes"] > 0)
            a, b = a[keep], b[keep]
            log_ratio = np.log(a["rate"] / b["rate"])
            var = 1.0 / a["escapes"] + 1.0 / b["escapes"]
            mean = float(log_ratio.mean())
            se = float(math.sqrt(var.sum()) / len(log_ratio))
            row = {
                "lcam": lcam, "control": control, "points": int(len(log_ratio)),
                "rate_ratio": math.exp(mean), "ratio_lower": math.exp(mean - 1.96 * se),
                "ratio_upper": math.exp(mean + 1.96 * se),
                "ratio_min": float(np.exp(log_ratio.min())), "ratio_max": float(np.exp(log_ratio.max())),
                "below_fraction": float(a["below_fraction"].mean()),
                "momentum_mean": float(a["momentum_mean"].mean()),
                "control_below_fraction": float(b["below_fraction"].mean()),
                "control_momentum_mean": float(b["momentum_mean"].mean()),
            }
            if fits is not None and (lcam, "data") in fits.index and (f"{lcam}:{control}", "data") in fits.index:
                row["alpha_lcam"] = float(fits.loc[(lcam, "data"), "alpha"])
                row["alpha_control"] = float(fits.loc[(f"{lcam}:{control}", "data"), "alpha"])
                row["alpha_control_low"] = float(fits.loc[(f"{lcam}:{control}", "data"), "alpha_low"])
                row["alpha_control_high"] = float(fits.loc[(f"{lcam}:{control}", "data"), "alpha_high"])
            rows.append(row)
    return pd.DataFrame(rows)
