"""Tests of lcamlab.models.wrn (WideResNet) and the `lcamlab bench wrn` smoke run."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lcamlab.models import BasicBlock, WideResNet, count_parameters


def wrn_parameter_count(depth: int, widen: int, num_classes: int) -> int:
    """The parameter count from the architecture (000 section 4 / digest section 2), written out by hand."""
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    total = 3 * 16 * 3 * 3  # stem conv, no bias
    for group, stride in enumerate((1, 2, 2)):
        c_in, c_out = widths[group], widths[group + 1]
        for block in range(n):
            block_in = c_in if block == 0 else c_out
            total += 2 * block_in  # BN1 weight + bias
            total += block_in * c_out * 9  # conv1
            total += 2 * c_out  # BN2
            total += c_out * c_out * 9  # conv2
            if block == 0 and (block_in != c_out or stride != 1):
                total += block_in * c_out  # 1x1 shortcut
    total += 2 * widths[3]  # final BN
    total += widths[3] * num_classes + num_classes  # linear
    return total


def test_wrn_28_10_parameter_count_and_output():
    torch.manual_seed(0)
    model = WideResNet(28, 10, 10)
    assert count_parameters(model) == wrn_parameter_count(28, 10, 10) == 36_479_194  # "36.5 M"
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 12
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)][-1] == 640
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert wrn_parameter_count(28, 10, 100) == 36_536_884
    assert count_parameters(WideResNet(28, 10, 100)) == 36_536_884


@pytest.mark.parametrize("depth,widen,classes", [(10, 1, 10), (16, 2, 100), (22, 1, 7)])
def test_small_parameter_counts(depth, widen, classes):
    model = WideResNet(depth, widen, classes)
    assert count_parameters(model) == wrn_parameter_count(depth, widen, classes)
    # A shortcut convolution exactly where the shape changes.
    shortcuts = [m.shortcut is not None for m in model.modules() if isinstance(m, BasicBlock)]
    n = (depth - 4) // 6
    expected = [widen != 1 or g > 0 for g in range(3)]
    assert [shortcuts[g * n] for g in range(3)] == expected
    assert not any(shortcuts[g * n + i] for g in range(3) for i in range(1, n))


def test_output_shapes():
    model = WideResNet(10, 2, 10)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert WideResNet(16, 1, 100)(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    # The feature map entering the 8x8 average pool is 8x8 with 64k channels.
    features = {}
    model.bn.register_forward_hook(lambda module, inputs, output: features.update(shape=output.shape))
    model(torch.randn(1, 3, 32, 32))
    assert features["shape"] == (1, 128, 8, 8)
    cl = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    assert cl(x).shape == (2, 10)


def test_block_computes_preactivation_with_shortcut_on_activated_input():
    torch.manual_seed(0)
    block = BasicBlock(4, 8, stride=2).double().eval()
    for bn in (block.bn1, block.bn2):  # non-trivial BN so "activated input" differs from the input
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    a = F.relu(block.bn1(x))
    expected = block.conv2(F.relu(block.bn2(block.conv1(a)))) + block.shortcut(a)
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=0)
    same = BasicBlock(4, 4, stride=1).double().eval()
    assert same.shortcut is None
    a = F.relu(same.bn1(x))
    torch.testing.assert_close(same(x), same.conv2(F.relu(same.bn2(same.conv1(a)))) + x, rtol=1e-12, atol=0)


def test_initialisation_statistics():
    torch.manual_seed(1)
    model = WideResNet(16, 8, 10)
    checked = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            assert module.bias is None
            w = module.weight
            expected_std = math.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))  # fan_out, ReLU gain
            if w.numel() >= 100_000:
                assert abs(w.std().item() / expected_std - 1) < 0.02
                assert abs(w.mean().item()) < 0.02 * expected_std * 10
                checked += 1
        elif isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
        elif isinstance(module, nn.Linear):
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
            bound = 1 / math.sqrt(module.in_features)  # PyTorch's default weight init
            assert module.weight.abs().max() <= bound
    assert checked >= 5


def test_dropout_only_in_training():
    model = WideResNet(10, 1, 10, dropout=0.3)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=27), "Invalid WRN depth: 27"),
    (dict(depth=4), "Invalid WRN depth: 4"),
    (dict(depth=28.0), "Invalid WRN depth"),
    (dict(widen=0), "Invalid WRN widen factor: 0"),
    (dict(widen=2.5), "Invalid WRN widen factor"),
    (dict(num_classes=0), "Invalid num_classes"),
    (dict(dropout=1.0), "Invalid dropout"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WideResNet(**kwargs)


# --------------------------------------------------------------------------------------
# lcamlab bench wrn
# --------------------------------------------------------------------------------------


def test_training_flops_per_image_is_three_forwards():
    from lcamlab.bench.wrn import training_flops_per_image

    flops = training_flops_per_image(10, 1, 10)
    # Forward FLOPs by hand: 2 * MACs of every conv and the linear layer at 32x32 input.
    widths, forward = [16, 16, 32, 64], 2 * 3 * 16 * 9 * 32 * 32
    size = 32
    for group, stride in enumerate((1, 2, 2)):
        c_in, c_out = widths[group], widths[group + 1]
        size //= stride
        forward += 2 * (c_in * c_out * 9 + c_out * c_out * 9) * size * size
        if c_in != c_out:
            forward += 2 * c_in * c_out * size * size
    forward += 2 * 64 * 10
    # Backward: gradients of inputs and weights (2x forward), except the stem's input gradient.
    stem = 2 * 3 * 16 * 9 * 32 * 32
    assert flops == pytest.approx(3 * forward - stem, rel=1e-9)


@pytest.mark.skipif(importlib.util.find_spec("lcamlab.train.engine") is None, reason="lcamlab.train.engine not there")
def test_bench_wrn_smoke_on_cpu(tmp_path, capsys):
    from lcamlab import provenance
    from lcamlab.cli import main

    out = tmp_path / "bench.csv"
    argv = ["bench", "wrn", "--depth", "10", "--widen", "1", "--steps", "3", "--warmup", "1",
            "--batch-size", "8", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "engine / authors' loop" in printed and "GFLOP" in printed
    table, metadata = provenance.load_table(out)
    assert list(table["variant"]) == ["authors", "engine"]
    assert (table["images_per_s"] > 0).all() and table["final_loss"].notna().all()
    assert metadata["checks_passed"] is True and metadata["augmentation_max_diff"] < 1e-5
    assert main(argv) == 2  # never overwrites the table
    assert "already exists" in capsys.readouterr().err
    assert main(["bench", "wrn", "--depth", "12", "--device", "cpu"]) == 2
    assert "Invalid WRN depth: 12" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_wrn_smoke_on_cuda(tmp_path):
    from lcamlab import provenance
    from lcamlab.cli import main

    out = tmp_path / "bench.csv"
    assert main(["bench", "wrn", "--depth", "10", "--widen", "2", "--steps", "5", "--warmup", "2",
                 "--batch-size", "64", "--device", "cuda", "--peak-size", "2048", "--out", str(out)]) == 0
    table, metadata = provenance.load_table(out)
    assert (table["peak_gib"] > 0).all() and metadata["checks_passed"] is True


def test_fmnet_for_fashion_mnist():
    from lcamlab.models import FMNet
    from lcamlab.train.config import TrainConfig
    from lcamlab.train.runner import build_model

    torch.manual_seed(0)
    model = FMNet()
    assert count_parameters(model) == 24058
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    built = build_model(TrainConfig(dataset="fashion-mnist", arch="fmnet"), 10)
    assert isinstance(built, FMNet) and built.features[0].in_channels == 1
    assert isinstance(build_model(TrainConfig(depth=10, widen=1), 10), WideResNet)
    conv = model.features[3]
    std = conv.weight.std().item()
    assert std == pytest.approx(math.sqrt(2.0 / (9 * conv.out_channels)), rel=0.15)  # Kaiming fan_out
    with pytest.raises(ValueError, match="Invalid FMNet width"):
        FMNet(width=0)
