"""LCAM: parity with the authors' loop, the running mean and the switch, the functional core, no sync.

What every optimizer must do (validation, checkpoints, foreach, trial axis, groups,
schedulers, closure and loss) is tested for LCAM by ``test_optim_common.py``.
"""

from __future__ import annotations

import pytest
import torch

from lcamlab.optim import LCAM, choose_momentum, ema_update, lcam, running_mean_update


@pytest.fixture(autouse=True)
def _float64_default():
    """Parity tests run in float64; restore the default for the rest of the suite."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)).double()


def _batches(n_batches: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches, 16, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (n_batches, 16), generator=gen)
    return list(zip(x, y))


def _authors_loop(model, batches, epochs, *, lr, below, above, initial, wd):
    """The published training loop: torch SGD whose momentum is rewritten after every step.

    Per 000 Algorithm 1 and the authors' demo code: compute the loss, step SGD with the
    current momentum, update the epoch's running mean (Python floats, reset each epoch),
    then set the momentum for the next step: ``below`` if loss < mean else ``above``.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=initial, weight_decay=wd)
    decisions = []
    for _ in range(epochs):
        loss_sum = 0.0
        for i, (x, y) in enumerate(batches):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            mean = loss_sum / (i + 1)
            beta = below if loss.item() < mean else above
            decisions.append(loss.item() < mean)
            for group in opt.param_groups:
                group["momentum"] = beta
    return decisions


def _lcam_loop(model, batches, epochs, **kwargs):
    opt = LCAM(model.parameters(), **kwargs)
    decisions = []
    for _ in range(epochs):
        opt.new_epoch()
        for x, y in batches:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step(loss=loss)
            decisions.append(bool(opt.last_below))
    return opt, decisions


@pytest.mark.parametrize("pair", [(0.9, 0.95), (0.95, 0.9), (0.93, 0.9)])
@pytest.mark.parametrize("foreach", [False, True])
def test_parity_with_authors_loop(pair, foreach):
    batches = _batches(12)
    reference, candidate = _model(), _model()
    ref_decisions = _authors_loop(reference, batches, 4, lr=0.1, below=pair[0], above=pair[1],
                                  initial=0.9, wd=5e-4)
    _, decisions = _lcam_loop(candidate, batches, 4, lr=0.1, momentum=pair, weight_decay=5e-4,
                              foreach=foreach)
    assert decisions == ref_decisions
    # Both phases occur, so the test exercises the switch, and epoch starts select "above".
    assert any(decisions) and not all(decisions)
    assert all(not decisions[e * 12] for e in range(4))
    for p_ref, p in zip(reference.parameters(), candidate.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-12, atol=0)


def test_parity_would_detect_a_wrong_switch():
    """The parity comparison is sensitive: swapping the pair changes the parameters."""
    batches = _batches(12)
    reference, candidate = _model(), _model()
    _authors_loop(reference, batches, 3, lr=0.1, below=0.9, above=0.95, initial=0.9, wd=5e-4)
    _lcam_loop(candidate, batches, 3, lr=0.1, momentum=(0.95, 0.9), initial_momentum=0.9, weight_decay=5e-4)
    diffs = [(p - q).abs().max().item() for p, q in zip(reference.parameters(), candidate.parameters())]
    assert max(diffs) > 1e-6


def test_initial_momentum_defaults_to_min_of_pair():
    w = torch.nn.Parameter(torch.ones(3))
    assert LCAM([w], lr=0.1, momentum=(0.93, 0.9)).param_groups[0]["initial_momentum"] == 0.9
    assert LCAM([w], lr=0.1, momentum=(0.95, 0.95)).param_groups[0]["initial_momentum"] == 0.95
    assert float(LCAM([w], lr=0.1, momentum=(0.9, 0.95)).momentum_now()) == 0.9


