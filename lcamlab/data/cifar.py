r"""CIFAR-10 / CIFAR-100 on disk: verified loading of the official archives and a uint8 cache.

The WRN experiments of the LCAM paper (000 section 4, 001 section 4) train on
CIFAR-10 and CIFAR-100 (50 000 training and 10 000 test images of 32x32x3).
:func:`load_cifar` reads the official *python* archives
(``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``) or their extracted
folders, verifies archives against the official MD5 sums, optionally downloads
them (:func:`download_cifar`: progress bar, atomic), and decodes them once into
a compact uint8 cache (``<data_dir>/cache/<dataset>-<md5>.npz``) that later
loads reuse. The cache is checked, not trusted: it stores the SHA-256 of its
arrays, verified on every read together with the label range, so an edited,
truncated or foreign cache file is rebuilt from the source (with one warning),
never trained on.

Failures name the file and the fix: an archive with the expected MD5 that is
not a readable tar.gz, a batch whose labels are not integers, an expected MD5
given for an extracted folder (which has no archive MD5 to check) are each a
``ValueError`` with one clear message.

The official files are Python pickles. Following the dataset's own
instructions they are read with ``encoding="bytes"``, through an unpickler that
only admits the few globals such a file contains (numpy's array
reconstruction), so a tampered file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tarfile
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lcamlab import paths
from lcamlab.provenance import atomic_output

__all__ = [
    "DATASETS",
    "DATASET_TITLES",
    "CIFAR_MD5",
    "CIFAR_URLS",
    "NORMALIZATIONS",
    "DATA_DIR_ENV",
    "ChecksumError",
    "CifarData",
    "default_data_dir",
    "cifar_sources",
    "file_md5",
    "download_verified",
    "check_data_folder",
    "download_cifar",
    "load_cifar",
]

DATASETS = ("cifar10", "cifar100")

#: MD5 sums of the official python archives (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_MD5 = {
    "cifar10": "c58f30108f718f92721af3b95e74349a",
    "cifar100": "eb9058c3a382ffc7106e4002c42a8d85",
}

CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}

#: Per-channel (mean, std) on the [0, 1] scale. "imagenet" is what the LCAM
#: authors normalise with (digest of 000/001: their published demo code);
#: "cifar10" / "cifar100" are the statistics of the 50 000 training images
#: (population std over all pixels of a channel), the usual alternative.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

DATA_DIR_ENV = "LCAMLAB_DATA_DIR"

# 2: the arrays' SHA-256 is stored in the cache (key "sha256") and verified on every read
_CACHE_FORMAT = 2
_CACHE_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "classes")


@dataclass(frozen=True)
class _Layout:
    """Where the pieces of one dataset live in its official archive."""

    title: str
    archive: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int


_LAYOUTS = {
    "cifar10": _Layout(
        title="CIFAR-10",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        num_classes=10,
    ),
    "cifar100": _Layout(
        title="CIFAR-100",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
    ),
}

#: Display names, e.g. ``"cifar10" -> "CIFAR-10"`` (tables, plot titles).
DATASET_TITLES: dict[str, str] = {name: layout.title for name, layout in _LAYOUTS.items()}


class ChecksumError(ValueError):
    """An archive whose MD5 sum is not the expected one (corrupt, truncated or not official)."""


@dataclass
class CifarData:
    """One CIFAR dataset in memory, as compact uint8 tensors.

    Attributes:
        train_images: ``(50000, 3, 32, 32)`` uint8, RGB, NCHW.
        train_labels: ``(50000,)`` int64 (CIFAR-100: the fine labels).
        test_images: ``(10000, 3, 32, 32)`` uint8.
        test_labels: ``(10000,)`` int64.
        num_classes: 10 or 100.
        classes: class names, index = label.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        source: the archive or folder the data came from.
        md5: the archive's MD5 (for a folder: the MD5 of its files' MD5s); the cache key.
        content_sha256: SHA-256 of the decoded images, labels and class names: the same
            for an archive and its extracted folder (what a resumed run compares).
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    num_classes: int
    classes: list[str]
    dataset: str
    source: str
    md5: str = ""
    content_sha256: str = ""


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _check_dataset(dataset: str) -> _Layout:
    if dataset not in _LAYOUTS:
        raise ValueError(f"Invalid dataset: {dataset!r} (must be one of {', '.join(DATASETS)})")
    return _LAYOUTS[dataset]


