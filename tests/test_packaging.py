"""The wheel holds everything the package needs at run time (a ``pip install .`` works like the checkout).

The wheel is built offline from a copy of the source (``pip wheel --no-deps
--no-build-isolation``, the installed setuptools), so the checkout gets no
``build/`` folder and no egg-info. What it must hold is read from the source tree,
not listed by hand: every ``.py`` module of ``lcamlab/`` and every other file
inside ``lcamlab/`` (``py.typed``, and any data file a module reads next to itself).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lcamlab

PACKAGE = Path(lcamlab.__file__).resolve().parent
ROOT = PACKAGE.parent

def _source_files(package: Path = PACKAGE) -> set[str]:
    """Every file of a package source tree, as a wheel names it (``lcamlab/...``)."""
    files = set()
    for path in package.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.add(("lcamlab" / path.relative_to(package)).as_posix())
    return files


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the source the wheel is built from (the checkout may change meanwhile)."""
    source = tmp_path_factory.mktemp("wheel") / "source"
    source.mkdir()
    shutil.copytree(PACKAGE, source / "lcamlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    return source


@pytest.fixture(scope="module")
def wheel(source) -> Path:
    out = source.parent / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(out)],
        capture_output=True, text=True, timeout=300, cwd=source.parent)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = out.glob("lcamlab-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def test_the_source_tree_is_read_as_expected():
    files = _source_files()
    assert "lcamlab/__init__.py" in files and "lcamlab/py.typed" in files and "lcamlab/train/runner.py" in files
    assert not any("__pycache__" in name for name in files)


def test_the_wheel_holds_every_module_and_data_file(source, wheel_files):
    missing = sorted(_source_files(source / "lcamlab") - wheel_files)
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data] in pyproject.toml"


def test_the_wheel_installs_the_command_and_nothing_outside_the_package(wheel, wheel_files):
    outside = {name.split("/", 1)[0] for name in wheel_files if not name.startswith("lcamlab/")}
    assert outside == {"lcamlab-0.1.0.dist-info"}, outside
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("lcamlab-0.1.0.dist-info/entry_points.txt").decode()
    assert "lcamlab = lcamlab.cli:main" in entry_points
