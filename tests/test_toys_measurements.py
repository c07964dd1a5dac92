"""lcamlab.toys measurements: known answers, statistics, caching, verdicts, sliders, GIF, benchmark."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

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
    assert list(frame["asymmetry"]) == [-0.05, 0.0, 0.05]
    assert frame.loc[1, "com_drift"] == 0.0  # fixed momentum against itself
    again, _, path_again, cached_again = M.measure_traction(config, data_dir=tmp_path)
    assert cached_again and path_again == path
    pd.testing.assert_frame_equal(frame, again, check_dtype=False)
    other = dataclasses.replace(config, seed=1)
    _, _, other_path, other_cached = M.measure_traction(other, data_dir=tmp_path)
    assert not other_cached and other_path != path and path.exists()


def test_small_measurements_and_plots(tmp_path):
    """Every measurement and figure function runs end to end on small settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lcamlab.toys import plots, run_many, suite

    phase, *_ = M.measure_phase_agreement(
        M.PhaseAgreementConfig(mass_ratios=(2.0, 20.0), noises=(0.05,), learning_rates=(0.3,), trials_per_cell=6,
                               steps=80, steps_per_epoch=20), data_dir=tmp_path)
    assert len(phase) == 2 and phase["trials"].tolist() == [6, 6]
    assert bool(((phase["agreement_low"] <= phase["agreement"]) & (phase["agreement"] <= phase["agreement_high"])).all())
    sparsity, *_ = M.measure_sparsity_grid(
        M.SparsityConfig(sparsities=(0.0, 0.9), trials_per_cell=6, steps=40, budget=20, average_last=6),
        data_dir=tmp_path)
    assert len(sparsity) == 10 and set(sparsity["key"]) == {"momentum", "lcam-above", "lcam-below", "adagrad", "adam"}
    assert (sparsity[sparsity["key"] == "lcam-above"]["vs_above"] == 0).all()
    drift, *_ = M.measure_traction(
        M.TractionConfig(asymmetries=(-0.05, 0.0, 0.05), trials=6, steps=60, average_last=20), data_dir=tmp_path)
    toy = SpringPair(6)
    runs = run_many(toy, suite(["momentum", "lcam-above", "adam"], {"momentum": 0.02, "lcam-above": 0.02,
                                                                   "adam": 0.02}), steps=60)
    q, *_ = M.measure_oscillation(runs, data_dir=tmp_path)
    assert bool((q["Q"] >= 1).all())
    claims = M.summarise_claims(phase, drift, sparsity, q)
    assert len(claims) >= 7 and claims["verdict"].str.len().min() > 0
    for fig in (plots.plot_trajectories(runs), plots.plot_loss_phases(runs["LCAM (0.9, 0.95)"], first_step=20,
                                                                          last_step=60),
                plots.plot_phase_agreement(phase), plots.plot_drift(drift), plots.plot_sparsity(sparsity),
                plots.plot_oscillation(q)):
        assert fig.axes
        plt.close(fig)


def _interval(value: float, half: float) -> dict[str, float]:
    return {"": value, "_low": value - half, "_high": value + half}


def test_verdicts_follow_the_confidence_intervals():
    def row(**cis: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, (value, half) in cis.items():
            out.update({f"{key}{suffix}": v for suffix, v in _interval(value, half).items()})
        return out

    phase = pd.DataFrame([
        {"lr": 0.3, "mass_ratio": 10.0, "noise": 0.03, **row(agreement=(0.95, 0.01), sign_agreement=(0.5, 0.01),
                                                                eq12_r2=(0.9, 0.02))},
        {"lr": 0.3, "mass_ratio": 10.0, "noise": 1.0, **row(agreement=(0.5, 0.01), sign_agreement=(0.5, 0.01),
                                                               eq12_r2=(0.0, 0.01))},
    ])
    drift = pd.DataFrame([
        {"asymmetry": -0.05, **row(com_drift=(0.03, 0.001), lean_drift=(0.02, 0.001))},
        {"asymmetry": 0.05, **row(com_drift=(-0.02, 0.001), lean_drift=(-0.01, 0.001))},
    ])
    base = {"iters": 10.0, "reached": 1.0}
    sparsity = pd.DataFrame([
        {"sparsity": 0.0, "optimizer": "LCAM (0.95, 0.9)", "key": "lcam-below", **base,
         **row(log10_loss=(-1.0, 0.1), vs_above=(0.5, 0.1), iters_vs_above=(2.0, 1.0))},
        {"sparsity": 0.9, "optimizer": "LCAM (0.95, 0.9)", "key": "lcam-below", **base,
         **row(log10_loss=(-1.0, 0.1), vs_above=(0.1, 0.05), iters_vs_above=(-3.0, 1.0))},
    ])
    q = pd.DataFrame([{"optimizer": "SGD+momentum 0.9", "key": "momentum", **row(Q=(1.7, 0.01))},
                      {"optimizer": "AdaRem", "key": "adarem", **row(Q=(1.2, 0.01))},
                      {"optimizer": "Adam", "key": "adam", **row(Q=(1.5, 0.01))}])
    claims = M.summarise_claims(phase, drift, sparsity, q).set_index("claim")["verdict"]
    assert claims["loss below/above its epoch mean tells the light weight's phase"].startswith("weak: above chance in 1/2")
    assert claims["centre-of-mass drift flips sign with the momentum orientation"].startswith("holds; accelerating below")
    assert claims["non-sparse data favour accelerating the non-sparse (above) phase"] == \
        "loss at budget: holds; iterations to target: holds"
    assert claims["sparse data favour accelerating the sparse (below) phase"] == \
        "loss at budget: contradicted; iterations to target: holds"
    assert claims["AdaRem oscillates less than SGD+momentum and Adam"] == "holds"


# -- sliders, animation, benchmark ----------------------------------------------------------------


def test_slider_panel_redraws_on_change():
    pytest.importorskip("ipywidgets")
    from lcamlab.toys.widgets import TrajectoryExplorer

    panel = TrajectoryExplorer(steps=30, trials=2)
    assert len(panel.redraw_seconds) == 1 and panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    first = panel.image.value
    panel.sliders["coupling"].value = 0.3
    assert len(panel.redraw_seconds) == 2 and panel.image.value != first
    assert [s.label for s in panel.specs()] == ["SGD+momentum 0.925", "LCAM (0.9, 0.95)", "Adam"]
    assert panel.toy().coupling[0] == pytest.approx(0.3)


def test_gif_has_the_requested_frames(tmp_path):
    from PIL import Image

    from lcamlab.toys import run_many
    from lcamlab.toys.animation import write_trajectory_gif

    runs = run_many(SpringPair(3), [OptimizerSpec.heavy_ball(0.02), OptimizerSpec.adam(0.02)], steps=40)
    path = write_trajectory_gif(runs, tmp_path / "anim" / "t.gif", frames=5, dpi=40)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (200, 200)
    with pytest.raises(ValueError, match=".gif"):
        write_trajectory_gif(runs, tmp_path / "t.png")


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
