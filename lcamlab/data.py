r"""CIFAR-10 / CIFAR-100: verified loading, a uint8 cache, and a device-resident loader.

The WRN experiments of the LCAM paper (000 section 4, 001 section 4) train on
CIFAR-10 and CIFAR-100 (50 000 training and 10 000 test images of 32x32x3)
with the classic augmentation: a random 32x32 crop of the image zero-padded by
4 pixels, and a random horizontal flip; batch 128, reshuffled every epoch.

This module has three parts:

* :func:`load_cifar` reads the official *python* archives
  (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``) or their extracted
  folders, verifies archives against the official MD5 sums, optionally
  downloads them (``download=True``, progress bar, atomic), and decodes them
  once into a compact uint8 cache (``<data_dir>/cache/<dataset>-<md5>.npz``)
  that later loads reuse.
* :func:`write_synthetic_cifar` writes a small archive or folder in the same
  official format with learnable class-dependent images, for tests and the
  notebooks' quick mode.
* :class:`DeviceLoader` keeps a whole split on the training device as uint8
  and produces normalised, augmented batches there, vectorised over the batch,
  with no CPU workers and no host synchronisation per batch. Its randomness
  (permutation, crop offsets, flips) is a pure function of ``(seed, epoch)``,
  so an interrupted run resumes exactly from the epoch number alone.

The official files are Python pickles. Following the dataset's own
instructions they are read with ``encoding="bytes"``, through an unpickler that
only admits the few globals such a file contains (numpy's array
reconstruction), so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import sys
import tarfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lcamlab.provenance import atomic_output, atomic_write_bytes

__all__ = [
    "DATASETS",
    "CIFAR_MD5",
    "CIFAR_URLS",
    "NORMALIZATIONS",
    "DATA_DIR_ENV",
    "ChecksumError",
    "CifarData",
    "default_data_dir",
    "get_normalization",
    "file_md5",
    "download_cifar",
    "load_cifar",
    "write_synthetic_cifar",
    "epoch_seed",
    "sample_crop_flip",
    "crop_flip",
    "random_crop_flip",
    "normalize",
    "EpochPlan",
    "DeviceLoader",
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

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_CACHE_FORMAT = 1
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

_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


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


def default_data_dir() -> Path:
    """The CIFAR folder: ``$LCAMLAB_DATA_DIR`` if set, else ``<repository>/data/cifar``."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return _PACKAGE_ROOT / "data" / "cifar"


def get_normalization(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(mean, std)`` of a named normalisation in :data:`NORMALIZATIONS`."""
    if name not in NORMALIZATIONS:
        raise ValueError(f"Invalid normalization: {name!r} (must be one of {', '.join(NORMALIZATIONS)})")
    return NORMALIZATIONS[name]


def file_md5(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hexadecimal MD5 sum of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    labels = np.asarray(batch[layout.label_key], dtype=np.int64)
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
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = wanted.get(member.name.lstrip("./"))
            if name is not None and member.isfile():
                blobs[name] = tar.extractfile(member).read()
    missing = [member for member, name in wanted.items() if name not in blobs]
    if missing:
        raise ValueError(
            f"{path} is not a complete {layout.title} python archive: it lacks {', '.join(missing)}"
        )
    return blobs


def _folder_files(folder: Path, layout: _Layout) -> list[Path]:
    return [folder / name for name in (*layout.train_files, *layout.test_files, layout.meta_file)]


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


def _cache_path(data_dir: Path, dataset: str, md5: str) -> Path:
    return data_dir / "cache" / f"{dataset}-{md5}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            parts = {key: npz[key] for key in npz.files}
        if int(parts.pop("format")) != _CACHE_FORMAT or set(parts) != set(_CACHE_KEYS):
            return None
        return parts
    except Exception as error:  # a truncated or foreign cache file is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable CIFAR cache {path} ({error}); rebuilding it", stacklevel=3)
        return None


def _write_cache(path: Path, parts: dict[str, np.ndarray]) -> None:
    # Labels fit in uint8 (at most 100 classes): the cache is all bytes, ~180 MB per dataset.
    arrays = {key: (value.astype(np.uint8) if key.endswith("_labels") else value) for key, value in parts.items()}
    try:
        with atomic_output(path) as handle:
            np.savez(handle, format=np.asarray(_CACHE_FORMAT), **arrays)
    except OSError as error:  # a read-only shared dataset folder, a full disk: work without a cache
        warnings.warn(f"could not write the CIFAR cache {path} ({error}); continuing without it", stacklevel=3)


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
    from tqdm.auto import tqdm

    print(f"lcamlab: downloading {url} to {target}", file=sys.stderr)
    digest = hashlib.md5()
    # Only a file whose MD5 matches is renamed into place (atomic_output drops it otherwise).
    with atomic_output(target, suffix=".part") as handle:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError) as error:
            raise FileNotFoundError(
                f"Could not download {layout.title} from {url} ({error}). Are you online? Otherwise "
                f"download the archive elsewhere and copy it to {target}."
            ) from error
        with response:
            total = response.headers.get("Content-Length")
            disable = (not sys.stderr.isatty()) if progress is None else not progress
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=layout.archive, disable=disable) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(_download_checksum_message(url, target, expected, actual, dataset))
    return target


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
    files.

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
    """
    layout = _check_dataset(dataset)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir = data_dir.expanduser().resolve()
    archive = data_dir / layout.archive
    folder = data_dir / layout.folder
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
    parts = _read_cache(cache) if cache.is_file() else None
    if parts is None:
        parts = _decode(read_blobs(), str(source), layout)
        _write_cache(cache, parts)
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
    )


