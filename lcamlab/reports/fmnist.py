r"""The LCAM paper's protocol on Fashion-MNIST at laptop scale: curves, Table 1 and claims.

The run sets are :mod:`lcamlab.train.grid`'s ``fig3-fmnist`` (the four momentum
groups of the paper's Figures 3/4 under the scaled saddle-trap step schedule),
``fig5-fmnist`` (fixed 0.9 against LCAM in both orientations under the scaled
per-iteration decay) and ``controls-fmnist`` (LCAM (0.9, 0.95)'s phase-shuffled
and mean-matched controls). This module reads them (planning and training is
:func:`lcamlab.reports.plan.prepare_fmnist`'s job) and turns them into:

* :func:`plot_fmnist`: test error and training loss per epoch, the mean over
  seeds with its 95% t-interval as a band, for every group and control;
* :func:`fmnist_table`: Table 1 at our scale: per series the mean, standard
  deviation (ddof 1) and best final test error over seeds, the win rate against
  fixed 0.9 (seeds where the series is strictly lower), the paired difference to
  fixed 0.9 with its 95% t-interval over seeds (the same seeds share the
  initialisation and the mini-batch order), and for each control the paired
  difference LCAM minus control;
* :func:`fmnist_claims`: the rows these runs add to the claims ledger, with
  verdicts from :func:`lcamlab.experiments.claims.verdict`;
* :func:`training_speed`: the measured training speed (images/s) and run times;
* :func:`effect_vs_fixed`: one series against fixed 0.9, paired by seed, for the
  notebooks' predict-then-check exercises.

A *series* is a momentum group (``"0.9-0.95"``) or a control of one
(``"0.9-0.95 shuffled"``). Test errors are in percent, differences in
percentage points (pp).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab import style
from lcamlab.experiments import claims, stats
from lcamlab.train.groups import group_label, group_name, parse_group
from lcamlab.train.runs import runs_frame

__all__ = [
    "FMNIST",
    "BASELINE",
    "series_label",
    "fmnist_frame",
    "series_order",
    "plot_fmnist",
    "fmnist_table",
    "fmnist_table_markdown",
    "fmnist_table_display",
    "describe_fmnist",
    "training_speed",
    "Effect",
    "effect_vs_fixed",
    "fmnist_claims",
    "drop_epochs_for",
    "FmnistReport",
    "fmnist_report",
]

FMNIST = "fashion-mnist"
#: The baseline of every comparison: fixed momentum 0.9 (the paper's black group).
BASELINE = "0.9-0.9"
_CONTROL_STYLES = {"shuffled": ("--", "#7b3294", "v"), "matched": ("-.", "#666666", "x")}  # line, colour, marker


def series_label(group: str, control: str | None) -> str:
    """``"0.9-0.95"`` for a group, ``"0.9-0.95 shuffled"`` for its control."""
    return f"{group} {control}" if isinstance(control, str) and control else group


def _control_of(run_dir: Path) -> tuple[str | None, str | None, Any]:
    try:
        config = json.loads((run_dir / "config.json").read_text()).get("config", {})
    except (OSError, ValueError):
        return None, None, None
    return config.get("control"), config.get("figure"), config.get("control_values")


def fmnist_frame(run_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """:func:`lcamlab.train.runs.runs_frame` of the runs with three more columns.

    ``control`` (None, ``"shuffled"`` or ``"matched"``), ``figure`` (``fig3``/``fig5``) and
    ``series`` (:func:`series_label`).
    """
    run_dirs = [Path(p) for p in run_dirs]
    frame = runs_frame(run_dirs)
    info = {d.name: _control_of(d) for d in run_dirs}
    frame["control"] = pd.Series([info.get(r, (None,))[0] for r in frame.run_id] if len(frame) else [],
                                 index=frame.index, dtype=object)
    frame["figure"] = [info.get(r, (None, None))[1] for r in frame.run_id] if len(frame) else []
    frame["series"] = [series_label(g, c) for g, c in zip(frame.group, frame.control)] if len(frame) else []
    return frame


def series_order(frame: pd.DataFrame) -> list[str]:
    """The paper's group order (fixed 0.9, fixed 0.95, 0.95-0.9, 0.9-0.95), each followed by its controls."""
    present = list(dict.fromkeys(frame.series)) if len(frame) else []
    paper = [group_label(g) for g in ((0.9, 0.9), (0.95, 0.95), (0.95, 0.9), (0.9, 0.95))]  # the paper's colours
    controls = ["", "shuffled", "matched"]

    def key(series: str) -> tuple:
        group, _, control = series.partition(" ")
        below, above = parse_group(group)
        rank = paper.index(group) if group in paper else len(paper)
        return (rank, below, above, controls.index(control) if control in controls else len(controls), control)
    return sorted(present, key=key)


