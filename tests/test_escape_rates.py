"""The escape tables: rates and sharpness fits on simulated escape data, the saddle power law."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcamlab.escape import report
from lcamlab.escape.rates import lcam_comparison, rate_table, saddle_exponent_table, saddle_table, slope_table
from test_experiments_stats import censored_sample


def test_fits_on_simulated_escape_data_find_the_true_law():
    rng = np.random.default_rng(11)
    k = np.linspace(1.5, 6.0, 8)
    budget = 20_000
    frames = []
    for law, rates in {"inverse": 0.5 * np.exp(-14.0 / k), "sqrt": 0.5 * np.exp(-9.0 / np.sqrt(k))}.items():
        for kk, rate in zip(k, rates):
            exposure, escaped, steps = censored_sample(rng, rate, 400, budget)
            frames.append(pd.DataFrame({"optimizer": law, "k": kk, "escaped": escaped, "exposure": exposure,
                                        "escape_step": steps, "hessian": kk}))
    rates = rate_table(pd.concat(frames), budget, bootstraps=20)
    slopes = slope_table(rates).set_index("optimizer")
    inverse, sqrt = slopes.loc["inverse"], slopes.loc["sqrt"]
    assert inverse["slope_inv_k_lower"] <= -14.0 <= inverse["slope_inv_k_upper"]
    assert sqrt["slope_inv_sqrt_k_lower"] <= -9.0 <= sqrt["slope_inv_sqrt_k_upper"]
    assert inverse["better"] == "1/k"
    assert sqrt["better"] == "1/sqrt(k)"


def test_saddle_power_law():
    k = np.geomspace(0.25, 4.0, 6)
    frame = pd.DataFrame({
        "optimizer": "sgd", "k": np.repeat(k, 3), "hessian": -np.repeat(k, 3) * 9.6,
        "exposure": np.repeat(50.0 / k, 3) * np.tile([0.9, 1.0, 1.1], 6), "escaped": True,
    })
    table = saddle_table(frame)
    assert table["mean_time"].to_numpy() == pytest.approx(50.0 / k)
    exponent = saddle_exponent_table(table).iloc[0]
    assert exponent["exponent"] == pytest.approx(-1.0)


def test_report_sentences_follow_the_tables():
    rng = np.random.default_rng(5)
    k = np.linspace(2.0, 5.0, 4)
    laws = {"sgd": 0.5 * np.exp(-14.0 / k), "adam": 0.5 * np.exp(-5.0 / k), "momentum": 0.5 * np.exp(-12.0 / k),
            "lcam-above": 0.5 * np.exp(-9.0 / k)}
    frames = []
    for key, rates in laws.items():
        for kk, rate in zip(k, rates):
            exposure, escaped, steps = censored_sample(rng, rate, 200, 5000)
            frames.append(pd.DataFrame({"optimizer": key, "k": kk, "escaped": escaped, "exposure": exposure,
                                        "escape_step": steps, "hessian": kk, "trial": np.arange(200)}))
    frame = pd.concat(frames, ignore_index=True)
    rates = rate_table(frame, 5000, bootstraps=20)
    slopes = slope_table(rates)
    text = report.slope_summary(slopes)
    assert len(text.splitlines()) == 4 + 2 and "weaker sharpness dependence" in text
    swapped = slopes.replace({"optimizer": {"sgd": "adam", "adam": "sgd"}})
    assert "NOT seen here" in report.slope_summary(swapped)
    assert report.gof_summary(rates).startswith(f"exponential law rejected at the 5% level at "
                                                f"{int((rates['ks_p'] < 0.05).sum())} of 16 points")
    assert report.calibration_summary(frame) == "every (optimizer, k) point has escapes: True"
    never = frame.assign(escaped=frame["escaped"] & (frame["optimizer"] != "adam"))
    assert "none at adam k=5" in report.calibration_summary(never)
    comparison = lcam_comparison(rates, slopes)
    sentences = report.lcam_summary(comparison).splitlines()
    assert len(sentences) == len(comparison) == 3  # against momentum, sgd and adam
    assert all(s.startswith("lcam-above escapes valleys") for s in sentences)
    assert "slower than adam" in sentences[-1] and "saddle" not in sentences[-1]  # adam's law escapes faster
    saddle = pd.DataFrame({"optimizer": ["lcam-above", "adam"], "k": [2.0, 2.0], "mean_time": [30.0, 60.0]})
    with_saddle = report.lcam_summary(lcam_comparison(rates, slopes, saddle)).splitlines()
    assert with_saddle[-1].endswith("saddle exit time 0.50x adam's.")
