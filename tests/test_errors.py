"""The catalogue of issue 14: every bad input or fault ends as one line, or recovers with nothing lost.

Each row of :data:`CASES` is one case of the issue: the command line (built by a
small setup function against a temporary workspace), the expected exit status,
and the fragments the one line ``lcamlab: error: ...`` must contain (the value or
path it names and the fix). Exit status 0 means the case recovers by itself; the
row's ``check`` then verifies that nothing was lost. The cache and CIFAR-cache
cases that have no command line of their own are the tables further down.

Everything runs in-process on tiny synthetic data (WRN-10-1, 64 images, CPU).
The tests run as root on the CI machine, where ``chmod`` cannot deny anything, so
"permission denied" is simulated by refusing ``os.access`` (what the checks ask)
or ``mkdir`` (what a write does) for one folder.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import torch

from lcamlab import cli, provenance
from lcamlab.data import file_md5, load_cifar, write_synthetic_cifar
from lcamlab.experiments import cache

TINY = ["--device", "cpu", "--depth", "10", "--widen", "1", "--epochs", "1", "--batch-size", "32",
        "--eval-batch-size", "64", "--train-subset", "32", "--test-subset", "16", "--schedule", "cosine",
        "--lr", "0.05", "--progress", "none", "--no-channels-last"]


class Evil:
    """A pickle that would run a command when loaded (weights_only must refuse it)."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@dataclass
class Workspace:
    root: Path
    data: Path  # synthetic CIFAR-10 as an extracted folder
    other_data: Path  # different synthetic CIFAR-10 (another seed)
    reference: Path  # a finished 1-epoch run on `data`
    monkeypatch: Any
    paths: dict[str, Path] = field(default_factory=dict)

    def runs(self) -> Path:
        return self.root / "runs"

    def a_file(self) -> Path:
        path = self.root / "a-file"
        path.write_text("not a folder\n")
        return path

    def unfinished_copy(self, name: str) -> Path:
        """A copy of the reference run that looks interrupted after its epoch-1 checkpoint."""
        target = self.root / "copies" / name
        shutil.copytree(self.reference, target)
        (target / "finished.json").unlink()
        return target

    def deny(self, folder: Path) -> None:
        """``os.access`` says no for ``folder`` and everything below it (as chmod would for a user)."""
        real = os.access
        folder = str(folder)

        def access(path, mode, *args, **kwargs):
            if str(path) == folder or str(path).startswith(folder + os.sep):
                return False
            return real(path, mode, *args, **kwargs)

        self.monkeypatch.setattr(os, "access", access)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    data = root / "cifar"
    write_synthetic_cifar(data, "cifar10", n_train=64, n_test=32, seed=0, form="folder")
    other = root / "cifar-other"
    write_synthetic_cifar(other, "cifar10", n_train=64, n_test=32, seed=7, form="folder")
    status = cli.main(["train", "--data-dir", str(data), "--runs-dir", str(root / "reference-runs"),
                       "--run-id", "reference", *TINY])
    assert status == 0
    return root, data, other, root / "reference-runs" / "reference"


@pytest.fixture
def ws(base, tmp_path, monkeypatch):
    _, data, other, reference = base
    return Workspace(tmp_path, data, other, reference, monkeypatch)


@dataclass
class Case:
    id: str
    argv: Callable[[Workspace], list[str]]
    code: int
    fragments: Callable[[Workspace], list[str]] = lambda ws: []
    check: Callable[[Workspace], None] | None = None


def _train(ws: Workspace, *more: str) -> list[str]:
    return ["train", "--data-dir", str(ws.data), "--runs-dir", str(ws.runs()), *TINY, *more]


# --- setups -----------------------------------------------------------------------------------------


