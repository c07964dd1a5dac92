r"""Sliders that redraw the spring's trajectories live (ipywidgets; imported only when used).

:class:`TrajectoryExplorer` shows, in the :math:`(\theta_n, \theta_s)` plane of a
:class:`~lcamlab.toys.SpringPair`, the paths of SGD with fixed momentum, LCAM and
Adam, and redraws them whenever a slider moves: learning rate, LCAM's momentum
pair (below, above), mass ratio, coupling and noise. One redraw reruns every
optimizer (a few trials, one tensor each) and re-renders a small PNG, in well
under half a second on a laptop core; :meth:`TrajectoryExplorer.redraw` returns
the time it took, so the notebook prints measured redraw times.

Headless (papermill), the widget is still built and displayed, and the notebook's
parameters produce the same static figures.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

import torch

from lcamlab import style
from lcamlab.toys.plots import draw_landscape
from lcamlab.experiments.registry import OptimizerSpec
from lcamlab.toys.runner import run
from lcamlab.toys.spring import SpringPair

__all__ = ["TrajectoryExplorer"]


class TrajectoryExplorer:
    r"""Interactive (theta_n, theta_s) trajectories of SGD+momentum, LCAM and Adam on a SpringPair.

    The fixed-momentum reference uses the mean of LCAM's pair,
    :math:`\bar\beta = (\beta_\text{below} + \beta_\text{above})/2`, so what differs
    between the two is the asymmetry alone; Adam uses the same learning rate.

    Args:
        lr, below, above, mass_ratio, coupling, noise: initial slider values.
        trials: trials drawn per optimizer (the mean path is drawn thick).
        steps: steps per redraw.
        steps_per_epoch: LCAM's epoch length.
        start, optimum: the spring's start and optimum.
        batch_size: mini-batch size of the spring's noise.
        seed: the data stream's seed (the same for every redraw).
        dpi: resolution of the rendered PNG.
    """

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
        dpi: int = 90,
    ) -> None:
        import ipywidgets as widgets

        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"Invalid steps: {steps!r} (must be an int >= 2)")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"Invalid trials: {trials!r} (must be an int >= 1)")
        self.trials = trials
        self.steps = steps
        self.steps_per_epoch = steps_per_epoch
        self.start = tuple(float(v) for v in start)
        self.optimum = tuple(float(v) for v in optimum)
        self.batch_size = batch_size
        self.seed = seed
        self.dpi = dpi
        self.redraw_seconds: list[float] = []

        common = dict(continuous_update=False, style={"description_width": "90px"},
                      layout=widgets.Layout(width="320px"))
        self.sliders = {
            "lr": widgets.FloatLogSlider(value=lr, base=10, min=-3, max=-0.5, step=0.05,
                                         description="learning rate", readout_format=".3g", **common),
            "below": widgets.FloatSlider(value=below, min=0.0, max=0.99, step=0.01,
                                         description="β below", **common),
            "above": widgets.FloatSlider(value=above, min=0.0, max=0.99, step=0.01,
                                         description="β above", **common),
            "mass_ratio": widgets.FloatLogSlider(value=mass_ratio, base=10, min=0, max=3, step=0.05,
                                                 description="mass ratio", readout_format=".3g", **common),
            "coupling": widgets.FloatSlider(value=coupling, min=0.0, max=0.99, step=0.01,
                                            description="coupling ρ", **common),
            "noise": widgets.FloatLogSlider(value=noise, base=10, min=-3, max=0.5, step=0.05,
                                            description="noise σ", readout_format=".3g", **common),
        }
        self.image = widgets.Image(format="png")
        self.status = widgets.Label()
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        left = widgets.VBox(list(self.sliders.values()) + [self.status])
        self.widget = widgets.HBox([left, self.image])
        self._build_figure()
        self.redraw()

    # -- model ------------------------------------------------------------------------------

    def values(self) -> dict[str, float]:
        """The current slider values."""
        return {name: float(slider.value) for name, slider in self.sliders.items()}

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

    def _build_figure(self) -> None:
        import matplotlib.figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        style.apply()
        # A bare Figure (no pyplot) on its own Agg canvas, rendered straight to PNG bytes:
        # one draw per redraw (savefig would draw twice for the suite's tight bounding box).
        self.figure = matplotlib.figure.Figure(figsize=(4.6, 3.8), dpi=self.dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.15, bottom=0.13, right=0.97, top=0.97)  # fixed: no layout pass
        self.ax = self.figure.add_subplot()
        self.ax.set_xlabel("θₙ (light, non-sparse)")
        self.ax.set_ylabel("θₛ (heavy, sparse)")
        self.lines: list[dict[str, Any]] = []
        for key in ("momentum", "lcam", "adam"):
            colour = style.optimizer_color(key)
            mean_line = self.ax.plot([], [], color=colour, lw=2.0, zorder=4)[0]
            trial_lines = [self.ax.plot([], [], color=colour, lw=0.6, alpha=0.45, zorder=2)[0]
                           for _ in range(self.trials)]
            self.lines.append({"mean": mean_line, "trials": trial_lines})
        self.ax.plot(*self.start, "o", color="black", ms=4, zorder=5)
        self.ax.plot(*self.optimum, "*", color="black", ms=9, zorder=5)

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
        for artist in list(self.ax.collections) + [ln for ln in self.ax.lines if ln.get_linestyle() == "--"]:
            artist.remove()
        draw_landscape(self.ax, toy, xlim, ylim, levels=7)
        for lines, spec, traj in zip(self.lines, specs, points):
            mean = traj.mean(dim=1).numpy()
            lines["mean"].set_data(mean[:, 0], mean[:, 1])
            lines["mean"].set_label(spec.label)
            for i, line in enumerate(lines["trials"]):
                line.set_data(traj[:, i, 0].numpy(), traj[:, i, 1].numpy())
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)
        self.ax.legend(handles=[lines["mean"] for lines in self.lines], loc="lower right", fontsize=7)
        self.image.value = self._render_png()
        seconds = time.perf_counter() - started
        self.redraw_seconds.append(seconds)
        diverged = [spec.label for spec, r in zip(specs, runs) if bool(r.diverged().any())]
        warning = f"; diverged: {', '.join(diverged)} (lower the learning rate)" if diverged else ""
        self.status.value = f"redraw: {seconds * 1000:.0f} ms{warning}"
        return seconds

    def _render_png(self) -> bytes:
        from PIL import Image

        self.canvas.draw()
        width, height = self.canvas.get_width_height()
        frame = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        frame.convert("RGB").save(buffer, format="png", compress_level=1)
        return buffer.getvalue()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