def _check_md5(md5: str) -> str:
    text = str(md5).strip().lower()
    if len(text) != 32 or any(ch not in "0123456789abcdef" for ch in text):
        raise ValueError(f"Invalid expected_md5: {md5!r} (must be 32 hexadecimal digits)")
    return text


def default_data_dir(results_dir: str | os.PathLike | None = None) -> Path:
    """The CIFAR folder when none is given: ``$LCAMLAB_DATA_DIR`` if set, else ``<results_dir>/cifar``.

    Args:
        results_dir: the results folder of the caller (a notebook's ``data_dir``); None: the
            ``data/`` folder of the checkout lcamlab is installed from (what ``lcamlab train``
            without ``--data-dir`` uses). Notebooks pass their own ``data_dir``, so a notebook
            run from another checkout looks in that checkout's ``data/cifar``, not in the one the
            package happens to be installed from.
    """
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if results_dir is not None:
        return Path(results_dir).expanduser() / "cifar"
    return paths.data_dir("cifar")


def cifar_sources(dataset: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Where :func:`load_cifar` looks for ``dataset``: ``(archive, extracted folder)`` in ``data_dir``.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        data_dir: the CIFAR folder (default :func:`default_data_dir`).
    Returns:
        e.g. ``(<data_dir>/cifar-10-python.tar.gz, <data_dir>/cifar-10-batches-py)``.
    """
    layout = _check_dataset(dataset)
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    return folder / layout.archive, folder / layout.folder


def file_md5(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hexadecimal MD5 sum of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_verified(url: str, target: Path, expected_md5: str, *, what: str, otherwise: str,
                      mismatch: Callable[[str], str], progress: bool | None = None) -> Path:
    """Stream ``url`` to ``target``; only a file whose MD5 is ``expected_md5`` is moved into place.

    The bytes go to a temporary file beside the target (:func:`lcamlab.provenance.atomic_output`),
    so an interrupted or corrupt download never leaves a plausible-looking file behind.

    Args:
        url: the source.
        target: where the verified file goes.
        expected_md5: the MD5 it must have.
        what: the dataset's name for the messages (e.g. ``"CIFAR-10"``).
        otherwise: what to do when the source cannot be reached (ends the message).
        mismatch: the message for a wrong checksum, given the actual MD5.
        progress: tqdm progress bar; ``None`` shows it only on an interactive terminal.

    Raises:
        FileNotFoundError: the source cannot be reached.
        ChecksumError: the downloaded bytes have another MD5 (nothing is written).
    """
    from tqdm.auto import tqdm

    print(f"lcamlab: downloading {url} to {target}", file=sys.stderr)
    digest = hashlib.md5()
    with atomic_output(target, suffix=".part") as handle:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError) as error:
            raise FileNotFoundError(
                f"Could not download {what} from {url} ({error}). Are you online? Otherwise {otherwise}"
            ) from error
        with response:
            total = response.headers.get("Content-Length")
            disable = (not sys.stderr.isatty()) if progress is None else not progress
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=target.name, disable=disable) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if actual != expected_md5:
            raise ChecksumError(mismatch(actual))
    return target


def check_data_folder(folder: Path, title: str, holding: str) -> None:
    """Refuse a data folder that is a file (a path that does not exist is the caller's "not found")."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"The {title} data folder {folder} is a file, not a folder: give --data-dir the folder "
                         f"that holds {holding}")


def _how_to_obtain(layout: _Layout, dataset: str, data_dir: Path) -> str:
    return (
        f"Obtain it with `lcamlab train --dataset {dataset} --download` (or load_cifar(..., download=True)), "
        f"or download {CIFAR_URLS[dataset]} (md5 {CIFAR_MD5[dataset]}) into {data_dir}, "
        f"or point ${DATA_DIR_ENV} / --data-dir at the folder that already holds {layout.archive}."
    )


def _checksum_message(path: Path, expected: str, actual: str, dataset: str) -> str:
    layout = _LAYOUTS[dataset]
    return (
        f"Checksum mismatch for {path}: expected md5 {expected}, got {actual}. The file is corrupt, "
        f"truncated (an interrupted download?) or not the official {layout.title} python archive. "
        f"Delete it and run `lcamlab train --dataset {dataset} --download` or download {CIFAR_URLS[dataset]} again; "
        f"for a deliberately different archive pass expected_md5=<its md5>."
    )


def _download_checksum_message(url: str, target: Path, expected: str, actual: str, dataset: str) -> str:
    layout = _LAYOUTS[dataset]
    return (
        f"Checksum mismatch for the download of {url}: expected md5 {expected}, got {actual}; "
        f"nothing was written to {target}. The transfer was corrupted or the server sent something other "
        f"than the official {layout.title} python archive. Try the download again, or fetch the file "
        f"yourself and place it at {target}."
    )


# --------------------------------------------------------------------------------------
# Safe decoding of the official pickles
# --------------------------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """Admits only the globals a CIFAR pickle holds: numpy arrays (and bytes under protocol 2)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: not part of the CIFAR python format"
            )
        if module == "numpy.core.multiarray":
            # numpy 2 moved numpy.core to numpy._core; the 2009 files name the old path.
            return np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
        return super().find_class(module, name)


