"""Properties every lcamlab optimizer must have, run for every row of ``optim_db``.

Validation (constructor and ``add_param_group``), checkpoints (state dict, pickle,
older state dicts), foreach == for-loop, trial axis == separate runs, param
groups, lr schedulers, the closure, the loss-taking / epoch protocol
(``takes_loss``, ``optimizer_step``, ``start_epoch``, also on ``torch.optim.SGD``),
lazy state, docstring examples and, on CUDA, steps without host synchronisation.
The optimizer-specific mathematics (parity with the authors' loops, Algorithm 1,
the sphere learning rate) stays in ``test_lcam.py``, ``test_adai.py`` and
``test_adarem.py``.
"""

from __future__ import annotations

import copy
import doctest
import importlib
import pickle
from typing import Any

import pytest
import torch

from lcamlab.optim import TrialOptimizer, optimizer_step, start_epoch, takes_loss

from optim_db import OptimizerInfo, optim_db
from optim_toy import DT, SHAPES, exact, make_params, toy_loss

STREAM = 3000  # the toy problem's data stream of this module
TRIALS = 4
TRIAL_SHAPES = [(TRIALS,) + s for s in SHAPES]


# --------------------------------------------------------------------------------------
# Parametrisation over the table
# --------------------------------------------------------------------------------------


def each(*flags: str) -> list[Any]:
    """One case per optimizer (having every attribute in ``flags``)."""
    return [pytest.param(info, id=info.name) for info in optim_db if all(getattr(info, f) for f in flags)]


def each_setting(*flags: str) -> list[Any]:
    """One case per (optimizer, setting)."""
    return [pytest.param(info, settings, id=f"{info.name}-{k}")
            for info in optim_db if all(getattr(info, f) for f in flags)
            for k, settings in enumerate(info.settings)]


def each_invalid(group: bool) -> list[Any]:
    return [pytest.param(info, case, id=f"{info.name}-{k}")
            for info in optim_db for k, case in enumerate(info.invalid) if case.in_group or not group]


# --------------------------------------------------------------------------------------
# Helpers: training on the toy problem, snapshots of everything an optimizer holds
# --------------------------------------------------------------------------------------


def compute_loss(opts: list[torch.optim.Optimizer], params, step: int, trials: int | None,
                 trial: int | None) -> torch.Tensor:
    for opt in opts:
        opt.zero_grad()
    loss = toy_loss(params, step, stream=STREAM, trials=trials, trial=trial)
    (loss.sum() if loss.dim() else loss).backward()
    return loss


def train(opts, params, steps: int, *, start: int = 0, trials: int | None = None, trial: int | None = None,
          epoch_every: int = 3, closure: bool = False, epochs: bool = True) -> None:
    """Steps ``start .. start + steps - 1`` of the toy problem; an epoch starts every ``epoch_every`` steps.

    ``opts`` is one optimizer or several sharing the parameters (each gets the same loss).
    """
    opts = opts if isinstance(opts, list) else [opts]
    for step in range(start, start + steps):
        if epochs and step % epoch_every == 0:
            for opt in opts:
                start_epoch(opt)
        if closure:
            (opt,) = opts
            opt.step(lambda: compute_loss(opts, params, step, trials, trial))  # noqa: B023 - called at once
        else:
            loss = compute_loss(opts, params, step, trials, trial).detach()
            for opt in opts:
                optimizer_step(opt, loss)


def _copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def snapshot(info: OptimizerInfo, opt: TrialOptimizer, params) -> dict[str, Any]:
    """The parameters, their optimizer state and the optimizer's public observables."""
    snap = {f"param {i}": _copy(p) for i, p in enumerate(params)}
    for i, p in enumerate(params):
        if p in opt.state:
            snap.update({f"param {i} {key}": _copy(value) for key, value in opt.state[p].items()})
    snap.update({key: _copy(value) for key, value in info.observe(opt).items()})
    return snap


def assert_same(a: dict[str, Any], b: dict[str, Any], *, rtol: float = 0.0, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, equal_nan=True, msg=key)
        else:
            assert a[key] == b[key], key


def build(info: OptimizerInfo, params, settings: dict[str, Any], *, groups: bool = False, **kwargs):
    """The optimizer over ``params``; with ``groups`` the second group onwards takes ``group_override``."""
    if groups:
        params = [{"params": params[:1]}, {"params": params[1:], **info.group_override}]
    return info.cls(params, **settings, **kwargs)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("info, case", each_invalid(group=False))
