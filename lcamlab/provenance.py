"""Provenance and safe file output shared by every part of lcamlab.

Every result file lcamlab writes records what produced it (config, seed,
package version, git commit, torch version, device), and nothing a user
produced is silently overwritten. This module holds the three pieces that make
that true everywhere:

* :func:`run_metadata` builds the provenance record;
* :func:`atomic_write_text` / :func:`atomic_write_json` / :func:`atomic_torch_save`
  write through a temporary file in the same directory followed by
  :func:`os.replace`, so a crash never leaves a half-written file;
* :func:`save_table` writes a CSV with a JSON sidecar holding the metadata,
  refusing to replace an existing file unless asked to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lcamlab import __version__
from lcamlab.paths import REPO_ROOT

__all__ = [
    "git_commit",
    "describe_device",
    "run_metadata",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "refuse_overwrite",
    "save_table",
    "load_table",
    "to_jsonable",
]

def git_commit(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The git commit of the lcamlab checkout, and whether its tree is dirty.

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout (for
    example an installed wheel): provenance degrades, it never fails.
    """
    root = Path(root) if root is not None else REPO_ROOT
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def describe_device(device: str | torch.device | None = None) -> str:
    """A human-readable device name, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu"``."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
    return str(device)


def to_jsonable(value: Any) -> Any:
    """Convert configs (dataclasses, paths, tensors, numpy scalars, tuples) to JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, torch.device):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array
        return value.tolist()
    return value


def run_metadata(
    config: Any = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record stored beside every result.

    Args:
        config: the experiment's configuration (dataclass or mapping).
        seed: the random seed the result was produced with.
        device: the device the computation ran on.
        **extra: anything else worth keeping (e.g. ``wall_seconds``).
    """
    git = git_commit()
    record = {
        "config": to_jsonable(config),
        "seed": seed,
        "lcamlab_version": __version__,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": describe_device(device),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(to_jsonable(extra))
    return record


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = ".tmp"):
    """Write ``path`` atomically: yields a binary handle on a temporary file beside it.

    When the block finishes, the file is flushed, fsynced, given the permissions
    any file the user creates would get (``mkstemp`` makes it private), and
    renamed over ``path`` (atomic on POSIX). If the block raises (a failed
    checksum, a killed serialisation), the temporary file is removed and
    ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    with atomic_output(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: a killed process leaves the previous file intact."""
    with atomic_output(path) as handle:
        torch.save(obj, handle)
    return Path(path)


def refuse_overwrite(path: str | os.PathLike, *, overwrite: bool = False, what: str = "file") -> Path:
    """Raise ``FileExistsError`` with a clear message if ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{what} {path} already exists and lcamlab never overwrites results silently; "
            f"choose another name, move the old one away, or pass overwrite=True (--overwrite)."
        )
    return path


def save_table(
    path: str | os.PathLike,
    table: Any,
    metadata: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Save a table as ``path`` (CSV) with its provenance in ``path`` + ``.json``.

    Args:
        path: the CSV path; the sidecar is the same path with suffix ``.json``.
        table: a :class:`pandas.DataFrame` or anything ``pandas.DataFrame(...)`` accepts.
        metadata: the provenance record, normally :func:`run_metadata`'s result.
        overwrite: replace existing files (otherwise ``FileExistsError``).
    """
    import pandas as pd

    path = Path(path)
    if path.suffix != ".csv":
        raise ValueError(f"Invalid table path: {path} (expected a .csv file name)")
    sidecar = path.with_suffix(".json")
    refuse_overwrite(path, overwrite=overwrite, what="result table")
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    atomic_write_json(sidecar, dict(metadata))
    atomic_write_text(path, frame.to_csv(index=False))
    return path


def load_table(path: str | os.PathLike):
    """Load a table written by :func:`save_table`: returns ``(DataFrame, metadata)``."""
    import pandas as pd

    path = Path(path)
    frame = pd.read_csv(path)
    sidecar = path.with_suffix(".json")
    metadata = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return frame, metadata
