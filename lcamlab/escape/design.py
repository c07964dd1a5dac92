r"""Escape v2: the sharp-valley experiment that tests the diffusion theory, run checkpointed on the numba escape loop.

**The question.** In :math:`u = \sqrt k\,\theta` the dynamics of SGD, momentum, Adai,
AdaRem and LCAM depend on :math:`k` only through the effective step
:math:`s = \eta k` (Adam's through :math:`\eta\sqrt k`), so "log rate linear in
:math:`1/k` or in :math:`1/\sqrt k`" is settled by algebra. What the experiment can test
is the diffusion theory itself: Kramers' law in the effective step,
:math:`\log\Gamma = a + p\log s - C/s`. In :math:`k`,

.. math:: \log\Gamma(k) = a + p\log k - c\,k^{-\alpha},

with :math:`\alpha = 1` for the SGD-like optimizers and :math:`\alpha = 1/2` for Adam if
escape is diffusive (a temperature proportional to the step); single-sample jumps
from the valley bottom predict :math:`\alpha \approx 2/3` (a kick of size
:math:`s\,|x|^3` must cover the valley: :math:`\log\Gamma \sim -(1/s)^{2/3}`).
:func:`lcamlab.experiments.stats.kramers_fit` fits :math:`(a, p, c, \alpha)` by maximum
likelihood on the censored escape times (Poisson likelihood of the escapes given
the exposure) with a profile-likelihood interval for :math:`\alpha`.

**Design** (:class:`DesignConfig`):

* start at the bottom of the *sharp* valley (the global minimum of the training
  loss, the Adai paper, Appendix E: "from Sharp Valley a1 to Flat Valley a2"; with
  :math:`\sigma = 1` data it sits near :math:`u = -2.35`, curvature 23.2, barrier 18.6
  per coordinate); a trial escapes when any coordinate crosses its ridge;
* noise arms: ``data`` (batch 1 from the training set, as the Adai paper) and ``gauss`` (the
  same state-dependent variance and mean gradient, Gaussian; the diffusion
  theory's assumption); LCAM and its controls run in the data arm (they need a
  mini-batch loss);
* learning rates (:data:`DESIGN_LRS`) follow the Adai paper's rule (the same temperature:
  :math:`\eta_\text{momentum} = \eta/10`, Adai :math:`\eta`, LCAM :math:`\eta(1 - 0.925)`
  at its mean momentum, Adam from :math:`\eta\sqrt k\,\sqrt D`); then each
  (optimizer, arm) gets its **own k grid**, found by :func:`calibrate`: 12 values,
  geometric from the k whose mean escape time is about ``slow`` (1e5 iterations)
  to the k whose mean escape time is about ``fast`` (30 iterations). Pilot runs
  showed that the naive Kramers exponent :math:`2\Delta L/(sD)` is far off in the
  data arm (at :math:`s = 0.0045` SGD's mean escape time is 1.7e6 iterations where
  the naive exponent 11 predicts about 1e5), so the grid is set by measured
  escape times, not by a formula;
* per-k budgets: 5 times the calibrated mean escape time at that k (at least 200);
  escaped trials drop out, so the work is about trials x mean time per k;
* trials per k: ``trials`` (default 6400).

**Power** (:func:`alpha_standard_error`, the Fisher information of the four-parameter
Poisson model, :math:`\mathcal I = \sum_k d_k\,x_k x_k^\top`,
:math:`x_k = (1, \log k, -k^{-\alpha}, c\,k^{-\alpha}\log k)`, with :math:`d_k` the expected
escapes). For 12 k values geometric over a ratio of 4 and an exponent
:math:`c\,k^{-\alpha}` from 12 down to 3 (:math:`\alpha = 1`), the standard error of
:math:`\alpha` is 0.206 at 500 trials per k, 0.145 at 1000, 0.115 at 1600, 0.081 at
3200 and 0.057 at 6400 (at 98% escapes per point); for Adam (:math:`\alpha = 1/2`, k
ratio 16, exponent 11 down to 2.75) 0.112, 0.079, 0.063, 0.044 and 0.031. The
standard error falls with the exponent's span, so the narrower measured spans of
the calibrated grids give larger errors; the run reports the achieved error of
every fit (the profile interval's half width).

**The run in the committed cache** (``data/escape/valley_v2_*.csv``; ``lcamlab escape run``):
7 optimizers, LCAM's two orientations with their shuffled and matched controls, arms data and gauss
(LCAM and its controls data only): 16 (optimizer, arm) settings x 12 k x 6400 trials, 7.1e9
trial-steps in 84 s of simulation on the 2-core machine (the C++ kernel the numba loop replaced, 2
threads, 2026-11-30; 2 min 45 s of wall time with the isotropic null and the calibrations; a common budget, the largest per-k budget for
every k, would have been 2.5e11 trial-steps). Measured k ratios: 1.95-4.8 for the SGD-like
optimizers, 14.6 (gauss) and 18.2 (data) for Adam. Achieved standard errors of :math:`\hat\alpha`
(half the profile interval over 1.96): SGD gauss 0.27; Adam 0.03 (data), 0.02 (gauss); momentum
0.05 / 0.07; LCAM 0.05-0.06 and their controls 0.05-0.06; Adai gauss 0.09; AdaRem 0.10 / 0.16; for
SGD data and Adai data the Kramers form itself is rejected (deviance p < 1e-30), so their alpha has
no meaning. Adam's data-arm :math:`\hat\alpha` depends on the calibrated k window by more than its
interval: 0.54 [0.48, 0.59] on k in [2.4, 35.5] (the version-1 calibration), 0.64 [0.59, 0.70] on
[3.1, 55.5] (this one).

**Checkpoints.** :func:`run_design` runs one unit per (optimizer, arm, k) and writes
it to ``<run folder>/<optimizer>__<arm>__k<index>.npz`` as soon as it is done, with a
sidecar ``.json`` holding its SHA-256 and identity (the design's key, the point, the trial
count), verified on every read as the table cache verifies its entries
(:mod:`lcamlab.experiments.cache`): a damaged, foreign or inconsistent unit is moved aside
(``.damaged-<time>``) with one line and recomputed. Writes are atomic with unique temporary
names, so two runs on one folder both finish. A rerun skips finished units. Every unit is a pure function of the design
(the Philox stream is keyed by the seed and the trial's id), so an interrupted
run resumes to identical results. The calibration is a checkpoint too
(``calibration.json``). Progress lines give the work done and an ETA from the
calibrated expected work.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lcamlab import provenance
from lcamlab.escape.fused import FusedResult, default_threads, simulate_fused
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.regions import ExitRegion
from lcamlab.escape.simulate import cpu_threads
from lcamlab.experiments.controls import SCHEDULED_CONTROLS
from lcamlab.experiments.registry import OptimizerSpec, preset, split_key

__all__ = ["DESIGN_LRS", "DATA_ONLY", "DesignConfig", "sharp_valley_region", "make_design_landscape",
           "calibrate", "run_design", "unit_path", "unit_count", "design_key", "alpha_standard_error", "design_units", "load_units",
           "run_folder", "escape_trace", "load_or_run_design", "quick_design", "null_design", "sample_escape_times",
           "VERSION"]

#: Learning rates of the v2 design (the Adai paper's same-temperature rule around SGD's eta = 0.005).
DESIGN_LRS: dict[str, float] = {
    "sgd": 5e-3,
    "momentum": 5e-4,       # eta (1 - 0.9)
    "adam": 0.105,          # 2 dL / (E sqrt(D)) at the sharp valley bottom for an exponent about 11 at k = 1
    "adai": 5e-3,           # eta, ten times momentum's (the Adai paper, Appendix E)
    "adarem": 3e-3,         # 0.6 eta, as the v1 calibration
    "lcam-above": 3.75e-4,  # eta (1 - 0.925), LCAM's mean momentum
    "lcam-below": 3.75e-4,
}

#: Settings that run in the data arm only (they need a mini-batch loss).
DATA_ONLY = ("lcam-above", "lcam-below")


@dataclass(frozen=True)
class DesignConfig:
    """Everything the v2 result depends on (its cache key)."""

    # run order, in the cache key (to_config lists it): not tuple(DESIGN_LRS), whose order differs
    optimizers: tuple[str, ...] = ("sgd", "adam", "momentum", "lcam-above", "lcam-below", "adai", "adarem")
    arms: tuple[str, ...] = ("data", "gauss")
    lrs: tuple[tuple[str, float], ...] = tuple(DESIGN_LRS.items())
    controls: bool = True
    points: int = 12
    trials: int = 6400
    slow: float = 1e5
    fast: float = 30.0
    budget_factor: float = 5.0
    calibration_trials: int = 48
    warmup: int = 1000
    dim: int = 10
    n_samples: int = 50_000
    noise_scale: float = 1.0
    seed: int = 0
    dtype: str = "float32"
    window: int = 20
    kick_threshold: float = 6.0

    def lr(self, key: str) -> float:
        return dict(self.lrs)[key]

    def spec(self, key: str) -> OptimizerSpec:
        return _preset(key, self.lr(key))

    def combos(self) -> list[tuple[str, str]]:
        """(optimizer, arm) pairs in run order: the arms of each optimizer together."""
        return [(key, arm) for key in self.optimizers for arm in self.arms
                if not (key in DATA_ONLY and arm != "data")]

    def to_config(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lrs"] = dict(self.lrs)
        out["optimizers"] = list(self.optimizers)
        out["arms"] = list(self.arms)
        return out

    def replace(self, **changes: Any) -> "DesignConfig":
        return dataclasses.replace(self, **changes)


@functools.lru_cache(maxsize=64)
def _preset(key: str, lr: float) -> OptimizerSpec:
    return preset(key, lr)


@functools.lru_cache(maxsize=4)
def make_design_landscape(config: DesignConfig) -> StyblinskiTangLandscape:
    """The design's training loss (cached: one per configuration; the landscape is never modified)."""
    return StyblinskiTangLandscape(config.dim, config.n_samples, config.noise_scale, seed=config.seed,
                                   dtype=torch.float32 if config.dtype == "float32" else torch.float64)


