"""Where lcamlab finds the repository's folders: the one home of the repository-root lookup.

lcamlab runs from a source checkout (``pip install -e .``): the notebooks, the
committed results in ``data/`` and the figures in ``figures/`` live next to the
package. Every module that needs one of these folders asks here instead of
walking up from its own ``__file__``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "DATA_DIR", "FIGURES_DIR", "NOTEBOOKS_DIR", "data_dir"]

#: The checkout holding the ``lcamlab`` package (``lcamlab/..``).
REPO_ROOT: Path = Path(__file__).resolve().parent.parent
#: Committed results (``data/escape``, ``data/toys``, ``data/paper``, ...).
DATA_DIR: Path = REPO_ROOT / "data"
#: Figures the notebooks write.
FIGURES_DIR: Path = REPO_ROOT / "figures"
#: The papermill notebooks.
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"


def data_dir(*parts: str) -> Path:
    """A folder below the repository's ``data/``, e.g. ``data_dir("escape")``."""
    return DATA_DIR.joinpath(*parts)
