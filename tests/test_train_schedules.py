"""Learning-rate schedules (000 section 4; digest section 2) and the training config."""

from __future__ import annotations

import math

import pytest

from lcamlab.train.config import TrainConfig, config_differences
from lcamlab.train.schedules import learning_rate

IPE = 391  # iterations per epoch of CIFAR at batch 128 (50 000 / 128, last batch partial)


def lr_at(schedule: str, epoch_1based: int, iteration: int = 0, epochs: int = 150, base: float = 0.1) -> float:
    return learning_rate(schedule, base, epoch_1based - 1, iteration, IPE, epochs)


# --- step (Figures 3/4): 1-31 at 0.1, 32-61 at 0.02, 62-91 at 0.004, 92-150 at 0.0008 --------------

@pytest.mark.parametrize("epoch, expected", [
    (1, 0.1), (31, 0.1),
    (32, 0.1 * 0.2), (61, 0.1 * 0.2),
    (62, 0.1 * 0.2 * 0.2), (91, 0.1 * 0.2 * 0.2),
    (92, 0.1 * 0.2 * 0.2 * 0.2), (150, 0.1 * 0.2 * 0.2 * 0.2),
])
def test_step_schedule_boundaries_exact(epoch, expected):
    # Exactly the float arithmetic of MultiStepLR / the authors' in-place `lr *= 0.2`.
    for iteration in (0, IPE - 1):
        assert lr_at("step", epoch, iteration) == expected
    assert lr_at("step", epoch) == pytest.approx({1: 0.1, 31: 0.1, 32: 0.02, 61: 0.02, 62: 0.004,
                                                  91: 0.004, 92: 0.0008, 150: 0.0008}[epoch], rel=1e-14)


# --- lcam-exp (Figure 5): 0.1 for 31 epochs, then lr *= 0.99985 before every iteration --------------

def test_lcam_exp_boundaries_exact():
    assert lr_at("lcam-exp", 1) == 0.1
    assert lr_at("lcam-exp", 31, IPE - 1) == 0.1
    # first iteration of (1-based) epoch 32: one decay already applied
    assert lr_at("lcam-exp", 32, 0) == 0.1 * 0.99985
    assert lr_at("lcam-exp", 32, 1) == 0.1 * 0.99985 ** 2
    assert lr_at("lcam-exp", 33, 0) == 0.1 * 0.99985 ** (IPE + 1)
    assert lr_at("lcam-exp", 150, IPE - 1) == 0.1 * 0.99985 ** (119 * IPE)


def test_lcam_exp_matches_the_authors_in_place_loop():
    lr, epochs, ipe = 0.1, 40, 7
    for epoch in range(epochs):
        for iteration in range(ipe):
            if epoch >= 31:
                lr *= 0.99985  # the authors: before every iteration of epoch 32 onwards
            assert learning_rate("lcam-exp", 0.1, epoch, iteration, ipe, epochs) == pytest.approx(lr, rel=1e-13)


# --- wrn: x0.2 at 60/120/160 of 200 ----------------------------------------------------------------

@pytest.mark.parametrize("epoch0, drops", [(0, 0), (59, 0), (60, 1), (119, 1), (120, 2), (159, 2), (160, 3), (199, 3)])
def test_wrn_schedule_boundaries_exact(epoch0, drops):
    expected = 0.1
    for _ in range(drops):
        expected = expected * 0.2
    assert learning_rate("wrn", 0.1, epoch0, 0, IPE, 200) == expected


