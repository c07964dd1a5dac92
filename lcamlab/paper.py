"""The LCAM paper's published curves (000 Figures 3, 4, 5) and Table 1, as data.

000 (``000_2880b3189dc1ab7c.txt``, section 4) draws its WRN-28-10 results with
pgfplots, and the text keeps every ``\\addplot[smooth,COLOR] plot coordinates
(epoch, value)...`` block. This module turns those blocks into one tidy table,
``data/paper/curves.csv`` (+ ``curves.json`` provenance sidecar), and Table 1
into ``data/paper/table1.csv``, so that every reproduction in the notebooks can
be drawn next to what the paper published.

Conventions of ``curves.csv`` (one row per published point):

* ``figure``: ``fig3`` (CIFAR-10, four momentum groups, step schedule),
  ``fig4`` (CIFAR-100, same groups), ``fig5`` (final training, test error only);
* ``dataset``: ``cifar10`` or ``cifar100``;
* ``metric``: ``test_error`` (percent) or ``train_loss`` (the epoch's average
  mini-batch loss), the same names as a training run's ``metrics.jsonl``;
* ``group``: the momentum pair written ``"<below>-<above>"``, e.g. ``"0.9-0.95"``:
  ``below`` is used after an iteration whose loss was below the epoch's running
  mean (000's right / sparse phase), ``above`` otherwise (left / non-sparse).
  This is exactly the order of 000's own legend ("0.95-0.9" is the green group,
  0.95 in the sparse phase) and of Algorithm 1; fixed momentum 0.9 is ``"0.9-0.9"``;
* ``epoch``: 1-based epoch; ``value``: the plotted number, unrounded.

Per curve, the sidecar keeps the paper's colour, its legend entry, the source
line and the point count; the source file's name and SHA-256 are part of the
provenance record. Extraction is checked (:func:`check_curves`): 20 curves, the
epochs each starts at, and the learning-rate drops at epochs 32, 62 and 92 of
the "saddle trap" schedule (000 section 4).

Command line::

    lcamlab paper extract [--source FILE] [--out-dir data/paper] [--overwrite]
    lcamlab paper show [--figure fig4] [--dataset cifar100]
    python -m lcamlab.paper extract          # the same
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lcamlab import provenance

__all__ = [
    "SOURCE_NAME",
    "SOURCE_SHA256",
    "FIGURES",
    "METRICS",
    "PAPER_COLOR_GROUPS",
    "LCAM_FINAL_PAIRS",
    "STEP_DROP_EPOCHS",
    "PaperCurve",
    "group_label",
    "parse_group",
    "group_name",
    "find_source",
    "parse_curves",
    "curves_frame",
    "parse_table1",
    "check_curves",
    "detect_lr_drops",
    "drop_ratios",
    "extract",
    "default_paper_dir",
    "load_curves",
    "load_table1",
    "paper_curve",
    "paper_groups",
    "curve_summary",
    "configure_parser",
    "main",
]

#: The paper the curves come from, and the exact text they were extracted from.
SOURCE_NAME = "000_2880b3189dc1ab7c.txt"
SOURCE_SHA256 = "5a8b5fac53a3bcc84e41d0e774044a1ea3325b76d62b9120463ac6fb303a6b9d"

FIGURES = ("fig3", "fig4", "fig5")
METRICS = {"test_error": "Test error (%)", "train_loss": "Average training loss"}

# Panel captions that follow each pgfplots block in 000, and the metric they plot.
# Figure 5's panels are named by dataset; its caption says they show the test error.
_PANEL_METRICS = {
    "Test Error / Epoch": "test_error",
    "Average Loss / Epoch": "train_loss",
    "Cifar100": "test_error",
    "Cifar10": "test_error",
}

#: The groups the paper's colours stand for, (below, above). 000 section 4.1 names
#: the colours (black, blue: fixed 0.9, 0.95; green: 0.95 in the sparse phase;
#: red: 0.95 in the non-sparse phase); the legends of Figures 3-5 must agree with
#: this (checked during extraction). Figure 5 draws LCAM in green on both panels.
PAPER_COLOR_GROUPS: dict[str, dict[str, tuple[float, float]]] = {
    "fig3": {"black": (0.9, 0.9), "blue": (0.95, 0.95), "green": (0.95, 0.9), "red": (0.9, 0.95)},
    "fig4": {"black": (0.9, 0.9), "blue": (0.95, 0.95), "green": (0.95, 0.9), "red": (0.9, 0.95)},
    "fig5-cifar10": {"black": (0.9, 0.9), "green": (0.9, 0.95)},
    "fig5-cifar100": {"black": (0.9, 0.9), "green": (0.93, 0.9)},
}

#: 000 section 4.3: the LCAM pairs of the final training (legend entry "LCAM").
LCAM_FINAL_PAIRS: dict[str, tuple[float, float]] = {"cifar10": (0.9, 0.95), "cifar100": (0.93, 0.9)}

#: 1-based epochs at which the "saddle trap" schedule (lr x0.2 after 31, 61, 91
#: epochs; 000 section 4) starts a lower learning rate.
STEP_DROP_EPOCHS = (32, 62, 92)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ADDPLOT = re.compile(
    r"\\addplot\[(?P<options>[^\]]*)\]\s*plot\s+coordinates\s*(?P<coords>(?:\(\s*[^()]*\)\s*)+);"
    r"(?P<after>.*?)(?=\\addplot|$)",
    re.S,
)
_POINT = re.compile(rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")
_LEGEND = re.compile(r"\\addlegendentry\s*(?:\{(?P<braced>[^}]*)\}|\d*\s*(?P<plain>.*))", re.S)
_CAPTION = re.compile(r"^Figure\s+(\d+):(.*)$")
_DATASET = re.compile(r"Cifar\s*(100|10)\b", re.I)


# ----------------------------------------------------------------------------- groups


def group_label(momentum: Iterable[float] | float) -> str:
    """The ``"<below>-<above>"`` label of a momentum pair, e.g. ``(0.9, 0.95) -> "0.9-0.95"``.

    A single number (fixed momentum) is the pair ``(m, m)``.

    Args:
        momentum: ``(below, above)`` or one value.
    Returns:
        The label used in the ``group`` column of ``curves.csv`` and in every report.
    """
    if isinstance(momentum, (int, float)):
        pair = (float(momentum), float(momentum))
    else:
        pair = tuple(float(m) for m in momentum)
        if len(pair) == 1:
            pair = (pair[0], pair[0])
    if len(pair) != 2 or not all(0.0 <= m < 1.0 for m in pair):
        raise ValueError(f"Invalid momentum pair: {momentum!r} (expected (below, above), each in [0, 1))")
    return "-".join(f"{round(m, 6):g}" for m in pair)


def parse_group(label: str) -> tuple[float, float]:
    """Inverse of :func:`group_label`: ``"0.95-0.9" -> (0.95, 0.9)`` (below, above)."""
    match = re.fullmatch(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*", str(label))
    if match is None:
        raise ValueError(f"Invalid momentum group label: {label!r} (expected '<below>-<above>', e.g. '0.9-0.95')")
    return float(match.group(1)), float(match.group(2))


def group_name(group: str | Iterable[float], figure: str | None = None) -> str:
    """The paper's name for a group: ``"Fixed 0.9"``, ``"0.95-0.9"``, or ``"LCAM 0.9-0.95"`` in Figure 5."""
    label = group if isinstance(group, str) else group_label(group)
    below, above = parse_group(label)
    if below == above:
        return f"Fixed {below:g}"
    return f"LCAM {label}" if figure == "fig5" else label