def test_constructor_rejects_invalid_hyperparameters(info, case):
    with pytest.raises(ValueError, match=case.match):
        info.cls([torch.nn.Parameter(torch.ones(2, dtype=DT))], **{**info.required, **case.kwargs})


@pytest.mark.parametrize("info, case", each_invalid(group=True))
def test_param_group_rejects_invalid_hyperparameters(info, case):
    a, b = torch.nn.Parameter(torch.ones(2, dtype=DT)), torch.nn.Parameter(torch.ones(2, dtype=DT))
    with pytest.raises(ValueError, match=case.match):
        info.cls([{"params": [a]}, {"params": [b], **case.kwargs}], **info.required)
    opt = info.cls([a], **info.required)
    with pytest.raises(ValueError, match=case.match):
        opt.add_param_group({"params": [b], **case.kwargs})
    # the refused group left nothing behind: b can join with valid settings
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [b]})
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("info", each())
def test_each_group_is_validated_once(info, monkeypatch):
    calls = []
    validate = info.cls._validate_group

    def counting(self, group):
        calls.append(group)
        validate(self, group)

    monkeypatch.setattr(info.cls, "_validate_group", counting)
    params = make_params(0)
    opt = build(info, params, info.settings[0], groups=True)
    assert len(calls) == 2 and all(c is g for c, g in zip(calls, opt.param_groups))
    assert all(isinstance(g["lr"], float) for g in opt.param_groups)
    for key, value in info.group_override.items():  # the override took effect (pairs as tuples)
        assert opt.param_groups[1][key] == (tuple(value) if isinstance(value, list) else value)


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trial_axis", [False, True])
@pytest.mark.parametrize("info, settings", each_setting())
def test_state_dict_round_trip(tmp_path, info, settings, trial_axis):
    """Save mid-epoch, load into a fresh optimizer, continue: the same numbers, bit for bit."""
    if trial_axis and not info.supports_trial_axis:
        pytest.skip("no trial axis")
    shapes, trials = (TRIAL_SHAPES, TRIALS) if trial_axis else (SHAPES, None)
    straight, resumed = make_params(9, shapes), make_params(9, shapes)
    opt = build(info, straight, settings, groups=True, trial_axis=trial_axis)
    first = build(info, resumed, settings, groups=True, trial_axis=trial_axis)
    train(opt, straight, 4, trials=trials)
    train(first, resumed, 4, trials=trials)
    torch.save({"params": [p.detach() for p in resumed], "opt": first.state_dict()}, tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt")
    assert info.state_key in ckpt["opt"]
    resumed = [torch.nn.Parameter(p.clone()) for p in ckpt["params"]]
    second = build(info, resumed, settings, groups=True, trial_axis=trial_axis)
    second.load_state_dict(ckpt["opt"])
    assert_same(snapshot(info, opt, straight), snapshot(info, second, resumed))
    settings_of = lambda o: [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]  # noqa: E731
    assert settings_of(second) == settings_of(opt)
    train(opt, straight, 5, start=4, trials=trials)
    train(second, resumed, 5, start=4, trials=trials)
    assert_same(snapshot(info, opt, straight), snapshot(info, second, resumed))


@pytest.mark.parametrize("info", each())
def test_state_dict_refuses_foreign_states(info):
    p = torch.nn.Parameter(torch.ones(4, 3, dtype=DT))
    opt = info.cls([p], **info.settings[0])
    with pytest.raises(ValueError, match=f"no '{info.state_key}' entry"):
        opt.load_state_dict(torch.optim.SGD([p], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="trial_axis"):
        info.cls([p], trial_axis=True, **info.settings[0]).load_state_dict(opt.state_dict())
    for other in optim_db:
        if other.state_key != info.state_key:
            with pytest.raises(ValueError, match="state dict"):
                other.cls([p], **other.settings[0]).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("info", each())
def test_state_dict_of_an_older_version_loads(info):
    """Group settings added later (foreach, ...) fall back to their old behaviour."""
    params = make_params(1)
    opt = info.cls(params, **info.required)
    train(opt, params, 2)
    saved = copy.deepcopy(opt.state_dict())
    for group in saved["param_groups"]:
        for key in info.cls._group_fallbacks:
            group.pop(key)
    restored = info.cls(params, **info.required)
    restored.load_state_dict(saved)
    for group, expected in zip(restored.param_groups, opt.param_groups):
        assert group == expected


@pytest.mark.parametrize("info", each())
def test_pickle_round_trip(info):
    params = make_params(2)
    opt = info.cls(params, **info.settings[0])
    train(opt, params, 4)
    opt2, params2 = pickle.loads(pickle.dumps((opt, params)))
    train(opt, params, 4, start=4)
    train(opt2, params2, 4, start=4)
    assert_same(snapshot(info, opt, params), snapshot(info, opt2, params2))


# --------------------------------------------------------------------------------------
# foreach, trial axis, param groups, schedulers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trial_axis", [False, True])
@pytest.mark.parametrize("info, settings", each_setting("supports_foreach"))
def test_foreach_equals_for_loop(info, settings, trial_axis):
    """The multi-tensor path gives the for-loop's numbers (float64), with two param groups."""
    if trial_axis and not info.supports_trial_axis:
        pytest.skip("no trial axis")
    shapes, trials = (TRIAL_SHAPES, TRIALS) if trial_axis else (SHAPES, None)
    runs = []
    for foreach in (False, True):
        params = make_params(5, shapes)
        opt = build(info, params, settings, groups=True, trial_axis=trial_axis, foreach=foreach)
        train(opt, params, 8, trials=trials)
        runs.append(snapshot(info, opt, params))
    assert_same(*runs, rtol=1e-12)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("info, settings", each_setting("supports_trial_axis"))
def test_trial_axis_equals_separate_runs(info, settings, foreach):
    """T trials as one tensor == T separate optimizers: every per-trial statistic is per trial."""
    batched = make_params(7, TRIAL_SHAPES)
    separate = [[torch.nn.Parameter(p.detach()[t].clone()) for p in batched] for t in range(TRIALS)]
    opt = info.cls(batched, trial_axis=True, foreach=foreach, **settings)
    train(opt, batched, 8, trials=TRIALS)
    together = snapshot(info, opt, batched)
    for t in range(TRIALS):
        alone = info.cls(separate[t], foreach=foreach, **settings)
        train(alone, separate[t], 8, trials=TRIALS, trial=t)
        expected = snapshot(info, alone, separate[t])
        assert together.keys() == expected.keys()  # the same state (e.g. which weights are spherical)
        for key, value in together.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                value = value[t].reshape(expected[key].shape)  # per trial, e.g. AdaRem-S's (T, 1, 1) radius
            assert_same({key: value}, {key: expected[key]}, rtol=1e-12)
    if info.trial_statistic is not None:
        statistic = info.trial_statistic(opt)
        assert statistic.min() < statistic.max()  # trials differed, so per-trial state mattered


@pytest.mark.parametrize("info", each())
def test_trial_axis_rejects_bad_shapes_before_moving(info):
    settings = info.settings[0]
    loss = torch.zeros(4, dtype=DT)
    a, b = torch.nn.Parameter(torch.zeros(4, 2, dtype=DT)), torch.nn.Parameter(torch.zeros(3, dtype=DT))
    for params in ([a, b], [{"params": [a]}, {"params": [b]}]):  # within a group and across groups
        opt = info.cls(params, trial_axis=True, **settings)
        a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
        with pytest.raises(ValueError, match=r"Invalid parameter shape \(3,\).*trial axis"):
            optimizer_step(opt, loss)
        assert len(opt.state) == 0 and not a.any() and not b.any()  # checked before anything moved
    c = torch.nn.Parameter(torch.tensor(1.0, dtype=DT))
    opt = info.cls([c], trial_axis=True, **settings)
    c.grad = torch.ones_like(c)
    with pytest.raises(ValueError, match=r"Invalid parameter shape \(\)"):
        optimizer_step(opt, loss)
    if info.takes_loss:  # the loss has one entry per trial, dim 0 of every parameter
        opt = info.cls([a], trial_axis=True, **settings)
        with pytest.raises(ValueError, match="one loss per trial"):
            opt.step(loss=torch.tensor(1.0))
        with pytest.raises(ValueError, match=r"Invalid parameter shape \(4, 2\)"):
            opt.step(loss=torch.zeros(3))
        with pytest.raises(ValueError, match="trials"):
            opt.step(loss=1.0)


@pytest.mark.parametrize("info, settings", each_setting())
def test_param_groups(info, settings):
    """Two groups with the same settings == one group; with different settings, where groups
    are independent, == one optimizer per group."""
    one, two = make_params(3), make_params(3)
    opt_one = info.cls(one, **settings)
    opt_two = info.cls([{"params": two[:1]}, {"params": two[1:]}], **settings)
    train(opt_one, one, 6)
    train(opt_two, two, 6)
    for p, q in zip(one, two):
        exact(p.detach(), q.detach())
    if not info.groups_independent:
        return
    grouped, alone = make_params(4), make_params(4)
    opt = build(info, grouped, settings, groups=True)
    per_group = [info.cls(alone[:1], **settings), info.cls(alone[1:], **{**settings, **info.group_override})]
    train(opt, grouped, 6)
    train(per_group, alone, 6)
    for p, q in zip(grouped, alone):
        exact(p.detach(), q.detach())


# --------------------------------------------------------------------------------------
# Closure, loss and epochs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("info, settings", each_setting())
def test_closure_and_explicit_step_give_the_same_trajectory(info, settings):
    with_closure, explicit = make_params(11), make_params(11)
    opt_c, opt_e = info.cls(with_closure, **settings), info.cls(explicit, **settings)
    train(opt_c, with_closure, 6, closure=True)
    train(opt_e, explicit, 6)
    assert_same(snapshot(info, opt_c, with_closure), snapshot(info, opt_e, explicit))


@pytest.mark.parametrize("info", each())
def test_step_returns_the_closure_loss_computed_with_grad(info):
    params = make_params(12)
    opt = info.cls(params, **info.settings[0])
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        return compute_loss([opt], params, 0, None, None)

    returned = opt.step(closure)
    assert calls == [True]
    assert torch.is_tensor(returned) and returned.requires_grad  # step itself runs without grad
    assert all(set(opt.state[p]) for p in params)
    no_closure = opt.step(**({"loss": 1.0} if info.takes_loss else {}))
    assert no_closure is None


@pytest.mark.parametrize("info", each())
def test_loss_is_required_exactly_where_taken(info):
    w = torch.nn.Parameter(torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=DT))
    opt = info.cls([w], **info.settings[0])
    assert takes_loss(opt) is info.takes_loss and type(opt).takes_loss is info.takes_loss
    w.grad = torch.ones_like(w)
    if not info.takes_loss:
        with pytest.raises(TypeError, match="takes no loss"):
            opt.step(loss=1.0)
        assert len(opt.state) == 0
        return
    with pytest.raises(ValueError, match="needs this iteration's mini-batch loss"):
        opt.step()
    with pytest.raises(ValueError, match=r"Invalid loss shape \(3,\)"):
        opt.step(loss=torch.ones(3))
    with pytest.raises(ValueError, match="Invalid loss 'x'"):
        opt.step(loss="x")
    assert len(opt.state) == 0
    opt.step(loss=1.5)  # a float
    opt.step(loss=torch.tensor(1.0))  # a 0-dim tensor
    opt.step(loss=torch.tensor([0.5]))  # a one-element tensor
    opt.step(None, torch.tensor(0.25))  # positionally
    assert set(opt.state[w]) == info.state_keys


@pytest.mark.parametrize("info, settings", each_setting())
def test_optimizer_step_and_start_epoch_are_the_methods(info, settings):
    """The protocol functions call ``step(loss=...)`` / ``step()`` and ``new_epoch()``; epochs
    change the state (parameters, or with LCAM's EMA the phase counters) exactly for the
    optimizers that have them."""
    by_protocol, by_method, no_epochs = make_params(13), make_params(13), make_params(13)
    opt_p, opt_m, opt_n = (info.cls(ps, **settings) for ps in (by_protocol, by_method, no_epochs))
    train(opt_p, by_protocol, 7)
    for step in range(7):
        if step % 3 == 0:
            opt_m.new_epoch()
        loss = compute_loss([opt_m], by_method, step, None, None).detach()
        opt_m.step(loss=loss) if info.takes_loss else opt_m.step()
    train(opt_n, no_epochs, 7, epochs=False)
    assert_same(snapshot(info, opt_p, by_protocol), snapshot(info, opt_m, by_method))
    try:
        assert_same(snapshot(info, opt_p, by_protocol), snapshot(info, opt_n, no_epochs))
        same = True
    except AssertionError:
        same = False
    assert same is not info.has_epochs


def test_protocol_on_torch_optimizers():
    params, reference = make_params(14), make_params(14)
    sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    ref = torch.optim.SGD(reference, lr=0.1, momentum=0.9)
    assert takes_loss(sgd) is False and takes_loss(torch.optim.Adam(reference)) is False
    for step in range(4):
        start_epoch(sgd)  # no epochs: nothing happens
        loss = compute_loss([sgd], params, step, None, None)
        assert optimizer_step(sgd, loss.detach()) is None  # the loss is not passed on
        compute_loss([ref], reference, step, None, None)
        ref.step()
    for p, q in zip(params, reference):
        assert torch.equal(p, q)


def test_protocol_reads_the_class_attribute():
    """An optimizer outside lcamlab opts in by declaring ``takes_loss = True``."""

    class Recorder(torch.optim.SGD):
        takes_loss = True

        def step(self, closure=None, loss=None):
            self.losses.append(loss)

        def new_epoch(self):
            self.epochs += 1

    class Method(torch.optim.SGD):
        def takes_loss(self):  # not the declared attribute
            return True

    w = torch.nn.Parameter(torch.ones(2))
    opt = Recorder([w], lr=0.1)
    opt.losses, opt.epochs = [], 0
    assert takes_loss(opt) and not takes_loss(Method([w], lr=0.1))
    optimizer_step(opt, 0.5)
    start_epoch(opt)
    assert opt.losses == [0.5] and opt.epochs == 1
    assert issubclass(optim_db[0].cls, TrialOptimizer) and TrialOptimizer.takes_loss is False


@pytest.mark.parametrize("info", each())
def test_lazy_state(info):
    a, b = make_params(8, [(3, 2), (4,)])
    opt = info.cls([a, b], **info.settings[0])
    assert len(opt.state) == 0
    a.grad = torch.ones_like(a)
    optimizer_step(opt, 1.0)
    assert set(opt.state[a]) == info.state_keys
    assert b not in opt.state  # no gradient: no state


@pytest.mark.parametrize("info", each())
def test_sparse_gradients_are_refused(info):
    w = torch.nn.Parameter(torch.ones(3, dtype=DT))
    opt = info.cls([w], **info.settings[0])
    w.grad = torch.ones(3, dtype=DT).to_sparse()
    with pytest.raises(ValueError, match="does not support sparse gradients"):
        optimizer_step(opt, 1.0)


@pytest.mark.parametrize("info", each())
def test_docstring_examples(info):
    # import_module, not attribute access: lcamlab.optim exports functions named like its modules
    module = importlib.import_module(info.cls.__module__)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(info.cls, module=module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 1 and result.failed == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("trial_axis", [False, True])
@pytest.mark.parametrize("info", each())
def test_cuda_step_has_no_host_sync(info, foreach, trial_axis):
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = (3, 64, 32) if trial_axis else (64, 32)
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen, device="cuda")),
              torch.nn.Parameter(torch.randn(shape[:-1], generator=gen, device="cuda"))]
    opt = info.cls(params, trial_axis=trial_axis, foreach=foreach, **info.settings[0])
    loss = torch.rand(3 if trial_axis else (), generator=gen, device="cuda")
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, device="cuda")
    optimizer_step(opt, loss)  # lazy state creation outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            optimizer_step(opt, loss)
        start_epoch(opt)
        optimizer_step(opt, loss)
        observed = info.observe(opt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(params[0]).all()
    assert all(v.is_cuda for v in observed.values() if isinstance(v, torch.Tensor))


# --------------------------------------------------------------------------------------
# The rest of torch's optimizer contract: AMP, schedulers, hooks, zero_grad, devices
# --------------------------------------------------------------------------------------


def _scaled_train(opt, params, steps: int, scaler, *, start: int = 0, epoch_every: int = 3) -> None:
    """``train`` through ``torch.amp.GradScaler``: the scaled loss goes backward, the unscaled one to the step."""
    for step in range(start, start + steps):
        if step % epoch_every == 0:
            start_epoch(opt)
        opt.zero_grad()
        loss = toy_loss(params, step, stream=STREAM)
        scaler.scale(loss).backward()
        if takes_loss(opt):
            scaler.step(opt, loss=loss.detach())
        else:
            scaler.step(opt)
        scaler.update()


@pytest.mark.parametrize("info, settings", each_setting())
def test_grad_scaler(info, settings):
    """``scaler.step(opt, loss=...)`` gives the unscaled run bit for bit; a step with inf
    gradients is skipped and leaves everything, LCAM's running mean included, untouched."""
    scaled, plain = make_params(21), make_params(21)
    opt, opt_plain = info.cls(scaled, **settings), info.cls(plain, **settings)
    # a power of two: scaling and unscaling are exact in float64
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=1000)
    _scaled_train(opt, scaled, 5, scaler)
    train(opt_plain, plain, 5)
    assert_same(snapshot(info, opt, scaled), snapshot(info, opt_plain, plain))
    before = snapshot(info, opt, scaled)
    opt.zero_grad()
    loss = toy_loss(scaled, 5, stream=STREAM)
    scaler.scale(loss).backward()
    scaled[0].grad[0, 0] = float("inf")
    if takes_loss(opt):
        scaler.step(opt, loss=loss.detach())
    else:
        scaler.step(opt)
    scaler.update()
    assert_same(snapshot(info, opt, scaled), before)
    assert scaler.get_scale() == 2.0 ** 11  # the scaler saw the inf and backed off


