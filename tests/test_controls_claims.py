"""LCAM's controls (shuffled, matched, bounds) and the claims ledger's verdict rules."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from lcamlab.experiments import claims
from lcamlab.experiments.controls import (bernoulli_schedule, control_specs, matched_schedule, realised_momentum,
                                          shuffled_schedule)
from lcamlab.experiments.registry import split_key
from lcamlab.experiments.registry import OptimizerSpec, preset
from lcamlab.toys import SpringPair, run
from lcamlab.toys.runner import run_controls

F64 = torch.float64


def _lcam_runs(trials=40, steps=120, epoch=20, pair=(0.95, 0.9)):
    toy = SpringPair(trials, mass_ratio=25.0, coupling=0.8, noise=0.2)
    return toy, run_controls(toy, OptimizerSpec.lcam(0.02, *pair), steps=steps, steps_per_epoch=epoch, seed=3,
                             controls=("shuffled", "matched", "bound-below", "bound-above"))


def test_shuffled_control_has_lcams_momentum_histogram_per_trial_and_epoch():
    toy, runs = _lcam_runs()
    lcam = runs["lcam-below"]
    used = lcam.momentum_used()
    shuffled = shuffled_schedule(used, 20, seed=11)
    assert not torch.equal(shuffled, used)  # the order changed
    for start in range(0, 120, 20):
        a = torch.sort(used[start:start + 20], dim=0).values
        b = torch.sort(shuffled[start:start + 20], dim=0).values
        assert torch.equal(a, b)  # the same values in every trial and epoch
    # the control run really used that schedule: replaying it gives the control's trajectory
    replay = run(toy, OptimizerSpec("scheduled", 0.02), steps=120, steps_per_epoch=20, seed=3,
                 build_options={"momentum": shuffled_schedule(used, 20, seed=7_919 + 3)})
    assert torch.equal(replay.trajectory, runs["lcam-below:shuffled"].trajectory)


def test_replaying_lcams_own_sequence_reproduces_lcam():
    toy, runs = _lcam_runs()
    lcam = runs["lcam-below"]
    replay = run(toy, OptimizerSpec("scheduled", 0.02), steps=120, steps_per_epoch=20, seed=3,
                 build_options={"momentum": lcam.momentum_used()})
    assert torch.equal(replay.trajectory, lcam.trajectory)


def test_shuffled_choice_is_independent_of_the_loss():
    """A constructed loss sequence LCAM follows exactly; the shuffled choice does not follow it at all."""
    steps, trials, epoch = 40, 4000, 40
    generator = torch.Generator().manual_seed(0)
    below = torch.rand(steps, trials, generator=generator) < 0.6  # "loss below its running mean" after each step
    used = realised_momentum(below, (0.95, 0.9), 0.9)
    phase = below[:-1].to(F64)  # the decision that set the momentum of the next step
    lcam_choice = (used[1:] == 0.95).to(F64)
    shuffled_choice = (shuffled_schedule(used, epoch, seed=1)[1:] == 0.95).to(F64)

    def within_trial_correlation(x, y):
        # the control keeps each trial's proportion on purpose: independence is within a trial
        x, y = x - x.mean(dim=0), y - y.mean(dim=0)
        return float((x * y).sum() / torch.sqrt((x * x).sum() * (y * y).sum()))

    assert within_trial_correlation(lcam_choice, phase) == pytest.approx(1.0)
    n = phase.numel()
    assert abs(within_trial_correlation(shuffled_choice, phase)) < 4 / math.sqrt(n)  # independent, to sampling error


def test_matched_control_uses_the_realised_mean():
    toy, runs = _lcam_runs()
    used = runs["lcam-below"].momentum_used()
    schedule = matched_schedule(used)
    assert torch.allclose(schedule, used.mean().expand(120, 40), rtol=0, atol=1e-15)
    groups = torch.arange(40) // 20  # two cells of 20 trials
    per_group = matched_schedule(used, groups)
    assert torch.allclose(per_group[:, :20], used[:, :20].mean().expand(120, 20), rtol=0, atol=1e-15)
    assert torch.allclose(per_group[:, 20:], used[:, 20:].mean().expand(120, 20), rtol=0, atol=1e-15)
    # realised mean momentum between the two values, and the bounds are the two values
    assert 0.9 < float(used.mean()) < 0.95
    specs = control_specs(OptimizerSpec.lcam(0.02, 0.95, 0.9))
    assert specs["lcam-below:bound-below"].momentum == 0.95 and specs["lcam-below:bound-above"].momentum == 0.9
    assert all(s.lr == 0.02 for s in specs.values())
    assert split_key("lcam-below:matched") == ("lcam-below", "matched") and split_key("adam") == ("adam", None)
    assert specs["lcam-below:shuffled"].label == "LCAM (0.95, 0.9), shuffled control"
    with pytest.raises(ValueError, match="expected 'lcam'"):
        control_specs(preset("momentum", 0.1))


def test_bernoulli_schedule_is_a_pure_function_of_seed_and_step():
    schedule = bernoulli_schedule((0.95, 0.9), torch.full((20000,), 0.6), seed=4, dtype=F64)
    first, again = schedule(17), schedule(17)
    assert torch.equal(first, again) and not torch.equal(schedule(17), schedule(18))
    assert abs(float((first == 0.95).to(F64).mean()) - 0.6) < 0.02
    with pytest.raises(ValueError, match="below_fraction"):
        bernoulli_schedule((0.9, 0.95), 1.5, seed=0)


# -- the ledger ------------------------------------------------------------------------------------


@pytest.mark.parametrize("low, high, predicted, margin, n, expected", [
    (0.1, 0.3, 1, 0.0, 100, "holds"),
    (-0.3, -0.1, -1, 0.0, 100, "holds"),
    (-0.3, -0.1, 1, 0.0, 100, "does not hold"),
    (0.1, 0.3, -1, 0.0, 100, "does not hold"),
    (-0.1, 0.2, 1, 0.0, 100, "cannot tell at this n"),
    (0.05, 0.2, 1, 0.1, 100, "cannot tell at this n"),   # beyond zero, not beyond the margin
    (0.15, 0.2, 1, 0.1, 100, "holds"),
    (-0.05, 0.05, 1, 0.1, 100, "does not hold"),          # shown to be negligible
    (0.1, 0.3, 1, 0.0, 1, "cannot tell at this n"),       # too few units
    (float("nan"), 0.3, 1, 0.0, 100, "cannot tell at this n"),
])
def test_verdict_rules(low, high, predicted, margin, n, expected):
    assert claims.verdict(low, high, predicted=predicted, n=n, margin=margin) == expected


def _row(id, notebook="01", estimate=0.2, low=0.1, high=0.3, predicted=1):
    return claims.claim_row(id, notebook=notebook, paper="LCAM", section="3.4", claim=f"claim {id}",
                            measured="drift", control="shuffled", estimate=estimate, low=low, high=high, n=50,
                            predicted=predicted)


def test_ledger_update_replaces_a_notebooks_rows_and_feeds_the_findings(tmp_path):
    claims.update_ledger([_row("b"), _row("a", predicted=-1)], "01", tmp_path)
    claims.update_ledger([_row("z", notebook="02", low=-0.1)], "02", tmp_path)
    ledger = claims.read_ledger(tmp_path)
    assert list(ledger["id"]) == ["a", "b", "z"]
    assert list(ledger["verdict"]) == ["does not hold", "holds", "cannot tell at this n"]
    claims.update_ledger([_row("c")], "01", tmp_path)  # notebook 01 reran: its old rows go
    assert list(claims.read_ledger(tmp_path)["id"]) == ["c", "z"]
    text = claims.findings_markdown(claims.read_ledger(tmp_path))
    assert "*holds*: claim c" in text and "*cannot tell at this n*: claim z" in text
    assert "Zhang et al. (2023)" in text
    first = claims.ledger_path(tmp_path).read_bytes()
    claims.update_ledger([_row("c")], "01", tmp_path)
    assert claims.ledger_path(tmp_path).read_bytes() == first  # same rows, same bytes
    with pytest.raises(ValueError, match="another notebook"):
        claims.update_ledger([_row("z")], "01", tmp_path)
    with pytest.raises(ValueError, match="Invalid paper"):
        claims.claim_row("x", notebook="01", paper="000", section="", claim="", measured="", control="",
                         estimate=0, low=0, high=0, n=1, predicted=1)


def test_readme_findings_are_generated_from_the_ledger():
    """Every finding the README states comes from data/claims.csv (no prose that the data do not support)."""
    from lcamlab import paths

    ledger = claims.read_ledger()
    if len(ledger) == 0:
        pytest.skip("no ledger yet")
    readme = (paths.REPO_ROOT / "README.md").read_text()
    start, end = "<!-- findings:start -->", "<!-- findings:end -->"
    assert start in readme and end in readme, "the README has no generated findings block"
    block = readme.split(start)[1].split(end)[0].strip()
    assert block == claims.findings_markdown(ledger).strip(), "README findings differ from data/claims.csv: " \
        "run `lcamlab claims --write-readme`"
    assert set(pd.unique(ledger["verdict"])) <= set(claims.VERDICTS)


def test_quick_builds_do_not_write_the_ledger(tmp_path):
    claims.update_ledger([_row("a")], "01", tmp_path)
    first = claims.ledger_path(tmp_path).read_bytes()
    preview = claims.update_ledger([_row("b"), _row("c")], "01", tmp_path, write=False)
    assert list(preview["id"]) == ["b", "c"]  # what the ledger would be
    assert claims.ledger_path(tmp_path).read_bytes() == first  # and what it still is


def test_claims_command_prints_the_ledger_and_writes_the_readme_block(tmp_path, capsys):
    import argparse

    from lcamlab.experiments import claims_cli

    parser = argparse.ArgumentParser()
    claims_cli.configure_parser(parser)
    claims.update_ledger([_row("b"), _row("a", predicted=-1)], "01", tmp_path)
    assert claims_cli.main(parser.parse_args(["--data-dir", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert "2 claims: 1 holds, 1 does not hold, 0 cannot tell at this n" in out and "HOLDS" in out
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nprose\n\n{claims.FINDINGS_START}\nstale text\n{claims.FINDINGS_END}\n\nmore prose\n")
    common = ["--data-dir", str(tmp_path), "--readme", str(readme)]
    assert claims_cli.main(parser.parse_args([*common, "--check"])) == 1
    assert claims_cli.main(parser.parse_args([*common, "--write-readme"])) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nprose\n\n") and text.endswith("\n\nmore prose\n") and "stale" not in text
    assert claims.findings_block(text) == claims.findings_markdown(claims.read_ledger(tmp_path)).strip()
    assert claims_cli.main(parser.parse_args([*common, "--check"])) == 0
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="findings block"):
        claims_cli.main(parser.parse_args([*common, "--write-readme"]))
    with pytest.raises(ValueError, match="No ledger rows of notebook"):
        claims_cli.main(parser.parse_args(["--data-dir", str(tmp_path), "--notebook", "99"]))
