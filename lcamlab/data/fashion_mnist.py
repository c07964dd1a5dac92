r"""Fashion-MNIST on disk: verified reading of the official IDX files and the uint8 cache.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017: "Fashion-MNIST: a Novel Image
Dataset for Benchmarking Machine Learning Algorithms") has 60 000 training and
10 000 test images of 28x28 greyscale clothing, 10 classes, in MNIST's IDX
format. It is the laptop-scale stand-in for CIFAR in lcamlab's WRN protocol
(the LCAM paper's Figures 3-5 and Table 1 at a size one CPU core trains).

Where the files are looked for (:func:`fashion_mnist_dir`), in this order:

1. ``data_dir`` (``--data-dir``);
2. ``$LCAMLAB_FASHION_MNIST_DIR``;
3. the Debian/Ubuntu package's folder ``/usr/share/datasets/fashion-mnist``
   (``apt-get install dataset-fashion-mnist``) when it holds the four files;
4. ``<repository>/data/fashion-mnist``, where ``download=True`` (``--download``)
   fetches the official files.

Each of the four files (:data:`FASHION_MNIST_FILES`) may be the official
``.gz`` or its decompressed IDX file. Verification: a ``.gz`` whose MD5 is the
official one (:data:`FASHION_MNIST_MD5`) is accepted as it is; any other file
is accepted only if its *decompressed IDX payload* has the official payload
MD5 (:data:`FASHION_MNIST_IDX_MD5`). The second rule admits recompressed
copies such as the Debian package's, whose ``.gz`` files were rewritten by the
packager (other gzip headers, other MD5s) but hold the very same bytes.
Anything else raises :class:`ChecksumError` naming the file and the fix; a
truncated file, a foreign IDX header or a wrong shape raise ``ValueError``
naming the path. The decoded arrays are cached as uint8 in
``<cache_dir>/cache/fashion-mnist-<md5>.npz`` (the repository's data folder
when the source folder is read-only), exactly like CIFAR's cache.

IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``
(type ``0x08``: unsigned byte), then ``ndim`` big-endian uint32 dimensions,
then the data in C order.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from lcamlab import paths
from lcamlab.data.cifar import (ChecksumError, CifarData, _read_cache, _write_cache, check_data_folder,
                                 download_verified, file_md5)

__all__ = [
    "FASHION_MNIST",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_IDX_MD5",
    "FASHION_MNIST_URL",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_NORMALIZATION",
    "FASHION_MNIST_SYSTEM_DIR",
    "FASHION_MNIST_DIR_ENV",
    "fashion_mnist_dir",
    "read_idx",
    "write_idx",
    "download_fashion_mnist",
    "load_fashion_mnist",
    "write_synthetic_fashion_mnist",
    "synthetic_fashion_mnist",
]

FASHION_MNIST = "fashion-mnist"

#: split -> (images file, labels file), the official names.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: MD5 of the official .gz files (github.com/zalandoresearch/fashion-mnist, as torchvision checks them).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

#: MD5 of the decompressed IDX payloads of those files (as torchvision-style loaders list them);
#: a recompressed copy (Debian's dataset-fashion-mnist) is verified against these.
FASHION_MNIST_IDX_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}

FASHION_MNIST_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"

#: Per-channel (mean, std) on the [0, 1] scale: the 60 000 training images (measured: 0.2860, 0.3530).
FASHION_MNIST_NORMALIZATION = ((0.2860,), (0.3530,))

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

#: Where Debian's ``dataset-fashion-mnist`` package puts the four .gz files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_DIR_ENV = "LCAMLAB_FASHION_MNIST_DIR"

_SHAPES = {"train": 60000, "test": 10000}
_IDX_UBYTE = 0x08


def _all_files() -> list[str]:
    return [name for pair in FASHION_MNIST_FILES.values() for name in pair]


def _present(folder: Path, name: str) -> Path | None:
    """The file for official name ``name`` in ``folder``: the .gz, else its decompressed twin."""
    for candidate in (folder / name, folder / name[:-3]):
        if candidate.is_file():
            return candidate
    return None


def _complete(folder: Path) -> bool:
    return all(_present(folder, name) is not None for name in _all_files())


def fashion_mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder :func:`load_fashion_mnist` reads: ``data_dir``, else ``$LCAMLAB_FASHION_MNIST_DIR``,
    else the system package's folder when complete, else ``<repository>/data/fashion-mnist``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(FASHION_MNIST_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if _complete(FASHION_MNIST_SYSTEM_DIR):
        return FASHION_MNIST_SYSTEM_DIR
    return paths.data_dir("fashion-mnist")


def _how_to_obtain(folder: Path) -> str:
    return (f"Install Debian's package (`apt-get install dataset-fashion-mnist`, files in "
            f"{FASHION_MNIST_SYSTEM_DIR}), or run with --download (load_fashion_mnist(..., download=True)) to fetch "
            f"the official files from {FASHION_MNIST_URL} into {folder}, or pass --data-dir DIR holding "
            f"{', '.join(_all_files())}.")


# --------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------


def _raw_bytes(path: Path) -> bytes:
    """The IDX payload of ``path`` (decompressed when gzip), with a clear error for a truncated gzip."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:
            raise ValueError(
                f"{path} is a truncated or corrupt gzip file ({error}); delete it and get it again "
                f"(--download, or the dataset-fashion-mnist package)") from error
    return data