def _legend_group(legend: str, dataset: str) -> tuple[float, float]:
    """The momentum pair a legend entry of 000 names."""
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
    raise ValueError(f"Unrecognised legend entry in 000: {legend!r}")


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class PaperCurve:
    """One published curve: an ``\\addplot`` block of 000 with its panel and group."""

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


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def find_source(path: str | os.PathLike | None = None) -> Path:
    """Locate 000's text: ``path``, else ``$LCAMLAB_SEEDS_DIR/<SOURCE_NAME>``, else ``../shared/seeds/``.

    Raises:
        FileNotFoundError: naming every place looked at.
    """
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"Paper text not found: {source} (pass the path of {SOURCE_NAME} with --source)")
        return source
    candidates = []
    if os.environ.get("LCAMLAB_SEEDS_DIR"):
        candidates.append(Path(os.environ["LCAMLAB_SEEDS_DIR"]) / SOURCE_NAME)
    root = _repo_root()
    candidates += [root.parent / "shared" / "seeds" / SOURCE_NAME, root / "shared" / "seeds" / SOURCE_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Paper text {SOURCE_NAME} not found (looked in {looked}); pass --source PATH or set LCAMLAB_SEEDS_DIR."
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _epoch(x: float) -> int:
    if not math.isfinite(x) or x != round(x):
        raise ValueError(f"Non-integer epoch {x} in a pgfplots block of 000")
    return int(round(x))


def parse_curves(text: str) -> list[PaperCurve]:
    """Every ``\\addplot ... plot coordinates`` curve of 000 section 4, with its panel and group.

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
            raise ValueError(f"000 line {number}: \\addplot without a readable coordinate list")
        tail = blocks[-1].group("after")
        panel = next((name for name in _PANEL_METRICS if tail.rstrip().endswith(name)), None)
        if panel is None:
            raise ValueError(f"000 line {number}: pgfplots panel without a known caption (ends {tail[-40:]!r})")
        for index, block in enumerate(blocks):
            options = [o.strip() for o in block.group("options").split(",")]
            colours = [o for o in options if o not in ("smooth", "")]
            if len(colours) != 1:
                raise ValueError(f"000 line {number}: cannot tell the colour from options {options}")
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
            raise ValueError(f"000 line {number}: no 'Figure N:' caption after the plot")
        figure = f"fig{caption.group(1)}"
        panel_dataset = _DATASET.fullmatch(panel)
        dataset_match = panel_dataset or _DATASET.search(caption.group(2))
        if dataset_match is None:
            raise ValueError(f"000 line {number}: cannot tell the dataset of {figure}")
        dataset = f"cifar{dataset_match.group(1)}"
        if legend:
            legends[(figure, colour)] = legend
        located.append((number, colour, epochs, values, figure, dataset, _PANEL_METRICS[panel]))

    for number, colour, epochs, values, figure, dataset, metric in located:
        legend = legends.get((figure, colour))
        if legend is None:
            raise ValueError(f"000 {figure}: no legend entry for the {colour} curves")
        pair = _legend_group(legend, dataset)
        expected_key = f"{figure}-{dataset}" if figure == "fig5" else figure
        expected = PAPER_COLOR_GROUPS.get(expected_key, {}).get(colour)
        if expected is None or not np.allclose(expected, pair):
            raise ValueError(
                f"000 {figure} {dataset}: legend {legend!r} of the {colour} curve gives momentum {pair}, "
                f"expected {expected} (000 section 4)"
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
    """000 Table 1 as a tidy table: method, epochs, dataset, test_error (%), note.

    The rows of 000 read ``<method> <epochs> <cifar10> <cifar100> [(<note>)]``;
    the note ("18.92 in 50%") belongs to the CIFAR-100 entry of LCAM.
    """
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("Table 1:")), None)
    if start is None:
        raise ValueError("000: 'Table 1:' caption not found")
    header = lines[start + 1]
    if not re.match(r"Test Error \(%\)\s+Epochs\s+Cifar10\s+Cifar100", header):
        raise ValueError(f"000 Table 1: unexpected header {header!r}")
    row_re = re.compile(
        rf"^(?P<method>\D+?)\s+(?P<epochs>\d+)\s+(?P<c10>{_NUMBER})\s+(?P<c100>{_NUMBER})(?:\s+\((?P<note>[^)]*)\))?\s*$"
    )
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        match = row_re.match(line.strip())
        if match is None:
            raise ValueError(f"000 Table 1: unreadable row {line!r}")
        method = match.group("method").strip()
        epochs = int(match.group("epochs"))
        rows.append((method, epochs, "cifar10", float(match.group("c10")), ""))
        rows.append((method, epochs, "cifar100", float(match.group("c100")), match.group("note") or ""))
    if not rows:
        raise ValueError("000 Table 1: no rows")
    return pd.DataFrame(rows, columns=["method", "epochs", "dataset", "test_error", "note"])


# ----------------------------------------------------------------------------- checks


def detect_lr_drops(
    frame: pd.DataFrame,
    *,
    figure: str,
    dataset: str,
    metric: str,
    count: int = 3,
    min_epoch: int = 10,
    separation: int = 5,
) -> list[int]:
    """Epochs at which all groups of a panel fall together: the learning-rate drops.

    For every epoch :math:`e` the drop score is the median over the panel's
    groups of the one-epoch log change

    .. math:: s_e = \\operatorname{median}_g \\, \\log \\frac{y_g(e)}{y_g(e-1)},

    and the ``count`` most negative scores are returned, greedily skipping
    epochs within ``separation`` of one already chosen (the epochs right after a
    drop keep falling). The median ignores one group's own oscillation (000
    Figure 4's red curve), and ``min_epoch`` skips the first epochs where every
    loss falls fast anyway.

    Args:
        frame: the tidy curves (:func:`load_curves`).
        figure, dataset, metric: the panel.
        count: how many drops to return.
        min_epoch: first epoch considered.
        separation: minimum distance between two returned drops.
    Returns:
        The drop epochs, strongest first.
    """
    if count < 1:
        raise ValueError(f"Invalid count: {count} (must be >= 1)")
    panel = frame[(frame.figure == figure) & (frame.dataset == dataset) & (frame.metric == metric)]
    if panel.empty:
        raise ValueError(f"No published curve for {figure} {dataset} {metric}")
    wide = panel.pivot_table(index="epoch", columns="group", values="value").sort_index()
    wide = wide.reindex(range(int(wide.index.min()), int(wide.index.max()) + 1))
    log_change = np.log(wide).diff()
    score = log_change.median(axis=1, skipna=True)
    score = score[(score.index >= min_epoch) & score.notna()].sort_values()
    chosen: list[int] = []
    for epoch in score.index:
        if all(abs(int(epoch) - c) > separation for c in chosen):
            chosen.append(int(epoch))
        if len(chosen) == count:
            break
    return chosen


def drop_ratios(
    frame: pd.DataFrame,
    *,
    figure: str,
    dataset: str,
    metric: str = "train_loss",
    epochs: Sequence[int] = STEP_DROP_EPOCHS,
) -> pd.DataFrame:
    r"""The one-epoch change of every group's curve across each learning-rate drop.

    .. math:: r_g(e) = y_g(e) / y_g(e-1)

    Args:
        frame: tidy curves (:func:`load_curves`) or a frame with the same columns.
        figure, dataset, metric: the panel.
        epochs: the first epochs at a lower learning rate (default 32, 62, 92).
    Returns:
        Columns group, epoch, before, after, ratio; drops outside a curve's epochs are left out.
    """
    panel = frame[(frame.figure == figure) & (frame.dataset == dataset) & (frame.metric == metric)]
    rows = []
    for group in dict.fromkeys(panel.group):
        curve = panel[panel.group == group].set_index("epoch").value
        for epoch in epochs:
            if epoch in curve.index and epoch - 1 in curve.index:
                before, after = float(curve[epoch - 1]), float(curve[epoch])
                rows.append({"group": group, "epoch": int(epoch), "before": before, "after": after,
                             "ratio": after / before})
    return pd.DataFrame(rows, columns=["group", "epoch", "before", "after", "ratio"])


# What the extraction must find (000 section 4; digest section 2): number of
# points per curve, the range the first epoch must fall in, and the last epoch.
_EXPECTED_START = {
    ("fig3", "cifar10"): (60, 64),
    ("fig4", "cifar100"): (1, 8),
    ("fig5", "cifar10"): (60, 75),
    ("fig5", "cifar100"): (60, 75),
}


def check_curves(frame: pd.DataFrame) -> list[str]:
    """Check an extraction against what 000 shows; returns the findings, raises on a failure.

    Checked: 20 curves (8 in each of Figures 3 and 4, 4 in Figure 5); every
    curve runs over consecutive epochs to 150; the CIFAR-10 panels start around
    epoch 62 (Figure 5 a little later), the CIFAR-100 panels of Figure 4 near
    epoch 1; test errors are percentages, losses positive; and the
    learning-rate drops of the step schedule appear at epochs 32, 62 and 92 in
    the CIFAR-100 average loss (32 and 62 in its test error), and at 92 in the
    CIFAR-10 panels (which start after 62).

    Raises:
        ValueError: listing every failed check.
    """
    problems: list[str] = []
    findings: list[str] = []
    keys = ["figure", "dataset", "metric", "group"]
    curves = frame.groupby(keys, sort=False)
    if curves.ngroups != 20:
        problems.append(f"expected 20 curves, found {curves.ngroups}")
    per_figure = frame.drop_duplicates(keys).figure.value_counts().to_dict()
    if per_figure != {"fig3": 8, "fig4": 8, "fig5": 4}:
        problems.append(f"expected 8/8/4 curves in Figures 3/4/5, found {per_figure}")
    for (figure, dataset, metric, group), curve in curves:
        epochs = curve.epoch.to_numpy()
        name = f"{figure} {dataset} {metric} {group}"
        if not np.array_equal(epochs, np.arange(epochs[0], epochs[0] + len(epochs))):
            problems.append(f"{name}: epochs not consecutive")
        if epochs[-1] != 150:
            problems.append(f"{name}: ends at epoch {epochs[-1]}, expected 150")
        low, high = _EXPECTED_START.get((figure, dataset), (None, None))
        if low is None or not low <= epochs[0] <= high:
            problems.append(f"{name}: starts at epoch {epochs[0]}, expected {low}..{high}")
        values = curve.value.to_numpy()
        if metric == "test_error" and not ((values > 0) & (values < 100)).all():
            problems.append(f"{name}: test error outside (0, 100) %")
        if metric == "train_loss" and not (values > 0).all():
            problems.append(f"{name}: non-positive loss")
    # The CIFAR-10 panels begin at the drop of epoch 62, and the loss keeps
    # falling for a few epochs after a drop: search them from epoch 67 on.
    drop_checks = [
        ("fig4", "cifar100", "train_loss", 3, 10, set(STEP_DROP_EPOCHS)),
        ("fig4", "cifar100", "test_error", 2, 10, {32, 62}),
        ("fig3", "cifar10", "train_loss", 1, 67, {92}),
        ("fig3", "cifar10", "test_error", 1, 67, {92}),
    ]
    for figure, dataset, metric, count, min_epoch, expected in drop_checks:
        try:
            found = detect_lr_drops(frame, figure=figure, dataset=dataset, metric=metric, count=count,
                                    min_epoch=min_epoch)
        except ValueError as error:
            problems.append(str(error))
            continue
        findings.append(f"{figure} {dataset} {metric}: learning-rate drops detected at epochs {sorted(found)}")
        if set(found) != expected:
            problems.append(f"{figure} {dataset} {metric}: drops at {sorted(found)}, expected {sorted(expected)}")
    if problems:
        raise ValueError("extraction of 000's curves failed its checks: " + "; ".join(problems))
    return findings


# ----------------------------------------------------------------------------- files


def default_paper_dir() -> Path:
    """The repository's ``data/paper`` folder, where the extracted curves are kept."""
    return _repo_root() / "data" / "paper"


def extract(
    source: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, object]:
    """Extract 000's curves and Table 1 into ``out_dir`` (``curves.csv``, ``table1.csv`` + sidecars).

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
    text = path.read_text(encoding="utf-8")
    digest = _sha256(path)
    curves = parse_curves(text)
    frame = curves_frame(curves)
    findings = check_curves(frame)
    table1 = parse_table1(text)
    out = Path(out_dir) if out_dir is not None else default_paper_dir()
    try:  # relative to the repository, so the record does not name one machine's folders
        shown_path = os.path.relpath(path.resolve(), _repo_root())
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
                config, description="000 Figures 3-5: every point of every published curve",
                columns={
                    "figure": "fig3 (CIFAR-10 groups), fig4 (CIFAR-100 groups), fig5 (final training)",
                    "dataset": "cifar10 | cifar100",
                    "metric": "test_error (%) | train_loss (epoch average of mini-batch losses)",
                    "group": "momentum pair '<below>-<above>' (below: loss < epoch running mean, 000's "
                             "sparse phase; above: otherwise); the order of 000's legend",
                    "epoch": "1-based epoch",
                    "value": "the plotted value, unrounded",
                },
                curves=curve_records, checks=findings, **source_record,
            ),
        ),
        "table1": (
            table1,
            provenance.run_metadata(
                config, description="000 Table 1: test error (%) of WRN-28-10 on CIFAR-10/100",
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
            if that file is missing, the curves are extracted from 000's text in memory).
    """
    frame = _read("curves", paper_dir)
    frame["group"] = frame["group"].astype(str)
    return frame


def load_table1(paper_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """000 Table 1 (method, epochs, dataset, test_error, note)."""
    frame = _read("table1", paper_dir)
    frame["note"] = frame["note"].fillna("").astype(str)
    return frame


def paper_curve(frame: pd.DataFrame, figure: str, dataset: str, metric: str, group: str | Iterable[float]) -> pd.DataFrame:
    """One published curve as ``(epoch, value)`` rows sorted by epoch (empty if the paper has none)."""
    label = group if isinstance(group, str) else group_label(group)
    rows = frame[(frame.figure == figure) & (frame.dataset == dataset) & (frame.metric == metric) & (frame.group == label)]
    return rows[["epoch", "value"]].sort_values("epoch").reset_index(drop=True)


def paper_groups(frame: pd.DataFrame, figure: str, dataset: str | None = None) -> list[str]:
    """The groups of a figure, in the paper's order (Figure 3/4: black, blue, green, red)."""
    rows = frame[frame.figure == figure]
    if dataset is not None:
        rows = rows[rows.dataset == dataset]
    return list(dict.fromkeys(rows.group))


def curve_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per curve: points, first/last epoch, min, value at epoch 120 and final value."""
    def summarise(curve: pd.DataFrame) -> pd.Series:
        at120 = curve.loc[curve.epoch == 120, "value"]
        return pd.Series({
            "points": len(curve), "first_epoch": int(curve.epoch.min()), "last_epoch": int(curve.epoch.max()),
            "min": curve.value.min(), "at_120": at120.iloc[0] if len(at120) else np.nan,
            "final": curve.sort_values("epoch").value.iloc[-1],
        })
    keys = ["figure", "dataset", "metric", "group"]
    return frame.groupby(keys, sort=False)[["epoch", "value"]].apply(summarise).reset_index()


# ----------------------------------------------------------------------------- command line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """``lcamlab paper extract|show``."""
    sub = parser.add_subparsers(dest="paper_command", metavar="ACTION", required=True)
    ext = sub.add_parser("extract", help="extract 000's Figure 3-5 curves and Table 1 into CSV (+ JSON provenance)",
                         description="Extract every point of 000's Figures 3-5 and its Table 1 into "
                                     "curves.csv / table1.csv with provenance sidecars, and check them.")
    ext.add_argument("--source", default=None,
                     help=f"path of {SOURCE_NAME} (default: $LCAMLAB_SEEDS_DIR or ../shared/seeds/)")
    ext.add_argument("--out-dir", default=None, help="output folder (default: the repository's data/paper)")
    ext.add_argument("--overwrite", action="store_true", help="replace existing files whose content differs")
    show = sub.add_parser("show", help="summarise the extracted curves and Table 1",
                          description="Print one line per published curve, the detected learning-rate drops and Table 1.")
    show.add_argument("--paper-dir", default=None, help="folder holding curves.csv (default: data/paper)")
    show.add_argument("--figure", choices=FIGURES, default=None, help="only this figure")
    show.add_argument("--dataset", choices=("cifar10", "cifar100"), default=None, help="only this dataset")


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab paper extract`` or ``lcamlab paper show``."""
    if args.paper_command == "extract":
        result = extract(args.source, args.out_dir, overwrite=args.overwrite)
        for name in ("curves", "table1"):
            print(f"{result[name]}: {result['status'][name]}")
        for line in result["findings"]:
            print(line)
        return 0
    curves = load_curves(args.paper_dir)
    table1 = load_table1(args.paper_dir)
    shown = curves
    if args.figure:
        shown = shown[shown.figure == args.figure]
    if args.dataset:
        shown = shown[shown.dataset == args.dataset]
    if shown.empty:
        raise ValueError(f"No published curve for figure={args.figure} dataset={args.dataset}")
    summary = curve_summary(shown)
    summary["name"] = [group_name(g, f) for g, f in zip(summary.group, summary.figure)]
    with pd.option_context("display.width", 140, "display.max_rows", 100):
        print(f"{summary.shape[0]} curves")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for line in check_curves(curves):
            print(line)
        print("\n000 Table 1 (test error %):")
        print(table1.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":  # python -m lcamlab.paper extract|show
    import sys

    from lcamlab.cli import main as _cli_main

    raise SystemExit(_cli_main(["paper", *sys.argv[1:]]))
