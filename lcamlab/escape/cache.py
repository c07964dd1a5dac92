"""Escape results in the suite's verified result cache (:mod:`lcamlab.experiments.cache`).

A saddle result is the table ``"saddle"`` (the experiment) of
:func:`lcamlab.experiments.cache.cached_table` under ``<data_dir>/escape/``
(default :func:`lcamlab.paths.data_dir` ``("escape")``), keyed by
:meth:`EscapeConfig.to_config <lcamlab.escape.config.EscapeConfig.to_config>`
(every field, optimizer specs included) and :data:`VERSION`. The sidecar holds the
provenance and the simulation's info: seconds per optimizer, the critical points,
the start point. :class:`EscapeResult` adds the exit-time table the notebook and the
command line print. (The sharp-valley design caches its own table,
:func:`lcamlab.escape.design.load_or_run_design`.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab import paths
from lcamlab.escape.config import EscapeConfig
from lcamlab.escape.experiment import run_escape
from lcamlab.escape.rates import saddle_table
from lcamlab.experiments.cache import cached_table, read_table

__all__ = ["VERSION", "escape_dir", "EscapeResult", "load_or_run", "load_result", "config_from_metadata"]

#: Definition version of the escape tables (part of the cache key).
VERSION = 1


def escape_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/escape``; by default the repository's ``data/escape``."""
    return Path(data_dir) / "escape" if data_dir is not None else paths.data_dir("escape")


@dataclass
class EscapeResult:
    """Per-trial exit table with its provenance, and the exit-time table computed from it."""

    frame: pd.DataFrame
    metadata: dict[str, Any]
    path: Path
    from_cache: bool
    config: EscapeConfig

    def saddle(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`lcamlab.escape.rates.saddle_table` of this result."""
        return saddle_table(self.frame, **kwargs)

    @property
    def seconds(self) -> float:
        """Simulation wall time recorded when the result was computed."""
        return float(self.metadata.get("seconds_total", float("nan")))


def config_from_metadata(metadata: dict[str, Any]) -> EscapeConfig:
    """Rebuild the :class:`EscapeConfig` stored in a sidecar's ``config`` (specs via ``OptimizerSpec.from_config``)."""
    return EscapeConfig.from_config(metadata.get("config") or {})


def load_result(path: str | os.PathLike, config: EscapeConfig | None = None) -> EscapeResult:
    """Read and verify a saved escape table; ``config`` defaults to the one recorded in its sidecar."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No escape result at {path} (run `lcamlab escape saddle` first)")
    frame, metadata = read_table(path)
    table = (metadata.get("cache") or {}).get("table")
    if table != "saddle":  # e.g. the valley design's table, which `lcamlab escape run` prints
        raise ValueError(f"{path} is a {table!r} table, not a saddle result: `lcamlab escape show` prints the "
                         f"tables of `lcamlab escape saddle`" + ("; `lcamlab escape run` prints the valley design's"
                                                                 if str(table).startswith("valley") else ""))
    if config is None:
        config = config_from_metadata(metadata)
    return EscapeResult(frame, metadata, path, True, config)


def load_or_run(
    config: EscapeConfig,
    data_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    recompute: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> EscapeResult:
    """The verified cached result of ``config`` if there is one, else run it and store it.

    Args:
        config: the experiment.
        data_dir: base folder; the table goes to ``<data_dir>/escape/`` (default the
            repository's ``data/escape``).
        overwrite: recompute and replace this configuration's entry.
        recompute: a damaged or mismatching entry is moved aside and recomputed
            (default), or raises :class:`lcamlab.experiments.cache.CacheError`.
        progress: tqdm progress bars while simulating.
        log: called with one line per optimizer and the cache's notices (e.g. ``print``).
    """

    def compute() -> tuple[pd.DataFrame, dict[str, Any]]:
        return run_escape(config, progress=progress, log=log)

    entry = cached_table(config.experiment, config.to_config(), compute, escape_dir(data_dir), seed=config.seed,
                         device=config.device, version=VERSION, refresh=overwrite, recompute=recompute, log=log)
    if log is not None:
        log(f"cached: {entry.path}" if entry.from_cache
            else f"saved: {entry.path} ({entry.metadata.get('wall_seconds', float('nan')):.1f} s)")
    return EscapeResult(entry.frame, entry.metadata, entry.path, entry.from_cache, config)