def _unpickle(blob: bytes, where: str) -> dict[str, Any]:
    try:
        raw = _CifarUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as error:  # any failure here means "not a CIFAR batch"
        raise ValueError(f"Could not decode {where} as a CIFAR python batch: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"Could not decode {where}: expected a dict, got {type(raw).__name__}")
    return {key.decode("latin-1") if isinstance(key, bytes) else str(key): value for key, value in raw.items()}


def _decode_batch(blob: bytes, where: str, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(blob, where)
    if "data" not in batch or layout.label_key not in batch:
        raise ValueError(f"{where} lacks the keys 'data' and {layout.label_key!r} of a {layout.title} batch")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    try:
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{where}: its {layout.label_key!r} are not integer class indices ({error}); the file is "
                         f"not a {layout.title} python batch: replace it with the official one") from None
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{where}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise ValueError(f"{where}: labels outside 0..{layout.num_classes - 1}")
    # Rows are the red, green and blue 32x32 planes in order: exactly NCHW.
    return data.reshape(-1, 3, 32, 32), labels


def _decode(blobs: dict[str, bytes], where: str, layout: _Layout) -> dict[str, np.ndarray]:
    """Decode the member files of one dataset into uint8 arrays (the slow step the cache avoids)."""
    parts = {}
    for split, names in (("train", layout.train_files), ("test", layout.test_files)):
        decoded = [_decode_batch(blobs[name], f"{where}/{name}", layout) for name in names]
        parts[f"{split}_images"] = np.concatenate([images for images, _ in decoded])
        parts[f"{split}_labels"] = np.concatenate([labels for _, labels in decoded])
    meta = _unpickle(blobs[layout.meta_file], f"{where}/{layout.meta_file}")
    if layout.names_key not in meta:
        raise ValueError(f"{where}/{layout.meta_file} lacks the key {layout.names_key!r}")
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in meta[layout.names_key]]
    if len(names) != layout.num_classes:
        raise ValueError(f"{where}/{layout.meta_file}: {len(names)} class names, expected {layout.num_classes}")
    parts["classes"] = np.asarray(names, dtype=np.str_)
    return parts


