"""lcamlab.toys measurements: known answers, statistics, caching, verdicts, sliders, GIF, benchmark."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re

import pandas as pd
import pytest
import torch

from lcamlab.experiments.cache import table_path
from lcamlab.experiments.metrics import iterations_to_target, oscillation_index
from lcamlab.experiments.stats import mean_ci, median_ci
from lcamlab.toys import OptimizerSpec, SpringPair, ToySystem, run
from lcamlab.toys import measurements as M

F64 = torch.float64


# -- measurement 1: phase agreement on cases with a known answer --------------------------------


def test_phase_agreement_is_exactly_one_when_the_loss_is_the_light_weights_loss():
    """Noise-free, uncoupled, heavy weight at its optimum: the loss IS L_n, so the decision is the truth."""
    toy = SpringPair(3, dtype=F64, noise=0.0, coupling=0.0, mass_ratio=[2.0, 20.0, 200.0],
                     stiffness=[0.5, 1.0, 2.0], start=(-1.0, 1.0), optimum=(1.0, 1.0))
    result = run(toy, OptimizerSpec.lcam(0.3, 0.9, 0.95), steps=200, steps_per_epoch=25)
    measured = M.phase_agreement(result, burn_in_epochs=1)
    assert measured["agreement"].tolist() == [1.0, 1.0, 1.0]
    torch.testing.assert_close(measured["eq12_r2"], torch.ones(3, dtype=F64), rtol=0, atol=1e-9)
    # the same run with every decision inverted agrees nowhere
    flipped = dataclasses.replace(result, lcam_below=~result.lcam_below)
    assert M.phase_agreement(flipped, burn_in_epochs=1)["agreement"].tolist() == [0.0, 0.0, 0.0]


def test_loss_cannot_tell_left_from_right_in_a_symmetric_valley():
    """Started at the optimum the process is symmetric under reflection: the sign agreement is 1/2."""
    toy = SpringPair(300, dtype=F64, noise=0.5, start=(1.0, 1.0), optimum=(1.0, 1.0))
    result = run(toy, OptimizerSpec.lcam(0.3, 0.9, 0.95), steps=160, steps_per_epoch=20, seed=3)
    mean, low, high, n = mean_ci(M.phase_agreement(result)["sign_agreement"])
    assert n == 300 and low < 0.5 < high and high - low < 0.02


class Slope(ToySystem):
    """A constant force: L = g * theta (one coordinate, no noise). LCAM's phases are then known exactly."""

    coordinate_names = ("theta",)

    def __init__(self, trials: int, slope: float = 1.5):
        self.trials, self.dim, self.dtype, self.slope = trials, 1, F64, slope

    def sample_batch(self, generator):
        return (torch.zeros(self.trials, 0, dtype=F64),)

    def loss_and_grad(self, theta, batch, *, need_loss=True):
        return self.slope * theta[:, 0], torch.full_like(theta, self.slope)

    def minibatch_loss(self, theta, batch):
        return self.slope * theta[:, 0]

    def population_loss(self, theta):
        return self.slope * theta[..., 0]

    def optimum(self):  # where it is heading, for the progress normalisation
        return torch.full((self.trials, 1), -10.0, dtype=F64)

    def optimal_loss(self):
        return self.slope * self.optimum()[:, 0]

    def initial_point(self):
        return torch.zeros(self.trials, 1, dtype=F64)

    def subset(self, index):
        return Slope(len(range(*index.indices(self.trials))), self.slope)

    def config(self):
        return {"toy": "Slope", "slope": self.slope}

    def centre_of_mass(self, theta):
        return theta[..., 0]


def _slope_position(lr: float, g: float, steps: int, epoch: int, below: float, above: float) -> list[float]:
    r"""theta_t for LCAM on L = g theta, by hand.

    The loss falls at every step, so the first step of each epoch is "above" (it equals its
    own mean) and every other step "below"; the momentum of step t is the one chosen after
    step t-1 (step 1: the initial momentum min(below, above)):
    b_1 = g, b_t = beta_t b_{t-1} + g, theta_t = theta_{t-1} - lr b_t.
    """
    theta, buf, positions = 0.0, 0.0, [0.0]
    for t in range(1, steps + 1):
        if t == 1:
            buf = g
        else:
            previous_was_epoch_start = (t - 2) % epoch == 0
            beta = above if previous_was_epoch_start else below
            buf = beta * buf + g
        theta -= lr * buf
        positions.append(theta)
    return positions


