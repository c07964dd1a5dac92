"""One figure style for the whole suite, so every figure looks like one paper.

Each optimizer's colour, marker and legend label are declared with the optimizer,
in its registry entry (:data:`lcamlab.experiments.registry.PRESETS`), and read
here through :func:`optimizer_color`, :func:`optimizer_marker` and
:func:`optimizer_label` (the registry's :func:`~lcamlab.experiments.registry.color`,
:func:`~lcamlab.experiments.registry.marker` and
:func:`~lcamlab.experiments.registry.label`): the same optimizer looks the same in
every notebook. The colours are colour-blind safe (Okabe & Ito 2008, with Paul
Tol's muted scheme for the extra entries). The LCAM paper's own group colours
(000 Figures 3-5: black, blue, green, red) are kept for the WRN figures, in
their colour-blind-safe Okabe-Ito shades.

Use::

    from lcamlab import style
    style.apply()
    fig, ax = style.new_figure()
    ax.plot(x, y, color=style.optimizer_color("lcam-above"), label=style.optimizer_label("lcam-above"))
    style.save_figure(fig, "zoo_trajectories", figures_dir)   # PNG (README) + PDF (papers)
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

from lcamlab.experiments.registry import color as optimizer_color
from lcamlab.experiments.registry import label as optimizer_label
from lcamlab.experiments.registry import marker as optimizer_marker
from lcamlab.paths import FIGURES_DIR

__all__ = [
    "PAPER_GROUP_COLORS",
    "PAPER_GROUP_MARKERS",
    "PHASE_COLORS",
    "apply",
    "new_figure",
    "save_figure",
    "show",
    "optimizer_color",
    "optimizer_label",
    "optimizer_marker",
    "table_html",
    "show_table",
    "paper_group_color",
    "paper_group_marker",
    "default_figures_dir",
    "KEY_COLOR",
    "LIGHTNESS_GAP",
    "UNITLESS_QUANTITIES",
    "FigureCheckError",
    "clip_on_purpose",
    "figure_problems",
    "check_figure",
    "marker_every",
]

# The LCAM paper's momentum groups, written (below, above), in the paper's colours.
PAPER_GROUP_COLORS: dict[tuple[float, float], str] = {
    (0.9, 0.9): "#000000",    # black: Fixed 0.9
    (0.95, 0.95): "#0072B2",  # blue: Fixed 0.95
    (0.95, 0.9): "#009E73",   # green: 0.95-0.9, accelerates the below / sparse side
    (0.9, 0.95): "#D55E00",   # red: 0.9-0.95, accelerates the above / non-sparse side
    (0.93, 0.9): "#009E73",   # Figure 5 CIFAR-100 LCAM (accelerates below)
    (0.9, 0.93): "#D55E00",
}

# Markers of the paper's groups, so four curves of one line style stay apart in greyscale (each
# group keeps its marker on our runs and on the paper's curves).
PAPER_GROUP_MARKERS: dict[tuple[float, float], str] = {
    (0.9, 0.9): "o", (0.95, 0.95): "s", (0.95, 0.9): "^", (0.9, 0.95): "D", (0.93, 0.9): "^", (0.9, 0.93): "D",
}

# Shading of LCAM's phases (loss below / above its running mean).
PHASE_COLORS: dict[str, str] = {"below": "#56B4E9", "above": "#E69F00"}

_WIDTHS = {"single": 3.5, "one-and-half": 5.2, "double": 7.2}


def apply() -> None:
    """Set the suite's matplotlib defaults (sizes, fonts, grid). Idempotent."""
    matplotlib.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linestyle": "--",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "lines.linewidth": 1.4,
            "legend.frameon": False,
            "pdf.fonttype": 42,  # editable text in PDFs for papers
        }
    )


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: str | float = "double",
    aspect: float = 0.62,
    **subplots_kw,
):
    """A figure in the suite's sizes: ``width`` is "single", "one-and-half", "double" or inches.

    ``aspect`` is the height of one row of panels over the total width per column.
    Returns ``(fig, axes)`` as :func:`matplotlib.pyplot.subplots` does.
    """
    import matplotlib.pyplot as plt

    apply()
    if isinstance(width, str):
        if width not in _WIDTHS:
            raise ValueError(f"Invalid width: {width!r} (choose one of {sorted(_WIDTHS)} or inches)")
        width_in = _WIDTHS[width]
    else:
        width_in = float(width)
    height_in = width_in / ncols * aspect * nrows
    subplots_kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width_in, height_in), **subplots_kw)


