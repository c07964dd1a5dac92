"""The command line: --help on every subcommand, python -m lcamlab, clear errors."""

from __future__ import annotations

import re
import subprocess
import sys
import time

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
    # plain text, as a terminal shows it: no reStructuredText of the docstrings it is taken from
    markup = [line for line in out.splitlines() if re.search(r"``|\*\*\w|:(func|class|mod|data|meth):`|::$", line)]
    assert not markup, markup


def test_help_markup_becomes_plain_text():
    from lcamlab.cli import plain_text

    assert plain_text("``lcamlab grid``: **bold**, :func:`~lcamlab.train.grid.run_grid`, "
                      "`submitit <https://github.com/facebookincubator/submitit>`_. Examples::") == \
        "lcamlab grid: bold, lcamlab.train.grid.run_grid, submitit (https://github.com/facebookincubator/submitit). " \
        "Examples:"


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


def test_bench_gpu_without_a_gpu_says_so_at_once():
    """On a machine without CUDA the GPU check exits 0 in under a second with one clear line."""
    from lcamlab.bench.gpu import _nvidia_driver_present, cuda_device_name

    if cuda_device_name() is not None:
        pytest.skip("this machine has a GPU: `lcamlab bench gpu` runs the real check")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "lcamlab", "bench", "gpu"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("lcamlab bench gpu: no CUDA GPU on this machine")
    assert result.stdout.count("\n") == 1 and not result.stderr
    if not _nvidia_driver_present():  # then torch is never imported
        assert elapsed < 1.0


def test_the_optimizers_import_without_the_notebook_stack():
    """`from lcamlab.optim import LCAM` in a training loop imports torch, not matplotlib, pandas or papermill."""
    code = ("import sys; from lcamlab.optim import LCAM, Adai, AdaRem, optimizer_step; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'papermill', 'scipy', 'jupyterlab', 'numba') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bench_gpu_report(tmp_path, monkeypatch, capsys):
    """The GPU check's table and JSON report, with the CUDA benchmarks stubbed (this machine may have no GPU)
    and the test step real: a tests folder with one passing and one failing CUDA test."""
    import json

    from lcamlab.bench import gpu

    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_fake.py").write_text("def test_cuda_ok():\n    pass\n\ndef test_cuda_broken():\n    assert False\n\n"
                                        "def test_not_selected():\n    assert False\n")
    monkeypatch.setattr(gpu, "cuda_device_name", lambda: "NVIDIA Test GPU")
    monkeypatch.setattr(gpu, "_run_optim", lambda: [
        {"check": "LCAM / SGD step time, WRN-28-10 shapes", "result": "1.010x", "target": "<= 1.05x", "ok": True}])
    monkeypatch.setattr(gpu, "_run_wrn", lambda: [
        {"check": "WRN-28-10 engine images/s (batch 128, bf16)", "result": "13,000", "target": ">= 12,700", "ok": True}])
    out = tmp_path / "report.json"
    assert main(["bench", "gpu", "--out", str(out), "--tests", str(tests)]) == 1  # one CUDA test failed
    printed = capsys.readouterr().out
    assert "GPU check on NVIDIA Test GPU" in printed and "FAILED" in printed and "test_cuda_broken" in printed
    report = json.loads(out.read_text())
    assert report["gpu"] == "NVIDIA Test GPU" and report["date"] and report["torch_version"]
    tests_row = report["checks"][0]
    assert tests_row["ok"] is False and "1 failed, 1 passed" in tests_row["result"]
    assert [row["ok"] for row in report["checks"][1:]] == [True, True]
    # a second run never overwrites the report: one clear error, before any work
    assert main(["bench", "gpu", "--out", str(out), "--tests", str(tests)]) == 2
    assert "already exists" in capsys.readouterr().err
