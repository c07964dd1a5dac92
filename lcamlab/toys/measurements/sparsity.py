"""Measurement 3: dataset sparsity x optimizer on :class:`~lcamlab.toys.ProductChain`.

Every optimizer runs over a learning-rate grid; each optimizer's best rate per
sparsity is chosen on a *tuning* seed and reported on a separate *evaluation* seed
(no winner's curse), with the rare- and frequent-feature losses separately and
LCAM's controls at LCAM's rate (the LCAM paper's sections 3.3 and 4).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.registry import PRESETS, preset
from lcamlab.toys.base import grid_cells
from lcamlab.toys.measurements.common import cached_table, float_pairs, interval_columns, paired_columns
from lcamlab.toys.product_chain import ProductChain
from lcamlab.toys.runner import ToyRun, run, run_controls

__all__ = ["SPARSITY_RATES", "SparsityConfig", "SparsityResult", "best_rates", "measure_sparsity"]


#: The optimizers of measurement 3 and their rates before tuning (the centre of each grid).
SPARSITY_RATES: tuple[tuple[str, float], ...] = (
    ("momentum", 0.005), ("lcam-above", 0.005), ("lcam-below", 0.005), ("adagrad", 0.05), ("adam", 0.01))


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    """Settings of :func:`measure_sparsity`.

    All sparsity levels run as one batch of ``len(sparsities) * trials_per_cell``
    trials of a :class:`ProductChain`, once per optimizer and learning rate, on
    the mini-batches of ``tuning_seed`` (to choose each optimizer's best rate per
    sparsity) and of ``seed`` (to report). The loss is read at step ``budget``
    (averaged over the ``average_last`` steps before it). Each optimizer's rates
    are ``rate * factor`` for its ``rates`` entry and every ``lr_factors`` value.
    """

    sparsities: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95)
    n_frequent: int = 2
    n_rare: int = 2
    depth: int = 2
    init: float = 0.3
    teacher: str = "balanced"
    label_noise: float = 0.1
    batch_size: int = 8
    trials_per_cell: int = 200
    budget: int = 60
    steps_per_epoch: int = 20
    average_last: int = 10
    record_every: int = 2
    rates: tuple[tuple[str, float], ...] = SPARSITY_RATES
    lr_factors: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    seed: int = 0
    tuning_seed: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", float_pairs(self.rates))
        if not 1 <= self.average_last <= self.budget:
            raise ValueError(f"Invalid average_last: {self.average_last} (must lie in [1, budget={self.budget}])")
        if self.seed == self.tuning_seed:
            raise ValueError(f"Invalid tuning_seed: {self.tuning_seed} (must differ from the evaluation seed)")
        unknown = [key for key, _ in self.rates if key not in PRESETS]
        if unknown:
            raise ValueError(f"Invalid optimizer: {unknown[0]!r} (choose from {', '.join(PRESETS)})")
        if not self.lr_factors or any(not f > 0 for f in self.lr_factors):
            raise ValueError(f"Invalid lr_factors: {self.lr_factors!r} (positive numbers)")

    def learning_rates(self, key: str) -> list[float]:
        """The grid of ``key``: its rate times every factor."""
        rate = dict(self.rates)[key]
        return [round(rate * f, 12) for f in self.lr_factors]


@dataclasses.dataclass
class SparsityResult:
    """What :func:`measure_sparsity` returns: the whole curves and the table at the best rates."""

    curves: cache.CachedTable
    best: cache.CachedTable


def _sparsity_toy(config: SparsityConfig) -> tuple[list[dict[str, float]], ProductChain, Tensor]:
    cells, knobs, cell_index = grid_cells(config.trials_per_cell, sparsity=config.sparsities)
    toy = ProductChain(len(cell_index), n_frequent=config.n_frequent, n_rare=config.n_rare,
                       sparsity=knobs["sparsity"], depth=config.depth, init=config.init, teacher=config.teacher,
                       label_noise=config.label_noise, batch_size=config.batch_size)
    return cells, toy, cell_index


def _budget_losses(result: ToyRun, config: SparsityConfig) -> dict[str, Tensor]:
    """Per trial: log10 of the total, frequent- and rare-feature excess loss at the budget (inf if diverged)."""
    toy = result.toy
    steps = result.recorded_steps
    window = (steps > config.budget - config.average_last) & (steps <= config.budget)
    theta = result.trajectory[window].to(torch.float64)
    frequent, rare = toy.feature_losses(theta)  # type: ignore[attr-defined]
    total = frequent + rare
    diverged = result.diverged()
    out = {}
    for key, values in (("log10_loss", total), ("log10_frequent", frequent), ("log10_rare", rare)):
        v = torch.log10(values.mean(dim=0).clamp_min(1e-300))
        out[key] = torch.where(diverged | ~torch.isfinite(v), torch.full_like(v, math.inf), v)
    return out


_LOSSES = ("log10_loss", "log10_frequent", "log10_rare")


def _losses_stats(values: Mapping[str, Tensor], mask: Tensor) -> dict[str, float]:
    row: dict[str, float] = {}
    for key in _LOSSES:
        row.update(interval_columns(key, values[key][mask]))
    return row


def best_rates(curves: Any) -> dict[tuple[str, float], float]:
    """``(optimizer key, sparsity) -> learning rate`` with the lowest mean log10 loss on the tuning seed.

    A rate at which any trial of the cell diverged is never chosen.
    """
    tuning = curves[curves["seed_role"] == "tuning"]
    usable = tuning[(tuning["diverged"] == 0) & tuning["log10_loss"].notna()]
    chosen = {}
    for (key, sparsity), group in usable.groupby(["key", "sparsity"], sort=False):
        chosen[(str(key), float(sparsity))] = float(group.loc[group["log10_loss"].idxmin(), "lr"])
    return chosen


def measure_sparsity(
    config: SparsityConfig = SparsityConfig(),
    *,
    data_dir: str | os.PathLike,
    refresh: bool = False,
) -> SparsityResult:
    r"""Measurement 3: sparsity x optimizer on :class:`ProductChain`, every optimizer at its best rate.

    Two cached tables:

    * ``curves`` (``traction_sparsity_curves``): one row per (optimizer, learning
      rate, sparsity, ``seed_role`` = ``"tuning"`` / ``"evaluation"``) with the
      mean and 95% CI of ``log10_loss`` (total excess population loss at the
      budget), ``log10_frequent`` and ``log10_rare`` (its frequent- and
      rare-feature parts, :meth:`ProductChain.feature_losses`) and the share of
      ``diverged`` trials;
    * ``best`` (``traction_sparsity``): per sparsity, every optimizer at the rate
      chosen on the tuning seed (:func:`best_rates`), measured on the evaluation
      seed (``kind = "setting"``), LCAM's phase-shuffled and mean-matched
      controls at LCAM's chosen rate (matched mean per sparsity cell), and paired
      differences on the same trials (``kind = "paired"``: ``setting`` names the
      difference, e.g. ``"lcam-above - lcam-above:shuffled"``).
    """
    import pandas as pd

    cfg = dataclasses.asdict(config)

    def compute_curves() -> Any:
        cells, toy, cell_index = _sparsity_toy(config)
        rows = []
        for key, _ in config.rates:
            for factor, lr in zip(config.lr_factors, config.learning_rates(key)):
                spec = preset(key, lr)
                for role, seed in (("tuning", config.tuning_seed), ("evaluation", config.seed)):
                    result = run(toy, spec, steps=config.budget, steps_per_epoch=config.steps_per_epoch,
                                 seed=seed, record_every=config.record_every)
                    losses = _budget_losses(result, config)
                    for c, cell in enumerate(cells):
                        mask = cell_index == c
                        rows.append({"optimizer": spec.label, "key": key, "lr": lr, "factor": factor,
                                     "sparsity": cell["sparsity"], "seed_role": role,
                                     **_losses_stats(losses, mask),
                                     "diverged": float(torch.isinf(losses["log10_loss"][mask]).double().mean()),
                                     "trials": int(mask.sum())})
        return pd.DataFrame(rows)

    curves = cached_table("traction_sparsity_curves", cfg, compute_curves, data_dir, seed=config.seed,
                          refresh=refresh)

    def compute_best() -> Any:
        cells, toy, cell_index = _sparsity_toy(config)
        chosen = best_rates(curves.frame)
        kwargs = dict(steps=config.budget, steps_per_epoch=config.steps_per_epoch, seed=config.seed,
                      record_every=config.record_every)
        # setting -> cell -> per-trial values; LCAM settings also carry their realised momentum
        values: dict[str, dict[int, dict[str, Any]]] = {}
        order: list[str] = []
        for key, _ in config.rates:
            for lr in sorted({chosen[(key, c["sparsity"])] for c in cells if (key, c["sparsity"]) in chosen}):
                spec = preset(key, lr)
                if spec.kind == "lcam":
                    runs = run_controls(toy, spec, controls=("shuffled", "matched"), groups=cell_index, **kwargs)
                else:
                    runs = {key: run(toy, spec, **kwargs)}
                used = runs[key].momentum_used() if spec.kind == "lcam" else None
                for setting, result in runs.items():
                    if setting not in order:
                        order.append(setting)
                    losses = _budget_losses(result, config)
                    for c, cell in enumerate(cells):
                        if chosen.get((key, cell["sparsity"])) != lr:
                            continue
                        mask = cell_index == c
                        entry: dict[str, Any] = {"lr": lr, "label": result.spec.label, "mask": mask,
                                                 **{k: v[mask] for k, v in losses.items()}}
                        if used is not None:
                            below = runs[key].lcam_below[:, mask].to(torch.float64)
                            entry["realised_mean"] = float(used[:, mask].mean())
                            entry["below_fraction"] = float(below.mean())
                        values.setdefault(setting, {})[c] = entry
        contrasts = []
        for key, _ in config.rates:
            if key.startswith("lcam"):
                contrasts += [(key, f"{key}:shuffled"), (key, f"{key}:matched")]
        if "lcam-above" in values and "lcam-below" in values:
            contrasts.append(("lcam-below", "lcam-above"))
        if "momentum" in values:
            contrasts += [(k, "momentum") for k, _ in config.rates if k in ("adagrad", "adam")]
        rows = []
        for c, cell in enumerate(cells):
            for setting in order:
                entry = values.get(setting, {}).get(c)
                if entry is None:
                    continue
                row = {"kind": "setting", "sparsity": cell["sparsity"], "setting": setting,
                       "label": entry["label"], "lr": entry["lr"]}
                for k in _LOSSES:
                    row.update(interval_columns(k, entry[k]))
                row["realised_mean"] = entry.get("realised_mean", math.nan)
                row["below_fraction"] = entry.get("below_fraction", math.nan)
                row["trials"] = int(torch.isfinite(entry["log10_loss"]).sum())
                rows.append(row)
            for a, b in contrasts:
                if c not in values.get(a, {}) or c not in values.get(b, {}):
                    continue
                ea, eb = values[a][c], values[b][c]
                row = {"kind": "paired", "sparsity": cell["sparsity"], "setting": f"{a} - {b}",
                       "label": f"{ea['label']} − {eb['label']}", "lr": math.nan}
                for k in _LOSSES:
                    row.update(paired_columns(k, ea[k], eb[k]))
                row["realised_mean"] = math.nan
                row["below_fraction"] = math.nan
                row["trials"] = int((torch.isfinite(ea["log10_loss"]) & torch.isfinite(eb["log10_loss"])).sum())
                rows.append(row)
        return pd.DataFrame(rows)

    best = cached_table("traction_sparsity", cfg, compute_best, data_dir, seed=config.seed, refresh=refresh)
    return SparsityResult(curves, best)