def test_drift_recovers_the_constant_force_answer():
    lr, g, steps, epoch, last = 0.01, 1.5, 120, 10, 10
    toy = Slope(2, g)
    for below, above in ((0.95, 0.9), (0.9, 0.95)):
        lcam = run(toy, OptimizerSpec.lcam(lr, below, above), steps=steps, steps_per_epoch=epoch)
        base = run(toy, OptimizerSpec.heavy_ball(lr, 0.925), steps=steps, steps_per_epoch=epoch)
        assert bool(lcam.below[1:epoch].all()) and not bool(lcam.below[0].any())
        expected_lcam = _slope_position(lr, g, steps, epoch, below, above)
        expected_base = _slope_position(lr, g, steps, epoch, 0.925, 0.925)
        torch.testing.assert_close(lcam.trajectory[:, 0, 0], torch.tensor(expected_lcam, dtype=F64),
                                   rtol=1e-12, atol=1e-12)
        drift = M.centre_of_mass_drift(lcam, base, average_last=last)
        end = lambda xs: sum(xs[-last:]) / last  # noqa: E731
        answer = (end(expected_lcam) - end(expected_base)) / -10.0
        torch.testing.assert_close(drift["com"], torch.full((2,), answer, dtype=F64), rtol=1e-10, atol=1e-12)
        # below-heavy momentum acts on the falling steps: it gets further than its mean, and vice versa
        assert (answer > 0) == (below > above)


def test_no_drift_at_the_optimum_of_a_symmetric_valley():
    """Started at the optimum, reflection symmetry makes the expected paired drift exactly zero."""
    toy = SpringPair(300, dtype=F64, noise=0.3, start=(1.0, 1.0), optimum=(1.0, 1.0))
    kwargs = dict(steps=200, steps_per_epoch=20, seed=5)
    lcam = run(toy, OptimizerSpec.lcam(0.05, 0.95, 0.9), **kwargs)
    base = run(toy, OptimizerSpec.heavy_ball(0.05, 0.925), **kwargs)
    with pytest.raises(ValueError, match="normalise=False"):
        M.centre_of_mass_drift(lcam, base, average_last=20)
    drift = M.centre_of_mass_drift(lcam, base, average_last=20, normalise=False)
    for key in ("com", "theta_n", "theta_s"):
        mean, low, high, _ = mean_ci(drift[key])
        assert low < 0.0 < high, (key, mean, low, high)


# -- statistics and the oscillation index --------------------------------------------------------


