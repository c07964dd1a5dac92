r"""Valley- and saddle-escape experiments, every trial of every sharpness as one tensor.

One optimizer setting at a time, all trials of all sharpness values advance
together as one ``(trials, dim)`` parameter (the optimizer's trial axis): the
sharpness is a per-trial ``(trials, 1)`` tensor :math:`\sqrt k` entering the loss
as :math:`f(\sqrt k\,\theta - x)`, so a step is a handful of tensor operations
for all trials at once, on the CPU or a CUDA device (004 Appendix E, 004 Figure 6).

Protocol (004 Appendix E; the **decisions** are the project's, see :mod:`lcamlab.escape`):

* **valley**: every trial starts at the bottom of the shallower valley of the
  actual training loss (:class:`~lcamlab.escape.landscape.CriticalPoints`) and
  *escapes* at the first iteration :math:`t \ge 1` after which a coordinate lies
  beyond its valley boundary (``criterion="any"``), or, with ``criterion="all"``,
  after which every coordinate lies beyond its boundary at the same time (the
  trial has reached the far corner valley). Trials still inside after ``budget``
  iterations are censored.
* **saddle** (004 Theorems 1-2, Propositions 1 and 3): every trial starts on the
  index-1 saddle of the same training loss, coordinate 0 on its ridge (the local
  maximum), the others at the bottom of their shallow valley. The Hessian there
  has one negative eigenvalue :math:`k\,L_0''(u_\text{ridge}) < 0`, tuned by the
  sharpness :math:`k` under the same data noise; a trial *leaves the saddle's
  neighbourhood* at the first iteration after which :math:`|u_0 - u_\text{ridge}|`
  exceeds ``radius`` (in :math:`u = \sqrt k\,\theta` units; see :func:`saddle_region`).
* **warm-up** (decision): before the clock starts, ``warmup`` optimizer steps are
  taken at the start point with the parameters put back after each one, so the
  optimizer's state (momentum buffer, Adam's and Adai's second moments, LCAM's
  running mean) is in equilibrium with the noise there, as 004's quasi-equilibrium
  assumption (Assumption 2) supposes. Measured without it (``warmup=0``, 004's
  cold start): Adam shows a dead time of 40-200 iterations and Adai a burst of
  escapes in the first 10-20 iterations, and the exponential law is rejected at
  most of their sharpness values; with 1000 warm-up steps (Adam's second-moment
  memory :math:`1/(1-\beta_2)`) it is not.
* mini-batches: ``batch_size`` samples drawn uniformly *with replacement* from
  the training set at every iteration, independently per trial, from one seeded
  :class:`torch.Generator` in chunks of ``(chunk, trials, batch_size)`` indices.
  Every optimizer setting replays the same index stream (common random numbers),
  so differences between optimizers are not sampling noise of the data order.
* epochs (LCAM's running mean, AdaRem's :math:`\lambda^\tau`): ``new_epoch()`` is
  called every ``epoch_length`` iterations, by default one pass over the training
  set (``n_samples // batch_size`` iterations). LCAM uses the paper's epoch
  mean (``lcam_mean="epoch"``, 000 Algorithm 1); ``lcam_mean="ema"`` is the option.

The per-trial reference :func:`simulate_looped` runs the same experiment as a
plain Python loop over trials with autograd on the literal loss; the tests and
``lcamlab bench escape`` check that both give the same escape times.

Default hyperparameters (**calibration**, measured on this landscape with
:math:`\sigma = 1`, batch size 1, dimension 10): in the rescaled coordinates
:math:`u = \sqrt k\,\theta` SGD is SGD on a :math:`k`-independent landscape with
effective learning rate :math:`\eta k`; the Kramers exponent is :math:`\Delta L / T`
with temperature :math:`T \approx \eta k D/2` (:math:`D \approx 613` the per-sample
gradient variance at the valley bottom, :math:`\Delta L \approx 7.4` the barrier), so
:math:`\log\Gamma` is linear in :math:`1/k` with slope about :math:`-2\Delta L/(\eta D)`
(plus the Kramers prefactor, which grows like :math:`k`). Following 004, every
optimizer gets a learning rate that gives it about the same temperature as SGD:

* SGD: :math:`\eta = 2\times10^{-3}` (``BASE_LR``), so that :math:`\eta k\,L'' \le 0.17`
  (stable, small steps) over the grid;
* SGD+momentum 0.9: :math:`\eta/10` (effective :math:`\eta/(1-\beta) = \eta`); LCAM in
  both orientations the same lr as fixed momentum 0.9, as in 000's comparisons,
  with ``momentum=(0.9, 0.95)`` ("accelerate above") and ``(0.95, 0.9)``;
* Adai: :math:`\eta`, ten times momentum's (004 Appendix E; Adai's :math:`m` is an average,
  not a sum, of gradients), default betas (0.1, 0.99), eps 1e-3;
* Adam: 0.1 (``ADAM_LR``). Adam's step in :math:`u` is :math:`\eta_\text{Adam}\sqrt k\,\hat m/\sqrt{\hat v}`,
  so its temperature grows like :math:`\sqrt k` (004 Proposition 2); with 0.1 its
  mean escape time at the middle of the grid (k = 2.86: 484 iterations) is next
  to SGD's (622), measured with the default seed;
* AdaRem: :math:`0.6\,\eta` (``ADAREM_LR_FACTOR``). Its factor :math:`a = 1 + b` correlates
  with the noise and raises the temperature a lot: at :math:`\eta` it escaped 10 times
  faster than SGD at the middle of the grid, at :math:`\eta/2` 2.7 times slower (cold
  starts, 100 trials), at :math:`0.6\,\eta` alongside (1015 vs SGD's 1761 iterations at
  k = 2.5, with the default warm-up).

The sharpness grid :math:`1/k \in [0.2, 0.55]` (8 values, equally spaced in :math:`1/k`
like 004 Figure 6's axis; k from 5 down to 1.8) spans what a budget of 6000
iterations can resolve: mean escape times from about 40-130 iterations (sharpest;
below a few tens escapes stop being rare events) to 2 400-24 000 (flattest, where
momentum, the slowest, still has 22 escapes out of 100; default seed). Every (optimizer, k)
point has escapes: :func:`calibration_report` lists the fractions, the notebook
prints them. The saddle grid is geometric in :math:`k \in [0.25, 4]` (negative
curvature 2.4 to 38), budget 3000; every saddle trial leaves within it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lcamlab.escape.landscape import StyblinskiTangLandscape, styblinski_tang

__all__ = [
    "OPTIMIZER_KEYS",
    "OptimizerSetting",
    "default_optimizer_settings",
    "build_optimizer",
    "EscapeConfig",
    "default_sharpness",
    "quick_config",
    "ExitRegion",
    "valley_region",
    "saddle_region",
    "minibatch_indices",
    "SimulationResult",
    "simulate_batched",
    "simulate_looped",
    "run_escape",
    "run_valley_escape",
    "run_saddle_escape",
    "calibration_report",
    "default_saddle_config",
    "saddle_sharpness",
    "make_landscape",
    "trial_layout",
    "cpu_threads",
]

OPTIMIZER_KEYS: tuple[str, ...] = ("sgd", "momentum", "momentum-0.925", "adam", "adai", "adarem", "lcam-above",
                                   "lcam-below")
_KINDS = ("sgd", "adam", "adai", "adarem", "lcam")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Calibrated defaults (see the module docstring).
BASE_LR = 2e-3
ADAM_LR = 0.1
ADAREM_LR_FACTOR = 0.6


@dataclass(frozen=True)
class OptimizerSetting:
    r"""One optimizer of the comparison.

    Args:
        key: the suite's optimizer key (colour and label in :mod:`lcamlab.style`),
            e.g. ``"momentum"`` or ``"lcam-above"``; unique within an experiment.
        kind: the optimizer class: ``"sgd"`` (torch SGD, with ``momentum`` in
            ``options`` for heavy-ball momentum), ``"adam"`` (torch Adam),
            ``"adai"`` (:class:`lcamlab.optim.adai.Adai`), ``"adarem"``
            (:class:`lcamlab.optim.adarem.AdaRem`), ``"lcam"`` (:class:`lcamlab.optim.LCAM`).
        lr: learning rate.
        options: extra keyword arguments of the optimizer (``momentum``,
            ``betas``, ...), as a tuple of ``(name, value)`` pairs (hashable).
    """

    key: str
    kind: str
    lr: float
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"Invalid optimizer key: {self.key!r} (a non-empty name such as 'momentum')")
        if self.kind not in _KINDS:
            raise ValueError(f"Invalid optimizer kind: {self.kind!r} (choose one of {list(_KINDS)})")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (0 < self.lr < math.inf):
            raise ValueError(f"Invalid learning rate for {self.key}: {self.lr!r} (must be a finite number > 0)")
        object.__setattr__(self, "options", tuple((str(k), v) for k, v in dict(self.options).items()))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def needs_loss(self) -> bool:
        """LCAM needs each trial's mini-batch loss at every step."""
        return self.kind == "lcam"

    def with_lr(self, lr: float) -> "OptimizerSetting":
        return dataclasses.replace(self, lr=float(lr))


