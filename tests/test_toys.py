"""lcamlab.toys: gradients, the documented noise, batched == looped, LCAM's phases in the runner."""

from __future__ import annotations

import math

import pytest
import torch

from lcamlab.experiments.registry import suite_keys
from lcamlab.toys import OptimizerSpec, ProductChain, SpringPair, loss_phases, run, run_looped, suite
from lcamlab.toys.base import grid_cells

F64 = torch.float64


def _springs(trials: int = 5) -> SpringPair:
    """Springs that differ per trial in every knob (the grid-on-the-trial-axis use)."""
    return SpringPair(
        trials, dtype=F64,
        stiffness=torch.linspace(0.5, 2.0, trials), mass_ratio=torch.linspace(1.0, 80.0, trials),
        coupling=torch.linspace(0.0, 0.95, trials), noise=torch.linspace(0.05, 1.0, trials),
        optimum=(0.7, -0.3), start=(-1.0, 2.0), batch_size=8,
    )


def _chains(trials: int = 5, depth: int = 2) -> ProductChain:
    return ProductChain(trials, dtype=F64, sparsity=torch.linspace(0.0, 0.9, trials), depth=depth,
                        n_frequent=2, n_rare=3, label_noise=0.2, batch_size=6)


TOYS = {
    "spring": _springs,
    "chain-depth1": lambda: _chains(depth=1),
    "chain-depth2": lambda: _chains(depth=2),
    "chain-depth3": lambda: _chains(depth=3),
}


# -- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOYS)
def test_analytic_gradient_matches_finite_differences_and_autograd(name):
    toy = TOYS[name]()
    gen = torch.Generator().manual_seed(3)
    theta = toy.initial_point() + 0.4 * torch.randn(toy.trials, toy.dim, generator=gen, dtype=F64)
    batch = toy.sample_batch(gen)
    loss, grad = toy.loss_and_grad(theta, batch)
    torch.testing.assert_close(loss, toy.minibatch_loss(theta, batch), rtol=1e-12, atol=1e-14)
    h = 1e-6
    finite = torch.empty_like(grad)
    for k in range(toy.dim):  # a loop over coordinates, each step still covers every trial
        step = torch.zeros_like(theta)
        step[:, k] = h
        finite[:, k] = (toy.minibatch_loss(theta + step, batch) - toy.minibatch_loss(theta - step, batch)) / (2 * h)
    torch.testing.assert_close(grad, finite, rtol=1e-6, atol=1e-8)
    leaf = theta.clone().requires_grad_(True)
    toy.minibatch_loss(leaf, batch).sum().backward()
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-12, atol=1e-14)


# -- the spring's documented model ---------------------------------------------------------------


def test_spring_noise_covariance_is_hessian_over_batch_size():
    """Cov[grad L_B] = sigma^2 H / B and E[grad L_B] = H x, from 40 000 independent mini-batches."""
    n = 40_000
    toy = SpringPair(n, mass_ratio=9.0, coupling=0.6, noise=0.7, batch_size=5, dtype=F64)
    theta = torch.tensor([0.3, -0.8], dtype=F64).expand(n, 2).clone()
    _, grad = toy.loss_and_grad(theta, toy.sample_batch(torch.Generator().manual_seed(0)))
    x = theta[0] - toy.optimum()[0]
    hessian = toy.hessian()[0]
    expected_cov = toy.noise_covariance()[0]
    torch.testing.assert_close(expected_cov, 0.7**2 / 5 * hessian)
    centred = grad - grad.mean(dim=0)
    empirical = centred.T @ centred / (n - 1)
    # standard error of a covariance entry ~ sqrt((S_ii S_jj + S_ij^2) / n): 4 of them is a wide margin
    se = torch.sqrt((torch.outer(expected_cov.diag(), expected_cov.diag()) + expected_cov**2) / n)
    assert bool(((empirical - expected_cov).abs() < 4 * se).all()), (empirical, expected_cov)
    mean_se = torch.sqrt(expected_cov.diag() / n)
    assert bool(((grad.mean(dim=0) - hessian @ x).abs() < 4 * mean_se).all())


