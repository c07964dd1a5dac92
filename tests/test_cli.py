"""The command line: --help on every subcommand, python -m lcamlab, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lcamlab.cli import BENCHMARKS, SUBCOMMANDS, main


@pytest.mark.parametrize("argv", [[name] for name in SUBCOMMANDS] + [["bench", name] for name in BENCHMARKS])
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lcamlab " + " ".join(argv))
    assert "--" in out  # documents at least one option


def test_top_level_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in [*SUBCOMMANDS, "bench"]:
        assert name in out


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "subcommands" in capsys.readouterr().out


def test_python_dash_m_matches_console_script():
    result = subprocess.run([sys.executable, "-m", "lcamlab", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("lcamlab ")


def test_lab_opens_the_repository_with_the_notebooks_in_front(capsys):
    from lcamlab import lab, paths

    command = lab.lab_command(no_browser=True, extra=["--", "--port", "8890"])
    assert f"--ServerApp.root_dir={paths.REPO_ROOT}" in command
    assert "--LabApp.default_url=/lab/tree/notebooks" in command
    assert command[-2:] == ["--port", "8890"] and "--no-browser" in command
    assert main(["lab", "--print-command"]) == 0
    assert "jupyterlab" in capsys.readouterr().out