def _display(series: str, figure: str | None = None) -> str:
    group, _, control = series.partition(" ")
    name = group_name(group, figure)
    if control == "shuffled":
        return f"{name}, shuffled control"
    if control == "matched":
        return f"{name}, mean-matched control"
    return name


def _look(series: str) -> tuple[str, str, str]:
    """``(colour, line style, marker)`` of a series: a group's paper colour and marker, solid; a control's own."""
    group, _, control = series.partition(" ")
    if control in _CONTROL_STYLES:
        ls, colour, marker = _CONTROL_STYLES[control]
        return colour, ls, marker
    return style.paper_group_color(parse_group(group)), "-", style.paper_group_marker(parse_group(group))


def _band(values: pd.Series) -> tuple[float, float, float]:
    mean, low, high, n = stats.mean_ci(values.to_numpy(dtype=float))
    if n < 2:
        return mean, mean, mean
    return mean, low, high


def plot_fmnist(frame: pd.DataFrame, *, figure: str | None = None, series: Sequence[str] | None = None,
                metrics: Sequence[str] = ("test_error", "train_loss"), drop_epochs: Sequence[int] = (),
                drop_label: str = "learning-rate drops", title: str | None = None):
    """Test error and training loss per epoch: mean over seeds (line) and its 95% t-interval (band).

    Both axes are logarithmic, so every epoch is in view (the first epochs' steep fall
    included) while the late epochs' differences stay readable; an axis whose band reaches 0
    (few seeds, a wide interval) is linear instead. Each group has its colour and
    marker (:func:`lcamlab.style.paper_group_marker`), each control its own line style and
    marker; the groups' bands are drawn, the controls' are not (five bands would blend into one
    patch), and the groups are drawn over their controls, so LCAM's line is never hidden.

    Args:
        frame: :func:`fmnist_frame` output.
        figure: keep only this figure's runs (``fig3`` or ``fig5``); None: all.
        series: which series, in drawing order (default :func:`series_order`).
        drop_epochs: epochs marked with a dotted line (1-based first epoch at the lower rate).
        drop_label: the dotted lines' legend entry.
    Returns:
        ``(fig, axes)``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if figure is not None and len(frame):
        frame = frame[frame.figure == figure]
    order = list(series) if series is not None else series_order(frame)
    fig, axes = style.new_figure(1, len(metrics), width="double", aspect=0.72, squeeze=False)
    axes = axes[0]
    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    drawn = [name for name in order if len(frame) and (frame.series == name).any()]
    for ax, metric in zip(axes, metrics):
        lowest = math.inf
        for name in drawn:
            rows = frame[frame.series == name]
            color, ls, marker = _look(name)
            control = bool(name.partition(" ")[2])
            agg = rows.groupby("epoch")[metric].apply(lambda v: pd.Series(_band(v), index=["mean", "low", "high"]))
            agg = agg.unstack()
            if not control:
                lowest = min(lowest, float(agg["low"].min()), float(agg["mean"].min()))
                ax.fill_between(agg.index.astype(float), agg["low"].astype(float), agg["high"].astype(float),
                                color=color, alpha=0.15, lw=0, zorder=1)
            else:
                lowest = min(lowest, float(agg["mean"].min()))
            ax.plot(agg.index, agg["mean"], color=color, ls=ls, lw=1.2 if control else 1.5, marker=marker, ms=3.5,
                    zorder=2 if control else 3)
        if drawn:
            epochs = frame.epoch.astype(float)
            ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
        for epoch in drop_epochs:
            ax.axvline(epoch, color="0.55", lw=0.7, ls=":", zorder=0)
        if lowest > 0:  # a band that reaches 0 or below (a few seeds: a wide interval) needs a linear axis
            ax.set_yscale("log")
            # Ticks at 1, 2, 3 and 5 of every decade, as plain numbers (one format per axis; the
            # other minor ticks unlabelled, so the labels never crowd).
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("Epoch")
        ax.set_ylabel({"test_error": "Test error (%)", "train_loss": "Training loss"}.get(metric, metric))
        ax.set_title(f"Fashion-MNIST: {metric.replace('_', ' ')}")
        if frame.empty:
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="0.4")
    handles = []
    for name in drawn:
        rows = frame[frame.series == name]
        color, ls, marker = _look(name)
        handles.append(Line2D([], [], color=color, ls=ls, lw=2, marker=marker, ms=4,
                              label=f"{_display(name, figure)} ({rows.seed.nunique()} seeds, {int(rows.epoch.max())} ep)"))
    if drawn:
        handles.append(Patch(color=style.KEY_COLOR, alpha=0.3, lw=0, label="band: 95% t-interval of the mean"
                             + (" (groups; controls: line only)" if any(" " in n for n in drawn) else "")))
    if drop_epochs and drawn:
        handles.append(Line2D([], [], color="0.55", lw=0.7, ls=":", label=drop_label))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)))
    if title:
        fig.suptitle(title)
    return fig, axes


def _finals(frame: pd.DataFrame, epoch: int | None) -> tuple[pd.DataFrame, int]:
    """Each run's test error at ``epoch`` (default: the last epoch every run has reached)."""
    if frame.empty:
        return pd.DataFrame(columns=["series", "seed", "value"]), 0
    last = frame.groupby("run_id").epoch.max()
    used = int(last.min()) if epoch is None else min(int(epoch), int(last.min()))
    at = frame[frame.epoch == used]
    return at[["series", "seed", "test_error", "train_loss"]].rename(columns={"test_error": "value"}), used


