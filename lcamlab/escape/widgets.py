r"""Sliders that simulate escapes from the sharp valley live and redraw their histogram (ipywidgets; imported only here).

:class:`EscapeExplorer` runs a few hundred fresh trials of one optimizer at the chosen
sharpness :math:`k` and learning rate :math:`\eta` (the design's landscape, start, warm-up
and random stream, :func:`lcamlab.escape.design.sample_escape_times`, on the numba
escape loop) and shows their escape times: a histogram with the exponential law fitted to
them (left), and the survival curve :math:`P(T > t)` on a log scale, where an
exponential law is a straight line (right). One redraw (simulation and a PNG render) takes
a few tens of milliseconds on one core; :meth:`EscapeExplorer.redraw` returns the time it
took, so the notebook prints measured redraw times.

Layout as :class:`lcamlab.toys.widgets.TrajectoryExplorer`: the controls stacked above
the figure, each slider as wide as the output area (log sliders of 230 and 350 positions),
and the figure scales down to the width available.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from lcamlab import style
from lcamlab.escape.design import DATA_ONLY, DESIGN_LRS, DesignConfig, sample_escape_times
from lcamlab.experiments.stats import censored_exponential_rate
from lcamlab.widget_canvas import CanvasPanel

__all__ = ["EscapeExplorer", "OPTIONS"]

#: The optimizers offered (design keys) and the noise arms.
OPTIONS = ("sgd", "momentum", "adam", "lcam-above")
ARMS = ("data", "gauss")


class EscapeExplorer(CanvasPanel):
    r"""Escape-time histogram of one optimizer at a chosen sharpness and learning rate, simulated live.

    Args:
        optimizer: one of :data:`OPTIONS` (SGD, SGD+momentum, Adam, LCAM accelerating above).
        k, lr: initial sharpness and learning rate (``lr`` defaults to the design's rate).
        arm: ``"data"`` (batch 1 from the training set) or ``"gauss"`` (Gaussian noise, the data's variance).
        trials: fresh trials per redraw.
        budget: iterations before a trial counts as censored (still inside).
        config: the design whose landscape, warm-up and stream are used (default :class:`DesignConfig`).
        dpi, width, height: the rendered figure (``width * dpi`` pixels wide at most).
    """

    #: Exponent step of the log sliders (0.01: 100 positions per decade).
    LOG_STEP = 0.01

    def __init__(self, *, optimizer: str = "sgd", k: float = 2.0, lr: float | None = None, arm: str = "data",
                 trials: int = 400, budget: int = 3000, config: DesignConfig | None = None, dpi: int = 100,
                 width: float = 8.0, height: float = 3.2) -> None:
        import ipywidgets as widgets

        if optimizer not in OPTIONS:
            raise ValueError(f"Invalid optimizer: {optimizer!r} (choose from {', '.join(OPTIONS)})")
        if arm not in ARMS:
            raise ValueError(f"Invalid arm: {arm!r} (choose from {', '.join(ARMS)})")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 10:
            raise ValueError(f"Invalid trials: {trials!r} (must be an int >= 10)")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 10:
            raise ValueError(f"Invalid budget: {budget!r} (must be an int >= 10)")
        self.config = config or DesignConfig()
        self.trials = trials
        self.budget = budget
        self.dpi = dpi
        self.size = (float(width), float(height))
        self.redraw_seconds: list[float] = []
        self.result = None
        self._quiet = False

        common = dict(continuous_update=False, readout=True, style={"description_width": "110px"},
                      layout=widgets.Layout(width="100%", max_width="900px", min_width="260px"))
        log = dict(base=10, step=self.LOG_STEP, readout_format=".3g", **common)
        self.sliders = {
            "k": widgets.FloatLogSlider(value=k, min=-0.3, max=2.0, description="sharpness k", **log),
            "lr": widgets.FloatLogSlider(value=lr if lr is not None else DESIGN_LRS[optimizer], min=-4.0, max=-0.5,
                                         description="learning rate η", **log),
        }
        for slider in self.sliders.values():
            slider.tooltip = slider.description  # the full name when the label is cut
        choice = dict(style={"description_width": "110px", "button_width": "auto"},
                      layout=widgets.Layout(width="100%", max_width="900px"))
        self.optimizer = widgets.ToggleButtons(options=[(style.optimizer_label(o), o) for o in OPTIONS],
                                               value=optimizer, description="optimizer", **choice)
        self.arm = widgets.ToggleButtons(options=[("data (batch 1)", "data"), ("Gaussian", "gauss")], value=arm,
                                         description="noise", **choice)
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            width="100%", max_width=f"{round(self.size[0] * dpi)}px", height="auto", object_fit="contain"))
        self.status = widgets.HTML()
        for control in (*self.sliders.values(), self.arm):
            control.observe(self._on_change, names="value")
        self.optimizer.observe(self._on_optimizer, names="value")
        self.widget = widgets.VBox([self.optimizer, self.arm, *self.sliders.values(), self.status, self.image],
                                   layout=widgets.Layout(width="100%"))
        self._build_figure()
        self.redraw()

    # -- model ------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The current settings: optimizer, arm, k, lr."""
        return {"optimizer": self.optimizer.value, "arm": self.arm.value, "k": float(self.sliders["k"].value),
                "lr": float(self.sliders["lr"].value)}

    def slider_steps(self) -> dict[str, int]:
        """How many positions each slider's track has (its resolution)."""
        return {name: round((s.max - s.min) / s.step) for name, s in self.sliders.items()}

    def effective_step(self) -> float:
        r"""The step that sets the dynamics: :math:`\eta k` (Adam: :math:`\eta\sqrt k`)."""
        v = self.values()
        return v["lr"] * (math.sqrt(v["k"]) if v["optimizer"] == "adam" else v["k"])

    # -- drawing -----------------------------------------------------------------------------

    def _build_figure(self) -> None:
        import matplotlib.figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        style.apply()
        self.figure = matplotlib.figure.Figure(figsize=self.size, dpi=self.dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.08, bottom=0.16, right=0.985, top=0.88, wspace=0.3)
        self.ax, self.survival_ax = self.figure.subplots(1, 2)
        self.ax.set_xlabel("escape iteration")
        self.ax.set_ylabel("trials per bin")
        self.survival_ax.set_xlabel("iteration t")
        self.survival_ax.set_ylabel("log₁₀ P(T > t)")  # a linear axis of log10: log ticks cost a redraw 30 ms
        self.survival_ax.set_title("still inside (straight line: exponential)", fontsize=9)
        self.bars = None
        self.curve = self.ax.plot([], [], color="black", lw=1.2, label="exponential fit")[0]
        self.survival = self.survival_ax.plot([], [], lw=1.6, drawstyle="steps-post", label="simulated")[0]
        self.survival_fit = self.survival_ax.plot([], [], color="black", lw=1.0, ls="--", label="exponential fit")[0]

    def _on_change(self, _change: Any) -> None:
        if not self._quiet:
            self.redraw()

    def _on_optimizer(self, change: Any) -> None:
        # the design's learning rate of the new optimizer, and data noise for LCAM: one redraw for all of it
        self._quiet = True
        try:
            self.sliders["lr"].value = DESIGN_LRS[change["new"]]
            if change["new"] in DATA_ONLY:
                self.arm.value = "data"
        finally:
            self._quiet = False
        self.redraw()

    def redraw(self) -> float:
        """Simulate the current setting and re-render; returns the seconds it took (also shown above the plot)."""
        started = time.perf_counter()
        v = self.values()
        arm = "data" if v["optimizer"] in DATA_ONLY else v["arm"]
        result = sample_escape_times(v["optimizer"], v["k"], v["lr"], arm=arm, trials=self.trials,
                                     budget=self.budget, config=self.config)
        self.result = result
        exposure = result.exposure.astype(float)
        escaped = result.escaped
        times = result.escape_step[escaped].astype(float)
        rate = censored_exponential_rate(exposure, escaped)
        colour = style.optimizer_color(v["optimizer"])
        # histogram
        top = float(min(self.budget, max(np.quantile(times, 0.98) * 1.1, 10.0))) if times.size else float(self.budget)
        edges = np.linspace(0.0, top, 31)
        counts, _ = np.histogram(times, bins=edges)
        if self.bars is not None:
            self.bars.remove()
        self.bars = self.ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colour, alpha=0.5,
                                edgecolor=colour, linewidth=0.5, label="simulated")
        g = rate.rate if rate.escapes else 0.0
        expected = len(exposure) * (np.exp(-g * edges[:-1]) - np.exp(-g * edges[1:]))
        self.curve.set_data((edges[:-1] + edges[1:]) / 2, expected)
        self.ax.set_xlim(0, top)
        self.ax.set_ylim(0, max(float(counts.max()) if counts.size else 1.0, float(expected.max()), 1.0) * 1.15)
        self.ax.legend(handles=[self.bars, self.curve], loc="upper right")
        # survival, on log10 of a linear axis
        order = np.argsort(exposure, kind="stable")
        alive = 1.0 - np.cumsum(escaped[order]) / len(exposure)
        keep = alive > 0
        t_sorted = np.concatenate([[0.0], exposure[order][keep]])
        s_sorted = np.log10(np.concatenate([[1.0], alive[keep]]))
        self.survival.set_data(t_sorted, s_sorted)
        self.survival.set_color(colour)
        right = float(min(self.budget, max(t_sorted.max(), 10.0)))
        grid = np.linspace(0.0, right, 50)
        self.survival_fit.set_data(grid, -g * grid / math.log(10))
        low = max(min(float(s_sorted.min()), -g * right / math.log(10)), -3.0)
        self.survival_ax.set_xlim(0, right)
        self.survival_ax.set_ylim(low - 0.1, 0.05)
        self.survival_ax.legend(handles=[self.survival, self.survival_fit], loc="upper right")
        label = style.optimizer_label(v["optimizer"])
        mean = f"{rate.mean_time:.3g}" if rate.escapes else f"> {self.budget}"
        self.ax.set_title(f"{label}, {'data' if arm == 'data' else 'Gaussian'} noise: mean escape time {mean} it",
                          fontsize=9)
        self.image.value = self._render_png()
        seconds = time.perf_counter() - started
        self.redraw_seconds.append(seconds)
        step = "η√k" if v["optimizer"] == "adam" else "ηk"
        censored = 1.0 - escaped.mean()
        note = " (LCAM needs a mini-batch loss: data noise)" if arm != v["arm"] else ""
        self.status.value = (f"<span style='font-size:12px'>effective step {step} = {self.effective_step():.3g}; "
                             f"{self.trials} trials, {censored:.0%} still inside after {self.budget} iterations; "
                             f"redraw {seconds * 1000:.0f} ms{note}</span>")
        return seconds

