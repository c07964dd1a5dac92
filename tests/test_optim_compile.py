"""Every optimizer under ``torch.compile`` (CPU inductor), run for every row of ``optim_db``.

A compiled step must give the eager numbers (to the tolerance torch's own SGD
gets on the same test, ``REFERENCE_ATOL``) and keep the optimizer's own state
right (LCAM's running mean, decisions and counters; AdaRem's epoch; the
schedule position of ScheduledMomentum), and it must not recompile when LCAM
switches phase, when an epoch starts, or when a scheduler changes a tensor
learning rate. Compiles are counted with dynamo's ``CompileCounterWithBackend``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from lcamlab.optim import LCAM, start_epoch, takes_loss

from optim_db import OptimizerInfo, optim_db
from test_optim_common import assert_same, snapshot

pytestmark = pytest.mark.slow

EPOCHS, BATCHES = 3, 6
#: torch.optim.SGD(momentum=0.9) on this test differs by ~1e-7 compiled vs eager
#: (inductor fuses and reorders float32 arithmetic); every optimizer must stay within
#: this bound, which test_reference_sgd checks SGD itself meets.
REFERENCE_ATOL = 2e-6
#: compiles before the steady state: the first step creates the per-parameter state
#: (a guard on it fails at the second step), as for torch's own optimizers
WARM_UP_STEPS = 2


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(BATCHES, 16, 12, generator=gen), torch.randint(0, 4, (BATCHES, 16), generator=gen)


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))


def train(make, *, compiled: bool, fullgraph: bool = False, tensor_lr: bool = True, scheduled: bool = True,
          epochs: int = EPOCHS, device: str = "cpu"):
    """Epochs of 6 batches, an ExponentialLR step per epoch; returns (model, optimizer, compiles after warm-up, total).

    With ``tensor_lr`` the learning rate is a 0-dim tensor (torch's recipe for a
    compiled step under a scheduler: a float would be baked into the graph). A
    scheduler wraps ``opt.step`` in a function dynamo does not trace, so with one
    ``fullgraph=True`` fails for torch's own optimizers too.
    """
    x, y = (t.to(device) for t in _data())
    model = _model().to(device)
    opt = make(model.parameters(), tensor_lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.7) if scheduled else None
    counter = CompileCounterWithBackend("inductor")
    if takes_loss(opt):
        step = lambda loss: opt.step(loss=loss)  # noqa: E731
    else:
        step = lambda loss: opt.step()  # noqa: E731
    if compiled:
        torch._dynamo.reset()
        step = torch.compile(step, backend=counter, fullgraph=fullgraph)
    after_warm_up = None
    steps = 0
    for _ in range(epochs):
        start_epoch(opt)
        for b in range(BATCHES):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            loss.backward()
            step(loss.detach())
            steps += 1
            if steps == WARM_UP_STEPS:
                after_warm_up = counter.frame_count
        if scheduler is not None:
            scheduler.step()
    return model, opt, after_warm_up, counter.frame_count


def _maker(info: OptimizerInfo, settings: dict[str, Any]):
    def make(params, tensor_lr: bool):
        kwargs = dict(settings)
        if tensor_lr:
            kwargs["lr"] = torch.tensor(float(kwargs["lr"]))
        return info.cls(params, **kwargs)
    return make


def _cases() -> list[Any]:
    cases = []
    for info in optim_db:
        for k, settings in enumerate(info.settings):
            cases.append(pytest.param(info, settings, id=f"{info.name}-{k}"))
            if k == 0 and info.supports_foreach:
                cases.append(pytest.param(info, {**settings, "foreach": True}, id=f"{info.name}-{k}-foreach"))
    return cases


def test_reference_sgd():
    """The tolerance is torch's: SGD compiled vs eager on this test stays within it, with no recompile."""
    make = lambda params, tensor_lr: torch.optim.SGD(  # noqa: E731
        params, lr=torch.tensor(0.05) if tensor_lr else 0.05, momentum=0.9)
    eager, _, _, _ = train(make, compiled=False)
    compiled, _, warm, total = train(make, compiled=True)
    diff = max(float((a - b).abs().max()) for a, b in zip(eager.parameters(), compiled.parameters()))
    assert 0.0 <= diff < REFERENCE_ATOL
    assert total == warm


@pytest.mark.parametrize(("info", "settings"), _cases())
def test_compiled_step_equals_eager(info: OptimizerInfo, settings: dict[str, Any]):
    """Same parameters, state and observables as the eager loop; no recompile after the warm-up steps."""
    make = _maker(info, settings)
    eager_model, eager_opt, _, _ = train(make, compiled=False)
    model, opt, warm, total = train(make, compiled=True)
    assert_same(snapshot(info, eager_opt, list(eager_model.parameters())),
                snapshot(info, opt, list(model.parameters())), rtol=0.0, atol=REFERENCE_ATOL)
    if not info.graph_breaks(settings):
        # phase switches, epochs and three learning-rate changes happened after the warm-up
        assert total == warm, f"{total - warm} recompiles after the warm-up"
    if isinstance(opt, LCAM):
        fractions = opt.phase_fractions()
        assert 0.0 < float(fractions[0]) < 1.0, "the test must switch phase within an epoch"


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("info", "settings"), [
    pytest.param(info, info.settings[0], id=info.name) for info in optim_db if not info.graph_breaks(info.settings[0])])