def test_spring_minibatch_loss_is_the_average_of_b_examples():
    """The two sufficient statistics reproduce B explicit examples xi ~ N(0, sigma^2 H^-1): mean and variance."""
    n, b, sigma = 40_000, 4, 0.5
    toy = SpringPair(n, mass_ratio=4.0, coupling=0.5, noise=sigma, batch_size=b, dtype=F64)
    theta = torch.tensor([0.2, 1.4], dtype=F64).expand(n, 2).clone()
    gen = torch.Generator().manual_seed(1)
    fast, _ = toy.loss_and_grad(theta, toy.sample_batch(gen))
    # explicit examples: xi = sigma L^-T z with H = L L^T, so Cov[xi] = sigma^2 H^-1
    hessian = toy.hessian()[0]
    chol = torch.linalg.cholesky(hessian)
    z = torch.randn(n, b, 2, generator=gen, dtype=F64)
    xi = sigma * torch.linalg.solve_triangular(chol.T, z.reshape(-1, 2).T, upper=True).T.reshape(n, b, 2)
    x = theta[0] - toy.optimum()[0]
    diff = x - xi
    explicit = 0.5 * torch.einsum("nbi,ij,nbj->nb", diff, hessian, diff).mean(dim=1)
    population = toy.population_loss(theta[:1])[0]
    for sample in (fast, explicit):
        assert abs(float(sample.mean() - population)) < 4 * float(sample.std()) / math.sqrt(n)
    ratio = float(fast.var() / explicit.var())
    assert 0.95 < ratio < 1.05, ratio


