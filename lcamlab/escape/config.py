r"""What the saddle experiment is: its configuration, sharpness grid and calibrated optimizers.

An :class:`EscapeConfig` holds everything a saddle result depends on (it is the cache
key of :mod:`lcamlab.escape.cache`); the optimizers are
:class:`lcamlab.experiments.OptimizerSpec` s built from the registry's presets
with the learning rates of :data:`SADDLE_LRS`. The valley experiment is the
sharp-valley design, :mod:`lcamlab.escape.design` (``lcamlab escape run``), with its
own configuration and learning rates.

**Calibration of the learning rates** (the rule of the Adai paper's Appendix E, on this landscape
with :math:`\sigma = 1`, batch size 1, dimension 10; set on the first, retired valley
experiment, which started in the shallow valley, and kept for the saddle so that its
cached result stays valid). In the rescaled coordinates :math:`u = \sqrt k\,\theta` SGD
is SGD on a :math:`k`-independent landscape with effective learning rate :math:`\eta k`,
at temperature :math:`T \approx \eta k D/2` (:math:`D` the per-sample gradient variance).
Following the Adai paper, every optimizer gets a learning rate that gives it about the
same temperature as SGD:

* SGD+momentum :math:`\beta`: :math:`\eta (1-\beta)` keeps the effective step
  :math:`\eta/(1-\beta)`; LCAM in both orientations runs at fixed momentum 0.9's
  rate, as in the LCAM paper's comparisons, and fixed momentum 0.925 (the mean of LCAM's two
  coefficients) at the same rate is the symmetric control;
* Adai: ten times momentum's rate (the Adai paper, Appendix E: Adai's :math:`m` is an average,
  not a sum, of gradients);
* Adam's step in :math:`u` is :math:`\eta_\text{Adam}\sqrt k\,\hat m/\sqrt{\hat v}`, so its
  temperature grows like :math:`\sqrt k` (the Adai paper, Proposition 2); its rate was chosen so
  that its mean escape time from the shallow valley was next to SGD's;
* AdaRem's factor :math:`a = 1 + b` correlates with the noise and raises the
  temperature a lot; its rate was chosen between one that escaped far faster than
  SGD and one that escaped far slower.

**Sharpness grid.** Geometric in :math:`k` (:func:`saddle_sharpness`): the negative
curvature at the saddle is :math:`k L_0''(u_\text{ridge})`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lcamlab.experiments.registry import OptimizerSpec, suite

__all__ = [
    "SADDLE_LRS",
    "MAX_COUNT",
    "default_optimizers",
    "EscapeConfig",
    "saddle_sharpness",
    "quick_config",
    "check_size",
    "landscape_bytes",
]

#: The largest count (trials, budget, steps) the escape commands accept: exposures are summed in
#: float64, which holds integers exactly up to 2**53 (and int64 step counters stay far from overflow).
MAX_COUNT = 2**53


def _machine_memory() -> float:
    """This machine's physical memory in bytes (``inf`` where the platform does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def _bytes_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"


