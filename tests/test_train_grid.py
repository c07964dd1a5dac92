"""Figure run sets: the paper's groups, deterministic names, skip/resume/train, conflicts, the command."""

from __future__ import annotations

import json
import shlex

import pytest

from lcamlab import cli
from lcamlab.data import write_synthetic_cifar
from lcamlab.train.grid import (
    PAPER_GROUPS,
    GridConflictError,
    figure_configs,
    grid_command,
    grid_status,
    run_grid,
    run_id_for,
)
from lcamlab.train.runner import train


def test_figure_configs_are_the_papers_groups():
    fig3 = figure_configs("fig3", seeds=2)
    assert [(c.momentum, c.seed) for c in fig3] == [(pair, s) for pair in PAPER_GROUPS["fig3"] for s in (0, 1)]
    assert PAPER_GROUPS["fig3"] == [(0.9, 0.9), (0.95, 0.95), (0.95, 0.9), (0.9, 0.95)]
    assert {(c.dataset, c.schedule, c.epochs, c.optimizer, c.lr, c.batch_size) for c in fig3} == {
        ("cifar10", "step", 150, "lcam", 0.1, 128)}
    assert {c.dataset for c in figure_configs("fig4")} == {"cifar100"}
    fig5 = figure_configs("fig5", seeds=[3])
    assert [(c.dataset, c.momentum, c.schedule) for c in fig5] == [
        ("cifar10", (0.9, 0.9), "lcam-exp"), ("cifar10", (0.9, 0.95), "lcam-exp"),
        ("cifar100", (0.9, 0.9), "lcam-exp"), ("cifar100", (0.93, 0.9), "lcam-exp")]
    assert [c.run_id for c in fig5][1] == "fig5-cifar10-m0.9-0.95-s3"
    assert run_id_for(fig3[0]) == "fig3-cifar10-m0.9-0.9-s0"
    assert len({c.run_id for c in figure_configs("fig4", seeds=3)}) == 12
    with pytest.raises(ValueError, match="Cannot override momentum"):
        figure_configs("fig3", momentum=(0.9, 0.9))
    with pytest.raises(ValueError, match="Invalid figure: 'fig6'"):
        figure_configs("fig6")
    with pytest.raises(ValueError, match="Invalid seeds: 0"):
        figure_configs("fig3", seeds=0)


def parse_grid_command(command: str):
    """The run set a `lcamlab grid ...` command line would build."""
    from lcamlab.train.grid_cli import _seeds
    from lcamlab.train.cli import config_overrides

    argv = shlex.split(command)
    assert argv[:2] == ["lcamlab", "grid"]
    args = cli.build_parser(argv[1:]).parse_args(argv[1:])
    overrides = config_overrides(args)
    dataset = overrides.pop("dataset", None)
    return figure_configs(args.grid_figure, dataset=dataset, seeds=_seeds(args), **overrides)


@pytest.mark.parametrize("kwargs", [
    dict(figure="fig3", seeds=3),
    dict(figure="fig5", dataset="cifar100", seeds=[4, 5], epochs=120, amp=False, lr=0.05,
         runs_dir="/tmp/some runs", data_dir="/data/cifar"),
    dict(figure="fig4", seeds=[0, 2, 7], depth=16, widen=4, compile=True, train_subset=1000),
])
def test_grid_command_rebuilds_the_same_run_set(kwargs):
    kwargs = dict(kwargs)
    figure = kwargs.pop("figure")
    command = grid_command(figure, **kwargs)
    assert command.startswith(f"lcamlab grid {figure} ")
    runs_dir = kwargs.pop("runs_dir", "data/runs")
    expected = figure_configs(figure, runs_dir=runs_dir, **kwargs)
    assert [c.to_dict() for c in parse_grid_command(command)] == [c.to_dict() for c in expected]


