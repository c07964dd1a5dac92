r"""The saddle experiment's tables: mean exit times and their power law in the negative curvature.

Built on :mod:`lcamlab.experiments.stats` (the t-interval of a mean, the least-squares
line), from the per-trial frames of :func:`lcamlab.escape.experiment.run_escape`:
:func:`saddle_table` and :func:`saddle_exponent_table` (the Adai paper, Theorems 1-2,
Proposition 1). The sharp-valley design's tables are in :mod:`lcamlab.escape.analysis`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcamlab.experiments.stats import CI_LEVEL, fit_line, mean_ci

__all__ = ["saddle_table", "saddle_exponent_table"]


def saddle_table(frame: pd.DataFrame, *, confidence: float = CI_LEVEL) -> pd.DataFrame:
    r"""Per (optimizer, k): mean time to leave the saddle's neighbourhood with a t-interval.

    Saddle exits are not rare events (the Adai paper, Theorems 1-2: the displacement grows
    like :math:`e^{|\lambda| t}`), so the summary is the mean exit iteration and
    :math:`\bar T \pm t_{n-1} s/\sqrt n`; ``censored`` counts trials still inside at
    the budget (their budget enters the mean, which is then a lower bound); ``diverged`` counts trials
    whose position overflowed (left out of the mean; tables written before the column have none).
    """
    rows = []
    for (optimizer, k), group in frame.groupby(["optimizer", "k"], sort=False):
        lost = group["diverged"].to_numpy(bool) if "diverged" in group else np.zeros(len(group), bool)
        kept = group[~lost]
        times = kept["exposure"].to_numpy(dtype=float)
        mean, lower, upper, n = mean_ci(times, confidence)
        rows.append({
            "optimizer": optimizer, "k": float(k), "negative_curvature": float(abs(group["hessian"].iloc[0])),
            "trials": n, "censored": int((~kept["escaped"]).sum()), "diverged": int(lost.sum()), "mean_time": mean,
            "mean_lower": lower, "mean_upper": upper, "median_time": float(np.median(times)) if n else np.nan,
        })
    return pd.DataFrame(rows)


def saddle_exponent_table(saddle: pd.DataFrame, *, confidence: float = CI_LEVEL) -> pd.DataFrame:
    r"""Per optimizer: the exponent :math:`p` in :math:`\bar T \propto |\lambda|^{p}` (log-log least squares).

    ``intercept`` is the line's :math:`\log \bar T` at :math:`|\lambda| = 1` (the figure draws the fit).

    The Adai paper's Theorem 1 gives :math:`\bar T \propto 1/|\lambda|` up to a logarithm for SGD;
    Proposition 1 makes Adam's escape nearly Hessian-independent (:math:`|p|` smaller).

    An optimizer with fewer than 3 sharpness values of finite mean time (too few values asked for, or
    every trial diverged) gets a row of NaN with its ``points``: a line needs 3 points for an interval.
    """
    rows = []
    for optimizer, group in saddle.groupby("optimizer", sort=False):
        x, y = np.log(group["negative_curvature"].to_numpy(float)), np.log(group["mean_time"].to_numpy(float))
        usable = np.isfinite(x) & np.isfinite(y)
        if len(np.unique(x[usable])) < 3:
            rows.append({"optimizer": optimizer, "exponent": np.nan, "exponent_lower": np.nan,
                         "exponent_upper": np.nan, "intercept": np.nan, "r2": np.nan, "points": int(usable.sum())})
            continue
        fit = fit_line(np.log(group["negative_curvature"]), np.log(group["mean_time"]), None,
                       confidence=confidence, transform="log|lambda|")
        rows.append({"optimizer": optimizer, "exponent": fit.slope, "exponent_lower": fit.slope_lower,
                     "exponent_upper": fit.slope_upper, "intercept": fit.intercept, "r2": fit.r2,
                     "points": fit.points})
    return pd.DataFrame(rows)
