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
  refusing to replace an existing file unless asked to;
* :func:`check_output_folder` / :func:`check_output_file` say, before anything is
  computed, whether a result could be written where it is asked to go, and
  :func:`create_folder_atomically` makes a folder appear complete or not at all.

A write that fails for want of space raises an ``OSError`` with ``errno.ENOSPC``
naming the file (not torch's ``RuntimeError`` from inside its zip writer), and
leaves the previous file in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
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
    "LocationError",
    "check_output_folder",
    "check_output_file",
    "create_folder_atomically",
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


def _with_path(error: OSError, path: Path) -> OSError:
    """``error`` naming ``path`` (an ``OSError`` raised by a write on a handle names no file)."""
    if error.filename is not None or error.errno is None:
        return error
    named = type(error)(error.errno, error.strerror or os.strerror(error.errno), str(path))
    named.__cause__ = error
    return named


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = ".tmp"):
    """Write ``path`` atomically: yields a binary handle on a temporary file beside it.

    When the block finishes, the file is flushed, fsynced, given the permissions
    any file the user creates would get (``mkstemp`` makes it private), and
    renamed over ``path`` (atomic on POSIX). If the block raises (a failed
    checksum, a killed serialisation, a full disk), the temporary file is removed
    and ``path`` keeps its previous content; an ``OSError`` is re-raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except OSError as error:
            raise _with_path(error, path) from None
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


class _RecordingWriter:
    """A write-only handle that remembers the first ``OSError`` of a write (torch wraps it)."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as error:
            self.error = self.error or error
            raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: a killed process or a full disk leaves the previous file intact.

    Raises:
        OSError: the write failed (``errno.ENOSPC`` for a full disk), naming ``path``; torch's
            ``RuntimeError`` from inside its zip writer is replaced by the ``OSError`` behind it.
    """
    path = Path(path)
    with atomic_output(path) as handle:
        writer = _RecordingWriter(handle)
        try:
            torch.save(obj, writer)
        except RuntimeError as error:
            if writer.error is not None:
                raise _with_path(writer.error, path) from error
            raise
    return path


def refuse_overwrite(path: str | os.PathLike, *, overwrite: bool = False, what: str = "file") -> Path:
    """Raise ``FileExistsError`` with a clear message if ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{what} {path} already exists and lcamlab never overwrites results silently; "
            f"choose another name or move the old one away."
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

    With ``overwrite``, a table whose CSV would come out byte-identical to the one
    already there (with its sidecar) is left alone, sidecar included: its record of
    the commit and settings that produced these numbers stays true, and a rebuild
    that changes nothing leaves git clean.
    """
    import pandas as pd

    path = Path(path)
    if path.suffix != ".csv":
        raise ValueError(f"Invalid table path: {path} (expected a .csv file name)")
    sidecar = path.with_suffix(".json")
    refuse_overwrite(path, overwrite=overwrite, what="result table")
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    text = frame.to_csv(index=False)
    if path.is_file() and sidecar.is_file() and path.read_bytes() == text.encode("utf-8"):
        return path
    atomic_write_json(sidecar, dict(metadata))
    atomic_write_text(path, text)
    return path


def load_table(path: str | os.PathLike):
    """Load a table written by :func:`save_table`: returns ``(DataFrame, metadata)``."""
    import pandas as pd

    path = Path(path)
    frame = pd.read_csv(path)
    sidecar = path.with_suffix(".json")
    metadata = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return frame, metadata


# --------------------------------------------------------------------------------------
# Where results go: checked before computing, created whole
# --------------------------------------------------------------------------------------


class LocationError(ValueError):
    """An output location that cannot be written (a file where a folder is needed, no permission, ...)."""


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current):
        if current.parent == current:
            break
        current = current.parent
    return current


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _check_name_lengths(path: Path, what: str) -> None:
    limit = _name_max(_nearest_existing(path) if _nearest_existing(path).is_dir() else Path("/"))
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            shown = part if len(part) <= 40 else part[:37] + "..."
            raise LocationError(f"{what} {shown!r}: a file or folder name of {size} bytes, longer than the {limit} "
                                f"this file system allows; choose a shorter name")


def check_output_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """Raise :class:`LocationError` unless ``path`` is (or can be created as) a folder this process can write.

    Nothing is created. ``what`` names the option in the message, e.g. ``"--runs-dir"``.
    """
    path = Path(path).expanduser()
    _check_name_lengths(path, what)
    if path.exists():
        if not path.is_dir():
            raise LocationError(f"{what} {path} is a file, not a folder: choose a folder (or move the file away)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise LocationError(f"{what} {path}: permission denied (this user cannot write into it); choose a "
                                f"folder you can write to, or fix its permissions")
        return path
    existing = _nearest_existing(path)
    if existing.is_symlink() and not existing.exists():
        raise LocationError(f"{what} {path} cannot be created: {existing} is a symbolic link that leads nowhere "
                            f"(a loop, or its target is gone); fix the link or choose another path")
    if not existing.is_dir():
        raise LocationError(f"{what} {path} cannot be created: {existing} is a file, not a folder; choose another "
                            f"path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LocationError(f"{what} {path} cannot be created: permission denied in {existing}; choose a folder "
                            f"you can write to, or fix its permissions")
    return path


def check_output_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Raise :class:`LocationError` unless a file can be written at ``path`` (nothing is created)."""
    path = Path(path).expanduser()
    _check_name_lengths(path, what)
    if path.is_dir():
        raise LocationError(f"{what} {path} is a folder; give a file name (e.g. {path / 'result.csv'})")
    check_output_folder(path.parent if str(path.parent) else Path("."), f"the folder of {what}")
    return path


_CREATING = ".creating"


def create_folder_atomically(path: str | os.PathLike, populate, *, stale_seconds: float = 3600.0) -> Path:
    """Create the folder ``path`` complete or not at all.

    ``populate(folder)`` fills a temporary folder ``<parent>/.creating/<random>/``
    that is then renamed to ``path`` (atomic on POSIX). If ``populate`` raises
    (a full disk, a bad value, Ctrl-C) the temporary folder is removed and
    ``path`` never appears.

    Raises:
        FileExistsError: ``path`` exists and is not empty (another process created it
            first); an existing empty folder is replaced.
    """
    path = Path(path)
    staging = path.parent / _CREATING
    for attempt in range(3):  # another creator may remove an empty staging folder meanwhile
        staging.mkdir(parents=True, exist_ok=True)
        try:
            tmp = Path(tempfile.mkdtemp(dir=staging))
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    try:
        populate(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        try:
            os.rename(tmp, path)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
            raise
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error.filename, str) and error.filename.startswith(str(tmp)) and error.errno is not None:
            # name the folder the user asked for, not the temporary one it was being filled in
            raise type(error)(error.errno, error.strerror, str(path) + error.filename[len(str(tmp)):]) from error
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _tidy_staging(staging, stale_seconds)
    return path


def _tidy_staging(staging: Path, stale_seconds: float) -> None:
    """Remove folders a killed creator left in ``staging`` (older than ``stale_seconds``), then ``staging`` if empty."""
    try:
        now = time.time()
        for entry in staging.iterdir():
            if now - entry.stat().st_mtime > stale_seconds:
                shutil.rmtree(entry, ignore_errors=True)
        staging.rmdir()
    except OSError:
        pass