def test_confidence_intervals():
    mean, low, high, n = mean_ci([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert (mean, n) == (2.5, 4)
    half = 3.182446305284263 * math.sqrt(5.0 / 3.0) / 2.0  # t_{0.975, 3} * s / sqrt(n)
    assert low == pytest.approx(2.5 - half) and high == pytest.approx(2.5 + half)
    median, low, high, n = median_ci(torch.arange(1.0, 101.0))
    assert (median, low, high, n) == (50.5, 40.0, 61.0, 100)  # the textbook ranks 40 and 61
    censored = torch.cat([torch.arange(1.0, 71.0), torch.full((30,), math.inf)])
    median, low, high, _ = median_ci(censored)
    assert median == 50.5 and low == 40.0 and high == 61.0
    median, _, high, _ = median_ci(torch.cat([torch.ones(40), torch.full((60,), math.inf)]))
    assert median == math.inf and high == math.inf


def test_oscillation_index_and_iterations_to_target():
    straight = (torch.arange(11, dtype=F64) / 4).view(-1, 1, 1).expand(11, 2, 2)  # exact binary steps
    assert oscillation_index(straight, trial_axis=True).tolist() == [1.0, 1.0]
    zigzag = torch.tensor([[[0.0, 0.0]], [[2.0, 1.0]], [[1.0, 2.0]]], dtype=F64)  # q = 3 and 1
    assert oscillation_index(zigzag, trial_axis=True).tolist() == [2.0]
    values = torch.tensor([[5.0, 5.0], [3.0, 5.0], [1.0, 4.0], [0.5, 4.5]])
    steps = torch.tensor([0, 10, 20, 30])
    assert iterations_to_target(values, steps, torch.tensor([1.0, 1.0])).tolist() == [20.0, math.inf]


# -- the measurements: cache, provenance, tables --------------------------------------------------


def test_measurements_are_cached_by_config_hash(tmp_path):
    config = M.TractionConfig(asymmetries=(-0.05, 0.0, 0.05), trials=8, steps=60, steps_per_epoch=20,
                              average_last=20)
    frame, meta, path, cached = M.measure_traction(config, data_dir=tmp_path)
    assert not cached and path.exists() and path.with_suffix(".json").exists()
    assert path == table_path("traction_drift", dataclasses.asdict(config), tmp_path / "toys",
                              version=M.MEASUREMENT_VERSION)
    assert path.parent == tmp_path / "toys" and path.name.startswith("traction_drift_")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["config"]["asymmetries"] == [-0.05, 0.0, 0.05] and sidecar["seed"] == 0
    assert {"git_commit", "torch_version", "created_utc", "wall_seconds", "cache"} <= set(sidecar)
    assert sidecar["cache"]["version"] == M.MEASUREMENT_VERSION and sidecar["cache"]["table"] == "traction_drift"
    assert list(frame["asymmetry"].unique()) == [-0.05, 0.0, 0.05]
    assert (frame[frame["asymmetry"] == 0.0][["com", "lean", "theta_n", "theta_s"]] == 0.0).all().all()
    again, _, path_again, cached_again = M.measure_traction(config, data_dir=tmp_path)
    assert cached_again and path_again == path
    pd.testing.assert_frame_equal(frame, again, check_dtype=False)
    other = dataclasses.replace(config, seed=1)
    _, _, other_path, other_cached = M.measure_traction(other, data_dir=tmp_path)
    assert not other_cached and other_path != path and path.exists()


def test_traction_controls_are_paired_on_the_same_trials(tmp_path):
    config = M.TractionConfig(asymmetries=(-0.05, 0.05), trials=10, steps=80, steps_per_epoch=20, average_last=20)
    frame = M.measure_traction(config, data_dir=tmp_path).frame.set_index(["asymmetry", "setting"])
    for a in (-0.05, 0.05):
        for control in ("shuffled", "matched"):
            for key in ("com", "lean", "theta_n", "theta_s"):
                # the mean of paired differences is the difference of the means (same trials)
                assert frame.loc[(a, f"LCAM - {control}"), key] == pytest.approx(
                    frame.loc[(a, "LCAM"), key] - frame.loc[(a, control), key], abs=1e-12)
        row = frame.loc[(a, "LCAM")]
        assert 0.9 < row["realised_mean"] < 0.95 and 0.0 < row["below_fraction"] < 1.0
    # more momentum where the loss is usually below its mean: the (0.95, 0.9) pair runs hotter
    assert frame.loc[(-0.05, "LCAM"), "realised_mean"] > 0.925 > frame.loc[(0.05, "LCAM"), "realised_mean"]


def test_oscillation_index_until_a_stopping_step():
    gen = torch.Generator().manual_seed(0)
    trajectory = torch.cumsum(torch.randn(30, 5, 3, generator=gen, dtype=F64), dim=0)
    stop = torch.tensor([1, 7, 29, 12, 0])
    q = M.oscillation_index_until(trajectory, stop)
    for j in range(4):
        expected = oscillation_index(trajectory[: int(stop[j]) + 1, j])
        assert float(q[j]) == pytest.approx(float(expected), rel=1e-12)
    assert math.isnan(float(q[4]))  # never reached
    values = torch.tensor([[5.0, 5.0, 5.0], [3.0, 5.0, 0.5], [1.0, 4.0, 2.0]])
    assert M.first_reaching(values, torch.tensor([1.0, 1.0, 1.0])).tolist() == [2, -1, 1]
    with pytest.raises(ValueError, match="beyond"):
        M.oscillation_index_until(trajectory, torch.tensor([30, 1, 1, 1, 1]))


def test_best_rates_are_chosen_on_the_tuning_seed_and_never_where_a_trial_diverged():
    rows = []
    for role, losses in (("tuning", {0.01: -1.0, 0.02: -2.0, 0.04: -3.0}),
                         ("evaluation", {0.01: -5.0, 0.02: -1.0, 0.04: -1.0})):
        for lr, loss in losses.items():
            rows.append({"key": "momentum", "sparsity": 0.0, "seed_role": role, "lr": lr, "log10_loss": loss,
                         "diverged": 0.5 if (role, lr) == ("tuning", 0.04) else 0.0})
    assert M.best_rates(pd.DataFrame(rows)) == {("momentum", 0.0): 0.02}


def test_sparsity_best_rates_and_controls(tmp_path):
    config = M.SparsityConfig(sparsities=(0.0, 0.9), trials_per_cell=6, budget=20, average_last=6,
                              lr_factors=(1.0, 4.0), rates={"momentum": 0.005, "lcam-above": 0.005, "adam": 0.01})
    result = M.measure_sparsity(config, data_dir=tmp_path)
    curves, best = result.curves.frame, result.best.frame
    assert len(curves) == 3 * 2 * 2 * 2 and set(curves["seed_role"]) == {"tuning", "evaluation"}
    chosen = M.best_rates(curves)
    settings = best[best["kind"] == "setting"].set_index(["sparsity", "setting"])
    for (key, s), lr in chosen.items():
        assert settings.loc[(s, key), "lr"] == lr
        evaluation = curves[(curves["key"] == key) & (curves["sparsity"] == s) & (curves["lr"] == lr)
                            & (curves["seed_role"] == "evaluation")]
        # reported on the evaluation seed: the same runs as the curve's point
        assert settings.loc[(s, key), "log10_loss"] == pytest.approx(float(evaluation["log10_loss"].iloc[0]))
    for s in (0.0, 0.9):
        lcam = settings.loc[(s, "lcam-above")]
        for control in ("shuffled", "matched"):
            row = settings.loc[(s, f"lcam-above:{control}")]
            assert row["lr"] == lcam["lr"] and row["realised_mean"] == lcam["realised_mean"]
    paired = best[best["kind"] == "paired"]
    assert {"lcam-above - lcam-above:shuffled", "lcam-above - lcam-above:matched", "adam - momentum"} \
        == set(paired["setting"])
    assert (best["trials"] == 6).all()


def test_oscillation_at_the_convention_and_at_matched_progress(tmp_path):
    config = M.OscillationConfig(trials=6, steps=200, rates={"sgd": 0.2, "momentum": 0.02, "adam": 0.02,
                                                             "adarem": 0.2},
                                 lr_factors=(0.5, 1.0), progress_fraction=0.02)
    frame = M.measure_oscillation(config, data_dir=tmp_path).frame
    sweep = frame[frame["part"] == "sweep"]
    convention = sweep[sweep["convention"].astype(bool)].set_index("key")["lr"]
    assert convention.to_dict() == {"sgd": 0.02, "momentum": 0.02, "adam": 0.0002, "adarem": 0.02}
    assert set(sweep[sweep["own"].astype(bool)]["lr"]) == {0.2, 0.02}
    assert (sweep["Q"] >= 1).all() and (sweep["Q_progress"].dropna() >= 1).all()
    paired = frame[frame["part"] == "paired"].set_index(["key", "regime"])
    assert ("adarem - momentum", "convention") in paired.index
    assert ("adarem - momentum", "matched progress") in paired.index
    own = sweep[sweep["own"].astype(bool)].set_index("key")
    q = paired.loc[("adarem - momentum", "convention"), "Q"]
    assert q == pytest.approx(sweep[sweep["convention"].astype(bool)].set_index("key").loc["adarem", "Q"]
                              - own.loc["momentum", "Q"])


def test_small_measurements_and_plots(tmp_path):
    """Every figure function runs end to end on small settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lcamlab.toys import plots, run_many, suite

    phase = M.measure_phase_agreement(
        M.PhaseAgreementConfig(mass_ratios=(2.0, 20.0), noises=(0.05,), learning_rates=(0.3,), trials_per_cell=6,
                               steps=80, steps_per_epoch=20), data_dir=tmp_path).frame
    assert len(phase) == 2 and phase["trials"].tolist() == [6, 6]
    assert bool(((phase["agreement_low"] <= phase["agreement"]) & (phase["agreement"] <= phase["agreement_high"])).all())
    sparsity = M.measure_sparsity(M.SparsityConfig(sparsities=(0.0, 0.9), trials_per_cell=6, budget=20,
                                                   average_last=6, lr_factors=(1.0, 4.0)), data_dir=tmp_path)
    traction = M.measure_traction(M.TractionConfig(asymmetries=(-0.05, 0.0, 0.05), trials=6, steps=60,
                                                   average_last=20), data_dir=tmp_path).frame
    oscillation = M.measure_oscillation(M.OscillationConfig(trials=4, steps=80, lr_factors=(1.0,)),
                                        data_dir=tmp_path).frame
    toy = SpringPair(6)
    runs = run_many(toy, suite(["momentum", "lcam-above", "adam"], {"momentum": 0.02, "lcam-above": 0.02,
                                                                   "adam": 0.02}), steps=60)
    from matplotlib.text import Text

    for fig in (plots.plot_trajectories(runs), plots.plot_loss_phases(runs["LCAM (0.9, 0.95)"], first_step=20,
                                                                          last_step=60),
                plots.plot_phase_agreement(phase), plots.plot_traction(traction),
                plots.plot_sparsity(sparsity.curves.frame, sparsity.best.frame), plots.plot_oscillation(oscillation)):
        assert fig.axes
        fig.canvas.draw()  # creates the tick labels
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        small = sorted({(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 8})
        assert not small, f"text below 8 pt: {small[:5]}"
        numbered = [t.get_text() for t in texts if re.search(r"(?<![\d.])00[0-4](?![\d.])", t.get_text())]
        assert not numbered, f"source file numbers in a figure: {numbered}"
        plt.close(fig)

    # the notebook's tables: the same data, one row per setting, intervals as "mean ± half-width"
    drift, momentum = plots.traction_tables(traction)
    assert list(drift.columns) == ["β(above) − β(below)", "LCAM", "shuffled", "matched", "LCAM − shuffled",
                                   "LCAM − matched"]
    assert len(drift) == len(momentum) == 3 and "±" in drift.loc[0, "LCAM − matched"]
    settings, paired = plots.sparsity_tables(sparsity.best.frame)
    assert list(settings.columns) == ["setting", "sparsity 0", "sparsity 0.9"]
    assert "LCAM (0.9, 0.95), shuffled control" in set(settings["setting"])
    assert "LCAM (0.95, 0.9) − its matched control" in set(paired["setting"])
    own, contrasts = plots.oscillation_tables(oscillation)
    sweep = oscillation[oscillation["part"] == "sweep"]
    assert len(own) == int(sweep["own"].astype(bool).sum()) and len(contrasts) > 0
    assert len(plots.phase_table(phase, top=1)) == 1
    assert list(plots.trajectory_table(runs)["optimizer"]) == list(runs)
    table = plots.interval_table({"x": torch.tensor([1.0, 2.0, 3.0])})
    assert table.loc[0, "mean"] == pytest.approx(2.0) and table.loc[0, "trials"] == 3


def test_interval_cells_round_to_the_interval():
    from lcamlab.toys.plots import _pm

    assert _pm(0.031604, 0.0309, 0.0323) == "0.03160 ± 0.00070"  # two significant digits of the half-width
    assert _pm(-1.8978, -1.9438, -1.8518) == "−1.898 ± 0.046"
    assert _pm(0.0, 0.0, 0.0) == "0" and _pm(float("nan"), 0.0, 1.0) == "–"
    assert _pm(2.5, float("nan"), float("nan")) == "2.5"


def test_toys_user_facing_text_cites_papers_by_name():
    """No source file numbers (000, 001, 003, 004) in the docstrings of the figure, slider and GIF modules."""
    import inspect

    from lcamlab.toys import animation, plots, widgets

    for module in (plots, widgets, animation):
        text = inspect.getsource(module)
        docs = [obj.__doc__ or "" for obj in [module, *vars(module).values()]
                if obj is module or (callable(obj) and getattr(obj, "__module__", None) == module.__name__)]
        assert not re.search(r"(?<![\d.])00[0-4](?![\d.])", " ".join(docs)), module.__name__
        assert "003's" not in text and "000 Figure" not in text


# -- the claims ledger rows ------------------------------------------------------------------------


def _ci(prefix: str, value: float, half: float) -> dict[str, float]:
    return {prefix: value, f"{prefix}_low": value - half, f"{prefix}_high": value + half}


def test_claim_rows_follow_the_intervals_on_synthetic_tables():
    from lcamlab.experiments import claims

    tc, sc, oc = M.TractionConfig(asymmetries=(-0.05, 0.05)), M.SparsityConfig(), M.OscillationConfig()
    phase = pd.DataFrame([{"lr": 0.3, "mass_ratio": 4.0, "noise": 0.03, "trials": 100, **_ci("agreement", 0.9, 0.01)},
                          {"lr": 0.3, "mass_ratio": 4.0, "noise": 1.0, "trials": 100, **_ci("agreement", 0.5, 0.01)}])

    def drift(a, setting, **values):
        row = {"asymmetry": a, "setting": setting, "trials": 400}
        for key in ("com", "lean", "theta_n", "theta_s"):
            row.update(_ci(key, *values.get(key, (0.0, 0.0001))))
        return row

    traction = pd.DataFrame([
        drift(-0.05, "LCAM - shuffled", lean=(0.01, 0.001), theta_n=(0.0001, 0.00005)),  # lean holds, Θn negligible
        drift(-0.05, "LCAM - matched", com=(0.003, 0.0005)),                             # ahead: holds
        drift(0.05, "LCAM - shuffled", lean=(0.0, 0.01), theta_n=(0.01, 0.001)),         # lean cannot tell
        drift(0.05, "LCAM - matched", com=(0.004, 0.0005)),                              # wrong sign
    ])

    def cell(s, setting, value, half=0.01):
        return {"kind": "paired", "sparsity": s, "setting": setting, "trials": 200, **_ci("log10_loss", value, half)}

    sparsity = pd.DataFrame([
        cell(0.0, "lcam-below - lcam-above", 0.5), cell(0.95, "lcam-below - lcam-above", 0.5),
        cell(0.0, "lcam-above - lcam-above:shuffled", -0.2), cell(0.95, "lcam-below - lcam-below:shuffled", 0.0, 0.2),
        cell(0.0, "adagrad - momentum", 1.0), cell(0.95, "adagrad - momentum", -1.0),
        {"kind": "setting", "sparsity": 0.0, "setting": "momentum", "trials": 200, **_ci("log10_loss", -2.0, 0.1)},
    ])
    oscillation = pd.DataFrame([
        {"part": "paired", "key": "adarem - momentum", "regime": "convention", "lr": 0.02, "lr_reference": 0.02,
         "trials": 200, **_ci("Q", -0.3, 0.01)},
        {"part": "paired", "key": "adam - momentum", "regime": "matched progress", "lr": 0.02,
         "lr_reference": 0.02, "trials": 200, **_ci("Q", 0.02, 0.01)},
    ])
    rows = M.claim_rows(phase, traction, sparsity, oscillation, traction_config=tc, sparsity_config=sc,
                        oscillation_config=oc)
    verdicts = {r["id"]: r["verdict"] for r in rows}
    assert verdicts == {
        "m1.phase.loss_tells_phase.lr0.3": "holds",  # best cell: 0.9, beyond 0.5 + 0.25
        "m2.traction.lean.below": "holds",
        "m2.traction.com_drift.below": "holds",
        "m2.traction.quick_group.lcam_v1_reading": "does not hold",  # inside the margin: negligible
        "m2.traction.lean.above": "cannot tell at this n",
        "m2.traction.com_drift.above": "does not hold",
        "m2.traction.quick_group.lcam_reading": "holds",
        "m3.sparsity.orientation.non-sparse": "holds",  # (0.9, 0.95) - (0.95, 0.9) = -0.5, turned round
        "m3.sparsity.orientation.sparse": "does not hold",
        "m3.sparsity.loss_control.non-sparse": "holds",
        "m3.sparsity.loss_control.sparse": "cannot tell at this n",
        "m3.sparsity.adaptive.adagrad.non-sparse": "holds",
        "m3.sparsity.adaptive.adagrad.sparse": "holds",
        "m4.oscillation.adarem_vs_momentum.convention": "holds",
        "m4.oscillation.adam_vs_momentum.matched_progress": "does not hold",
    }
    by_id = {r["id"]: r for r in rows}
    assert by_id["m1.phase.loss_tells_phase.lr0.3"]["estimate"] == pytest.approx(0.4)
    assert by_id["m3.sparsity.orientation.non-sparse"]["estimate"] == pytest.approx(-0.5)
    assert by_id["m2.traction.quick_group.lcam_v1_reading"]["paper"] == "LCAM-v1"
    assert all(r["notebook"] == M.NOTEBOOK and r["paper"] in claims.PAPERS for r in rows)
    assert "000" not in "".join(r["claim"] + r["measured"] + r["control"] for r in rows)  # cited by name


# -- sliders, animation, benchmark ----------------------------------------------------------------


def test_slider_panel_redraws_on_change():
    pytest.importorskip("ipywidgets")
    import io

    from PIL import Image

    from lcamlab.toys.widgets import TrajectoryExplorer

    panel = TrajectoryExplorer(steps=30, trials=2)
    assert len(panel.redraw_seconds) == 1 and panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    first = panel.image.value
    panel.sliders["coupling"].value = 0.3
    assert len(panel.redraw_seconds) == 2 and panel.image.value != first
    assert [s.label for s in panel.specs()] == ["SGD+momentum 0.925", "LCAM (0.9, 0.95)", "Adam"]
    assert panel.toy().coupling[0] == pytest.approx(0.3)
    # long, fine tracks: full-width sliders stacked above the figure, log sliders with >= 200 positions
    steps = panel.slider_steps()
    assert min(steps[name] for name in ("lr", "mass_ratio", "noise")) >= 200
    assert all(slider.layout.width == "100%" for slider in panel.sliders.values())
    assert list(panel.widget.children) == [*panel.sliders.values(), panel.status, panel.image]
    # the figure scales to the width available, never beyond the width it was rendered at
    with Image.open(io.BytesIO(panel.image.value)) as png:
        assert panel.image.layout.width == "100%" and panel.image.layout.max_width == f"{png.width}px"
    with pytest.raises(ValueError, match="figure size"):
        TrajectoryExplorer(steps=30, trials=1, width=0)
    # an initial value outside a log slider's range widens the range instead of being clamped
    quiet = TrajectoryExplorer(steps=10, trials=1, noise=0.003)
    assert quiet.sliders["noise"].value == pytest.approx(0.003) and quiet.slider_steps()["noise"] >= 300


def test_gif_has_the_requested_frames(tmp_path):
    from PIL import Image

    from lcamlab.toys import run_many
    from lcamlab.toys.animation import write_trajectory_gif

    runs = run_many(SpringPair(3), [OptimizerSpec.heavy_ball(0.02), OptimizerSpec.adam(0.02)], steps=40)
    path = write_trajectory_gif(runs, tmp_path / "anim" / "t.gif", frames=5, dpi=40)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (264, 192)  # 6.6 x 4.8 in: the plane and its legend
    square = write_trajectory_gif(runs, tmp_path / "square.gif", frames=2, dpi=40, size=5.0)
    with Image.open(square) as gif:
        assert gif.size == (200, 200)
    with pytest.raises(ValueError, match=".gif"):
        write_trajectory_gif(runs, tmp_path / "t.png")
    with pytest.raises(ValueError, match="size"):
        write_trajectory_gif(runs, tmp_path / "t.gif", size=(0.0, 4.0))


def test_benchmark_runs_both_variants_on_the_same_numbers(capsys):
    from lcamlab.bench import toys as bench

    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    assert bench.main(parser.parse_args(["--trials", "6", "--steps", "30"])) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "same numbers" in out
    assert bench.main(parser.parse_args(["--toy", "chain", "--trials", "4", "--steps", "20",
                                         "--optimizer", "adam"])) == 0
    with pytest.raises(ValueError, match="--trials"):
        bench.main(parser.parse_args(["--trials", "0"]))
