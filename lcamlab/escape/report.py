"""The escape notebook's printed findings: every sentence computed from the tables, never typed in.

Each function takes tables of :mod:`lcamlab.escape.rates` (or a result of
:mod:`lcamlab.escape.cache`) and returns the text (or table) the notebook
``notebooks/02_saddle_escape.ipynb`` shows, so the notebook is parameters,
narrative and calls, and the wording of a verdict lives in one tested place.
"""

from __future__ import annotations

import pandas as pd

from lcamlab.escape.landscape import StyblinskiTangLandscape, styblinski_tang

__all__ = [
    "SLOPE_COLUMNS",
    "landscape_summary",
    "run_summary",
    "escaped_fractions",
    "calibration_summary",
    "slope_summary",
    "gof_summary",
    "saddle_summary",
    "lcam_summary",
]

SLOPE_COLUMNS = ["optimizer", "slope_inv_k", "slope_inv_k_lower", "slope_inv_k_upper", "r2_inv_k",
                 "slope_inv_sqrt_k", "slope_inv_sqrt_k_lower", "slope_inv_sqrt_k_upper", "r2_inv_sqrt_k", "better"]


def landscape_summary(landscape: StyblinskiTangLandscape) -> str:
    """The exact critical points of the training loss next to the textbook (noiseless) ones, and the sample spread."""
    points = landscape.points
    start_u = landscape.tensor(points.shallow_min)
    sample_losses = styblinski_tang(start_u - landscape.data)  # every single training sample's loss at the start
    return "\n".join([
        f"training set: {landscape.n_samples} samples x {landscape.dim} coordinates, "
        f"noise scale {landscape.noise_scale}",
        f"shallow-valley bottom u = {points.shallow_min.min():.3f} .. {points.shallow_min.max():.3f} "
        f"(textbook noiseless value 2.747)",
        f"ridge (valley boundary) u = {points.boundary.min():.3f} .. {points.boundary.max():.3f} (textbook 0.157)",
        f"deep-valley bottom u = {points.deep_min.min():.3f} .. {points.deep_min.max():.3f} (textbook -2.904)",
        f"barrier out of the shallow valley {points.barrier.min():.2f} .. {points.barrier.max():.2f} per coordinate "
        f"(textbook 25.2); curvature at its bottom {points.curvature_shallow.mean():.1f} x k, "
        f"at the ridge {points.curvature_boundary.mean():.1f} x k",
        f"one-sample loss at the start: mean {float(sample_losses.mean()):.1f}, standard deviation "
        f"{float(sample_losses.std()):.1f} (compare the barrier of one coordinate, {points.barrier.mean():.1f})",
    ])


def run_summary(result) -> str:
    """Where a result came from (cache or computed), its size and simulation time, and its learning rates."""
    config = result.config
    how = "read from the cache" if result.from_cache else "computed"
    return (f"{how}: {result.path.name}; simulation time {result.seconds:.1f} s "
            f"({len(config.optimizers)} optimizers x {len(config.sharpness)} sharpness values x "
            f"{config.trials} trials, budget {config.budget})\n"
            "learning rates: " + ", ".join(f"{key} {spec.lr:g}" for key, spec in zip(config.keys, config.optimizers)))


def escaped_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """Fraction of trials that escaped within the budget: rows k (sharpest first), columns optimizers."""
    fractions = frame.groupby(["k", "optimizer"], sort=False)["escaped"].mean().unstack()
    return fractions.sort_index(ascending=False)


def calibration_summary(frame: pd.DataFrame) -> str:
    """Whether every (optimizer, k) point has escapes (the calibration's requirement), naming any that has none."""
    fractions = escaped_fractions(frame)
    empty = [(key, k) for key in fractions.columns for k in fractions.index if not fractions.loc[k, key] > 0]
    if not empty:
        return "every (optimizer, k) point has escapes: True"
    return ("every (optimizer, k) point has escapes: False (none at "
            + ", ".join(f"{key} k={k:.3g}" for key, k in empty) + ")")


