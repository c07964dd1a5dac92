"""The escape commands' hostile cases (issue 23): damaged checkpoints and files, races, a full disk, numba's
cache and absence, bounds, diverged trials, flags of the other mode, ``--quick`` folders.

Each case ends in one line (``lcamlab: error: ...`` or a ``lcamlab: ...`` notice), never a traceback, and a
damaged file is moved aside (kept) and recomputed to the same numbers.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lcamlab import cli, provenance
from lcamlab.escape.design import (
    DesignConfig, design_units, run_design, sharp_valley_region, unit_path,
)
from lcamlab.escape.fused import simulate_fused
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.simulate import simulate_batched
from lcamlab.experiments.registry import preset

COLUMNS = ["optimizer", "arm", "k_index", "trial", "budget", "escape_step", "escaped", "diverged", "kick_at_escape",
           "kick_lag", "kick_count", "momentum_mean", "below_fraction"]


def _small() -> DesignConfig:
    return DesignConfig(optimizers=("sgd",), arms=("data",), trials=32, points=3, slow=800.0, calibration_trials=8,
                        warmup=20)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished small design folder and its per-trial frame (each test damages a copy)."""
    folder = tmp_path_factory.mktemp("design") / "run"
    return folder, run_design(_small(), folder, log=None)


def _copy(finished, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(finished[0], target)
    return target


def _units(folder: Path) -> list[Path]:
    calibration = json.loads((folder / "calibration.json").read_text())
    return [unit_path(folder, u) for u in design_units(_small(), calibration)]


def _rerun(folder: Path, finished) -> list[str]:
    lines: list[str] = []
    frame = run_design(_small(), folder, log=lines.append)
    pd.testing.assert_frame_equal(frame[COLUMNS], finished[1][COLUMNS])  # recomputed to the same numbers
    return lines


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _edited_steps(path: Path) -> None:
    with np.load(path) as z:
        arrays = dict(z)
    arrays["escape_step"] = np.ones_like(arrays["escape_step"])  # "every trial escaped at step 1"
    np.savez_compressed(path, **arrays)


def _ten_trials(path: Path) -> None:
    with np.load(path) as z:
        arrays = {name: (value[:10] if value.ndim else value) for name, value in z.items()}
    np.savez_compressed(path, **arrays)


def _lost_sidecar(path: Path) -> None:
    path.with_suffix(".json").unlink()


@pytest.mark.parametrize("damage, said", [
    (_cut, "does not match the SHA-256"), (_random_bytes, "does not match the SHA-256"),
    (_edited_steps, "does not match the SHA-256"), (_ten_trials, "does not match the SHA-256"),
    (_lost_sidecar, "has no sidecar"),
])
def test_a_damaged_unit_is_named_moved_aside_and_recomputed(finished, tmp_path, damage, said):
    folder = _copy(finished, tmp_path)
    path = _units(folder)[1]
    damage(path)
    lines = _rerun(folder, finished)
    notices = [line for line in lines if line.startswith("lcamlab:")]
    assert len(notices) == 1 and str(path) in notices[0] and said in notices[0] and "recomputing" in notices[0]
    assert "allow_pickle" not in notices[0]
    aside = [p for p in folder.iterdir() if ".damaged-" in p.name]
    assert len(aside) == (1 if damage is _lost_sidecar else 2)  # the user's file is kept, not deleted


def test_random_bytes_with_a_matching_checksum_are_refused_without_unpickling(finished, tmp_path):
    from lcamlab.experiments.cache import sha256

    folder = _copy(finished, tmp_path)
    path = _units(folder)[0]
    _random_bytes(path)
    sidecar = path.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record["unit"]["sha256"] = sha256(path.read_bytes())  # a forged checksum: the bytes are still no archive
    sidecar.write_text(json.dumps(record))
    notices = [line for line in _rerun(folder, finished) if line.startswith("lcamlab:")]
    assert len(notices) == 1 and "is not a readable .npz" in notices[0] and "allow_pickle" not in notices[0]


def test_a_unit_of_another_point_is_refused(finished, tmp_path):
    folder = _copy(finished, tmp_path)
    first, second = _units(folder)[:2]
    for suffix in (".npz", ".json"):  # k00's unit (with its own sidecar) put in k01's place
        shutil.copy(first.with_suffix(suffix), second.with_suffix(suffix))
    notices = [line for line in _rerun(folder, finished) if line.startswith("lcamlab:")]
    assert len(notices) == 1 and "belongs to another design or point" in notices[0]


@pytest.mark.parametrize("name, damage", [("design.json", lambda p: p.write_text("")),
                                          ("calibration.json", _cut)])
def test_damaged_derived_json_is_moved_aside_and_written_anew(finished, tmp_path, name, damage):
    folder = _copy(finished, tmp_path)
    damage(folder / name)
    notices = [line for line in _rerun(folder, finished) if line.startswith("lcamlab:")]
    assert len(notices) == 1 and str(folder / name) in notices[0] and "not readable JSON" in notices[0]
    assert json.loads((folder / name).read_text())  # written anew, the units reused (same numbers)


def test_two_runs_at_once_on_one_folder_both_finish(finished, tmp_path):
    folder = tmp_path / "shared"
    results, errors = [], []

    def run() -> None:
        try:
            results.append(run_design(_small(), folder, log=None))
        except Exception as error:  # noqa: BLE001 - the test reports what either run raised
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 2
    for frame in results:
        pd.testing.assert_frame_equal(frame[COLUMNS], finished[1][COLUMNS])
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_two_escape_run_processes_at_once_on_one_data_dir_both_finish(tmp_path):
    """The issue's case as it was met: two ``lcamlab escape run --quick`` processes, one --data-dir."""
    argv = [sys.executable, "-m", "lcamlab", "escape", "run", "--quick", "--optimizers", "sgd", "--arms", "data",
            "--data-dir", str(tmp_path)]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0 and "Traceback" not in err and "lcamlab: error" not in err, err
    fits = [[line for line in out.splitlines() if "alpha" in line] for out, _ in outputs]
    assert fits[0] and fits[0] == fits[1]  # the same table
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name or ".damaged-" in p.name]