def default_figures_dir() -> Path:
    """``$LCAMLAB_FIGURES_DIR`` if set, else the repository's ``figures/`` folder."""
    env = os.environ.get("LCAMLAB_FIGURES_DIR")
    if env:
        return Path(env)
    return FIGURES_DIR


# --------------------------------------------------------------------------------------
# The figure checklist: what a reader checks at a glance, checked by code before a figure is kept
# --------------------------------------------------------------------------------------

#: Legend entries drawn in this grey are *style keys* ("solid: ours", "dashed: the paper's", "band:
#: 95% interval"): they stand for a line style, marker or band whatever its colour, so the checklist
#: matches them to any drawn artist of that style. Every other entry must match an artist's colour too.
KEY_COLOR = "0.2"

#: Two series of one axes drawn with the same line styles and markers must differ by at least this
#: much in CIE lightness L* (0 black .. 100 white) to stay apart in a greyscale print: a fifth of the
#: scale (about five grey levels a print keeps apart), so black (L* 0), Okabe-Ito blue (46) and
#: orange (71) pass, but Okabe-Ito green (58) next to vermillion (54) needs another style or marker.
LIGHTNESS_GAP = 20.0

#: Axis labels that need no unit: quantities that are counts, ratios or fractions by nature, a
#: network's loss, and the dimensionless parameters, rates and noise scales of the toy models
#: (landscapes, springs, valleys; matched as words, case-insensitive). Any other label states its
#: unit in parentheses or brackets, "test error (%)", "|kick| (noise SDs)", "time (iterations)".
UNITLESS_QUANTITIES: tuple[str, ...] = (
    "epoch", "iteration", "iterations", "step", "steps", "count", "counts", "number", "fraction", "share", "ratio",
    "relative", "index", "probability", "correlation", "R²", "agreement", "loss",
    # the toy models' own dimensionless quantities: parameters, their rates and noise scales
    "θ", "Θ", "learning rate", "momentum", "β", "sparsity", "sharpness", "noise",
)

_UNIT = re.compile(r"\([^()]+\)|\[[^\[\]]+\]|/")  # "(%)", "[s]", or a ratio "T / T_SGD"
_UNITLESS = re.compile(r"(?<![a-z])(" + "|".join(UNITLESS_QUANTITIES) + r")(?![a-z])", re.IGNORECASE)
_TEX_SYMBOLS = {r"\theta": "θ", r"\Theta": "Θ", r"\beta": "β"}  # mathtext labels name the same quantities
_NUMBER = re.compile(r"^[-+−]?[\d.,\u2009/ ]+%?$")
_CLIPPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PIXEL_TOLERANCE = 1.0


class FigureCheckError(ValueError):
    """A figure breaks the checklist (:func:`figure_problems`); the message lists every problem."""


def clip_on_purpose(ax, why: str) -> None:
    """Declare that ``ax`` cuts its data off on purpose (``why`` says what is cut and why).

    The checklist's "no data outside the axes" rule then skips ``ax``: e.g. a loss axis that
    stops at 1e-6 where a converged run falls further, or a landscape's box that a diverging
    path leaves.
    """
    if not why.strip():
        raise ValueError("Invalid why: empty (say what the axes cut off and why)")
    _CLIPPED[ax] = why