def default_optimizer_settings(
    base_lr: float = BASE_LR, adam_lr: float = ADAM_LR, adarem_lr: float | None = None
) -> tuple[OptimizerSetting, ...]:
    r"""The eight calibrated settings: SGD, SGD+momentum 0.9 and 0.925, Adam, Adai, AdaRem, LCAM both ways.

    .. math:: \eta_\text{SGD} = \eta_\text{Adai} = \eta_\text{AdaRem} = \eta, \qquad
              \eta_\text{momentum} = \eta_\text{LCAM} = \eta/10

    (004 Appendix E: Adai's lr ten times momentum's; LCAM at fixed momentum's lr as in 000).
    Fixed momentum 0.925, the mean of LCAM's two coefficients, is the symmetric control:
    LCAM's pairs carry more momentum on average than 0.9 (a larger effective step
    :math:`\eta/(1-\beta)`), so "LCAM vs momentum 0.9" alone mixes the asymmetry with
    the higher mean momentum; "LCAM vs 0.925" isolates the asymmetry.
    """
    return (
        OptimizerSetting("sgd", "sgd", base_lr),
        OptimizerSetting("momentum", "sgd", base_lr / 10, (("momentum", 0.9),)),
        OptimizerSetting("momentum-0.925", "sgd", base_lr / 10, (("momentum", 0.925),)),
        OptimizerSetting("adam", "adam", adam_lr),
        OptimizerSetting("adai", "adai", base_lr),
        OptimizerSetting("adarem", "adarem", adarem_lr if adarem_lr is not None else ADAREM_LR_FACTOR * base_lr),
        OptimizerSetting("lcam-above", "lcam", base_lr / 10, (("momentum", (0.9, 0.95)),)),
        OptimizerSetting("lcam-below", "lcam", base_lr / 10, (("momentum", (0.95, 0.9)),)),
    )