def _paired(finals: pd.DataFrame, a: str, b: str) -> tuple[float, float, float, int, int]:
    """Mean of ``a - b`` over the seeds both have, its 95% interval, n, and the seeds where a < b."""
    x = finals[finals.series == a].set_index("seed").value
    y = finals[finals.series == b].set_index("seed").value
    seeds = sorted(set(x.index) & set(y.index))
    if not seeds:
        return math.nan, math.nan, math.nan, 0, 0
    mean, low, high, n = stats.paired_ci(x.loc[seeds].to_numpy(float), y.loc[seeds].to_numpy(float))
    wins = int((x.loc[seeds].to_numpy() < y.loc[seeds].to_numpy()).sum())
    return mean, low, high, n, wins


def fmnist_table(frame: pd.DataFrame, *, figure: str | None = None, epoch: int | None = None) -> pd.DataFrame:
    """Table 1 at our scale, one row per series (test error in %, differences in pp).

    Columns: ``series, name, seeds, epoch, mean, std, best, train_loss, wins, win_rate,
    diff_vs_fixed, diff_low, diff_high, lcam_minus_control, control_low, control_high, control_n``.
    ``diff_vs_fixed`` is the paired mean of (series − fixed 0.9) over seeds with its 95%
    t-interval; ``wins``/``win_rate`` count seeds where the series is strictly lower than fixed 0.9;
    the ``control_*`` columns (control rows only) are LCAM minus the control, paired by seed.
    """
    columns = ["series", "name", "seeds", "epoch", "mean", "std", "best", "train_loss", "wins", "win_rate",
               "diff_vs_fixed", "diff_low", "diff_high", "lcam_minus_control", "control_low", "control_high",
               "control_n"]
    if figure is not None and len(frame):
        frame = frame[frame.figure == figure]
    finals, used = _finals(frame, epoch)
    rows = []
    for name in series_order(frame):
        values = finals[finals.series == name].value.to_numpy(float)
        if values.size == 0:
            continue
        row: dict[str, Any] = {"series": name, "name": _display(name, figure), "seeds": int(values.size),
                               "epoch": used, "mean": float(values.mean()),
                               "std": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                               "best": float(values.min()),
                               "train_loss": float(finals[finals.series == name].train_loss.mean())}
        if name != BASELINE and (finals.series == BASELINE).any():
            mean, low, high, n, wins = _paired(finals, name, BASELINE)
            row.update(diff_vs_fixed=mean, diff_low=low, diff_high=high, wins=wins,
                       win_rate=wins / n if n else math.nan)
        group, _, control = name.partition(" ")
        if control:
            mean, low, high, n, _ = _paired(finals, group, name)
            row.update(lcam_minus_control=mean, control_low=low, control_high=high, control_n=n)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _pp(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.2f}"