def _plain_symbols(label: str) -> str:
    for tex, symbol in _TEX_SYMBOLS.items():
        label = label.replace(tex, symbol)
    return label


def _describe(index: int, ax) -> str:
    title = ax.get_title() or ax.get_title(loc="left")
    return f"axes {index}" + (f" ({title!r})" if title else "")


def _display_points(artist) -> list:
    """The data positions an artist draws, in display (pixel) coordinates, non-finite data dropped."""
    import numpy as np
    from matplotlib.collections import LineCollection, PathCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if isinstance(artist, Line2D):
        arrays = [(np.asarray(artist.get_xydata(), float), artist.get_transform())]
    elif isinstance(artist, PathCollection):
        arrays = [(np.asarray(artist.get_offsets(), float), artist.get_offset_transform())]
    elif isinstance(artist, (PolyCollection, LineCollection)):
        arrays = [(np.asarray(path.vertices, float), artist.get_transform()) for path in artist.get_paths()]
    elif isinstance(artist, Patch):
        arrays = [(np.asarray(artist.get_path().vertices, float), artist.get_transform())]
    else:  # contours, meshes, images: backgrounds that fill the axes, not data points
        return []
    shown = []
    for points, transform in arrays:
        points = points.reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points):
            shown.append(transform.transform(points))
    return shown


def _outside(points, bbox):
    import numpy as np

    inside = ((points[:, 0] >= bbox.x0 - _PIXEL_TOLERANCE) & (points[:, 0] <= bbox.x1 + _PIXEL_TOLERANCE)
              & (points[:, 1] >= bbox.y0 - _PIXEL_TOLERANCE) & (points[:, 1] <= bbox.y1 + _PIXEL_TOLERANCE))
    return ~inside  # NaN (a log axis's non-positive values) counts as outside: it is not drawn


def _data_artists(ax) -> list:
    return [a for a in (*ax.lines, *ax.collections, *ax.patches) if a.get_visible() and a.get_alpha() != 0]


def _in_view(artist, ax) -> bool:
    return any((~_outside(points, ax.bbox)).any() for points in _display_points(artist))


def _lightness(color, alpha=None) -> float:
    """CIE L* of ``color`` composited on white (greyscale prints keep lightness only)."""
    from matplotlib.colors import to_rgba

    r, g, b, a = to_rgba(color, alpha)
    linear = [((a * c + 1 - a + 0.055) / 1.055) ** 2.4 if a * c + 1 - a > 0.04045 else (a * c + 1 - a) / 12.92
              for c in (r, g, b)]
    y = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 116 * y ** (1 / 3) - 16 if y > 216 / 24389 else 24389 / 27 * y


def _same_color(a, b) -> bool:
    from matplotlib.colors import to_rgb

    return all(abs(x - y) < 2e-3 for x, y in zip(to_rgb(a), to_rgb(b)))


def _draws_line(line) -> bool:
    return line.get_linestyle() not in ("None", "", " ", "none") and line.get_linewidth() > 0


def _has_marker(line) -> bool:
    return line.get_marker() not in (None, "None", "", " ", "none")


def _faces(artist) -> list:
    """The face colours an artist fills with (one for a patch, one per element for a collection)."""
    import numpy as np

    faces = np.asarray(artist.get_facecolor(), float)
    return [tuple(face) for face in faces.reshape(-1, 4)]