def _damaged_checkpoint(kind: str) -> Callable[[Workspace], list[str]]:
    def setup(ws: Workspace) -> list[str]:
        run = ws.unfinished_copy(kind)
        path = run / "checkpoint.pt"
        if kind == "truncated":
            blob = path.read_bytes()
            path.write_bytes(blob[: len(blob) // 2])
        elif kind == "random":
            path.write_bytes(np.random.default_rng(0).bytes(4096))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "malicious":
            torch.save({"format": 1, "model": Evil()}, path)
        elif kind == "keyless":
            torch.save({"format": 1}, path)
        elif kind == "nonfinite-buffers":
            state = torch.load(path, weights_only=True)
            names = [n for n in state["model"] if n.endswith("running_var")]
            for name in names[:6]:
                state["model"][name] = torch.full_like(state["model"][name], float("inf"))
            torch.save(state, path)
        ws.paths["run"] = run
        return ["train", "--resume", str(run), "--progress", "none"]
    return setup


def _checkpoint_untouched(ws: Workspace) -> None:
    assert (ws.paths["run"] / "config.json").is_file()  # the run folder itself is kept as it was


def _disk_full_at_checkpoint(ws: Workspace) -> list[str]:
    def write(self, data):  # the disk is full: every write of the checkpoint fails
        error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.error = self.error or error
        raise error

    ws.monkeypatch.setattr(provenance._RecordingWriter, "write", write)
    return _train(ws, "--run-id", "full")


def _after_disk_full(ws: Workspace) -> None:
    run = ws.runs() / "full"
    assert (run / "config.json").is_file() and not (run / "checkpoint.pt").exists()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no half-written checkpoint left
    ws.monkeypatch.undo()
    assert cli.main(["train", "--resume", str(run), "--progress", "none"]) == 0  # free space, resume: it runs
    assert (run / "finished.json").is_file()


def _disk_full_at_config(ws: Workspace) -> list[str]:
    def full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    ws.monkeypatch.setattr(provenance, "atomic_write_json", full)
    return _train(ws, "--run-id", "no-space")


def _nothing_created(name: str) -> Callable[[Workspace], None]:
    def check(ws: Workspace) -> None:
        assert not (ws.runs() / name).exists()
        assert not (ws.runs() / ".creating").exists()
        ws.monkeypatch.undo()
        assert cli.main(_train(ws, "--run-id", name)) == 0  # the same command works once the cause is gone
    return check


def _old_leftover(ws: Workspace) -> list[str]:
    """A folder an older lcamlab left: config.json of a run that failed before its first epoch."""
    from lcamlab.train import TrainConfig

    run = ws.runs() / "leftover"
    run.mkdir(parents=True)
    config = TrainConfig.from_overrides(dict(data_dir=str(ws.data), runs_dir=str(ws.runs()), run_id="leftover",
                                             depth=10, widen=1, epochs=1, train_subset=100_000, device="cpu"))
    (run / "config.json").write_text(json.dumps({"config": config.to_dict(), "sessions": []}))
    (run / "metrics.jsonl").write_text("")
    ws.paths["run"] = run
    return ["train", "--resume", str(run), "--progress", "none"]


def _restart_leftover(ws: Workspace) -> list[str]:
    _old_leftover(ws)
    return _train(ws, "--run-id", "leftover")


def _leftover_restarted(ws: Workspace) -> None:
    record = json.loads((ws.paths["run"] / "config.json").read_text())
    assert record["config"]["train_subset"] == 32 and (ws.paths["run"] / "finished.json").is_file()


def _empty_leftover(ws: Workspace) -> list[str]:
    (ws.runs() / "empty-leftover").mkdir(parents=True)
    (ws.runs() / "empty-leftover" / ".lock").write_text("pid 1 on elsewhere")  # what a crash can leave
    return _train(ws, "--run-id", "empty-leftover")


def _stale_temporaries(ws: Workspace) -> list[str]:
    run = ws.unfinished_copy("stale")
    (run / ".checkpoint.pt.k9x2.tmp").write_bytes(b"\0" * 100_000)
    (run / ".metrics.jsonl.a1b2.tmp").write_text("{")
    ws.paths["run"] = run
    return ["train", "--resume", str(run), "--progress", "none"]


def _stale_removed(ws: Workspace) -> None:
    run = ws.paths["run"]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert (run / "finished.json").is_file() and (run / "checkpoint.pt").is_file()


def _other_data(ws: Workspace) -> list[str]:
    run = ws.unfinished_copy("other-data")
    return ["train", "--resume", str(run), "--data-dir", str(ws.other_data), "--progress", "none"]


def _md5_with_folder(ws: Workspace) -> list[str]:
    return _train(ws, "--run-id", "md5", "--data-md5", "0" * 32)


def _archive(ws: Workspace, blob: bytes) -> tuple[Path, str]:
    folder = ws.root / "archive"
    folder.mkdir()
    path = folder / "cifar-10-python.tar.gz"
    path.write_bytes(blob)
    return folder, file_md5(path)


def _not_a_tar(ws: Workspace) -> list[str]:
    folder, md5 = _archive(ws, b"this is not a gzip file" * 50)
    return ["train", "--data-dir", str(folder), "--runs-dir", str(ws.runs()), *TINY, "--data-md5", md5]


def _cut_tar(ws: Workspace) -> list[str]:
    real = write_synthetic_cifar(ws.root / "real", "cifar10", n_train=64, n_test=32, seed=0)
    blob = real.read_bytes()
    folder, md5 = _archive(ws, blob[: len(blob) // 2])
    return ["train", "--data-dir", str(folder), "--runs-dir", str(ws.runs()), *TINY, "--data-md5", md5]


def _bytes_labels(ws: Workspace) -> list[str]:
    folder = write_synthetic_cifar(ws.root / "bad-labels", "cifar10", n_train=64, n_test=32, form="folder")
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    batch[b"labels"] = [b"cat"] * len(batch[b"labels"])
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    ws.paths["file"] = folder / "test_batch"
    return ["train", "--data-dir", str(ws.root / "bad-labels"), "--runs-dir", str(ws.runs()), *TINY]


def _broken_json(name: str) -> Callable[[Workspace], list[str]]:
    def setup(ws: Workspace) -> list[str]:
        run = ws.unfinished_copy(f"broken-{name}")
        (run / name).write_text("")
        ws.paths["file"] = run / name
        return ["train", "--resume", str(run), "--progress", "none"]
    return setup


def _unwritable(ws: Workspace, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ws.deny(folder)
    return folder


def _no_recompute(ws: Workspace) -> None:
    assert not list(ws.root.rglob("saddle_*.csv"))  # checked before the simulation ran


# --- the catalogue ------------------------------------------------------------------------------------

LONG = "r" * 300

CASES = [
    # Tracebacks instead of a message
    Case("train-run-id-300-chars", lambda ws: _train(ws, "--run-id", LONG), 2,
         lambda ws: ["--run-id", "300 bytes", "shorter name"]),
    Case("train-runs-dir-unwritable", lambda ws: _train(ws, "--runs-dir", str(_unwritable(ws, ws.root / "ro"))), 2,
         lambda ws: ["--runs-dir", str(ws.root / "ro"), "permission denied", "folder you can write to"]),
    Case("train-runs-dir-not-creatable", lambda ws: _train(ws, "--runs-dir",
                                                            str(_unwritable(ws, ws.root / "ro") / "runs")), 2,
         lambda ws: ["--runs-dir", "permission denied in", str(ws.root / "ro")]),
    Case("escape-data-dir-unwritable", lambda ws: ["escape", "saddle", "--quick", "--data-dir",
                                                   str(_unwritable(ws, ws.root / "ro"))], 2,
         lambda ws: ["--data-dir", str(ws.root / "ro"), "permission denied"], _no_recompute),
    Case("bench-wrn-out-unwritable", lambda ws: ["bench", "wrn", "--device", "cpu", "--out",
                                                 str(_unwritable(ws, ws.root / "ro") / "x.csv")], 2,
         lambda ws: ["--out", str(ws.root / "ro"), "permission denied"]),
    Case("escape-device-cuda-abc", lambda ws: ["escape", "saddle", "--quick", "--device", "cuda:abc",
                                               "--data-dir", str(ws.root)], 2,
         lambda ws: ["--device 'cuda:abc'", "cuda:N"]),
    Case("escape-device-tpu", lambda ws: ["escape", "saddle", "--quick", "--device", "tpu",
                                          "--data-dir", str(ws.root)], 2,
         lambda ws: ["--device 'tpu'", "use cpu, cuda"]),
    Case("bench-optim-device-tpu", lambda ws: ["bench", "optim", "--device", "tpu"], 2,
         lambda ws: ["--device 'tpu'"]),
    Case("bench-escape-threads-zero", lambda ws: ["bench", "escape", "--threads", "0"], 2,
         lambda ws: ["Invalid --threads 0", ">= 1"]),
    Case("bench-wrn-device-cuda-abc", lambda ws: ["bench", "wrn", "--device", "cuda:abc"], 2,
         lambda ws: ["--device 'cuda:abc'"]),
    Case("escape-show-a-folder", lambda ws: ["escape", "show", str(ws.root)], 2,
         lambda ws: [str(ws.root), "is a folder", "give the path of a file"]),
    Case("escape-data-dir-a-file", lambda ws: ["escape", "saddle", "--quick", "--data-dir", str(ws.a_file())], 2,
         lambda ws: ["--data-dir", str(ws.root / "a-file"), "is a file, not a folder"], _no_recompute),
    Case("archive-md5-matches-not-a-tar", _not_a_tar, 2,
         lambda ws: [str(ws.root / "archive" / "cifar-10-python.tar.gz"), "not a readable CIFAR-10 tar.gz",
                     "replace it"]),
    Case("archive-md5-matches-cut-short", _cut_tar, 2,
         lambda ws: [str(ws.root / "archive" / "cifar-10-python.tar.gz"), "not a readable CIFAR-10 tar.gz"]),
    *[Case(f"resume-{kind}-checkpoint", _damaged_checkpoint(kind), 2,
           lambda ws, kind=kind: [str(ws.paths["run"] / "checkpoint.pt"), "mv ", "--resume", "epoch 1"],
           _checkpoint_untouched)
      for kind in ("truncated", "random", "empty", "malicious", "keyless", "nonfinite-buffers")],
    Case("disk-full-writing-checkpoint", _disk_full_at_checkpoint, 2,
         lambda ws: ["No space left on device", str(ws.runs() / "full" / "checkpoint.pt"), "intact",
                     "--resume"], _after_disk_full),
    # Run folders that nothing could recover
    Case("train-subset-too-large", lambda ws: _train(ws, "--run-id", "big", "--train-subset", "100000"), 2,
         lambda ws: ["--train-subset", "100000", "holds only 64"], _nothing_created("big")),
    Case("disk-full-writing-config", _disk_full_at_config, 2,
         lambda ws: ["no space left on device", str(ws.runs() / "no-space" / "config.json"), "free space"],
         _nothing_created("no-space")),
    Case("resume-never-started-leftover", _old_leftover, 2,
         lambda ws: ["Cannot resume", "100000", "never finished an epoch", "--run-id leftover"]),
    Case("restart-never-started-leftover", _restart_leftover, 0, check=_leftover_restarted),
    Case("train-into-empty-leftover-folder", _empty_leftover, 0,
         check=lambda ws: (ws.runs() / "empty-leftover" / "finished.json").is_file() or pytest.fail("not trained")),
    Case("resume-cleans-stale-temporaries", _stale_temporaries, 0, check=_stale_removed),
    Case("resume-on-other-data", _other_data, 2,
         lambda ws: ["other data", str(ws.data), str(ws.other_data), "content_sha256"]),
    Case("data-md5-with-extracted-folder", _md5_with_folder, 2,
         lambda ws: ["--data-md5", "extracted folder", "remove --data-md5"]),
    # Misleading messages
    Case("runs-dir-a-file", lambda ws: _train(ws, "--runs-dir", str(ws.a_file())), 2,
         lambda ws: ["--runs-dir", str(ws.root / "a-file"), "is a file, not a folder"]),
    Case("figures-dir-a-file", lambda ws: ["figures", "00", "--dry-run", "--figures-dir", str(ws.a_file())], 2,
         lambda ws: ["--figures-dir", str(ws.root / "a-file"), "is a file, not a folder"]),
    Case("figures-build-dir-a-file", lambda ws: ["figures", "00", "--dry-run", "--build-dir", str(ws.a_file())], 2,
         lambda ws: ["--build-dir", "is a file, not a folder"]),
    Case("bench-wrn-out-below-a-file", lambda ws: ["bench", "wrn", "--device", "cpu", "--out",
                                                   str(ws.a_file() / "x.csv")], 2,
         lambda ws: ["--out", str(ws.root / "a-file"), "is a file, not a folder"]),
    Case("broken-config-json", _broken_json("config.json"), 2,
         lambda ws: [str(ws.paths["file"]), "not readable JSON", "restore it"]),
    Case("broken-diverged-json", _broken_json("diverged.json"), 1,
         lambda ws: [str(ws.paths["file"]), "unreadable", "delete diverged.json"]),
    Case("labels-stored-as-bytes", _bytes_labels, 2,
         lambda ws: [str(ws.paths["file"]), "not integer class indices", "replace it"]),
    Case("figures-p-float-nan", lambda ws: ["figures", "00", "-p", "lr_scale", "nan"], 2,
         lambda ws: ["-p lr_scale nan", "finite number", "00_optimizer_zoo.ipynb declares lr_scale = 1.0"]),
    Case("figures-p-seed-5000-digits", lambda ws: ["figures", "00", "-p", "seed", "9" * 5000], 2,
         lambda ws: ["-p seed", "5000 digits", "out of range"]),
    Case("figures-p-int-for-list", lambda ws: ["figures", "00", "-p", "landscapes", "quadratic"], 2,
         lambda ws: ["-p landscapes", "list"]),
    Case("escape-saddle-seed-negative", lambda ws: ["escape", "saddle", "--quick", "--seed", "-1",
                                                    "--data-dir", str(ws.root)], 2,
         lambda ws: ["--seed: -1", "0..2**63-1"]),
    Case("escape-points-seed-negative", lambda ws: ["escape", "points", "--seed", "-1"], 2,
         lambda ws: ["--seed: -1"]),
    # The README's own example (it failed with "Unknown parameter 'noise'")
    Case("readme-figures-00-noise", lambda ws: ["figures", "00", "-p", "noise", "1.0", "--dry-run"], 0),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue(case: Case, ws: Workspace, capsys):
    argv = case.argv(ws)
    status = cli.main(argv)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("lcamlab: error:")
              or line.startswith("lcamlab: training diverged:")]
    assert status == case.code, captured.err
    assert "Traceback" not in captured.err
    if case.code == 0:
        assert not errors, captured.err
    else:
        assert len(errors) == 1, captured.err
        for fragment in case.fragments(ws):
            assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    if case.check is not None:
        case.check(ws)


# --- the error boundary itself ----------------------------------------------------------------------------


def test_ctrl_c_is_status_130_and_one_line(monkeypatch, capsys):
    from lcamlab import figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "build", interrupted)
    assert cli.main(["figures", "00"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lcamlab: interrupted")


@pytest.mark.parametrize("how", ["flag", "flag-after-subcommand", "environment"])
def test_debug_shows_the_traceback(how, monkeypatch, capsys):
    argv = ["escape", "points", "--seed", "-1"]
    if how == "flag":
        argv = ["--debug", *argv]
    elif how == "flag-after-subcommand":
        argv = [*argv, "--debug"]
    else:
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "lcamlab: error: Invalid --seed: -1" in err


@pytest.mark.parametrize("error, fragments", [
    (OSError(errno.ENOSPC, "No space left on device", "/d/x.csv"), ["no space left on device", "/d/x.csv"]),
    (OSError(errno.ENAMETOOLONG, "File name too long", "/d/" + "n" * 300), ["file name too long", "300 bytes"]),
    (PermissionError(errno.EACCES, "Permission denied", "/d"), ["permission denied: /d", "write to"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), ["/d is a folder", "a file"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), ["/f/x", "is a file, not a folder"]),
    (FileExistsError(errno.EEXIST, "File exists", "/d"), ["/d exists", "another path"]),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/d/y"), ["no such file or folder: /d/y"]),
    (EOFError("Compressed file ended before the end-of-stream marker was reached"), ["ended early"]),
    (tarfile.ReadError("not a gzip file"), ["not a valid archive"]),
    (ValueError("Invalid lr: 0 (must be > 0)\n  second line"), ["Invalid lr: 0 (must be > 0) second line"]),
])
def test_known_failures_become_one_line(error, fragments):
    line = cli.describe_error(error)
    assert "\n" not in line
    for fragment in fragments:
        assert fragment in line


def test_runtime_mkdir_permission_error_is_one_line(ws, capsys):
    """A PermissionError the checks could not foresee (the folder changes after them) still ends as one line."""
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if ".creating" in str(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    ws.monkeypatch.setattr(Path, "mkdir", mkdir)
    assert cli.main(_train(ws, "--run-id", "denied")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "permission denied" in err[0] and ".creating" in err[0]
    assert not (ws.runs() / "denied").exists()


def test_a_bug_is_not_hidden(monkeypatch):
    from lcamlab import figures

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(figures, "build", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["figures", "00"])


# --- checkpoints are verified before they are called good ------------------------------------------------


class BufferPoisoned(torch.nn.Module):
    """A WRN-10-1 whose BatchNorm statistics become inf after some steps while its loss stays finite."""

    def __init__(self, num_classes: int, healthy_steps: int) -> None:
        super().__init__()
        from lcamlab.models.wrn import WideResNet

        self.net = WideResNet(depth=10, widen=1, num_classes=num_classes)
        self.healthy_steps, self.steps = healthy_steps, 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps > self.healthy_steps:
                with torch.no_grad():
                    for name, buffer in self.net.named_buffers():
                        if name.endswith("running_var"):
                            buffer.fill_(float("inf"))
        return self.net(x)


def test_non_finite_buffers_are_a_divergence(base, tmp_path):
    from lcamlab.train import TrainConfig, TrainingDivergedError, train

    _, data, _, _ = base
    config = TrainConfig.from_overrides(dict(data_dir=str(data), runs_dir=str(tmp_path), run_id="bn", depth=10,
                                             widen=1, epochs=2, batch_size=16, eval_batch_size=64, train_subset=32,
                                             test_subset=16, device="cpu", schedule="cosine", lr=0.05,
                                             channels_last=False))
    # 2 steps per epoch: the buffers turn inf in the 2nd step of epoch 2, the loss stays finite
    with pytest.raises(TrainingDivergedError, match=r"epoch 2: .*parameter/buffer tensor\(s\) \(.*running_var.*"
                                                     r"last good checkpoint \(epoch 1\)"):
        train(config, progress="none", model_factory=lambda cfg, k: BufferPoisoned(k, healthy_steps=3))
    checkpoint = torch.load(tmp_path / "bn" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values() if t.is_floating_point())


# --- the result cache (toys and escape tables go through it) -------------------------------------------------


def _escape_like(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"optimizer": ["sgd"] * n, "k": np.linspace(1.0, 2.0, n), "trial": range(n),
                         "escape_step": np.arange(100, 100 + 37 * n, 37), "escaped": [True] * n})


def _damage(kind: str, csv: Path, sidecar: Path) -> None:
    text = csv.read_text()
    lines = text.splitlines()
    if kind == "cut-to-3-of-10-rows":
        csv.write_text("\n".join(lines[:4]) + "\n")
    elif kind == "sidecar-deleted":
        sidecar.unlink()
    elif kind == "sidecar-edited":
        meta = json.loads(sidecar.read_text())
        meta["config"]["budget"] = 1
        sidecar.write_text(json.dumps(meta))
    elif kind == "every-escape-step-1":
        frame = pd.read_csv(csv)
        frame["escape_step"] = 1
        csv.write_text(frame.to_csv(index=False))
    elif kind == "half-the-rows-removed":
        csv.write_text("\n".join(lines[:1] + lines[1::2]) + "\n")
    elif kind == "a-value-edited":
        csv.write_text(text.replace("137", "1e99", 1))
    elif kind == "random-bytes":
        csv.write_bytes(np.random.default_rng(1).bytes(300))
    elif kind == "empty":
        csv.write_text("")
    elif kind == "column-dropped":
        csv.write_text(pd.read_csv(csv).drop(columns=["escape_step"]).to_csv(index=False))


CACHE_DAMAGE = ["cut-to-3-of-10-rows", "sidecar-deleted", "sidecar-edited", "every-escape-step-1",
                "half-the-rows-removed", "a-value-edited", "random-bytes", "empty", "column-dropped"]


@pytest.mark.parametrize("kind", CACHE_DAMAGE)
def test_damaged_result_tables_recover(kind, tmp_path, capsys):
    calls = []

    def compute():
        calls.append(1)
        return _escape_like()

    config = {"budget": 400, "trials": 10}
    first = cache.cached_table("valley", config, compute, tmp_path, seed=0)
    _damage(kind, first.path, first.path.with_suffix(".json"))
    # a notebook (recompute=True, the default): moved aside, recomputed, nothing lost
    again = cache.cached_table("valley", config, compute, tmp_path, seed=0)
    assert len(calls) == 2 and not again.from_cache
    pd.testing.assert_frame_equal(again.frame, first.frame)
    out = capsys.readouterr().out
    assert first.path.name in out and "recomputing" in out
    assert list(tmp_path.glob("valley_*.damaged-*.csv"))
    # strict readers get one line naming the file and the fix
    _damage(kind, again.path, again.path.with_suffix(".json"))
    with pytest.raises(cache.CacheError) as caught:
        cache.cached_table("valley", config, compute, tmp_path, seed=0, recompute=False)
    assert first.path.name in str(caught.value) and "delete" in str(caught.value)


# --- the CIFAR cache --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tamper", ["labels-77", "images-edited", "hash-updated-labels-77", "truncated"])
def test_tampered_cifar_cache_is_rebuilt(tamper, tmp_path):
    from lcamlab.data import cifar

    path = write_synthetic_cifar(tmp_path, "cifar10", n_train=20, n_test=10)
    md5 = file_md5(path)
    reference = load_cifar("cifar10", tmp_path, expected_md5=md5)
    npz = tmp_path / "cache" / f"cifar10-{md5}.npz"
    with np.load(npz) as stored:
        arrays = {key: stored[key] for key in stored.files}
    if tamper == "truncated":
        npz.write_bytes(npz.read_bytes()[:500])
    else:
        if "labels" in tamper:
            arrays["train_labels"] = np.full_like(arrays["train_labels"], 77)
        else:
            arrays["train_images"] = arrays["train_images"].copy()
            arrays["train_images"][0, 0, 0, 0] ^= 1
        if tamper.startswith("hash-updated"):
            parts = {k: v for k, v in arrays.items() if k in cifar._CACHE_KEYS}
            arrays["sha256"] = np.asarray(cifar._content_digest(parts))
        with open(npz, "wb") as handle:
            np.savez(handle, **arrays)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load_cifar("cifar10", tmp_path, expected_md5=md5)
    assert torch.equal(rebuilt.train_labels, reference.train_labels)
    assert torch.equal(rebuilt.train_images, reference.train_images)
    assert rebuilt.content_sha256 == reference.content_sha256
    assert int(rebuilt.train_labels.max()) < 10
    load_cifar("cifar10", tmp_path, expected_md5=md5)  # the rebuilt cache verifies (no warning needed)


def test_archive_and_folder_of_the_same_data_have_one_identity(tmp_path):
    archive = write_synthetic_cifar(tmp_path / "a", "cifar10", n_train=20, n_test=10, seed=3)
    write_synthetic_cifar(tmp_path / "f", "cifar10", n_train=20, n_test=10, seed=3, form="folder")
    from_archive = load_cifar("cifar10", tmp_path / "a", expected_md5=file_md5(archive))
    from_folder = load_cifar("cifar10", tmp_path / "f")
    assert from_archive.md5 != from_folder.md5  # different files...
    assert from_archive.content_sha256 == from_folder.content_sha256  # ...the same data


def test_atomic_torch_save_reports_a_full_disk_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    provenance.atomic_torch_save({"v": torch.ones(3)}, path)
    before = path.read_bytes()

    def write(self, data):
        error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.error = self.error or error
        raise error

    monkeypatch.setattr(provenance._RecordingWriter, "write", write)
    with pytest.raises(OSError) as caught:
        provenance.atomic_torch_save({"v": torch.zeros(1000)}, path)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_create_folder_atomically(tmp_path):
    target = tmp_path / "runs" / "one"

    def fail(folder):
        (folder / "config.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        provenance.create_folder_atomically(target, fail)
    assert not target.exists() and not (tmp_path / "runs" / ".creating").exists()
    provenance.create_folder_atomically(target, lambda folder: (folder / "config.json").write_text("{}"))
    assert (target / "config.json").read_text() == "{}"
    with pytest.raises(FileExistsError):
        provenance.create_folder_atomically(target, lambda folder: (folder / "config.json").write_text("[]"))
    assert (target / "config.json").read_text() == "{}"