def build_optimizer(
    setting: OptimizerSetting,
    params: Sequence[Tensor],
    *,
    trial_axis: bool,
    lcam_mean: str = "epoch",
) -> torch.optim.Optimizer:
    """Instantiate ``setting`` on ``params`` (``trial_axis`` for the suite's own optimizers)."""
    kwargs = setting.kwargs
    if setting.kind == "sgd":
        return torch.optim.SGD(params, lr=setting.lr, **kwargs)
    if setting.kind == "adam":
        return torch.optim.Adam(params, lr=setting.lr, **kwargs)
    if setting.kind == "adai":
        from lcamlab.optim.adai import Adai

        return Adai(params, lr=setting.lr, trial_axis=trial_axis, **kwargs)
    if setting.kind == "adarem":
        from lcamlab.optim.adarem import AdaRem

        return AdaRem(params, lr=setting.lr, trial_axis=trial_axis, **kwargs)
    from lcamlab.optim.lcam import LCAM

    kwargs.setdefault("mean", lcam_mean)
    return LCAM(params, lr=setting.lr, trial_axis=trial_axis, **kwargs)


def default_sharpness(count: int = 8, inverse_low: float = 0.2, inverse_high: float = 0.55) -> tuple[float, ...]:
    r"""Sharpness values equally spaced in :math:`1/k` (004 Figure 6's axis), sharpest first."""
    if count < 1:
        raise ValueError(f"Invalid number of sharpness values: {count} (must be >= 1)")
    inverse = np.linspace(inverse_low, inverse_high, count) if count > 1 else np.array([inverse_low])
    return tuple(float(round(1.0 / v, 10)) for v in inverse)


