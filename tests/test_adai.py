"""Adai / AdaiW (004 Algorithm 2): parity with the authors' loop, foreach, trials, state, validation."""

from __future__ import annotations

import copy
import doctest
import importlib

import pytest
import torch

from lcamlab.optim.adai import Adai, AdaiW, adai

from optim_toy import DT, SHAPES, exact, flat_loss, make_params, toy_batch  # noqa: F401


def trial_batch(step: int, trials: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return toy_batch(step, trials, dim, stream=1000)


def toy_loss(params, step: int, trials: int | None = None) -> torch.Tensor:
    """The toy loss with a fresh mini-batch every step: a scalar, or ``(trials,)`` with ``trials``."""
    if trials is None:
        flat = torch.cat([p.reshape(-1) for p in params])
        x, y = trial_batch(step, 1, flat.numel())
        return flat_loss(flat, x[0], y[0])
    flat = torch.cat([p.reshape(trials, -1) for p in params], dim=1)
    x, y = trial_batch(step, trials, flat.shape[1])
    return flat_loss(flat, x, y)


def set_grads(params, step: int, skip: int | None = None) -> None:
    for p in params:
        p.grad = None
    active = [p for i, p in enumerate(params) if i != skip]
    grads = torch.autograd.grad(toy_loss(params, step), active)
    for p, g in zip(active, grads):
        p.grad = g


class AuthorsAdai:
    """The authors' ``adai_optim/adai.py`` step (004 footnote 2), restated literally.

    Like the original it adds the L2 term to ``p.grad`` in place and takes the
    mean of v_hat over all elements of all parameters with a gradient.
    """

    def __init__(self, param_groups):
        self.param_groups = param_groups  # list of dicts with params, lr, betas, eps, weight_decay, decoupled
        self.state = {}

    @torch.no_grad()
    def step(self):
        param_size = 0
        exp_avg_sq_hat_sum = 0.0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                param_size += p.numel()
                grad = p.grad.data
                state = self.state.setdefault(p, {})
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p.data)
                    state["exp_avg_sq"] = torch.zeros_like(p.data)
                    state["beta1_prod"] = torch.ones_like(p.data)
                state["step"] += 1
                exp_avg_sq = state["exp_avg_sq"]
                beta0, beta2 = group["betas"]
                bias_correction2 = 1 - beta2 ** state["step"]
                if group["weight_decay"] != 0 and group["decoupled"] is False:
                    grad.add_(p.data, alpha=group["weight_decay"])
                elif group["weight_decay"] != 0 and group["decoupled"] is True:
                    p.data.mul_(1 - group["lr"] * group["weight_decay"])
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg_sq_hat_sum += exp_avg_sq.sum() / bias_correction2
        exp_avg_sq_hat_mean = exp_avg_sq_hat_sum / param_size
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                state = self.state[p]
                exp_avg, exp_avg_sq, beta1_prod = state["exp_avg"], state["exp_avg_sq"], state["beta1_prod"]
                beta0, beta2 = group["betas"]
                bias_correction2 = 1 - beta2 ** state["step"]
                exp_avg_sq_hat = exp_avg_sq / bias_correction2
                beta1 = (1.0 - (exp_avg_sq_hat / exp_avg_sq_hat_mean).mul(beta0)).clamp(0.0, 1 - group["eps"])
                beta1_prod.mul_(beta1)
                bias_correction1 = 1 - beta1_prod
                exp_avg.mul_(beta1).addcmul_(1 - beta1, grad)
                exp_avg_hat = exp_avg / bias_correction1
                p.data.add_(exp_avg_hat, alpha=-group["lr"])


GROUP_SETTINGS = [
    dict(lr=0.1, betas=(0.1, 0.99), eps=1e-3, weight_decay=0.0, decoupled=False),
    dict(lr=0.05, betas=(0.1, 0.99), eps=1e-3, weight_decay=0.05, decoupled=False),
    dict(lr=0.05, betas=(0.1, 0.99), eps=1e-3, weight_decay=0.5, decoupled=True),
    dict(lr=0.2, betas=(0.3, 0.9), eps=0.05, weight_decay=0.01, decoupled=False),
]


