r"""The result cache: every computed table of the suite, stored once, verified on every read.

A result is a CSV table ``<folder>/<name>_<hash>.csv`` with a JSON sidecar
``<name>_<hash>.json`` holding its provenance
(:func:`lcamlab.provenance.run_metadata`: config, seed, version, git commit,
torch version, device) and a ``cache`` record:

.. code-block:: json

    {"format": 2, "table": "traction_drift", "version": 1,
     "sha256": "<SHA-256 of the CSV's bytes>", "rows": 7}

* the **file name** carries :func:`config_hash` of ``{table, version, config}``:
  the same configuration is a cache hit, a different one never overwrites another's;
* ``version`` is the measurement's definition version: bump it when what a table
  means changes, so tables of the old definition are never read as the new one's;
* on every read the stored **config** must equal the requested one, the stored
  **format**, table name and version must match, and the CSV's bytes must have the
  stored **SHA-256**: a table cut short, edited, or with a lost sidecar is never used.

A damaged or mismatching entry is moved aside (``<name>_<hash>.damaged-<time>.csv``,
nothing a user produced is lost) and recomputed, with one line saying so; with
``recompute=False`` it raises :class:`CacheError` naming the file and the fix.
Writes are atomic (:func:`lcamlab.provenance.atomic_write_text`): a killed
process leaves either the previous entry or none, and two processes that compute
the same configuration at once both end with the same verified entry.
"""

from __future__ import annotations

import datetime as _dt
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

__all__ = ["FORMAT", "CacheError", "CachedTable", "config_hash", "sha256", "table_path", "cached_table", "read_table",
           "write_table", "read_sidecar", "move_aside", "set_aside"]

#: Layout of a cache entry (the sidecar's ``cache`` record); bump when it changes.
FORMAT = 2


class CacheError(ValueError):
    """A cached table is missing, damaged or does not match what was asked for."""


@dataclass
class CachedTable:
    """A table with its provenance, where it lives, and whether it was read from the cache."""

    frame: pd.DataFrame
    metadata: dict[str, Any]
    path: Path
    from_cache: bool

    def __iter__(self):  # (frame, metadata, path, from_cache), as the measurement functions return
        return iter((self.frame, self.metadata, self.path, self.from_cache))