@dataclass(frozen=True)
class EscapeConfig:
    r"""Everything that determines an escape experiment's result (its cache key).

    Args:
        experiment: ``"valley"`` (escape from the shallow valley, 004 Figure 6) or
            ``"saddle"`` (leave the index-1 saddle's neighbourhood, 004 Theorems 1-2).
        sharpness: the :math:`k` values (each > 0).
        trials: trials per (optimizer, k).
        budget: iterations after which a trial is censored (>= 1).
        optimizers: the :class:`OptimizerSetting` s to compare.
        dim: parameter dimension :math:`n` (004: 10).
        n_samples: training-set size (004: 50 000).
        noise_scale: data standard deviation :math:`\sigma` (> 0).
        batch_size: mini-batch size.
        criterion: valley escape when ``"any"`` coordinate, or ``"all"`` at once, crossed.
        radius: saddle neighbourhood half-width in :math:`u = \sqrt k\,\theta` units.
        lcam_mean: LCAM's running mean, ``"epoch"`` (000) or ``"ema"``.
        epoch_length: iterations per epoch (``new_epoch()``); ``None`` = one pass
            over the training set, ``n_samples // batch_size``.
        seed: seed of the training set and of the mini-batch stream.
        dtype: ``"float32"`` (fast) or ``"float64"``.
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
        chunk: iterations per block of pre-drawn mini-batch indices (and per
            escape check on the host); part of the random stream, so of the key.
        warmup: iterations that warm the optimizer's state up at the start point
            before the clock starts (parameters put back after every step); 0 is
            004's cold start. Default 1000, about Adam's second-moment memory
            :math:`1/(1-\beta_2)`.
    """

    experiment: str = "valley"
    sharpness: tuple[float, ...] = field(default_factory=default_sharpness)
    trials: int = 100
    budget: int = 6000
    optimizers: tuple[OptimizerSetting, ...] = field(default_factory=default_optimizer_settings)
    dim: int = 10
    n_samples: int = 50_000
    noise_scale: float = 1.0
    batch_size: int = 1
    criterion: str = "any"
    radius: float = 1.0
    lcam_mean: str = "epoch"
    epoch_length: int | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    chunk: int = 256
    warmup: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "sharpness", tuple(float(k) if _is_number(k) else k for k in self.sharpness))
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        self.validate()

    # -- validation ------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting and how to fix it."""
        if self.experiment not in ("valley", "saddle"):
            raise ValueError(f"Invalid experiment: {self.experiment!r} (choose 'valley' or 'saddle')")
        if len(self.sharpness) == 0:
            raise ValueError("Invalid sharpness: no values given (pass at least one k > 0)")
        for k in self.sharpness:
            if not _is_number(k) or not (0 < k < math.inf):
                raise ValueError(f"Invalid sharpness k: {k!r} (must be > 0)")
        if len(set(self.sharpness)) != len(self.sharpness):
            raise ValueError(f"Invalid sharpness: {list(self.sharpness)} has repeated values")
        _check_int("number of trials", self.trials, 1)
        _check_int("budget", self.budget, 1, hint="the number of iterations before a trial is censored")
        _check_int("dimension", self.dim, 1)
        _check_int("number of training samples", self.n_samples, 1)
        _check_int("batch size", self.batch_size, 1)
        if self.batch_size > self.n_samples:
            raise ValueError(f"Invalid batch size: {self.batch_size} (larger than the training set, {self.n_samples})")
        _check_int("chunk", self.chunk, 1)
        _check_int("warm-up", self.warmup, 0, hint="iterations that warm the optimizer's state up at the start point")
        if self.epoch_length is not None:
            _check_int("epoch length", self.epoch_length, 1)
        if not _is_number(self.noise_scale) or not (0 <= self.noise_scale < math.inf):
            raise ValueError(f"Invalid noise scale: {self.noise_scale!r} (must be a finite number > 0)")
        if self.noise_scale == 0:
            raise ValueError(
                "Unreachable boundary: noise scale 0 means every mini-batch gradient is the full "
                "gradient, which vanishes at the starting critical point, so no trial can ever move; "
                "use a noise scale > 0 (004 uses standard Gaussian data, 1.0)"
            )
        if self.criterion not in ("any", "all"):
            raise ValueError(f"Invalid criterion: {self.criterion!r} (choose 'any' or 'all')")
        if not _is_number(self.radius) or not (0 < self.radius < math.inf):
            raise ValueError(f"Invalid saddle radius: {self.radius!r} (must be a finite number > 0)")
        if self.lcam_mean not in ("epoch", "ema"):
            raise ValueError(f"Invalid lcam_mean: {self.lcam_mean!r} (choose 'epoch' or 'ema')")
        if self.dtype not in _DTYPES:
            raise ValueError(f"Invalid dtype: {self.dtype!r} (choose one of {sorted(_DTYPES)})")
        device = str(self.device)
        if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
            raise ValueError(f"Invalid device: {device!r} (choose 'cpu', 'cuda' or 'cuda:N')")
        if len(self.optimizers) == 0:
            raise ValueError("Invalid optimizers: none given (pass at least one optimizer setting)")
        keys = [s.key for s in self.optimizers]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Invalid optimizers: repeated keys in {keys} (each setting needs its own key)")
        for setting in self.optimizers:
            if not isinstance(setting, OptimizerSetting):
                raise ValueError(f"Invalid optimizer setting: {setting!r} (expected an OptimizerSetting)")

    def simulation_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`simulate_batched` / :func:`simulate_looped` this config implies."""
        return dict(budget=self.budget, batch_size=self.batch_size, criterion=self.criterion, seed=self.seed,
                    epoch_length=self.resolved_epoch_length(), lcam_mean=self.lcam_mean, chunk=self.chunk,
                    warmup=self.warmup)

    def resolved_epoch_length(self) -> int:
        return self.epoch_length if self.epoch_length is not None else max(1, self.n_samples // self.batch_size)

    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def replace(self, **changes: Any) -> "EscapeConfig":
        return dataclasses.replace(self, **changes)

    def setting(self, key: str) -> OptimizerSetting:
        for setting in self.optimizers:
            if setting.key == key:
                return setting
        raise ValueError(f"Unknown optimizer key: {key!r} (this config has {[s.key for s in self.optimizers]})")


def quick_config(experiment: str = "valley", **changes: Any) -> EscapeConfig:
    """A small configuration for smoke tests and ``--quick``: 4 sharper k values, 24 trials, short budget."""
    if experiment == "saddle":
        base = dict(sharpness=saddle_sharpness(4), trials=24, budget=600, warmup=200)
    else:
        base = dict(sharpness=default_sharpness(4, 0.2, 0.4), trials=24, budget=1200, warmup=200)
    base.update(changes)
    return EscapeConfig(experiment=experiment, **base)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and not isinstance(value, complex)


def _check_int(name: str, value: Any, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        extra = f"; {hint}" if hint else ""
        raise ValueError(f"Invalid {name}: {value!r} (must be an integer >= {minimum}{extra})")


# --------------------------------------------------------------------------------------
# Where a trial starts and what counts as having left.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExitRegion:
    r"""Start point and exit rule, in rescaled units :math:`u = \sqrt k\,\theta` (numpy, ``(dim,)``).

    ``kind="halfspace"`` (valley): coordinate :math:`i` is outside when
    :math:`s_i (u_i - b_i) < 0`, beyond the valley boundary :math:`b_i` (:math:`s_i` the
    valley's side). ``kind="slab"`` (saddle): coordinate :math:`i` is outside when
    :math:`|u_i - c_i| > r_i`, with :math:`r_i = \infty` for coordinates that are not watched.
    """

    kind: str
    start: np.ndarray
    boundary: np.ndarray
    direction: np.ndarray

    def offset(self, boundary: Tensor, direction: Tensor) -> Tensor:
        """The constant of :meth:`outside`: :math:`s_i b_i` (half-space) or the centre (slab)."""
        return boundary * direction if self.kind == "halfspace" else boundary

    def outside(self, u: Tensor, offset: Tensor, direction: Tensor, out: Tensor | None = None) -> Tensor:
        """Per-coordinate "how far outside" (``> 0`` = outside), ``(trials, dim)``, written to ``out`` if given.

        ``offset`` comes from :meth:`offset`; for a slab ``direction`` holds the radii.
        """
        if self.kind == "halfspace":
            return torch.addcmul(offset, u, direction, value=-1.0, out=out)
        return torch.sub(u, offset, out=out).abs_().sub_(direction)

    def outside_numpy(self, u: np.ndarray) -> np.ndarray:
        """:meth:`outside` for one trial in numpy (the looped reference)."""
        if self.kind == "halfspace":
            return (self.boundary - u) * self.direction
        return np.abs(u - self.boundary) - self.direction


def valley_region(landscape: StyblinskiTangLandscape) -> ExitRegion:
    """Start at the shallow valley's bottom; the boundary is each coordinate's local maximum."""
    points = landscape.points
    return ExitRegion("halfspace", points.shallow_min.copy(), points.boundary.copy(), points.direction.copy())


def saddle_region(landscape: StyblinskiTangLandscape, radius: float) -> ExitRegion:
    r"""Start on the index-1 saddle: coordinate 0 on its ridge, the others at their shallow minima.

    The neighbourhood is the slab :math:`|u_0 - u_\text{ridge}| \le r` along the
    unstable (negative-curvature) direction. The stable coordinates are not watched:
    their fluctuations at the bottom of a valley, which the gradient noise makes
    at any minimum (standard deviation about 0.4 in :math:`u` at the sharpest
    settings), are not saddle escape.

    Raises ``ValueError`` if the slab reaches a minimum: trials would then settle
    inside it and never leave (an unreachable boundary).
    """
    points = landscape.points
    start = points.shallow_min.copy()
    start[0] = points.boundary[0]
    nearest = min(abs(points.boundary[0] - points.shallow_min[0]), abs(points.boundary[0] - points.deep_min[0]))
    if not radius < nearest:
        raise ValueError(
            f"Unreachable saddle-neighbourhood boundary: radius {radius} reaches the nearest minimum "
            f"(distance {nearest:.3f} in u units), where trials would settle without ever leaving; "
            f"use a radius below {nearest:.3f}"
        )
    radii = np.full_like(start, np.inf)
    radii[0] = float(radius)
    return ExitRegion("slab", start, start.copy(), radii)


def _region(config: EscapeConfig, landscape: StyblinskiTangLandscape) -> ExitRegion:
    if config.experiment == "valley":
        return valley_region(landscape)
    return saddle_region(landscape, config.radius)


# --------------------------------------------------------------------------------------
# The simulation: batched (the product) and looped (the reference).
# --------------------------------------------------------------------------------------


def minibatch_indices(
    generator: torch.Generator, steps: int, trials: int, batch_size: int, n_samples: int, device: torch.device
) -> Tensor:
    """One block of mini-batch indices, ``(steps, trials, batch_size)`` (the shared random stream)."""
    return torch.randint(n_samples, (steps, trials, batch_size), generator=generator, device=device)


@dataclass
class SimulationResult:
    """Escape step per trial (``budget + 1`` where censored), flags, final positions and timing."""

    escape_step: np.ndarray
    escaped: np.ndarray
    final_theta: np.ndarray
    iterations: int
    seconds: float


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int = 1):
    """Run CPU tensor code with ``threads`` intra-op threads, restoring the setting afterwards.

    The simulation's tensors are small (trials x dim); splitting them over
    threads only adds synchronisation, which on a shared, busy machine costs
    tens of times the arithmetic (measured: a 8000-element ``sqrt`` 10 us on one
    thread, 700 us on two while other processes hold the cores).
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stream_generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) + 1)  # seed itself draws the training set
    return generator