@pytest.mark.parametrize("settings", GROUP_SETTINGS)
@pytest.mark.parametrize("foreach", [False, True])
def test_matches_authors_loop(settings, foreach):
    ours, theirs = make_params(0), make_params(0)
    opt = Adai(ours, foreach=foreach, **settings)
    ref = AuthorsAdai([dict(params=theirs, **settings)])
    for step in range(10):
        set_grads(ours, step)
        set_grads(theirs, step)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs):
            exact(a.detach(), b.detach())


@pytest.mark.parametrize("foreach", [False, True])
def test_matches_authors_loop_with_groups_and_missing_grads(foreach):
    """Different settings per group; v_bar spans all groups; a parameter without grad is left out."""
    ours, theirs = make_params(1, SHAPES + [(3,)]), make_params(1, SHAPES + [(3,)])
    g1 = dict(lr=0.1, betas=(0.1, 0.99), eps=1e-3, weight_decay=0.01, decoupled=False)
    g2 = dict(lr=0.03, betas=(0.2, 0.95), eps=1e-2, weight_decay=0.1, decoupled=True)
    opt = Adai([dict(params=ours[:2], **g1), dict(params=ours[2:], **g2)], lr=1.0, foreach=foreach)
    ref = AuthorsAdai([dict(params=theirs[:2], **g1), dict(params=theirs[2:], **g2)])
    for step in range(8):
        skip = 3 if step % 2 == 0 else None  # the (3,) parameter gets a gradient every other step
        set_grads(ours, step, skip)
        set_grads(theirs, step, skip)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs):
            exact(a.detach(), b.detach())
    assert int(opt.state[ours[3]]["step"]) == 4 and int(opt.state[ours[0]]["step"]) == 8


def test_mean_spans_all_parameters():
    """The inertia depends on the other parameters' gradients (a per-tensor mean would not)."""
    a, b = make_params(2, [(3,), (3,)])
    alone = a.detach().clone().requires_grad_()
    opt_pair, opt_alone = Adai([a, b], lr=0.1), Adai([alone], lr=0.1)
    for k in range(3):
        # gradients that change from step to step: with a constant gradient m_hat = g whatever the inertia
        a.grad = torch.tensor([1.0, 2.0, 3.0], dtype=DT) * (-1.0) ** k + k
        b.grad = 10 * torch.ones(3, dtype=DT)
        alone.grad = a.grad.clone()
        opt_pair.step()
        opt_alone.step()
    assert (a - alone).abs().max() > 1e-3


def test_coupled_decay_does_not_touch_grad():
    params = make_params(3)
    opt = Adai(params, lr=0.1, weight_decay=0.1)
    set_grads(params, 0)
    before = [p.grad.clone() for p in params]
    opt.step()
    for p, g in zip(params, before):
        assert torch.equal(p.grad, g)


def test_adaiw_is_decoupled_adai():
    a, b = make_params(4), make_params(4)
    opt_a, opt_b = AdaiW(a, lr=0.1, weight_decay=0.3), Adai(b, lr=0.1, weight_decay=0.3, decoupled=True)
    for step in range(4):
        set_grads(a, step)
        set_grads(b, step)
        opt_a.step()
        opt_b.step()
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert all(g["decoupled"] for g in opt_a.param_groups)


def run_functional(params, steps, *, foreach, trial_axis=False, **settings):
    state = [(torch.zeros_like(p), torch.zeros_like(p), torch.ones_like(p), torch.zeros((), dtype=DT))
             for p in params]
    v_bars = []
    for step in range(steps):
        with torch.enable_grad():
            if trial_axis:
                grads = torch.autograd.grad(toy_loss(params, step, params[0].shape[0]).sum(), params)
            else:
                grads = torch.autograd.grad(toy_loss(params, step), params)
        with torch.no_grad():
            v_bars.append(adai([p for p in params], list(grads), *[list(s) for s in zip(*state)],
                               foreach=foreach, trial_axis=trial_axis, **settings))
    return [p.detach() for p in params], [s for st in state for s in st[:3]], v_bars


