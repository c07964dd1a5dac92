"""The error catalogue of the claims ledger and of the CLI's flags and variables (issue 23, issue 22 item 2).

Each case is one thing a user can do wrong (or a file that went bad) and the one line
``lcamlab: error: ...`` it must end in: never a traceback, never a forged or empty
ledger published into the README.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings

import pytest

from lcamlab import paths
from lcamlab.cli import main
from lcamlab.experiments import claims


def _row(id, notebook="01_toy", estimate=0.2, low=0.1, high=0.3, predicted=1):
    return claims.claim_row(id, notebook=notebook, paper="LCAM", section="3.4", claim=f"claim {id}",
                            measured="drift", control="shuffled", estimate=estimate, low=low, high=high, n=50,
                            predicted=predicted)


@pytest.fixture
def ledger_dir(tmp_path):
    """A ledger of two notebooks (the first holds a 'does not hold' row), and a README with a findings block."""
    data = tmp_path / "data"
    claims.update_ledger([_row("a.first", predicted=-1), _row("a.second")], "01_toy", data)
    claims.update_ledger([_row("b.only", notebook="02_other", low=-0.1)], "02_other", data)
    readme = tmp_path / "README.md"
    ledger = claims.read_ledger(data)
    readme.write_text(claims.with_findings(f"# t\n\n{claims.FINDINGS_START}\n{claims.FINDINGS_END}\n", ledger))
    return data


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith("lcamlab: error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


_COMMANDS = [[], ["--check"], ["--write-readme"]]


def _claims(data, readme, *extra):
    return main(["claims", "--data-dir", str(data), "--readme", str(readme), *extra])


# -- a forged verdict ------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", _COMMANDS, ids=["show", "check", "write-readme"])
def test_a_hand_edited_verdict_is_refused_by_every_claims_command(ledger_dir, capsys, extra):
    path = claims.ledger_path(ledger_dir)
    path.write_text(path.read_text().replace("does not hold", "holds", 1))
    readme = ledger_dir.parent / "README.md"
    before = readme.read_bytes()
    assert _claims(ledger_dir, readme, *extra) == 2
    err = _one_error_line(capsys)
    assert str(path) in err and "checksum" in err
    assert "01_toy" in err and "`lcamlab figures 01`" in err and "02_other" not in err  # the owner, only
    assert "--write-readme" not in err  # never advises publishing a forged ledger
    assert readme.read_bytes() == before


def test_a_forged_checksum_still_meets_the_value_checks(ledger_dir):
    """Whoever edits both files passes the checksum, but no value the code never writes gets through."""
    path = claims.ledger_path(ledger_dir)
    text = path.read_text().replace(",50,", ",many,", 1)
    path.write_text(text)
    sidecar = path.with_suffix(".json")
    metadata = json.loads(sidecar.read_text())
    metadata["ledger"]["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    sidecar.write_text(json.dumps(metadata))
    with pytest.raises(claims.LedgerError, match=r"invalid n 'many'.*lcamlab figures 01"):
        claims.read_ledger(ledger_dir)


# -- a damaged ledger --------------------------------------------------------------------------------


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 40 // 100])


def _random(path):
    path.write_bytes(os.urandom(3000))


def _empty(path):
    path.write_bytes(b"")


def _non_numeric_n(path):
    path.write_text(path.read_text().replace(",50,", ",many,", 1))


def _missing_column(path):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")


def _no_sidecar(path):
    path.with_suffix(".json").unlink()


def _sidecar_cut(path):
    sidecar = path.with_suffix(".json")
    sidecar.write_text(sidecar.read_text()[:40])


_DAMAGE = [_cut, _random, _empty, _non_numeric_n, _missing_column, _no_sidecar, _sidecar_cut]


@pytest.mark.parametrize("extra", _COMMANDS, ids=["show", "check", "write-readme"])
@pytest.mark.parametrize("damage", _DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_ledger_is_one_line_naming_the_file_and_the_fix(ledger_dir, capsys, damage, extra):
    path = claims.ledger_path(ledger_dir)
    damage(path)
    readme = ledger_dir.parent / "README.md"
    before = readme.read_bytes()
    assert _claims(ledger_dir, readme, *extra) == 2
    err = _one_error_line(capsys)
    assert str(path) in err and "lcamlab figures" in err
    assert readme.read_bytes() == before


@pytest.mark.parametrize("damage", _DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_notebook_rebuilds_a_damaged_ledger_from_its_own_rows(ledger_dir, damage):
    """update_ledger keeps the damaged files (moved aside), warns once, and starts again from its rows."""
    path = claims.ledger_path(ledger_dir)
    damage(path)
    damaged = {p.name: p.read_bytes() for p in ledger_dir.iterdir()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ledger = claims.update_ledger([_row("b.only", notebook="02_other")], "02_other", ledger_dir)
    assert len(caught) == 1 and "moved aside" in str(caught[0].message) and str(path) in str(caught[0].message)
    assert list(ledger["id"]) == ["b.only"]
    assert list(claims.read_ledger(ledger_dir)["id"]) == ["b.only"]
    kept = {p.name.replace(p.name.split(".")[1], "X"): p.read_bytes() for p in ledger_dir.glob("claims.damaged-*")}
    assert kept == {name.replace("claims.", "claims.X."): data for name, data in damaged.items()}


def test_a_quick_build_over_a_damaged_ledger_moves_nothing(ledger_dir):
    path = claims.ledger_path(ledger_dir)
    _cut(path)
    before = path.read_bytes()
    with pytest.warns(UserWarning, match="Quick build"):
        preview = claims.update_ledger([_row("a.first")], "01_toy", ledger_dir, write=False)
    assert list(preview["id"]) == ["a.first"] and path.read_bytes() == before
    assert not list(ledger_dir.glob("claims.damaged-*"))


# -- no ledger where it is asked for --------------------------------------------------------------


@pytest.mark.parametrize("extra", _COMMANDS, ids=["show", "check", "write-readme"])
def test_no_ledger_in_data_dir_is_refused_and_the_readme_is_untouched(tmp_path, capsys, extra):
    readme = tmp_path / "README.md"
    shutil.copy(paths.REPO_ROOT / "README.md", readme)
    before, real = readme.read_bytes(), (paths.REPO_ROOT / "README.md").read_bytes()
    assert _claims("/nonexistent", readme, *extra) == 2
    err = _one_error_line(capsys)
    assert "no claims ledger at /nonexistent/claims.csv" in err and "--write-readme" not in err
    assert readme.read_bytes() == before and (paths.REPO_ROOT / "README.md").read_bytes() == real


def test_an_empty_ledger_never_replaces_the_findings(tmp_path, capsys):
    claims.update_ledger([], "01_toy", tmp_path)  # a notebook that measured nothing: a ledger of no rows
    readme = tmp_path / "README.md"
    readme.write_text(f"{claims.FINDINGS_START}\n- *holds*: a finding\n{claims.FINDINGS_END}\n")
    before = readme.read_bytes()
    for extra in (["--write-readme"], ["--check"]):
        assert _claims(tmp_path, readme, *extra) == 2
        assert "has no rows" in _one_error_line(capsys)
    assert readme.read_bytes() == before


# -- a rebuild that computes the same numbers changes no byte -------------------------------------


def test_numbers_are_stored_at_the_precision_their_interval_carries():
    assert claims.carried(3.098611697148992, 2.974762374820509, 3.2243678392181474) == 3.099
    assert claims.carried(0.0027131765471914648, 0.002085965637405189, 0.0033403874569777406) == 0.00271
    assert claims.carried(1234.5678, 1000.0, 1500.0) == 1235.0
    assert claims.carried(-0.5, -0.5, -0.5) == -0.5 and claims.carried(1 / 3, 0.2, 0.2) == 0.333333
    assert claims.carried(float("nan"), 0.0, 1.0) != claims.carried(float("nan"), 0.0, 1.0)  # NaN stays NaN
    row = _row("x", estimate=0.2000000001, low=0.1000000003, high=0.2999999998)
    assert (row["estimate"], row["low"], row["high"]) == (0.2, 0.1, 0.3)


def test_the_committed_ledger_verifies_and_holds_no_digit_below_its_precision():
    ledger = claims.read_ledger()
    if len(ledger) == 0:
        pytest.skip("no ledger yet")
    for r in ledger.itertuples():
        for x in (r.estimate, r.low, r.high):  # one digit of slack: rounding may shrink the width a decade
            assert claims.carried(x, r.low, r.high) == pytest.approx(x, rel=0, abs=abs(r.high - r.low) / 100), r.id


def test_a_rebuild_with_noise_below_the_precision_rewrites_neither_file(tmp_path, monkeypatch):
    from lcamlab import provenance

    claims.update_ledger([_row("a", estimate=0.2, low=0.1, high=0.3)], "01_toy", tmp_path)
    claims.update_ledger([_row("b", notebook="02_other")], "02_other", tmp_path)
    path = claims.ledger_path(tmp_path)
    before = (path.read_bytes(), path.with_suffix(".json").read_bytes())
    # another commit and thread count, numbers differing in the 9th digit: nothing is rewritten
    monkeypatch.setattr(provenance, "git_commit", lambda root=None: {"commit": "f" * 40, "dirty": False})
    monkeypatch.setattr(provenance, "describe_device", lambda device=None: "cpu (x86_64, 1 threads)")
    claims.update_ledger([_row("a", estimate=0.2000000003, low=0.0999999998, high=0.3000000001)], "01_toy",
                         tmp_path)
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    # a changed number: rewritten, and only the notebook that computed it records the new commit
    claims.update_ledger([_row("b", notebook="02_other", estimate=0.25)], "02_other", tmp_path)
    records = json.loads(path.with_suffix(".json").read_text())["ledger"]["notebooks"]
    assert records["02_other"]["git_commit"] == "f" * 40
    assert records["01_toy"]["git_commit"] != "f" * 40 and records["01_toy"]["device"] != "cpu (x86_64, 1 threads)"


# -- flags and variables ----------------------------------------------------------------------------


def test_bench_alone_is_a_usage_error_like_paper(capsys):
    for argv in (["bench"], ["paper"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: lcamlab {argv[0]} ") and "error: the following arguments are required" in err


@pytest.mark.parametrize("value, shown", [("off", False), ("0", False), ("false", False), ("No", False),
                                          ("", False), ("1", True), ("on", True), (" TRUE ", True)])
def test_lcamlab_debug_reads_off_as_off(monkeypatch, capsys, value, shown):
    monkeypatch.setenv("LCAMLAB_DEBUG", value)
    assert main(["claims", "--data-dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert ("Traceback" in err) is shown and "lcamlab: error: no claims ledger" in err


def test_an_unknown_lcamlab_debug_value_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("LCAMLAB_DEBUG", "maybe")
    assert main(["claims"]) == 2
    assert "Invalid LCAMLAB_DEBUG='maybe'" in _one_error_line(capsys)


@pytest.mark.parametrize("folder", ["/nonexistent", "empty"])
def test_lcamlab_seeds_dir_that_does_not_hold_the_paper_is_refused(tmp_path, monkeypatch, capsys, folder):
    folder = str(tmp_path) if folder == "empty" else folder
    monkeypatch.setenv("LCAMLAB_SEEDS_DIR", folder)
    assert main(["paper", "extract", "--out-dir", str(tmp_path / "out")]) == 2
    err = _one_error_line(capsys)
    assert f"LCAMLAB_SEEDS_DIR={folder}" in err and "unset it" in err
    assert not (tmp_path / "out").exists()  # no fallback to another copy of the paper


def test_paper_show_with_a_file_as_paper_dir_says_it_is_a_file(tmp_path, capsys):
    file = tmp_path / "curves.csv"
    file.write_text("x\n")
    assert main(["paper", "show", "--paper-dir", str(file)]) == 2
    err = _one_error_line(capsys)
    assert f"{file} is a file, not a folder" in err and "paper extract" not in err


@pytest.mark.parametrize("content", [b"hello, not a paper\n", bytes(range(256)) * 8])
def test_paper_extract_of_another_file_names_it(tmp_path, capsys, content):
    source = tmp_path / "notes.txt"
    source.write_bytes(content)
    assert main(["paper", "extract", "--source", str(source), "--out-dir", str(tmp_path / "out")]) == 2
    err = _one_error_line(capsys)
    assert f"{source} is not the LCAM paper's text" in err and "expected 20 curves" not in err


def test_bench_wrn_out_existing_suggests_no_missing_flag(tmp_path, capsys):
    out = tmp_path / "table.csv"
    out.write_text("kept\n")
    assert main(["bench", "wrn", "--out", str(out), "--device", "cpu"]) == 2
    err = _one_error_line(capsys)
    assert "already exists" in err and "--overwrite" not in err and "overwrite=True" not in err
    assert out.read_text() == "kept\n"


@pytest.mark.parametrize("argv, flag", [
    (["bench", "toys", "--trials", str(10**10)], "--trials"),
    (["bench", "toys", "--steps", str(10**10)], "--steps"),
    (["bench", "toys", "--steps", str(10**20)], "--steps"),
    (["bench", "toys", "--trials", "0"], "--trials"),
    (["bench", "optim", "--widen", "100000"], "--widen"),
    (["bench", "optim", "--depth", "1000000"], "--depth"),
    (["bench", "optim", "--steps", str(10**12), "--no-compile"], "--steps"),
    (["bench", "optim", "--rounds", "0"], "--rounds"),
])
def test_bench_sizes_the_machine_cannot_hold_are_refused_before_allocating(capsys, argv, flag):
    assert main(argv) == 2
    assert f"Invalid {flag} " in _one_error_line(capsys)


@pytest.mark.parametrize("where", ["data-dir is a file", "claims.csv is a folder"])
def test_a_ledger_location_of_the_wrong_kind_says_which(tmp_path, capsys, where):
    if where == "data-dir is a file":
        data = tmp_path / "data"
        data.write_text("x\n")
        expected = f"--data-dir {data} is a file, not a folder"
    else:
        data = tmp_path
        (tmp_path / "claims.csv").mkdir()
        expected = f"claims ledger {tmp_path / 'claims.csv'} is a folder, not a file"
    assert main(["claims", "--data-dir", str(data)]) == 2
    assert expected in _one_error_line(capsys)