# --------------------------------------------------------------------------------------
# Synthetic data in the official format
# --------------------------------------------------------------------------------------


def _synthetic_images(labels: np.ndarray, prototypes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Each class is a smooth, left-right symmetric colour pattern (so flips and
    # 4-pixel shifts keep it recognisable) plus per-image noise.
    noise = rng.normal(0.0, 24.0, size=(labels.size, 3, 32, 32))
    images = prototypes[labels] + noise
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def write_synthetic_cifar(
    data_dir: str | os.PathLike,
    dataset: str = "cifar10",
    *,
    n_train: int = 512,
    n_test: int = 256,
    seed: int = 0,
    form: str = "archive",
    overwrite: bool = False,
) -> Path:
    r"""Write a small CIFAR-shaped dataset in the official python format.

    The layout is exactly the official one (CIFAR-10: ``cifar-10-batches-py/``
    with ``data_batch_1..5``, ``test_batch``, ``batches.meta``; CIFAR-100:
    ``cifar-100-python/`` with ``train``, ``test``, ``meta`` holding
    ``fine_labels`` / ``coarse_labels``), pickled with byte-string keys as the
    originals. Image of label :math:`c`: :math:`x = \mathrm{clip}(P_c + \varepsilon)`,
    :math:`\varepsilon \sim N(0, 24^2)`, where :math:`P_c` is a random smooth,
    left-right symmetric colour pattern, so tiny runs show a falling loss.
    The archive is byte-reproducible for a given seed (tar and gzip times are 0),
    so its MD5 is stable; pass it to ``load_cifar(expected_md5=...)``.

    Args:
        data_dir: folder to write into (created if needed).
        dataset: ``"cifar10"`` or ``"cifar100"``.
        n_train: training images (CIFAR-10 splits them over the five batches).
        n_test: test images.
        seed: seed of the patterns, labels and noise.
        form: ``"archive"`` (``.tar.gz``) or ``"folder"`` (the extracted folder).
        overwrite: replace an existing archive/folder (never done silently).

    Returns:
        The path of the archive or folder written.
    """
    layout = _check_dataset(dataset)
    if form not in ("archive", "folder"):
        raise ValueError(f"Invalid form: {form!r} (must be 'archive' or 'folder')")
    min_train = len(layout.train_files)
    if not isinstance(n_train, int) or n_train < min_train:
        raise ValueError(f"Invalid n_train: {n_train} (must be an int >= {min_train})")
    if not isinstance(n_test, int) or n_test < 1:
        raise ValueError(f"Invalid n_test: {n_test} (must be an int >= 1)")
    data_dir = Path(data_dir)
    target = data_dir / (layout.archive if form == "archive" else layout.folder)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; write_synthetic_cifar never replaces data silently "
            f"(choose another folder or pass overwrite=True)."
        )

    rng = np.random.default_rng(seed)
    k = layout.num_classes
    half = rng.uniform(40.0, 215.0, size=(k, 3, 4, 2))
    coarse = np.concatenate([half, half[..., ::-1]], axis=-1)  # mirror: flip-invariant pattern
    prototypes = coarse.repeat(8, axis=2).repeat(8, axis=3)  # 8x8 blocks survive 4-pixel shifts

    def labels_for(n: int) -> np.ndarray:
        return rng.permutation(np.arange(n) % k).astype(np.int64)

    train_labels, test_labels = labels_for(n_train), labels_for(n_test)
    train_images = _synthetic_images(train_labels, prototypes, rng)
    test_images = _synthetic_images(test_labels, prototypes, rng)

    def batch(images: np.ndarray, labels: np.ndarray, name: str, offset: int) -> bytes:
        entry: dict[bytes, Any] = {
            b"batch_label": f"synthetic {name} (lcamlab, seed {seed})".encode(),
            b"data": images.reshape(len(images), -1),
            b"filenames": [f"synthetic_{offset + i:06d}.png".encode() for i in range(len(images))],
        }
        if dataset == "cifar10":
            entry[b"labels"] = [int(v) for v in labels]
        else:
            entry[b"fine_labels"] = [int(v) for v in labels]
            entry[b"coarse_labels"] = [int(v) // 5 for v in labels]
        return pickle.dumps(entry, protocol=2)

    files: dict[str, bytes] = {}
    if dataset == "cifar10":
        bounds = np.linspace(0, n_train, 6).astype(int)
        for i, name in enumerate(layout.train_files):
            lo, hi = bounds[i], bounds[i + 1]
            files[name] = batch(train_images[lo:hi], train_labels[lo:hi], name, lo)
        files["test_batch"] = batch(test_images, test_labels, "test_batch", 0)
        files["batches.meta"] = pickle.dumps(
            {b"num_cases_per_batch": int(bounds[1]), b"label_names": [n.encode() for n in _CIFAR10_NAMES],
             b"num_vis": 3072}, protocol=2)
    else:
        files["train"] = batch(train_images, train_labels, "train", 0)
        files["test"] = batch(test_images, test_labels, "test", 0)
        files["meta"] = pickle.dumps(
            {b"fine_label_names": [f"fine_{i:02d}".encode() for i in range(100)],
             b"coarse_label_names": [f"coarse_{i:02d}".encode() for i in range(20)]}, protocol=2)

    if form == "folder":
        for name, blob in files.items():
            atomic_write_bytes(target / name, blob)
        return target
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{layout.folder}/{name}")
            info.size, info.mtime, info.mode = len(blob), 0, 0o644
            tar.addfile(info, io.BytesIO(blob))
    gz_bytes = io.BytesIO()
    with gzip.GzipFile(fileobj=gz_bytes, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar_bytes.getvalue())
    atomic_write_bytes(target, gz_bytes.getvalue())
    return target


# --------------------------------------------------------------------------------------
# Augmentation on the device
# --------------------------------------------------------------------------------------


def epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit generator seed that is a pure function of ``(seed, epoch)``.

    Mixed with numpy's ``SeedSequence`` so neighbouring ``(seed, epoch)`` pairs
    give unrelated streams (``seed + epoch`` would make seed 0 epoch 1 equal
    seed 1 epoch 0).
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Invalid seed: {seed} (must be an int >= 0)")
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"Invalid epoch: {epoch} (must be an int >= 0, 0-based)")
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0])