@pytest.mark.parametrize("trial_axis", [False, True])
@pytest.mark.parametrize("decay", [(0.0, False), (0.05, False), (0.2, True)])
def test_foreach_equals_for_loop(trial_axis, decay):
    settings = dict(lr=0.1, beta0=0.1, beta2=0.99, eps=1e-3, weight_decay=decay[0], decoupled=decay[1])
    shapes = [(3, 4, 3), (3, 5), (3, 2, 2, 2)] if trial_axis else SHAPES
    loop = run_functional(make_params(5, shapes), 6, foreach=False, trial_axis=trial_axis, **settings)
    multi = run_functional(make_params(5, shapes), 6, foreach=True, trial_axis=trial_axis, **settings)
    for a, b in zip(loop[0] + loop[1] + loop[2], multi[0] + multi[1] + multi[2]):
        exact(a, b)


def test_functional_core_matches_class():
    params = make_params(6)
    opt = Adai(params, lr=0.1, weight_decay=0.02)
    for step in range(5):
        set_grads(params, step)
        opt.step()
    functional, _, _ = run_functional(make_params(6), 5, foreach=False, lr=0.1, beta0=0.1, beta2=0.99,
                                      eps=1e-3, weight_decay=0.02, decoupled=False)
    for a, b in zip(params, functional):
        exact(a.detach(), b)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("decay", [(0.0, False), (0.05, False), (0.3, True)])
def test_batched_trials_equal_separate_runs(foreach, decay):
    """B trials as one tensor == B separate optimizers (per-trial v_bar), in float64."""
    trials = 4
    shapes = [(trials, 4, 3), (trials, 5), (trials, 2, 2, 2)]
    batched = make_params(7, shapes)
    separate = [[torch.nn.Parameter(p.detach()[t].clone()) for p in batched] for t in range(trials)]
    kwargs = dict(lr=0.1, weight_decay=decay[0], decoupled=decay[1], foreach=foreach)
    opt = Adai(batched, trial_axis=True, **kwargs)
    opts = [Adai(ps, **kwargs) for ps in separate]
    for step in range(6):
        for p in batched:
            p.grad = None
        toy_loss(batched, step, trials).sum().backward()
        opt.step()
        for t in range(trials):
            # trial t alone, on trial t's slice of the same mini-batch
            flat = torch.cat([p.reshape(-1) for p in separate[t]])
            x, y = trial_batch(step, trials, flat.numel())
            for p in separate[t]:
                p.grad = None
            flat_loss(flat, x[t], y[t]).backward()
            opts[t].step()
    for t in range(trials):
        for p, q in zip(batched, separate[t]):
            torch.testing.assert_close(p.detach()[t], q.detach(), rtol=1e-12, atol=1e-15)


def test_trial_axis_requires_common_trial_dim():
    opt = Adai([torch.nn.Parameter(torch.ones(3, 2)), torch.nn.Parameter(torch.ones(4))], lr=0.1,
               trial_axis=True)
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="trial axis"):
        opt.step()


def test_zero_gradients_do_not_make_nan():
    w = torch.nn.Parameter(torch.ones(2, 3, dtype=DT))
    opt = Adai([w], lr=0.1, trial_axis=True)
    w.grad = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]], dtype=DT)
    opt.step()
    assert torch.isfinite(w).all()
    assert torch.equal(w[0], torch.ones(3, dtype=DT))  # the converged trial does not move


def test_lazy_state():
    a, b = make_params(8, [(3,), (2,)])
    opt = Adai([a, b], lr=0.1)
    assert len(opt.state) == 0
    a.grad = torch.ones(3, dtype=DT)
    opt.step()
    assert set(opt.state[a]) == {"step", "exp_avg", "exp_avg_sq", "beta1_prod"}
    assert b not in opt.state


