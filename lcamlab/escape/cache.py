"""Cached escape results: ``data/escape/<experiment>_<config hash>.csv`` plus a JSON sidecar.

A result is keyed by a hash of its full configuration (every field of
:class:`~lcamlab.escape.experiment.EscapeConfig`, optimizer settings included),
so re-plotting with the same configuration reads the table back instantly, a
different configuration gets a different file, and nothing is overwritten
unless asked (``overwrite=True`` / ``--overwrite``). Files are written through
:func:`lcamlab.provenance.save_table` with :func:`lcamlab.provenance.run_metadata`
(config, seed, versions, git commit, device, wall time).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab import provenance
from lcamlab.escape.experiment import EscapeConfig, run_escape
from lcamlab.escape import rates as _rates

__all__ = ["config_hash", "result_path", "default_data_dir", "EscapeResult", "load_or_run", "load_result"]

_REPO_DATA = Path(__file__).resolve().parent.parent.parent / "data"


def default_data_dir() -> Path:
    """The repository's ``data/`` folder (results go to its ``escape/`` subfolder)."""
    return _REPO_DATA


def config_hash(config: EscapeConfig, length: int = 12) -> str:
    """Hex SHA-256 prefix of the canonical JSON of ``config`` (sorted keys)."""
    text = json.dumps(provenance.to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def result_path(config: EscapeConfig, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/escape/<experiment>_<hash>.csv``."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    return base / "escape" / f"{config.experiment}_{config_hash(config)}.csv"


@dataclass
class EscapeResult:
    """Per-trial escape table with its provenance, and the summaries computed from it."""

    frame: pd.DataFrame
    metadata: dict[str, Any]
    path: Path
    from_cache: bool
    config: EscapeConfig

    def rates(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`lcamlab.escape.rates.rate_table` of this result."""
        return _rates.rate_table(self.frame, self.config.budget, **kwargs)

    def slopes(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`lcamlab.escape.rates.slope_table` of this result's rates."""
        return _rates.slope_table(self.rates(**kwargs))

    def saddle(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`lcamlab.escape.rates.saddle_table` of this result."""
        return _rates.saddle_table(self.frame, **kwargs)

    @property
    def seconds(self) -> float:
        """Simulation wall time recorded when the result was computed."""
        return float(self.metadata.get("seconds_total", float("nan")))


def load_result(path: str | os.PathLike, config: EscapeConfig | None = None) -> EscapeResult:
    """Read a saved escape table and its sidecar; ``config`` defaults to the one recorded there."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No escape result at {path} (run `lcamlab escape valley` or `saddle` first)")
    frame, metadata = provenance.load_table(path)
    if config is None:
        config = config_from_metadata(metadata)
    return EscapeResult(frame, metadata, path, True, config)


def config_from_metadata(metadata: dict[str, Any]) -> EscapeConfig:
    """Rebuild the :class:`EscapeConfig` stored in a sidecar's ``config``."""
    from lcamlab.escape.experiment import OptimizerSetting

    raw = dict(metadata.get("config") or {})
    if not raw:
        raise ValueError("Invalid escape result: its JSON sidecar has no 'config' (not written by lcamlab escape?)")
    settings = []
    for item in raw.pop("optimizers"):
        options = tuple((name, tuple(value) if isinstance(value, list) else value) for name, value in item["options"])
        settings.append(OptimizerSetting(item["key"], item["kind"], item["lr"], options))
    raw["sharpness"] = tuple(raw["sharpness"])
    return EscapeConfig(optimizers=tuple(settings), **raw)


def load_or_run(
    config: EscapeConfig,
    data_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> EscapeResult:
    """The cached result of ``config`` if there is one, else run it and save it.

    Args:
        config: the experiment.
        data_dir: base folder; the table goes to ``<data_dir>/escape/`` (default the
            repository's ``data/``).
        overwrite: recompute and replace an existing result of the same config.
        progress: tqdm progress bars while simulating.
        log: called with one line per optimizer (e.g. ``print``).

    Raises:
        FileExistsError: a file with this name holds a *different* config (never
            replaced silently).
    """
    path = result_path(config, data_dir)
    wanted = provenance.to_jsonable(config)
    if path.exists() and not overwrite:
        frame, metadata = provenance.load_table(path)
        if metadata.get("config") != wanted:
            raise FileExistsError(
                f"Escape result {path} was made with a different configuration than requested "
                f"(hash collision or edited sidecar); move it away or pass --overwrite"
            )
        if log is not None:
            log(f"cached: {path}")
        return EscapeResult(frame, metadata, path, True, config)
    started = time.perf_counter()
    frame, info = run_escape(config, progress=progress, log=log)
    wall = time.perf_counter() - started
    metadata = provenance.run_metadata(config, seed=config.seed, device=config.device, wall_seconds=round(wall, 3),
                                       **info)
    provenance.save_table(path, frame, metadata, overwrite=overwrite)
    if log is not None:
        log(f"saved: {path} ({wall:.1f} s)")
    return EscapeResult(frame, provenance.load_table(path)[1], path, False, config)
