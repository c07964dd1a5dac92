"""AdaRem (003 Algorithm 1) and AdaRem-S (003 Algorithm 2): reference parity, epochs, the
sphere learning rate's equivalence with the weight-decayed Euclidean run, the functional cores.

What every optimizer must do (validation, checkpoints, foreach, trial axis, groups,
schedulers, closure, epochs, docstring examples, no host sync) is tested for AdaRem and
AdaRem-S by ``test_optim_common.py``.
"""

from __future__ import annotations

import pytest
import torch

from lcamlab.optim.adarem import AdaRem, adarem, resilience_factors
from lcamlab.optim.adarem_s import AdaRemS, adarem_s

from optim_toy import DT, SHAPES, exact, make_params, toy_loss


def set_grads(params, step: int) -> None:
    """Gradients of the shared toy loss on this module's data stream."""
    grads = torch.autograd.grad(toy_loss(params, step, stream=2000), params)
    for p, g in zip(params, grads):
        p.grad = g


def set_trial_grads(params, step: int) -> None:
    """The same, with dim 0 of every parameter the trial axis (one loss per trial)."""
    loss = toy_loss(params, step, stream=2000, trials=params[0].shape[0])
    grads = torch.autograd.grad(loss.sum(), params)
    for p, g in zip(params, grads):
        p.grad = g


# --------------------------------------------------------------------------------------
# AdaRem
# --------------------------------------------------------------------------------------


def reference_adarem(params, steps, epoch_ends, *, lr, beta, lam, weight_decay, eps):
    """003 Algorithm 1 written out plainly; tau = number of epochs finished."""
    momenta = [torch.zeros_like(p) for p in params]
    tau = 0
    for step in range(steps):
        set_grads(params, step)
        with torch.no_grad():
            for p, m in zip(params, momenta):
                g = p.grad
                b = g * m / (g.abs() * m.abs().max() + eps)
                a = 1 + lam ** tau * b
                p.copy_(p - lr * a * g - lr * weight_decay * p)
                m.copy_(beta * m + (1 - beta) * g)
        if step in epoch_ends:
            tau += 1
    return params


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("settings", [
    dict(lr=0.1, beta=0.9, lam=0.999, weight_decay=0.0, eps=1e-8),
    dict(lr=0.05, beta=0.5, lam=0.5, weight_decay=0.1, eps=1e-3),
])
def test_adarem_matches_algorithm_1(foreach, settings):
    epoch_ends = {2, 5, 8}
    params = make_params(0)
    opt = AdaRem(params, foreach=foreach, **settings)
    for step in range(10):
        set_grads(params, step)
        opt.step()
        if step in epoch_ends:
            opt.new_epoch()
    expected = reference_adarem(make_params(0), 10, epoch_ends, **settings)
    for a, b in zip(params, expected):
        exact(a.detach(), b.detach())
    assert opt.epoch == 3