def config_hash(config: Any, length: int = 12) -> str:
    """Hex SHA-256 prefix of the canonical JSON of ``config`` (sorted keys, no spaces)."""
    text = json.dumps(provenance.to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _key(name: str, config: Any, version: int) -> dict[str, Any]:
    return {"table": name, "version": version, "config": config}


def table_path(name: str, config: Any, folder: str | os.PathLike, *, version: int = 1) -> Path:
    """``<folder>/<name>_<hash>.csv``, the hash covering ``name``, ``version`` and ``config``."""
    if not name or "/" in name or os.sep in name:
        raise ValueError(f"Invalid table name: {name!r} (a file stem such as 'traction_drift')")
    return Path(folder) / f"{name}_{config_hash(_key(name, config, version))}.csv"


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the checksum a sidecar records and every read checks."""
    return hashlib.sha256(data).hexdigest()


def read_sidecar(path: Path, what: str, holds: str) -> Any:
    """The parsed JSON sidecar ``<stem>.json`` of the entry ``path`` (any JSON value: the caller checks its record).

    Raises:
        CacheError: no sidecar, or one that is not readable JSON; the message names ``path`` as ``what``
            (e.g. "cached table") and says what the sidecar ``holds``.
    """
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise CacheError(f"{what} {path} has no sidecar {sidecar.name} ({holds})")
    try:
        return json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheError(f"sidecar {sidecar} is not readable JSON ({type(error).__name__}: {error})") from None


def read_table(path: str | os.PathLike, *, name: str | None = None, config: Any = None,
               version: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read and verify a cache entry; ``(frame, metadata)``.

    Args:
        path: the CSV.
        name, config, version: when given, the entry must have been written for them.

    Raises:
        CacheError: the entry is missing, unreadable, of another format, for another
            table/version/config, or its CSV does not have the stored SHA-256.
    """
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        raise CacheError(f"no cached table at {path}")
    metadata = read_sidecar(path, "cached table", "its provenance and checksum")
    record = metadata.get("cache") if isinstance(metadata, dict) else None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CacheError(f"cached table {path} is of another cache format "
                         f"({record.get('format') if isinstance(record, dict) else 'none'}, expected {FORMAT})")
    if name is not None and record.get("table") != name:
        raise CacheError(f"cached table {path} holds table {record.get('table')!r}, not {name!r}")
    if version is not None and record.get("version") != version:
        raise CacheError(f"cached table {path} is version {record.get('version')} of {name!r}, expected {version}")
    if config is not None and metadata.get("config") != provenance.to_jsonable(config):
        raise CacheError(f"cached table {path} was made with a different configuration than requested")
    data = path.read_bytes()
    if sha256(data) != record.get("sha256"):
        raise CacheError(f"cached table {path} does not match the SHA-256 in {sidecar.name} (edited or cut short)")
    try:
        import io

        frame = pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as error:
        raise CacheError(f"cached table {path} is not a readable CSV ({error})") from None
    if len(frame) != record.get("rows"):
        raise CacheError(f"cached table {path} has {len(frame)} rows, its sidecar says {record.get('rows')}")
    return frame, metadata


def write_table(path: str | os.PathLike, frame: pd.DataFrame, metadata: dict[str, Any], *, name: str,
                version: int) -> dict[str, Any]:
    """Write a cache entry atomically (sidecar first, then the CSV); returns the stored metadata."""
    path = Path(path)
    data = frame.to_csv(index=False).encode("utf-8")
    metadata = dict(metadata)
    metadata["cache"] = {"format": FORMAT, "table": name, "version": version, "sha256": sha256(data),
                         "rows": len(frame)}
    provenance.atomic_write_json(path.with_suffix(".json"), metadata)
    provenance.atomic_write_bytes(path, data)
    return provenance.to_jsonable(metadata)


def move_aside(path: Path) -> Path:
    """Rename a damaged entry (the file and its ``.json`` sidecar) out of the way; returns the file's new name.

    ``<stem>.damaged-<UTC time><suffix>``: nothing a user produced is deleted.
    """
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    for old, new in ((path, target), (path.with_suffix(".json"), target.with_suffix(".json"))):
        if old.exists():
            os.replace(old, new)
    return target


def set_aside(path: Path, error: Exception, log: Callable[[str], None] | None) -> Path:
    """Move a damaged or mismatching entry aside (:func:`move_aside`) with the one line saying so."""
    aside = move_aside(path)
    if log is not None:
        log(f"lcamlab: {error}; moved it to {aside.name} and recomputing")
    return aside


def cached_table(
    name: str,
    config: Any,
    compute: Callable[[], pd.DataFrame | tuple[pd.DataFrame, dict[str, Any]]],
    folder: str | os.PathLike,
    *,
    seed: int | None,
    device: str = "cpu",
    version: int = 1,
    refresh: bool = False,
    recompute: bool = True,
    log: Callable[[str], None] | None = print,
) -> CachedTable:
    """The verified cached table of ``config``, or compute it, store it and return it.

    Args:
        name: table name (the file stem, e.g. ``"traction_drift"``).
        config: everything the result depends on (JSON-able; hashed into the file name
            and stored in the sidecar).
        compute: returns the table, or ``(table, info)`` with ``info`` stored in the sidecar.
        folder: where the entry lives (e.g. ``data/toys``).
        seed, device: recorded in the provenance.
        version: the measurement's definition version (part of the key).
        refresh: recompute and replace this configuration's own entry.
        recompute: what to do with a damaged or mismatching entry: move it aside and
            recompute (default), or raise :class:`CacheError`.
        log: where the one-line notices go (``None``: silent).
    """
    path = table_path(name, config, folder, version=version)
    if path.exists() and not refresh:
        try:
            frame, metadata = read_table(path, name=name, config=config, version=version)
            return CachedTable(frame, metadata, path, True)
        except CacheError as error:
            if not recompute:
                raise CacheError(f"{error}; delete {path} and its .json sidecar to recompute it") from None
            set_aside(path, error, log)
    started = time.perf_counter()
    result = compute()
    frame, info = result if isinstance(result, tuple) else (result, {})
    metadata = provenance.run_metadata(config, seed=seed, device=device, table=name,
                                       wall_seconds=round(time.perf_counter() - started, 3), **info)
    if path.exists() and not refresh:
        # another process stored the same configuration meanwhile: keep its verified entry
        try:
            frame_, metadata_ = read_table(path, name=name, config=config, version=version)
            return CachedTable(frame_, metadata_, path, True)
        except CacheError:
            move_aside(path)
    stored = write_table(path, frame, metadata, name=name, version=version)
    # read back: the caller sees exactly what the next build will read (CSV round trip)
    frame, stored = read_table(path, name=name, config=config, version=version)
    return CachedTable(frame, stored, path, False)
