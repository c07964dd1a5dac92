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
