r"""Momentum groups: how a (below, above) pair is labelled and named, and which the paper compares.

LCAM (000 Algorithm 1) picks the momentum of the next step after every
iteration: ``below`` when the iteration's loss is below the running mean of the
epoch's losses (000's right / sparse phase), ``above`` otherwise (left /
non-sparse phase). A *group* is such a pair, written ``"<below>-<above>"``
(:func:`group_label`), the order of 000's own legend: ``"0.95-0.9"`` is the
green group (0.95 in the sparse phase), fixed momentum 0.9 is ``"0.9-0.9"``.

This is the one home of the group vocabulary: training names its runs and
reads them back with it (:mod:`lcamlab.train.grid`, :mod:`lcamlab.train.runs`),
and the paper's curves (:mod:`lcamlab.paper`) and the reports
(:mod:`lcamlab.reports`) label their rows with it.

The groups of 000's WRN figures (000 sections 4.1 and 4.3):

======  ==========================================================================
figure  groups (below, above)
======  ==========================================================================
fig3    :data:`STEP_GROUPS`: (0.9, 0.9), (0.95, 0.95), (0.95, 0.9), (0.9, 0.95)
fig4    the same four groups
fig5    fixed (0.9, 0.9) against the dataset's :data:`LCAM_FINAL_PAIRS` entry
======  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "FIGURES",
    "STEP_GROUPS",
    "LCAM_FINAL_PAIRS",
    "NUMBER_PATTERN",
    "group_label",
    "parse_group",
    "group_name",
]

#: The WRN figures of 000: Figure 3 (CIFAR-10), Figure 4 (CIFAR-100), Figure 5 (final training).
FIGURES = ("fig3", "fig4", "fig5")

#: 000 Figures 3/4 in the paper's colour order: black (fixed 0.9), blue (fixed 0.95),
#: green (0.95 in the sparse phase), red (0.95 in the non-sparse phase); 000 section 4.1.
STEP_GROUPS: tuple[tuple[float, float], ...] = ((0.9, 0.9), (0.95, 0.95), (0.95, 0.9), (0.9, 0.95))

#: 000 section 4.3: the LCAM pairs of the final training (Figure 5, Table 1; legend entry "LCAM").
LCAM_FINAL_PAIRS: dict[str, tuple[float, float]] = {"cifar10": (0.9, 0.95), "cifar100": (0.93, 0.9)}

#: A decimal number as 000 and the group labels write it (``0.9``, ``.95``, ``1e-3``).
NUMBER_PATTERN = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def group_label(momentum: Iterable[float] | float) -> str:
    """The ``"<below>-<above>"`` label of a momentum pair, e.g. ``(0.9, 0.95) -> "0.9-0.95"``.

    A single number (fixed momentum) is the pair ``(m, m)``.

    Args:
        momentum: ``(below, above)`` or one value.
    Returns:
        The label used in the ``group`` column of ``curves.csv``, in run names and in every report.
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
    match = re.fullmatch(rf"\s*({NUMBER_PATTERN})\s*-\s*({NUMBER_PATTERN})\s*", str(label))
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
