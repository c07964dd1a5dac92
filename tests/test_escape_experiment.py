"""The eager escape runner (batched equals looped), the saddle experiment: bad parameters, the cache, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lcamlab import cli
from lcamlab.escape import cache
from lcamlab.escape.config import EscapeConfig, default_optimizers
from lcamlab.escape.experiment import make_landscape, run_escape, trial_layout
from lcamlab.escape.regions import saddle_region, valley_region
from lcamlab.escape.simulate import simulate_batched, simulate_looped
from lcamlab.experiments.cache import CacheError, table_path
from lcamlab.experiments.registry import OptimizerSpec

SETTINGS = {spec.key: spec for spec in default_optimizers()}


def _small(**changes) -> EscapeConfig:
    # a saddle config; the valley-region tests below use it only for its simulation options
    base = dict(sharpness=(3.0, 5.0), trials=3, budget=150, n_samples=2000, dtype="float64", chunk=64, warmup=25)
    base.update(changes)
    return EscapeConfig(**base)


def _both(config: EscapeConfig, setting: OptimizerSpec, experiment: str = "valley"):
    landscape = make_landscape(config)
    region = valley_region(landscape) if experiment == "valley" else saddle_region(landscape, config.radius)
    ks, _ = trial_layout(config)
    sqrt_k = torch.as_tensor(np.sqrt(ks))
    common = config.simulation_options()
    return (simulate_batched(landscape, setting, sqrt_k, region, **common),
            simulate_looped(landscape, setting, sqrt_k, region, **common))


def _assert_same(batched, looped):
    np.testing.assert_array_equal(batched.escape_step, looped.escape_step)
    censored = ~looped.escaped
    np.testing.assert_allclose(batched.final_theta[censored], looped.final_theta[censored], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("key", list(SETTINGS))
def test_batched_equals_looped_valley(key):
    # LCAM with a short epoch so that new_epoch() and the running-mean reset are exercised
    config = _small(epoch_length=40, sharpness=(5.0, 12.0), budget=200)
    batched, looped = _both(config, SETTINGS[key])
    assert 0 < batched.escaped.sum()  # something happens inside the budget
    _assert_same(batched, looped)


@pytest.mark.parametrize("key", ["sgd", "adai", "lcam-below"])
def test_batched_equals_looped_saddle(key):
    config = _small(sharpness=(2.0, 4.0), budget=150)
    batched, looped = _both(config, SETTINGS[key], "saddle")
    assert batched.escaped.sum() >= 4
    _assert_same(batched, looped)


def test_batched_equals_looped_batches_and_ema():
    config = _small(batch_size=3, lcam_mean="ema", sharpness=(5.0,), budget=200)
    for key in ("momentum", "lcam-above"):
        batched, looped = _both(config, SETTINGS[key])
        _assert_same(batched, looped)


def test_saddle_exits_are_censored_at_the_budget_and_seeds_reproduce():
    config = _small(optimizers=(SETTINGS["sgd"],), sharpness=(1.0,), trials=20, budget=200)
    frame, info = run_escape(config)
    again, _ = run_escape(config)
    assert frame.equals(again)
    other, _ = run_escape(config.replace(seed=1))
    assert not np.array_equal(other["escape_step"], frame["escape_step"])
    assert frame["escaped"].any()
    assert (~frame["escaped"]).any()  # some censored trials: the budget rule below is exercised
    assert (frame.loc[frame["escaped"], "escape_step"] <= 200).all()
    assert (frame.loc[~frame["escaped"], "escape_step"] == 201).all()
    assert (frame["exposure"] == np.minimum(frame["escape_step"], 200)).all()
    # the start is the saddle of the actual training loss: coordinate 0 on its ridge (not the textbook
    # 0.1567), the others at the bottom of their shallow valley
    points = info["critical_points_u"]
    assert info["start_u"][0] == points["boundary"][0] and 0.2 < info["start_u"][0] < 0.3
    assert info["start_u"][1:] == points["shallow_min"][1:]
    assert (frame["hessian"] < 0).all()


@pytest.mark.parametrize("changes, message", [
    (dict(sharpness=(2.0, 0.0)), "Invalid sharpness k: 0.0"),
    (dict(sharpness=(-1.0,)), "Invalid sharpness k: -1.0"),
    (dict(budget=0), "Invalid budget: 0"),
    (dict(trials=0), "Invalid number of trials: 0"),
    (dict(noise_scale=0.0), "Unreachable boundary"),
    (dict(criterion="most"), "Invalid criterion"),
    (dict(criterion="all"), "Invalid criterion"),  # the retired valley experiment's option
    (dict(batch_size=5000), "Invalid batch size"),
    (dict(dtype="float16"), "Invalid dtype"),
    (dict(warmup=-1), "Invalid warm-up"),
    (dict(experiment="valley"), r"sharp-valley design: `lcamlab escape run`"),
])
def test_bad_parameters_raise_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        _small(**changes)


def test_unreachable_boundaries_raise():
    with pytest.raises(ValueError, match="Unreachable valley boundary"):
        run_escape(_small(noise_scale=2.0))
    with pytest.raises(ValueError, match="Unreachable saddle-neighbourhood boundary"):
        run_escape(_small(radius=5.0))
    with pytest.raises(ValueError, match="learning rate"):
        OptimizerSpec("sgd", 0.0)


def test_cache_hit_new_file_and_refusal(tmp_path):
    config = _small(optimizers=(SETTINGS["sgd"], SETTINGS["adam"]), trials=2, budget=60)
    first = cache.load_or_run(config, tmp_path)
    assert not first.from_cache and first.path.parent == tmp_path / "escape"
    # the key is every field of the config and the table version
    assert first.path == table_path("saddle", config.to_config(), tmp_path / "escape", version=cache.VERSION)
    sidecar = json.loads(first.path.with_suffix(".json").read_text())
    assert sidecar["seed"] == 0 and sidecar["config"]["budget"] == 60 and "git_commit" in sidecar
    assert set(sidecar["seconds_per_optimizer"]) == {"sgd", "adam"} and "critical_points_u" in sidecar
    second = cache.load_or_run(config, tmp_path)
    assert second.from_cache
    assert second.frame.equals(first.frame)
    assert cache.load_result(first.path).config == config
    third = cache.load_or_run(config.replace(seed=5), tmp_path)
    assert third.path != first.path and len(list((tmp_path / "escape").glob("*.csv"))) == 2
    sidecar["config"]["budget"] = 61
    first.path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CacheError, match="different configuration"):
        cache.load_or_run(config, tmp_path, recompute=False)
    # by default the mismatching entry is moved aside (nothing lost) and recomputed: the same numbers
    fourth = cache.load_or_run(config, tmp_path)
    assert not fourth.from_cache and fourth.frame.equals(first.frame)
    assert len(list((tmp_path / "escape").glob("saddle_*.damaged-*.csv"))) == 1
    assert not first.saddle().empty


def test_config_round_trips_through_its_description():
    config = _small(optimizers=tuple(SETTINGS.values()), lcam_mean="ema")
    description = json.loads(json.dumps(config.to_config()))
    assert EscapeConfig.from_config(description) == config
    assert [item["key"] for item in description["optimizers"]] == list(SETTINGS)
    with pytest.raises(ValueError, match="unknown field"):
        EscapeConfig.from_config({**description, "temperature": 1.0})


def test_command_line(tmp_path, capsys):
    args = ["escape", "saddle", "--sharpness", "1,2,4", "--trials", "3", "--budget", "100", "--optimizers",
            "sgd,adam", "--samples", "2000", "--warmup", "10", "--data-dir", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "Iterations to leave the saddle" in out and "adam" in out and "saved:" in out
    assert cli.main(args) == 0
    assert "cached:" in capsys.readouterr().out
    saved = next((tmp_path / "escape").glob("saddle_*.csv"))
    assert cli.main(["escape", "show", str(saved)]) == 0
    assert "|lambda|^p" in capsys.readouterr().out
    assert cli.main(["escape", "points", "--dim", "2", "--samples", "1000"]) == 0
    capsys.readouterr()
    assert cli.main(["escape", "saddle", "--sharpness", "2,-1", "--data-dir", str(tmp_path)]) == 2
    assert "Invalid sharpness k: -1.0" in capsys.readouterr().err
    assert cli.main(["escape", "saddle", "--budget", "0", "--data-dir", str(tmp_path)]) == 2
    assert "Invalid budget: 0" in capsys.readouterr().err
    assert cli.main(["escape", "show", str(tmp_path / "missing.csv")]) == 2
    with pytest.raises(SystemExit) as exit_info:  # the first valley experiment is retired: `escape run` is the valley
        cli.main(["escape", "valley"])
    assert exit_info.value.code == 2 and "invalid choice: 'valley'" in capsys.readouterr().err
    for command in (["escape", "--help"], ["escape", "saddle", "--help"],
                    ["escape", "points", "--help"], ["escape", "show", "--help"], ["bench", "escape", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(command)
        assert exit_info.value.code == 0
    assert "--sharpness" in capsys.readouterr().out


def test_bench_runs_and_agrees(capsys):
    from lcamlab.bench import escape as bench

    rows = bench.compare(_small(optimizers=(SETTINGS["sgd"], SETTINGS["lcam-above"]), trials=4, budget=100),
                         loop_trials=1, log=None)
    assert all(row["agree"] for row in rows)
    assert all(row["speedup"] > 0 for row in rows)


def test_runner_bench_times_both_runners_on_one_and_more_threads():
    from lcamlab.bench import escape as bench

    rows = bench.compare_runners(trials=64, steps=32, repeats=1, keys=("sgd", "lcam-above"), threads=2, log=None)
    assert [row["optimizer"] for row in rows] == ["sgd", "lcam-above"]
    for row in rows:
        assert row["threads"] == 2
        assert all(row[name] > 0 for name in ("eager_1", "eager_n", "fused_1", "fused_n"))
        assert row["same_threads"] == pytest.approx(row["fused_1"] / row["eager_1"])
        assert row["machine"] == pytest.approx(row["fused_n"] / max(row["eager_1"], row["eager_n"]))


def test_the_jax_yardstick_escapes_at_the_fused_runners_rate():
    pytest.importorskip("jax", reason="the JAX comparison of `lcamlab bench escape --jax` needs jax installed")
    from lcamlab.bench import escape as bench
    from lcamlab.escape.design import DesignConfig, make_design_landscape, sharp_valley_region
    from lcamlab.escape.fused import simulate_fused

    design = DesignConfig()
    landscape = make_design_landscape(design)
    region = sharp_valley_region(landscape)
    run = bench.jax_sgd_runner(landscape, region, lr=design.lr("sgd"), trials=4096, steps=2048)
    jax_escaped = (run() > 0).mean()
    fused_escaped = simulate_fused(landscape, design.spec("sgd"), np.ones(4096), region, budget=2048,
                                   drop=False).escaped.mean()
    # the same work on two streams: escape fractions within 4 binomial standard errors of each other
    p = (jax_escaped + fused_escaped) / 2
    assert p > 0.01 and abs(jax_escaped - fused_escaped) < 4 * np.sqrt(2 * p * (1 - p) / 4096)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_the_cpu_statistics():
    config = _small(optimizers=(SETTINGS["sgd"], SETTINGS["lcam-above"]), trials=200, sharpness=(5.0,),
                    budget=400, dtype="float32")
    cpu, _ = run_escape(config)
    gpu, _ = run_escape(config.replace(device="cuda"))
    for key in ("sgd", "lcam-above"):
        a = cpu[cpu.optimizer == key]
        b = gpu[gpu.optimizer == key]
        rate_cpu = a.escaped.sum() / a.exposure.sum()
        rate_gpu = b.escaped.sum() / b.exposure.sum()
        assert rate_gpu == pytest.approx(rate_cpu, rel=0.35)  # different random streams, same law