def test_spring_loss_split_and_valley_floor():
    toy = _springs()
    theta = toy.initial_point() + torch.randn(toy.trials, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    l_n, l_s = toy.loss_split(theta)
    torch.testing.assert_close(l_n + l_s, toy.excess_loss(theta), rtol=1e-12, atol=1e-14)
    on_floor = torch.stack([toy.centre_n(theta[:, 1]), theta[:, 1]], dim=1)
    grad = (toy.hessian() @ (on_floor - toy.optimum()).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(grad[:, 0], torch.zeros(toy.trials, dtype=F64), atol=1e-12, rtol=0)
    assert bool((toy.loss_split(on_floor)[0] == 0).all())
    torch.testing.assert_close(toy.excess_loss(toy.optimum()), torch.zeros(toy.trials, dtype=F64), atol=1e-14, rtol=0)


# -- the product chain ---------------------------------------------------------------------------


def test_product_chain_gradients_are_really_sparse_and_unbiased():
    n = 20_000
    toy = ProductChain(n, dtype=F64, sparsity=0.9, n_frequent=1, n_rare=1, batch_size=4, label_noise=0.3)
    theta = torch.tensor([0.4, -0.2, 0.9, 1.3], dtype=F64).expand(n, 4).clone()
    x, y = toy.sample_batch(torch.Generator().manual_seed(5))
    _, grad = toy.loss_and_grad(theta, (x, y))
    rare_absent = (x[:, 1, :] == 0).all(dim=0)  # the rare feature missing from the whole batch
    assert bool((grad[rare_absent, 1] == 0).all())
    assert bool((grad[~rare_absent, 1] != 0).all())
    assert abs(float(rare_absent.double().mean()) - 0.9**4) < 0.01  # P(absent from 4 examples)
    assert abs(float((x[:, 0, :] != 0).double().mean()) - 1.0) == 0  # frequent features always occur
    leaf = theta[:1].clone().requires_grad_(True)
    toy.subset([0]).population_loss(leaf).sum().backward()
    se = grad.std(dim=0) / math.sqrt(n)
    assert bool(((grad.mean(dim=0) - leaf.grad[0]).abs() < 4 * se).all()), (grad.mean(0), leaf.grad)


def test_product_chain_optimum_and_population_loss():
    toy = _chains(depth=3)
    optimum = toy.optimum()
    torch.testing.assert_close(toy.population_loss(optimum), toy.optimal_loss(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(toy.effective_weights(optimum), toy.teacher, rtol=1e-12, atol=1e-14)
    # balanced: v_i^2 = sum_j u_j^2
    u, v = optimum[:, : toy.n_features], optimum[:, toy.n_features:]
    torch.testing.assert_close(v**2, (u**2).sum(dim=1, keepdim=True).expand_as(v), rtol=1e-12, atol=0)
    # the "balanced" teacher gives every feature the same initial loss share p_j w*_j^2 = 1
    torch.testing.assert_close(toy.probability * toy.teacher**2, torch.ones_like(toy.teacher))
    # exact population loss against a Monte-Carlo average of mini-batch losses
    big = ProductChain(20_000, dtype=F64, sparsity=0.7, batch_size=3)
    theta = big.initial_point() + 0.5
    losses = big.minibatch_loss(theta, big.sample_batch(torch.Generator().manual_seed(0)))
    assert abs(float(losses.mean() - big.population_loss(theta)[0])) < 4 * float(losses.std()) / math.sqrt(20_000)


# -- the runner ----------------------------------------------------------------------------------


SPECS = [
    OptimizerSpec.lcam(0.02, 0.9, 0.95),
    OptimizerSpec.lcam(0.02, 0.95, 0.9),
    OptimizerSpec.heavy_ball(0.02),
    OptimizerSpec.adam(0.02),
    OptimizerSpec.adagrad(0.1),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_batched_trials_equal_looped_trials_spring(spec):
    toy = _springs(4)
    batched = run(toy, spec, steps=90, steps_per_epoch=20, seed=7)
    looped = run_looped(toy, spec, steps=90, steps_per_epoch=20, seed=7)
    assert torch.equal(batched.trajectory, looped.trajectory)
    assert torch.equal(batched.loss, looped.loss)
    if spec.kind == "lcam":
        assert torch.equal(batched.lcam_below, looped.lcam_below)


@pytest.mark.parametrize("spec", SPECS[:1] + SPECS[3:4], ids=lambda s: s.label)
def test_batched_trials_equal_looped_trials_chain(spec):
    toy = _chains(4)
    batched = run(toy, spec, steps=90, steps_per_epoch=20, seed=7)
    looped = run_looped(toy, spec, steps=90, steps_per_epoch=20, seed=7)
    # reductions over a one-trial slice may sum in another order: equal to rounding
    torch.testing.assert_close(batched.trajectory, looped.trajectory, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(batched.loss, looped.loss, rtol=1e-10, atol=1e-12)
    if spec.kind == "lcam":
        assert torch.equal(batched.lcam_below, looped.lcam_below)


def test_runner_phases_and_momentum_match_lcam_itself():
    """The runner's loss-vs-epoch-mean phase equals LCAM's decisions, and momentum_used its momentum."""
    from lcamlab.optim import LCAM

    toy = _springs(6)
    spec = OptimizerSpec.lcam(0.03, 0.85, 0.95)
    result = run(toy, spec, steps=75, steps_per_epoch=25, seed=4)
    assert torch.equal(result.below, result.lcam_below)
    assert 0.2 < float(result.below.double().mean()) < 0.9
    # a hand-written loop with the optimizer's own momentum_now()
    theta = toy.initial_point()
    opt = LCAM([theta], lr=0.03, momentum=(0.85, 0.95), trial_axis=True)
    gen = torch.Generator().manual_seed(4)
    used = []
    for t in range(75):
        if t and t % 25 == 0:
            opt.new_epoch()
        loss, theta.grad = toy.loss_and_grad(theta, toy.sample_batch(gen))
        used.append(opt.momentum_now().expand(toy.trials).clone())
        opt.step(loss=loss)
    torch.testing.assert_close(result.momentum_used(), torch.stack(used), rtol=0, atol=0)
    assert torch.equal(result.final, theta)


def test_loss_phases_rule():
    loss = torch.tensor([[3.0], [2.0], [4.0], [1.0], [5.0], [0.5]])
    below = loss_phases(loss, steps_per_epoch=3)[:, 0].tolist()
    # epoch 1: 3 (=mean, above), 2 < 2.5, 4 > 3; epoch 2 restarts: 1 (above), 5 > 3, 0.5 < 2.17
    assert below == [False, True, False, False, False, True]


def test_autograd_and_analytic_runs_agree():
    toy = _chains(3)
    spec = OptimizerSpec.lcam(0.01, 0.9, 0.95)
    a = run(toy, spec, steps=40, steps_per_epoch=10, seed=1)
    b = run(toy, spec, steps=40, steps_per_epoch=10, seed=1, gradient="autograd")
    torch.testing.assert_close(a.trajectory, b.trajectory, rtol=1e-10, atol=1e-12)


def test_record_every_subsamples_and_keeps_the_end():
    toy = _springs(2)
    result = run(toy, OptimizerSpec.heavy_ball(0.02), steps=25, record_every=10)
    assert result.recorded_steps.tolist() == [0, 10, 20, 25]
    full = run(toy, OptimizerSpec.heavy_ball(0.02), steps=25)
    assert torch.equal(result.trajectory, full.trajectory[[0, 10, 20, 25]])
    with pytest.raises(ValueError, match="record_every=1"):
        result.before_steps()


def test_suite_and_style_keys():
    lrs = {"sgd": 0.2, "momentum": 0.02, "lcam-above": 0.02, "lcam-below": 0.02, "adam": 0.02, "adagrad": 0.2,
           "rmsprop": 0.005, "adai": 0.2, "adarem": 0.2}
    specs = suite(suite_keys("toys"), lrs)
    keys = [s.style_key for s in specs]
    assert keys == list(suite_keys("toys"))
    assert sorted(keys) == sorted(["sgd", "momentum", "lcam-above", "lcam-below", "adam", "adagrad", "rmsprop", "adai",
                                   "adarem"])
    from lcamlab import style

    assert all(style.optimizer_color(k) for k in keys)
    toy = _springs(3)
    for spec in specs:  # every optimizer runs on the trial axis without error or NaN
        result = run(toy, spec, steps=30, steps_per_epoch=10)
        assert bool(torch.isfinite(result.trajectory).all()), spec.label


def test_grid_cells_layout():
    cells, knobs, index = grid_cells(3, mass_ratio=[1, 10], noise=[0.1, 0.2, 0.3])
    assert len(cells) == 6 and index.tolist() == [c for c in range(6) for _ in range(3)]
    assert knobs["mass_ratio"].tolist() == [1.0] * 9 + [10.0] * 9
    assert cells[4] == {"mass_ratio": 10.0, "noise": 0.2}


@pytest.mark.parametrize("make, message", [
    (lambda: SpringPair(3, mass_ratio=0.0), "mass_ratio"),
    (lambda: SpringPair(3, coupling=1.0), "coupling"),
    (lambda: SpringPair(3, noise=-1.0), "noise"),
    (lambda: SpringPair(3, mass_ratio=[1.0, 2.0]), "mass_ratio"),
    (lambda: SpringPair(0), "trials"),
    (lambda: ProductChain(3, sparsity=1.0), "sparsity"),
    (lambda: ProductChain(3, teacher="uniform"), "teacher"),
    (lambda: OptimizerSpec("lbfgs", 0.1), "optimizer kind"),
    (lambda: OptimizerSpec.lcam(0.1, 0.9, 1.2), "momentum above value"),
    (lambda: OptimizerSpec.sgd(-0.1), "learning rate"),
    (lambda: run(SpringPair(2), OptimizerSpec.sgd(0.1), steps=0), "steps"),
])
def test_invalid_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_divergence_is_reported_with_the_optimizer_named():
    toy = SpringPair(3, stiffness=[1.0, 1.0, 100.0])
    result = run(toy, OptimizerSpec.sgd(0.5), steps=400)
    assert result.diverged().tolist() == [False, False, True]
    with pytest.raises(ValueError, match=r"SGD \(lr=0.5\) diverged in 1 of 3 trials"):
        result.check_finite()
    assert run(toy.subset([0, 1]), OptimizerSpec.sgd(0.5), steps=50).check_finite().steps == 50
