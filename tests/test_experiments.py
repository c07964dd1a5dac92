"""lcamlab.experiments: the registry, the verified cache, the trial runner and the metrics."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from lcamlab.experiments import cache, registry
from lcamlab.experiments.metrics import iterations_to_target, loss_phases, oscillation_index
from lcamlab.experiments.registry import KINDS, PRESETS, OptimizerSpec, preset, suite
from lcamlab.experiments.trials import looped, run_trials

DT = torch.float64


# -- the registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_builds_flat_trial_axis_and_model(kind):
    spec = OptimizerSpec(kind, 0.01)
    flat = spec.build([torch.nn.Parameter(torch.ones(3))])
    batched = spec.build([torch.nn.Parameter(torch.ones(4, 3))], trial_axis=True)
    model = spec.build(torch.nn.Linear(3, 2).parameters())
    for optimizer in (flat, batched, model):
        assert isinstance(optimizer, torch.optim.Optimizer)
        assert optimizer.param_groups[0]["lr"] == 0.01
    if hasattr(batched, "trial_axis"):
        assert batched.trial_axis is True and flat.trial_axis is False


def test_presets_keys_labels_and_round_trip():
    for key in PRESETS:
        spec = preset(key, 0.02)
        assert spec.style_key == key
        assert OptimizerSpec.from_config(json.loads(json.dumps(spec.to_config()))) == spec
    assert preset("lcam-below", 0.1).momentum == (0.95, 0.9)
    assert preset("momentum", 0.1).label == "SGD+momentum 0.9"
    assert preset("lcam-above", 0.1).label == "LCAM (0.9, 0.95)"
    assert preset("lcam-above", 0.1).takes_loss and not preset("momentum", 0.1).takes_loss
    # options are sorted: equal settings are equal specs (and equal cache keys)
    a = OptimizerSpec("adam", 0.1, (("eps", 1e-8), ("betas", (0.9, 0.99))))
    b = OptimizerSpec("adam", 0.1, {"betas": [0.9, 0.99], "eps": 1e-8})
    assert a == b and cache.config_hash(a.to_config()) == cache.config_hash(b.to_config())
    specs = suite(["sgd", "lcam-above"], {"sgd": 0.2, "lcam-above": 0.02, "adam": 0.1})
    assert [s.lr for s in specs] == [0.2, 0.02]


def test_one_declaration_per_optimizer():
    """Everything about an optimizer but its learning rates is its registry entry: the experiments' lists of
    optimizers, the labels, colours and markers of every figure read it, control keys included."""
    import ast

    from matplotlib.colors import is_color_like
    from matplotlib.lines import Line2D

    from lcamlab import zoo
    from lcamlab.paths import NOTEBOOKS_DIR
    from lcamlab.train.config import OPTIMIZERS

    for key, entry in PRESETS.items():
        assert entry.kind in KINDS and entry.label and entry.marker in Line2D.markers
        assert (registry.label(key), registry.color(key), registry.marker(key)) == (entry.label, entry.color,
                                                                                    entry.marker)
        assert is_color_like(entry.color)
        spec = preset(key, 0.1)
        assert type(spec.build([torch.nn.Parameter(torch.ones(2))])) is spec._class()  # the one class table
        if key != "lcam":  # "lcam" is LCAM at any pair: a spec of it names its pair
            assert spec.label == entry.label
    assert len({entry.label for entry in PRESETS.values()}) == len(PRESETS)  # legends tell them apart
    assert OptimizerSpec.lcam(0.1, 0.9, 0.97).label == "LCAM (0.9, 0.97)"  # a setting that is no preset
    assert OptimizerSpec.heavy_ball(0.1, 0.9).label == registry.label("momentum")
    assert OptimizerSpec("scheduled", 0.1).label == "ScheduledMomentum"  # a kind without a preset: its class
    # Every suite is read from the registry; train builds its names as kinds.
    assert zoo.OPTIMIZERS == registry.suite_keys("zoo") and OPTIMIZERS == registry.suite_keys("train")
    assert OPTIMIZERS == ("sgd", "lcam", "adai", "adaiw", "adarem", "adam", "adamw")  # as `lcamlab train` took
    assert all(PRESETS[k].kind == k for k in OPTIMIZERS)
    assert all(set(zoo.OPTIMIZERS) <= set(landscape.lr) for landscape in zoo.LANDSCAPES.values())
    notebook = json.loads((NOTEBOOKS_DIR / "01_weight_traction.ipynb").read_text())
    cell = next("".join(c["source"]) for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    defaults = {node.targets[0].id: node.value for node in ast.parse(cell).body if isinstance(node, ast.Assign)}
    assert set(ast.literal_eval(defaults["optimizers"])) == set(registry.suite_keys("toys"))
    # Control keys: the LCAM setting's colour and marker, its label with the control's name.
    assert registry.label("lcam-above:shuffled") == "LCAM (0.9, 0.95), shuffled control"
    assert registry.color("lcam-below:matched") == registry.color("lcam-below") != registry.color("lcam-above")
    assert registry.marker("lcam-below:shuffled") == registry.marker("lcam-below") == "X"
    with pytest.raises(KeyError, match="Unknown optimizer"):
        registry.label("lbfgs")
    with pytest.raises(ValueError, match="Invalid suite"):
        registry.suite_keys("paper")


@pytest.mark.parametrize("make, message", [
    (lambda: OptimizerSpec("lbfgs", 0.1), "optimizer kind"),
    (lambda: OptimizerSpec("sgd", 0.0), "learning rate"),
    (lambda: OptimizerSpec("sgd", math.inf), "learning rate"),
    (lambda: OptimizerSpec("sgd", 0.1, {"nonsense": 1}), "options for optimizer kind 'sgd'"),
    (lambda: OptimizerSpec.lcam(0.1, 0.9, 1.2), "momentum above value"),
    (lambda: preset("lcam-sideways", 0.1), "Invalid optimizer"),
    (lambda: suite(["adam"], {"sgd": 0.1}), "No learning rate for optimizer 'adam'"),
    (lambda: OptimizerSpec.from_config({"lr": 0.1}), "Invalid optimizer description"),
])
def test_bad_specs_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_build_overrides_win():
    spec = OptimizerSpec.lcam(0.1, 0.9, 0.95)
    optimizer = spec.build([torch.nn.Parameter(torch.ones(2))], mean="ema", weight_decay=0.5)
    assert optimizer.mean == "ema" and optimizer.param_groups[0]["weight_decay"] == 0.5


# -- the cache -------------------------------------------------------------------------------------


def _compute_counter():
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": [0.1, 1 / 3, math.pi], "n": [1, 2, 3]}), {"note": "info"}
    return compute, calls


def test_cache_hit_miss_and_provenance(tmp_path):
    compute, calls = _compute_counter()
    first = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=3)
    assert not first.from_cache and len(calls) == 1
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["seed"] == 3 and meta["note"] == "info" and meta["config"] == {"a": 1}
    assert meta["cache"]["format"] == cache.FORMAT and meta["cache"]["rows"] == 3
    assert {"git_commit", "torch_version", "lcamlab_version", "device"} <= set(meta)
    again = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=3)
    assert again.from_cache and len(calls) == 1
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert again.frame["x"].tolist() == [0.1, 1 / 3, math.pi]  # floats survive the CSV exactly
    other = cache.cached_table("demo", {"a": 2}, compute, tmp_path, seed=3)
    assert other.path != first.path and len(calls) == 2
    newer = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=3, version=2)
    assert newer.path != first.path and len(calls) == 3
    frame, metadata, path, from_cache = again  # unpacks like the measurement functions' tuples
    assert path == first.path and from_cache


@pytest.mark.parametrize("damage", ["truncate", "edit", "drop_sidecar", "edit_config", "garbage_sidecar",
                                    "empty"])
def test_damaged_entries_are_never_used(tmp_path, damage, capsys):
    compute, calls = _compute_counter()
    entry = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=0)
    csv, sidecar = entry.path, entry.path.with_suffix(".json")
    if damage == "truncate":
        csv.write_text("\n".join(csv.read_text().splitlines()[:2]) + "\n")
    elif damage == "edit":
        csv.write_text(csv.read_text().replace("0.1", "0.2"))
    elif damage == "drop_sidecar":
        sidecar.unlink()
    elif damage == "edit_config":
        meta = json.loads(sidecar.read_text())
        meta["config"] = {"a": 9}
        sidecar.write_text(json.dumps(meta))
    elif damage == "garbage_sidecar":
        sidecar.write_bytes(b"\x00\x01 not json")
    else:
        csv.write_text("")
    with pytest.raises(cache.CacheError, match=str(csv.name)):
        cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=0, recompute=False)
    recomputed = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=0)
    assert not recomputed.from_cache and len(calls) == 2
    assert recomputed.frame["x"].tolist()[0] == 0.1
    assert "moved it to" in capsys.readouterr().out
    assert list(tmp_path.glob("demo_*.damaged-*.csv"))  # the damaged entry is kept, not lost


def test_refresh_replaces_only_its_own_entry(tmp_path):
    compute, calls = _compute_counter()
    a = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=0)
    b = cache.cached_table("demo", {"a": 2}, compute, tmp_path, seed=0)
    again = cache.cached_table("demo", {"a": 1}, compute, tmp_path, seed=0, refresh=True)
    assert not again.from_cache and again.path == a.path and b.path.exists() and len(calls) == 3


# -- the trial runner --------------------------------------------------------------------------------


class _Quadratic:
    """f_i(theta) = 0.5 * c_i * |theta - x|^2 with x ~ N(0, 1) per step and trial: a minimal TrialProblem."""

    def __init__(self, curvature: torch.Tensor):
        self.curvature = curvature
        self.trials = curvature.shape[0]

    def draw(self, generator, steps):
        return torch.randn(steps, self.trials, 2, generator=generator, dtype=DT)

    def step_batch(self, block, step):
        return block[step]

    def loss_and_grad(self, theta, x, *, need_loss=True):
        diff = theta - x
        c = self.curvature.view(-1, 1)
        loss = 0.5 * self.curvature * (diff ** 2).sum(1) if need_loss else None
        return loss, c * diff

    def minibatch_loss(self, theta, x):
        return 0.5 * self.curvature * ((theta - x) ** 2).sum(1)

    def subset(self, index):
        return _Quadratic(self.curvature[index])

    def slice_block(self, block, index):
        return block[:, index]


def _run(problem, spec, steps=60, block=7, gradient="analytic"):
    theta = torch.full((problem.trials, 2), 3.0, dtype=DT)
    optimizer = spec.build([theta], trial_axis=True)
    losses = []
    run_trials(problem, optimizer, theta, steps=steps, generator=torch.Generator().manual_seed(5), block=block,
               epoch_length=10, gradient=gradient, need_loss=True, on_step=lambda t, loss: losses.append(loss))
    return theta, torch.stack(losses)


@pytest.mark.parametrize("key", ["momentum", "lcam-above", "adam", "adai", "adarem"])
def test_batched_equals_looped_reference(key):
    problem = _Quadratic(torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=DT))
    spec = preset(key, 0.05)
    theta, losses = _run(problem, spec)
    pieces = looped(problem, lambda view, i: _run(view, spec))
    torch.testing.assert_close(theta, torch.cat([p[0] for p in pieces]), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(losses, torch.cat([p[1] for p in pieces], dim=1), rtol=1e-12, atol=1e-14)
    # the literal loss differentiated by autograd gives the analytic gradient's run
    auto, _ = _run(problem, spec, gradient="autograd")
    torch.testing.assert_close(auto, theta, rtol=1e-12, atol=1e-14)


def test_runner_calls_epochs_stops_early_and_checks_arguments():
    problem = _Quadratic(torch.ones(3, dtype=DT))
    theta = torch.zeros(3, 2, dtype=DT)
    spec = preset("lcam-above", 0.01)
    optimizer = spec.build([theta], trial_axis=True)
    epochs = []
    original = optimizer.new_epoch
    optimizer.new_epoch = lambda: (epochs.append(True), original())[1]
    done = run_trials(problem, optimizer, theta, steps=50, generator=torch.Generator().manual_seed(0), block=8,
                      epoch_length=10, epoch_at_start=True, on_block=lambda start, count: start + count >= 24)
    assert done == 24 and len(epochs) == 3  # before steps 0, 10 and 20
    for kwargs, message in ((dict(steps=-1), "steps"), (dict(block=0), "block"), (dict(epoch_length=0), "epoch_length"),
                            (dict(gradient="numeric"), "gradient")):
        args = {"steps": 5, "generator": torch.Generator(), **kwargs}
        with pytest.raises(ValueError, match=message):
            run_trials(problem, optimizer, theta, **args)


# -- the metrics -------------------------------------------------------------------------------------


def test_oscillation_index():
    """003 section 3.2.2: Q = mean_i path_length_i / displacement_i."""
    path = torch.tensor([[0.0, 0.0, 5.0], [1.0, 1.0, 6.0], [0.5, 2.0, 5.0], [1.5, 3.0, 5.0]], dtype=DT)
    # q = 2.5/1.5 and 3/3; the third element ends where it started and is left out
    torch.testing.assert_close(oscillation_index(path), torch.tensor((2.5 / 1.5 + 1.0) / 2, dtype=DT),
                               rtol=0, atol=0)
    trials = torch.stack([path, path.flip(-1) * 2.0], dim=1)  # (steps, trials, elements)
    torch.testing.assert_close(oscillation_index(trials, trial_axis=True),
                               torch.stack([oscillation_index(path), oscillation_index(path.flip(-1) * 2.0)]),
                               rtol=0, atol=0)
    assert math.isnan(float(oscillation_index(torch.zeros(3, 2))))  # nothing moved: undefined, no division
    with pytest.raises(ValueError, match="trajectory shape"):
        oscillation_index(torch.zeros(1, 3))


def test_iterations_to_target_and_loss_phases():
    values = torch.tensor([[5.0, 5.0], [3.0, 5.0], [1.0, 4.0], [0.5, 4.5]])
    steps = torch.tensor([0, 10, 20, 30])
    assert iterations_to_target(values, steps, torch.tensor([1.0, 1.0])).tolist() == [20.0, math.inf]
    loss = torch.tensor([3.0, 1.0, 2.0, 5.0, 1.0], dtype=DT)
    # epoch 1: means 3, 2, 2 -> below = F, T, F; epoch 2: 5, 3 -> F, T
    assert loss_phases(loss, 3).tolist() == [False, True, False, False, True]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        loss_phases(loss, 0)


def test_registry_module_is_the_only_factory():
    """No other module of the package instantiates lcamlab's optimizers by class name."""
    import pathlib
    import re

    root = pathlib.Path(registry.__file__).resolve().parent.parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.parent.name == "optim" or path.name == "registry.py" or "bench" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"\b(LCAM|Adai|AdaiW|AdaRem|AdaRemS)\(", text) or re.search(r"torch\.optim\.(SGD|Adam)\(", text):
            offenders.append(path.name)
    assert offenders == [], offenders