def sample_crop_flip(n: int, generator: torch.Generator, pad: int = 4) -> tuple[Tensor, Tensor]:
    r"""Draw crop offsets and flips for ``n`` images.

    .. math::

        (o_y, o_x) \sim \mathcal U\{0, \dots, 2p\}^2, \qquad f \sim \mathrm{Bernoulli}(1/2)

    Returns:
        ``offsets`` ``(n, 2)`` int64 (row, column) and ``flips`` ``(n,)`` bool, on the generator's device.
    """
    device = generator.device
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=device)
    flips = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    return offsets, flips


def crop_flip(images: Tensor, offsets: Tensor, flips: Tensor, pad: int = 4, *, channels_last: bool = False) -> Tensor:
    r"""Crop each zero-padded image at its offset and mirror the flipped ones, in one gather.

    With :math:`\tilde x` the image zero-padded by :math:`p` on every side and
    :math:`H \times W` the image size,

    .. math::

        y_{b,c,i,j} = \tilde x_{b,\,c,\; o_{y,b} + i,\; o_{x,b} + (W-1-j \text{ if } f_b \text{ else } j)},

    i.e. torchvision's ``RandomCrop(H, padding=p)`` followed by
    ``RandomHorizontalFlip`` (000 section 4's augmentation), vectorised over
    the batch: no Python loop over images, no host synchronisation.

    Args:
        images: ``(B, C, H, W)`` (any dtype; uint8 in the loader).
        offsets: ``(B, 2)`` integer (row, column) offsets in ``0..2p``.
        flips: ``(B,)`` bool.
        pad: zero padding ``p``.
        channels_last: return a channels_last tensor (gathered in NHWC order directly, no extra copy).

    Returns:
        ``(B, C, H, W)`` of the input dtype.
    """
    b, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad)) if pad > 0 else images
    rows = offsets[:, 0:1] + torch.arange(h, device=device)  # (B, H)
    j = torch.arange(w, device=device)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], (w - 1) - j, j)  # (B, W)
    batch_index = torch.arange(b, device=device)
    channel_index = torch.arange(c, device=device)
    if channels_last:
        out = padded[batch_index[:, None, None, None], channel_index[None, None, None, :],
                     rows[:, :, None, None], cols[:, None, :, None]]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2)
    return padded[batch_index[:, None, None, None], channel_index[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(
    images: Tensor, generator: torch.Generator, pad: int = 4, *, return_params: bool = False
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """:func:`sample_crop_flip` then :func:`crop_flip`: a random crop of the padded images and a random flip.

    Args:
        images: ``(B, C, H, W)`` on the generator's device.
        generator: the source of randomness (seeded by the caller).
        pad: zero padding.
        return_params: also return the sampled ``offsets`` ``(B, 2)`` and ``flips`` ``(B,)``.

    Returns:
        The augmented batch, or ``(batch, offsets, flips)``.
    """
    offsets, flips = sample_crop_flip(images.shape[0], generator, pad)
    out = crop_flip(images, offsets, flips, pad)
    return (out, offsets, flips) if return_params else out


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    r"""uint8 images to normalised float32: :math:`(x / 255 - \mu_c) / \sigma_c`, as ``ToTensor`` + ``Normalize``."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


# --------------------------------------------------------------------------------------
# The device-resident loader
# --------------------------------------------------------------------------------------


class EpochPlan(NamedTuple):
    """Everything random about one epoch: sample order, crop offsets and flips (per batch position)."""

    order: Tensor  # (N,) int64: the permutation (arange when not training)
    offsets: Tensor | None  # (N, 2) int64, None when not training
    flips: Tensor | None  # (N,) bool, None when not training


class DeviceLoader:
    r"""Batches of a whole split kept on the device as uint8, augmented and normalised there.

    Per training epoch ``e`` one generator seeded with :func:`epoch_seed`
    ``(seed, e)`` on the loader's device draws, in this order, the permutation
    of the N samples, their crop offsets :math:`\mathcal U\{0..2p\}^2` and their
    flips (p = 1/2) (:meth:`plan`). Batch ``k`` then takes positions
    ``k*B .. k*B+B-1`` of the permutation and applies :func:`crop_flip` and
    :math:`(x/255-\mu)/\sigma` in a handful of batched kernels. The epoch's
    batches are therefore a pure function of ``(seed, e)`` (on a given device
    type: CPU and CUDA generators differ), which is all an exact resume needs.
    Nothing reads a tensor back to the host, so the GPU is never stalled.
    ``train=False`` gives the split in its stored order, unaugmented.

    Matches 000 section 4: zero-padding 4, random 32x32 crop, random
    horizontal flip, reshuffled every epoch.

    Args:
        images_uint8: ``(N, C, H, W)`` uint8 (CPU or device).
        labels: ``(N,)`` integer labels.
        batch_size: images per batch.
        train: shuffle and augment (otherwise fixed order, no augmentation).
        seed: the run's seed (>= 0).
        mean, std: per-channel normalisation on the [0, 1] scale (see :data:`NORMALIZATIONS`).
        device: where the data lives and the batches are made.
        drop_last: drop the last incomplete batch.
        pad: zero padding of the crop (4 in the paper).
        channels_last: yield channels_last batches (the engine's memory format).
    """

    def __init__(
        self,
        images_uint8: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        train: bool,
        seed: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device,
        drop_last: bool = False,
        pad: int = 4,
        channels_last: bool = True,
    ) -> None:
        if not isinstance(images_uint8, Tensor) or images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
            raise ValueError(
                f"Invalid images: expected a uint8 tensor (N, C, H, W), got "
                f"{getattr(images_uint8, 'dtype', type(images_uint8))} {tuple(getattr(images_uint8, 'shape', ()))}"
            )
        n, c = images_uint8.shape[:2]
        if not isinstance(labels, Tensor) or labels.shape != (n,):
            raise ValueError(f"Invalid labels: expected a tensor of shape ({n},), got {tuple(getattr(labels, 'shape', ()))}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size} (must be an int >= 1)")
        if not isinstance(pad, int) or pad < 0:
            raise ValueError(f"Invalid pad: {pad} (must be an int >= 0)")
        epoch_seed(seed, 0)  # validates the seed
        if len(mean) != c or len(std) != c or any(s <= 0 for s in std):
            raise ValueError(f"Invalid normalisation mean={tuple(mean)} std={tuple(std)} "
                             f"(need {c} values each, std > 0)")
        if n == 0:
            raise ValueError("Invalid images: the split is empty")
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            # Pin the index so the epoch generator and the tensors name the same device.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.images = images_uint8.to(self.device).contiguous()
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.train = bool(train)
        self.seed = int(seed)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.drop_last = bool(drop_last)
        self.pad = pad
        self.channels_last = bool(channels_last)
        # (x/255 - mean)/std == x*scale + shift: one fused multiply-add per batch.
        std_t = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t

    @property
    def num_samples(self) -> int:
        """Images in the split."""
        return self.images.shape[0]

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def plan(self, epoch: int) -> EpochPlan:
        """The permutation, offsets and flips of 0-based ``epoch`` (a pure function of ``(seed, epoch)``)."""
        if not self.train:
            return EpochPlan(torch.arange(self.num_samples, device=self.device), None, None)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.num_samples, generator=generator, device=self.device)
        offsets, flips = sample_crop_flip(self.num_samples, generator, self.pad)
        return EpochPlan(order, offsets, flips)

    def _normalise(self, images: Tensor) -> Tensor:
        # Elementwise ops keep the input's memory format, so a channels_last gather stays channels_last.
        return torch.addcmul(self._shift, images.float(), self._scale)

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(images float32 (B, C, H, W), labels int64 (B,))`` for 0-based ``epoch``, on the device."""
        plan = self.plan(epoch)
        for k in range(len(self)):
            lo = k * self.batch_size
            hi = min(lo + self.batch_size, self.num_samples)
            index = plan.order[lo:hi]
            batch = self.images.index_select(0, index)
            if self.train:
                batch = crop_flip(batch, plan.offsets[lo:hi], plan.flips[lo:hi], self.pad,
                                  channels_last=self.channels_last)
            elif self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield self._normalise(batch), self.labels.index_select(0, index)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Epoch 0 (for evaluation loaders, whose order never changes)."""
        return self.epoch(0)
