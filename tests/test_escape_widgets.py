"""The escape notebook's sliders, its live sample of escape times, and its tables."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pytest

from lcamlab.escape import report
from lcamlab.escape.design import DesignConfig, quick_design, sample_escape_times

QUICK = quick_design()  # the design's landscape with a 50-step warm-up: a fast sample


def test_sample_escape_times_depend_on_k_and_lr_only_through_the_effective_step():
    base = sample_escape_times("sgd", 2.0, 0.005, trials=200, config=QUICK)
    scaled = sample_escape_times("sgd", 4.0, 0.0025, trials=200, config=QUICK)
    sharper = sample_escape_times("sgd", 4.0, 0.005, trials=200, config=QUICK)
    same = report.scaling_comparison(base, scaled)
    assert same["verdict"] == "the same" and same["identical"] > 0.95
    assert report.scaling_comparison(base, sharper)["verdict"] == "shorter"
    # Adam's step is eta sqrt(k): doubling k and halving eta makes it smaller, escapes slower
    adam = report.scaling_comparison(sample_escape_times("adam", 10.0, 0.105, trials=200, budget=10_000, config=QUICK),
                                     sample_escape_times("adam", 20.0, 0.0525, trials=200, budget=10_000, config=QUICK))
    assert adam["verdict"] == "longer"
    answer, why = report.scaling_exercise(same, adam)
    assert answer == "the same" and answer in report.SCALING_OPTIONS and "(longer)" in why
    with pytest.raises(ValueError, match="Invalid sharpness"):
        sample_escape_times("sgd", 0.0, config=QUICK)


def test_escape_explorer_redraws_on_change_within_the_time_budget():
    pytest.importorskip("ipywidgets")
    from PIL import Image

    from lcamlab.escape.widgets import EscapeExplorer

    panel = EscapeExplorer(k=2.0, trials=200, budget=2000, config=QUICK)
    assert len(panel.redraw_seconds) == 1 and panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    first = panel.image.value
    panel.sliders["k"].value = 4.0
    assert len(panel.redraw_seconds) == 2 and panel.image.value != first
    assert panel.effective_step() == pytest.approx(4.0 * 0.005, rel=0.02)
    # one redraw when the optimizer changes, with its design learning rate; LCAM runs with data noise
    panel.arm.value = "gauss"
    panel.optimizer.value = "lcam-above"
    assert len(panel.redraw_seconds) == 4
    assert panel.sliders["lr"].value == pytest.approx(3.75e-4, rel=0.03) and panel.arm.value == "data"
    panel.optimizer.value = "adam"
    assert panel.effective_step() == pytest.approx(0.105 * 2.0, rel=0.03)
    # long, fine tracks stacked full-width above the figure, which scales to the width available
    assert min(panel.slider_steps().values()) >= 200
    assert all(slider.layout.width == "100%" for slider in panel.sliders.values())
    assert list(panel.widget.children)[-2:] == [panel.status, panel.image]
    with Image.open(io.BytesIO(panel.image.value)) as png:
        assert panel.image.layout.max_width == f"{png.width}px"
    # the redraw budget of the notebook (300 ms on one core; generous here, the machine is shared)
    times = []
    for value in (3.0, 2.0):
        started = time.perf_counter()
        panel.sliders["k"].value = value
        times.append(time.perf_counter() - started)
    assert min(times) < 1.0, times
    with pytest.raises(ValueError, match="Invalid optimizer"):
        EscapeExplorer(optimizer="adagrad", config=QUICK)


def _points() -> pd.DataFrame:
    rows = []
    for optimizer in ("sgd", "lcam-above", "lcam-above:shuffled"):
        for i, k in enumerate(np.geomspace(1, 4, 6)):
            escapes = 500
            mean = 1e4 * np.exp(-2.0 * k) + 20
            rows.append({"optimizer": optimizer, "arm": "data", "k_index": i, "k": k, "trials": 520, "budget": 5000,
                         "escapes": escapes, "exposure": escapes * mean, "rate": 1 / mean, "rate_lower": 0.9 / mean,
                         "rate_upper": 1.1 / mean, "mean_time": mean, "ks_p": 0.5 if mean > 200 else 0.01,
                         "kick_fraction": 0.8, "kick_chance": 0.4, "kick_per_step": 0.03, "kick_median": 9.0,
                         "momentum_mean": 0.92, "below_fraction": 0.5})
    return pd.DataFrame(rows)


def test_the_notebook_tables_are_labelled_and_narrow():
    points = _points()
    design = report.design_table(points)
    assert list(design["setting"]) == ["SGD", "LCAM (0.9, 0.95)", "LCAM (0.9, 0.95), shuffled control"]
    assert "optimizer" not in design and design["censored (%)"].iloc[0] == pytest.approx(100 * 20 / 520)
    gof = report.gof_view(points)
    rejected = int((points[points["optimizer"] == "sgd"]["ks_p"] < 0.05).sum())
    assert rejected > 0 and gof["rejected"].tolist() == [rejected] * 3
    assert "chance alone would reject about 1" in report.gof_line(points)
    for view in (design, gof):
        assert len(view.columns) <= 9


def test_source_lines_say_what_was_read_and_what_was_computed(tmp_path):
    class Entry:
        def __init__(self, from_cache):
            self.metadata = {"simulation_seconds": 516.5, "trial_steps": 7.6e9, "created_utc": "2026-11-30T06:31:59"}
            self.path = tmp_path / "valley_v2_abc.csv"
            self.from_cache = from_cache

    read = report.source_line("design", Entry(True), 0.02)
    assert read.startswith("design: read from the cache (valley_v2_abc.csv) in 0.02 s") and "computed on 2026-11-30 in 516.5 s" in read
    computed = report.source_line("design", Entry(False), 520.0)
    assert computed.startswith("design: computed now in 520.0 s") and "read" not in computed


def test_short_verdicts():
    row = pd.Series({"expected": 1.0, "deviance_p": 0.5, "alpha_low": 0.8, "alpha_high": 1.1})
    assert report.short_verdict(row.to_frame().T.itertuples().__next__()).startswith("α = 1")
    for changes, words in (({"deviance_p": 1e-5}, "does not fit"), ({"alpha_low": 0.4}, "cannot tell"),
                           ({"alpha_low": 1.2, "alpha_high": 1.5}, "steeper")):
        tuple_ = row.copy()
        for key, value in changes.items():
            tuple_[key] = value
        assert words in report.short_verdict(tuple_.to_frame().T.itertuples().__next__())