def sharp_valley_region(landscape: StyblinskiTangLandscape) -> ExitRegion:
    """Start at the sharp (global) minimum of every coordinate; outside once past the ridge toward the flat valley."""
    points = landscape.points
    return ExitRegion("halfspace", points.deep_min.copy(), points.boundary.copy(), -points.direction.copy())


def sample_escape_times(optimizer: str = "sgd", k: float = 2.0, lr: float | None = None, *, arm: str = "data",
                        trials: int = 400, budget: int = 3000, warmup: int | None = None,
                        config: DesignConfig | None = None, first_trial: int = 2_000_000_000) -> FusedResult:
    """Escape times of ``trials`` fresh trials of one optimizer at one sharpness and learning rate.

    The design's landscape, start (the sharp valley's bottom), warm-up and random stream, with
    trial ids from ``first_trial`` on (not the design's trials). What the notebook's sliders show
    and its scaling exercise measures; ``lr`` defaults to the design's rate for ``optimizer``.
    """
    config = config or DesignConfig()
    if trials < 1 or budget < 1:
        raise ValueError(f"Invalid sample: trials={trials!r}, budget={budget!r} (both must be >= 1)")
    if not k > 0:
        raise ValueError(f"Invalid sharpness: k={k!r} (must be > 0)")
    lr = config.lr(optimizer) if lr is None else float(lr)
    landscape = make_design_landscape(config)
    region = sharp_valley_region(landscape)
    ids = first_trial + np.arange(trials, dtype=np.int64)
    return simulate_fused(landscape, _preset(optimizer, lr), np.full(trials, math.sqrt(k)), region, budget=budget,
                          arm=arm, seed=config.seed, warmup=config.warmup if warmup is None else warmup, chunk=512,
                          trial_ids=ids)