def fmnist_table_markdown(table: pd.DataFrame) -> str:
    """The table as markdown (test error in %, paired differences in pp with their 95% intervals)."""
    lines = ["| series | seeds | epoch | mean (%) | std | best | wins vs fixed 0.9 | Δ vs fixed 0.9 (pp) [95% CI] "
             "| LCAM − control (pp) [95% CI] |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table.itertuples(index=False):
        wins = "" if not math.isfinite(r.win_rate) else f"{int(r.wins)}/{r.seeds} ({100 * r.win_rate:.0f}%)"
        diff = "" if not math.isfinite(r.diff_vs_fixed) else \
            f"{_pp(r.diff_vs_fixed)} [{_pp(r.diff_low)}, {_pp(r.diff_high)}]"
        ctrl = "" if not math.isfinite(r.lcam_minus_control) else \
            f"{_pp(r.lcam_minus_control)} [{_pp(r.control_low)}, {_pp(r.control_high)}]"
        std = "" if not math.isfinite(r.std) else f"{r.std:.2f}"
        lines.append(f"| {r.name} | {r.seeds} | {r.epoch} | {r.mean:.2f} | {std} | {r.best:.2f} | {wins} | {diff} "
                     f"| {ctrl} |")
    return "\n".join(lines)


def fmnist_table_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table for reading (:func:`lcamlab.style.show_table`): numbers as text with fixed decimals."""
    rows = []
    for r in table.itertuples(index=False):
        rows.append({
            "series": r.name, "seeds": str(int(r.seeds)), "epoch": str(int(r.epoch)),
            "mean test error (%)": f"{r.mean:.2f}", "std": "" if not math.isfinite(r.std) else f"{r.std:.2f}",
            "best": f"{r.best:.2f}",
            "lower than fixed 0.9 on": "" if not math.isfinite(r.win_rate) else
            f"{int(r.wins)}/{r.seeds} seeds ({100 * r.win_rate:.0f}%)",
            "minus fixed 0.9 (pp) [95% CI]": "" if not math.isfinite(r.diff_vs_fixed) else
            f"{_pp(r.diff_vs_fixed)} [{_pp(r.diff_low)}, {_pp(r.diff_high)}]",
            "LCAM minus this control (pp) [95% CI]": "" if not math.isfinite(r.lcam_minus_control) else
            f"{_pp(r.lcam_minus_control)} [{_pp(r.control_low)}, {_pp(r.control_high)}]",
        })
    columns = ["series", "seeds", "epoch", "mean test error (%)", "std", "best", "lower than fixed 0.9 on",
               "minus fixed 0.9 (pp) [95% CI]", "LCAM minus this control (pp) [95% CI]"]
    shown = pd.DataFrame(rows, columns=columns)
    if len(shown) and not (shown["LCAM minus this control (pp) [95% CI]"] != "").any():
        shown = shown.drop(columns="LCAM minus this control (pp) [95% CI]")
    return shown


def training_speed(frame: pd.DataFrame) -> dict[str, float]:
    """How fast the runs trained, from their logs (``images_per_second``, ``epoch_seconds``).

    Returns:
        ``runs``, ``epochs`` (logged), ``median``, ``low``, ``high`` (training images/s over all
        epochs), ``run_median_s`` (median seconds of training per run) and ``total_s`` (the
        sum of all epochs' seconds, training and test pass); NaN without logs.
    """
    nan = math.nan
    if frame.empty or "images_per_second" not in frame or frame.images_per_second.dropna().empty:
        return {"runs": 0, "epochs": 0, "median": nan, "low": nan, "high": nan, "run_median_s": nan,
                "total_s": nan}
    speed = frame.images_per_second.dropna().astype(float)
    seconds = frame.groupby("run_id").epoch_seconds.sum()
    return {"runs": int(frame.run_id.nunique()), "epochs": int(len(speed)), "median": float(speed.median()),
            "low": float(speed.min()), "high": float(speed.max()), "run_median_s": float(seconds.median()),
            "total_s": float(frame.epoch_seconds.sum())}


def _speed_sentence(frame: pd.DataFrame) -> str:
    speed = training_speed(frame)
    if not speed["runs"]:
        return ""
    def n(value: float) -> str:  # 4 124: a thin space between thousands
        return f"{value:,.0f}".replace(",", "\u2009")

    def duration(seconds: float) -> str:
        return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.2g} s"

    return (f"Measured training speed of these {speed['runs']} runs: median {n(speed['median'])} images/s over "
            f"{speed['epochs']} epochs ({n(speed['low'])} to {n(speed['high'])}, depending on what else ran on the "
            f"machine); a run took a median of {duration(speed['run_median_s'])}, all of them together "
            f"{duration(speed['total_s'])} of training and testing.")


@dataclass(frozen=True)
class Effect:
    """A series minus fixed 0.9 at the table's epoch, paired by seed (test error, pp)."""

    series: str
    name: str
    mean: float
    low: float
    high: float
    wins: int
    seeds: int

    @property
    def text(self) -> str:
        """``"+1.36 pp [95% CI +0.81, +1.91], lower on 0 of 8 seeds"``."""
        if not math.isfinite(self.mean):
            return "not measured (no runs of this series)"
        return (f"{_pp(self.mean)} pp [95% CI {_pp(self.low)}, {_pp(self.high)}], lower than fixed 0.9 on "
                f"{self.wins} of {self.seeds} seeds")

    @property
    def coin_probability(self) -> float:
        """P(at least ``wins`` wins of ``seeds``) if each seed were a fair coin (no effect)."""
        if not self.seeds:
            return math.nan
        return sum(math.comb(self.seeds, k) for k in range(self.wins, self.seeds + 1)) / 2 ** self.seeds


def effect_vs_fixed(source: Any, series: str, *, figure: str | None = None) -> Effect:
    """``series`` minus fixed 0.9 at the last common epoch, paired by seed: the measured answer of the
    notebooks' exercises.

    Args:
        source: an :class:`FmnistReport`, an :func:`fmnist_table`, the runs of
            :func:`lcamlab.reports.plan.prepare_fmnist` (anything with a ``frame``), or None.
        series: e.g. ``"0.9-0.95"`` or ``"0.95-0.95"``.
        figure: with runs, keep only this figure's (``fig3``/``fig5``).
    Returns:
        An :class:`Effect`; NaN with 0 seeds when there is nothing to measure.
    """
    if source is None:
        table = None
    elif hasattr(source, "table"):
        table = source.table
    elif hasattr(source, "frame"):
        table = fmnist_table(source.frame, figure=figure)
    else:
        table = source
    hit = table[table.series == series] if table is not None and len(table) else pd.DataFrame()
    if hit.empty or not math.isfinite(hit.iloc[0].diff_vs_fixed):
        return Effect(series, series, math.nan, math.nan, math.nan, 0, 0)
    r = hit.iloc[0]
    return Effect(series, str(r["name"]), float(r.diff_vs_fixed), float(r.diff_low), float(r.diff_high),
                  int(r.wins), int(r.seeds))


def describe_fmnist(table: pd.DataFrame) -> str:
    """Plain sentences: which series is lowest, and each comparison with its interval."""
    if table.empty:
        return "No Fashion-MNIST runs yet."
    best = table.loc[table["mean"].idxmin()]
    lines = [f"At epoch {int(best.epoch)}, the lowest mean test error is {best['name']}: {best['mean']:.2f}% "
             f"over {int(best.seeds)} seeds."]
    for r in table.itertuples(index=False):
        if math.isfinite(r.diff_vs_fixed):
            side = "lower" if r.diff_high < 0 else "higher" if r.diff_low > 0 else "not distinguishable from"
            lines.append(f"- {r.name}: {r.mean:.2f}% ± {r.std:.2f} (std); {_pp(r.diff_vs_fixed)} pp vs fixed 0.9 "
                         f"[95% CI {_pp(r.diff_low)}, {_pp(r.diff_high)}]: {side}"
                         f"{'' if side.startswith('not') else ' than'} fixed 0.9; lower on "
                         f"{int(r.wins)} of {r.seeds} seeds.")
        if math.isfinite(r.lcam_minus_control):
            lines.append(f"  LCAM minus this control: {_pp(r.lcam_minus_control)} pp "
                         f"[95% CI {_pp(r.control_low)}, {_pp(r.control_high)}] over {int(r.control_n)} seeds.")
    return "\n".join(lines)


def fmnist_claims(table: pd.DataFrame, *, notebook: str, setting: str, kind: str,
                  frame: pd.DataFrame | None = None, figure: str | None = None,
                  epoch: int | None = None) -> list[dict[str, Any]]:
    """The ledger rows of our Fashion-MNIST runs (predicted signs fixed here, before any number is read).

    Args:
        table: :func:`fmnist_table` of the notebook's runs.
        notebook: the notebook's name (the ledger key).
        setting: one line on how the runs were made (model, epochs, subset), for ``measured``.
        kind: ``"groups"`` (notebook 03: the four groups under the step schedule) or ``"final"``
            (notebook 04: fixed 0.9 against LCAM and LCAM's controls under the per-iteration decay).
        frame, figure, epoch: :func:`fmnist_frame` and the table's figure/epoch, for comparisons
            the table does not hold (notebook 03: LCAM 0.9-0.95 against 0.95-0.9, paired by seed).
    """
    rows: list[dict[str, Any]] = []
    by = {r.series: r for r in table.itertuples(index=False)}

    def vs_fixed(series: str, id_: str, section: str, claim: str, predicted: int) -> None:
        r = by.get(series)
        if r is None or not math.isfinite(r.diff_vs_fixed):
            return
        rows.append(claims.claim_row(
            id_, notebook=notebook, paper="LCAM", section=section, claim=claim,
            measured=f"Final test error of {r.name} minus fixed 0.9, pp, paired by seed ({setting}; "
                     f"lower on {int(r.wins)}/{r.seeds} seeds)",
            control="fixed momentum 0.9, same seeds (initialisation and mini-batches)",
            estimate=r.diff_vs_fixed, low=r.diff_low, high=r.diff_high, n=int(r.seeds), predicted=predicted))

    def vs_control(series: str, id_: str, claim: str, control_text: str) -> None:
        r = by.get(series)
        if r is None or not math.isfinite(r.lcam_minus_control):
            return
        group = series.partition(" ")[0]
        rows.append(claims.claim_row(
            id_, notebook=notebook, paper="LCAM", section="3.4, 4.3", claim=claim,
            measured=f"Final test error of LCAM {group} minus its control, pp, paired by seed ({setting})",
            control=control_text, estimate=r.lcam_minus_control, low=r.control_low, high=r.control_high,
            n=int(r.control_n), predicted=-1))

    if kind == "groups":
        vs_fixed("0.9-0.95", "fmnist.groups.red_vs_fixed09", "4.1, Figure 3",
                 "Extra momentum in the non-sparse (above-mean) phase, LCAM (0.9, 0.95), ends with lower test "
                 "error than fixed 0.9 (the paper's finding on CIFAR-10, a non-sparse dataset; tested here on "
                 "Fashion-MNIST).", -1)
        vs_fixed("0.95-0.9", "fmnist.groups.green_vs_fixed09", "4.1, Figures 3-4",
                 "Extra momentum in the sparse (below-mean) phase, LCAM (0.95, 0.9), ends with lower test error "
                 "than fixed 0.9 (the paper's finding on CIFAR-100, a sparse dataset; tested here on "
                 "Fashion-MNIST, whose sparsity the paper does not state).", -1)
        vs_fixed("0.95-0.95", "fmnist.groups.fixed095_vs_fixed09", "4.1, Figure 3",
                 "Fixed momentum 0.95 is excessive under the saddle-trap schedule and ends worse than fixed 0.9.",
                 +1)
        if frame is not None:
            finals, used = _finals(frame if figure is None else frame[frame.figure == figure], epoch)
            mean, low, high, n, wins = _paired(finals, "0.9-0.95", "0.95-0.9")
            if n:
                rows.append(claims.claim_row(
                    "fmnist.groups.red_vs_green", notebook=notebook, paper="LCAM", section="4.1, Figures 3-4",
                    claim="The direction of the asymmetry matters: on a non-sparse dataset (CIFAR-10 in the paper) "
                          "LCAM (0.9, 0.95) ends with lower test error than LCAM (0.95, 0.9).",
                    measured=f"Final test error of LCAM 0.9-0.95 minus LCAM 0.95-0.9 at epoch {used}, pp, paired "
                             f"by seed ({setting}; lower on {wins}/{n} seeds; the paper does not say whether "
                             f"Fashion-MNIST is sparse)",
                    control="LCAM (0.95, 0.9), same seeds", estimate=mean, low=low, high=high, n=n, predicted=-1))
    elif kind == "final":
        vs_fixed("0.9-0.95", "fmnist.final.lcam_0.9-0.95_vs_fixed09", "4.3, Table 1, 6",
                 "LCAM (0.9, 0.95) beats fixed momentum 0.9 on final test error (the paper: in about 80% of "
                 "CIFAR-10 runs).", -1)
        vs_fixed("0.95-0.9", "fmnist.final.lcam_0.95-0.9_vs_fixed09", "4.3, Table 1, 6",
                 "LCAM in the other orientation, (0.95, 0.9), beats fixed momentum 0.9 on final test error "
                 "(the paper's choice for a sparse dataset).", -1)
        vs_control("0.9-0.95 shuffled", "fmnist.final.lcam_0.9-0.95_vs_shuffled",
                   "LCAM (0.9, 0.95) beats its phase-shuffled control: the loss-controlled choice of the "
                   "momentum, not only its two values in LCAM's proportions, lowers the final test error.",
                   "phase-shuffled control: LCAM's two momenta drawn at its realised per-epoch below-fraction, "
                   "independently of the loss, same seed")
        vs_control("0.9-0.95 matched", "fmnist.final.lcam_0.9-0.95_vs_matched",
                   "LCAM (0.9, 0.95) beats its mean-matched control: the asymmetry, not only the higher mean "
                   "momentum, lowers the final test error.",
                   "mean-matched control: fixed momentum at LCAM's realised mean momentum, same seed")
    else:
        raise ValueError(f"Invalid kind: {kind!r} (groups or final)")
    return rows


# ----------------------------------------------------------------------------- one call per notebook cell


@dataclass
class FmnistReport:
    """What a notebook shows of one Fashion-MNIST figure: the table, its text, the ledger rows, and the
    ``(fig, axes)`` of :func:`plot_fmnist` (for the notebook to save)."""

    table: pd.DataFrame
    markdown: str
    text: str
    claims: list[dict[str, Any]]
    ledger: pd.DataFrame
    figure: tuple[Any, Any]


# What the dotted lines of :func:`drop_epochs_for` mark, per schedule (the figure's legend entry).
_DROP_LABELS = {"step-scaled": "learning-rate drops", "lcam-exp-scaled": "the learning rate starts to decay"}


def drop_epochs_for(schedule: str, epochs: int) -> list[int]:
    """1-based first epochs at a lower rate: the scaled step drops, or the first decaying epoch."""
    from lcamlab.train.schedules import scaled_exp_start, scaled_milestones

    if schedule == "step-scaled":
        return [m + 1 for m in scaled_milestones(epochs)]
    if schedule == "lcam-exp-scaled":
        return [scaled_exp_start(epochs) + 1]
    return []


def fmnist_report(runs: Any, *, figure: str, kind: str, notebook: str, data_dir: str | os.PathLike, stem: str,
                  title: str, epoch: int | None = None,
                  write_results: bool = True, show: bool = True,
                  log: Callable[[str], None] | None = print) -> FmnistReport:
    """Plot, tabulate and enter into the claims ledger one figure's Fashion-MNIST runs.

    The figure is returned in :attr:`FmnistReport.figure`, not saved: the notebooks save it
    (``style.show(report.figure[0], stem, figures_dir)``).

    Args:
        runs: :func:`lcamlab.reports.plan.prepare_fmnist`'s result.
        figure: ``fig3`` (the four groups) or ``fig5`` (final training and controls).
        kind: ``groups`` or ``final`` (:func:`fmnist_claims`).
        notebook: the notebook's name (its ledger rows are replaced).
        data_dir: the results folder: the table goes to ``<data_dir>/paper_reproduction/<stem>.csv/.md``,
            the ledger to ``<data_dir>/claims.csv``.
        stem: the file name of the table (and, in the notebooks, of the figure).
        title: the figure's title.
        epoch: the epoch compared (default: the last one every run reached).
        write_results: write the ledger rows and the table ``<data_dir>/paper_reproduction/<stem>.csv``
            (False in a quick build, and in a build with other parameters than the notebook's defaults: they
            never replace the committed results; the rows are returned in :attr:`FmnistReport.ledger` anyway).
        show: display the table (:func:`lcamlab.style.show_table`) and the sentences and ledger rows
            (Markdown), in a notebook; False: display nothing.
        log: without ``show``, where the markdown table, the sentences and the ledger rows go
            (``None``: silent).
    """
    from lcamlab import provenance

    frame = runs.frame
    schedule = "step-scaled" if figure == "fig3" else "lcam-exp-scaled"
    epochs = int(runs.settings.get("epochs", 0) or 0)
    table = fmnist_table(frame, figure=figure, epoch=epoch)
    markdown = fmnist_table_markdown(table)
    text = describe_fmnist(table)
    rows = fmnist_claims(table, notebook=notebook, setting=runs.setting_text, kind=kind, frame=frame,
                         figure=figure, epoch=epoch)
    ledger = claims.update_ledger(rows, notebook, data_dir, write=write_results) if rows else \
        claims.read_ledger(data_dir)
    if len(table) and write_results:
        out = Path(data_dir) / "paper_reproduction"
        out.mkdir(parents=True, exist_ok=True)
        meta = provenance.run_metadata({"figure": figure, "runs_dir": str(runs.runs_dir), **runs.settings})
        meta.pop("created_utc", None)
        provenance.save_table(out / f"{stem}.csv", table, meta, overwrite=True)
        (out / f"{stem}.md").write_text(markdown + "\n")
    ledger_rows = pd.DataFrame(rows, columns=list(claims.COLUMNS))
    ledger_lines = ["Claims ledger rows" + ("" if write_results else " (not written: quick build or other parameters)")
                    + ":", ""]
    for r in ledger_rows.itertuples(index=False):
        ledger_lines.append(f"- *{r.verdict}*: {r.claim} Estimate {r.estimate:+.2f} pp "
                            f"[{r.low:+.2f}, {r.high:+.2f}], n = {r.n}.")
    speed = _speed_sentence(frame)
    if show:
        from lcamlab.reports.panels import show_markdown

        if len(table):
            caption = f"Final test error at epoch {int(table.epoch.iloc[0])} ({runs.setting_text})"
            style.show_table(fmnist_table_display(table), caption=caption)
        bullets = [("    - " + line.strip()) if line.startswith("  ") else "- " + line.lstrip("- ").strip()
                   for line in text.splitlines()]
        show_markdown("\n".join(bullets) + ("\n\n" + speed if speed else ""))
        if len(ledger_rows):
            show_markdown("\n".join(ledger_lines))
    elif log is not None:
        log("\n".join([markdown, "", text] + ([speed] if speed else []) + [""] + ledger_lines))
    fig, axes = plot_fmnist(frame, figure=figure, drop_epochs=drop_epochs_for(schedule, epochs),
                            drop_label=_DROP_LABELS.get(schedule, "learning-rate drops"), title=title)
    return FmnistReport(table=table, markdown=markdown, text=text, claims=rows, ledger=ledger, figure=(fig, axes))