def _matches(key, drawn) -> bool:
    """Does the legend's drawn key artist look like the axes' artist ``drawn``?"""
    from matplotlib.collections import Collection, LineCollection, PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if isinstance(key, Line2D):
        wildcard = _same_color(key.get_color(), KEY_COLOR)
        if isinstance(drawn, Line2D):
            if not (wildcard or _same_color(key.get_color(), drawn.get_color())):
                return False
            if _draws_line(key) and not (_draws_line(drawn) and key.get_linestyle() == drawn.get_linestyle()):
                return False
            return not _has_marker(key) or key.get_marker() == drawn.get_marker()
        if isinstance(drawn, PathCollection) and not _draws_line(key) and _has_marker(key):
            return wildcard or any(_same_color(key.get_color(), face) for face in _faces(drawn))
        return False
    if isinstance(key, Patch):
        if not isinstance(drawn, (Patch, Collection)) or isinstance(drawn, LineCollection):
            return False
        return (_same_color(key.get_facecolor(), KEY_COLOR)
                or any(_same_color(key.get_facecolor(), face) for face in _faces(drawn)))
    if isinstance(key, Collection):
        if type(key) is not type(drawn):
            return False
        colours = (key.get_edgecolor() if isinstance(key, LineCollection) else key.get_facecolor(),
                   drawn.get_edgecolor() if isinstance(drawn, LineCollection) else drawn.get_facecolor())
        return all(len(c) for c in colours) and _same_color(colours[0][0], colours[1][0])
    return False


def _legend_entries(legend) -> list[tuple[str, list]]:
    """``(label, the artists drawn as its key)`` for each entry of a legend."""
    from matplotlib.offsetbox import DrawingArea, HPacker, TextArea

    entries = []

    def walk(box) -> None:
        for child in box.get_children():
            if isinstance(child, HPacker):
                parts = child.get_children()
                areas = [p for p in parts if isinstance(p, DrawingArea)]
                texts = [p for p in parts if isinstance(p, TextArea)]
                if len(areas) == 1 and len(texts) == 1:
                    entries.append((texts[0].get_text(), list(areas[0].get_children())))
                    continue
            if not isinstance(child, (DrawingArea, TextArea)) and hasattr(child, "get_children"):
                walk(child)

    walk(legend)
    return entries


def _tick_format(text: str) -> str | None:
    """The number format of one tick label: "plain", "power" (mathtext 10^n), "e+05" or "e5"; "zero"
    (fits any format); None: not a number (a category)."""
    if text.startswith("$") and text.endswith("$"):
        text = re.sub(r"\\mathdefault\{(.*)\}", r"\1", text[1:-1])
    if text in ("0", "0.0"):
        return "zero"  # zero reads the same in every format (a symlog axis writes it plainly)
    if "^" in text:
        return "power"
    match = re.fullmatch(r"[-+−]?\d+(\.\d*)?e([-+−]?)(\d+)", text)
    if match:
        return "e+05" if match.group(2) or match.group(3).startswith("0") else "e5"
    return "plain" if _NUMBER.fullmatch(text) else None


def _visible_tick_labels(axis) -> list[str]:
    low, high = sorted(axis.get_view_interval())
    labels = []
    for minor in (False, True):
        for label in axis.get_ticklabels(minor=minor):
            position = label.get_position()[0 if axis.axis_name == "x" else 1]
            if label.get_visible() and label.get_text().strip() and low <= position <= high:
                labels.append(label.get_text())
    return labels


def _axis_label(fig, ax, name: str) -> str:
    """The label that names ``ax``'s x or y axis: its own, a shared sibling's, its row's or column's, or the figure's."""
    own = (ax.get_xlabel() if name == "x" else ax.get_ylabel()).strip()
    if own:
        return own
    shared = ax.get_shared_x_axes() if name == "x" else ax.get_shared_y_axes()
    spec = ax.get_subplotspec()
    for other in fig.axes:
        if other is ax:
            continue
        neighbour = False
        if spec is not None and other.get_subplotspec() is not None:
            mine, theirs = spec, other.get_subplotspec()
            if name == "x":  # the same column, another row (a column's shared x label)
                neighbour = (mine.colspan == theirs.colspan and mine.rowspan != theirs.rowspan)
            else:            # the same row, another column (a row's y label)
                neighbour = (mine.rowspan == theirs.rowspan and mine.colspan != theirs.colspan)
        if neighbour or shared.joined(ax, other):
            text = (other.get_xlabel() if name == "x" else other.get_ylabel()).strip()
            if text:
                return text
    sup = getattr(fig, "_supxlabel" if name == "x" else "_supylabel", None)
    return sup.get_text().strip() if sup is not None else ""