def test_fullgraph(info: OptimizerInfo, settings: dict[str, Any], foreach: bool):
    """Without a scheduler the whole step compiles as one graph (``fullgraph=True``), equal to eager."""
    if foreach and not info.supports_foreach:
        pytest.skip("no foreach path")
    make = _maker(info, {**settings, "foreach": foreach})
    eager_model, eager_opt, _, _ = train(make, compiled=False, scheduled=False, epochs=1)
    model, opt, _, _ = train(make, compiled=True, fullgraph=True, scheduled=False, epochs=1)
    assert_same(snapshot(info, eager_opt, list(eager_model.parameters())),
                snapshot(info, opt, list(model.parameters())), rtol=0.0, atol=REFERENCE_ATOL)


@pytest.mark.parametrize("foreach", [False, True])
def test_lcam_float_lr_compiled(foreach: bool):
    """A float learning rate under a scheduler also gives the eager numbers.

    (Recompiling when it changes, as torch's SGD does.)
    """
    make = lambda params, tensor_lr: LCAM(params, lr=0.05, momentum=(0.9, 0.95), foreach=foreach)  # noqa: E731
    eager_model, eager_opt, _, _ = train(make, compiled=False, tensor_lr=False)
    model, opt, _, _ = train(make, compiled=True, tensor_lr=False)
    info = next(i for i in optim_db if i.cls is LCAM)
    assert_same(snapshot(info, eager_opt, list(eager_model.parameters())),
                snapshot(info, opt, list(model.parameters())), rtol=0.0, atol=REFERENCE_ATOL)


def test_lcam_trial_axis_compiled():
    """Thousands-of-trials use: a (T, ...) LCAM run compiled keeps one running mean per trial."""
    trials = 64
    gen = torch.Generator().manual_seed(3)
    data = torch.randn(20, trials, 8, 5, generator=gen)

    def run(compiled: bool):
        w = torch.nn.Parameter(torch.zeros(trials, 5))
        opt = LCAM([w], lr=0.05, momentum=(0.9, 0.95), trial_axis=True)
        step = (lambda loss: opt.step(loss=loss))  # noqa: E731
        counter = CompileCounterWithBackend("inductor")
        if compiled:
            torch._dynamo.reset()
            step = torch.compile(step, backend=counter, fullgraph=True)
        for t in range(20):
            if t % 5 == 0:
                opt.new_epoch()
            opt.zero_grad()
            loss = ((data[t] @ w.unsqueeze(-1)).squeeze(-1) - 1.0).pow(2).mean(-1) + (w ** 4).sum(-1)
            loss.sum().backward()
            step(loss.detach())
            if t == WARM_UP_STEPS - 1:
                warm = counter.frame_count
        return w.detach(), opt.phase_fractions(), warm, counter.frame_count

    w_eager, f_eager, _, _ = run(False)
    w, f, warm, total = run(True)
    torch.testing.assert_close(w, w_eager, rtol=0.0, atol=REFERENCE_ATOL)
    torch.testing.assert_close(f, f_eager, rtol=0.0, atol=0.0)
    assert f[:, 0].unique().numel() > 1  # trials made different decisions
    assert total == warm


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("info", "settings"), [
    pytest.param(info, info.settings[0], id=info.name) for info in optim_db if not info.graph_breaks(info.settings[0])])
def test_cuda_compiled_step_equals_eager(info: OptimizerInfo, settings: dict[str, Any]):
    """On CUDA (foreach by default): the compiled step gives the eager numbers, without recompiling."""
    make = _maker(info, settings)
    eager_model, eager_opt, _, _ = train(make, compiled=False, device="cuda")
    model, opt, warm, total = train(make, compiled=True, device="cuda")
    assert_same(snapshot(info, eager_opt, list(eager_model.parameters())),
                snapshot(info, opt, list(model.parameters())), rtol=0.0, atol=REFERENCE_ATOL)
    assert total == warm


def test_compiled_schedule_checks_its_bounds():
    """A compiled ScheduledMomentum indexes its tensor schedule in the graph: past its end, an error, not garbage."""
    from lcamlab.optim import ScheduledMomentum

    w = torch.nn.Parameter(torch.ones(3))
    opt = ScheduledMomentum([w], lr=0.1, momentum=torch.tensor([0.9, 0.5, 0.9], dtype=torch.float64))
    torch._dynamo.reset()
    step = torch.compile(lambda: opt.step(), fullgraph=True)
    for _ in range(3):
        w.grad = torch.ones(3)
        step()
    assert opt.steps_taken == 3
    w.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="out of bounds"):
        step()
