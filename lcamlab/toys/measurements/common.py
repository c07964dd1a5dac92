"""What the four measurements share: the result cache of the toys' tables, interval columns, the spring.

Every table is cached in ``<data_dir>/toys`` through :mod:`lcamlab.experiments.cache`
(CSV + JSON sidecar with provenance, a file name that hashes the full configuration
and :data:`MEASUREMENT_VERSION`, verified on every read).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from lcamlab.experiments import cache
from lcamlab.experiments.stats import mean_ci, paired_ci
from lcamlab.toys.spring import SpringPair

__all__ = ["MEASUREMENT_VERSION", "cached_table", "interval_columns", "paired_columns", "float_pairs", "spring_of"]


# Part of every cache key: bump it when the definition of a measurement changes, so that
# tables computed by the old definition are never read back as results of the new one.
# 2: traction with controls, sparsity with learning-rate sweeps, oscillation at the convention
#    and at matched progress.
MEASUREMENT_VERSION = 2


def cached_table(
    name: str,
    config: Any,
    compute: Callable[[], Any],
    data_dir: str | os.PathLike,
    *,
    seed: int,
    refresh: bool = False,
) -> cache.CachedTable:
    """The toys' tables in the one result cache: ``<data_dir>/toys/<name>_<hash>.csv``.

    A thin binding of :func:`lcamlab.experiments.cache.cached_table` (folder ``toys``,
    version :data:`MEASUREMENT_VERSION`, computed on the CPU).

    Returns:
        ``(frame, metadata, path, from_cache)`` (a :class:`~lcamlab.experiments.cache.CachedTable`).
    """
    return cache.cached_table(name, config, compute, Path(data_dir) / "toys", seed=seed, device="cpu",
                              version=MEASUREMENT_VERSION, refresh=refresh)


def interval_columns(prefix: str, values: Tensor) -> dict[str, float]:
    """``{prefix: mean, prefix_low: ..., prefix_high: ...}`` over the finite values."""
    mean, low, high, _ = mean_ci(values)
    return {prefix: mean, f"{prefix}_low": low, f"{prefix}_high": high}


def paired_columns(prefix: str, values: Tensor, reference: Tensor) -> dict[str, float]:
    """The paired difference ``values - reference`` as ``{prefix, prefix_low, prefix_high}``."""
    mean, low, high, _ = paired_ci(values, reference)
    return {prefix: mean, f"{prefix}_low": low, f"{prefix}_high": high}


def float_pairs(mapping: Mapping[str, float] | Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """``{key: rate}`` or ``[(key, rate), ...]`` as a tuple of ``(str, float)`` pairs (hashable, JSON-able)."""
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple((str(k), float(v)) for k, v in items)


def spring_of(config: Any) -> SpringPair:
    """The :class:`SpringPair` of a measurement's settings (``trials`` trials of the same spring)."""
    return SpringPair(config.trials, stiffness=config.stiffness, mass_ratio=config.mass_ratio,
                      coupling=config.coupling, noise=config.noise, start=config.start, optimum=config.optimum,
                      batch_size=config.batch_size)