def check_size(flag: str, value: Any, *, minimum: int = 1, bytes_each: float = 0.0, fixed: float = 0.0,
               what: str = "the run") -> int:
    """Refuse a count that the machine cannot hold, before anything is allocated; returns ``value``.

    ``value`` must be an integer in ``[minimum, MAX_COUNT]`` (:data:`MAX_COUNT`), and the memory
    estimate ``fixed + bytes_each * value`` at most this machine's physical memory. Raises
    ``ValueError`` with the number, the limit and the fix (one line at the command line).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Invalid {flag} {value!r}: must be an integer >= {minimum}")
    if value > MAX_COUNT:
        raise ValueError(f"Invalid {flag} {value}: above {MAX_COUNT} (2**53, the largest count float64 sums hold "
                         f"exactly); use a smaller {flag}")
    need = fixed + bytes_each * float(value)
    limit = _machine_memory()
    if need > limit:
        largest = int((limit - fixed) // bytes_each) if bytes_each else minimum - 1
        fix = (f"use {flag} {largest} or less" if largest >= minimum
               else "make the other sizes (trials, dimension, samples, warm-up) smaller")
        raise ValueError(f"Invalid {flag} {value}: {what} would need about {_bytes_text(need)} of memory, more than "
                         f"this machine's {_bytes_text(limit)}; {fix}")
    return int(value)


def landscape_bytes(dim: int, n_samples: int) -> float:
    """Memory of a landscape's training set with its moments: the float32 data, a float64 copy, and the
    three float64 powers with their centred copies of :func:`lcamlab.escape.fused.noise_moments`."""
    return float(dim) * float(n_samples) * (4 + 8 + 2 * 3 * 8)

#: The saddle experiment's learning rates, key -> lr (keys are :data:`lcamlab.experiments.PRESETS`,
#: in table order). SGD's eta = 2e-3 kept eta k L'' <= 0.17 over the retired valley grid (stable,
#: small steps); the others give about SGD's temperature (module docstring).
SADDLE_LRS: dict[str, float] = {
    "sgd": 2e-3,              # eta
    "momentum": 2e-4,         # eta / 10: effective step eta / (1 - 0.9) = eta
    "momentum-0.925": 2e-4,   # momentum 0.9's rate: the symmetric control of LCAM at the same lr
    "adam": 0.1,              # mean escape time from the shallow valley next to SGD's
    "adai": 2e-3,             # eta, ten times momentum's (the Adai paper, Appendix E)
    "adarem": 1.2e-3,         # 0.6 eta: eta escapes far faster than SGD, eta / 2 far slower
    "lcam-above": 2e-4,       # fixed momentum 0.9's rate, as in the LCAM paper's comparisons
    "lcam-below": 2e-4,
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def default_optimizers(keys: Sequence[str] | None = None,
                       lrs: Mapping[str, float] = SADDLE_LRS) -> tuple[OptimizerSpec, ...]:
    r"""The calibrated settings ``keys`` (default every key of ``lrs``, in its order) as registry specs.

    .. math:: \eta_\text{SGD} = \eta_\text{Adai} = \eta, \qquad
              \eta_\text{momentum} = \eta_\text{LCAM} = \eta/10

    Args:
        keys: :data:`SADDLE_LRS` keys (``"sgd"``, ``"momentum"``, ``"lcam-above"``, ...).
        lrs: the learning-rate table (default :data:`SADDLE_LRS`; pass a modified copy to
            override one rate).
    """
    return suite(tuple(lrs) if keys is None else tuple(keys), lrs)


def saddle_sharpness(count: int = 8, low: float = 0.25, high: float = 4.0) -> tuple[float, ...]:
    r"""Sharpness values for the saddle, geometric in :math:`k` (the negative curvature is :math:`k L_0''`)."""
    if count < 1:
        raise ValueError(f"Invalid number of sharpness values: {count} (must be >= 1)")
    return tuple(float(round(v, 10)) for v in np.geomspace(low, high, count))


@dataclass(frozen=True)
class EscapeConfig:
    r"""Everything that determines a saddle experiment's result (its cache key).

    Args:
        experiment: ``"saddle"`` (leave the index-1 saddle's neighbourhood, the Adai paper,
            Theorems 1-2), the only one; a field because it is part of the cache key and the
            table's name. The valley experiment is :mod:`lcamlab.escape.design`.
        sharpness: the :math:`k` values (each > 0).
        trials: trials per (optimizer, k).
        budget: iterations after which a trial is censored (>= 1).
        optimizers: the :class:`~lcamlab.experiments.OptimizerSpec` s to compare
            (each with its own key).
        dim: parameter dimension :math:`n` (the Adai paper: 10).
        n_samples: training-set size (the Adai paper: 50 000).
        noise_scale: data standard deviation :math:`\sigma` (> 0).
        batch_size: mini-batch size.
        criterion: ``"any"``, the only value: a trial has left once a watched coordinate is
            outside (the saddle watches coordinate 0 only). A field because it is part of the
            cache key.
        radius: saddle neighbourhood half-width in :math:`u = \sqrt k\,\theta` units.
        lcam_mean: LCAM's running mean, ``"epoch"`` (the LCAM paper) or ``"ema"`` (a build
            override of the LCAM specs).
        epoch_length: iterations per epoch (``new_epoch()``); ``None`` = one pass
            over the training set, ``n_samples // batch_size``.
        seed: seed of the training set and of the mini-batch stream.
        dtype: ``"float32"`` (fast) or ``"float64"``.
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
        chunk: iterations per block of pre-drawn mini-batch indices (and per
            escape check on the host); part of the random stream, so of the key.
        warmup: iterations that warm the optimizer's state up at the start point
            before the clock starts (parameters put back after every step); 0 is
            the Adai paper's cold start. Default 1000, about Adam's second-moment memory
            :math:`1/(1-\beta_2)`.
    """

    experiment: str = "saddle"
    sharpness: tuple[float, ...] = field(default_factory=saddle_sharpness)
    trials: int = 100
    budget: int = 3000  # every saddle trial leaves within it over the default grid
    optimizers: tuple[OptimizerSpec, ...] = field(default_factory=default_optimizers)
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
        if self.experiment == "valley":
            raise ValueError("Invalid experiment: 'valley' (the valley experiment is the sharp-valley design: "
                             "`lcamlab escape run`, lcamlab.escape.design)")
        if self.experiment != "saddle":
            raise ValueError(f"Invalid experiment: {self.experiment!r} (the only one is 'saddle')")
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
                "use a noise scale > 0 (the Adai paper uses standard Gaussian data, 1.0)"
            )
        if self.criterion != "any":
            raise ValueError(f"Invalid criterion: {self.criterion!r} (the only one is 'any': a trial has left once "
                             f"its watched coordinate is outside)")
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
        for spec in self.optimizers:
            if not isinstance(spec, OptimizerSpec):
                raise ValueError(f"Invalid optimizer setting: {spec!r} (expected an OptimizerSpec, "
                                 f"e.g. lcamlab.experiments.preset('momentum', 2e-4))")
        keys = self.keys
        if len(set(keys)) != len(keys):
            raise ValueError(f"Invalid optimizers: repeated keys in {list(keys)} (each setting needs its own key)")

    # -- derived settings ------------------------------------------------------------

    @property
    def keys(self) -> tuple[str, ...]:
        """The optimizers' keys (the ``optimizer`` column of the result table)."""
        return tuple(spec.style_key for spec in self.optimizers)

    def simulation_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~lcamlab.escape.simulate.simulate_batched` / ``simulate_looped``."""
        return dict(budget=self.budget, batch_size=self.batch_size, seed=self.seed,
                    epoch_length=self.resolved_epoch_length(), lcam_mean=self.lcam_mean, chunk=self.chunk,
                    warmup=self.warmup)

    def memory_per_trial(self) -> float:
        """Bytes the eager runner and the result table hold per trial of one sharpness value (an estimate):
        parameters and optimizer state, a block of "outside" values and of drawn indices, the table rows
        (the warm-up's index block, ``warmup * batch_size * 8`` more, is bounded on its own)."""
        item = 4 if self.dtype == "float32" else 8
        block = min(self.chunk, self.budget)
        return float(6 * self.dim * item + block * self.dim * item + block * self.batch_size * 8
                     + 9 * 8 * len(self.optimizers))

    def resolved_epoch_length(self) -> int:
        return self.epoch_length if self.epoch_length is not None else max(1, self.n_samples // self.batch_size)

    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def replace(self, **changes: Any) -> "EscapeConfig":
        return dataclasses.replace(self, **changes)

    def spec(self, key: str) -> OptimizerSpec:
        """The optimizer with key ``key``."""
        for spec in self.optimizers:
            if spec.style_key == key:
                return spec
        raise ValueError(f"Unknown optimizer key: {key!r} (this config has {list(self.keys)})")

    # -- serialisation ---------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        """JSON-able description (the cache key); :meth:`from_config` inverts it."""
        description = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        description["sharpness"] = list(self.sharpness)
        description["optimizers"] = [spec.to_config() for spec in self.optimizers]
        return description

    @classmethod
    def from_config(cls, description: Mapping[str, Any]) -> "EscapeConfig":
        """The config described by :meth:`to_config`'s dict (e.g. a result's sidecar ``config``)."""
        raw = dict(description or {})
        if not raw:
            raise ValueError("Invalid escape result: its JSON sidecar has no 'config' (not written by lcamlab escape?)")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ValueError(f"Invalid escape config: unknown field(s) {unknown} (written by another lcamlab version?)")
        raw["optimizers"] = tuple(OptimizerSpec.from_config(item) for item in raw.get("optimizers", ()))
        raw["sharpness"] = tuple(raw.get("sharpness", ()))
        return cls(**raw)


def quick_config(**changes: Any) -> EscapeConfig:
    """A small saddle configuration for smoke tests and ``--quick``: 4 sharpness values, 24 trials, budget 600."""
    base = dict(sharpness=saddle_sharpness(4), trials=24, budget=600, warmup=200)
    base.update(changes)
    return EscapeConfig(**base)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and not isinstance(value, complex)


def _check_int(name: str, value: Any, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        extra = f"; {hint}" if hint else ""
        raise ValueError(f"Invalid {name}: {value!r} (must be an integer >= {minimum}{extra})")
