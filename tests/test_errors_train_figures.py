"""Catalogue of issues 22/23 for `lcamlab train` and `lcamlab figures`: each case one line, or the right thing done.

Every case runs the command line in-process (the error boundary of lcamlab.cli) on
tiny data: generated Fashion-MNIST files of 48 images, and notebooks written by the
test. The cases:

* train on Fashion-MNIST without --arch: the data set's model (FMNet) is trained;
* --arch wrn with Fashion-MNIST: one line naming --arch fmnet, and nothing created;
* --data-dir that is a file (Fashion-MNIST and CIFAR): "is a file", not "not found";
* a run id with a newline or another control character: refused;
* a damaged Fashion-MNIST cache: the warning names the Fashion-MNIST cache;
* figures -p figures_dir / -p data_dir (alone or against --figures-dir): refused, one rule;
* figures --quick -p of a parameter the quick build does not read (02's trials): refused;
* a full disk while a notebook runs (a real ENOSPC, from /dev/full): the notebook's
  line names the path and the fix, never "OSError: [Errno 28]".
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import nbformat
import pytest

from lcamlab import cli, figures
from lcamlab.data.fashion_mnist import load_fashion_mnist, write_synthetic_fashion_mnist


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lcamlab: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def fashion(tmp_path):
    folder, digest = write_synthetic_fashion_mnist(tmp_path / "fm", n_train=48, n_test=24, seed=1)
    return folder, digest


def _fashion_argv(tmp_path, fashion, *more: str) -> list[str]:
    folder, digest = fashion
    return ["train", "--dataset", "fashion-mnist", "--data-dir", str(folder), "--data-md5", digest, "--epochs", "1",
            "--batch-size", "16", "--device", "cpu", "--no-channels-last", "--progress", "none",
            "--runs-dir", str(tmp_path / "runs"), *more]


# --------------------------------------------------------------------------------------------- train


def test_fashion_mnist_without_arch_trains_the_data_sets_model(tmp_path, fashion, capsys):
    from lcamlab.train.runs import read_run

    status, out, err = _run(capsys, *_fashion_argv(tmp_path, fashion, "--train-subset", "32"))
    assert status == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = read_run(run_dir)
    assert run.config["arch"] == "fmnet" and run.epochs_done == 1
    assert f"run folder: {run_dir}" in out


def test_a_model_that_cannot_take_the_data_names_the_arch_that_works_and_creates_nothing(tmp_path, fashion,
                                                                                         capsys):
    status, _, err = _run(capsys, *_fashion_argv(tmp_path, fashion, "--arch", "wrn"))
    line = _one_error_line(err)
    assert status == 2
    assert "--arch wrn" in line and "--dataset fashion-mnist" in line and "use --arch fmnet" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("dataset, holding", [("fashion-mnist", "train-images-idx3-ubyte.gz"),
                                              ("cifar10", "cifar-10-python.tar.gz")])
def test_a_data_dir_that_is_a_file_says_so(tmp_path, capsys, dataset, holding):
    afile = tmp_path / "data.txt"
    afile.write_text("not a folder")
    status, _, err = _run(capsys, "train", "--dataset", dataset, "--data-dir", str(afile), "--device", "cpu",
                          "--runs-dir", str(tmp_path / "runs"))
    line = _one_error_line(err)
    assert status == 2
    assert f"{afile} is a file, not a folder" in line and holding in line and "not found" not in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("run_id", ["a\nb", "tab\there", "bell\x07", "del\x7f"])
def test_a_run_id_with_a_control_character_is_refused(tmp_path, fashion, capsys, run_id):
    status, _, err = _run(capsys, *_fashion_argv(tmp_path, fashion, "--run-id", run_id))
    line = _one_error_line(err)
    assert status == 2 and "Invalid run_id" in line and "control characters" in line
    assert not (tmp_path / "runs").exists()


def test_the_fashion_mnist_cache_warning_names_the_fashion_mnist_cache(tmp_path, fashion):
    folder, digest = fashion
    load_fashion_mnist(folder, expected_md5=digest)  # writes the cache
    (cache,) = (folder / "cache").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:100])  # cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_fashion_mnist(folder, expected_md5=digest)
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"ignoring the Fashion-MNIST cache {cache}") and "CIFAR" not in message


# --------------------------------------------------------------------------------------------- figures


PLOT = """
from lcamlab import style
fig, ax = style.new_figure()
ax.plot([0, 1], [0, scale])
style.save_figure(fig, "demo_line", figures_dir)
"""


def _notebook(folder: Path, name: str, body: str, **lcamlab_meta) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('figures_dir = "."\ndata_dir = "."\nquick = False\nscale = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["lcamlab"] = {"quick_parameters": {"quick": True}, "figures": ["demo_line"], **lcamlab_meta}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("argv, option", [
    (["-p", "figures_dir", "B"], "--figures-dir B"),
    (["--figures-dir", "A", "-p", "figures_dir", "B"], "--figures-dir B"),
    (["-p", "data_dir", "B"], "--data-dir B"),
])
def test_folders_are_options_never_parameters(tmp_path, capsys, argv, option):
    notebook = _notebook(tmp_path / "nb", "00_plot.ipynb", PLOT)
    argv = [a if a not in ("A", "B") else str(tmp_path / a) for a in argv]
    status, out, err = _run(capsys, "figures", str(notebook), *argv)
    line = _one_error_line(err)
    assert status == 2 and "the folder is an option" in line and option.replace("B", str(tmp_path / "B")) in line
    assert not (tmp_path / "A").exists() and not (tmp_path / "B").exists() and not out


def test_a_parameter_the_quick_build_ignores_is_refused_with_quick(capsys):
    # the repository's notebook 02: its quick build runs quick_design(), whatever `trials` says
    status, out, err = _run(capsys, "figures", "02", "--quick", "-p", "trials", "0", "--dry-run")
    line = _one_error_line(err)
    assert status == 2 and "-p trials with --quick" in line and "02_saddle_escape.ipynb" in line
    assert "no effect" in line
    # without --quick the parameter is used, so it is accepted (a dry run checks it, runs nothing)
    assert _run(capsys, "figures", "02", "-p", "trials", "64", "--dry-run")[0] == 0


def test_every_quick_ignored_name_is_a_parameter_of_its_notebook():
    for notebook in figures.list_notebooks():
        ignored = figures.notebook_metadata(notebook).get("quick_ignores", [])
        declared = figures.parameter_specs(notebook)
        assert set(ignored) <= set(declared), notebook.name
        assert not set(ignored) & set(figures.notebook_metadata(notebook)["quick_parameters"]), notebook.name


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to simulate a full disk")
def test_a_full_disk_while_a_notebook_runs_names_the_path_and_the_fix(tmp_path, capsys):
    # writing to /dev/full fails with ENOSPC, exactly as a full disk does
    body = "with open('/dev/full', 'w') as handle:\n    handle.write('x' * 100)"
    notebook = _notebook(tmp_path / "nb", "00_full.ipynb", body)
    folders = ["--figures-dir", str(tmp_path / "f"), "--data-dir", str(tmp_path / "d"),
               "--build-dir", str(tmp_path / "b")]
    status, out, err = _run(capsys, "figures", str(notebook), *folders)
    assert status == 1
    (line,) = [line for line in out.splitlines() if "00_full.ipynb: FAILED" in line]
    assert "no space left on device while writing" in line and str(tmp_path / "f") in line
    assert "free space" in line and "--figures-dir" in line
    assert "Errno 28" not in out + err and "Traceback" not in out + err


def test_a_full_disk_message_names_the_file_when_the_error_does(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    error = PapermillExecutionError(cell_index=4, exec_count=1, source="", ename="OSError",
                                    evalue="[Errno 28] No space left on device: '/disk/figures/zoo.png'",
                                    traceback=[])
    message, cell = figures._failure_details(error, "into F or D")
    assert cell == 4 and message.startswith("no space left on device while writing /disk/figures/zoo.png:")
    message, cell = figures._failure_details(OSError(28, "No space left on device", "/disk/build/x.ipynb"), "")
    assert cell is None and "while writing /disk/build/x.ipynb:" in message

