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
