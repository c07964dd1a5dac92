"""Every notebook executes with its quick parameters through the same code path as ``lcamlab figures``."""

from __future__ import annotations

import json

import pytest

from lcamlab import figures

NOTEBOOKS = figures.list_notebooks()


def test_there_are_notebooks():
    assert [nb.stem[:2] for nb in NOTEBOOKS][:1] == ["00"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_is_stored_clean_and_parameterised(notebook):
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "stored with outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    declared = figures.parameter_specs(notebook)
    assert {"figures_dir", "data_dir", "quick"} <= set(declared)
    meta = nb["metadata"]["lcamlab"]
    assert meta["quick_parameters"].get("quick") is True
    assert set(meta["quick_parameters"]) <= set(declared)
    assert meta["figures"], "declares the figures it writes"
    assert any(c["cell_type"] == "markdown" for c in nb["cells"][:2]), "opens with narrative"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_quick(notebook, tmp_path):
    results = figures.build([str(notebook)], quick=True, figures_dir=tmp_path / "figures",
                            data_dir=tmp_path / "data", build_dir=tmp_path / "build", show_progress=False)
    (result,) = results
    assert result.ok, result.describe()
    stems = figures.notebook_metadata(notebook)["figures"]
    for stem in stems:
        png = tmp_path / "figures" / f"{stem}.png"
        assert png.stat().st_size > 5_000, f"{png.name} looks empty"
        assert (tmp_path / "figures" / f"{stem}.pdf").exists()
    executed = json.loads(result.executed_copy.read_text())
    errors = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_folder_defaults_do_not_depend_on_the_working_directory(tmp_path):
    """Plain papermill from another folder: every notebook's default figures_dir / data_dir is the checkout's.

    The notebooks' own parameters cells, executed by papermill's command line with a working directory
    outside the repository (as `papermill notebooks/00_optimizer_zoo.ipynb out.ipynb` from the clone's
    root would be), followed by a cell that records the two folders; nothing is written into them.
    """
    import subprocess
    import sys

    import nbformat

    from lcamlab import paths

    probe = nbformat.v4.new_notebook()
    probe.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    record = tmp_path / "folders.jsonl"
    for notebook in NOTEBOOKS:
        (cell,) = [c for c in json.loads(notebook.read_text())["cells"]
                   if "parameters" in c.get("metadata", {}).get("tags", [])]
        probe.cells.append(nbformat.v4.new_code_cell("".join(cell["source"])))
        probe.cells.append(nbformat.v4.new_code_cell(
            f"import json\nwith open({str(record)!r}, 'a') as out:\n"
            f"    out.write(json.dumps([{notebook.name!r}, figures_dir, data_dir]) + '\\n')"))
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    nbformat.write(probe, elsewhere / "probe.ipynb")
    done = subprocess.run([sys.executable, "-m", "papermill", "probe.ipynb", "out.ipynb", "-k", "python3"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert [name for name, _, _ in rows] == [nb.name for nb in NOTEBOOKS]
    for name, figures_dir, data_dir in rows:
        assert (figures_dir, data_dir) == (str(paths.FIGURES_DIR), str(paths.DATA_DIR)), name
    assert sorted(p.name for p in elsewhere.iterdir()) == ["out.ipynb", "probe.ipynb"]


def test_rebuilding_the_fashion_mnist_reports_leaves_the_tracked_files_byte_identical(tmp_path):
    """What notebooks 03/04 write into data/paper_reproduction/ from the committed runs comes out byte-identical.

    The mechanism of a clean `git status` after Run All for these tracked files: the tables are computed
    from the committed run logs alone, and a table whose CSV is unchanged keeps its sidecar (the commit
    that computed it) untouched (lcamlab.provenance.save_table).
    """
    import shutil

    from lcamlab import paths, reports
    from lcamlab.reports import plan

    committed = paths.data_dir("paper_reproduction")
    data = tmp_path / "data"
    shutil.copytree(committed, data / "paper_reproduction")
    for run_sets, figure, kind, stem, notebook in (
            (("fig3-fmnist",), "fig3", "groups", "fig3_fmnist", "03_momentum_groups"),
            (("fig5-fmnist", "controls-fmnist"), "fig5", "final", "fig5_fmnist", "04_final_training")):
        runs = plan.prepare_fmnist(run_sets, seeds=8, data_dir=data, runs_dir=paths.data_dir("runs-fmnist"),
                                   log=None)
        reports.fmnist_report(runs, figure=figure, kind=kind, notebook=notebook, data_dir=data, stem=stem,
                              title=stem, show=False, log=None)
    for path in sorted(committed.iterdir()):
        assert (data / "paper_reproduction" / path.name).read_bytes() == path.read_bytes(), path.name