def _series_looks(ax) -> list[tuple[float, frozenset, str]]:
    """Per colour of the axes' data lines: its lightness, the (line style, marker) pairs it is drawn with, and a name.

    A series is a colour: its fit curve counts with its markers, so a marked series with an
    unmarked fit is told apart by its markers. Lines in axes coordinates (reference lines from
    ``axhline``), error-bar caps and single points (a row of their own, named by a tick label)
    are not series.
    """
    from matplotlib.colors import to_rgb
    from matplotlib.container import ErrorbarContainer

    caps = {id(cap) for container in ax.containers if isinstance(container, ErrorbarContainer)
            for cap in (container.lines[1] or ())}

    def is_series(line) -> bool:
        drawn = len(line.get_xydata()) >= 2 and (_draws_line(line) or _has_marker(line))
        return line.get_visible() and id(line) not in caps and line.get_transform() == ax.transData and drawn

    looks: dict[tuple, list] = {}
    for line in filter(is_series, ax.lines):
        key = tuple(round(c, 3) for c in to_rgb(line.get_color()))
        entry = looks.setdefault(key, [_lightness(line.get_color(), line.get_alpha()), set(), None])
        entry[1].add((line.get_linestyle() if _draws_line(line) else "None",
                      line.get_marker() if _has_marker(line) else "None"))
        if entry[2] is None and not line.get_label().startswith("_"):
            entry[2] = repr(line.get_label())
    return [(lightness, frozenset(pairs), name or "#%02x%02x%02x" % tuple(round(255 * c) for c in key))
            for key, (lightness, pairs, name) in looks.items()]