def _read_archive(path: Path, layout: _Layout) -> dict[str, bytes]:
    wanted = {f"{layout.folder}/{name}": name for name in (*layout.train_files, *layout.test_files, layout.meta_file)}
    blobs: dict[str, bytes] = {}
    # One sequential pass: random access into a .tar.gz re-decompresses from the start.
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.lstrip("./"))
                if name is not None and member.isfile():
                    blobs[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # a read error of the disk itself, not of the archive's format
        raise ValueError(
            f"{path} has the expected MD5 but is not a readable {layout.title} tar.gz archive "
            f"({type(error).__name__}: {error or 'truncated'}); replace it with the official archive "
            f"({CIFAR_URLS[_dataset_of(layout)]}), or pass the MD5 of a valid one"
        ) from None
    missing = [member for member, name in wanted.items() if name not in blobs]
    if missing:
        raise ValueError(
            f"{path} is not a complete {layout.title} python archive: it lacks {', '.join(missing)}"
        )
    return blobs


def _dataset_of(layout: _Layout) -> str:
    return next(name for name, value in _LAYOUTS.items() if value is layout)


def _folder_files(folder: Path, layout: _Layout) -> list[Path]:
    return [folder / name for name in (*layout.train_files, *layout.test_files, layout.meta_file)]


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


def _cache_path(data_dir: Path, dataset: str, md5: str) -> Path:
    return data_dir / "cache" / f"{dataset}-{md5}.npz"


def _content_digest(parts: dict[str, np.ndarray]) -> str:
    """SHA-256 of the decoded dataset: images (uint8), labels (as int64) and class names, in a fixed order."""
    digest = hashlib.sha256()
    for key in _CACHE_KEYS:
        value = np.asarray(parts[key])
        if key.endswith("_labels"):
            value = value.astype(np.int64)
        elif key == "classes":
            value = np.frombuffer("\n".join(str(v) for v in value).encode("utf-8"), dtype=np.uint8)
        value = np.ascontiguousarray(value)
        digest.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
        digest.update(memoryview(value).cast("B"))
    return digest.hexdigest()


def _check_parts(parts: dict[str, np.ndarray]) -> str | None:
    """What is wrong with a cache's arrays (``None``: nothing): dtypes, lengths, label range."""
    classes = len(parts["classes"])
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 4:
            return f"{split} images are {images.dtype} {images.shape}, not uint8 NCHW"
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            return f"{labels.shape} {split} labels for {images.shape[0]} images"
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            return f"{split} labels outside 0..{classes - 1} (max {int(labels.max())})"
    return None


def _read_cache(path: Path, title: str = "CIFAR") -> dict[str, np.ndarray] | None:
    """The verified arrays of a cache file, or ``None`` (with a warning) when it must be rebuilt.

    ``title`` names the data set in the warning (``"Fashion-MNIST"`` for its cache).
    """
    found = _read_verified_cache(path, title)
    return None if found is None else found[0]


def _read_verified_cache(path: Path, title: str = "CIFAR") -> tuple[dict[str, np.ndarray], str] | None:
    """``(arrays, their SHA-256)`` of a verified cache file, or ``None`` (with a warning)."""
    try:
        # the file opened here, not by np.load: a damaged one is closed too (np.load leaks it on BadZipFile)
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            parts = {key: npz[key] for key in npz.files}
        if int(parts.pop("format", -1)) != _CACHE_FORMAT:
            return None  # an older layout: rebuilt silently
        stored = str(parts.pop("sha256"))
        if set(parts) != set(_CACHE_KEYS):
            raise ValueError(f"holds {sorted(parts)}, expected {sorted(_CACHE_KEYS)}")
        problem = _check_parts(parts)
        if problem is not None:
            raise ValueError(problem)
        if _content_digest(parts) != stored:
            raise ValueError("its arrays do not match the SHA-256 stored with them (edited or damaged)")
        return parts, stored
    except Exception as error:  # a truncated, edited or foreign cache file is rebuilt, never trusted
        warnings.warn(f"ignoring the {title} cache {path} ({error}); rebuilding it from the source", stacklevel=3)
        return None


def _write_cache(path: Path, parts: dict[str, np.ndarray], digest: str | None = None,
                 title: str = "CIFAR") -> None:
    # Labels fit in uint8 (at most 100 classes): the cache holds nothing but bytes.
    arrays = {key: (value.astype(np.uint8) if key.endswith("_labels") else value) for key, value in parts.items()}
    digest = digest or _content_digest(parts)
    try:
        with atomic_output(path) as handle:
            np.savez(handle, format=np.asarray(_CACHE_FORMAT), sha256=np.asarray(digest), **arrays)
    except OSError as error:  # a read-only shared dataset folder, a full disk: work without a cache
        warnings.warn(f"could not write the {title} cache {path} ({error}); continuing without it", stacklevel=3)


# --------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------


def download_cifar(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    expected_md5: str | None = None,
    progress: bool | None = None,
) -> Path:
    """Download the official archive into ``data_dir``, verify its MD5, and move it in place atomically.

    The bytes go to a temporary file beside the target; only a file whose MD5
    matches is renamed to ``<data_dir>/<archive name>``, so an interrupted or
    corrupt download never leaves a plausible-looking archive behind.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        data_dir: target folder (default :func:`default_data_dir`).
        url: source URL (default the official one in :data:`CIFAR_URLS`).
        expected_md5: the MD5 the file must have (default the official one).
        progress: tqdm progress bar; ``None`` shows it only on an interactive terminal.

    Returns:
        The archive's path.
    """
    layout = _check_dataset(dataset)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    url = url or CIFAR_URLS[dataset]
    expected = _check_md5(expected_md5) if expected_md5 is not None else CIFAR_MD5[dataset]
    target = data_dir / layout.archive
    data_dir.mkdir(parents=True, exist_ok=True)
    return download_verified(
        url, target, expected, what=layout.title,
        otherwise=f"download the archive elsewhere and copy it to {target}.",
        mismatch=lambda actual: _download_checksum_message(url, target, expected, actual, dataset),
        progress=progress)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_cifar(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    expected_md5: str | None = None,
) -> CifarData:
    """Load CIFAR-10 or CIFAR-100 from its official python archive or extracted folder.

    Looks in ``data_dir`` (default :func:`default_data_dir`) for the archive
    (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``) first, then for
    the extracted folder (``cifar-10-batches-py/`` / ``cifar-100-python/``). An
    archive is MD5-verified; the first load decodes it into
    ``<data_dir>/cache/<dataset>-<md5>.npz`` (uint8, written atomically) and
    later loads read that cache. A folder is not checksummed (its files are
    validated for shape and label range) and is cached under the MD5 of its
    files; an ``expected_md5`` given for a folder is refused (there is no archive
    to check it against), never silently ignored.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        data_dir: the folder holding the archive or folder.
        download: fetch the official archive when neither archive nor folder exists.
        expected_md5: the archive's expected MD5 (default the official one, :data:`CIFAR_MD5`);
            pass another for a custom archive such as :func:`write_synthetic_cifar`'s.

    Returns:
        A :class:`CifarData` with uint8 NCHW images and int64 labels.

    Raises:
        FileNotFoundError: neither archive nor folder (and no download), or a folder missing files.
        ChecksumError: the archive's MD5 is not the expected one.
        ValueError: ``expected_md5`` with only an extracted folder; an archive that is not a
            readable tar.gz; a batch that is not a CIFAR batch (each naming the file).
    """
    layout = _check_dataset(dataset)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir = data_dir.expanduser().resolve()
    check_data_folder(data_dir, layout.title, layout.archive)
    archive, folder = cifar_sources(dataset, data_dir)
    expected = _check_md5(expected_md5) if expected_md5 is not None else CIFAR_MD5[dataset]

    if not archive.is_file() and not folder.is_dir():
        if not download:
            raise FileNotFoundError(
                f"{layout.title} not found in {data_dir}: looked for the archive {archive} and the "
                f"extracted folder {folder}/. " + _how_to_obtain(layout, dataset, data_dir)
            )
        download_cifar(dataset, data_dir, expected_md5=expected)

    if archive.is_file():
        md5 = file_md5(archive)
        if md5 != expected:
            raise ChecksumError(_checksum_message(archive, expected, md5, dataset))
        source = archive

        def read_blobs() -> dict[str, bytes]:
            return _read_archive(archive, layout)
    else:
        if expected_md5 is not None:
            raise ValueError(
                f"An expected MD5 ({expected_md5}, --data-md5) checks an archive, but {data_dir} holds only the "
                f"extracted folder {folder}/, which has no archive MD5 to compare: remove --data-md5 (the "
                f"folder's files are checked for shape and label range), or put the archive {archive.name} "
                f"in {data_dir}"
            )
        files = _folder_files(folder, layout)
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"The {layout.title} folder {folder} is incomplete: missing {', '.join(missing)}. "
                + _how_to_obtain(layout, dataset, data_dir)
            )
        md5 = hashlib.md5("".join(f"{p.name}:{file_md5(p)};" for p in files).encode()).hexdigest()
        source = folder

        def read_blobs() -> dict[str, bytes]:
            return {path.name: path.read_bytes() for path in files}

    cache = _cache_path(data_dir, dataset, md5)
    found = _read_verified_cache(cache) if cache.is_file() else None
    if found is None:
        parts = _decode(read_blobs(), str(source), layout)
        content = _content_digest(parts)
        _write_cache(cache, parts, content)
    else:
        parts, content = found
    return CifarData(
        train_images=torch.from_numpy(np.ascontiguousarray(parts["train_images"])),
        train_labels=torch.from_numpy(parts["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(np.ascontiguousarray(parts["test_images"])),
        test_labels=torch.from_numpy(parts["test_labels"].astype(np.int64)),
        num_classes=layout.num_classes,
        classes=[str(name) for name in parts["classes"]],
        dataset=dataset,
        source=str(source),
        md5=md5,
        content_sha256=content,
    )