def test_cosine_schedule():
    assert learning_rate("cosine", 0.1, 0, 0, IPE, 200) == 0.1
    assert learning_rate("cosine", 0.1, 100, 0, IPE, 200) == pytest.approx(0.05, rel=1e-12)
    last = learning_rate("cosine", 0.1, 199, IPE - 1, IPE, 200)
    assert 0 < last < 1e-7
    values = [learning_rate("cosine", 0.1, e, 0, IPE, 200) for e in range(200)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("args, message", [
    (("linear", 0.1, 0, 0, 10, 10), "Invalid schedule"),
    (("step", 0.0, 0, 0, 10, 10), "Invalid base learning rate"),
    (("step", 0.1, -1, 0, 10, 10), "Invalid epoch"),
    (("step", 0.1, 0, 10, 10, 10), "Invalid iteration"),
    (("step", 0.1, 0, 0, 0, 10), "Invalid iterations_per_epoch"),
])
def test_schedule_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        learning_rate(*args)


# --- the configuration -----------------------------------------------------------------------------

def test_config_defaults_are_the_papers():
    config = TrainConfig()
    assert (config.dataset, config.depth, config.widen, config.dropout) == ("cifar10", 28, 10, 0.0)
    assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == (150, 128, 0.1, 5e-4)
    assert (config.optimizer, config.momentum, config.schedule) == ("lcam", (0.9, 0.95), "step")
    assert config.normalization == "imagenet"


def test_from_overrides_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match=r"Unknown training config key: 'epoch'.*epochs"):
        TrainConfig.from_overrides({"epoch": 3})
    with pytest.raises(ValueError, match="Invalid epochs: 0"):
        TrainConfig.from_overrides(epochs=0)
    with pytest.raises(ValueError, match="Invalid momentum above value: 1.0"):
        TrainConfig.from_overrides(momentum=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid momentum for sgd"):
        TrainConfig.from_overrides(optimizer="sgd", momentum=(0.9, 0.95))
    with pytest.raises(ValueError, match="Invalid depth: 12"):
        TrainConfig.from_overrides(depth=12)
    with pytest.raises(ValueError, match="Invalid optimizer: 'lion'"):
        TrainConfig.from_overrides(optimizer="lion")


def test_config_round_trip_and_differences():
    config = TrainConfig.from_overrides({"batch-size": 64, "momentum": [0.93, 0.9], "device": "cpu"})
    assert config.batch_size == 64 and config.momentum == (0.93, 0.9)
    again = TrainConfig.from_dict(config.to_dict())
    assert again == config
    # location fields (device, folders) never count as a different experiment
    moved = config.replace(device="cuda", runs_dir="/elsewhere", data_dir="/x")
    assert config_differences(config.to_dict(), moved.to_dict()) == {}
    assert config_differences(config.to_dict(), config.replace(epochs=3).to_dict()) == {"epochs": (150, 3)}
    assert math.isclose(config.replace(lr=0.05).lr, 0.05)


# ----------------------------------------------------------------------------- scaled schedules (Fashion-MNIST)


def test_step_scaled_keeps_the_papers_drops_at_150_and_scales_them():
    from lcamlab.train.schedules import STEP_MILESTONES, scaled_milestones

    assert scaled_milestones(150) == STEP_MILESTONES
    assert scaled_milestones(12) == (2, 5, 7)
    assert scaled_milestones(15) == (3, 6, 9)
    assert scaled_milestones(3) == (1, 1, 2)  # never a drop before the first epoch ends
    for epoch in range(150):
        assert learning_rate("step-scaled", 0.1, epoch, 0, 391, 150) == learning_rate("step", 0.1, epoch, 0, 391, 150)
    rates = [learning_rate("step-scaled", 0.1, e, 5, 63, 12) for e in range(12)]
    assert rates[:2] == [0.1, 0.1] and rates[2] == 0.1 * 0.2 and rates[5] == 0.1 * 0.2 * 0.2
    assert rates[7] == 0.1 * 0.2 * 0.2 * 0.2 and rates[-1] == rates[7]


def test_lcam_exp_scaled_is_the_paper_at_150_and_ends_at_the_papers_rate():
    from lcamlab.train.schedules import scaled_exp_decay, scaled_exp_start

    for epoch, iteration in ((0, 0), (30, 390), (31, 0), (31, 5), (100, 200), (149, 390)):
        assert learning_rate("lcam-exp-scaled", 0.1, epoch, iteration, 391, 150) == pytest.approx(
            learning_rate("lcam-exp", 0.1, epoch, iteration, 391, 150), rel=1e-12)
    assert scaled_exp_start(12) == 2 and scaled_exp_decay(150, 391) == pytest.approx(0.99985, rel=1e-15)
    paper_end = learning_rate("lcam-exp", 0.1, 149, 390, 391, 150)
    assert learning_rate("lcam-exp-scaled", 0.1, 11, 62, 63, 12) == pytest.approx(paper_end, rel=1e-9)
    assert learning_rate("lcam-exp-scaled", 0.1, 1, 62, 63, 12) == 0.1  # constant before the decay
    assert learning_rate("lcam-exp-scaled", 0.1, 2, 0, 63, 12) < 0.1


def test_config_accepts_the_new_fields_and_older_stored_configs():
    config = TrainConfig(schedule="step-scaled", dataset="fashion-mnist", arch="fmnet")
    assert TrainConfig.from_dict(config.to_dict()) == config
    old = TrainConfig().to_dict()
    for name in ("arch", "control", "control_reference", "control_values", "augment_pad"):
        old.pop(name)
    assert config_differences(old, TrainConfig().to_dict()) == {}  # added later, with their defaults
    assert "arch" in config_differences(old, TrainConfig(arch="fmnet").to_dict())
