r"""Small CIFAR-shaped datasets in the official python format, for tests and the notebooks' quick mode.

:func:`write_synthetic_cifar` writes an archive or folder laid out exactly like
the official one, with learnable class-dependent images, so the whole pipeline
(checksum, decoding, cache, :class:`~lcamlab.data.loader.DeviceLoader`, training)
runs in seconds on a CPU. :func:`synthetic_cifar` writes such archives once
into a folder named by their size and seed and reuses them afterwards.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcamlab.data.cifar import _check_dataset, file_md5
from lcamlab.provenance import atomic_write_bytes

__all__ = ["write_synthetic_cifar", "synthetic_cifar"]

_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


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


def synthetic_cifar(
    data_dir: str | os.PathLike,
    datasets: Sequence[str],
    *,
    n_train: int = 512,
    n_test: int = 256,
    seed: int = 0,
) -> tuple[Path, dict[str, str]]:
    """CIFAR-format archives of synthetic images for tiny end-to-end runs (quick mode, CI).

    Written once by :func:`write_synthetic_cifar` into
    ``<data_dir>/cifar-synthetic-n<n_train>-t<n_test>-s<seed>/`` and reused afterwards: the
    archives are byte-reproducible, so their MD5 (which the trainer verifies through
    ``data_md5``) stays the same between sessions.

    Returns:
        ``(folder, {dataset: archive MD5})``.
    """
    folder = Path(data_dir) / f"cifar-synthetic-n{n_train}-t{n_test}-s{seed}"
    md5 = {}
    for dataset in datasets:
        archive = folder / _check_dataset(dataset).archive
        if not archive.is_file():
            archive = write_synthetic_cifar(folder, dataset, n_train=n_train, n_test=n_test, seed=seed)
        md5[dataset] = file_md5(archive)
    return folder, md5
