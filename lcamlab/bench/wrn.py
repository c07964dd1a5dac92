r"""``lcamlab bench wrn``: WRN-28-10 training throughput, lcamlab engine vs the authors' loop.

Both loops train the same network from the same initial weights on the same
random CIFAR-shaped data (uint8 images, random labels), one after the other in
one process, and the benchmark prints images/s, ms/step, model-FLOP utilisation
(MFU) and peak GPU memory side by side, with their ratio.

* **authors' loop** (000 section 4 as published): per-image CPU transforms
  (zero-pad 4, random 32x32 crop, random horizontal flip, ``ToTensor``,
  ``Normalize``; written here with numpy/torch, no torchvision) in a
  ``torch.utils.data.DataLoader`` (``--authors-workers`` processes), fp32 NCHW
  (torch defaults, so cuDNN may use TF32 for convolutions), ``loss.item()``
  every step feeding a host-side LCAM switch of ``torch.optim.SGD``'s momentum.
* **lcamlab engine**: :class:`lcamlab.data.DeviceLoader` (data on the device,
  augmentation there) and :class:`lcamlab.train.engine.Engine` (bf16 autocast on
  CUDA, channels_last, optional ``torch.compile``) with
  :class:`lcamlab.optim.LCAM` keeping its running mean on the device: no host
  synchronisation in the timed steps.

.. math::

    \text{MFU} = \frac{F \cdot \text{images/s}}{P}, \qquad
    \text{ceiling} = P / F \ \text{images/s}

with :math:`F` the FLOPs of one training image (forward + backward, counted by
``torch.utils.flop_counter.FlopCounterMode`` in this run) and :math:`P` the bf16
matrix-product peak measured in this run with a large ``torch.matmul`` (on the
CPU, where both loops run fp32, the fp32 peak). Before timing, the benchmark
checks that the two loops agree: the engine's augmented batch equals the
authors' per-image transform for the same offsets and flips, and the forward
loss in the engine's precision is within tolerance of the fp32 one.
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lcamlab.data import NORMALIZATIONS, DeviceLoader
from lcamlab.models.wrn import WideResNet, count_parameters

__all__ = [
    "configure_parser",
    "main",
    "resolve_device",
    "matmul_peak_flops",
    "training_flops_per_image",
    "authors_transform",
    "AuthorsCifar",
    "run_authors",
    "run_engine",
]

# The paper's optimiser (000 section 4): SGD lr 0.1, coupled weight decay 5e-4,
# LCAM momentum (below, above) = (0.9, 0.95) starting from 0.9.
_LR, _WEIGHT_DECAY, _MOMENTUM, _INITIAL_MOMENTUM = 0.1, 5e-4, (0.9, 0.95), 0.9
_LOSS_RTOL = 0.05  # bf16 autocast vs fp32 forward loss; bf16 has an 8-bit mantissa
_AUG_ATOL = 1e-5


# --------------------------------------------------------------------------------------
# Measurement pieces
# --------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; otherwise the named device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"Invalid --device: {name!r} ({error}); use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Invalid --device: {name!r} (CUDA is not available here); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"Invalid --device: {name!r} (the benchmark supports cpu and cuda)")
    return device


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: torch.device, size: int, *, dtype: torch.dtype = torch.bfloat16,
                      seconds: float = 0.5, seed: int = 0) -> float:
    r"""Measured matrix-product throughput :math:`2n^3 k / t` in FLOP/s (``k`` products of ``n x n``).

    Args:
        device: where to measure.
        size: the matrix size :math:`n` (large enough to saturate the device's matrix units).
        dtype: bf16 by default, the precision the engine trains in.
        seconds: roughly how long the timed loop runs.
        seed: seed of the random operands.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(3):  # warm-up: kernel selection, clocks
        torch.matmul(a, b, out=out)
    _synchronize(device)
    start = time.perf_counter()
    torch.matmul(a, b, out=out)
    _synchronize(device)
    single = max(time.perf_counter() - start, 1e-6)
    iterations = int(min(max(seconds / single, 3), 2000))
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        torch.matmul(a, b, out=out)
    _synchronize(device)
    elapsed = time.perf_counter() - start
    del a, b, out
    return 2.0 * size**3 * iterations / elapsed


def training_flops_per_image(depth: int, widen: int, num_classes: int, *, device: str | torch.device = "cpu",
                             batch: int = 2) -> float:
    """FLOPs of one training image (forward + backward), counted by ``FlopCounterMode``.

    One forward and backward pass of a batch of zeros on ``device`` (instant on a
    GPU; the count depends on shapes only). Convolution and linear FLOPs are
    linear in the batch, so the per-image figure is exact.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]):  # nn.init draws from the global generator
        model = WideResNet(depth, widen, num_classes).to(device)
    x = torch.zeros(batch, 3, 32, 32, device=device)
    y = torch.zeros(batch, dtype=torch.int64, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    del model
    return counter.get_total_flops() / batch


def _random_cifar(n: int, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    return images, labels


def _initial_state(depth: int, widen: int, num_classes: int, seed: int) -> tuple[dict[str, Tensor], int]:
    """The shared initial weights of both loops, and the parameter count."""
    # nn.init draws from the global generator: fork it so the caller's state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WideResNet(depth, widen, num_classes)
    return model.state_dict(), count_parameters(model)


# --------------------------------------------------------------------------------------
# The authors' loop
# --------------------------------------------------------------------------------------


def authors_transform(image_hwc: np.ndarray, offset_y: int, offset_x: int, flip: bool,
                      mean: Sequence[float], std: Sequence[float], pad: int = 4) -> Tensor:
    r"""One image through ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``.

    .. math:: y = (\mathrm{flip}(\mathrm{crop}_{o}(\mathrm{pad}_0(x))) / 255 - \mu) / \sigma

    Args:
        image_hwc: ``(H, W, 3)`` uint8, as the authors' PIL images.
        offset_y, offset_x: the crop's top-left corner in the padded image (``0..2*pad``).
        flip: mirror left-right.
        mean, std: per-channel normalisation.
        pad: zero padding.

    Returns:
        ``(3, H, W)`` float32.
    """
    h, w = image_hwc.shape[:2]
    padded = np.pad(image_hwc, ((pad, pad), (pad, pad), (0, 0)))
    crop = padded[offset_y:offset_y + h, offset_x:offset_x + w]
    if flip:
        crop = crop[:, ::-1]
    tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).contiguous().float().div(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return tensor.sub_(mean_t).div_(std_t)


class AuthorsCifar(torch.utils.data.Dataset):
    """A CIFAR-shaped dataset with the authors' per-image CPU augmentation.

    Each DataLoader worker draws offsets and flips from its own generator, seeded
    with the worker seed the DataLoader derives from its (explicitly seeded)
    generator; without workers, from ``seed``.
    """

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, mean: Sequence[float],
                 std: Sequence[float], seed: int, pad: int = 4) -> None:
        self.images, self.labels = images_hwc, labels
        self.mean, self.std, self.seed, self.pad = tuple(mean), tuple(std), seed, pad
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self._generator is None:
            info = torch.utils.data.get_worker_info()
            self._generator = torch.Generator().manual_seed(info.seed if info is not None else self.seed)
        # As torchvision: RandomCrop draws the corner with torch.randint, RandomHorizontalFlip with torch.rand.
        offset_y, offset_x = torch.randint(0, 2 * self.pad + 1, (2,), generator=self._generator).tolist()
        flip = float(torch.rand(1, generator=self._generator)) < 0.5
        image = authors_transform(self.images[index], offset_y, offset_x, flip, self.mean, self.std, self.pad)
        return image, int(self.labels[index])


def _cuda_memory_start(device: torch.device) -> None:
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _cuda_peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def _time_loop(step: Callable[[], Tensor | float], warmup: int, steps: int, device: torch.device) -> dict[str, float]:
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _synchronize(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        last = step()
    _synchronize(device)
    elapsed = time.perf_counter() - start
    return {"warmup_s": warm, "timed_s": elapsed, "final_loss": float(last)}


def run_authors(images: Tensor, labels: Tensor, state: dict[str, Tensor], *, depth: int, widen: int,
                num_classes: int, batch_size: int, warmup: int, steps: int, workers: int,
                device: torch.device, seed: int, normalization: str = "imagenet") -> dict[str, float]:
    """Time the authors' loop: DataLoader with CPU transforms, fp32, ``loss.item()`` every step.

    Returns:
        ``warmup_s``, ``timed_s``, ``final_loss``, ``peak_gib``.
    """
    _cuda_memory_start(device)
    mean, std = NORMALIZATIONS[normalization]
    dataset = AuthorsCifar(images.permute(0, 2, 3, 1).contiguous().numpy(), labels.numpy(), mean, std, seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
        generator=torch.Generator().manual_seed(seed), persistent_workers=False,
    )
    model = WideResNet(depth, widen, num_classes)
    model.load_state_dict(state)
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=_LR, momentum=_INITIAL_MOMENTUM, weight_decay=_WEIGHT_DECAY)
    batches = iter(loader)
    running = {"sum": 0.0, "count": 0}

    def step() -> float:
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        value = loss.item()  # the host read every step: the GPU drains here
        optimizer.step()
        # The authors' LCAM: running mean on the host, next step's momentum by comparison.
        running["sum"] += value
        running["count"] += 1
        below = value < running["sum"] / running["count"]
        for group in optimizer.param_groups:
            group["momentum"] = _MOMENTUM[0] if below else _MOMENTUM[1]
        return value

    result = _time_loop(step, warmup, steps, device)
    result["peak_gib"] = _cuda_peak_gib(device)
    del batches, loader, model, optimizer
    return result


def run_engine(images: Tensor, labels: Tensor, state: dict[str, Tensor], *, depth: int, widen: int,
               num_classes: int, batch_size: int, warmup: int, steps: int, compile: bool,
               device: torch.device, seed: int, normalization: str = "imagenet") -> dict[str, float]:
    """Time the lcamlab engine: DeviceLoader + Engine (bf16 autocast on CUDA, channels_last) + LCAM.

    Returns:
        ``warmup_s``, ``timed_s``, ``final_loss``, ``peak_gib``.
    """
    from lcamlab.optim import LCAM
    from lcamlab.train.engine import Engine

    _cuda_memory_start(device)
    mean, std = NORMALIZATIONS[normalization]
    loader = DeviceLoader(images, labels, batch_size=batch_size, train=True, seed=seed, mean=mean, std=std,
                          device=device, drop_last=True, channels_last=True)
    model = WideResNet(depth, widen, num_classes)
    model.load_state_dict(state)
    model.to(device=device, memory_format=torch.channels_last)
    optimizer = LCAM(model.parameters(), lr=_LR, momentum=_MOMENTUM, initial_momentum=_INITIAL_MOMENTUM,
                     weight_decay=_WEIGHT_DECAY)
    optimizer.new_epoch()
    engine = Engine(model, optimizer, device=device, amp=True, channels_last=True, compile=compile)
    batches = loader.epoch(0)

    def step() -> Tensor:
        loss, _ = engine.train_step(*next(batches))
        return loss  # stays on the device; read once after the timed loop

    result = _time_loop(step, warmup, steps, device)
    result["peak_gib"] = _cuda_peak_gib(device)
    del batches, loader, engine, model, optimizer
    return result


# --------------------------------------------------------------------------------------
# Agreement checks
# --------------------------------------------------------------------------------------


def _check_augmentation(images: Tensor, labels: Tensor, *, batch_size: int, device: torch.device, seed: int,
                        normalization: str) -> float:
    """Max |engine batch - authors' transform| on the engine's first batch (same offsets and flips)."""
    mean, std = NORMALIZATIONS[normalization]
    loader = DeviceLoader(images, labels, batch_size=batch_size, train=True, seed=seed, mean=mean, std=std,
                          device=device, drop_last=True, channels_last=True)
    plan = loader.plan(0)
    x, y = next(iter(loader.epoch(0)))
    n = min(batch_size, 32)
    order, offsets, flips = (t[:n].cpu() for t in (plan.order, plan.offsets, plan.flips))
    hwc = images.permute(0, 2, 3, 1).numpy()
    reference = torch.stack([
        authors_transform(hwc[int(i)], int(o[0]), int(o[1]), bool(f), mean, std)
        for i, o, f in zip(order, offsets, flips)
    ])
    if not torch.equal(y[:n].cpu(), labels[order]):
        return float("inf")
    return float((x[:n].float().cpu() - reference).abs().max())


def _check_forward(images: Tensor, labels: Tensor, state: dict[str, Tensor], *, depth: int, widen: int,
                   num_classes: int, batch_size: int, device: torch.device, normalization: str) -> tuple[float, float]:
    """Forward loss of one batch in fp32 NCHW (authors) and in the engine's precision (bf16 autocast on CUDA)."""
    mean, std = NORMALIZATIONS[normalization]
    from lcamlab.data import normalize

    x = normalize(images[:batch_size], mean, std).to(device)
    y = labels[:batch_size].to(device)
    model = WideResNet(depth, widen, num_classes)
    model.load_state_dict(state)
    model.to(device).train()
    snapshot = copy.deepcopy(model.state_dict())  # BN running stats move in train mode: restore between passes
    with torch.no_grad():
        fp32 = float(F.cross_entropy(model(x), y))
        model.load_state_dict(snapshot)
        model.to(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x.contiguous(memory_format=torch.channels_last))
        engine = float(F.cross_entropy(logits.float(), y))
    del model, snapshot
    return fp32, engine


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected an integer)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value} (must be >= 1)")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected an integer)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {value} (must be >= 0)")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab bench wrn``."""
    parser.add_argument("--depth", type=int, default=28, help="WRN depth 6n+4 (default 28, the paper's)")
    parser.add_argument("--widen", type=_positive_int, default=10, help="WRN width multiplier (default 10, the paper's)")
    parser.add_argument("--num-classes", type=_positive_int, default=10,
                        help="classifier outputs: 10 (CIFAR-10, default) or 100 (CIFAR-100)")
    parser.add_argument("--batch-size", type=_positive_int, default=128, help="images per step (default 128, the paper's)")
    parser.add_argument("--steps", type=_positive_int, default=100, help="timed steps per loop (default 100)")
    parser.add_argument("--warmup", type=_non_negative_int, default=20,
                        help="untimed steps before timing: kernel selection, torch.compile, DataLoader start-up (default 20)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's model (warm-up absorbs compilation)")
    parser.add_argument("--authors-workers", type=_non_negative_int, default=0,
                        help="DataLoader worker processes of the authors' loop (default 0: loading in the training process)")
    parser.add_argument("--normalization", choices=sorted(NORMALIZATIONS), default="imagenet",
                        help="per-channel normalisation of both loops (default imagenet, the authors')")
    parser.add_argument("--peak-size", type=_positive_int, default=None,
                        help="matrix size n of the matmul peak measurement (bf16 on CUDA, default 8192; fp32 on the CPU, default 512)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the weights, data and augmentation (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="also save the table as this CSV (with a JSON provenance sidecar); never overwrites")


def _format(value: float, digits: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def main(args: argparse.Namespace) -> int:
    """Run both loops, print the table and the ratio; exit 1 if the loops disagree."""
    device = resolve_device(args.device)
    WideResNet.check_arguments(args.depth, args.widen, args.num_classes)  # before any work
    if args.out is not None:
        from lcamlab.provenance import refuse_overwrite

        refuse_overwrite(args.out, what="benchmark table")
        if args.out.suffix != ".csv":
            raise ValueError(f"Invalid --out: {args.out} (expected a .csv file name)")
    name = f"WRN-{args.depth}-{args.widen}"
    batch, steps, warmup = args.batch_size, args.steps, args.warmup
    peak_size = args.peak_size or (8192 if device.type == "cuda" else 512)

    from lcamlab.provenance import describe_device

    print(f"{name} ({args.num_classes} classes), batch {batch}, {steps} timed steps after {warmup} warm-up, "
          f"device {describe_device(device)}, torch {torch.__version__}", flush=True)
    flops_per_image = training_flops_per_image(args.depth, args.widen, args.num_classes, device=device)
    # The engine trains in bf16 on CUDA, so its ceiling is the bf16 matmul peak. The CPU
    # runs both loops in fp32 (no autocast there), so the fp32 peak is the meaningful one.
    peak_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak_name = "bf16" if peak_dtype == torch.bfloat16 else "fp32 (CPU: both loops run fp32)"
    peak = matmul_peak_flops(device, peak_size, dtype=peak_dtype, seed=args.seed)
    print(f"FLOPs per training image (forward + backward, FlopCounterMode): {flops_per_image / 1e9:.3f} GFLOP", flush=True)
    print(f"{peak_name} matmul peak ({peak_size}x{peak_size}, measured): {peak / 1e12:.3f} TFLOP/s "
          f"-> ceiling {peak / flops_per_image:,.0f} images/s", flush=True)

    images, labels = _random_cifar(batch * (warmup + steps), args.num_classes, args.seed)
    state, params = _initial_state(args.depth, args.widen, args.num_classes, args.seed)
    print(f"{name}: {params:,} parameters; {len(images):,} random CIFAR-shaped training images", flush=True)

    aug_diff = _check_augmentation(images, labels, batch_size=batch, device=device, seed=args.seed,
                                   normalization=args.normalization)
    loss_fp32, loss_engine = _check_forward(images, labels, state, depth=args.depth, widen=args.widen,
                                            num_classes=args.num_classes, batch_size=batch, device=device,
                                            normalization=args.normalization)
    loss_rel = abs(loss_engine - loss_fp32) / max(abs(loss_fp32), 1e-12)

    common = dict(depth=args.depth, widen=args.widen, num_classes=args.num_classes, batch_size=batch,
                  warmup=warmup, steps=steps, device=device, seed=args.seed, normalization=args.normalization)
    print("timing the authors' loop ...", flush=True)
    authors = run_authors(images, labels, state, workers=args.authors_workers, **common)
    print("timing the lcamlab engine ...", flush=True)
    engine = run_engine(images, labels, state, compile=args.compile, **common)

    precision = "bf16 autocast" if device.type == "cuda" else "fp32 (CPU: no autocast)"
    rows = []
    for variant, label, result in (
        ("authors", f"authors' loop (DataLoader x{args.authors_workers} workers, fp32, loss.item())", authors),
        ("engine", f"lcamlab engine (DeviceLoader, {precision}, channels_last{', compiled' if args.compile else ''})", engine),
    ):
        images_per_s = steps * batch / result["timed_s"]
        rows.append({
            "variant": variant, "description": label, "model": name, "parameters": params, "batch_size": batch,
            "steps": steps, "images_per_s": images_per_s, "ms_per_step": 1e3 * result["timed_s"] / steps,
            "mfu_percent": 100.0 * flops_per_image * images_per_s / peak, "peak_gib": result["peak_gib"],
            "warmup_s": result["warmup_s"], "final_loss": result["final_loss"],
            "gflop_per_image": flops_per_image / 1e9, "matmul_peak_tflops": peak / 1e12,
            "matmul_peak_dtype": str(peak_dtype).removeprefix("torch."),
        })

    header = f"{'variant':<78} {'images/s':>10} {'ms/step':>9} {'MFU %':>7} {'peak GiB':>9} {'warm-up s':>9} {'loss':>7}"
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['description']:<78} {_format(row['images_per_s'], 0):>10} {_format(row['ms_per_step'], 2):>9} "
              f"{_format(row['mfu_percent'], 1):>7} {_format(row['peak_gib'], 2):>9} {_format(row['warmup_s'], 1):>9} "
              f"{_format(row['final_loss'], 3):>7}")
    ratio = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    print(f"\nengine / authors' loop: {ratio:.2f}x images/s")
    print(f"checks: augmentation max |engine - authors' transform| = {aug_diff:.2e} (tolerance {_AUG_ATOL:g}); "
          f"forward loss fp32 {loss_fp32:.4f} vs engine precision {loss_engine:.4f} "
          f"(relative difference {loss_rel:.2e}, tolerance {_LOSS_RTOL:g})")

    failures = []
    if not aug_diff <= _AUG_ATOL:
        failures.append(f"the engine's augmented batch differs from the authors' transform by {aug_diff:.3g}")
    if not loss_rel <= _LOSS_RTOL:
        failures.append(f"the forward losses differ by {loss_rel:.3g} (relative)")
    for row in rows:
        if not math.isfinite(row["final_loss"]):
            failures.append(f"the {row['variant']} loop ended with a non-finite loss {row['final_loss']}")

    if args.out is not None:
        from lcamlab.provenance import run_metadata, save_table

        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}
        metadata = run_metadata(config, seed=args.seed, device=device, ratio=ratio, augmentation_max_diff=aug_diff,
                                forward_loss_fp32=loss_fp32, forward_loss_engine=loss_engine, checks_passed=not failures)
        save_table(args.out, rows, metadata)
        print(f"saved {args.out} (+ .json provenance)")
    if failures:
        print("lcamlab bench wrn: the loops disagree: " + "; ".join(failures))
        return 1
    return 0