def test_a_full_disk_names_the_file_leaves_no_temporary_and_keeps_what_was_written(finished, tmp_path, monkeypatch):
    folder = tmp_path / "full"
    run_design(_small(), folder, log=None, max_units=1)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fsync(fd):  # the disk is full: the next file written fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(provenance.os, "fsync", fsync)
    with pytest.raises(OSError) as caught:
        run_design(_small(), folder, log=None)
    monkeypatch.undo()
    line = cli.describe_error(caught.value)
    assert "no space left on device while writing" in line and str(folder) in line and "free space" in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary left, nothing changed
    frame = run_design(_small(), folder, log=None)  # space freed: the run resumes to the same numbers
    pd.testing.assert_frame_equal(frame[COLUMNS], finished[1][COLUMNS])


_LOOP_SNIPPET = ("from lcamlab.escape.design import quick_design, sample_escape_times; "
                 "print(sample_escape_times('sgd', 2.0, trials=8, budget=50, config=quick_design()).escape_step[:4])")


def test_a_damaged_numba_cache_is_recompiled_with_one_warning(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    good = subprocess.run([sys.executable, "-c", _LOOP_SNIPPET], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    files = sorted((tmp_path / "numba").rglob("*.nb[ic]"))
    assert files
    for path in files:  # every index and data file cut in half
        _cut(path)
    again = subprocess.run([sys.executable, "-c", _LOOP_SNIPPET], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == good.stdout, again.stderr
    assert "on-disk cache of the escape loop" in again.stderr and "recompiling" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("command", [["bench", "escape", "--trials", "64"], ["escape", "run", "--quick"]])
def test_without_numba_one_line_names_the_package_and_the_fix(command):
    code = f"import sys; sys.modules['numba'] = None; from lcamlab.cli import main; sys.exit(main({command!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("lcamlab: error: the escape loop needs numba") and "pip install numba" in done.stderr


@pytest.mark.parametrize("argv, said", [
    (["escape", "saddle", "--trials", "100000000000"], ["--trials 100000000000", "of memory", "or less"]),
    (["escape", "saddle", "--budget", str(10**20)], ["--budget", "2**53"]),
    (["escape", "saddle", "--warmup", str(10**12), "--quick"], ["--warmup", "of memory"]),
    (["escape", "saddle", "--trials", "0"], ["Invalid", "trials"]),
    (["escape", "run", "--trials", str(10**14)], ["--trials 100000000000000", "units x the trials", "or less"]),
    (["escape", "run", "--trials", "-3"], ["--trials -3", ">= 2"]),
    (["escape", "points", "--dim", str(10**9)], ["--dim 1000000000", "training set", "or less"]),
    (["escape", "points", "--dim", "0"], ["--dim 0", ">= 1"]),
    (["escape", "points", "--sharpness", "nan"], ["--sharpness nan", "finite"]),
    (["bench", "escape", "--trials", "0"], ["--trials 0", ">= 1"]),
    (["bench", "escape", "--trials", "100000000000"], ["--trials 100000000000", "of memory"]),
    (["bench", "escape", "--budget", "-5"], ["--budget", "only act with --vs-loop"]),
    (["bench", "escape", "--sharpness-count", "0"], ["--sharpness-count", "only act with --vs-loop"]),
    (["bench", "escape", "--optimizers", "foo"], ["--optimizers", "only act with --vs-loop"]),
    (["bench", "escape", "--vs-loop", "--budget", "-5"], ["--budget -5", ">= 1"]),
    (["bench", "escape", "--vs-loop", "--sharpness-count", "0"], ["--sharpness-count 0", ">= 1"]),
    (["bench", "escape", "--vs-loop", "--trials", "0"], ["--trials 0", ">= 1"]),
    (["bench", "escape", "--vs-loop", "--steps", "9"], ["--steps", "only act without --vs-loop"]),
    (["bench", "escape", "--vs-loop", "--full-loop", "--loop-trials", "2"], ["--loop-trials with --full-loop"]),
])
def test_bounds_and_flags_are_refused_before_any_work(argv, said, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("lcamlab: error: ") and captured.err.count("\n") == 1, captured.err
    assert all(text in captured.err for text in said), captured.err


def test_bench_escape_help_says_which_flags_need_vs_loop(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "escape", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--budget", "--sharpness-count", "--optimizers", "--loop-trials"):
        assert f"{flag} " in text
    assert text.count("--vs-loop only") >= 6 and text.count("without --vs-loop only") >= 4


def test_diverged_trials_are_flagged_never_censored_in_both_runners():
    landscape = StyblinskiTangLandscape(10, 5000, 1.0, seed=0, dtype=torch.float64)
    region = sharp_valley_region(landscape)
    # k = inf: NaN positions at the first step; k = 1e300 and 1e200 jump past the ridge at once (escapes)
    sqrt_k = np.sqrt(np.repeat([2.0, np.inf, 1e300, 1e200], 16))
    spec = preset("sgd", 5e-3)
    options = dict(budget=400, warmup=20, chunk=128)
    eager = simulate_batched(landscape, spec, torch.as_tensor(sqrt_k), region, **options)
    fused = simulate_fused(landscape, spec, sqrt_k, region, stream="torch", drop=False, **options)
    for result in (eager, fused):
        assert result.diverged[16:32].all() and not result.diverged[:16].any() and result.escaped[:16].any()
        assert not (result.escaped & result.diverged).any() and result.escaped[32:].all()
    np.testing.assert_array_equal(fused.escape_step, eager.escape_step)
    np.testing.assert_array_equal(fused.diverged, eager.diverged)


def test_the_saddle_command_reports_diverged_trials(tmp_path, capsys):
    argv = ["escape", "saddle", "--quick", "--optimizers", "sgd", "--sharpness", "1e300,1,2,3",
            "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "24 diverged" in out and "24 trial(s) diverged" in out and "neither escaped nor censored" in out


def test_a_quick_run_writes_into_a_temporary_folder(monkeypatch, capsys, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["escape", "saddle", "--quick", "--optimizers", "sgd"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "--quick: writing into" in line)
    folder = Path(line.split("writing into ")[1].split(" (")[0])
    assert folder.parent == tmp_path and list((folder / "escape").glob("saddle_*.csv"))
    seen = {}

    def stop(design, data_dir, **options):  # where the run would write; the design itself is not run
        seen["data_dir"] = data_dir
        raise SystemExit(0)

    monkeypatch.setattr("lcamlab.escape.design.load_or_run_design", stop)
    with pytest.raises(SystemExit):
        cli.main(["escape", "run", "--quick"])
    assert Path(seen["data_dir"]).parent == tmp_path and "escape run --quick: writing into" in capsys.readouterr().out


def test_load_units_moves_a_damaged_unit_aside_and_leaves_it_out(finished, tmp_path):
    from lcamlab.escape.design import load_units

    folder = _copy(finished, tmp_path)
    path = _units(folder)[2]
    _cut(path)
    lines: list[str] = []
    frame = load_units(_small(), folder, log=lines.append)
    assert len(lines) == 1 and str(path) in lines[0]
    assert frame.groupby(["optimizer", "arm", "k_index"]).ngroups == 2 and not path.exists()
    (folder / "calibration.json").write_text("{")
    with pytest.raises(ValueError, match="no readable calibration.json"):
        load_units(_small(), folder, log=lines.append)


def test_the_committed_design_fits_the_bounds():
    from lcamlab.escape.cli import design_from_args

    class Args:
        quick = False
        trials = None
        optimizers = None
        arms = None
        no_controls = False

    assert design_from_args(Args()) == DesignConfig()  # the full design passes its own memory bound