_SCHEDULERS = {
    "StepLR": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1),
    "SequentialLR": lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3),
              torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)], milestones=[3]),
    "OneCycleLR": lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[2 * g["lr"] for g in opt.param_groups], total_steps=8, cycle_momentum=False),
    "CosineAnnealingWarmRestarts": lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3),
}


@pytest.mark.parametrize("scheduler", list(_SCHEDULERS))
@pytest.mark.parametrize("info, settings", each_setting())
def test_lr_scheduler_sets_the_step(info, settings, scheduler):
    """Every group moves as with the scheduler's learning rates written by hand (taken from the
    same scheduler on a torch SGD twin); the schedule matters."""
    scheduled, by_hand, constant = make_params(10), make_params(10), make_params(10)
    opt = build(info, scheduled, settings, groups=True)
    sched = _SCHEDULERS[scheduler](opt)
    opt_hand = build(info, by_hand, settings, groups=True)
    opt_constant = build(info, constant, settings, groups=True)
    twin = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": g["lr"]} for g in opt_hand.param_groups], lr=1.0)
    twin_sched = _SCHEDULERS[scheduler](twin)
    for step in range(7):
        for group, twin_group in zip(opt_hand.param_groups, twin.param_groups):
            group["lr"] = twin_group["lr"]
        train(opt, scheduled, 1, start=step)
        sched.step()
        train(opt_hand, by_hand, 1, start=step)
        train(opt_constant, constant, 1, start=step)
        twin.step()
        twin_sched.step()
        for p, q in zip(scheduled, by_hand):
            exact(p.detach(), q.detach())
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in twin.param_groups]
    assert any(not torch.equal(p, q) for p, q in zip(scheduled, constant))


