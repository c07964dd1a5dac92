r"""Sliders for the optimizer zoo: SGD + momentum against LCAM on each landscape, redrawn live.

:class:`ZooExplorer` shows, on one of the zoo's landscapes (a dropdown), the paths
of SGD with momentum :math:`\beta` and of LCAM with its pair
:math:`(\beta_\text{below}, \beta_\text{above})`, both at the same learning rate
and with the same mini-batch noise, LCAM's steps marked by their phase, and next
to them the noiseless loss along both paths. Sliders set the learning rate (log
scale, 200 steps over four decades), :math:`\beta` and LCAM's pair; each change
reruns both optimizers (:func:`lcamlab.zoo.run_spec`, a few tens of milliseconds per 300-step
run) and re-renders one PNG. :meth:`ZooExplorer.redraw` returns the time it took,
so the notebook prints measured redraw times.

The controls are a vertical stack of full-width sliders above the plot, so their
tracks stay long in a narrow notebook (JupyterLab at 1024 x 768 with the file
browser open) and the plot scales down to the cell's width instead of being clipped.

Headless (papermill), the widget is built and displayed all the same, and the
notebook triggers redraws programmatically to measure them.
"""

from __future__ import annotations

import html
import time
from typing import Any

import numpy as np
import torch

from lcamlab import style, zoo
from lcamlab.experiments.registry import OptimizerSpec
from lcamlab.widget_canvas import CanvasPanel, canvas_png

__all__ = ["ZooExplorer"]

_LR_LOG_RANGE = (-4.0, 0.0)  # learning rate 1e-4 .. 1
_LR_LOG_STEP = 0.02          # 200 steps over the four decades
_BETA_STEP = 0.005           # 198 steps over [0, 0.99]


