"""The figure checklist (lcamlab.style.figure_problems): each rule catches a figure built to break it,
and passes the same figure mended. The real figures pass it on every build: style.show checks each one."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from lcamlab import style  # noqa: E402


@pytest.fixture()
def figure():
    fig, ax = style.new_figure(1, 1, width="single")
    yield fig, ax
    plt.close(fig)


def _good(ax):
    ax.plot([1, 2, 3], [4.0, 5.0, 4.5], color="black", label="fixed 0.9")
    ax.plot([1, 2, 3], [4.2, 4.8, 4.1], color=style.paper_group_color((0.9, 0.95)), ls="--", label="LCAM")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")


def test_a_good_figure_passes(figure):
    fig, ax = figure
    _good(ax)
    ax.fill_between([1, 2, 3], [3.9, 4.9, 4.4], [4.1, 5.1, 4.6], color="black", alpha=0.2)
    ax.legend(handles=[*ax.get_legend_handles_labels()[0],
                       Patch(color=style.KEY_COLOR, alpha=0.3, label="band: 95% interval")])
    assert style.figure_problems(fig) == []
    style.check_figure(fig)


def test_a_missing_label_and_a_label_without_unit(figure):
    fig, ax = figure
    _good(ax)
    ax.set_xlabel("")
    ax.set_ylabel("test error")
    problems = style.figure_problems(fig)
    assert any("x-axis has no label" in p for p in problems)
    assert any("y-axis label 'test error' gives no unit" in p for p in problems)
    with pytest.raises(style.FigureCheckError, match="demo fails the figure checklist"):
        style.check_figure(fig, "demo")


def test_a_shared_row_label_and_category_ticks_need_no_own_label():
    fig, axes = style.new_figure(1, 2, width="double")
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="black")
    axes[0].set_ylabel("time (s)")
    axes[0].set_xticks([0, 1], ["SGD", "Adam"])
    axes[1].set_xticks([0, 1], ["SGD", "Adam"])
    assert style.figure_problems(fig) == []  # the row's y label names both; the ticks name the categories
    plt.close(fig)


def test_data_outside_the_axes_unless_declared(figure):
    fig, ax = figure
    _good(ax)
    ax.set_ylim(4.3, 6.0)  # cuts the dashed line's last point and the black line's first
    problems = style.figure_problems(fig)
    assert sum("lie outside the axes" in p for p in problems) == 2
    style.clip_on_purpose(ax, "the first epoch is off the scale")
    assert style.figure_problems(fig) == []
    with pytest.raises(ValueError, match="Invalid why"):
        style.clip_on_purpose(ax, " ")


def test_a_band_cut_by_the_limits_and_a_log_axis_below_zero(figure):
    fig, ax = figure
    _good(ax)
    ax.fill_between([1, 2, 3], [0.0, 4.0, 4.0], [5.0, 5.0, 5.0], color="black", alpha=0.2)
    ax.set_yscale("log")
    ax.set_ylim(3.5, 6)
    assert any("FillBetweenPolyCollection" in p for p in style.figure_problems(fig))


def test_a_legend_entry_that_draws_nothing(figure):
    fig, ax = figure
    _good(ax)
    ghost = Line2D([], [], color="#0072B2", lw=2, label="Fixed 0.95 (no runs)")
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], ghost])
    assert [p for p in style.figure_problems(fig) if "legend" in p] == [
        "legend entry 'Fixed 0.95 (no runs)' matches nothing drawn (no artist of its colour and style has data in view)"]


def test_a_legend_entry_of_the_wrong_style_or_out_of_view(figure):
    fig, ax = figure
    _good(ax)
    ax.plot([10, 11], [4, 5], color="#0072B2", label="off the scale")
    ax.set_xlim(0.8, 3.2)
    wrong = Line2D([], [], color="black", ls=":", label="black dotted")
    fig.legend(handles=[*ax.get_legend_handles_labels()[0], wrong])
    bad = {p for p in style.figure_problems(fig) if "legend" in p}
    assert any("'off the scale'" in p for p in bad) and any("'black dotted'" in p for p in bad) and len(bad) == 2


def test_style_keys_match_any_colour(figure):
    fig, ax = figure
    _good(ax)
    keys = [Line2D([], [], color=style.KEY_COLOR, ls="--", label="dashed: LCAM"),
            Line2D([], [], color=style.KEY_COLOR, ls=":", label="dotted: nothing")]
    fig.legend(handles=keys)
    assert [p for p in style.figure_problems(fig) if "legend" in p] == [
        "legend entry 'dotted: nothing' matches nothing drawn (no artist of its colour and style has data in view)"]


def test_lines_alike_in_greyscale(figure):
    fig, ax = figure
    green, vermillion = "#009E73", "#D55E00"  # Okabe-Ito: L* 58 and 54
    ax.plot([1, 2], [1, 2], color=green, label="green")
    ax.plot([1, 2], [2, 1], color=vermillion, label="vermillion")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    (problem,) = style.figure_problems(fig)
    assert "'green' and 'vermillion' series are drawn alike" in problem and "greyscale" in problem
    ax.lines[1].set_marker("s")  # a marker tells them apart
    assert style.figure_problems(fig) == []


def test_a_marked_series_with_its_fit_counts_as_one():
    fig, ax = style.new_figure(1, 1, width="single")
    x = np.array([1.0, 2.0, 3.0])
    for colour, marker in (("#009E73", "o"), ("#D55E00", "s")):
        ax.errorbar(x, x, yerr=0.1 * x, fmt=marker, color=colour, capsize=2)
        ax.plot(x, x * 1.01, color=colour)  # the fit: the same solid line for both
    ax.set_xlabel("sharpness k")
    ax.set_ylabel("rate (per iteration)")
    assert style.figure_problems(fig) == []
    plt.close(fig)


def test_one_number_format_per_axis(figure):
    from matplotlib.ticker import FixedLocator, FuncFormatter

    fig, ax = figure
    ax.plot([100, 1e5], [1, 2], color="black")
    ax.set_xscale("log")
    ax.set_xlabel("time (iterations)")
    ax.set_ylabel("loss")
    labels = {100: "100", 1000: "1000", 1e4: "1e4", 1e5: "1e+05"}
    ax.xaxis.set_major_locator(FixedLocator(list(labels)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: labels.get(v, "")))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    (problem,) = style.figure_problems(fig)
    assert "x-axis mixes number formats (100, 1000, 1e4, 1e+05)" in problem
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    assert style.figure_problems(fig) == []


def test_show_refuses_a_figure_that_fails(tmp_path, figure):
    fig, ax = figure
    ax.plot([0, 1], [0, 1])
    with pytest.raises(style.FigureCheckError, match="bad fails the figure checklist"):
        style.show(fig, "bad", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_log_axis_of_powers_of_ten_is_a_numeric_axis(figure):
    """Tick labels such as 10^{-2} are numbers: an unlabelled log axis is caught like a linear one."""
    fig, ax = figure
    ax.semilogy([1, 2, 3], [1e-3, 1e-2, 1e-1], color="black")
    ax.set_xlabel("epoch")
    assert any("y-axis has no label" in p for p in style.figure_problems(fig))
    ax.set_ylabel("training loss")
    assert style.figure_problems(fig) == []
