"""The training step: same numbers as a plain loop, LCAM gets the loss tensor, no host sync on CUDA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lcamlab.optim import LCAM, start_epoch, takes_loss
from lcamlab.train.config import OPTIMIZERS, TrainConfig
from lcamlab.train.engine import Engine
from lcamlab.train.runner import build_optimizer


def small_net(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 5)).to(dtype)


def batches(n_steps: int, batch: int = 12, generator_seed: int = 1):
    g = torch.Generator().manual_seed(generator_seed)
    return [(torch.randn(batch, 3, 8, 8, generator=g), torch.randint(0, 5, (batch,), generator=g))
            for _ in range(n_steps)]


def test_engine_matches_a_plain_lcam_loop_in_float64():
    data = batches(6)
    reference = small_net()
    opt_ref = LCAM(reference.parameters(), lr=0.1, momentum=(0.9, 0.95), weight_decay=5e-4)
    ref_losses = []
    for x, y in data:
        opt_ref.zero_grad()
        loss = F.cross_entropy(reference(x.double()), y)
        loss.backward()
        opt_ref.step(loss=loss.detach())
        ref_losses.append(loss.detach())

    model = small_net()
    optimizer = LCAM(model.parameters(), lr=0.1, momentum=(0.9, 0.95), weight_decay=5e-4)
    engine = Engine(model, optimizer, device="cpu", amp=True, channels_last=True)
    assert engine.wants_loss and not engine.amp  # autocast only on CUDA: the CPU runs exact float64
    for (x, y), ref_loss in zip(data, ref_losses):
        loss, correct = engine.train_step(x, y)  # float32 batches are cast to the model's float64
        assert loss.dim() == 0 and not loss.requires_grad and loss.dtype == torch.float64
        assert correct.dim() == 0 and correct.dtype == torch.int64 and 0 <= int(correct) <= x.shape[0]
        torch.testing.assert_close(loss, ref_loss, rtol=1e-13, atol=0)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)
    # the same momentum decisions
    assert bool(optimizer.last_below) == bool(opt_ref.last_below)
    torch.testing.assert_close(optimizer.phase_fractions(), opt_ref.phase_fractions())


def test_engine_evaluate_counts_errors_in_percent():
    model = small_net()
    engine = Engine(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu")
    assert not engine.wants_loss
    data = batches(3, batch=10)
    result = engine.evaluate(data)
    with torch.no_grad():
        x = torch.cat([b[0] for b in data]).double()
        y = torch.cat([b[1] for b in data])
        logits = model(x)
    torch.testing.assert_close(result["loss"], F.cross_entropy(logits, y), rtol=1e-12, atol=0)
    expected_error = 100.0 * (logits.argmax(1) != y).double().mean()
    torch.testing.assert_close(result["error"], expected_error, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_through_the_engine(name):
    config = TrainConfig.from_overrides(optimizer=name, lr=0.01,
                                        momentum=(0.9, 0.9) if name == "sgd" else (0.9, 0.95))
    model = small_net(torch.float32)
    optimizer = build_optimizer(config, model.parameters())
    engine = Engine(model, optimizer, device="cpu")
    assert engine.wants_loss is takes_loss(optimizer) is (name == "lcam")
    before = [p.detach().clone() for p in model.parameters()]
    for epoch in range(2):
        start_epoch(optimizer)
        for x, y in batches(2, generator_seed=epoch):
            loss, _ = engine.train_step(x, y)
            assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_never_synchronises_with_the_host():
    model = small_net(torch.float32)
    optimizer = LCAM(model.parameters(), lr=0.1, momentum=(0.9, 0.95))
    engine = Engine(model, optimizer, device="cuda", amp=True, channels_last=True)
    data = [(x.cuda(), y.cuda()) for x, y in batches(4)]
    engine.train_step(*data[0])  # warm-up (lazy buffer creation)
    total = torch.zeros((), device="cuda", dtype=torch.float64)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in data[1:]:
            loss, _ = engine.train_step(x, y)
            total += loss
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total)