class ZooExplorer(CanvasPanel):
    r"""Interactive paths of SGD + momentum and LCAM on the zoo's landscapes.

    Args:
        landscape: the landscape shown first (a :data:`lcamlab.zoo.LANDSCAPES` key).
        lr: initial learning rate (default: the landscape's rate for SGD + momentum); changing the
            landscape resets it to that landscape's rate.
        momentum: initial :math:`\beta` of SGD + momentum.
        below, above: initial LCAM pair.
        steps: steps per run.
        noise: :math:`\sigma`, the mini-batch noise (the same sequence for every redraw).
        epoch_length: LCAM's epoch length (steps per running mean).
        seed: seed of the noise sequence.
        dpi: resolution of the rendered PNG.
    """

    def __init__(
        self,
        *,
        landscape: str = "quadratic",
        lr: float | None = None,
        momentum: float = 0.9,
        below: float = 0.9,
        above: float = 0.95,
        steps: int = 300,
        noise: float = 0.2,
        epoch_length: int = 25,
        seed: int = 0,
        dpi: int = 100,
    ) -> None:
        import ipywidgets as widgets

        if landscape not in zoo.LANDSCAPES:
            raise ValueError(f"Invalid landscape: {landscape!r} (choose from {list(zoo.LANDSCAPES)})")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"Invalid steps: {steps!r} (must be an int >= 2)")
        if isinstance(epoch_length, bool) or not isinstance(epoch_length, int) or epoch_length < 1:
            raise ValueError(f"Invalid epoch_length: {epoch_length!r} (must be an int >= 1)")
        if not noise >= 0:
            raise ValueError(f"Invalid noise: {noise!r} (must be >= 0)")
        self.steps = steps
        self.epoch_length = epoch_length
        self.noise = noise
        self.seed = seed
        self.dpi = dpi
        self.perturbations = zoo.noise_sequence(steps, noise, seed)
        self.redraw_seconds: list[float] = []
        self.runs: dict[str, zoo.ZooRun] = {}
        self._hold = False
        self._shown_landscape: str | None = None

        # Full-width controls, stacked: width "auto" fills the cell (flex stretch) margins included, where
        # "100%" plus the widgets' 2-pixel margins would overflow it and add a horizontal scroll bar.
        def full() -> Any:
            return widgets.Layout(width="auto")

        common = dict(continuous_update=False, style={"description_width": "150px"})
        lr = zoo.LANDSCAPES[landscape].lr["momentum"] if lr is None else float(lr)
        self.sliders = {
            "landscape": widgets.Dropdown(options=[(spec.name, key) for key, spec in zoo.LANDSCAPES.items()],
                                          value=landscape, description="landscape",
                                          style={"description_width": "150px"}, layout=widgets.Layout(width="60%")),
            "lr": widgets.FloatLogSlider(value=lr, base=10, min=_LR_LOG_RANGE[0], max=_LR_LOG_RANGE[1],
                                         step=_LR_LOG_STEP, description="learning rate η", readout_format=".3g",
                                         layout=full(), **common),
            "momentum": widgets.FloatSlider(value=momentum, min=0.0, max=0.99, step=_BETA_STEP,
                                            description="SGD momentum β", readout_format=".3f", layout=full(),
                                            **common),
            "below": widgets.FloatSlider(value=below, min=0.0, max=0.99, step=_BETA_STEP,
                                         description="LCAM β below mean", readout_format=".3f", layout=full(),
                                         **common),
            "above": widgets.FloatSlider(value=above, min=0.0, max=0.99, step=_BETA_STEP,
                                         description="LCAM β above mean", readout_format=".3f", layout=full(),
                                         **common),
        }
        # The rendered PNG scales down with the cell (never clipped), up to its natural width.
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        # HTML, not Label: a Label never wraps, and a long status line would widen the panel past the cell.
        self.status = widgets.HTML(layout=full())
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        self.widget = widgets.VBox(list(self.sliders.values()) + [self.status, self.image], layout=full())
        self._opening = self.values()
        self._build_figure()
        for name in zoo.LANDSCAPES:  # every landscape's background once, up front
            self._show_landscape(name)
        self.redraw()

    # -- model ------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The current control values."""
        return {name: (slider.value if name == "landscape" else float(slider.value))
                for name, slider in self.sliders.items()}

    def specs(self) -> dict[str, OptimizerSpec]:
        """The two optimizers for the current values, by style key."""
        v = self.values()
        return {
            "momentum": OptimizerSpec("sgd", v["lr"], (("momentum", v["momentum"]),), "momentum"),
            "lcam": OptimizerSpec("lcam", v["lr"], (("momentum", (v["below"], v["above"])),), "lcam"),
        }

    # -- drawing -----------------------------------------------------------------------------

    def _build_figure(self) -> None:
        import matplotlib.figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        style.apply()
        # A bare Figure on its own Agg canvas, rendered straight to PNG bytes, with fixed margins and
        # fixed axis limits per landscape. Everything that does not change with the sliders (contours,
        # axes, ticks, labels) is drawn once per landscape, when the panel is built, and kept as a
        # bitmap; a redraw restores it and draws only the paths, dots, loss curves and legend on top
        # (blitting), about a third of the cost of a full draw, and switching landscapes costs no
        # more than moving a slider.
        self.figure = matplotlib.figure.Figure(figsize=(7.6, 3.3), dpi=self.dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.08, bottom=0.29, right=0.98, top=0.92, wspace=0.28)
        self.ax_path, self.ax_loss = self.figure.subplots(1, 2)
        self.markers: list = []
        self._backgrounds: dict[str, Any] = {}
        lines = {}
        for key in ("lcam", "momentum"):
            lines[key] = self.ax_path.plot([], [], color=style.optimizer_color(key), **zoo.LINE_STYLES[key])[0]
        self.path_lines = lines
        self.phase_dots = self.ax_path.scatter(np.zeros(0), np.zeros(0), s=12, edgecolors="0.15",
                                               linewidths=0.4, zorder=5)
        self.loss_lines = {key: self.ax_loss.plot([], [], color=style.optimizer_color(key),
                                                  **zoo.LINE_STYLES[key])[0] for key in ("lcam", "momentum")}
        self.ax_loss.set_yscale("log")
        self.ax_loss.set_xlim(0, self.steps)
        self.ax_loss.set_xlabel("iteration")
        self.ax_loss.set_ylabel(r"$f(\theta) - f^\star$ (noiseless)")
        from matplotlib.lines import Line2D

        phase_handles = [Line2D([], [], marker="o", linestyle="none", markersize=5, markerfacecolor=colour,
                                markeredgecolor="0.15", markeredgewidth=0.4, label=f"LCAM step {phase} its mean")
                         for phase, colour in style.PHASE_COLORS.items()]
        self.legend = self.figure.legend(handles=[lines["momentum"], lines["lcam"], *phase_handles],
                                         loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0.0))
        for artist in self._dynamic_artists():
            artist.set_animated(True)

    def _dynamic_artists(self) -> list:
        """What a redraw changes, in drawing order (the start and minima stay on top of the paths)."""
        return [self.path_lines["lcam"], self.phase_dots, self.path_lines["momentum"], *self.markers,
                self.loss_lines["lcam"], self.loss_lines["momentum"], self.legend]

    def _show_landscape(self, landscape: str) -> None:
        if self._shown_landscape == landscape:
            return
        land = zoo.LANDSCAPES[landscape]
        # The loss axis spans 1e-6 up to above the start's loss, the same for every run on this landscape.
        start_gap = float(land.loss(torch.tensor(land.start, dtype=torch.float64))) - zoo.f_star(landscape)
        loss_top = 10 ** np.ceil(np.log10(max(start_gap, 1.0)) + 0.5)
        for artist in self.markers:
            artist.remove()
        self.markers = []
        if landscape not in self._backgrounds:
            contours = zoo.plot_landscape(self.ax_path, landscape, levels=20, resolution=120)
            self.ax_loss.set_ylim(1e-6, loss_top)
            self.canvas.draw()  # everything but the animated artists
            self._backgrounds[landscape] = self.canvas.copy_from_bbox(self.figure.bbox)
            contours.remove()  # it lives on in the bitmap
        self.ax_path.set_xlim(land.xlim)
        self.ax_path.set_ylim(land.ylim)
        self.ax_loss.set_ylim(1e-6, loss_top)
        self.markers = zoo._mark_start_and_minima(self.ax_path, landscape)
        for artist in self.markers:
            artist.set_animated(True)
        self._shown_landscape = landscape

    def _on_change(self, change: Any) -> None:
        if self._hold:
            return
        if change.get("owner") is self.sliders["landscape"]:
            # A new landscape starts at its own learning rate for SGD + momentum: one redraw, not two.
            self._hold = True
            try:
                self.sliders["lr"].value = zoo.LANDSCAPES[change["new"]].lr["momentum"]
            finally:
                self._hold = False
        self.redraw()

    def reset(self) -> float:
        """Back to the values the panel opened with (one redraw); returns its seconds.

        The notebook moves the sliders from code to time the redraws, then resets, so the panel a
        reader finds after Run All shows the static figure's landscape and learning rate.
        """
        self._hold = True
        try:
            for name, value in self._opening.items():
                self.sliders[name].value = value
        finally:
            self._hold = False
        return self.redraw()

    def redraw(self) -> float:
        """Rerun both optimizers and re-render; returns the seconds it took (also shown in the panel)."""
        started = time.perf_counter()
        landscape = self.sliders["landscape"].value
        self.runs = {key: zoo.run_spec(landscape, spec, self.perturbations, epoch_length=self.epoch_length,
                                       key=key, stop_on_divergence=True)
                     for key, spec in self.specs().items()}
        self._show_landscape(landscape)
        floor = zoo.f_star(landscape)
        for key, run in self.runs.items():
            self.path_lines[key].set_data(run.path[:, 0], run.path[:, 1])
            self.path_lines[key].set_label(run.label)
            gap = np.maximum(run.true_losses - floor, 1e-12)
            self.loss_lines[key].set_data(np.arange(len(gap)), gap)
        lcam = self.runs["lcam"]
        points = lcam.path[1:len(lcam.below) + 1]
        self.phase_dots.set_offsets(points)
        self.phase_dots.set_facecolors([style.PHASE_COLORS["below" if b else "above"] for b in lcam.below])
        for text, handle in zip(self.legend.get_texts(), (self.path_lines["momentum"], self.path_lines["lcam"])):
            text.set_text(handle.get_label())
        self.image.value = self._render_png()
        seconds = time.perf_counter() - started
        self.redraw_seconds.append(seconds)
        self.status.value = f'<div style="white-space:normal">{html.escape(self._status(seconds))}</div>'
        return seconds

    def _status(self, seconds: float) -> str:
        parts = [f"redraw: {seconds * 1000:.0f} ms"]
        lcam = self.runs["lcam"]
        if len(lcam.below):
            parts.append(f"LCAM below its mean in {lcam.below.mean():.0%} of steps")
        for run in (self.runs["momentum"], lcam):
            if run.diverged:
                parts.append(f"{run.label} diverged at step {run.diverged_at} (lower the learning rate)")
            else:
                parts.append(f"{run.label}: late f−f* {zoo.late_loss(run):.2g}")
        return "; ".join(parts)

    def _render_png(self) -> bytes:
        # the contours and axes are cached per landscape: restore them and draw only what moves
        self.canvas.restore_region(self._backgrounds[self._shown_landscape])
        for artist in self._dynamic_artists():
            self.figure.draw_artist(artist)
        return canvas_png(self.canvas)
