"""`lcamlab train` / `lcamlab grid`: a bad argument is one clear line and exit status 2."""

from __future__ import annotations

import pytest

from lcamlab import cli


@pytest.fixture
def run_cli(tmp_path, capsys):
    """Run the CLI; return (status, stderr lines). Runs go to tmp_path/runs, data to an empty folder."""
    (tmp_path / "empty").mkdir()

    def run(*argv):
        status = cli.main([*argv[:1], *argv[1:], "--runs-dir", str(tmp_path / "runs"),
                           "--data-dir", str(tmp_path / "empty")])
        captured = capsys.readouterr()
        return status, captured.err.strip().splitlines()

    return run


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--optimizer", "lion"], "Invalid optimizer: 'lion' (choose one of sgd, lcam, adai"),
    (["train", "--momentum", "0.9", "1.0"], "Invalid momentum above value: 1.0 (must be in [0, 1))"),
    (["train", "--momentum", "-0.1", "0.9"], "Invalid momentum below value: -0.1"),
    (["train", "--momentum", "0.9", "0.95", "0.99"], "Invalid momentum: [0.9, 0.95, 0.99]"),
    (["train", "--optimizer", "sgd", "--momentum", "0.9", "0.95"], "Invalid momentum for sgd"),
    (["train", "--epochs", "0"], "Invalid epochs: 0 (must be an integer > 0)"),
    (["train", "--epochs", "-3"], "Invalid epochs: -3"),
    (["train", "--schedule", "linear"], "Invalid schedule: 'linear'"),
    (["train", "--dataset", "mnist"], "Invalid dataset: 'mnist'"),
    (["train", "--lr", "0"], "Invalid lr: 0.0"),
    (["grid", "fig6"], "'fig6' (choose one of fig3, fig4, fig5"),
    (["grid", "fig3", "--seeds", "0"], "Invalid --seeds: 0"),
    (["grid", "fig5", "--dataset", "svhn"], "Invalid dataset for fig5: 'svhn'"),
])
def test_bad_arguments_are_one_line_and_exit_2(run_cli, tmp_path, argv, fragment):
    status, err = run_cli(*argv)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("lcamlab: error: ")
    assert fragment in err[0]
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_missing_data_says_where_it_looked_and_how_to_get_it(run_cli, tmp_path):
    status, err = run_cli("train", "--device", "cpu", "--depth", "10", "--widen", "1")
    assert status == 2 and len(err) == 1
    assert "not found" in err[0] and str(tmp_path / "empty") in err[0] and "--download" in err[0]
    assert not (tmp_path / "runs").exists()  # no run folder for a run that never started


def test_help_texts(capsys):
    for argv in (["train", "--help"], ["grid", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--resume RUN_DIR" in out and "--momentum BETA" in out and "--seeds N" in out
    assert "(default: 0.1)" in out and "(default: 0.9 0.95)" in out