def test_symmetric_momentum_equals_torch_sgd():
    batches = _batches(8)
    reference, candidate = _model(), _model()
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
    opt = LCAM(candidate.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
    for x, y in batches * 2:
        for m, o in ((reference, opt_ref), (candidate, opt)):
            o.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            o.step(loss=loss) if o is opt else o.step()
    for p_ref, p in zip(reference.parameters(), candidate.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("trial_axis", [False, True])
def test_functional_foreach_equals_for_loop(nesterov, maximize, trial_axis):
    """The functional core with arbitrary per-trial momenta (the class passes only its two constants)."""
    gen = torch.Generator().manual_seed(3)
    shapes = [(5, 4), (5, 3, 2), (5,)]
    params_a = [torch.randn(s, generator=gen) for s in shapes]
    params_b = [p.clone() for p in params_a]
    bufs_a: list = [None] * 3
    bufs_b: list = [None] * 3
    for step in range(6):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        if trial_axis:
            momentum = torch.rand(5, generator=gen) * 0.5 + 0.4
        else:
            momentum = torch.tensor(0.9 if step % 2 else 0.95)
        for params, bufs, foreach in ((params_a, bufs_a, False), (params_b, bufs_b, True)):
            lcam(params, grads, bufs, lr=0.05, momentum=momentum, weight_decay=1e-2,
                 nesterov=nesterov, maximize=maximize, trial_axis=trial_axis, foreach=foreach)
    for a, b in zip(params_a + bufs_a, params_b + bufs_b):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_first_momentum_buffer_is_the_gradient():
    """As in torch's SGD: b_1 = g_1 (the common tests check which parameters get state)."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = LCAM([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step(loss=1.0)
    torch.testing.assert_close(opt.state[w]["momentum_buffer"], torch.ones(3))


def test_each_group_switches_between_its_own_pair():
    """Against a hand-written loop: each group starts at the min of its pair and follows the shared decision."""
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(4))
    a_ref, b_ref = a.detach().clone(), b.detach().clone()
    opt = LCAM([{"params": [a]}, {"params": [b], "lr": 0.01, "momentum": (0.5, 0.8)}], lr=0.1, momentum=(0.9, 0.95))
    buf_a = buf_b = None
    beta_a, beta_b = 0.9, 0.5  # initial momentum = min of each group's pair
    losses = []
    for step in range(8):
        opt.zero_grad()
        loss = (a ** 2).sum() + (b ** 2).sum() + 0.3 * torch.sin(torch.tensor(float(step)))
        loss.backward()
        ga, gb = 2 * a_ref, 2 * b_ref
        buf_a = ga.clone() if buf_a is None else beta_a * buf_a + ga
        buf_b = gb.clone() if buf_b is None else beta_b * buf_b + gb
        a_ref, b_ref = a_ref - 0.1 * buf_a, b_ref - 0.01 * buf_b
        opt.step(loss=loss)
        losses.append(loss.item())
        below = losses[-1] < sum(losses) / len(losses)
        beta_a, beta_b = (0.9, 0.5) if below else (0.95, 0.8)
        torch.testing.assert_close(opt.momentum_now(1), torch.tensor(beta_b))
    torch.testing.assert_close(a.detach(), a_ref, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(b.detach(), b_ref, rtol=1e-12, atol=1e-15)


def test_epoch_mean_and_phase_fractions():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = LCAM([w], lr=0.0)
    losses = [3.0, 1.0, 2.5, 0.5, 4.0]
    expected_below = []
    for i, value in enumerate(losses):
        w.grad = torch.zeros(1)
        opt.step(loss=value)
        expected_below.append(value < sum(losses[: i + 1]) / (i + 1))
        assert bool(opt.last_below) == expected_below[-1]
        assert opt.last_mean.item() == pytest.approx(sum(losses[: i + 1]) / (i + 1), rel=1e-15)
    frac = opt.phase_fractions()
    assert frac.tolist() == pytest.approx([sum(expected_below) / 5, 1 - sum(expected_below) / 5])
    opt.new_epoch()
    assert torch.isnan(opt.phase_fractions()).all()
    w.grad = torch.zeros(1)
    opt.step(loss=0.1)  # the first loss of an epoch equals its own mean: "above"
    assert not bool(opt.last_below)


def test_ema_mean_matches_manual_reference():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = LCAM([w], lr=0.0, mean="ema", ema_decay=0.5)
    ema = None
    for value in [1.0, 3.0, 2.0, 0.5, 0.75, 5.0]:
        w.grad = torch.zeros(1)
        opt.step(loss=value)
        ema = value if ema is None else 0.5 * ema + 0.5 * value
        assert bool(opt.last_below) == (value < ema)
    opt.new_epoch()  # EMA carries over: the next decision still uses it
    w.grad = torch.zeros(1)
    opt.step(loss=0.1)
    assert bool(opt.last_below)


def test_pure_helpers():
    s, m = running_mean_update(torch.tensor(3.0), 2, torch.tensor(1.0))
    assert (s.item(), m.item()) == (4.0, 2.0)
    assert ema_update(None, torch.tensor(2.0), 0.9).item() == 2.0
    assert ema_update(torch.tensor(1.0), torch.tensor(2.0), 0.75).item() == pytest.approx(1.25)
    below = torch.tensor([True, False])
    assert choose_momentum(below, 0.93, 0.9).tolist() == [0.93, 0.9]


def test_float32_loss_compared_like_loss_item():
    """A float32 loss is compared with the float64 mean exactly as ``loss.item() < mean``."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float32))
    opt = LCAM([w], lr=0.0)
    values = torch.tensor([0.1, 0.2, 0.15, 0.1500001, 0.3, 0.01], dtype=torch.float32)
    total = 0.0
    for i, value in enumerate(values):
        w.grad = torch.zeros(1, dtype=torch.float32)
        opt.step(loss=value)
        total += value.item()
        assert bool(opt.last_below) == (value.item() < total / (i + 1))
    assert w.dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_steps_do_not_synchronise():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).cuda().float()
    opt = LCAM(model.parameters(), lr=0.1, momentum=(0.9, 0.95), weight_decay=5e-4, foreach=True)
    x = torch.randn(8, 128, 32, device="cuda")
    y = torch.randint(0, 10, (8, 128), device="cuda")
    # Warm up (first-use allocations, constants) before checking.
    opt.new_epoch()
    for i in range(2):
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        loss.backward()
        opt.step(loss=loss)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for epoch in range(2):
            opt.new_epoch()
            for i in range(8):
                opt.zero_grad(set_to_none=False)
                loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
                loss.backward()
                opt.step(loss=loss)
            fractions = opt.phase_fractions()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert fractions.is_cuda and opt.last_below.is_cuda and opt.momentum_now().is_cuda
    assert fractions.sum().item() == pytest.approx(1.0)
