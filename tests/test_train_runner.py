"""The runner on the CPU: logs, provenance, checkpoints, exact resume after a kill, NaN handling.

All runs are a tiny WRN-10-1 on synthetic CIFAR-10 in the official format (a
few dozen images), float32 on the CPU, deterministic.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from lcamlab import cli
from lcamlab.data import write_synthetic_cifar
from lcamlab.train import TrainConfig, TrainingDivergedError, load_runs, read_run, resume, train
from lcamlab.train.runner import METRIC_KEYS, TIMING_KEYS

EPOCHS = 3


def tiny_overrides(data_dir: Path, runs_dir: Path, **more) -> dict:
    values = dict(data_dir=str(data_dir), runs_dir=str(runs_dir), depth=10, widen=1, epochs=EPOCHS,
                  batch_size=32, eval_batch_size=64, train_subset=64, test_subset=32, lr=0.05,
                  schedule="cosine", device="cpu", optimizer="lcam", momentum=(0.9, 0.95))
    values.update(more)
    return values


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    data_dir = root / "cifar"
    write_synthetic_cifar(data_dir, "cifar10", n_train=64, n_test=32, seed=0, form="folder")
    return root, data_dir


@pytest.fixture(scope="module")
def reference_run(workspace):
    """An uninterrupted 3-epoch run (the resume test's reference)."""
    root, data_dir = workspace
    config = TrainConfig.from_overrides(tiny_overrides(data_dir, root / "runs", run_id="reference"))
    return train(config, progress="none")


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------------------
# What a run writes
# --------------------------------------------------------------------------------------


def test_run_writes_metrics_provenance_and_checkpoint(reference_run):
    rows = read_rows(reference_run)
    assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))
    for row in rows:
        assert tuple(row) == METRIC_KEYS
        assert 0.0 <= row["train_accuracy"] <= 100.0 and 0.0 <= row["test_error"] <= 100.0
        assert math.isclose(row["phase_below"] + row["phase_above"], 1.0, rel_tol=1e-12)
        assert row["epoch_seconds"] > 0 and row["images_per_second"] > 0
    # the synthetic classes are learnable: the average loss falls
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    # cosine over 3 epochs of 2 iterations: lr logged at the epoch's last iteration
    assert rows[-1]["lr"] == pytest.approx(0.5 * 0.05 * (1 + math.cos(math.pi * 5 / 6)), rel=1e-12)

    record = json.loads((reference_run / "config.json").read_text())
    for key in ("config", "seed", "git_commit", "torch_version", "lcamlab_version", "device", "sessions"):
        assert key in record
    assert record["config"]["epochs"] == EPOCHS and record["config"]["run_id"] == "reference"
    assert (reference_run / "finished.json").exists()

    checkpoint = torch.load(reference_run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == EPOCHS
    assert checkpoint["config"] == record["config"]  # the config travels with every checkpoint
    assert "lcam" in checkpoint["optimizer"] and checkpoint["optimizer"]["lcam"]["loss_sum"] is not None
    assert set(checkpoint["rng"][0]) >= {"torch"}
    assert without_timing(checkpoint["history"]) == without_timing(rows)

    run = read_run(reference_run)
    assert run.finished and run.state == "finished" and run.momentum == (0.9, 0.95)
    assert list(run.metrics.columns) == list(METRIC_KEYS) and len(run.metrics) == EPOCHS
    assert [r.run_id for r in load_runs(reference_run.parent)].count("reference") == 1


def test_an_existing_run_folder_is_never_overwritten(workspace, reference_run, capsys):
    root, data_dir = workspace
    before = (reference_run / "metrics.jsonl").read_bytes()
    config = TrainConfig.from_overrides(tiny_overrides(data_dir, root / "runs", run_id="reference"))
    with pytest.raises(FileExistsError, match=r"already exists.*--resume .*reference.*another --run-id"):
        train(config, progress="none")
    status = cli.main(["train", "--data-dir", str(data_dir), "--runs-dir", str(root / "runs"),
                       "--run-id", "reference", "--device", "cpu", "--depth", "10", "--widen", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--resume" in err[0]
    assert (reference_run / "metrics.jsonl").read_bytes() == before
    # resuming a finished run does nothing
    assert resume(reference_run, progress="none") == reference_run
    assert (reference_run / "metrics.jsonl").read_bytes() == before


# --------------------------------------------------------------------------------------
# Exact resume after SIGKILL
# --------------------------------------------------------------------------------------

KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from lcamlab.train import TrainConfig, train
    from lcamlab.train import engine as engine_module

    overrides = json.loads(sys.argv[1])
    kill_at_step = int(sys.argv[2])
    original = engine_module.Engine.train_step
    calls = {"n": 0}

    def train_step(self, x, y):
        calls["n"] += 1
        if calls["n"] == kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of an epoch, not asked to stop
        return original(self, x, y)

    engine_module.Engine.train_step = train_step
    train(TrainConfig.from_overrides(overrides), progress="lines")
""")


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(workspace, reference_run, capsys):
    root, data_dir = workspace
    overrides = tiny_overrides(data_dir, root / "runs", run_id="killed")
    # 2 steps per epoch: step 6 is the 2nd step of epoch 3, after epoch 2's checkpoint
    process = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(overrides), "6"],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr
    killed = root / "runs" / "killed"
    assert not (killed / "finished.json").exists()
    assert [row["epoch"] for row in read_rows(killed)] == [1, 2]
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]  # atomic writes left no debris

    status = cli.main(["train", "--resume", str(killed), "--progress", "lines"])
    out = capsys.readouterr().out
    assert status == 0
    assert "epoch   3/3" in out and "epoch   2/3" not in out  # one line per epoch, resumed at epoch 3

    resumed, uninterrupted = read_rows(killed), read_rows(reference_run)
    assert without_timing(resumed) == without_timing(uninterrupted)  # every number equal
    a = torch.load(killed / "checkpoint.pt", weights_only=True)
    b = torch.load(reference_run / "checkpoint.pt", weights_only=True)
    for name, tensor in b["model"].items():
        assert torch.equal(a["model"][name], tensor), name
    sessions = json.loads((killed / "config.json").read_text())["sessions"]
    assert [s["start_epoch"] for s in sessions] == [0, 2]


def test_resume_rejects_changes_to_the_experiment(reference_run, capsys):
    with pytest.raises(ValueError, match="Cannot change epochs"):
        resume(reference_run, epochs=10)
    status = cli.main(["train", "--resume", str(reference_run), "--lr", "0.2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--lr" in err[0]
    status = cli.main(["train", "--resume", str(reference_run.parent / "no-such-run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "not a run folder" in err[0]


# --------------------------------------------------------------------------------------
# NaN / inf losses
# --------------------------------------------------------------------------------------


def test_absurd_learning_rate_stops_with_a_clear_message(workspace, capsys):
    root, data_dir = workspace
    runs = root / "runs-nan"
    status = cli.main(["train", "--data-dir", str(data_dir), "--runs-dir", str(runs), "--run-id", "absurd",
                       "--device", "cpu", "--depth", "10", "--widen", "1", "--epochs", "2",
                       "--train-subset", "32", "--test-subset", "32", "--batch-size", "16",
                       "--lr", "1e8", "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1
    assert "diverged in epoch 1" in err[0] and "not finite" in err[0] and "Lower --lr" in err[0]
    run_dir = runs / "absurd"
    assert (run_dir / "diverged.json").exists() and not (run_dir / "checkpoint.pt").exists()
    assert read_rows(run_dir) == [] and read_run(run_dir).state == "diverged"
    with pytest.raises(TrainingDivergedError, match="diverged and is not resumed"):
        resume(run_dir, progress="none")


class PoisonedAfter(nn.Module):
    """A WRN-10-1 whose output turns NaN after a number of training forward passes."""

    def __init__(self, num_classes: int, healthy_steps: int) -> None:
        super().__init__()
        from lcamlab.models.wrn import WideResNet

        self.net = WideResNet(depth=10, widen=1, num_classes=num_classes)
        self.healthy_steps = healthy_steps
        self.steps = 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.steps += 1
            if self.steps > self.healthy_steps:
                out = out * float("nan")
        return out


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(workspace):
    root, data_dir = workspace
    config = TrainConfig.from_overrides(tiny_overrides(data_dir, root / "runs-nan", run_id="poisoned", epochs=3))
    with pytest.raises(TrainingDivergedError, match=r"epoch 2: mean training loss nan.*last good checkpoint \(epoch 1\)"):
        train(config, progress="none", model_factory=lambda cfg, k: PoisonedAfter(k, healthy_steps=3))
    run_dir = root / "runs-nan" / "poisoned"
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values() if t.is_floating_point())
    assert [row["epoch"] for row in read_rows(run_dir)] == [1]
    assert json.loads((run_dir / "diverged.json").read_text())["epoch"] == 2


def test_progress_modes(workspace, capsys, monkeypatch):
    root, data_dir = workspace
    config = TrainConfig.from_overrides(tiny_overrides(data_dir, root / "runs-progress", run_id="bar", epochs=1,
                                                       train_subset=32, test_subset=32))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    train(config, progress="auto")
    captured = capsys.readouterr()
    assert "epoch   1/1" in captured.err and captured.out == ""  # a tqdm bar and its summary on stderr
    with pytest.raises(ValueError, match="Invalid progress"):
        train(config.replace(run_id="other"), progress="loud")
    assert not os.path.exists(root / "runs-progress" / "other")
