"""The optimizer zoo: every optimizer makes progress on every landscape; LCAM records its phases;
divergence is measured, not guessed; the figures keep both SGD + momentum and LCAM visible; the
sliders redraw on every change."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lcamlab import zoo  # noqa: E402
from lcamlab.experiments.registry import label  # noqa: E402


@pytest.mark.parametrize("landscape", list(zoo.LANDSCAPES))
def test_every_optimizer_descends(landscape):
    runs = zoo.run_zoo(landscape, steps=150, seed=1)
    assert set(runs) == set(zoo.OPTIMIZERS)
    for key, run in runs.items():
        assert run.path.shape == (151, 2) and np.isfinite(run.path).all(), key
        assert run.true_losses[-1] < run.true_losses[0], f"{key} did not descend on {landscape}"
        assert not run.diverged and run.label == label(key)


@pytest.mark.parametrize("landscape", list(zoo.LANDSCAPES))
def test_analytic_gradient_is_the_gradient(landscape):
    land = zoo.LANDSCAPES[landscape]
    theta = (torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
             ).requires_grad_(True)
    land.loss(theta).sum().backward()
    torch.testing.assert_close(land.gradient(theta.detach()), theta.grad, rtol=1e-12, atol=1e-12)


def test_lcam_phases_are_recorded_against_the_epoch_mean():
    run = zoo.run_zoo("quadratic", ["lcam-above"], steps=50, epoch_length=10)["lcam-above"]
    assert run.below.shape == (50,) and run.running_mean.shape == (50,)
    for t in range(50):
        start = t - t % 10
        mean = run.losses[start:t + 1].mean()
        assert run.running_mean[t] == pytest.approx(mean, rel=1e-12)
        assert run.below[t] == (run.losses[t] < mean)
    assert not run.below[::10].any()  # first step of each epoch: "above"


def test_mini_batch_loss_is_f_plus_the_linear_noise_term():
    steps, noise, seed = 20, 0.5, 4
    run = zoo.run_zoo("quadratic", ["momentum"], steps=steps, noise=noise, seed=seed)["momentum"]
    xi = zoo.noise_sequence(steps, noise, seed)[:, 0].numpy()
    np.testing.assert_allclose(run.losses, run.true_losses[:-1] + (xi * run.path[:-1]).sum(1), rtol=1e-12)


def test_same_seed_same_numbers():
    a = zoo.run_zoo("saddle", ["adam", "lcam-below"], steps=40, seed=3)
    b = zoo.run_zoo("saddle", ["adam", "lcam-below"], steps=40, seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key].path, b[key].path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(landscape="himmelblau"), "Invalid landscape"),
        (dict(landscape="quadratic", steps=0), "Invalid steps"),
        (dict(landscape="quadratic", noise=-1.0), "Invalid noise"),
        (dict(landscape="quadratic", epoch_length=0), "Invalid epoch_length"),
        (dict(landscape="quadratic", optimizers=["lbfgs"]), "Invalid optimizer"),
        (dict(landscape="quadratic", lr_scale=0.0), "Invalid lr_scale"),
    ],
)
def test_bad_arguments(kwargs, match):
    landscape = kwargs.pop("landscape")
    with pytest.raises(ValueError, match=match):
        zoo.run_zoo(landscape, **kwargs)


def test_divergence_is_a_clear_error():
    with pytest.raises(FloatingPointError, match="sgd diverged on quadratic.*lower lr_scale"):
        zoo.run_zoo("quadratic", ["sgd"], steps=2000, lr_scale=40.0)


def test_doubling_the_rate_breaks_sgd_not_momentum_as_the_stability_bounds_say():
    # The notebook's third exercise: the measured answer agrees with the textbook bounds.
    assert zoo.max_curvature("quadratic") == pytest.approx(25.0)
    assert zoo.stability_bound("quadratic") == pytest.approx(0.08)
    assert zoo.stability_bound("quadratic", 0.9) == pytest.approx(0.152)
    lrs = zoo.LANDSCAPES["quadratic"].lr
    assert 2 * lrs["sgd"] > zoo.stability_bound("quadratic") and 2 * lrs["momentum"] < zoo.stability_bound(
        "quadratic", 0.9)
    runs = zoo.run_zoo("quadratic", ["sgd", "momentum"], lr_scale=2.0, stop_on_divergence=True)
    assert runs["sgd"].diverged and not runs["momentum"].diverged
    assert zoo.doubling_answer(runs) == "only SGD diverges"
    sgd = runs["sgd"]
    assert len(sgd.path) == len(sgd.losses) == sgd.diverged_at and np.isfinite(sgd.path).all()
    assert zoo.late_loss(sgd) == np.inf


@pytest.mark.parametrize("sgd, momentum, answer", [
    (False, False, "both converge"), (True, False, "only SGD diverges"),
    (False, True, "only momentum diverges"), (True, True, "both diverge")])
def test_doubling_answer_covers_every_option(sgd, momentum, answer):
    runs = zoo.run_zoo("quadratic", ["sgd", "momentum"], steps=5)
    runs["sgd"].diverged_at = 3 if sgd else None
    runs["momentum"].diverged_at = 3 if momentum else None
    assert zoo.doubling_answer(runs) == answer and answer in zoo.DOUBLING_OPTIONS


def test_measurements_and_summary_table():
    runs = {name: zoo.run_zoo(name, ["sgd", "adam"], steps=80) for name in ("quadratic", "saddle")}
    run = runs["quadratic"]["sgd"]
    gap = run.true_losses - zoo.f_star("quadratic")
    hit = zoo.steps_to(run, 1.0)
    assert gap[hit] < 1.0 and (gap[:hit] >= 1.0).all()
    assert zoo.steps_to(run, 1e-30) is None
    assert zoo.late_loss(run) == pytest.approx(gap[-27:].mean())
    assert zoo.f_star("saddle") == pytest.approx(-0.25)
    assert zoo.lowest_late_loss(runs["quadratic"]) in ("sgd", "adam")
    table = zoo.summary_table(runs)
    assert list(table["optimizer"]) == ["SGD", "Adam"]
    assert table["quadratic: lr"].tolist() == [0.07, 0.15]
    assert {"saddle: late f−f*", "saddle: steps to f−f* < 0.01"} <= set(table.columns)


def _texts(fig):
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_text() and text.get_visible():
            yield text


def test_trajectory_figure_keeps_momentum_visible_over_lcam_and_reads_at_8pt():
    runs = zoo.run_zoo("quadratic", steps=60)
    fig = zoo.landscape_figure(runs)
    try:
        fig.canvas.draw()
        ax_path = fig.axes[0]
        lines = {line.get_label(): line for line in ax_path.get_lines()}
        momentum = lines[label("momentum")]
        for key in ("lcam-above", "lcam-below"):
            lcam = lines[label(key)]
            assert momentum.get_zorder() > lcam.get_zorder()       # drawn on top ...
            assert momentum.get_linewidth() < lcam.get_linewidth()  # ... thinner, so LCAM shows around it
            assert momentum.get_linestyle() != "-"                  # ... and dashed, so LCAM shows through it
        legend = fig.legends[0]
        assert len(legend.get_texts()) == len(zoo.OPTIMIZERS)
        assert min(t.get_fontsize() for t in _texts(fig)) >= 8
    finally:
        matplotlib.pyplot.close(fig)


def test_phase_figure_has_visible_dots_and_explains_its_loss_axis():
    runs = zoo.run_zoo("quadratic", ["lcam-above", "lcam-below"], steps=60)
    fig = zoo.phase_figure([runs["lcam-above"], runs["lcam-below"]])
    try:
        fig.canvas.draw()
        dots = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.PathCollection)]
        assert len(dots) == 2 and all(d.get_sizes()[0] >= 20 and d.get_linewidths()[0] > 0 for d in dots)
        assert fig.axes[2].get_yscale() == "symlog" and "symlog" in fig.axes[2].get_ylabel()
        assert any("below 0" in t.get_text() and "noise term" in t.get_text() for t in fig.texts)
        assert min(t.get_fontsize() for t in _texts(fig)) >= 8
    finally:
        matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="not an LCAM run"):
        zoo.phase_figure([zoo.run_zoo("quadratic", ["adam"], steps=5)["adam"]])


def test_no_paper_file_numbers_in_user_facing_text():
    import re

    text = " ".join([zoo.__doc__, zoo.PHASE_NOTE, *map(label, zoo.OPTIMIZERS),
                     *(land.title for land in zoo.LANDSCAPES.values())])
    assert not re.search(r"\b00[0-4]\b", text)


# -- the sliders -----------------------------------------------------------------------------------


def test_slider_panel_redraws_once_per_change():
    pytest.importorskip("ipywidgets")
    from lcamlab.zoo_widgets import ZooExplorer

    panel = ZooExplorer(steps=60)
    assert len(panel.redraw_seconds) == 1 and panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    first = panel.image.value
    panel.sliders["below"].value = 0.95
    assert len(panel.redraw_seconds) == 2 and panel.image.value != first
    assert panel.runs["lcam"].label == "LCAM (0.95, 0.95)"
    assert panel.runs["lcam"].below is not None and len(panel.runs["lcam"].below) == 60
    # A new landscape: its own learning rate, one redraw (not one per changed control).
    panel.sliders["landscape"].value = "rosenbrock"
    assert len(panel.redraw_seconds) == 3
    assert panel.sliders["lr"].value == pytest.approx(zoo.LANDSCAPES["rosenbrock"].lr["momentum"], rel=0.03)
    assert panel.runs["momentum"].landscape == "rosenbrock"


def test_slider_tracks_are_long_and_fine():
    pytest.importorskip("ipywidgets")
    from lcamlab.zoo_widgets import ZooExplorer

    panel = ZooExplorer(steps=10)
    lr = panel.sliders["lr"]
    assert (lr.max - lr.min) / lr.step >= 200                 # at least 200 steps on the log track
    for name in ("lr", "momentum", "below", "above"):
        slider = panel.sliders[name]
        assert slider.layout.width == "auto"                  # full-width tracks (flex stretch), stacked
        assert (slider.max - slider.min) / slider.step >= 190
    assert panel.widget.children[-1] is panel.image and panel.image.layout.max_width == "100%"


def test_slider_panel_reports_divergence_instead_of_failing():
    pytest.importorskip("ipywidgets")
    from lcamlab.zoo_widgets import ZooExplorer

    panel = ZooExplorer(steps=200, momentum=0.0)
    panel.sliders["lr"].value = 0.5  # plain gradient descent far beyond 2 / 25 on the quadratic
    assert panel.runs["momentum"].diverged
    assert panel.runs["momentum"].label == "SGD" and "SGD diverged at step" in panel.status.value


def test_slider_panel_blits_the_same_picture_as_a_full_draw():
    pytest.importorskip("ipywidgets")
    import io

    from PIL import Image

    from lcamlab.zoo_widgets import ZooExplorer

    panel = ZooExplorer(landscape="rosenbrock", steps=80)
    panel.sliders["landscape"].value = "saddle"  # a cached background, restored
    blitted = np.asarray(Image.open(io.BytesIO(panel.image.value)))
    zoo.plot_landscape(panel.ax_path, "saddle", levels=20, resolution=120)  # what the bitmap holds
    for artist in panel._dynamic_artists():
        artist.set_animated(False)
    panel.canvas.draw()
    full = np.asarray(panel.canvas.buffer_rgba())[..., :3]
    np.testing.assert_array_equal(blitted, full)


def test_zoo_explorer_reset_returns_to_its_opening_values():
    """After the notebook's timing redraws, the panel opens as it started (not on Rosenbrock at a tiny rate)."""
    pytest.importorskip("ipywidgets")
    from lcamlab.zoo_widgets import ZooExplorer

    panel = ZooExplorer(steps=20)
    opening = panel.values()
    assert opening["landscape"] == "quadratic" and opening["lr"] == zoo.LANDSCAPES["quadratic"].lr["momentum"]
    panel.sliders["lr"].value = 2 * panel.sliders["lr"].value
    panel.sliders["landscape"].value = "rosenbrock"
    assert panel.values() != opening
    redraws = len(panel.redraw_seconds)
    panel.reset()
    assert panel.values() == opening and len(panel.redraw_seconds) == redraws + 1  # one redraw
    assert panel.runs["lcam"].landscape == "quadratic"