def read_idx(path: str | os.PathLike, *, ndim: int | None = None, payload: bytes | None = None) -> np.ndarray:
    """Decode an IDX file (optionally gzip-compressed) of unsigned bytes into a uint8 array.

    Args:
        path: the file (``.gz`` or plain).
        ndim: the number of dimensions it must have (3 for images, 1 for labels).
        payload: its already decompressed bytes (avoids reading the file twice).

    Raises:
        ValueError: not an IDX file of unsigned bytes, the wrong number of dimensions, or
            fewer/more data bytes than the header announces (a truncated file); the message
            names ``path``.
    """
    path = Path(path)
    raw = _raw_bytes(path) if payload is None else payload
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); "
                         f"expected the Fashion-MNIST IDX format")
    dtype, dims = raw[2], raw[3]
    if dtype != _IDX_UBYTE:
        raise ValueError(f"{path}: IDX data type 0x{dtype:02x}, expected 0x08 (unsigned byte)")
    if ndim is not None and dims != ndim:
        raise ValueError(f"{path}: IDX file with {dims} dimensions, expected {ndim} "
                         f"({'images N x 28 x 28' if ndim == 3 else 'labels N'})")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its IDX header")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) if dims else 0
    body = len(raw) - header
    if body != expected:
        kind = "truncated" if body < expected else "longer than its header says"
        raise ValueError(f"{path} is {kind}: header announces shape {shape} ({expected} bytes), found {body} "
                         f"data bytes; delete it and get it again (--download, or the dataset-fashion-mnist package)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); for tests."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = bytes([0, 0, _IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        blob = gzip.compress(blob, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


# --------------------------------------------------------------------------------------
# Verification, download, loading
# --------------------------------------------------------------------------------------


def _verify(path: Path, name: str, expected: dict[str, str] | None) -> tuple[bytes, str]:
    """Check one file; returns its IDX payload and the MD5 that identifies it.

    ``expected`` None: the official sums (.gz MD5, else payload MD5); a dict: custom payload
    MD5s (e.g. generated test files), keyed by official name.
    """
    payload = _raw_bytes(path)
    payload_md5 = hashlib.md5(payload).hexdigest()
    if expected is not None:
        want = expected.get(name)
        if want is not None and payload_md5 != want:
            raise ChecksumError(f"Checksum mismatch for {path}: its IDX payload has md5 {payload_md5}, expected "
                                f"{want} (the md5 given for this file set). Regenerate or replace the file.")
        return payload, payload_md5
    if path.suffix == ".gz" and file_md5(path) == FASHION_MNIST_MD5[name]:
        return payload, payload_md5
    if payload_md5 != FASHION_MNIST_IDX_MD5[name]:
        raise ChecksumError(
            f"Checksum mismatch for {path}: neither the file (md5 {file_md5(path)}, official .gz "
            f"{FASHION_MNIST_MD5[name]}) nor its IDX payload (md5 {payload_md5}, official "
            f"{FASHION_MNIST_IDX_MD5[name]}) is the official Fashion-MNIST {name}. The file is corrupt, truncated "
            f"or not Fashion-MNIST: delete it and run with --download, or reinstall dataset-fashion-mnist.")
    return payload, payload_md5


def download_fashion_mnist(data_dir: str | os.PathLike | None = None, *, url: str | None = None,
                           progress: bool | None = None) -> Path:
    """Fetch the four official .gz files into ``data_dir`` (MD5-verified, each moved in place atomically)."""
    folder = Path(data_dir) if data_dir is not None else paths.data_dir("fashion-mnist")
    base = url or FASHION_MNIST_URL
    folder.mkdir(parents=True, exist_ok=True)
    for name in _all_files():
        target = folder / name
        if target.is_file() and file_md5(target) == FASHION_MNIST_MD5[name]:
            continue
        source, expected = base + name, FASHION_MNIST_MD5[name]
        download_verified(
            source, target, expected, what="Fashion-MNIST", otherwise=_how_to_obtain(folder), progress=progress,
            mismatch=lambda actual: (f"Checksum mismatch for the download of {source}: expected md5 {expected}, "
                                     f"got {actual}; nothing was written to {target}. Try again, or fetch the "
                                     f"file yourself."))
    return folder


def _writable_cache_root(folder: Path) -> Path:
    # never write into a system package's folder (or any read-only one)
    if folder == FASHION_MNIST_SYSTEM_DIR.resolve() or not os.access(folder, os.W_OK):
        return paths.data_dir("fashion-mnist")
    return folder


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = False,
                       expected_md5: dict[str, str] | str | None = None,
                       cache_dir: str | os.PathLike | None = None) -> CifarData:
    """Load Fashion-MNIST as uint8 tensors ``(N, 1, 28, 28)`` (the same container as CIFAR's).

    Args:
        data_dir: the folder with the four files (default :func:`fashion_mnist_dir`).
        download: fetch the official files when some are missing.
        expected_md5: custom payload MD5s ``{official name: md5}`` (generated test files);
            a string is taken as the MD5 of the identifying digest of all four (the run's ``data_md5``).
        cache_dir: where ``cache/`` goes (default: ``data_dir`` when writable, else ``<repo>/data/fashion-mnist``).

    Returns:
        A :class:`lcamlab.data.CifarData` (``dataset="fashion-mnist"``, 10 classes).

    Raises:
        FileNotFoundError: files missing and no download (the message says how to get them).
        ChecksumError: a file that is not the official one.
        ValueError: a truncated file, a foreign IDX header, or a wrong shape (naming the path).
    """
    folder = fashion_mnist_dir(data_dir).resolve()
    check_data_folder(folder, "Fashion-MNIST", ", ".join(_all_files()))
    if not _complete(folder):
        if download:
            download_fashion_mnist(folder)
        else:
            missing = [name for name in _all_files() if _present(folder, name) is None]
            raise FileNotFoundError(f"Fashion-MNIST not found in {folder}: missing {', '.join(missing)}. "
                                    + _how_to_obtain(folder))
    # official sums unless the caller names its own (a dict per file, or the set's digest)
    custom = expected_md5 if isinstance(expected_md5, dict) else ({} if isinstance(expected_md5, str) else None)
    files = {name: _present(folder, name) for name in _all_files()}
    # Identify the file set by its payload MD5s (the same for the official .gz and a recompressed copy).
    payloads: dict[str, bytes] = {}
    sums: dict[str, str] = {}
    for name, path in files.items():
        payloads[name], sums[name] = _verify(path, name, custom)
    md5 = hashlib.md5("".join(f"{name}:{sums[name]};" for name in _all_files()).encode()).hexdigest()
    if isinstance(expected_md5, str) and expected_md5.lower() != md5:
        raise ChecksumError(f"Checksum mismatch for the Fashion-MNIST files in {folder}: digest {md5}, "
                            f"expected {expected_md5}")
    root = Path(cache_dir) if cache_dir is not None else _writable_cache_root(folder)
    cache = root / "cache" / f"{FASHION_MNIST}-{md5}.npz"
    parts = _read_cache(cache, "Fashion-MNIST") if cache.is_file() else None
    if parts is None:
        parts = {}
        for split, (images_name, labels_name) in FASHION_MNIST_FILES.items():
            images = read_idx(files[images_name], ndim=3, payload=payloads[images_name])
            labels = read_idx(files[labels_name], ndim=1, payload=payloads[labels_name])
            if images.shape[1:] != (28, 28):
                raise ValueError(f"{files[images_name]}: images of shape {images.shape[1:]}, expected 28 x 28")
            if custom is None and images.shape[0] != _SHAPES[split]:
                raise ValueError(f"{files[images_name]}: {images.shape[0]} images, expected {_SHAPES[split]}")
            if labels.shape[0] != images.shape[0]:
                raise ValueError(f"{files[labels_name]}: {labels.shape[0]} labels for {images.shape[0]} images "
                                 f"in {files[images_name]}")
            if labels.size and int(labels.max()) >= 10:
                raise ValueError(f"{files[labels_name]}: labels outside 0..9")
            parts[f"{split}_images"] = images.reshape(-1, 1, 28, 28)
            parts[f"{split}_labels"] = labels.astype(np.int64)
        parts["classes"] = np.asarray(FASHION_MNIST_CLASSES, dtype=np.str_)
        _write_cache(cache, parts, title="Fashion-MNIST")
    return CifarData(
        train_images=torch.from_numpy(np.ascontiguousarray(parts["train_images"])),
        train_labels=torch.from_numpy(parts["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(np.ascontiguousarray(parts["test_images"])),
        test_labels=torch.from_numpy(parts["test_labels"].astype(np.int64)),
        num_classes=10,
        classes=[str(name) for name in parts["classes"]],
        dataset=FASHION_MNIST,
        source=str(folder),
        md5=md5,
    )


# --------------------------------------------------------------------------------------
# Generated stand-ins (tests, quick mode)
# --------------------------------------------------------------------------------------


def write_synthetic_fashion_mnist(folder: str | os.PathLike, *, n_train: int = 512, n_test: int = 256,
                                  seed: int = 0) -> tuple[Path, str]:
    """Write four small IDX .gz files laid out like Fashion-MNIST, with learnable images.

    Image of label ``c``: a smooth random 28x28 pattern :math:`P_c` plus noise
    :math:`N(0, 24^2)`, clipped to 0..255 (byte-reproducible for a seed: gzip mtime 0).

    Returns:
        ``(folder, digest)``: the folder and the MD5 that identifies the set
        (pass it as ``load_fashion_mnist(expected_md5=digest)`` / the run's ``data_md5``).
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid {name}: {value!r} (must be an integer >= 1)")
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(10, 7, 7))
    prototypes = np.kron(coarse, np.ones((1, 4, 4)))  # (10, 28, 28): blocks of 4x4 pixels
    prototypes = (prototypes + prototypes[:, :, ::-1]) / 2  # left-right symmetric: flips keep the class
    sums = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels = np.arange(count) % 10
        rng.shuffle(labels)
        images = np.clip(np.rint(prototypes[labels] + rng.normal(0, 24, size=(count, 28, 28))), 0, 255)
        images_name, labels_name = FASHION_MNIST_FILES[split]
        write_idx(folder / images_name, images.astype(np.uint8))
        write_idx(folder / labels_name, labels.astype(np.uint8))
        for name in (images_name, labels_name):
            sums[name] = hashlib.md5(gzip.decompress((folder / name).read_bytes())).hexdigest()
    digest = hashlib.md5("".join(f"{name}:{sums[name]};" for name in _all_files()).encode()).hexdigest()
    return folder, digest


def synthetic_fashion_mnist(data_dir: str | os.PathLike, *, n_train: int = 512, n_test: int = 256,
                            seed: int = 0) -> tuple[Path, str]:
    """:func:`write_synthetic_fashion_mnist` into ``<data_dir>/synthetic-fashion-mnist-<n_train>-<n_test>-s<seed>``
    (written once, reused)."""
    folder = Path(data_dir) / f"synthetic-fashion-mnist-{n_train}-{n_test}-s{seed}"
    return write_synthetic_fashion_mnist(folder, n_train=n_train, n_test=n_test, seed=seed)
