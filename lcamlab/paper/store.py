"""The LCAM paper's curves and Table 1 on disk: ``data/paper/curves.csv`` and ``table1.csv``, written and read back.

:func:`extract` parses the paper's text (:mod:`lcamlab.paper.parse`), checks the
result (:func:`lcamlab.paper.analysis.check_curves`: 20 curves, the epochs each
starts at, and the learning-rate drops at epochs 32, 62 and 92 of the "saddle
trap" schedule, the paper's section 4) and writes the tidy tables with JSON provenance
sidecars; per curve, the sidecar keeps the paper's colour, its legend entry,
the source line and the point count, and the source file's name and SHA-256.
:func:`load_curves` and :func:`load_table1` read them back, so every
reproduction in the notebooks can be drawn next to what the paper published.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lcamlab import provenance
from lcamlab.paper.analysis import check_curves
from lcamlab.paper.parse import SOURCE_NAME, SOURCE_SHA256, curves_frame, find_source, parse_curves, parse_table1
from lcamlab.paths import REPO_ROOT, data_dir

__all__ = ["default_paper_dir", "extract", "load_curves", "load_table1"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_paper_dir() -> Path:
    """The repository's ``data/paper`` folder, where the extracted curves are kept."""
    return data_dir("paper")


def extract(
    source: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, object]:
    """Extract the paper's curves and Table 1 into ``out_dir`` (``curves.csv``, ``table1.csv`` + sidecars).

    Files identical in content to a fresh extraction are left alone (reported
    as ``"up to date"``); differing ones are replaced only with ``overwrite``.

    Args:
        source: path of ``000_2880b3189dc1ab7c.txt`` (default: :func:`find_source`).
        out_dir: output folder (default :func:`default_paper_dir`).
        overwrite: replace existing files whose content differs.
    Returns:
        ``{"curves": path, "table1": path, "status": {name: "written"|"up to date"}, "findings": [...]}``.
    """
    path = find_source(source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = ""  # binary: not the paper's text either
    digest = _sha256(path)
    curves = parse_curves(text)
    if not curves:  # one line instead of every check failing on an empty extraction
        raise ValueError(f"{path} is not the LCAM paper's text: it holds no pgfplots curve (\\addplot); pass the "
                         f"path of {SOURCE_NAME} with --source")
    frame = curves_frame(curves)
    findings = check_curves(frame)
    table1 = parse_table1(text)
    out = Path(out_dir) if out_dir is not None else default_paper_dir()
    try:  # relative to the repository, so the record does not name one machine's folders
        shown_path = os.path.relpath(path.resolve(), REPO_ROOT)
    except ValueError:  # another drive on Windows
        shown_path = str(path.resolve())
    source_record = {"source_file": path.name, "source_path": shown_path, "source_sha256": digest}
    if digest != SOURCE_SHA256:
        findings.append(f"note: {path.name} has SHA-256 {digest}, not the reference text's {SOURCE_SHA256}")
    curve_records = [
        {
            "figure": c.figure, "dataset": c.dataset, "metric": c.metric, "group": c.group,
            "momentum_below": c.momentum[0], "momentum_above": c.momentum[1],
            "paper_color": c.color, "paper_legend": c.legend, "points": len(c.epochs),
            "first_epoch": c.epochs[0], "last_epoch": c.epochs[-1], "source_line": c.source_line,
        }
        for c in curves
    ]
    config = {"extractor": "lcamlab.paper.extract", **source_record}
    outputs = {
        "curves": (
            frame,
            provenance.run_metadata(
                config, description="The LCAM paper's Figures 3-5: every point of every published curve",
                columns={
                    "figure": "fig3 (CIFAR-10 groups), fig4 (CIFAR-100 groups), fig5 (final training)",
                    "dataset": "cifar10 | cifar100",
                    "metric": "test_error (%) | train_loss (epoch average of mini-batch losses)",
                    "group": "momentum pair '<below>-<above>' (below: loss < epoch running mean, the paper's "
                             "sparse phase; above: otherwise); the order of the paper's legend",
                    "epoch": "1-based epoch",
                    "value": "the plotted value, unrounded",
                },
                curves=curve_records, checks=findings, **source_record,
            ),
        ),
        "table1": (
            table1,
            provenance.run_metadata(
                config, description="The LCAM paper's Table 1: test error (%) of WRN-28-10 on CIFAR-10/100",
                columns={"method": "row of Table 1", "epochs": "training epochs",
                         "dataset": "cifar10 | cifar100", "test_error": "percent",
                         "note": "remark printed beside the value"},
                **source_record,
            ),
        ),
    }
    status: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for name, (table, metadata) in outputs.items():
        target = out / f"{name}.csv"
        paths[name] = target
        if target.exists() and not overwrite:
            existing = pd.read_csv(target)
            if _same_table(existing, table):
                status[name] = "up to date"
                continue
            raise FileExistsError(
                f"{target} exists and differs from a fresh extraction of {path.name}; "
                f"pass --overwrite (overwrite=True) to replace it"
            )
        provenance.save_table(target, table, metadata, overwrite=True)
        status[name] = "written"
    return {"curves": paths["curves"], "table1": paths["table1"], "status": status, "findings": findings}


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            if not np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-15, atol=0, equal_nan=True):
                return False
        elif not (x.fillna("").astype(str).to_numpy() == y.fillna("").astype(str).to_numpy()).all():
            return False
    return True


def _read(name: str, paper_dir: str | os.PathLike | None) -> pd.DataFrame:
    directory = Path(paper_dir) if paper_dir is not None else default_paper_dir()
    if directory.is_file():
        raise ValueError(f"{directory} is a file, not a folder: give the folder that holds curves.csv and "
                         f"table1.csv (default: the repository's data/paper)")
    path = directory / f"{name}.csv"
    if path.is_file():
        frame, _ = provenance.load_table(path)
        return frame
    if paper_dir is not None:
        raise FileNotFoundError(f"{path} not found; create it with `lcamlab paper extract --out-dir {directory}`")
    # An installed copy without the repository's data/: extract in memory from the paper text.
    try:
        text = find_source().read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path} not found and {error}") from None
    return curves_frame(parse_curves(text)) if name == "curves" else parse_table1(text)


def load_curves(paper_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The published curves (tidy: figure, dataset, metric, group, epoch, value).

    Args:
        paper_dir: folder holding ``curves.csv`` (default: the repository's ``data/paper``;
            if that file is missing, the curves are extracted from the paper's text in memory).
    """
    frame = _read("curves", paper_dir)
    frame["group"] = frame["group"].astype(str)
    return frame


def load_table1(paper_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's Table 1 (method, epochs, dataset, test_error, note)."""
    frame = _read("table1", paper_dir)
    frame["note"] = frame["note"].fillna("").astype(str)
    return frame