def test_first_epoch_uses_lambda_to_the_zero():
    """tau = 0 in the first epoch (Algorithm 1 runs t = 0..T), however new_epoch is called."""
    m = torch.tensor([2.0, -1.0], dtype=DT)
    g = torch.tensor([1.0, 1.0], dtype=DT)
    # b = g m / (|g| max|m|) = [1, -0.5]; a = 1 + lam^tau b
    a0, = resilience_factors([g], [m], lam=0.5, epoch=0, eps=1e-300)
    a1, = resilience_factors([g], [m], lam=0.5, epoch=1, eps=1e-300)
    exact(a0, torch.tensor([2.0, 0.5], dtype=DT))
    exact(a1, torch.tensor([1.5, 0.75], dtype=DT))

    opt = AdaRem([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    opt.new_epoch()  # a call before any step (start-of-epoch style) does not count
    assert opt.epoch == 0
    opt.param_groups[0]["params"][0].grad = torch.ones(2)
    opt.step()
    opt.new_epoch()
    opt.new_epoch()  # idempotent between steps: end-of-epoch and start-of-epoch calls count once
    assert opt.epoch == 1


def test_max_is_per_tensor():
    """b is normalised by max|m| of its own tensor, not of all parameters."""
    g = [torch.ones(2, dtype=DT), torch.ones(2, dtype=DT)]
    m = [torch.tensor([1.0, 0.5], dtype=DT), torch.tensor([100.0, 50.0], dtype=DT)]
    a = resilience_factors(g, m, lam=1.0, epoch=0, eps=1e-300)
    exact(a[0], torch.tensor([2.0, 1.5], dtype=DT))
    exact(a[1], torch.tensor([2.0, 1.5], dtype=DT))


def run_adarem_functional(params, steps, *, foreach, trial_axis, **settings):
    momenta = [torch.zeros_like(p) for p in params]
    for step in range(steps):
        (set_trial_grads if trial_axis else set_grads)(params, step)
        with torch.no_grad():
            adarem(params, [p.grad for p in params], momenta, epoch=step // 3, foreach=foreach,
                   trial_axis=trial_axis, **settings)
    return [p.detach() for p in params] + momenta


@pytest.mark.parametrize("trial_axis", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adarem_functional_foreach_equals_for_loop(trial_axis, weight_decay):
    shapes = [(3, 4, 3), (3, 5), (3,)] if trial_axis else SHAPES
    settings = dict(lr=0.1, beta=0.9, lam=0.9, weight_decay=weight_decay, eps=1e-8)
    loop = run_adarem_functional(make_params(1, shapes), 8, foreach=False, trial_axis=trial_axis, **settings)
    multi = run_adarem_functional(make_params(1, shapes), 8, foreach=True, trial_axis=trial_axis, **settings)
    for a, b in zip(loop, multi):
        exact(a, b)


# --------------------------------------------------------------------------------------
# AdaRem-S
# --------------------------------------------------------------------------------------


def unit(w):
    return w / w.norm()


def invariant_loss(w1, w2, c, step):
    """A two-layer toy net whose weight matrices enter only through their directions.

    L(s1 w1, s2 w2, c) = L(w1, w2, c) for s1, s2 > 0 (what BatchNorm gives a conv
    weight, 003 section 3.4); the bias ``c`` is an ordinary parameter.
    """
    gen = torch.Generator().manual_seed(3000 + step)
    x = torch.randn(16, 3, generator=gen, dtype=DT)
    y = torch.randn(16, 2, generator=gen, dtype=DT)
    out = torch.tanh(x @ unit(w1).T * 3.0) @ unit(w2).T * 3.0 + c
    return ((out - y) ** 2).mean()


def invariant_start():
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(4, 3, generator=gen, dtype=DT) * 2.0, torch.randn(2, 4, generator=gen, dtype=DT) * 0.5,
            torch.randn(2, generator=gen, dtype=DT)]


def euclid_vs_sphere(steps=40, *, lr=0.2, weight_decay=0.1, beta=0.0, lam=0.999, eps=1e-300,
                     sphere_lr=True, foreach=False, epoch_every=5):
    """Run AdaRem (Euclidean, weight decay) and AdaRem-S from the same start on the invariant loss.

    Returns per-step lists of (direction error, radius error, bias error, alpha error).
    """
    start = invariant_start()
    euclid = [torch.nn.Parameter(t.clone()) for t in start]
    sphere = [torch.nn.Parameter(t.clone()) for t in start]
    radii = [float(t.norm()) for t in start[:2]]
    settings = dict(lr=lr, beta=beta, lam=lam, weight_decay=weight_decay, eps=eps, foreach=foreach)
    opt_e = AdaRem(euclid, **settings)
    opt_s = AdaRemS(sphere, sphere_lr=sphere_lr, **settings)
    history = []
    for step in range(steps):
        for ps, opt in ((euclid, opt_e), (sphere, opt_s)):
            opt.zero_grad()
            invariant_loss(*ps, step).backward()
            opt.step()
            if step % epoch_every == epoch_every - 1:
                opt.new_epoch()
        with torch.no_grad():
            direction = max(float((unit(e) - unit(s)).abs().max()) for e, s in zip(euclid[:2], sphere[:2]))
            radius = max(abs(float(s.norm()) - r) / r for s, r in zip(sphere[:2], radii))
            bias = float((euclid[2] - sphere[2]).abs().max())
            alpha = max(abs(float(opt_s.state[s]["alpha"]) - float(e.norm()) / r)
                        for e, s, r in zip(euclid[:2], sphere[:2], radii))
        history.append((direction, radius, bias, alpha))
    # the Euclidean norms really moved: weight decay shrank them against gradient growth
    shrink = [float(e.detach().norm()) / r for e, r in zip(euclid[:2], radii)]
    return history, shrink


@pytest.mark.parametrize("foreach", [False, True])
def test_adarem_s_follows_the_weight_decayed_run(foreach):
    """003 section 3.4.1: with the sphere lr, AdaRem-S moves along the rays of the Euclidean
    weight-decayed AdaRem run, at every step; its norm stays R; alpha = |theta_E| / R.

    beta = 0 makes m_t = g_{t-1}, so both runs share a_t exactly (the scale 1/alpha_{t-1} of the
    Euclidean momentum cancels in b_t) while a_t is far from uniform: the test covers the
    resilience factor, the non-orthogonal a*g term of the norm recursion and the epochs.
    """
    history, shrink = euclid_vs_sphere(foreach=foreach)
    assert max(abs(s - 1.0) for s in shrink) > 0.2
    for step, (direction, radius, bias, alpha) in enumerate(history):
        assert direction < 1e-11, (step, direction)
        assert radius < 1e-13, (step, radius)
        assert bias < 1e-11, (step, bias)
        assert alpha < 1e-11, (step, alpha)


def test_adarem_s_sgd_limit_with_momentum():
    """lam^tau b = 0 (lam = 0 from the second epoch on) reduces both to SGD + decay: equal rays
    for any beta, the classic sphere-lr equivalence of 003 section 3.4.1."""
    history, _ = euclid_vs_sphere(beta=0.9, lam=0.0, eps=1e-8, epoch_every=1)
    assert max(h[0] for h in history) < 1e-11
    assert max(h[3] for h in history) < 1e-11


def test_plain_lr_breaks_the_equivalence():
    """The same check fails without the sphere lr: the test above can fail."""
    history, _ = euclid_vs_sphere(sphere_lr=False)
    assert max(h[1] for h in history) < 1e-13  # still on the sphere
    assert history[-1][0] > 1e-3  # but on other rays


def test_adarem_s_with_momentum_departs_as_intended():
    """With beta > 0 the sphere's momentum is not the Euclidean one (003's point): the first step
    (m = 0, a = 1) is still identical, later steps stay close but not equal; R is kept."""
    history, _ = euclid_vs_sphere(beta=0.9, eps=1e-8)
    assert history[0][0] < 1e-13
    assert max(h[1] for h in history) < 1e-13
    assert 1e-9 < history[-1][0] < 0.2


@pytest.mark.parametrize("trial_axis", [False, True])
def test_adarem_s_functional_foreach_equals_for_loop(trial_axis):
    shapes = [(3, 4, 3), (3, 2, 2, 2)] if trial_axis else [(4, 3), (2, 2, 2), (5,)]
    runs = []
    for foreach in (False, True):
        params = make_params(8, shapes)
        momenta = [torch.zeros_like(p) for p in params]
        with torch.no_grad():
            if trial_axis:
                radii = [p.reshape(3, -1).norm(dim=1).view((-1,) + (1,) * (p.dim() - 1)) for p in params]
            else:
                radii = [p.norm() for p in params]
        alphas = [torch.ones_like(r) for r in radii]
        for step in range(8):
            (set_trial_grads if trial_axis else set_grads)(params, step)
            with torch.no_grad():
                adarem_s(params, [p.grad for p in params], momenta, radii, alphas, lr=0.2, beta=0.9,
                         lam=0.9, epoch=step // 3, weight_decay=0.1, eps=1e-8, trial_axis=trial_axis,
                         foreach=foreach)
        runs.append([p.detach() for p in params] + momenta + alphas)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_spherical_selection():
    w, bias, vec = make_params(9, [(3, 2), (3,), (4,)])
    r_w, r_vec = float(w.detach().norm()), float(vec.detach().norm())
    opt = AdaRemS([dict(params=[w, bias]), dict(params=[vec], spherical=True)], lr=0.5, weight_decay=0.1)
    plain_bias = torch.nn.Parameter(bias.detach().clone())
    plain = AdaRem([plain_bias], lr=0.5, weight_decay=0.1)
    for step in range(5):
        grads = [torch.randn(p.shape, generator=torch.Generator().manual_seed(step), dtype=DT)
                 for p in (w, bias, vec)]
        for p, g in zip((w, bias, vec), grads):
            p.grad = g
        plain_bias.grad = grads[1].clone()
        opt.step()
        plain.step()
    assert opt.is_spherical(w, opt.param_groups[0]) and not opt.is_spherical(bias, opt.param_groups[0])
    assert float(w.detach().norm()) == pytest.approx(r_w, rel=1e-14)
    assert float(vec.detach().norm()) == pytest.approx(r_vec, rel=1e-14)  # 1-D, but the group says spherical
    exact(bias.detach(), plain_bias.detach())  # non-spherical: plain AdaRem
