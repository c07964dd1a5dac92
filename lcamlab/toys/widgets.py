r"""Sliders that redraw the spring's trajectories live (ipywidgets; imported only when used).

:class:`TrajectoryExplorer` shows, in the :math:`(\theta_n, \theta_s)` plane of a
:class:`~lcamlab.toys.SpringPair`, the paths of SGD with fixed momentum, LCAM and
Adam, and redraws them whenever a slider moves: learning rate, LCAM's momentum
pair (below, above), mass ratio, coupling and noise. One redraw reruns every
optimizer (a few trials, one tensor each) and re-renders one PNG, in 0.1 to 0.2
seconds on one core; :meth:`TrajectoryExplorer.redraw` returns the
time it took, so the notebook prints measured redraw times.

Layout: the sliders are stacked above the figure, each as wide as the output
area (long, fine tracks: the log-scale sliders have 250 or 300 positions), and the
figure scales to the width available (at most its rendered width), so the panel
stays usable in a narrow JupyterLab window with the file browser open.

Headless (papermill), the widget is still built and displayed, and the notebook's
parameters produce the same static figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lcamlab import style
from lcamlab.toys.plots import draw_landscape
from lcamlab.experiments.registry import OptimizerSpec
from lcamlab.toys.runner import run
from lcamlab.toys.spring import SpringPair
from lcamlab.widget_canvas import CanvasPanel

__all__ = ["TrajectoryExplorer"]


class TrajectoryExplorer(CanvasPanel):
    r"""Interactive (theta_n, theta_s) trajectories of SGD+momentum, LCAM and Adam on a SpringPair.

    The fixed-momentum reference uses the mean of LCAM's pair,
    :math:`\bar\beta = (\beta_\text{below} + \beta_\text{above})/2`, so what differs
    between the two is the asymmetry alone; Adam uses the same learning rate.
    Left panel: the paths in the plane (trial mean thick, single trials thin);
    right panel: the excess loss of the trial mean against the step.

    Args:
        lr, below, above, mass_ratio, coupling, noise: initial slider values.
        trials: trials drawn per optimizer (the mean path is drawn thick).
        steps: steps per redraw.
        steps_per_epoch: LCAM's epoch length.
        start, optimum: the spring's start and optimum.
        batch_size: mini-batch size of the spring's noise.
        seed: the data stream's seed (the same for every redraw).
        dpi: resolution of the rendered PNG (``width * dpi`` pixels wide; shown at most that wide).
        width, height: the rendered figure's size in inches.
    """

    #: Exponent step of the log-scale sliders (0.01: 100 positions per decade).
    LOG_STEP = 0.01

    def __init__(
        self,
        *,
        lr: float = 0.02,
        below: float = 0.9,
        above: float = 0.95,
        mass_ratio: float = 25.0,
        coupling: float = 0.8,
        noise: float = 0.2,
        trials: int = 4,
        steps: int = 150,
        steps_per_epoch: int = 40,
        start: Sequence[float] = (-1.0, -1.0),
        optimum: Sequence[float] = (1.0, 1.0),
        batch_size: int = 16,
        seed: int = 0,
        dpi: int = 100,
        width: float = 7.2,
        height: float = 3.3,
    ) -> None:
        import ipywidgets as widgets

        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"Invalid steps: {steps!r} (must be an int >= 2)")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"Invalid trials: {trials!r} (must be an int >= 1)")
        if not (width > 0 and height > 0 and dpi > 0):
            raise ValueError(f"Invalid figure size: width={width!r}, height={height!r}, dpi={dpi!r} (must be > 0)")
        self.trials = trials
        self.steps = steps
        self.steps_per_epoch = steps_per_epoch
        self.start = tuple(float(v) for v in start)
        self.optimum = tuple(float(v) for v in optimum)
        self.batch_size = batch_size
        self.seed = seed
        self.dpi = dpi
        self.size = (float(width), float(height))
        self.redraw_seconds: list[float] = []

        # Full-width rows: the track gets everything but the label and the readout. No side margins:
        # ipywidgets' default 2 px ones would make a 100% wide row overflow its box (a scroll bar).
        common = dict(continuous_update=False, readout=True,
                      style={"description_width": "110px"},
                      layout=widgets.Layout(width="100%", max_width="900px", min_width="260px", margin="2px 0px"))
        log = dict(base=10, step=self.LOG_STEP, readout_format=".3g", **common)

        def span(value: float, low: float, high: float) -> dict[str, float]:
            """``value`` on a log slider over exponents [low, high], the range widened to hold it (a slider
            would clamp it silently); a value <= 0 (no noise) starts at the bottom of the range."""
            if not value > 0:
                return {"value": 10.0 ** low, "min": low, "max": high}
            exponent = math.log10(value)
            return {"value": value, "min": min(low, math.floor(exponent)), "max": max(high, math.ceil(exponent))}

        self.sliders = {
            "lr": widgets.FloatLogSlider(**span(lr, -3, -0.5), description="learning rate", **log),
            "below": widgets.FloatSlider(value=below, min=0.0, max=0.99, step=0.005, readout_format=".3f",
                                         description="β below mean", **common),
            "above": widgets.FloatSlider(value=above, min=0.0, max=0.99, step=0.005, readout_format=".3f",
                                         description="β above mean", **common),
            "mass_ratio": widgets.FloatLogSlider(**span(mass_ratio, 0, 3),
                                                 description="mass ratio aₙ/aₛ", **log),
            "coupling": widgets.FloatSlider(value=coupling, min=0.0, max=0.99, step=0.01, readout_format=".2f",
                                            description="coupling ρ", **common),
            "noise": widgets.FloatLogSlider(**span(noise, -2, 0.5), description="noise σ", **log),
        }
        for slider in self.sliders.values():
            slider.tooltip = slider.description  # the full name when the label is cut
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            width="100%", max_width=f"{round(self.size[0] * dpi)}px", height="auto", object_fit="contain",
            margin="4px 0px 0px 0px"))
        self.status = widgets.Label(layout=widgets.Layout(margin="2px 0px"))
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        self.widget = widgets.VBox(list(self.sliders.values()) + [self.status, self.image],
                                   layout=widgets.Layout(width="100%"))
        self._build_figure()
        # One-off costs (torch's first optimizer imports its compiler stack, about a second) are
        # not a redraw: pay them here, untimed, so the panel's redraw times are what a slider costs.
        run(self.toy(), self.specs()[0], steps=2, steps_per_epoch=self.steps_per_epoch, seed=self.seed)
        self.redraw()

    # -- model ------------------------------------------------------------------------------

    def values(self) -> dict[str, float]:
        """The current slider values."""
        return {name: float(slider.value) for name, slider in self.sliders.items()}

    def slider_steps(self) -> dict[str, int]:
        """How many positions each slider's track has (its resolution)."""
        counts = {}
        for name, slider in self.sliders.items():
            counts[name] = round((slider.max - slider.min) / slider.step)
        return counts

    def specs(self) -> list[OptimizerSpec]:
        """The optimizers drawn for the current slider values."""
        v = self.values()
        mean = round((v["below"] + v["above"]) / 2, 6)
        return [
            OptimizerSpec("sgd", v["lr"], {"momentum": mean}),
            OptimizerSpec("lcam", v["lr"], {"momentum": (v["below"], v["above"])}),
            OptimizerSpec("adam", v["lr"]),
        ]

    def toy(self) -> SpringPair:
        """The spring for the current slider values."""
        v = self.values()
        return SpringPair(self.trials, mass_ratio=v["mass_ratio"], coupling=v["coupling"], noise=v["noise"],
                          start=self.start, optimum=self.optimum, batch_size=self.batch_size)

    # -- drawing -----------------------------------------------------------------------------

    # SGD+momentum drawn wide and underneath, LCAM narrower on top: where their paths coincide
    # (a small asymmetry), both stay visible.
    _WIDTHS = {"momentum": 3.2, "lcam": 1.6, "adam": 1.6}

    def _build_figure(self) -> None:
        import matplotlib.figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        style.apply()
        # A bare Figure (no pyplot) on its own Agg canvas, rendered straight to PNG bytes:
        # one draw per redraw (savefig would draw twice for the suite's tight bounding box).
        self.figure = matplotlib.figure.Figure(figsize=self.size, dpi=self.dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        # fixed margins: no layout pass
        self.figure.subplots_adjust(left=0.09, bottom=0.15, right=0.985, top=0.9, wspace=0.3)
        self.ax, self.loss_ax = self.figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 0.85]})
        # Text a size larger than the static figures': the panel is often shown narrower than rendered.
        for ax in (self.ax, self.loss_ax):
            ax.tick_params(labelsize=9)
        self.ax.set_xlabel("θₙ (light, non-sparse)", fontsize=10)
        self.ax.set_ylabel("θₛ (heavy, sparse)", fontsize=10)
        self.ax.set_title("paths (thick: mean of the trials)", fontsize=10)
        self.loss_ax.set_xlabel("step", fontsize=10)
        # a linear axis of log10: log-scale ticks would cost every redraw about 30 ms
        self.loss_ax.set_ylabel("log₁₀ excess loss (mean path)", fontsize=10)
        self.loss_ax.set_title("how fast each gets there", fontsize=10)
        self.lines: list[dict[str, Any]] = []
        for key in ("momentum", "lcam", "adam"):
            colour = style.optimizer_color(key)
            width = self._WIDTHS[key]
            order = 3 if key == "momentum" else 4
            mean_line = self.ax.plot([], [], color=colour, lw=width, zorder=order, solid_capstyle="round")[0]
            trial_lines = [self.ax.plot([], [], color=colour, lw=0.6, alpha=0.45, zorder=2)[0]
                           for _ in range(self.trials)]
            loss_line = self.loss_ax.plot([], [], color=colour, lw=width, zorder=order)[0]
            self.lines.append({"mean": mean_line, "trials": trial_lines, "loss": loss_line})
        self.ax.plot(*self.start, "o", color="black", ms=4, zorder=5)
        self.ax.plot(*self.optimum, "*", color="black", ms=9, zorder=5)
        self._landscape: list[Any] = []

    def _on_change(self, _change: Any) -> None:
        self.redraw()

    def redraw(self) -> float:
        """Rerun the optimizers and re-render; returns the seconds it took (also shown in the panel)."""
        started = time.perf_counter()
        toy = self.toy()
        specs = self.specs()
        runs = [run(toy, spec, steps=self.steps, steps_per_epoch=self.steps_per_epoch, seed=self.seed)
                for spec in specs]
        points = [r.trajectory.to(torch.float64) for r in runs]
        cloud = torch.cat([p.reshape(-1, 2) for p in points] + [toy.optimum()[:1].to(torch.float64)])
        cloud = cloud[torch.isfinite(cloud).all(dim=1)]
        low, high = cloud.min(dim=0).values, cloud.max(dim=0).values
        span = (high - low).clamp_min(1e-3)
        low, high = (low - 0.1 * span).clamp_min(-10), (high + 0.1 * span).clamp_max(10)
        xlim, ylim = (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))
        before = set(self.ax.collections) | set(self.ax.lines)
        for artist in self._landscape:
            artist.remove()
        draw_landscape(self.ax, toy, xlim, ylim, levels=7)
        self._landscape = [a for a in list(self.ax.collections) + list(self.ax.lines) if a not in before]
        losses = []
        for lines, spec, traj in zip(self.lines, specs, points):
            mean = traj.mean(dim=1)
            xy = mean.numpy()
            lines["mean"].set_data(xy[:, 0], xy[:, 1])
            lines["mean"].set_label(spec.label)
            for i, line in enumerate(lines["trials"]):
                line.set_data(traj[:, i, 0].numpy(), traj[:, i, 1].numpy())
            excess = toy.subset([0]).excess_loss(mean.unsqueeze(1).to(toy.dtype)).to(torch.float64)[:, 0].numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                excess = np.log10(np.where(excess > 0, excess, np.nan))
            losses.append(excess)
            lines["loss"].set_data(np.arange(len(excess)), excess)
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)
        finite = np.concatenate([v[np.isfinite(v)] for v in losses])
        if finite.size:
            bottom, top = max(float(finite.min()), -12.0), min(float(finite.max()), 12.0)
            self.loss_ax.set_ylim(bottom - 0.3, max(top, bottom + 0.5) + 0.3)
        self.loss_ax.set_xlim(0, self.steps)
        for lines in self.lines:
            lines["loss"].set_label(lines["mean"].get_label())
        # on the loss panel, whose upper right the falling curves leave free
        self.loss_ax.legend(handles=[lines["loss"] for lines in self.lines], loc="upper right", fontsize=9)
        self.image.value = self._render_png()
        seconds = time.perf_counter() - started
        self.redraw_seconds.append(seconds)
        diverged = [spec.label for spec, r in zip(specs, runs) if bool(r.diverged().any())]
        warning = f"; diverged: {', '.join(diverged)} (lower the learning rate)" if diverged else ""
        self.status.value = f"redraw: {seconds * 1000:.0f} ms{warning}"
        return seconds