@pytest.mark.parametrize("info", each())
def test_momentum_cycling_scheduler_is_refused(info):
    """OneCycleLR's default cycle_momentum=True would overwrite a setting that is not SGD's
    momentum here (LCAM's pair, Adai's beta0): one clear error, never a wrong number."""
    params = make_params(12)
    opt = info.cls(params, **info.settings[0])
    with pytest.raises(ValueError, match="cycle_momentum"):
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
        train(opt, params, 1)  # torch accepted it (a group with 'momentum' or 'betas'): the step refuses


@pytest.mark.parametrize("info", each())
def test_step_hooks(info):
    """register_step_pre_hook / post_hook run around every step; the pre-hook sees the loss."""
    params = make_params(13)
    opt = info.cls(params, **info.settings[0])
    seen: list[tuple[str, Any]] = []

    def pre(optimizer, args, kwargs):
        seen.append(("pre", kwargs.get("loss")))

    def post(optimizer, args, kwargs):
        seen.append(("post", float(params[0].detach().sum())))

    handles = [opt.register_step_pre_hook(pre), opt.register_step_post_hook(post)]
    train(opt, params, 3)
    assert [kind for kind, _ in seen] == ["pre", "post"] * 3
    assert all((value is not None) == info.takes_loss for kind, value in seen if kind == "pre")
    for handle in handles:
        handle.remove()
    train(opt, params, 1, start=3)
    assert len(seen) == 6