def figure_problems(fig) -> list[str]:
    """The checklist a reader applies at a glance, as code: every problem of ``fig``, one line each.

    1. **Labels with units.** Every axis that shows numbers has a label (its own, a shared
       axis's, its row's or column's, or the figure's ``supxlabel``/``supylabel``); the label
       states its unit in parentheses or brackets, is a ratio (``/``), or names a quantity of
       :data:`UNITLESS_QUANTITIES`. Axes whose ticks name categories need no label.
    2. **No data outside the axes.** Every point of every line, scatter, band, error bar and bar
       lies inside the axes' limits (one pixel of tolerance), unless the artist is drawn
       unclipped or the axes declared the cut (:func:`clip_on_purpose`).
    3. **No legend entry that draws nothing.** Each legend entry's key matches an artist with data
       in view: a line of the same colour, line style and marker; a band or bar of the same
       face colour; a scatter of the same colour. Keys in :data:`KEY_COLOR` match the style alone.
    4. **Distinguishable in greyscale.** Within one axes, two series (the data lines of one
       colour, a marked series with its fit counting as one) drawn with the same line styles and
       markers differ by at least :data:`LIGHTNESS_GAP` in CIE L*.
    5. **One number format per axis.** The tick labels of one axis are all plain numbers, all
       powers of ten, or all one e-notation ("1e4" next to "1e+05" is two).

    The figure is laid out first (:meth:`~matplotlib.figure.Figure.draw_without_rendering`), so
    limits and tick labels are the ones a saved file shows.
    """
    import itertools

    fig.draw_without_rendering()
    problems: list[str] = []
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    for index, ax in enumerate(axes):
        where = _describe(index, ax)
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            if not axis.get_visible():
                continue
            labels = _visible_tick_labels(axis)
            formats = {_tick_format(text) for text in labels} - {None, "zero"}
            if not formats:
                continue  # no numbers on this axis (categories, or no ticks)
            if len(formats) > 1:
                problems.append(f"{where}: the {name}-axis mixes number formats ({', '.join(labels)})")
            label = _axis_label(fig, ax, name)
            if not label:
                problems.append(f"{where}: the {name}-axis has no label")
            elif not (_UNIT.search(label) or _UNITLESS.search(_plain_symbols(label))):
                problems.append(f"{where}: the {name}-axis label {label!r} gives no unit (add it in parentheses, "
                                f"or name a unitless quantity: {', '.join(UNITLESS_QUANTITIES)})")
        if ax not in _CLIPPED:
            for artist in _data_artists(ax):
                if not artist.get_clip_on():
                    continue
                cut = sum(int(_outside(points, ax.bbox).sum()) for points in _display_points(artist))
                if cut:
                    label = artist.get_label()
                    named = f" {label!r}" if label and not label.startswith("_") else ""
                    problems.append(f"{where}: {cut} point(s) of a {type(artist).__name__}{named} lie outside "
                                    f"the axes (widen the limits, or declare the cut with style.clip_on_purpose)")
        for a, b in itertools.combinations(_series_looks(ax), 2):
            gap = abs(a[0] - b[0])
            if a[1] == b[1] and gap < LIGHTNESS_GAP:
                looks = ", ".join(f"{ls!r} line with marker {marker!r}" for ls, marker in sorted(a[1], key=str))
                problems.append(f"{where}: the {a[2]} and {b[2]} series are drawn alike ({looks}) and differ by "
                                f"{gap:.0f} < {LIGHTNESS_GAP:.0f} in lightness (indistinguishable in greyscale)")
    legends = [(legend, axes) for legend in fig.legends]
    legends += [(ax.get_legend(), [ax, *[o for o in axes if o is not ax and o.bbox.bounds == ax.bbox.bounds]])
                for ax in axes if ax.get_legend() is not None]
    for legend, scope in legends:
        drawn = [artist for ax in scope for artist in _data_artists(ax) if _in_view(artist, ax)]
        for text, keys in _legend_entries(legend):
            keys = [k for k in keys if k.get_visible() and k.get_alpha() != 0]
            if not text.strip() or not keys:
                continue  # a blank that pads a legend's rows
            if not any(_matches(key, artist) for key in keys for artist in drawn):
                problems.append(f"legend entry {text!r} matches nothing drawn (no artist of its colour and style "
                                f"has data in view)")
    return problems