def simulate_batched(
    landscape: StyblinskiTangLandscape,
    setting: OptimizerSetting,
    sqrt_k: Tensor,
    region: ExitRegion,
    *,
    budget: int,
    batch_size: int = 1,
    criterion: str = "any",
    seed: int = 0,
    epoch_length: int | None = None,
    lcam_mean: str = "epoch",
    chunk: int = 256,
    warmup: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    r"""Run all trials of one optimizer setting as one ``(trials, dim)`` tensor until all left or ``budget``.

    .. math::

        u_t = \sqrt k\,\theta_t, \qquad
        g_t = \sqrt k\,\tfrac1B\textstyle\sum_b f'(u_t - x_{b,t}), \qquad
        \theta_{t+1} = \text{optimizer}(\theta_t, g_t)

    A trial's escape step is the first :math:`t \ge 1` after which it is outside
    (:class:`ExitRegion`); it keeps moving afterwards (its later path is ignored)
    so that every step stays one tensor operation for all trials.

    Args:
        landscape: training set and critical points (its device and dtype are used).
        setting: the optimizer.
        sqrt_k: per-trial :math:`\sqrt k`, shape ``(trials,)``.
        region: start point and exit rule.
        budget: censoring iteration.
        batch_size, criterion, seed, epoch_length, lcam_mean, chunk, warmup: see :class:`EscapeConfig`.
        progress: called with the number of iterations done after every chunk.

    Returns:
        :class:`SimulationResult`.
    """
    with cpu_threads(landscape.device):
        return _simulate_batched(landscape, setting, sqrt_k, region, budget=budget, batch_size=batch_size,
                                 criterion=criterion, seed=seed, epoch_length=epoch_length,
                                 lcam_mean=lcam_mean, chunk=chunk, warmup=warmup, progress=progress)


def _simulate_batched(landscape, setting, sqrt_k, region, *, budget, batch_size, criterion, seed,
                      epoch_length, lcam_mean, chunk, warmup, progress) -> SimulationResult:
    device, dtype = landscape.device, landscape.dtype
    trials = int(sqrt_k.shape[0])
    epoch_length = epoch_length or max(1, landscape.n_samples // batch_size)
    started = time.perf_counter()
    root = sqrt_k.to(device=device, dtype=dtype).reshape(trials, 1)
    start_u = landscape.tensor(region.start).expand(trials, -1)
    boundary = landscape.tensor(region.boundary)
    direction = landscape.tensor(region.direction)
    offset = region.offset(boundary, direction)
    constants = (torch.full((), -16.0, dtype=dtype, device=device), torch.full((), 2.5, dtype=dtype, device=device))
    theta = (start_u / root).contiguous().requires_grad_(True)
    optimizer = build_optimizer(setting, [theta], trial_axis=True, lcam_mean=lcam_mean)
    has_epochs = hasattr(optimizer, "new_epoch")
    reduce = torch.amax if criterion == "any" else torch.amin
    data = landscape.data
    escape_step = torch.full((trials,), budget + 1, dtype=torch.long, device=device)
    escaped = torch.zeros(trials, dtype=torch.bool, device=device)
    generator = _stream_generator(seed, device)
    steps_done = 0
    with torch.no_grad():
        u = theta * root
        if warmup:
            # the optimizer's state (moments, momentum, running mean) sees the noise at the
            # start point while the parameters are put back after every step
            start_theta = theta.detach().clone()
            indices = minibatch_indices(generator, warmup, trials, batch_size, landscape.n_samples, device)
            for s in range(warmup):
                x = data[indices[s]]
                y = u.unsqueeze(1) - x
                theta.grad = _grad_from_y(y, root, 1, constants)
                if setting.needs_loss:
                    optimizer.step(loss=styblinski_tang(y).mean(1))
                else:
                    optimizer.step()
                theta.copy_(start_theta)
        for block_start in range(0, budget, chunk):
            steps = min(chunk, budget - block_start)
            indices = minibatch_indices(generator, steps, trials, batch_size, landscape.n_samples, device)
            if batch_size == 1:
                indices = indices.squeeze(2)
            # per-coordinate "outside" of every step of the block; reduced once per block,
            # because a small reduction per step costs more than the whole gradient
            outside = torch.empty(steps, trials, landscape.dim, dtype=dtype, device=device)
            for s in range(steps):
                if has_epochs and (block_start + s) % epoch_length == 0:
                    optimizer.new_epoch()
                if batch_size == 1:
                    x = data.index_select(0, indices[s])
                    y = u - x
                    grad = _grad_from_y(y, root, None, constants)
                else:
                    x = data[indices[s]]
                    y = u.unsqueeze(1) - x
                    grad = _grad_from_y(y, root, 1, constants)
                theta.grad = grad
                if setting.needs_loss:
                    loss = styblinski_tang(y) if batch_size == 1 else styblinski_tang(y).mean(1)
                    optimizer.step(loss=loss)
                else:
                    optimizer.step()
                u = theta * root
                region.outside(u, offset, direction, out=outside[s])
            steps_done = block_start + steps
            crossed = reduce(outside, 2) > 0
            first = torch.argmax(crossed.to(torch.uint8), dim=0)
            fresh = crossed.any(0) & ~escaped
            escape_step = torch.where(fresh, first + (block_start + 1), escape_step)
            escaped |= fresh
            if progress is not None:
                progress(steps_done)
            if bool(escaped.all()):
                break
    return SimulationResult(
        escape_step=escape_step.cpu().numpy(),
        escaped=escaped.cpu().numpy(),
        final_theta=theta.detach().cpu().numpy(),
        iterations=steps_done,
        seconds=time.perf_counter() - started,
    )


def _grad_from_y(y: Tensor, root: Tensor, batch_dim: int | None, constants: tuple[Tensor, Tensor]) -> Tensor:
    r""":math:`\sqrt k \cdot \operatorname{mean}_b f'(y_b)`, with :math:`f'(y) = (2y^2 - 16)\,y + 5/2`.

    ``constants`` are the 0-dim tensors -16 and 5/2 (two fused multiply-adds, no temporaries).
    """
    minus_16, five_halves = constants
    g = torch.addcmul(five_halves, torch.addcmul(minus_16, y, y, value=2.0), y)
    if batch_dim is not None:
        g = g.mean(batch_dim)
    return g.mul_(root)


def simulate_looped(
    landscape: StyblinskiTangLandscape,
    setting: OptimizerSetting,
    sqrt_k: Tensor,
    region: ExitRegion,
    *,
    budget: int,
    batch_size: int = 1,
    criterion: str = "any",
    seed: int = 0,
    epoch_length: int | None = None,
    lcam_mean: str = "epoch",
    chunk: int = 256,
    warmup: int = 0,
    trial_subset: Sequence[int] | None = None,
) -> SimulationResult:
    r"""The reference: a plain Python loop over trials, one optimizer (no trial axis) per trial.

    Each trial draws the same mini-batch indices as in :func:`simulate_batched`
    (the stream is generated once, in the same chunks, and each trial reads its
    column), computes the literal loss :math:`\frac1B\sum_b f(\sqrt k\,\theta - x_b)`,
    back-propagates with autograd, steps its own optimizer and stops at its escape.

    Args:
        trial_subset: indices of the trials to run (default all); the results
            have one row per selected trial, in that order.
        Others: as :func:`simulate_batched`.
    """
    with cpu_threads(landscape.device):
        return _simulate_looped(landscape, setting, sqrt_k, region, budget=budget, batch_size=batch_size,
                                criterion=criterion, seed=seed, epoch_length=epoch_length,
                                lcam_mean=lcam_mean, chunk=chunk, warmup=warmup, trial_subset=trial_subset)


def _simulate_looped(landscape, setting, sqrt_k, region, *, budget, batch_size, criterion, seed,
                     epoch_length, lcam_mean, chunk, warmup, trial_subset) -> SimulationResult:
    device, dtype = landscape.device, landscape.dtype
    trials = int(sqrt_k.shape[0])
    subset = list(range(trials)) if trial_subset is None else [int(i) for i in trial_subset]
    epoch_length = epoch_length or max(1, landscape.n_samples // batch_size)
    started = time.perf_counter()
    # The shared random stream, kept only for the selected trials.
    generator = _stream_generator(seed, device)
    selected = torch.as_tensor(subset, dtype=torch.long, device=device)
    blocks = []
    if warmup:
        warm = minibatch_indices(generator, warmup, trials, batch_size, landscape.n_samples, device)[:, selected]
    for block_start in range(0, budget, chunk):
        steps = min(chunk, budget - block_start)
        blocks.append(minibatch_indices(generator, steps, trials, batch_size, landscape.n_samples, device)[:, selected])
    stream = torch.cat(blocks, 0)  # (budget, len(subset), batch_size)
    escape_step = np.full(len(subset), budget + 1, dtype=np.int64)
    final_theta = np.zeros((len(subset), landscape.dim))
    iterations = 0
    for row, trial in enumerate(subset):
        root = sqrt_k[trial].to(device=device, dtype=dtype)
        start = landscape.tensor(region.start)
        theta = (start / root).clone().requires_grad_(True)
        optimizer = build_optimizer(setting, [theta], trial_axis=False, lcam_mean=lcam_mean)
        has_epochs = hasattr(optimizer, "new_epoch")
        iterations += warmup
        for w in range(warmup):
            x = landscape.data[warm[w, row]]
            optimizer.zero_grad()
            loss = styblinski_tang(theta * root - x).mean()
            loss.backward()
            if setting.needs_loss:
                optimizer.step(loss=loss.detach())
            else:
                optimizer.step()
            with torch.no_grad():
                theta.copy_(start / root)
        for t in range(1, budget + 1):
            if has_epochs and (t - 1) % epoch_length == 0:
                optimizer.new_epoch()
            x = landscape.data[stream[t - 1, row]]  # (batch_size, dim)
            optimizer.zero_grad()
            loss = styblinski_tang(theta * root - x).mean()
            loss.backward()
            if setting.needs_loss:
                optimizer.step(loss=loss.detach())
            else:
                optimizer.step()
            iterations += 1
            u = (theta.detach() * root).cpu().numpy()
            outside = region.outside_numpy(u)
            left = outside.max() > 0 if criterion == "any" else outside.min() > 0
            if left:
                escape_step[row] = t
                break
        final_theta[row] = theta.detach().cpu().numpy()
    return SimulationResult(
        escape_step=escape_step,
        escaped=escape_step <= budget,
        final_theta=final_theta,
        iterations=iterations,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------
# Experiments: tables of per-trial escape times.
# --------------------------------------------------------------------------------------


def _resolve_device(device: str) -> torch.device:
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Invalid device: {device!r} (CUDA is not available here; use --device cpu)")
    return resolved


def make_landscape(config: EscapeConfig) -> StyblinskiTangLandscape:
    """The training set and critical points of ``config`` on its device and dtype."""
    return StyblinskiTangLandscape(
        config.dim, config.n_samples, config.noise_scale, seed=config.seed,
        device=_resolve_device(config.device), dtype=config.torch_dtype(),
    )


def trial_layout(config: EscapeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sharpness and trial index: rows are sharpness-major, ``k_index * trials + trial``."""
    ks = np.repeat(np.asarray(config.sharpness, dtype=np.float64), config.trials)
    trial = np.tile(np.arange(config.trials), len(config.sharpness))
    return ks, trial


def run_escape(
    config: EscapeConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    r"""Run ``config`` for every optimizer; one row per trial.

    Returns:
        ``(frame, info)``: ``frame`` has columns ``experiment, optimizer, k, trial,
        escape_step`` (``budget + 1`` where censored), ``escaped``, ``exposure``
        (:math:`\min(T, \text{budget})`), ``hessian`` (the Hessian eigenvalue that
        matters in :math:`\theta`: :math:`k L''` at the valley bottom of coordinate 0,
        or the negative eigenvalue at the saddle); ``info`` holds the critical
        points, the barrier and the seconds per optimizer.
    """
    landscape = make_landscape(config)
    region = _region(config, landscape)
    ks, trial = trial_layout(config)
    sqrt_k = torch.as_tensor(np.sqrt(ks))
    points = landscape.points
    curvature = points.curvature_shallow[0] if config.experiment == "valley" else points.curvature_boundary[0]
    frames, seconds = [], {}
    bar = None
    for setting in config.optimizers:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.budget, desc=f"{config.experiment} {setting.key}", leave=False)
        done = [0]

        def _progress(steps: int) -> None:
            if bar is not None:
                bar.update(steps - done[0])
            done[0] = steps

        result = simulate_batched(landscape, setting, sqrt_k, region, progress=_progress,
                                  **config.simulation_options())
        if bar is not None:
            bar.close()
        seconds[setting.key] = round(result.seconds, 3)
        if log is not None:
            log(f"{config.experiment} {setting.key}: {int(result.escaped.sum())}/{len(ks)} left in "
                f"{result.iterations} iterations, {result.seconds:.1f} s")
        frames.append(pd.DataFrame({
            "experiment": config.experiment,
            "optimizer": setting.key,
            "k": ks,
            "trial": trial,
            "escape_step": result.escape_step,
            "escaped": result.escaped,
            "exposure": np.minimum(result.escape_step, config.budget),
            "hessian": ks * curvature,
        }))
    info = {
        "seconds_per_optimizer": seconds,
        "seconds_total": round(sum(seconds.values()), 3),
        "critical_points_u": {
            "shallow_min": points.shallow_min.tolist(), "boundary": points.boundary.tolist(),
            "deep_min": points.deep_min.tolist(), "barrier": points.barrier.tolist(),
            "curvature_shallow": points.curvature_shallow.tolist(),
            "curvature_boundary": points.curvature_boundary.tolist(),
        },
        "start_u": region.start.tolist(),
    }
    return pd.concat(frames, ignore_index=True), info


def run_valley_escape(config: EscapeConfig | None = None, **kwargs: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`run_escape` with ``experiment="valley"`` (default config if none given)."""
    config = (config or EscapeConfig()).replace(experiment="valley")
    return run_escape(config, **kwargs)


def run_saddle_escape(config: EscapeConfig | None = None, **kwargs: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`run_escape` with ``experiment="saddle"``."""
    config = (config or default_saddle_config()).replace(experiment="saddle")
    return run_escape(config, **kwargs)


def saddle_sharpness(count: int = 8, low: float = 0.25, high: float = 4.0) -> tuple[float, ...]:
    r"""Sharpness values for the saddle, geometric in :math:`k` (the negative curvature is :math:`k L_0''`)."""
    if count < 1:
        raise ValueError(f"Invalid number of sharpness values: {count} (must be >= 1)")
    return tuple(float(round(v, 10)) for v in np.geomspace(low, high, count))


def default_saddle_config(**changes: Any) -> EscapeConfig:
    """The saddle experiment's defaults: the valley's optimizers, a geometric grid k in [0.25, 4], budget 3000."""
    base = dict(experiment="saddle", sharpness=saddle_sharpness(), budget=3000)
    base.update(changes)
    return EscapeConfig(**base)


def calibration_report(frame: pd.DataFrame) -> pd.DataFrame:
    """Escape fraction and mean exposure per (optimizer, k): the calibration check."""
    grouped = frame.groupby(["optimizer", "k"], sort=False)
    return grouped.agg(escaped=("escaped", "mean"), mean_exposure=("exposure", "mean")).reset_index()