def slope_summary(slopes: pd.DataFrame) -> str:
    """One line per optimizer (slopes against 1/k and 1/sqrt(k), R2, the better fit) and the Adam-vs-SGD verdict."""
    lines = [
        f"{row.optimizer:>11}: slope vs 1/k {row.slope_inv_k:7.2f} [{row.slope_inv_k_lower:.2f}, "
        f"{row.slope_inv_k_upper:.2f}], R2 {row.r2_inv_k:.3f} | vs 1/sqrt(k) {row.slope_inv_sqrt_k:7.2f} "
        f"[{row.slope_inv_sqrt_k_lower:.2f}, {row.slope_inv_sqrt_k_upper:.2f}], R2 {row.r2_inv_sqrt_k:.3f} "
        f"| better: {row.better} (R2 difference {row.r2_difference:+.3f})"
        for row in slopes.itertuples()
    ]
    by_key = slopes.set_index("optimizer")
    if {"adam", "sgd"} <= set(by_key.index):
        ratio = by_key.loc["adam", "slope_inv_k"] / by_key.loc["sgd", "slope_inv_k"]
        if ratio < 1:
            lines.append(f"\nAdam's slope against 1/k is {ratio:.2f} times SGD's: weaker sharpness dependence, "
                         f"as 004 Proposition 2 predicts for a temperature growing like sqrt(k).")
        else:
            lines.append(f"\nAdam's slope against 1/k is {ratio:.2f} times SGD's: 004's weaker dependence is "
                         f"NOT seen here.")
    return "\n".join(lines)


def gof_summary(rates: pd.DataFrame, level: float = 0.05) -> str:
    """Where the exponential law is rejected at ``level``, against how often chance alone would reject it."""
    tested = int(rates["ks_p"].notna().sum())
    rejected = rates[rates["ks_p"] < level]
    lines = [f"exponential law rejected at the {level:.0%} level at {len(rejected)} of {tested} points "
             f"(about {level * tested:.1f} expected by chance if it always held):"]
    for key, group in rates.groupby("optimizer", sort=False):
        bad = group[group["ks_p"] < level]
        where = ", ".join(f"k={k:.2f} (mean {m:.0f} it)" for k, m in zip(bad["k"], bad["mean_time"])) or "none"
        lines.append(f"  {key:>11}: {len(bad)} of {len(group)}: {where}")
    return "\n".join(lines)


def saddle_summary(times: pd.DataFrame, exponents: pd.DataFrame) -> str:
    """Censored saddle trials and each optimizer's power law :math:`T \\propto |\\lambda|^p`."""
    lines = [f"censored saddle trials: {int(times['censored'].sum())} of {int(times['trials'].sum())}"]
    lines += [f"{row.optimizer:>11}: mean exit time ~ |lambda|^p with p = {row.exponent:.2f} "
              f"[{row.exponent_lower:.2f}, {row.exponent_upper:.2f}], R2 {row.r2:.3f}"
              for row in exponents.itertuples()]
    return "\n".join(lines)


def lcam_summary(comparison: pd.DataFrame) -> str:
    """One sentence per row of :func:`lcamlab.escape.rates.lcam_comparison`: rates, certainty, slopes, saddle.

    The saddle clause appears when the comparison has a saddle exit-time ratio.
    """
    lines = []
    for row in comparison.itertuples():
        direction = "faster than" if row.rate_ratio_geomean > 1 else "slower than"
        certainty = (" at every sharpness (95%)" if row.faster_at_all_k or row.slower_at_all_k
                     else ", not at every sharpness beyond noise")
        slope_text = "indistinguishable slope" if row.slopes_overlap else "a different slope"
        saddle = getattr(row, "saddle_time_ratio_geomean", float("nan"))
        saddle_text = f"; saddle exit time {saddle:.2f}x {row.reference}'s" if saddle == saddle else ""
        lines.append(f"{row.lcam} escapes valleys {row.rate_ratio_geomean:.2f}x {direction} {row.reference} on "
                     f"average (range {row.rate_ratio_min:.2f}-{row.rate_ratio_max:.2f}){certainty}; slope vs 1/k "
                     f"{row.slope_lcam:.2f} vs {row.slope_reference:.2f} ({slope_text}){saddle_text}.")
    return "\n".join(lines)
