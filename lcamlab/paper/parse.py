r"""Parsing the LCAM paper's text: every published curve of Figures 3-5 and Table 1.

The LCAM paper (Zhang et al., 2023, "Asymmetric Momentum: A Rethinking of Gradient
Descent"; the text ``000_2880b3189dc1ab7c.txt``, section 4) draws its WRN-28-10 results with
pgfplots, and the text keeps every ``\addplot[smooth,COLOR] plot coordinates
(epoch, value)...`` block. :func:`parse_curves` turns those blocks into
:class:`PaperCurve` records and :func:`curves_frame` into one tidy table, the
content of ``data/paper/curves.csv``; :func:`parse_table1` reads Table 1.

Conventions of the tidy table (one row per published point):

* ``figure``: ``fig3`` (CIFAR-10, four momentum groups, step schedule),
  ``fig4`` (CIFAR-100, same groups), ``fig5`` (final training, test error only);
* ``dataset``: ``cifar10`` or ``cifar100``;
* ``metric``: ``test_error`` (percent) or ``train_loss`` (the epoch's average
  mini-batch loss), the same names as a training run's ``metrics.jsonl``;
* ``group``: the momentum pair written ``"<below>-<above>"``, e.g. ``"0.9-0.95"``
  (:func:`lcamlab.train.groups.group_label`): ``below`` is used after an
  iteration whose loss was below the epoch's running mean (the paper's right / sparse
  phase), ``above`` otherwise (left / non-sparse). This is exactly the order of
  the paper's own legend ("0.95-0.9" is the green group, 0.95 in the sparse phase) and
  of Algorithm 1; fixed momentum 0.9 is ``"0.9-0.9"``;
* ``epoch``: 1-based epoch; ``value``: the plotted number, unrounded.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lcamlab import paths
from lcamlab.train.groups import FIGURES, LCAM_FINAL_PAIRS, STEP_GROUPS, group_label, parse_group
from lcamlab.train.groups import NUMBER_PATTERN as _NUMBER

__all__ = [
    "SOURCE_NAME",
    "SOURCE_SHA256",
    "SEEDS_DIR_ENV",
    "FIGURES",
    "METRICS",
    "PAPER_COLOR_GROUPS",
    "LCAM_FINAL_PAIRS",
    "PaperCurve",
    "find_source",
    "parse_curves",
    "curves_frame",
    "parse_table1",
]

#: The paper the curves come from, and the exact text they were extracted from.
SOURCE_NAME = "000_2880b3189dc1ab7c.txt"
SOURCE_SHA256 = "5a8b5fac53a3bcc84e41d0e774044a1ea3325b76d62b9120463ac6fb303a6b9d"
#: The variable naming the folder that holds the paper's text (the project's ``shared/seeds``).
SEEDS_DIR_ENV = "LCAMLAB_SEEDS_DIR"

METRICS = {"test_error": "Test error (%)", "train_loss": "Average training loss"}

# Panel captions that follow each pgfplots block in the paper, and the metric they plot.
# Figure 5's panels are named by dataset; its caption says they show the test error.
_PANEL_METRICS = {
    "Test Error / Epoch": "test_error",
    "Average Loss / Epoch": "train_loss",
    "Cifar100": "test_error",
    "Cifar10": "test_error",
}

_STEP_COLOURS = ("black", "blue", "green", "red")

#: The groups the paper's colours stand for, (below, above). The paper's section 4.1 names
#: the colours (black, blue: fixed 0.9, 0.95; green: 0.95 in the sparse phase;
#: red: 0.95 in the non-sparse phase); the legends of Figures 3-5 must agree with
#: this (checked during extraction). Figure 5 draws LCAM in green on both panels.
PAPER_COLOR_GROUPS: dict[str, dict[str, tuple[float, float]]] = {
    "fig3": dict(zip(_STEP_COLOURS, STEP_GROUPS)),
    "fig4": dict(zip(_STEP_COLOURS, STEP_GROUPS)),
    "fig5-cifar10": {"black": (0.9, 0.9), "green": LCAM_FINAL_PAIRS["cifar10"]},
    "fig5-cifar100": {"black": (0.9, 0.9), "green": LCAM_FINAL_PAIRS["cifar100"]},
}

_ADDPLOT = re.compile(
    r"\\addplot\[(?P<options>[^\]]*)\]\s*plot\s+coordinates\s*(?P<coords>(?:\(\s*[^()]*\)\s*)+);"
    r"(?P<after>.*?)(?=\\addplot|$)",
    re.S,
)
_POINT = re.compile(rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")
_LEGEND = re.compile(r"\\addlegendentry\s*(?:\{(?P<braced>[^}]*)\}|\d*\s*(?P<plain>.*))", re.S)
_CAPTION = re.compile(r"^Figure\s+(\d+):(.*)$")
_DATASET = re.compile(r"Cifar\s*(100|10)\b", re.I)


def _legend_group(legend: str, dataset: str) -> tuple[float, float]:
    """The momentum pair a legend entry of the paper names."""
    text = legend.strip()
    fixed = re.fullmatch(rf"Fixed\s+({_NUMBER})", text)
    if fixed:
        value = float(fixed.group(1))
        return value, value
    pair = re.fullmatch(rf"({_NUMBER})\s*-\s*({_NUMBER})", text)
    if pair:
        return float(pair.group(1)), float(pair.group(2))
    if text == "LCAM":
        return LCAM_FINAL_PAIRS[dataset]
    raise ValueError(f"Unrecognised legend entry in the paper's text: {legend!r}")


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class PaperCurve:
    """One published curve: an ``\\addplot`` block of the paper with its panel and group."""

    figure: str
    dataset: str
    metric: str
    group: str
    color: str
    legend: str
    epochs: tuple[int, ...]
    values: tuple[float, ...]
    source_line: int

    @property
    def momentum(self) -> tuple[float, float]:
        return parse_group(self.group)


def find_source(path: str | os.PathLike | None = None) -> Path:
    """Locate the paper's text: ``path``, else ``$LCAMLAB_SEEDS_DIR/<SOURCE_NAME>``, else ``../shared/seeds/``.

    A ``$LCAMLAB_SEEDS_DIR`` that is set is the only place looked at: a folder that does not exist or
    lacks the file is an error, never a silent fallback to another copy.

    Raises:
        FileNotFoundError: naming every place looked at (or the variable and its value).
    """
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"Paper text not found: {source} (pass the path of {SOURCE_NAME} with --source)")
        return source
    env = os.environ.get(SEEDS_DIR_ENV, "").strip()
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{SEEDS_DIR_ENV}={env} is not a folder: set it to the folder holding "
                                    f"{SOURCE_NAME}, or unset it to use ../shared/seeds/")
        if not (folder / SOURCE_NAME).is_file():
            raise FileNotFoundError(f"{SEEDS_DIR_ENV}={env} holds no {SOURCE_NAME}: set it to the folder holding "
                                    f"that file, or unset it to use ../shared/seeds/")
        return folder / SOURCE_NAME
    root = paths.REPO_ROOT
    candidates = [root.parent / "shared" / "seeds" / SOURCE_NAME, root / "shared" / "seeds" / SOURCE_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Paper text {SOURCE_NAME} not found (looked in {looked}); pass --source PATH or set {SEEDS_DIR_ENV}."
    )


def _epoch(x: float) -> int:
    if not math.isfinite(x) or x != round(x):
        raise ValueError(f"Non-integer epoch {x} in a pgfplots block of the paper's text")
    return int(round(x))


def parse_curves(text: str) -> list[PaperCurve]:
    """Every ``\\addplot ... plot coordinates`` curve of the paper's section 4, with its panel and group.

    Each line of the text that holds a pgfplots axis ends with the panel's
    caption ("Test Error / Epoch", "Average Loss / Epoch", "Cifar10", "Cifar100");
    the next "Figure N:" caption gives the figure and, for Figures 3/4, the
    dataset. Legend entries (``\\addlegendentry``) sit in one panel of each
    figure and name the group of each colour for both panels.

    Args:
        text: the full text of ``000_2880b3189dc1ab7c.txt``.
    Returns:
        The curves in the order they appear (Figure 3 left, right, Figure 4 ..., Figure 5).
    Raises:
        ValueError: if a block, caption or legend does not have the expected form.
    """
    lines = text.splitlines()
    raw = []  # (line_no, colour, epochs, values, legend or None, panel caption)
    for number, line in enumerate(lines, start=1):
        if "\\addplot" not in line or "plot coordinates" not in line:
            continue
        blocks = list(_ADDPLOT.finditer(line))
        if not blocks:
            raise ValueError(f"{SOURCE_NAME} line {number}: \\addplot without a readable coordinate list")
        tail = blocks[-1].group("after")
        panel = next((name for name in _PANEL_METRICS if tail.rstrip().endswith(name)), None)
        if panel is None:
            raise ValueError(f"{SOURCE_NAME} line {number}: pgfplots panel without a known caption "
                             f"(ends {tail[-40:]!r})")
        for index, block in enumerate(blocks):
            options = [o.strip() for o in block.group("options").split(",")]
            colours = [o for o in options if o not in ("smooth", "")]
            if len(colours) != 1:
                raise ValueError(f"{SOURCE_NAME} line {number}: cannot tell the colour from options {options}")
            points = [(float(a), float(b)) for a, b in _POINT.findall(block.group("coords"))]
            after = block.group("after")
            if index == len(blocks) - 1:
                after = after.rstrip()[: -len(panel)]
            legend_match = _LEGEND.search(after)
            legend = None
            if legend_match:
                legend = (legend_match.group("braced") or legend_match.group("plain") or "").strip()
            raw.append((number, colours[0], [_epoch(x) for x, _ in points], [y for _, y in points], legend, panel))

    curves: list[PaperCurve] = []
    legends: dict[tuple[str, str], str] = {}
    located = []
    for number, colour, epochs, values, legend, panel in raw:
        caption = next(
            (m for m in (_CAPTION.match(l.strip()) for l in lines[number:]) if m is not None), None
        )
        if caption is None:
            raise ValueError(f"{SOURCE_NAME} line {number}: no 'Figure N:' caption after the plot")
        figure = f"fig{caption.group(1)}"
        panel_dataset = _DATASET.fullmatch(panel)
        dataset_match = panel_dataset or _DATASET.search(caption.group(2))
        if dataset_match is None:
            raise ValueError(f"{SOURCE_NAME} line {number}: cannot tell the dataset of {figure}")
        dataset = f"cifar{dataset_match.group(1)}"
        if legend:
            legends[(figure, colour)] = legend
        located.append((number, colour, epochs, values, figure, dataset, _PANEL_METRICS[panel]))

    for number, colour, epochs, values, figure, dataset, metric in located:
        legend = legends.get((figure, colour))
        if legend is None:
            raise ValueError(f"{SOURCE_NAME} {figure}: no legend entry for the {colour} curves")
        pair = _legend_group(legend, dataset)
        expected_key = f"{figure}-{dataset}" if figure == "fig5" else figure
        expected = PAPER_COLOR_GROUPS.get(expected_key, {}).get(colour)
        if expected is None or not np.allclose(expected, pair):
            raise ValueError(
                f"{SOURCE_NAME} {figure} {dataset}: legend {legend!r} of the {colour} curve gives momentum {pair}, "
                f"expected {expected} (the paper's section 4)"
            )
        curves.append(
            PaperCurve(
                figure=figure, dataset=dataset, metric=metric, group=group_label(pair), color=colour,
                legend=legend, epochs=tuple(epochs), values=tuple(values), source_line=number,
            )
        )
    return curves


def curves_frame(curves: Sequence[PaperCurve]) -> pd.DataFrame:
    """The tidy table (figure, dataset, metric, group, epoch, value), one row per point."""
    rows = [
        (c.figure, c.dataset, c.metric, c.group, epoch, value)
        for c in curves
        for epoch, value in zip(c.epochs, c.values)
    ]
    return pd.DataFrame(rows, columns=["figure", "dataset", "metric", "group", "epoch", "value"])


def parse_table1(text: str) -> pd.DataFrame:
    """The paper's Table 1 as a tidy table: method, epochs, dataset, test_error (%), note.

    The rows of the paper read ``<method> <epochs> <cifar10> <cifar100> [(<note>)]``;
    the note ("18.92 in 50%") belongs to the CIFAR-100 entry of LCAM.
    """
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("Table 1:")), None)
    if start is None:
        raise ValueError(f"{SOURCE_NAME}: 'Table 1:' caption not found")
    header = lines[start + 1]
    if not re.match(r"Test Error \(%\)\s+Epochs\s+Cifar10\s+Cifar100", header):
        raise ValueError(f"{SOURCE_NAME} Table 1: unexpected header {header!r}")
    row_re = re.compile(
        rf"^(?P<method>\D+?)\s+(?P<epochs>\d+)\s+(?P<c10>{_NUMBER})\s+(?P<c100>{_NUMBER})(?:\s+\((?P<note>[^)]*)\))?\s*$"
    )
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        match = row_re.match(line.strip())
        if match is None:
            raise ValueError(f"{SOURCE_NAME} Table 1: unreadable row {line!r}")
        method = match.group("method").strip()
        epochs = int(match.group("epochs"))
        rows.append((method, epochs, "cifar10", float(match.group("c10")), ""))
        rows.append((method, epochs, "cifar100", float(match.group("c100")), match.group("note") or ""))
    if not rows:
        raise ValueError(f"{SOURCE_NAME} Table 1: no rows")
    return pd.DataFrame(rows, columns=["method", "epochs", "dataset", "test_error", "note"])
