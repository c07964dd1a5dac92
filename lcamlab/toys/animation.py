r"""Animated GIF of the spring's trajectories, for slides.

:func:`write_trajectory_gif` draws every optimizer's trial-mean path in the
:math:`(\theta_n, \theta_s)` plane growing step by step over the loss contours,
with a marker at each optimizer's current position, and writes the frames with
:class:`matplotlib.animation.PillowWriter`. Frames are blitted: the contours,
axes and labels are rendered once, and each frame redraws only the moving
paths over that cached background (a full redraw per frame would cost about
twenty times more).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from lcamlab import style
from lcamlab.toys.plots import draw_landscape, trajectory_limits
from lcamlab.toys.runner import ToyRun
from lcamlab.toys.spring import SpringPair

__all__ = ["write_trajectory_gif"]


def _blit_writer_class():
    """A :class:`PillowWriter` whose frames redraw only the animated artists over a cached background."""
    from matplotlib.animation import PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    class BlitPillowWriter(PillowWriter):
        def setup(self, fig, outfile, dpi=None):
            super().setup(fig, outfile, dpi=dpi)
            fig.set_dpi(self.dpi)
            self._canvas = FigureCanvasAgg(fig)
            self._canvas.draw()  # everything not marked animated
            self._background = self._canvas.copy_from_bbox(fig.bbox)

        def grab_frame(self, artists=()):  # noqa: D401 - PillowWriter API
            self._canvas.restore_region(self._background)
            for artist in artists:
                self.fig.draw_artist(artist)
            width, height = self._canvas.get_width_height()
            frame = Image.frombuffer("RGBA", (width, height), self._canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
            self._frames.append(frame.convert("RGB"))

    return BlitPillowWriter


def write_trajectory_gif(
    runs: Mapping[str, ToyRun],
    path: str | os.PathLike,
    *,
    frames: int = 60,
    fps: int = 12,
    dpi: int = 96,
    size: float | tuple[float, float] = (6.6, 4.8),
) -> Path:
    """Write an animated GIF of the runs' trial-mean trajectories.

    Args:
        runs: label -> run on the same :class:`SpringPair` (recorded at every step or sub-sampled).
        path: the ``.gif`` to write (its folder is created).
        frames: number of frames (evenly spaced in steps, the last one at the end).
        fps: frames per second.
        dpi: resolution (the GIF is ``width * dpi`` by ``height * dpi`` pixels).
        size: figure ``(width, height)`` in inches, or one number for a square; the legend sits
            right of the plane, outside the paths.

    Returns:
        the path written.
    """
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("write_trajectory_gif needs at least one run")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"Invalid frames: {frames!r} (must be an int >= 2)")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"Invalid GIF path: {path} (the file name must end in .gif)")
    path.parent.mkdir(parents=True, exist_ok=True)
    items = list(runs.items())
    lengths = {r.trajectory.shape[0] for _, r in items}
    if len(lengths) != 1:
        raise ValueError(f"write_trajectory_gif needs runs recorded at the same steps (got lengths {sorted(lengths)})")
    width, height = (float(size), float(size)) if isinstance(size, (int, float)) else map(float, size)
    if not (width > 0 and height > 0):
        raise ValueError(f"Invalid size: {size!r} (inches, > 0)")
    style.apply()
    fig = Figure(figsize=(width, height))  # fixed margins: every frame must have the same size
    legend_width = min(1.85 / width, 0.45)  # inches for the legend at 8 pt, as a fraction of the width
    fig.subplots_adjust(left=0.8 / width, bottom=0.55 / height, right=0.99 - legend_width, top=1 - 0.35 / height)
    ax = fig.add_subplot()
    xlim, ylim = trajectory_limits([r for _, r in items], n_show=0)
    toy = items[0][1].toy
    if isinstance(toy, SpringPair):
        draw_landscape(ax, toy, xlim, ylim, levels=8)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("θₙ (light, non-sparse)")
    ax.set_ylabel("θₛ (heavy, sparse)")
    start = toy.initial_point()[0].to(torch.float64).numpy()
    optimum = toy.optimum()[0].to(torch.float64).numpy()
    ax.plot(*start, "o", color="black", ms=4, zorder=5)
    ax.plot(*optimum, "*", color="black", ms=10, zorder=5)
    paths, heads, means = [], [], []
    for label, r in items:
        colour = style.optimizer_color(r.spec.style_key)
        mean = r.trajectory[:, :, :2].to(torch.float64).mean(dim=1).numpy()
        means.append(mean)
        paths.append(ax.plot([], [], color=colour, lw=1.6, label=label, animated=True)[0])
        heads.append(ax.plot([], [], "o", color=colour, ms=5, markeredgecolor="black", markeredgewidth=0.5,
                             animated=True)[0])
    ax.legend(handles=paths, loc="center left", bbox_to_anchor=(1.02, 0.5))
    title = ax.set_title("", animated=True)
    recorded = items[0][1].recorded_steps.numpy()
    indices = np.unique(np.linspace(0, len(recorded) - 1, frames).round().astype(int))
    writer = _blit_writer_class()(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for index in indices:
            for line, head, mean in zip(paths, heads, means):
                line.set_data(mean[: index + 1, 0], mean[: index + 1, 1])
                head.set_data(mean[index : index + 1, 0], mean[index : index + 1, 1])
            title.set_text(f"step {int(recorded[index])}")
            writer.grab_frame(paths + heads + [title])
    return path
