"""What the notebooks' slider panels share: an off-screen matplotlib canvas shown as a PNG.

The panels (:class:`lcamlab.zoo_widgets.ZooExplorer`,
:class:`lcamlab.toys.widgets.TrajectoryExplorer`,
:class:`lcamlab.escape.widgets.EscapeExplorer`) draw on an Agg canvas and push
the pixels into an ``ipywidgets.Image``: no interactive backend, so a redraw is one
rasterisation plus a fast PNG encode, and it renders the same in JupyterLab and in
a headless build.
"""

from __future__ import annotations

import io

__all__ = ["CanvasPanel", "canvas_png"]


def canvas_png(canvas) -> bytes:
    """The canvas's current pixels as PNG bytes (fast compression: a redraw, not an archive)."""
    from PIL import Image

    width, height = canvas.get_width_height()
    frame = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    frame.convert("RGB").save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class CanvasPanel:
    """Mixin of the slider panels: ``canvas`` (an Agg canvas) and ``widget`` (the ipywidgets box)."""

    canvas: object
    widget: object

    def _render_png(self) -> bytes:
        """Draw the whole figure and return it as PNG bytes (panels may draw less and call :func:`canvas_png`)."""
        self.canvas.draw()
        return canvas_png(self.canvas)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