@pytest.mark.parametrize("info, settings", each_setting())
def test_zero_grad(info, settings):
    """set_to_none=True: no gradient, so a step leaves the parameters and their state alone;
    set_to_none=False: zero gradients, a step as with zeros written by hand."""
    params = make_params(14)
    opt = info.cls(params, **settings)
    train(opt, params, 2)
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in params)
    before = {k: v for k, v in snapshot(info, opt, params).items() if k.startswith("param")}
    optimizer_step(opt, 1.0)
    assert_same({k: v for k, v in snapshot(info, opt, params).items() if k.startswith("param")}, before)

    zeroed, by_hand = make_params(15), make_params(15)
    opt_z, opt_h = info.cls(zeroed, **settings), info.cls(by_hand, **settings)
    train(opt_z, zeroed, 2)
    train(opt_h, by_hand, 2)
    grads = [p.grad for p in zeroed]
    opt_z.zero_grad(set_to_none=False)
    assert all(p.grad is g and not p.grad.any() for p, g in zip(zeroed, grads))
    for p in by_hand:
        p.grad = torch.zeros_like(p)
    optimizer_step(opt_z, 1.0)
    optimizer_step(opt_h, 1.0)
    assert_same(snapshot(info, opt_z, zeroed), snapshot(info, opt_h, by_hand))