def alpha_standard_error(trials: int, ks: np.ndarray, c: float, alpha: float, escaped_fraction: float = 0.98) -> float:
    r"""Standard error of :math:`\hat\alpha` from the Fisher information of the four-parameter Poisson model."""
    k = np.asarray(ks, dtype=float)
    x = np.stack([np.ones_like(k), np.log(k), -k ** -alpha, c * k ** -alpha * np.log(k)], 1)
    info = (trials * escaped_fraction * x).T @ x
    return float(math.sqrt(np.linalg.inv(info)[3, 3]))


# --------------------------------------------------------------------------------------
# Calibration: each (optimizer, arm) gets the k range its escape times call for
# --------------------------------------------------------------------------------------


def _mean_time(landscape, region, spec, k, arm, config: DesignConfig, budget: int, ident: int) -> tuple[float, int]:
    n = config.calibration_trials
    ids = 900_000_000 + ident * 1000 + np.arange(n)  # calibration trials are not reused in the main run
    result = simulate_fused(landscape, spec, np.full(n, math.sqrt(k)), region, budget=budget, arm=arm,
                            seed=config.seed, warmup=config.warmup, chunk=2048, trial_ids=ids)
    escapes = int(result.escaped.sum())
    return (result.exposure.sum() / escapes if escapes else math.inf), result.trial_steps


