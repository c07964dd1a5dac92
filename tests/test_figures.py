"""The headless rebuild: parameter handling, failure reporting, parallel builds."""

from __future__ import annotations

import nbformat
import pytest

from lcamlab import figures
from lcamlab.cli import main as cli_main


def _notebook(path, body: str, *, figures_list=(), quick=None):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('figures_dir = "."\ndata_dir = "."\nquick = False\nscale = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["lcamlab"] = {"quick_parameters": quick or {"quick": True}, "figures": list(figures_list)}
    nbformat.write(nb, path)
    return path


PLOT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from lcamlab import style
fig, ax = style.new_figure()
ax.plot([0, 1], [0, scale])
style.save_figure(fig, "demo_line", figures_dir)
"""


@pytest.fixture()
def notebook_dir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    _notebook(d / "00_good.ipynb", PLOT, figures_list=["demo_line"], quick={"quick": True, "scale": 2})
    _notebook(d / "01_bad.ipynb", "x = 1\nraise RuntimeError('boom at scale %s' % scale)")
    return d


def test_resolve_names(notebook_dir):
    assert [p.stem for p in figures.resolve_notebooks(["00"], notebook_dir)] == ["00_good"]
    assert [p.stem for p in figures.resolve_notebooks(["bad"], notebook_dir)] == ["01_bad"]
    with pytest.raises(ValueError, match="Unknown notebook: 'zzz'.*00_good, 01_bad"):
        figures.resolve_notebooks(["zzz"], notebook_dir)


def test_failure_is_reported_and_others_still_build(notebook_dir, tmp_path):
    results = figures.build(None, notebooks_dir=notebook_dir, quick=True, jobs=2, figures_dir=tmp_path / "f",
                            data_dir=tmp_path / "d", build_dir=tmp_path / "b", show_progress=False)
    good, bad = results
    assert good.ok and (tmp_path / "f" / "demo_line.png").exists() and (tmp_path / "f" / "demo_line.pdf").exists()
    assert good.parameters["scale"] == 2  # quick parameters were applied
    assert not bad.ok and bad.cell_index == 3  # papermill counts its injected-parameters cell
    assert "RuntimeError: boom at scale 1" in bad.error
    assert "01_bad.ipynb: FAILED in cell 3" in bad.describe()
    assert bad.executed_copy.exists()


def test_unknown_parameter_is_rejected(notebook_dir):
    with pytest.raises(ValueError, match="Unknown parameter 'scal'.*known: .*'scale'"):
        figures.build(None, notebooks_dir=notebook_dir, parameters={"scal": 3})
    with pytest.raises(ValueError, match="Invalid jobs: 0"):
        figures.build(None, notebooks_dir=notebook_dir, jobs=0)


def test_cli_exit_codes_and_messages(notebook_dir, tmp_path, capsys):
    common = ["--figures-dir", str(tmp_path / "f"), "--data-dir", str(tmp_path / "d"),
              "--build-dir", str(tmp_path / "b")]
    assert cli_main(["figures", str(notebook_dir / "00_good.ipynb"), "-p", "scale", "3", *common]) == 0
    assert cli_main(["figures", str(notebook_dir / "01_bad.ipynb"), *common]) == 1
    err = capsys.readouterr().err
    assert "01_bad.ipynb (cell 3)" in err
    assert cli_main(["figures", str(notebook_dir / "00_good.ipynb"), "-p", "nope", "1", *common]) == 2
    assert "Unknown parameter 'nope'" in capsys.readouterr().err


def test_declared_figure_missing_is_a_failure(tmp_path):
    d = tmp_path / "nb"
    d.mkdir()
    _notebook(d / "00_liar.ipynb", "pass", figures_list=["never_written"])
    (result,) = figures.build(None, notebooks_dir=d, figures_dir=tmp_path / "f", data_dir=tmp_path / "d",
                              build_dir=tmp_path / "b", show_progress=False)
    assert not result.ok and "never_written.png" in result.error


def test_parse_values():
    assert figures._parse_value("3") == 3
    assert figures._parse_value("0.5") == 0.5
    assert figures._parse_value("True") is True
    assert figures._parse_value("['a', 'b']") == ["a", "b"]
    assert figures._parse_value("cifar10") == "cifar10"


# --------------------------------------------------------------------------------------
# Issue 14: parameters as papermill reads them, checked types, cancellation, quick builds
# --------------------------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from lcamlab.paths import REPO_ROOT  # noqa: E402


def _typed_notebook(path, cell: str):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(cell)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


TYPED = """figures_dir = "."
data_dir = "."
quick = False                # small sizes
rate = 0.5
steps = 10
seed = 0
name = "cpu"
names = ["a", "b"]
scales = [1.0, 2.5]
maybe = None
seeds = 3  # type: int|list
"""


@pytest.mark.parametrize("key, text, expected", [
    ("rate", "2", 2.0), ("rate", "1e-3", 1e-3), ("steps", "600", 600), ("seed", "12", 12),
    ("quick", "True", True), ("quick", "false", False), ("name", "cuda", "cuda"), ("name", "'cuda:0'", "cuda:0"),
    ("names", "['x']", ["x"]), ("scales", "[1, 2]", [1.0, 2.0]), ("maybe", "3", 3), ("maybe", "text", "text"),
    ("seeds", "4", 4), ("seeds", "[0, 2]", [0, 2]),
])
def test_p_values_are_converted_to_the_declared_type(tmp_path, key, text, expected):
    nb = _typed_notebook(tmp_path / "00_typed.ipynb", TYPED)
    spec = figures.parameter_specs(nb)[key]
    value = figures.coerce_parameter(nb, spec, text, text=True)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("key, text, fragment", [
    ("rate", "nan", "finite number"), ("rate", "inf", "finite number"), ("rate", "fast", "expected a number"),
    ("steps", "1.5", "expected an integer"), ("steps", "9" * 5000, "5000 digits"),
    ("steps", str(2**63), "out of range"), ("seed", "-1", "seed must be >= 0"), ("quick", "1", "True or False"),
    ("names", "a", "list literal"), ("names", "[1]", "list elements must be str"), ("scales", "[1e999]", "finite"),
    ("seeds", "[0, 'x']", "list elements must be int"),
])
def test_bad_p_values_name_the_parameter_and_its_declaration(tmp_path, key, text, fragment):
    nb = _typed_notebook(tmp_path / "00_typed.ipynb", TYPED)
    spec = figures.parameter_specs(nb)[key]
    with pytest.raises(ValueError) as caught:
        figures.coerce_parameter(nb, spec, text, text=True)
    message = str(caught.value)
    assert fragment in message and f"-p {key}" in message and f"00_typed.ipynb declares {key} =" in message


def test_a_line_papermill_cannot_parse_is_named(tmp_path, caplog):
    nb = _typed_notebook(tmp_path / "00_typed.ipynb", TYPED + "noise = 0.2   # scale (0 = off)\n")
    assert figures.unparsed_parameter_lines(nb) == [(12, "noise", "noise = 0.2   # scale (0 = off)")]
    assert "noise" not in figures.parameter_specs(nb) and "quick" in figures.parameter_specs(nb)
    lines = []
    with pytest.raises(ValueError, match=r"Parameter 'noise' of 00_typed.ipynb is on a line papermill cannot parse"):
        figures.build([str(nb)], text_parameters={"noise": "1.0"}, log=lines.append, dry_run=True)
    assert any("line(s) 12" in line for line in lines)


def test_repository_notebooks_parse_completely_as_papermill_reads_them():
    for nb in figures.list_notebooks():
        assert figures.unparsed_parameter_lines(nb) == [], nb.name


def _readme_commands() -> list[list[str]]:
    """Every `lcamlab ...` command in the README's shell blocks, as argument lists."""
    text = (REPO_ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                words = shlex.split(part) if part else []
                if "lcamlab" in [Path(w).name for w in words[:1]] or words[:3] == ["python", "-m", "lcamlab"]:
                    args = words[1:] if Path(words[0]).name == "lcamlab" else words[3:]
                elif "-m" in words and "lcamlab" in words and words[0] == "torchrun":
                    args = words[words.index("lcamlab") + 1:]
                else:
                    continue
                assert "|" not in args, f"a README command reads as a shell pipe: {part}"
                commands.append(args)
    return commands


def test_every_readme_command(capsys, monkeypatch):
    """Each command the README shows parses; cheap ones run; `figures` ones run with --dry-run (every -p checked)."""
    from lcamlab.cli import build_parser

    commands = _readme_commands()
    assert ["figures", "00", "-p", "noise", "1.0", "-p", "steps", "600"] in commands
    assert len(commands) >= 15
    ran = []
    for args in commands:
        args = [a.replace("<run-id>", "lcam-cifar10-step-m0.9-0.95-s0") for a in args]
        try:
            build_parser(args).parse_args(args)
        except SystemExit as exit_info:  # --help exits 0 by design
            assert exit_info.code == 0 and "--help" in args, args
        if args[:1] == ["figures"] and "--list" not in args:
            assert cli_main([*args, "--dry-run"]) == 0, (args, capsys.readouterr().err)
            ran.append(args)
        elif "--help" in args or "--list" in args or "--status" in args or args[:2] == ["paper", "show"]:
            try:
                assert cli_main(args) == 0, (args, capsys.readouterr().err)
            except SystemExit as exit_info:
                assert exit_info.code == 0, args
            ran.append(args)
    assert len(ran) >= 7
    err = capsys.readouterr().err
    assert "Unable to parse" not in err and "lcamlab: error" not in err


SLEEPER = """
import os, pathlib, time
pathlib.Path(data_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(data_dir, "kernel.pid").write_text(str(os.getpid()))
time.sleep(300)
"""

MARKER = """
import pathlib
pathlib.Path(data_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(data_dir, "ran-" + str(scale)).write_text("x")
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


STUBBORN = SLEEPER.replace("import os, pathlib, time", "import os, pathlib, signal, time\n"
                                                        "signal.signal(signal.SIGINT, signal.SIG_IGN)")


@pytest.mark.parametrize("kernel", ["interruptible", "ignores-ctrl-c"])
def test_ctrl_c_cancels_queued_notebooks_and_shuts_kernels_down(tmp_path, kernel):
    d = tmp_path / "nb"
    d.mkdir()
    _notebook(d / "00_sleep.ipynb", SLEEPER if kernel == "interruptible" else STUBBORN)
    _notebook(d / "01_next.ipynb", MARKER)
    _notebook(d / "02_last.ipynb", MARKER)
    data = tmp_path / "d"
    argv = [*(str(p) for p in sorted(d.iterdir())), "--figures-dir", str(tmp_path / "f"), "--data-dir", str(data),
            "--build-dir", str(tmp_path / "b")]
    # A kernel that ignores the interrupt is killed after the grace period (5 s by default): 1 s here,
    # so that case is quick; an interruptible kernel gets 10 s, since on a loaded shared machine
    # its answer to the interrupt took more than 1 s (two CI runs of 2026-12-04 saw "killed").
    grace = 10.0 if kernel == "interruptible" else 1.0
    script = (f"import sys, lcamlab.figures as f; f.INTERRUPT_GRACE_SECONDS = {grace}; from lcamlab.cli import main; "
              "raise SystemExit(main(['figures', *sys.argv[1:]]))")
    # Ctrl-C's default disposition in the child: a test run started as a background job of a shell
    # (`bash .ci/run &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (data / "kernel.pid").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        kernel_pid = int((data / "kernel.pid").read_text())
        time.sleep(0.5)  # the cell is sleeping now
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"lcamlab figures did not end within 120 s of Ctrl-C; its output:\n{out}\n{err}")
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and "never started 01_next, 02_last" in err and "Traceback" not in err
    assert ("killed" in err) == (kernel == "ignores-ctrl-c")
    for _ in range(50):
        if not _alive(kernel_pid):
            break
        time.sleep(0.1)
    assert not _alive(kernel_pid), "the kernel was left running"
    assert not list(data.glob("ran-*"))  # the queued notebooks never ran
    assert not [p for p in (tmp_path / "f").rglob("*") if p.name.endswith(".tmp")]


def test_quick_build_leaves_the_repository_alone_and_a_malformed_notebook_is_one_failure(tmp_path, capsys):
    d = tmp_path / "nb"
    d.mkdir()
    _notebook(d / "00_good.ipynb", PLOT, figures_list=["demo_line"])
    (d / "01_broken.ipynb").write_text('{"cells": [ this is not json')
    before = {p.stem for p in (REPO_ROOT / "figures").iterdir()}
    status = cli_main(["figures", str(d / "00_good.ipynb"), str(d / "01_broken.ipynb"), "--quick"])
    captured = capsys.readouterr()
    assert status == 1
    assert "01_broken.ipynb" in captured.err and "not a readable notebook" in captured.out
    assert "00_good.ipynb: ok" in captured.out
    root = Path(re.search(r"writing into (\S+)", captured.err).group(1))
    assert not root.resolve().is_relative_to(REPO_ROOT)
    assert (root / "figures" / "demo_line.png").exists() and (root / "figures" / "demo_line.pdf").exists()
    assert not (REPO_ROOT / "figures" / "demo_line.png").exists() and "demo_line" not in before
    import shutil

    shutil.rmtree(root)


SHARED_TABLE = """
import time
import pandas as pd
from lcamlab.experiments import cache

def compute():
    time.sleep(1.0)  # both builds are computing at the same time
    return pd.DataFrame({"x": [0.1, 0.2, 0.3]})

entry = cache.cached_table("shared", {"a": 1}, compute, data_dir, seed=0)
assert entry.frame["x"].tolist() == [0.1, 0.2, 0.3]
"""


def test_two_identical_quick_builds_at_once_both_succeed(tmp_path, monkeypatch):
    """Two builds computing the same table into one data folder at once: both finish, one verified table."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(figures, "_scratch_root", lambda: Path(tempfile.mkdtemp(dir=tmp_path)))

    d = tmp_path / "nb"
    d.mkdir()
    nb = _notebook(d / "00_shared.ipynb", SHARED_TABLE)
    shared = tmp_path / "shared-data"

    def one_build(_):
        return figures.build([str(nb)], quick=True, data_dir=shared, show_progress=False, log=lambda text: None)

    with ThreadPoolExecutor(2) as pool:
        results = [r for rs in pool.map(one_build, range(2)) for r in rs]
    assert [r.ok for r in results] == [True, True], [r.describe() for r in results]
    assert results[0].executed_copy != results[1].executed_copy  # each build its own temporary folders
    assert len(list(shared.glob("shared_*.csv"))) == 1 and not list(shared.glob("*damaged*"))
    json.loads(next(shared.glob("shared_*.json")).read_text())  # a complete sidecar


# --------------------------------------------------------------------------------------
# Issue 22: other parameters never replace the default figures; the count is what was written
# --------------------------------------------------------------------------------------


def test_other_parameters_write_their_figures_elsewhere_and_count_them(tmp_path, monkeypatch, capsys):
    """-p scale 3 (not the default 1) writes into a new temporary folder; -p scale 1 is the default build."""
    import tempfile

    default_figures = tmp_path / "repo-figures"
    monkeypatch.setattr(figures, "FIGURES_DIR", default_figures)
    monkeypatch.setattr(figures, "_scratch_root", lambda: Path(tempfile.mkdtemp(dir=tmp_path, prefix="scratch-")))
    d = tmp_path / "nb"
    d.mkdir()
    nb = _notebook(d / "00_good.ipynb", PLOT, figures_list=["demo_line"])
    folders = ["--data-dir", str(tmp_path / "d"), "--build-dir", str(tmp_path / "b")]

    assert cli_main(["figures", str(nb), "-p", "scale", "3", *folders]) == 0
    captured = capsys.readouterr()
    (scratch,) = tmp_path.glob("scratch-*")
    assert f"-p scale differ from the notebooks' defaults: writing the figures into {scratch / 'figures'}" \
        in captured.err
    assert "00_good.ipynb: ok in" in captured.out and "2 figure files" in captured.out
    assert "ok    " not in captured.out  # one "ok" per line
    assert (scratch / "figures" / "demo_line.png").exists() and not default_figures.exists()

    assert cli_main(["figures", str(nb), "-p", "scale", "1", *folders]) == 0  # the default value: figures/
    assert "2 figure files" in capsys.readouterr().out
    assert (default_figures / "demo_line.png").exists() and len(list(tmp_path.glob("scratch-*"))) == 1


def test_only_the_figures_this_build_wrote_are_counted(tmp_path):
    """A declared figure left from an earlier build is not counted (and fails a default build)."""
    d = tmp_path / "nb"
    d.mkdir()
    nb = _notebook(d / "00_good.ipynb", PLOT, figures_list=["demo_line", "old_panel"])
    out = tmp_path / "f"
    out.mkdir()
    for suffix in (".png", ".pdf"):
        (out / f"old_panel{suffix}").write_bytes(b"from an earlier build")
    common = dict(figures_dir=out, data_dir=tmp_path / "d", build_dir=tmp_path / "b", show_progress=False)
    (with_override,) = figures.build([str(nb)], text_parameters={"scale": "2"}, **common)
    assert with_override.ok and [p.name for p in with_override.figures] == ["demo_line.png", "demo_line.pdf"]
    assert "2 figure files" in with_override.describe()
    (default,) = figures.build([str(nb)], **common)
    assert not default.ok and "old_panel.png" in default.error


def test_other_parameters_leave_the_ledger_and_summary_tables_of_data_alone(tmp_path):
    """A build with non-default values into the default data/ sets the notebooks' write_results False.

    (The claims ledger and the fixed-name Fashion-MNIST tables hold the default parameters' results.)
    Checked on the repository's notebooks by a dry run: the values each notebook would run with.
    """
    def values(*names, **kwargs):
        return {r.notebook.name[:2]: r.parameters for r in figures.build(list(names), dry_run=True, log=lambda _: None,
                                                                      **kwargs)}

    changed = values("01", "02", "04", text_parameters={"seed": "3"})
    assert {nb: v.get("write_results") for nb, v in changed.items()} == {"01": False, "02": False, "04": False}
    assert "write_results" not in values("01", text_parameters={"seed": "0"})["01"]  # the default value
    assert "write_results" not in values("01", text_parameters={"seed": "3"}, data_dir=str(tmp_path))["01"]
    assert values("01", text_parameters={"seed": "3", "write_results": "True"})["01"]["write_results"] is True
    assert "write_results" not in values("02", quick=True, data_dir=str(tmp_path))["02"]  # quick: never written
    for name in ("01", "02", "03", "04"):  # every notebook that writes ledger rows declares the switch
        notebook = next(figures.NOTEBOOKS_DIR.glob(f"{name}_*.ipynb"))
        assert "write_results" in figures.parameter_specs(notebook), notebook.name