def _state_tensors(opt: TrialOptimizer) -> dict[str, torch.Tensor]:
    """Every tensor the optimizer holds for its parameters (torch's state and the class's extra state)."""
    found = {f"state {i} {key}": value for i, state in enumerate(opt.state.values())
             for key, value in state.items() if isinstance(value, torch.Tensor)}
    found.update({f"extra {key}": value for key, value in opt.state_dict()[opt._state_key].items()
                  if isinstance(value, torch.Tensor)})
    return found


#: CPU counters by design (as torch.optim.Adam's step): reading them never syncs a GPU
_CPU_BY_DESIGN = {"step"}


@pytest.mark.parametrize("info, settings", each_setting())
def test_state_dict_map_location(tmp_path, info, settings):
    """Saved on one device and loaded with ``map_location`` onto another ("meta" here: every
    machine has it): the optimizer's state follows its parameters, as torch's does."""
    params = make_params(16)
    opt = info.cls(params, **settings)
    train(opt, params, 4)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    saved = torch.load(tmp_path / "opt.pt", map_location="meta")
    meta = [torch.nn.Parameter(torch.empty_like(p, device="meta")) for p in params]
    moved = info.cls(meta, **settings)
    moved.load_state_dict(saved)
    for key, value in _state_tensors(moved).items():
        if key.split()[-1] not in _CPU_BY_DESIGN:
            assert value.is_meta, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