def calibrate(config: DesignConfig, key: str, arm: str, landscape, region,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The k grid of ``(key, arm)``: geometric from mean escape time ``slow`` down to ``fast``; with probes."""
    spec = config.spec(key)
    probes: list[tuple[float, float]] = []
    budget = int(4 * config.slow)
    counter = [0]

    def probe(k: float) -> float:
        counter[0] += 1
        # a stable id (Python's hash() of strings changes with every process)
        ident = zlib.crc32(f"{key}/{arm}/{counter[0]}".encode()) % 100000
        mean, _ = _mean_time(landscape, region, spec, k, arm, config, budget, ident)
        probes.append((k, mean))
        return mean

    factor = 1.25
    k = 1.0
    m = probe(k)
    if m > config.slow:
        while m > config.slow and k < 1e4:
            k *= factor
            m = probe(k)
    else:
        while m <= config.slow and k > 1e-4:
            k /= factor
            m = probe(k)
        k *= factor  # the last k with mean <= slow
    k_min = k
    k_hi = k_min
    m = dict(probes).get(k_hi, probe(k_hi))
    while m > config.fast and k_hi < 1e5:
        k_hi *= factor
        m = probe(k_hi)
    k_max = k_hi
    if log is not None:
        log(f"calibrated {key}/{arm}: k in [{k_min:.4g}, {k_max:.4g}] (ratio {k_max / k_min:.2f}) from "
            f"{len(probes)} probes")
    return {"k_min": k_min, "k_max": k_max, "probes": sorted(probes)}


def _expected_mean(probes: list[tuple[float, float]], k: float) -> float:
    """Mean escape time at k, log-log interpolated between finite probes."""
    finite = [(a, b) for a, b in probes if math.isfinite(b) and b > 0]
    ks = np.log([a for a, _ in finite])
    ms = np.log([b for _, b in finite])
    order = np.argsort(ks)
    return float(np.exp(np.interp(math.log(k), ks[order], ms[order])))


def design_units(config: DesignConfig, calibration: dict[str, Any]) -> list[dict[str, Any]]:
    """Every unit (optimizer or control, arm, k index, k, budget, expected work) in run order."""
    units = []
    for key, arm in config.combos():
        cal = calibration[f"{key}/{arm}"]
        ks = np.geomspace(cal["k_min"], cal["k_max"], config.points)
        settings = [key] + ([f"{key}:{c}" for c in SCHEDULED_CONTROLS] if key in DATA_ONLY and config.controls else [])
        for i, k in enumerate(ks):
            mean = _expected_mean(cal["probes"], float(k))
            budget = int(max(200, config.budget_factor * mean))
            for setting in settings:
                units.append({"optimizer": setting, "arm": arm, "k_index": i, "k": float(k), "budget": budget,
                              "expected_work": config.trials * min(mean, budget) + config.trials * config.warmup})
    return units


def unit_count(config: DesignConfig) -> int:
    """How many units :func:`design_units` gives (known before the calibration)."""
    return config.points * sum(1 + (len(SCHEDULED_CONTROLS) if key in DATA_ONLY and config.controls else 0)
                               for key, _ in config.combos())


def unit_path(folder: Path, unit: dict[str, Any]) -> Path:
    name = unit["optimizer"].replace(":", "--")
    return folder / f"{name}__{unit['arm']}__k{unit['k_index']:02d}.npz"


#: Layout of a unit checkpoint's sidecar (its ``unit`` record); bump when it changes.
UNIT_FORMAT = 1
#: The per-trial arrays of a unit checkpoint (``trials`` values each) and its scalars.
_TRIAL_ARRAYS = ("escape_step", "escaped", "budget", "kick_at_escape", "kick_lag", "kick_count", "momentum_mean",
                 "below_fraction", "diverged")
_SCALARS = ("trial_steps", "seconds", "k")
#: Each array's kind of number (numpy's ``dtype.kind``: integer, boolean, floating point).
_KINDS = {"escape_step": "i", "escaped": "b", "budget": "i", "kick_at_escape": "f", "kick_lag": "i",
          "kick_count": "f", "momentum_mean": "f", "below_fraction": "f", "diverged": "b", "trial_steps": "i",
          "seconds": "f", "k": "f"}


def design_key(config: DesignConfig) -> str:
    """The design's identity: :func:`~lcamlab.experiments.cache.config_hash` of its version and configuration."""
    from lcamlab.experiments.cache import config_hash

    return config_hash({"version": VERSION, "config": config.to_config()})


def _unit_identity(config: DesignConfig, unit: dict[str, Any]) -> dict[str, Any]:
    """What a unit checkpoint belongs to: the design, the point (setting, arm, k index, k, budget), the trials."""
    return {"format": UNIT_FORMAT, "design": design_key(config), "optimizer": unit["optimizer"], "arm": unit["arm"],
            "k_index": unit["k_index"], "k": unit["k"], "budget": unit["budget"], "trials": config.trials}


def _save_unit(path: Path, identity: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write a unit checkpoint as the table cache writes an entry: the sidecar (identity, SHA-256), then the .npz.

    Both atomically (a unique temporary file beside the target, then a rename), so two runs on one
    folder never collide and a killed or full-disk write leaves the previous file or none.
    """
    from lcamlab.experiments.cache import sha256

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    provenance.atomic_write_json(path.with_suffix(".json"), {"unit": {**identity, "sha256": sha256(data)}})
    provenance.atomic_write_bytes(path, data)


def _read_unit(path: Path, identity: dict[str, Any]) -> dict[str, np.ndarray]:
    """The verified arrays of a unit checkpoint; :class:`~lcamlab.experiments.cache.CacheError` naming the file.

    Verified like a cached table: the sidecar must record this unit's identity (the design's key, the
    point, the trial count), the .npz's bytes its SHA-256, and the arrays their lengths. Loaded with
    ``allow_pickle=False`` (a checkpoint holds numbers only).
    """
    from lcamlab.experiments.cache import CacheError, read_sidecar, sha256

    sidecar = path.with_suffix(".json")
    stored = read_sidecar(path, "unit checkpoint", "its checksum and design")
    record = stored.get("unit") if isinstance(stored, dict) else None
    if not isinstance(record, dict) or {k: record.get(k) for k in identity} != identity:
        raise CacheError(f"unit checkpoint {path} belongs to another design or point (its sidecar {sidecar.name} "
                         f"does not match this run)")
    data = path.read_bytes()
    if sha256(data) != record.get("sha256"):
        raise CacheError(f"unit checkpoint {path} does not match the SHA-256 in {sidecar.name} (edited or cut short)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _TRIAL_ARRAYS + _SCALARS}
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise CacheError(f"unit checkpoint {path} is not a readable .npz of a unit ({type(error).__name__})") from None
    lengths = {name: arrays[name].shape for name in _TRIAL_ARRAYS}
    if any(shape != (identity["trials"],) for shape in lengths.values()):
        raise CacheError(f"unit checkpoint {path} does not hold {identity['trials']} trials per array ({lengths})")
    # a matching checksum proves only that the sidecar was written for these bytes: the values must still be
    # what a unit holds (a forged pair, or one written by another version)
    wrong = [name for name, kind in _KINDS.items() if arrays[name].dtype.kind != kind
             or (name in _SCALARS and arrays[name].shape != ())]
    if wrong:
        raise CacheError(f"unit checkpoint {path} holds arrays of the wrong type or shape ({', '.join(wrong)})")
    if float(arrays["k"]) != identity["k"] or (arrays["escaped"] & arrays["diverged"]).any():
        raise CacheError(f"unit checkpoint {path} contradicts itself (its k, or a trial both escaped and diverged)")
    return arrays


def _verified_unit(config: DesignConfig, unit: dict[str, Any], folder: Path,
                   log: Callable[[str], None] | None) -> dict[str, np.ndarray] | None:
    """A finished unit's verified arrays; ``None`` if it is missing, or damaged (then moved aside, one line)."""
    from lcamlab.experiments.cache import CacheError, set_aside

    path = unit_path(folder, unit)
    if not path.exists():
        return None
    try:
        if not path.is_file():
            raise CacheError(f"unit checkpoint {path} is a folder, not a file")
        return _read_unit(path, _unit_identity(config, unit))
    except CacheError as error:
        set_aside(path, error, log)
        return None


def _run_unit(config: DesignConfig, unit: dict[str, Any], landscape, region,
              base_arrays: dict[str, np.ndarray] | None) -> FusedResult:
    """Simulate one unit; a control reads its LCAM unit's realised momentum from ``base_arrays``."""
    n = config.trials
    ids = unit["k_index"] * 1_000_000 + np.arange(n)
    base, control = split_key(unit["optimizer"])
    kwargs: dict[str, Any] = {}
    if control:
        pair = config.spec(base).momentum
        if control == "shuffled":
            # SGD whose momentum is drawn per trial and step: below with LCAM's realised fraction
            spec = OptimizerSpec("sgd", config.lr(base), (("momentum", 0.925),))
            kwargs = {"below_probability": base_arrays["below_fraction"], "pair": pair}
        else:
            spec = OptimizerSpec("sgd", config.lr(base), (("momentum", 0.925),))
            kwargs = {"momentum": base_arrays["momentum_mean"]}
    else:
        spec = config.spec(unit["optimizer"])
    return simulate_fused(landscape, spec, np.full(n, math.sqrt(unit["k"])), region, budget=unit["budget"],
                          arm=unit["arm"], seed=config.seed, warmup=config.warmup, chunk=2048, trial_ids=ids,
                          diagnostics=True, window=config.window, kick_threshold=config.kick_threshold, **kwargs)


def run_design(config: DesignConfig, folder: str | os.PathLike, *, log: Callable[[str], None] | None = print,
               max_units: int | None = None) -> pd.DataFrame:
    """Run (or resume) every unit of ``config`` into ``folder``; returns the per-unit summary of what is done.

    ``max_units``: stop after running so many new units (for tests of the resume).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # torch's own work here is small bookkeeping (the escape loop has its own threads); one torch
    # thread, and the process-wide count is put back afterwards
    with cpu_threads(torch.device("cpu"), 1):
        return _run_design(config, folder, log=log, max_units=max_units)


def _read_json(path: Path, check: Callable[[Any], bool], log: Callable[[str], None] | None) -> Any:
    """A derived JSON file of the run folder, or ``None`` if missing or unreadable (then moved aside, one line)."""
    from lcamlab.experiments.cache import CacheError, set_aside

    if not path.exists():
        return None
    if not path.is_file():
        set_aside(path, CacheError(f"{path} is a folder, not a file"), log)
        return None
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        set_aside(path, CacheError(f"{path} is not readable JSON ({type(error).__name__}: {error})"), log)
        return None
    if not check(value):
        set_aside(path, CacheError(f"{path} does not hold what this run writes there"), log)
        return None
    return value


def _is_calibration(value: Any) -> bool:
    """Whether ``value`` is what :func:`calibrate` writes per setting: ``0 < k_min <= k_max`` (finite) and probes
    ``[k, mean escape time]`` with ``k`` finite and positive, the mean positive (``inf``: no escape)."""

    def positive(x: Any, finite: bool = True) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 and (math.isfinite(x) or not finite)

    def probes(items: Any) -> bool:
        return isinstance(items, list) and len(items) > 0 and all(
            isinstance(p, list) and len(p) == 2 and positive(p[0]) and positive(p[1], finite=False) for p in items)

    return isinstance(value, dict) and all(
        isinstance(cal, dict) and positive(cal.get("k_min")) and positive(cal.get("k_max"))
        and cal["k_min"] <= cal["k_max"] and probes(cal.get("probes")) for cal in value.values())


def _run_design(config: DesignConfig, folder: Path, *, log: Callable[[str], None] | None,
                max_units: int | None) -> pd.DataFrame:
    # design.json and calibration.json are derived caches (the folder's name is the design's hash, and the
    # calibration a pure function of the design): damaged, they are moved aside and written anew
    meta_path = folder / "design.json"
    stored = _read_json(meta_path, lambda value: isinstance(value, dict), log)
    if stored is None:
        provenance.atomic_write_text(meta_path, json.dumps(config.to_config(), indent=1, sort_keys=True))
    elif stored != config.to_config():
        raise ValueError(f"{folder} holds another design (design.json differs); use a new folder")
    landscape = make_design_landscape(config)
    region = sharp_valley_region(landscape)
    cal_path = folder / "calibration.json"
    calibration = _read_json(cal_path, _is_calibration, log) or {}
    started = time.perf_counter()
    for key, arm in config.combos():
        if f"{key}/{arm}" not in calibration:
            calibration[f"{key}/{arm}"] = calibrate(config, key, arm, landscape, region, log)
            provenance.atomic_write_text(cal_path, json.dumps(calibration, indent=1))
    units = design_units(config, calibration)
    done = [_verified_unit(config, unit, folder, log) for unit in units]
    total = sum(u["expected_work"] for u in units)
    done_work = sum(u["expected_work"] for u, arrays in zip(units, done) if arrays is not None)
    ran = 0
    run_work = 0.0
    base_of: dict[tuple, dict[str, np.ndarray]] = {}  # the LCAM units' arrays, which their controls read
    for index, unit in enumerate(units):
        point = (unit["arm"], unit["k_index"])
        if done[index] is None:
            if max_units is not None and ran >= max_units:
                break
            result = _run_unit(config, unit, landscape, region, base_of.get((split_key(unit["optimizer"])[0], *point)))
            arrays = dict(escape_step=result.escape_step, escaped=result.escaped, budget=result.budget,
                          kick_at_escape=result.kick_at_escape, kick_lag=result.kick_lag,
                          kick_count=result.kick_count, momentum_mean=result.momentum_mean,
                          below_fraction=result.below_fraction, diverged=result.diverged,
                          trial_steps=np.int64(result.trial_steps), seconds=np.float64(result.seconds),
                          k=np.float64(unit["k"]))
            _save_unit(unit_path(folder, unit), _unit_identity(config, unit), arrays)
            done[index] = arrays
            ran += 1
            run_work += unit["expected_work"]
            done_work += unit["expected_work"]
            elapsed = time.perf_counter() - started
            rate = run_work / elapsed if elapsed > 0 else float("nan")
            eta = (total - done_work) / rate if rate > 0 else float("nan")
            if log is not None:
                diverged = int(result.diverged.sum())
                log(f"[{done_work / total:6.1%}] {unit['optimizer']}/{unit['arm']} k={unit['k']:.4g} "
                    f"escaped {result.escaped.mean():.3f}" + (f", {diverged} diverged" if diverged else "")
                    + f" in {result.seconds:.1f} s "
                    f"({result.trial_steps / max(result.seconds, 1e-9):.2e} trial-steps/s); ETA {eta / 60:.1f} min")
        base_of[(unit["optimizer"], *point)] = done[index]
    return _units_frame(units, done)


def _units_frame(units: list[dict[str, Any]], arrays: list[dict[str, np.ndarray] | None]) -> pd.DataFrame:
    """One row per trial of every finished unit (``arrays[i]`` is unit ``i``'s, ``None`` if not finished)."""
    frames = []
    for unit, z in zip(units, arrays):
        if z is None:
            continue
        n = len(z["escape_step"])
        frames.append(pd.DataFrame({
            "optimizer": unit["optimizer"], "arm": unit["arm"], "k_index": unit["k_index"], "k": unit["k"],
            "trial": np.arange(n), "budget": z["budget"], "escape_step": z["escape_step"], "escaped": z["escaped"],
            "diverged": z["diverged"], "kick_at_escape": z["kick_at_escape"], "kick_lag": z["kick_lag"],
            "kick_count": z["kick_count"], "momentum_mean": z["momentum_mean"], "below_fraction": z["below_fraction"],
            "trial_steps": int(z["trial_steps"]), "seconds": float(z["seconds"]),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_units(config: DesignConfig, folder: str | os.PathLike, calibration: dict | None = None, *,
               log: Callable[[str], None] | None = print) -> pd.DataFrame:
    """One row per trial of every finished, verified unit (optimizer, arm, k, trial, escape step, diagnostics).

    A damaged unit is moved aside with one line (``log``) and left out: the next run recomputes it.
    """
    folder = Path(folder)
    if calibration is None:
        calibration = _read_json(folder / "calibration.json", _is_calibration, log)
        if calibration is None:
            raise ValueError(f"{folder} has no readable calibration.json: run the design "
                             f"(`lcamlab escape run`, or run_design) to (re)compute it")
    units = design_units(config, calibration)
    return _units_frame(units, [_verified_unit(config, unit, folder, log) for unit in units])


# --------------------------------------------------------------------------------------
# The cached result: the per-point table of a finished design, with a jump-driven escape's trace
# --------------------------------------------------------------------------------------

#: Definition version of the v2 table (part of the cache key and of the checkpoint folder's name).
#: 2: the calibration probes' trial ids come from ``zlib.crc32`` (stable across processes); the
#: version-1 tables were calibrated with ids from Python's per-process ``hash()``, so their k grids
#: and budgets cannot be reproduced, and their checkpoints must not be resumed.
VERSION = 2


def run_folder(config: DesignConfig, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/escape/v2_<hash>/``: the checkpoints of ``config`` (ignored by git; the cache is committed)."""
    from lcamlab.escape.cache import escape_dir

    return escape_dir(data_dir) / f"v2_{design_key(config)}"


def escape_trace(config: DesignConfig, frame: pd.DataFrame, *, optimizer: str = "sgd", k_index: int | None = None,
                 before: int = 40, after: int = 3) -> dict[str, Any]:
    """The last ``before`` steps of one jump-driven SGD escape (data arm): u of the escaping coordinate and the kicks.

    Re-simulates the trial from its stream (SGD has no optimizer state, so its position is the whole state).
    """
    landscape = make_design_landscape(config)
    region = sharp_valley_region(landscape)
    rows = frame[(frame["optimizer"] == optimizer) & (frame["arm"] == "data") & frame["escaped"]]
    if k_index is None:
        k_index = int(rows["k_index"].median())
    rows = rows[(rows["k_index"] == k_index) & (rows["escape_step"] > before + 5)]
    chosen = rows.sort_values("kick_at_escape", ascending=False).iloc[len(rows) // 4]  # a typical large kick
    k, step, trial = float(chosen["k"]), int(chosen["escape_step"]), int(chosen["trial"])
    spec = config.spec(optimizer)
    root = math.sqrt(k)
    ident = np.array([k_index * 1_000_000 + trial])
    start = simulate_fused(landscape, spec, np.array([root]), region, budget=step - before - 1, drop=False,
                           seed=config.seed, warmup=config.warmup, trial_ids=ident)
    theta = start.final_theta[0]
    from lcamlab.escape.fused import gradient_noise

    us, kicks = [theta * root], []
    for t in range(step - before - 1, step + after - 1):
        moved = simulate_fused(landscape, spec, np.array([root]), dataclasses.replace(region, start=theta * root),
                               budget=t + 1, drop=False, seed=config.seed, trial_ids=ident, start_step=t)
        new = moved.final_theta[0]
        u = theta * root
        mu, var = gradient_noise(landscape, u)
        fprime = (theta - new) / spec.lr / root
        kicks.append(((fprime - mu) / np.sqrt(var)).tolist())
        theta = new
        us.append(theta * root)
    us_arr = np.array(us)
    crossed = int(np.argmax(us_arr[before + 1] > region.boundary))  # the coordinate that crossed at the escape
    return {"optimizer": optimizer, "k": k, "trial": trial, "escape_step": step,
            "steps": list(range(step - before - 1, step + after)), "u": us_arr[:, crossed].tolist(),
            "kick": [kk[crossed] for kk in kicks], "coordinate": crossed,
            "boundary": float(region.boundary[crossed]), "start": float(region.start[crossed]),
            "kick_at_escape": float(chosen["kick_at_escape"]), "kick_lag": int(chosen["kick_lag"])}


def load_or_run_design(config: DesignConfig, data_dir: str | os.PathLike | None = None, *, overwrite: bool = False,
                       recompute: bool = True, log: Callable[[str], None] | None = print):
    """The verified cached point table of ``config``, else run (or resume) the design and store it.

    Returns :class:`lcamlab.experiments.cache.CachedTable`; its metadata holds the calibration,
    the work and time of the run, and one jump-driven escape's trace.
    """
    from lcamlab.escape.analysis import point_table
    from lcamlab.escape.cache import escape_dir
    from lcamlab.experiments.cache import cached_table

    def compute() -> tuple[pd.DataFrame, dict[str, Any]]:
        folder = run_folder(config, data_dir)
        frame = run_design(config, folder, log=log)
        points = point_table(frame, window=config.window, threshold=config.kick_threshold)
        calibration = json.loads((folder / "calibration.json").read_text())
        units = frame.groupby(["optimizer", "arm", "k_index"]).first()
        has_sgd_data = bool(((frame["optimizer"] == "sgd") & (frame["arm"] == "data") & frame["escaped"]).any())
        info = {"calibration": calibration, "trial_steps": int(units["trial_steps"].sum()),
                "simulation_seconds": round(float(units["seconds"].sum()), 1), "threads": default_threads(),
                "trace": escape_trace(config, frame) if has_sgd_data else None, "run_folder": folder.name}
        return points, info

    return cached_table("valley_v2", config.to_config(), compute, escape_dir(data_dir), seed=config.seed,
                        device="cpu", version=VERSION, refresh=overwrite, recompute=recompute, log=log)


def null_design(base: DesignConfig | None = None) -> DesignConfig:
    """The isotropic null: SGD, momentum and Adam on full-batch gradients plus constant-variance Gaussian noise."""
    return (base or DesignConfig()).replace(optimizers=("sgd", "momentum", "adam"), arms=("iso",), controls=False)


def quick_design() -> DesignConfig:
    """A small design for smoke tests and ``--quick`` (SGD and LCAM with its controls, short escape times)."""
    return DesignConfig(optimizers=("sgd", "lcam-above"), trials=32, points=5, slow=800.0, calibration_trials=8,
                        warmup=50)
