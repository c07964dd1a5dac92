"""Escape v2's design: checkpoints and resume, the cached table, the power numbers, the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lcamlab import cli
from lcamlab.escape import analysis, report
from lcamlab.escape.design import (
    DesignConfig, alpha_standard_error, design_units, load_or_run_design, run_design, unit_path,
)


def _tiny(**changes) -> DesignConfig:
    base = dict(optimizers=("sgd", "lcam-above"), arms=("data", "gauss"), trials=24, points=5, slow=800.0,
                calibration_trials=8, warmup=20)
    base.update(changes)
    return DesignConfig(**base)


def test_an_interrupted_run_resumes_to_identical_results(tmp_path):
    config = _tiny()
    interrupted = tmp_path / "interrupted"
    partial = run_design(config, interrupted, log=None, max_units=4)
    calibration = json.loads((interrupted / "calibration.json").read_text())
    units = design_units(config, calibration)
    assert len(units) == 5 * (2 + 3)  # sgd in two arms, LCAM with two controls in the data arm
    assert partial.groupby(["optimizer", "arm", "k_index"]).ngroups == 4
    assert sum(unit_path(interrupted, u).exists() for u in units) == 4
    lines = []
    resumed = run_design(config, interrupted, log=lines.append)
    assert len(lines) == len(units) - 4 and "ETA" in lines[-1]  # only the missing units ran, with an ETA
    fresh = run_design(config, tmp_path / "fresh", log=None)
    columns = ["optimizer", "arm", "k_index", "trial", "escape_step", "escaped", "kick_at_escape", "kick_lag",
               "kick_count", "momentum_mean", "below_fraction"]
    pd.testing.assert_frame_equal(resumed[columns], fresh[columns])


def test_a_folder_of_another_design_is_refused(tmp_path):
    run_design(_tiny(arms=("data",), optimizers=("sgd",)), tmp_path, log=None, max_units=1)
    with pytest.raises(ValueError, match="another design"):
        run_design(_tiny(arms=("data",), optimizers=("sgd",), trials=30), tmp_path, log=None)


def test_cached_table_and_the_notebook_tables(tmp_path):
    config = _tiny(controls=True)
    entry = load_or_run_design(config, tmp_path, log=None)
    again = load_or_run_design(config, tmp_path, log=None)
    assert not entry.from_cache and again.from_cache
    points = again.frame
    assert set(points["optimizer"]) == {"sgd", "lcam-above", "lcam-above:shuffled", "lcam-above:matched"}
    assert (points["escapes"] > 0).all() and (points["budget"] >= 200).all()
    trace = again.metadata["trace"]
    assert len(trace["u"]) == len(trace["steps"]) and trace["u"][-1] > trace["boundary"]
    alphas = analysis.alpha_table(points)
    assert len(alphas) == 5 and np.isfinite(alphas["alpha"]).all()
    controls = analysis.control_table(points, alphas)
    assert set(controls["control"]) == {"shuffled", "matched"}
    jumps = analysis.jump_table(points)
    text = report.alpha_summary(alphas) + report.jump_summary(jumps) + report.control_summary(controls)
    assert "alpha" in text and "chance" in text and "control" in text
    rows = report.claim_rows(alphas, jumps, controls)
    assert {r["verdict"] for r in rows} <= {"holds", "does not hold", "cannot tell at this n"}
    assert any("for SGD," in r["claim"] for r in rows) and not any("sgd's" in r["claim"] for r in rows)
    # the notebook's tables: labelled settings, a handful of columns each (they must fit a 1000-pixel notebook)
    views = [report.alpha_view(alphas), report.jump_view(jumps), report.control_view(controls),
             report.two_line_view(analysis.two_line_table(points)), report.design_table(points)]
    for view in views:
        assert len(view.columns) <= 11
    assert "LCAM (0.9, 0.95), shuffled control" in set(views[0]["setting"])
    assert views[0]["verdict"].map(len).max() < 60
    # the exercises' measured answers
    answer, why = report.jump_exercise(jumps, alphas, "sgd")
    assert answer in report.JUMP_OPTIONS and "chance gives" in why and "fit p" in why
    low, high, why = report.control_exercise(controls, "lcam-above")
    assert low <= high and "shuffled control" in why


def test_power_numbers_in_the_docstring():
    k = np.geomspace(1, 4, 12)
    assert alpha_standard_error(1600, k, 12.0, 1.0) == pytest.approx(0.115, abs=0.001)
    assert alpha_standard_error(6400, k, 12.0, 1.0) == pytest.approx(0.057, abs=0.001)
    assert alpha_standard_error(1600, np.geomspace(1, 16, 12), 11.0, 0.5) == pytest.approx(0.063, abs=0.001)


def test_command_line_run(tmp_path, capsys):
    args = ["escape", "run", "--quick", "--optimizers", "sgd", "--arms", "data", "--trials", "16",
            "--data-dir", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "ETA" in out
    assert cli.main(["escape", "run", "--arms", "levy", "--data-dir", str(tmp_path)]) != 0
    assert "Invalid --arms 'levy'" in capsys.readouterr().err
