"""Adai / AdaiW (004 Algorithm 2): parity with the authors' loop, the mean over all parameters,
the decay variants, the functional core.

What every optimizer must do (validation, checkpoints, foreach, trial axis, groups,
schedulers, closure, epochs, docstring examples, no host sync) is tested for Adai and AdaiW by
``test_optim_common.py``.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from lcamlab.optim.adai import Adai, AdaiW, adai

from optim_toy import DT, SHAPES, exact, make_params, toy_loss


def loss_of(params, step: int, trials: int | None = None) -> torch.Tensor:
    """The shared toy loss on this module's data stream: a scalar, or ``(trials,)`` with ``trials``."""
    return toy_loss(params, step, stream=1000, trials=trials)


def set_grads(params, step: int, skip: int | None = None) -> None:
    for p in params:
        p.grad = None
    active = [p for i, p in enumerate(params) if i != skip]
    grads = torch.autograd.grad(loss_of(params, step), active)
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
                grads = torch.autograd.grad(loss_of(params, step, params[0].shape[0]).sum(), params)
            else:
                grads = torch.autograd.grad(loss_of(params, step), params)
        with torch.no_grad():
            v_bars.append(adai([p for p in params], list(grads), *[list(s) for s in zip(*state)],
                               foreach=foreach, trial_axis=trial_axis, **settings))
    return [p.detach() for p in params], [s for st in state for s in st[:3]], v_bars


@pytest.mark.parametrize("trial_axis", [False, True])
@pytest.mark.parametrize("decay", [(0.0, False), (0.05, False), (0.2, True)])
def test_functional_foreach_equals_for_loop(trial_axis, decay):
    """The functional core, which also returns v_bar (the class tests are common)."""
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


def test_zero_gradients_do_not_make_nan():
    w = torch.nn.Parameter(torch.ones(2, 3, dtype=DT))
    opt = Adai([w], lr=0.1, trial_axis=True)
    w.grad = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]], dtype=DT)
    opt.step()
    assert torch.isfinite(w).all()
    assert torch.equal(w[0], torch.ones(3, dtype=DT))  # the converged trial does not move


def test_checkpoint_with_float64_steps_loads_as_float32():
    """Earlier versions counted steps in float64 (which a compiled step cannot update): loading converts them."""
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = Adai([w], lr=0.1)
    w.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    saved["state"][0]["step"] = saved["state"][0]["step"].to(torch.float64)  # as an earlier version saved it
    resumed = Adai([w], lr=0.1)
    resumed.load_state_dict(saved)
    assert resumed.state[w]["step"].dtype == torch.float32 and float(resumed.state[w]["step"]) == 1.0
    opt.state[w]["step"] = opt.state[w]["step"].to(torch.float64)  # a pickle of an earlier version
    restored = pickle.loads(pickle.dumps(opt))
    assert next(iter(restored.state.values()))["step"].dtype == torch.float32