def marker_every(points: int) -> int:
    """Mark every n-th of a curve's ``points``: about a dozen markers, enough to tell curves of one line
    style apart in greyscale (the checklist's rule 4) without hiding the line (``markevery=``)."""
    return max(1, points // 12)


def check_figure(fig, name: str = "figure") -> None:
    """Raise :class:`FigureCheckError` listing :func:`figure_problems`, if there are any."""
    problems = figure_problems(fig)
    if problems:
        raise FigureCheckError(f"{name} fails the figure checklist:\n  " + "\n  ".join(problems))


# Metadata that would make two renderings of the same figure differ: the PDF's creation date
# (PNG carries only the matplotlib version). Leaving it out makes rebuilds byte-identical, so
# git sees a figure as changed only when what it shows changed.
_REPRODUCIBLE_METADATA: dict[str, dict[str, None]] = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(
    fig,
    name: str,
    figures_dir: str | os.PathLike | None = None,
    *,
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Write ``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf``; returns the paths.

    Figures are build products of the notebooks: rebuilding replaces them on
    purpose (the data behind them are what lcamlab never overwrites). They are
    written atomically and as a set: every format is rendered to a temporary file
    first, then all are renamed into place with Ctrl-C held back, so an
    interrupted build leaves the previous PNG and PDF or the new ones, never a
    half-written file or a PNG without its PDF. The same figure gives the same
    bytes every time (no creation date is embedded).
    """
    import signal
    import tempfile
    import threading

    if not name or any(sep in name for sep in "/\\") or name.startswith("."):
        raise ValueError(f"Invalid figure name: {name!r} (a plain file stem such as 'zoo_trajectories')")
    directory = Path(figures_dir) if figures_dir is not None else default_figures_dir()
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.{fmt}" for fmt in formats]
    temporaries: list[str] = []
    try:
        for path, fmt in zip(paths, formats):
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
            os.close(fd)
            temporaries.append(tmp)
            fig.savefig(tmp, format=fmt, metadata=_REPRODUCIBLE_METADATA.get(fmt))
        umask = os.umask(0)
        os.umask(umask)
        main_thread = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main_thread else None
        try:
            for tmp, path in zip(temporaries, paths):
                os.chmod(tmp, 0o666 & ~umask)
                os.replace(tmp, path)
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    finally:
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return paths


def show(fig, name: str, figures_dir: str | os.PathLike | None = None) -> None:
    """In a notebook: :func:`check_figure`, :func:`save_figure` (PNG + PDF), close ``fig``, and display the saved PNG.

    Every figure the notebooks keep passes through here, so none is written that breaks the
    figure checklist (:func:`figure_problems`): a build fails naming the figure and its problems.

    Showing the saved file instead of the live figure renders it once, not twice,
    and frees its memory; the notebooks call this for every figure they keep.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    check_figure(fig, name)
    paths = save_figure(fig, name, figures_dir)
    plt.close(fig)
    display(Image(filename=str(paths[0]), width=760))


def table_html(frame, *, digits: int = 3, columns: Sequence[str] | None = None,
               names: dict[str, str] | None = None, caption: str | None = None, max_width: int = 960) -> str:
    """A table as HTML that fits a 1000-pixel notebook: rounded numbers, wrapped headers.

    Integers print without decimals (``k = 5``, not ``5.000000``); floats to ``digits``
    significant digits; long headers wrap instead of widening the table, which
    scrolls sideways inside its own box if it still does not fit.

    Args:
        frame: a pandas DataFrame.
        digits: significant digits of floats.
        columns: the columns to show, in order (default all).
        names: display names for columns.
        caption: a caption above the table.
        max_width: the box's width in pixels.
    """
    import html
    import math as _math

    shown = frame[list(columns)] if columns is not None else frame
    names = names or {}

    def cell(value) -> str:
        if isinstance(value, float):
            if _math.isnan(value):
                return "–"
            if _math.isinf(value):
                return "∞" if value > 0 else "−∞"
            if value == int(value) and abs(value) < 1e6:
                return str(int(value))
            return f"{value:.{digits}g}"
        return html.escape(str(value))

    head = "".join(f'<th style="white-space:normal;max-width:9em;text-align:right">'
                   f"{html.escape(str(names.get(c, c)).replace('_', ' '))}</th>" for c in shown.columns)
    rows = "".join("<tr>" + "".join(f'<td style="text-align:right">{cell(v)}</td>' for v in record) + "</tr>"
                   for record in shown.itertuples(index=False))
    title = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return (f'<div style="max-width:{max_width}px;overflow-x:auto"><table style="font-size:12px">{title}'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def show_table(frame, **kwargs) -> None:
    """In a notebook: display ``frame`` as :func:`table_html` (headless builds keep it in the executed copy)."""
    from IPython.display import HTML, display

    display(HTML(table_html(frame, **kwargs)))


def _paper_group(table: dict[tuple[float, float], str], momentum: Iterable[float], what: str) -> str:
    below, above = (round(float(m), 4) for m in momentum)
    try:
        return table[(below, above)]
    except KeyError:
        raise KeyError(f"No paper {what} for momentum group ({below}, {above}); known: {sorted(table)}") from None


def paper_group_color(momentum: Iterable[float]) -> str:
    """The paper's colour for a (below, above) momentum group."""
    return _paper_group(PAPER_GROUP_COLORS, momentum, "colour")


def paper_group_marker(momentum: Iterable[float]) -> str:
    """The marker of a (below, above) momentum group (:data:`PAPER_GROUP_MARKERS`)."""
    return _paper_group(PAPER_GROUP_MARKERS, momentum, "marker")