@pytest.mark.parametrize("trial_axis", [False, True])
def test_state_dict_round_trip(tmp_path, trial_axis):
    shapes = [(3, 4, 3), (3, 5)] if trial_axis else SHAPES
    groups = lambda ps: [dict(params=ps[:1]), dict(params=ps[1:], lr=0.05, weight_decay=0.1, decoupled=True)]

    def grads(ps, step):
        for p in ps:
            p.grad = None
        loss = toy_loss(ps, step, 3).sum() if trial_axis else toy_loss(ps, step)
        loss.backward()

    straight = make_params(9, shapes)
    opt = Adai(groups(straight), lr=0.1, trial_axis=trial_axis)
    resumed = make_params(9, shapes)
    first = Adai(groups(resumed), lr=0.1, trial_axis=trial_axis)
    for step in range(3):
        grads(straight, step)
        opt.step()
        grads(resumed, step)
        first.step()
    torch.save({"params": [p.detach() for p in resumed], "opt": first.state_dict()}, tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt")
    resumed = [torch.nn.Parameter(p.clone()) for p in ckpt["params"]]
    second = Adai(groups(resumed), lr=0.1, trial_axis=trial_axis)
    second.load_state_dict(ckpt["opt"])
    for step in range(3, 7):
        grads(straight, step)
        opt.step()
        grads(resumed, step)
        second.step()
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="trial_axis"):
        Adai(resumed, lr=0.1, trial_axis=not trial_axis).load_state_dict(ckpt["opt"])
    with pytest.raises(ValueError, match="no 'adai' entry"):
        Adai(resumed, lr=0.1, trial_axis=trial_axis).load_state_dict(torch.optim.SGD(resumed).state_dict())


def test_lr_scheduler_changes_the_step():
    params = make_params(10)
    opt = Adai(params, lr=0.2, weight_decay=0.1, decoupled=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    reference = make_params(10)
    state = [(torch.zeros_like(p), torch.zeros_like(p), torch.ones_like(p), torch.zeros((), dtype=DT))
             for p in reference]
    for step in range(6):
        set_grads(params, step)
        opt.step()
        sched.step()
        lr = 0.2 * 0.1 ** (step // 2)
        grads = torch.autograd.grad(toy_loss(reference, step), reference)
        with torch.no_grad():
            adai(reference, list(grads), *[list(s) for s in zip(*state)], lr=lr, beta0=0.1, beta2=0.99,
                 eps=1e-3, weight_decay=0.1, decoupled=True)
        for a, b in zip(params, reference):
            exact(a.detach(), b.detach())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * 0.1 ** 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-0.1), "learning rate: -0.1"),
        (dict(lr="0.1"), "learning rate"),
        (dict(lr=0.1, betas=(-0.1, 0.99)), "beta0 value: -0.1"),
        (dict(lr=0.1, betas=(0.1, 1.0)), "beta2 value: 1.0"),
        (dict(lr=0.1, betas=(0.1,)), "betas"),
        (dict(lr=0.1, eps=0.0), "eps value: 0.0"),
        (dict(lr=0.1, eps=1.5), "eps value: 1.5"),
        (dict(lr=0.1, weight_decay=-1e-4), "weight_decay value: -0.0001"),
        (dict(lr=0.1, decoupled="yes"), "decoupled"),
        (dict(lr=0.1, trial_axis=1), "trial_axis"),
        (dict(lr=0.1, foreach="auto"), "foreach"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adai([torch.nn.Parameter(torch.ones(2))], **kwargs)


def test_group_override_is_validated():
    opt = Adai([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="eps value: 0"):
        opt.add_param_group(dict(params=[torch.nn.Parameter(torch.ones(2))], eps=0))


def test_docstring_examples():
    # import_module, not attribute access: lcamlab.optim exports a function named ``adai``
    module = importlib.import_module("lcamlab.optim.adai")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("trial_axis", [False, True])
def test_cuda_step_has_no_host_sync(foreach, trial_axis):
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = (3, 64, 32) if trial_axis else (64, 32)
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen, device="cuda")),
              torch.nn.Parameter(torch.randn(shape[:-1], generator=gen, device="cuda"))]
    opt = Adai(params, lr=0.1, weight_decay=1e-3, trial_axis=trial_axis, foreach=foreach)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, device="cuda")
    opt.step()  # lazy state creation outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(params[0]).all()
