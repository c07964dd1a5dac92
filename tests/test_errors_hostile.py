"""Thirty-six hostile inputs against this round's changes (issue 23, "30 more of your own"): the numba escape loop,
the verified unit checkpoints, the checksummed ledger, the size bounds, the flags, ``LCAMLAB_DEBUG``.

Each ends in one line (``lcamlab: error: ...``, or a ``lcamlab: ...`` notice and a recomputation to the same
numbers), never a traceback, a crash, a silently accepted nonsense value or a lost file. The cases that failed
before the fix of this round say so in their comment ("was: ...").
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcamlab import cli, provenance
from lcamlab.escape.design import design_units, run_design, unit_path
from lcamlab.experiments import claims
from lcamlab.experiments.cache import sha256
# the small finished design every checkpoint case damages a copy of
from test_errors_escape import _copy, _small, finished  # noqa: F401 (finished is a fixture)

COLUMNS = ["optimizer", "arm", "k_index", "trial", "budget", "escape_step", "escaped", "diverged"]


def _unit(folder: Path, index: int = 1) -> Path:
    calibration = json.loads((folder / "calibration.json").read_text())
    return unit_path(folder, design_units(_small(), calibration)[index])


def _rerun(folder: Path, finished) -> list[str]:
    """Run the design again: its notices, after checking it recomputed the same numbers."""
    lines: list[str] = []
    frame = run_design(_small(), folder, log=lines.append)
    pd.testing.assert_frame_equal(frame[COLUMNS], finished[1][COLUMNS])
    return [line for line in lines if line.startswith("lcamlab:")]


def _forge(path: Path, change) -> None:
    """Rewrite a unit's arrays with ``change`` and forge its sidecar's checksum to match the new bytes."""
    with np.load(path) as z:
        arrays = dict(z)
    change(arrays)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    sidecar = path.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record["unit"]["sha256"] = sha256(buffer.getvalue())
    sidecar.write_text(json.dumps(record))


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith("lcamlab: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


# -- unit checkpoints and the run folder's files ------------------------------------------------------


def test_01_a_sidecar_of_another_design_is_refused(finished, tmp_path):
    # a unit with its sidecar copied in from another design's folder (the design key differs)
    folder = _copy(finished, tmp_path)
    sidecar = _unit(folder).with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record["unit"]["design"] = "0123456789ab"
    sidecar.write_text(json.dumps(record))
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "belongs to another design or point" in notices[0]


def test_02_a_matching_checksum_over_arrays_of_the_wrong_dtype_is_refused(finished, tmp_path):
    # was: trusted (escape steps stored as floats passed the checksum and the length check)
    folder = _copy(finished, tmp_path)
    path = _unit(folder)
    _forge(path, lambda a: a.update(escape_step=a["escape_step"].astype(np.float32)))
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "wrong type or shape (escape_step)" in notices[0] and str(path) in notices[0]


def test_03_a_matching_checksum_over_another_k_is_refused(finished, tmp_path):
    # was: trusted (the unit's own k scalar was never compared with the sidecar's)
    folder = _copy(finished, tmp_path)
    _forge(_unit(folder), lambda a: a.update(k=np.float64(a["k"] * 2)))
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "contradicts itself" in notices[0]


def test_04_a_trial_both_escaped_and_diverged_is_refused(finished, tmp_path):
    # was: trusted (a diverged trial counted as an escape)
    folder = _copy(finished, tmp_path)
    _forge(_unit(folder), lambda a: a.update(diverged=a["escaped"].copy()))
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "escaped and diverged" in notices[0]


def test_05_a_unit_file_that_is_a_folder_is_moved_aside(finished, tmp_path):
    # was: the run stopped with "... is a folder, but a file was expected: give the path of a file"
    folder = _copy(finished, tmp_path)
    path = _unit(folder)
    path.unlink()
    path.mkdir()
    (path / "kept.txt").write_text("mine")
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "is a folder, not a file" in notices[0] and path.is_file()
    assert [p.read_text() for p in folder.glob("*.damaged-*/kept.txt")] == ["mine"]  # nothing deleted


def test_06_a_sidecar_that_is_a_json_list_is_refused(finished, tmp_path):
    # a sidecar holding valid JSON of the wrong shape (a list, not the unit record)
    folder = _copy(finished, tmp_path)
    _unit(folder).with_suffix(".json").write_text("[]")
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "AttributeError" not in notices[0] and "moved it to" in notices[0]


def test_07_design_json_that_is_a_folder_is_moved_aside(finished, tmp_path):
    # was: the run stopped with "... design.json is a folder, but a file was expected"
    folder = _copy(finished, tmp_path)
    (folder / "design.json").unlink()
    (folder / "design.json").mkdir()
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "design.json is a folder" in notices[0] and (folder / "design.json").is_file()


@pytest.mark.parametrize("edit", [
    # was: a traceback (numpy's _UFuncNoLoopError from np.geomspace)
    lambda cal: cal.update(k_min="abc"),
    # was: every unit moved aside as "another point" and the run ended in "math domain error"
    lambda cal: cal.update(k_min=float("nan")),
    # was: "not enough values to unpack (expected 2, got 1)"
    lambda cal: cal.update(probes=[[1.0]]),
], ids=["string", "nan", "probes"])
def test_08_10_a_calibration_of_the_wrong_values_is_recomputed_and_the_units_kept(finished, tmp_path, edit):
    folder = _copy(finished, tmp_path)
    path = folder / "calibration.json"
    calibration = json.loads(path.read_text())
    edit(calibration["sgd/data"])
    path.write_text(json.dumps(calibration))
    notices = _rerun(folder, finished)
    assert len(notices) == 1 and "calibration.json does not hold what this run writes" in notices[0]
    assert not [p for p in folder.glob("*.damaged-*.npz")]  # the units were reused, not moved aside


def test_11_a_symlink_loop_as_data_dir_is_one_line(tmp_path, capsys):
    # a --data-dir that is a symbolic link loop (a -> b -> a)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert cli.main(["escape", "run", "--quick", "--data-dir", str(tmp_path / "a")]) == 2
    # was (with the preflight of `escape run` added this round): "... loopA is a file, not a folder"
    assert "is a symbolic link that leads nowhere (a loop" in _one_error_line(capsys)


def test_12_a_300_byte_folder_name_is_refused_before_any_work(tmp_path, capsys):
    # checked by the preflight now (`escape run` had none: the name was found too long at the first write)
    assert cli.main(["escape", "run", "--quick", "--data-dir", str(tmp_path / ("x" * 300))]) == 2
    err = _one_error_line(capsys)
    assert "--data-dir" in err and "name of 300 bytes" in err and "255" in err


def test_13_unicode_and_spaces_in_the_data_dir_work(tmp_path, capsys):
    # non-ASCII letters, CJK and spaces in the results folder: the run and its cache work as anywhere
    folder = tmp_path / "ünï cødé 目录"
    argv = ["escape", "saddle", "--quick", "--optimizers", "sgd", "--sharpness", "1,2,3", "--data-dir", str(folder)]
    assert cli.main(argv) == 0
    assert len(list((folder / "escape").glob("saddle_*.csv"))) == 1 and "mean time ~" in capsys.readouterr().out


def test_14_escape_show_of_the_valley_table_says_what_it_is(tmp_path, capsys):
    # was: "Invalid escape config: unknown field(s) [...] (written by another lcamlab version?)"
    from lcamlab.experiments.cache import write_table

    path = tmp_path / "valley_v2_0123456789ab.csv"
    write_table(path, pd.DataFrame({"alpha": [1.0]}), {"config": _small().to_config()}, name="valley_v2", version=2)
    assert cli.main(["escape", "show", str(path)]) == 2
    err = _one_error_line(capsys)
    assert "is a 'valley_v2' table, not a saddle result" in err and "escape run" in err


def test_15_two_sharpness_values_print_the_table_and_say_why_there_is_no_exponent(tmp_path, capsys):
    # was: exit 2 after the run, "Invalid fit: 2 usable points ... raise the budget or the trials"
    argv = ["escape", "saddle", "--quick", "--optimizers", "sgd", "--sharpness", "1,2", "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "no exponent for sgd" in out and "3 or more sharpness values" in out


# -- bounds and flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, said", [
    # was: silently the default optimizers
    (["escape", "run", "--quick", "--optimizers", ""], "Invalid --optimizers ''"),
    # was: silently the default arms
    (["escape", "run", "--quick", "--arms", ""], "Invalid --arms ''"),
    # a negative trial count
    (["escape", "run", "--trials", "-1"], "Invalid --trials -1"),
    # was: SIGSEGV (torch starting a million threads)
    (["bench", "escape", "--threads", "1000000"], "Invalid --threads 1000000"),
    # zero timed steps
    (["bench", "escape", "--steps", "0"], "Invalid --steps 0"),
    # a NaN learning rate for one optimizer
    (["escape", "saddle", "--quick", "--lr", "sgd=nan"], "Invalid learning rate: nan"),
    # a NaN neighbourhood radius
    (["escape", "saddle", "--quick", "--radius", "nan"], "Invalid saddle radius: nan"),
    # an infinite sharpness among finite ones
    (["escape", "saddle", "--quick", "--sharpness", "1,inf,3"], "Invalid sharpness k: inf"),
], ids=["optimizers-empty", "arms-empty", "trials-negative", "threads-million", "steps-zero", "lr-nan", "radius-nan",
        "sharpness-inf"])
def test_16_23_nonsense_values_are_refused_before_any_work(argv, said, capsys, tmp_path):
    # each value refused in one line before anything is computed or written
    assert cli.main([*argv, *(["--data-dir", str(tmp_path)] if argv[0] == "escape" else [])]) == 2
    assert said in _one_error_line(capsys)
    assert not list(tmp_path.rglob("*.csv"))  # nothing computed


@pytest.mark.parametrize("value", ["1.5", "nan"])
def test_24_25_a_non_integer_trial_count_is_a_usage_error(value, capsys):
    # --trials 1.5 and --trials nan: argparse's usage error, exit 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["escape", "run", "--trials", value])
    assert exit_info.value.code == 2 and f"invalid int value: '{value}'" in capsys.readouterr().err


def test_26_lcamlab_debug_with_spaces_and_capitals_is_on(monkeypatch, capsys):
    # LCAMLAB_DEBUG='  ON ' means on: the traceback, then the one line
    monkeypatch.setenv("LCAMLAB_DEBUG", "  ON ")
    assert cli.main(["claims", "--data-dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("lcamlab: error: no claims ledger")


# -- the numba loop's environment -----------------------------------------------------------------------


def test_27_numba_disable_jit_is_one_line_not_a_traceback():
    # was: AttributeError: 'function' object has no attribute 'overloads' (a traceback)
    code = "import sys; from lcamlab.cli import main; sys.exit(main(['escape', 'run', '--quick']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_DISABLE_JIT": "1"})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("lcamlab: error: the escape loop needs numba's compiler")
    assert "unset NUMBA_DISABLE_JIT" in done.stderr


def test_28_a_folder_in_place_of_numba_s_cache_index_compiles_without_the_cache(tmp_path):
    # was: a traceback (IsADirectoryError from numba's cache flush while recovering from the damaged cache)
    code = ("import os; from lcamlab.escape import loop; os.makedirs(loop._compile(0, 0, False, True, True)"
            "._cache._cache_file._index_path); from lcamlab.escape.design import quick_design, sample_escape_times; "
            "print(sample_escape_times('sgd', 2.0, trials=8, budget=50, config=quick_design()).escape_step[:4])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "this process compiles without it" in done.stderr and done.stdout.startswith("[")


def test_29_a_full_disk_during_escape_run_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    # ENOSPC at the command line, mid-run: one line naming the file being written, no temporary file left
    folder = tmp_path / "full"
    real = provenance.os.fsync
    calls = [0]

    def fsync(fd):  # the disk fills up after a few files
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(provenance.os, "fsync", fsync)
    assert cli.main(["escape", "run", "--quick", "--data-dir", str(folder)]) == 2
    err = _one_error_line(capsys)
    assert "no space left on device while writing" in err and str(folder / "escape") in err and "free space" in err
    assert not [p for p in folder.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]


# -- the claims ledger -----------------------------------------------------------------------------------


def _row(id, notebook="01_toy", estimate=0.2, low=0.1, high=0.3):
    return claims.claim_row(id, notebook=notebook, paper="LCAM", section="3.4", claim=f"claim {id}",
                            measured="drift", control="shuffled", estimate=estimate, low=low, high=high, n=50,
                            predicted=1)


@pytest.fixture
def ledger(tmp_path):
    claims.update_ledger([_row("a.first"), _row("a.second")], "01_toy", tmp_path)
    return claims.ledger_path(tmp_path)


def _forge_ledger(path: Path, change) -> None:
    """Edit the ledger's string table with ``change`` and forge the sidecar's checksum to match."""
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(text)
    data = text.to_csv(index=False).encode("utf-8")
    path.write_bytes(data)
    sidecar = path.with_suffix(".json")
    metadata = json.loads(sidecar.read_text())
    metadata["ledger"]["sha256"] = sha256(data)
    sidecar.write_text(json.dumps(metadata))


@pytest.mark.parametrize("change, said", [
    # a duplicated id (two rows claiming one claim)
    (lambda t: t.loc.__setitem__((1, "id"), t.loc[0, "id"]), "invalid id 'a.first'"),
    # was: accepted ("nan" is never written: NaN is an empty field)
    (lambda t: t.loc.__setitem__((0, "estimate"), "nan"), "invalid estimate 'nan'"),
    # was: accepted (an interval upside down)
    (lambda t: t.loc.__setitem__((0, "low"), "0.5"), "invalid low '0.5'"),
    # was: accepted ("holds" without an interval)
    (lambda t: t.loc.__setitem__((0, "low"), ""), "invalid verdict 'holds'"),
    # was: accepted (int() reads Arabic-Indic digits)
    (lambda t: t.loc.__setitem__((0, "n"), "\u0665\u0660"), "invalid n"),
], ids=["duplicate-id", "nan-text", "low-above-high", "holds-without-interval", "non-ascii-n"])
def test_30_34_a_forged_checksum_over_values_no_code_writes_is_refused(ledger, capsys, change, said):
    _forge_ledger(ledger, change)
    assert cli.main(["claims", "--data-dir", str(ledger.parent)]) == 2
    err = _one_error_line(capsys)
    assert said in err and str(ledger) in err and "lcamlab figures 01" in err


def test_35_a_readme_without_the_findings_markers_is_left_untouched(ledger, tmp_path, capsys):
    # --write-readme into a README that has no findings block: refused, the README unchanged
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    assert cli.main(["claims", "--data-dir", str(ledger.parent), "--readme", str(readme), "--write-readme"]) == 2
    assert "No findings block" in _one_error_line(capsys) and readme.read_text() == "# no markers here\n"


def test_36_claims_json_that_is_a_folder_is_refused(ledger, capsys):
    # the ledger's sidecar claims.json is a folder
    sidecar = ledger.with_suffix(".json")
    sidecar.unlink()
    sidecar.mkdir()
    assert cli.main(["claims", "--data-dir", str(ledger.parent)]) == 2
    assert "has no sidecar claims.json" in _one_error_line(capsys)
