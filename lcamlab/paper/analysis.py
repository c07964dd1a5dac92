r"""Analysis of the published curves: panels, learning-rate drops, the extraction's checks, summaries.

Everything here works on the tidy table of :mod:`lcamlab.paper.parse`
(columns figure, dataset, metric, group, epoch, value), whether freshly parsed
or loaded from ``data/paper/curves.csv`` (:func:`lcamlab.paper.store.load_curves`).

The "saddle trap" step schedule of Figures 3/4 (the LCAM paper, section 4) multiplies the
learning rate by 0.2 after 31, 61 and 91 epochs; :func:`detect_lr_drops` finds
those drops in the published curves themselves and :func:`check_curves` checks
that an extraction shows them at :data:`STEP_DROP_EPOCHS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lcamlab.data.cifar import DATASET_TITLES
from lcamlab.train.groups import group_label, group_name
from lcamlab.train.schedules import STEP_MILESTONES

__all__ = [
    "STEP_DROP_EPOCHS",
    "paper_curve",
    "paper_groups",
    "curve_summary",
    "detect_lr_drops",
    "drop_ratios",
    "check_curves",
    "panel_table",
    "final_training_table",
    "table1_wide",
]

#: 1-based epochs at which the "saddle trap" schedule (lr x0.2 after 31, 61, 91
#: epochs; the LCAM paper, section 4) starts a lower learning rate: the step schedule's
#: 0-based milestones (:data:`lcamlab.train.schedules.STEP_MILESTONES`) plus one.
STEP_DROP_EPOCHS = tuple(milestone + 1 for milestone in STEP_MILESTONES)


# ----------------------------------------------------------------------------- panels


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


# ----------------------------------------------------------------------------- learning-rate drops and checks


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
    drop keep falling). The median ignores one group's own oscillation (the
    paper's Figure 4, red curve), and ``min_epoch`` skips the first epochs where every
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


# What the extraction must find (the paper's section 4; digest section 2): number of
# points per curve, the range the first epoch must fall in, and the last epoch.
_EXPECTED_START = {
    ("fig3", "cifar10"): (60, 64),
    ("fig4", "cifar100"): (1, 8),
    ("fig5", "cifar10"): (60, 75),
    ("fig5", "cifar100"): (60, 75),
}


def check_curves(frame: pd.DataFrame) -> list[str]:
    """Check an extraction against what the paper shows; returns the findings, raises on a failure.

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
        raise ValueError("extraction of the LCAM paper's curves failed its checks: " + "; ".join(problems))
    return findings


# ----------------------------------------------------------------------------- summaries


def panel_table(frame: pd.DataFrame, figure: str, dataset: str,
                drop_epochs: Sequence[int] = STEP_DROP_EPOCHS) -> pd.DataFrame:
    """One published panel of Figures 3/4, one row per group, for reading (notebook 03).

    Columns: ``group`` (its name, e.g. "Fixed 0.9"), ``points`` (of the test-error curve),
    ``first epoch``, ``test error at 120 (%)``, ``final test error (%)`` (epoch 150),
    ``final loss`` and, per learning-rate drop ``e``, the average-loss ratio
    ``loss e/e-1`` (:func:`drop_ratios`; NaN where the curve does not cover the drop).
    """
    panel = frame[(frame.figure == figure) & (frame.dataset == dataset)]
    summary = curve_summary(panel)
    ratios = drop_ratios(frame, figure=figure, dataset=dataset, metric="train_loss", epochs=drop_epochs)
    rows = []
    for group in dict.fromkeys(panel.group):
        error = summary[(summary.group == group) & (summary.metric == "test_error")]
        loss = summary[(summary.group == group) & (summary.metric == "train_loss")]
        record: dict[str, object] = {"group": group_name(group, figure)}
        if len(error):
            e = error.iloc[0]
            record.update({"points": int(e.points), "first epoch": int(e.first_epoch),
                           "test error at 120 (%)": float(e.at_120), "final test error (%)": float(e.final)})
        record["final loss"] = float(loss.iloc[0].final) if len(loss) else np.nan
        for epoch in drop_epochs:
            hit = ratios[(ratios.group == group) & (ratios.epoch == epoch)]
            record[f"loss {epoch}/{epoch - 1}"] = float(hit.ratio.iloc[0]) if len(hit) else np.nan
        rows.append(record)
    return pd.DataFrame(rows)


def final_training_table(frame: pd.DataFrame, figure: str = "fig5") -> pd.DataFrame:
    """Figure 5's published test-error curves, one row per (dataset, group), for reading (notebook 04).

    Columns: ``dataset``, ``group`` (its name), ``points``, ``first epoch``, ``min (%)``,
    ``at 120 (%)`` and ``at 150 (%)``.
    """
    summary = curve_summary(frame[(frame.figure == figure) & (frame.metric == "test_error")])
    return pd.DataFrame({
        "dataset": [DATASET_TITLES.get(d, d) for d in summary.dataset],
        "group": [group_name(g, figure) for g in summary.group],
        "points": summary.points.astype(int).to_numpy(), "first epoch": summary.first_epoch.astype(int).to_numpy(),
        "min (%)": summary["min"].to_numpy(float), "at 120 (%)": summary.at_120.to_numpy(float),
        "at 150 (%)": summary.final.to_numpy(float),
    })


def table1_wide(table1: pd.DataFrame) -> pd.DataFrame:
    """The published Table 1 as the paper prints it: method, epochs, one column per dataset (notes kept)."""
    rows = []
    for (method, epochs), part in table1.groupby(["method", "epochs"], sort=False):
        record = {"method": method, "epochs": str(int(epochs))}
        for row in part.itertuples(index=False):
            note = f" ({row.note})" if isinstance(row.note, str) and row.note else ""
            record[DATASET_TITLES.get(row.dataset, row.dataset)] = f"{row.test_error:.2f}{note}"
        rows.append(record)
    return pd.DataFrame(rows)

