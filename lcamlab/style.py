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
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

from lcamlab.experiments.registry import color as optimizer_color
from lcamlab.experiments.registry import label as optimizer_label
from lcamlab.experiments.registry import marker as optimizer_marker
from lcamlab.paths import FIGURES_DIR

__all__ = [
    "PAPER_GROUP_COLORS",
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
    "default_figures_dir",
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
    """In a notebook: :func:`save_figure` (PNG + PDF), close ``fig``, and display the saved PNG.

    Showing the saved file instead of the live figure renders it once, not twice,
    and frees its memory; the notebooks call this for every figure they keep.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

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


def paper_group_color(momentum: Iterable[float]) -> str:
    """The paper's colour for a (below, above) momentum group."""
    below, above = (round(float(m), 4) for m in momentum)
    try:
        return PAPER_GROUP_COLORS[(below, above)]
    except KeyError:
        raise KeyError(
            f"No paper colour for momentum group ({below}, {above}); known: {sorted(PAPER_GROUP_COLORS)}"
        ) from None