@pytest.mark.parametrize("info, settings", each_setting())
def test_state_dict_cpu_to_cuda(tmp_path, info, settings):
    """Saved on the CPU, resumed on CUDA: the same trajectory as staying on the CPU."""
    params, straight = make_params(17), make_params(17)
    opt, opt_straight = info.cls(params, **settings), info.cls(straight, **settings)
    train(opt, params, 4)
    train(opt_straight, straight, 4)
    torch.save({"params": [p.detach() for p in params], "opt": opt.state_dict()}, tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", map_location="cuda")
    on_cuda = [torch.nn.Parameter(p.clone()) for p in ckpt["params"]]
    resumed = info.cls(on_cuda, **settings)
    resumed.load_state_dict(ckpt["opt"])
    for step in range(4, 8):
        # the toy batch is built on the CPU: the CUDA run steps on the same gradients, copied
        loss = compute_loss([opt_straight], straight, step, None, None).detach()
        for p, q in zip(on_cuda, straight):
            p.grad = q.grad.cuda()
        optimizer_step(opt_straight, loss)
        optimizer_step(resumed, loss.cuda())
    for p, q in zip(on_cuda, straight):
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("info", each())
def test_load_state_dict_into_other_hyperparameters(info):
    """As in torch: the loaded groups' hyperparameters replace the optimizer's own."""
    params, straight = make_params(18), make_params(18)
    opt = info.cls(straight, **info.settings[0])
    train(opt, straight, 4)
    for p, q in zip(params, straight):
        p.data.copy_(q.detach())
    other = info.cls(params, **{**info.settings[0], **info.group_override})
    assert other.param_groups[0]["lr"] != opt.param_groups[0]["lr"]
    # a copy, as through torch.save: torch's state_dict() holds references to the live buffers
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    settings_of = lambda o: [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]  # noqa: E731
    assert settings_of(other) == settings_of(opt)
    train(opt, straight, 4, start=4)
    train(other, params, 4, start=4)
    assert_same(snapshot(info, opt, straight), snapshot(info, other, params))