def test_run_grid_skips_resumes_trains_and_reports_conflicts(tmp_path, capsys):
    data_dir = tmp_path / "cifar"
    write_synthetic_cifar(data_dir, "cifar10", n_train=32, n_test=16, seed=1, form="folder")
    runs = tmp_path / "runs"
    tiny = dict(data_dir=str(data_dir), depth=10, widen=1, epochs=2, batch_size=16, eval_batch_size=16,
                train_subset=16, test_subset=16, device="cpu", lr=0.05)
    configs = figure_configs("fig3", seeds=1, runs_dir=str(runs), **tiny)
    finished, partial = configs[0], configs[1]
    train(finished, progress="none")

    class Interrupted(Exception):
        pass

    def interrupt(epoch, run_dir, row):
        raise Interrupted

    with pytest.raises(Interrupted):
        train(partial, progress="none", on_epoch_end=interrupt)  # stops after epoch 1's checkpoint
    finished_dir = runs / finished.run_id
    stamp = (finished_dir / "metrics.jsonl").stat().st_mtime_ns

    status = grid_status(configs)
    assert list(status["state"]) == ["finished", "partial", "missing", "missing"]
    assert list(status["epochs_done"]) == [2, 1, 0, 0]

    messages = []
    run_dirs = run_grid(configs, progress="none", log=messages.append)
    assert [p.name for p in run_dirs] == [c.run_id for c in configs]
    assert "finished, skipped" in messages[0] and "resuming after epoch 1" in messages[1]
    assert "training" in messages[2] and "training" in messages[3]
    assert list(grid_status(configs)["state"]) == ["finished"] * 4
    assert (finished_dir / "metrics.jsonl").stat().st_mtime_ns == stamp  # untouched
    sessions = json.loads((runs / partial.run_id / "config.json").read_text())["sessions"]
    assert [s["start_epoch"] for s in sessions] == [0, 1]

    # the same figure with another epoch count: reported, nothing mixed or trained
    longer = figure_configs("fig3", seeds=1, runs_dir=str(runs), **{**tiny, "epochs": 3})
    with pytest.raises(GridConflictError, match=r"epochs: stored 2 vs requested 3.*another\s+--runs-dir"):
        run_grid(longer, progress="none", log=None)
    assert set(grid_status(longer)["state"]) == {"conflict"}

    # the CLI: --status lists the runs; a conflict is one clear line, exit 2
    flags = ["--runs-dir", str(runs), "--data-dir", str(data_dir), "--depth", "10", "--widen", "1",
             "--epochs", "2", "--batch-size", "16", "--eval-batch-size", "16", "--train-subset", "16",
             "--test-subset", "16", "--device", "cpu", "--lr", "0.05"]
    assert cli.main(["grid", "fig3", "--seeds", "1", "--status", *flags]) == 0
    out = capsys.readouterr().out
    assert "fig3-cifar10-m0.95-0.9-s0" in out and "4 finished" in out
    assert cli.main(["grid", "fig3", "--seeds", "1", *flags]) == 0  # everything done: all skipped
    capsys.readouterr()
    status = cli.main(["grid", "fig3", "--seeds", "1", *flags[:-2], "--lr", "0.1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "lr: stored 0.05 vs requested 0.1" in err[0]


# ----------------------------------------------------------------------------- Fashion-MNIST run sets


def test_fmnist_run_sets_names_groups_and_order():
    from lcamlab.train.grid import FMNIST_DEFAULTS, RUN_SETS, run_set_names

    assert {"fig3-fmnist", "fig5-fmnist", "controls-fmnist", "fmnist"} <= set(run_set_names())
    fig3 = figure_configs("fig3-fmnist", seeds=2)
    assert [(c.momentum, c.seed) for c in fig3] == [(p, s) for s in (0, 1) for p in PAPER_GROUPS["fig3"]]
    assert {(c.dataset, c.schedule, c.arch, c.figure, c.epochs, c.train_subset, c.runs_dir) for c in fig3} == {
        ("fashion-mnist", "step-scaled", "fmnet", "fig3", FMNIST_DEFAULTS["epochs"], FMNIST_DEFAULTS["train_subset"],
         "data/runs-fmnist")}
    assert fig3[3].run_id == "fig3-fashion-mnist-m0.9-0.95-s0"
    fig5 = figure_configs("fig5-fmnist", seeds=[4], epochs=6)
    assert [(c.momentum, c.schedule, c.epochs) for c in fig5] == [
        ((0.9, 0.9), "lcam-exp-scaled", 6), ((0.9, 0.95), "lcam-exp-scaled", 6), ((0.95, 0.9), "lcam-exp-scaled", 6)]
    controls = figure_configs("controls-fmnist", seeds=1, runs_dir="/nonexistent")
    assert [(c.control, c.control_reference, c.control_values) for c in controls] == [
        ("shuffled", "fig5-fashion-mnist-m0.9-0.95-s0", None), ("matched", "fig5-fashion-mnist-m0.9-0.95-s0", None)]
    assert controls[0].run_id == "fig5-fashion-mnist-m0.9-0.95-shuffled-s0"
    # the whole grid, seed by seed, each control after its reference
    ids = [c.run_id for c in figure_configs("fmnist", seeds=2)]
    per_seed = len(RUN_SETS["fig3-fmnist"]["groups"]) + len(RUN_SETS["fig5-fmnist"]["groups"]) + \
        len(RUN_SETS["controls-fmnist"]["controls"])
    assert len(ids) == 2 * per_seed == len(set(ids))
    assert all(i.endswith("-s0") for i in ids[:per_seed])
    assert ids.index("fig5-fashion-mnist-m0.9-0.95-s1") < ids.index("fig5-fashion-mnist-m0.9-0.95-shuffled-s1")
    with pytest.raises(ValueError, match="the run set is fashion-mnist"):
        figure_configs("fig3-fmnist", dataset="cifar10")
    with pytest.raises(ValueError, match="Cannot override control"):
        figure_configs("controls-fmnist", control="matched")


def test_control_values_and_schedule():
    from lcamlab.experiments.controls import bernoulli_schedule
    from lcamlab.train.config import TrainConfig
    from lcamlab.train.grid import control_values_from
    from lcamlab.train.runner import control_schedule

    rows = [{"epoch": 1, "phase_below": 0.25}, {"epoch": 2, "phase_below": 0.75}]
    assert control_values_from(rows, "shuffled", (0.9, 0.95), 2) == (0.25, 0.75)
    mean = ((0.25 * 0.9 + 0.75 * 0.95) + (0.75 * 0.9 + 0.25 * 0.95)) / 2
    assert control_values_from(rows, "matched", (0.9, 0.95), 2) == (pytest.approx(mean, rel=1e-15),)
    with pytest.raises(ValueError, match="need 3"):
        control_values_from(rows, "matched", (0.9, 0.95), 3)
    with pytest.raises(ValueError, match="below-fraction"):
        control_values_from([{"epoch": 1, "phase_below": None}], "shuffled", (0.9, 0.95), 1)
    base = dict(dataset="fashion-mnist", arch="fmnet", epochs=2, train_subset=40, batch_size=8, seed=3,
                momentum=(0.9, 0.95))
    assert control_schedule(TrainConfig(**base, control="matched", control_values=[0.93])) == 0.93
    schedule = control_schedule(TrainConfig(**base, control="shuffled", control_values=[0.0, 1.0]))
    # 40 images / batch 8 = 5 steps per epoch: epoch 0 never below (p = 0), epoch 1 always below (p = 1)
    assert [float(schedule(t)) for t in range(10)] == pytest.approx([0.95] * 5 + [0.9] * 5)
    mixed = control_schedule(TrainConfig(**base, control="shuffled", control_values=[0.5, 0.5]))
    reference = bernoulli_schedule((0.9, 0.95), 0.5, 3)
    draws = [float(mixed(t)) for t in range(10)]
    assert draws == [float(reference(t)) for t in range(10)]  # a pure function of (seed, t)
    assert draws == [float(mixed(t)) for t in range(10)] and len(set(draws)) == 2
    with pytest.raises(ValueError, match="needs the values of its reference"):
        control_schedule(TrainConfig(**base, control="matched"))


def test_fmnist_grid_trains_references_then_controls_and_resumes_exactly(tmp_path):
    import numpy as np

    from lcamlab.data.fashion_mnist import write_synthetic_fashion_mnist
    from lcamlab.train.runner import resume
    from lcamlab.train.runs import read_run

    folder, digest = write_synthetic_fashion_mnist(tmp_path / "fm", n_train=48, n_test=24)
    tiny = dict(data_dir=str(folder), data_md5=digest, train_subset=48, test_subset=24, epochs=2, batch_size=16,
                device="cpu", channels_last=False)
    runs = tmp_path / "runs"
    configs = figure_configs("controls-fmnist", seeds=1, runs_dir=str(runs), **tiny)
    messages = []
    run_grid(configs, runs, progress="none", log=messages.append)  # no reference yet: skipped
    assert len(messages) == 2 and all("is not finished" in m for m in messages)
    assert not runs.exists() or not any(runs.iterdir())
    both = figure_configs("fig5-fmnist", seeds=1, runs_dir=str(runs), **tiny) + configs
    run_grid(both, runs, progress="none", log=messages.append)
    status = grid_status(figure_configs("fig5-fmnist", seeds=1, runs_dir=str(runs), **tiny)
                         + figure_configs("controls-fmnist", seeds=1, runs_dir=str(runs), **tiny), runs)
    assert set(status.state) == {"finished"}
    reference = read_run(runs / "fig5-fashion-mnist-m0.9-0.95-s0")
    fractions = reference.metrics.phase_below.tolist()
    shuffled = json.loads((runs / "fig5-fashion-mnist-m0.9-0.95-shuffled-s0" / "config.json").read_text())["config"]
    matched = json.loads((runs / "fig5-fashion-mnist-m0.9-0.95-matched-s0" / "config.json").read_text())["config"]
    assert shuffled["control_reference"] == "fig5-fashion-mnist-m0.9-0.95-s0"
    assert shuffled["control_values"] == pytest.approx(fractions)
    assert matched["control_values"] == pytest.approx([np.mean([p * 0.9 + (1 - p) * 0.95 for p in fractions])])
    # the finished grid is stable: planning again (values now resolved) finds no conflict
    again = figure_configs("controls-fmnist", seeds=1, runs_dir=str(runs), **tiny)
    assert [c.control_values for c in again][0] == pytest.approx(fractions)
    assert set(grid_status(again, runs).state) == {"finished"}
    # exact resume of a shuffled control: interrupted after epoch 1, continued, equal to the uninterrupted run
    config = again[0].replace(run_id="interrupted", runs_dir=str(tmp_path / "other"))

    class Stop(Exception):
        pass

    def stop(epoch, run_dir, row):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(config, progress="none", on_epoch_end=stop)
    resume(tmp_path / "other" / "interrupted", progress="none")
    whole = read_run(runs / "fig5-fashion-mnist-m0.9-0.95-shuffled-s0").metrics
    parts = read_run(tmp_path / "other" / "interrupted").metrics
    for column in ("train_loss", "test_error", "test_loss", "lr"):
        assert parts[column].tolist() == whole[column].tolist()


def test_grid_cli_knows_the_fmnist_run_sets(capsys, tmp_path):
    assert cli.main(["grid", "fmnist", "--seeds", "1", "--status", "--runs-dir", str(tmp_path), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "fig5-fashion-mnist-m0.9-0.95-shuffled-s0" in out and "fig3-fashion-mnist-m0.95-0.9-s0" in out
