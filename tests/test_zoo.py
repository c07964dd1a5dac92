"""The optimizer zoo: every optimizer makes progress on every landscape; LCAM records its phases."""

from __future__ import annotations

import numpy as np
import pytest

from lcamlab import zoo


@pytest.mark.parametrize("landscape", list(zoo.LANDSCAPES))
def test_every_optimizer_descends(landscape):
    runs = zoo.run_zoo(landscape, steps=150, seed=1)
    assert set(runs) == set(zoo.ZOO_OPTIMIZERS)
    for key, run in runs.items():
        assert run.path.shape == (151, 2) and np.isfinite(run.path).all(), key
        assert run.true_losses[-1] < run.true_losses[0], f"{key} did not descend on {landscape}"


def test_lcam_phases_are_recorded_against_the_epoch_mean():
    run = zoo.run_zoo("quadratic", ["lcam-above"], steps=50, epoch_length=10)["lcam-above"]
    assert run.below.shape == (50,) and run.running_mean.shape == (50,)
    for t in range(50):
        start = t - t % 10
        mean = run.losses[start:t + 1].mean()
        assert run.running_mean[t] == pytest.approx(mean, rel=1e-12)
        assert run.below[t] == (run.losses[t] < mean)
    assert not run.below[::10].any()  # first step of each epoch: "above"


def test_same_seed_same_numbers():
    a = zoo.run_zoo("saddle", ["adam", "lcam-below"], steps=40, seed=3)
    b = zoo.run_zoo("saddle", ["adam", "lcam-below"], steps=40, seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key].path, b[key].path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(landscape="himmelblau"), "Invalid landscape"),
        (dict(landscape="quadratic", steps=0), "Invalid steps"),
        (dict(landscape="quadratic", noise=-1.0), "Invalid noise"),
        (dict(landscape="quadratic", epoch_length=0), "Invalid epoch_length"),
        (dict(landscape="quadratic", optimizers=["lbfgs"]), "Invalid optimizer"),
    ],
)
def test_bad_arguments(kwargs, match):
    landscape = kwargs.pop("landscape")
    with pytest.raises(ValueError, match=match):
        zoo.run_zoo(landscape, **kwargs)


def test_divergence_is_a_clear_error():
    with pytest.raises(FloatingPointError, match="sgd diverged on quadratic.*lower lr_scale"):
        zoo.run_zoo("quadratic", ["sgd"], steps=2000, lr_scale=40.0)
