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
