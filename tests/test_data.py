"""Tests of lcamlab.data: official-format loading, checksums, cache, download, augmentation, DeviceLoader."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from scipy import stats

import lcamlab.data as data
from lcamlab.data import (
    CIFAR_MD5,
    NORMALIZATIONS,
    ChecksumError,
    DeviceLoader,
    crop_flip,
    download_cifar,
    epoch_seed,
    file_md5,
    load_cifar,
    sample_crop_flip,
    synthetic_cifar,
    write_synthetic_cifar,
)

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
TRAIN = {"cifar10": [f"data_batch_{i}" for i in range(1, 6)], "cifar100": ["train"]}
TEST = {"cifar10": ["test_batch"], "cifar100": ["test"]}


def _official_files(path, dataset):
    """The written member files, read independently of lcamlab.data (plain pickle, as the CIFAR page says)."""
    if path.is_dir():
        blobs = {p.name: p.read_bytes() for p in path.iterdir()}
    else:
        with tarfile.open(path, "r:gz") as tar:
            blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        assert all(name.startswith(FOLDERS[dataset] + "/") for name in blobs)
        blobs = {name.split("/", 1)[1]: blob for name, blob in blobs.items()}
    return {name: pickle.load(io.BytesIO(blob), encoding="bytes") for name, blob in blobs.items()}


def _expected_split(files, names, label_key):
    images = np.concatenate([files[n][b"data"] for n in names]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(files[n][label_key]) for n in names])
    return images, labels


# --------------------------------------------------------------------------------------
# Loading the official format
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("form", ["archive", "folder"])
def test_load_matches_what_was_written(tmp_path, dataset, form):
    path = write_synthetic_cifar(tmp_path, dataset, n_train=60, n_test=25, seed=3, form=form)
    assert path.name == (ARCHIVES[dataset] if form == "archive" else FOLDERS[dataset])
    files = _official_files(path, dataset)
    if dataset == "cifar10":
        assert set(files) == {*TRAIN[dataset], *TEST[dataset], "batches.meta"}
        names_key, label_key = b"label_names", b"labels"
        meta = files["batches.meta"]
    else:
        assert set(files) == {"train", "test", "meta"}
        names_key, label_key = b"fine_label_names", b"fine_labels"
        meta = files["meta"]
        assert len(meta[b"coarse_label_names"]) == 20
        for name in ("train", "test"):
            fine = np.asarray(files[name][b"fine_labels"])
            np.testing.assert_array_equal(files[name][b"coarse_labels"], fine // 5)

    md5 = file_md5(path) if form == "archive" else None
    loaded = load_cifar(dataset, tmp_path, expected_md5=md5)
    train_images, train_labels = _expected_split(files, TRAIN[dataset], label_key)
    test_images, test_labels = _expected_split(files, TEST[dataset], label_key)
    assert loaded.train_images.dtype == torch.uint8 and loaded.train_labels.dtype == torch.int64
    assert loaded.train_images.shape == (60, 3, 32, 32) and loaded.test_images.shape == (25, 3, 32, 32)
    np.testing.assert_array_equal(loaded.train_images.numpy(), train_images)
    np.testing.assert_array_equal(loaded.train_labels.numpy(), train_labels)
    np.testing.assert_array_equal(loaded.test_images.numpy(), test_images)
    np.testing.assert_array_equal(loaded.test_labels.numpy(), test_labels)
    assert loaded.classes == [n.decode() for n in meta[names_key]]
    assert loaded.num_classes == (10 if dataset == "cifar10" else 100)
    assert loaded.dataset == dataset and loaded.source == str(path.resolve())
    # Balanced, class-dependent labels: every class of CIFAR-10 appears.
    if dataset == "cifar10":
        assert set(loaded.train_labels.tolist()) == set(range(10))


def test_synthetic_archive_is_reproducible_and_never_overwritten(tmp_path):
    a = write_synthetic_cifar(tmp_path / "a", n_train=10, n_test=5, seed=1)
    b = write_synthetic_cifar(tmp_path / "b", n_train=10, n_test=5, seed=1)
    c = write_synthetic_cifar(tmp_path / "c", n_train=10, n_test=5, seed=2)
    assert file_md5(a) == file_md5(b) != file_md5(c)
    with pytest.raises(FileExistsError, match="already exists"):
        write_synthetic_cifar(tmp_path / "a", n_train=10, n_test=5, seed=1)
    write_synthetic_cifar(tmp_path / "a", n_train=10, n_test=5, seed=2, overwrite=True)
    assert file_md5(a) == file_md5(c)


def test_synthetic_cifar_is_written_once_and_reused(tmp_path):
    folder, md5 = synthetic_cifar(tmp_path, ["cifar10", "cifar100"], n_train=10, n_test=4)
    assert folder == tmp_path / "cifar-synthetic-n10-t4-s0"
    assert sorted(md5) == ["cifar10", "cifar100"] and all(len(v) == 32 for v in md5.values())
    again = synthetic_cifar(tmp_path, ["cifar10"], n_train=10, n_test=4)
    assert again == (folder, {"cifar10": md5["cifar10"]})
    with pytest.raises(ValueError, match="Invalid dataset"):
        synthetic_cifar(tmp_path, ["mnist"])


def test_synthetic_images_are_learnable(tmp_path):
    """Class means separate the classes: nearest-class-mean accuracy on the test split is high."""
    write_synthetic_cifar(tmp_path, n_train=400, n_test=200, form="folder")
    d = load_cifar("cifar10", tmp_path)
    x, y = d.train_images.float().flatten(1), d.train_labels
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(d.test_images.float().flatten(1), means).argmin(1)
    assert (predicted == d.test_labels).float().mean() > 0.9


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    path = write_synthetic_cifar(tmp_path, n_train=20, n_test=10)
    md5 = file_md5(path)
    first = load_cifar("cifar10", tmp_path, expected_md5=md5)
    cache = tmp_path / "cache" / f"cifar10-{md5}.npz"
    assert cache.is_file() and first.md5 == md5
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".")]  # no temp files left

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache exists")

    monkeypatch.setattr(data.cifar, "_decode", no_decode)  # the decoder load_cifar calls
    second = load_cifar("cifar10", tmp_path, expected_md5=md5)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, field), getattr(second, field))
    assert second.classes == first.classes

    # New contents -> new md5 -> a new cache entry (the decoder must run).
    monkeypatch.undo()
    write_synthetic_cifar(tmp_path, n_train=20, n_test=10, seed=9, overwrite=True)
    third = load_cifar("cifar10", tmp_path, expected_md5=file_md5(path))
    assert (tmp_path / "cache" / f"cifar10-{third.md5}.npz").is_file() and third.md5 != md5
    assert not torch.equal(third.train_images, first.train_images)


def test_corrupt_cache_is_rebuilt(tmp_path):
    path = write_synthetic_cifar(tmp_path, n_train=20, n_test=10)
    md5 = file_md5(path)
    reference = load_cifar("cifar10", tmp_path, expected_md5=md5)
    cache = tmp_path / "cache" / f"cifar10-{md5}.npz"
    cache.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load_cifar("cifar10", tmp_path, expected_md5=md5)
    assert torch.equal(rebuilt.train_images, reference.train_images)
    np.load(cache)  # valid again


def test_checksum_failure_message(tmp_path):
    path = write_synthetic_cifar(tmp_path, n_train=20, n_test=10)
    actual = file_md5(path)
    with pytest.raises(ChecksumError) as caught:
        load_cifar("cifar10", tmp_path)  # the official md5 is expected by default
    message = str(caught.value)
    for part in (str(path.resolve()), CIFAR_MD5["cifar10"], actual, "--download", "Delete it", "expected_md5"):
        assert part in message
    assert isinstance(caught.value, ValueError)  # the CLI prints ValueErrors as one line

    # A truncated copy of a known archive.
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ChecksumError, match=f"expected md5 {actual}, got {file_md5(path)}"):
        load_cifar("cifar10", tmp_path, expected_md5=actual)


def test_missing_data_message(tmp_path):
    empty = (tmp_path / "nothing").resolve()
    with pytest.raises(FileNotFoundError) as caught:
        load_cifar("cifar100", empty)
    message = str(caught.value)
    for part in (str(empty / "cifar-100-python.tar.gz"), str(empty / "cifar-100-python"),
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "lcamlab train", "--download",
                 "LCAMLAB_DATA_DIR"):
        assert part in message


def test_incomplete_folder_names_the_missing_files(tmp_path):
    folder = write_synthetic_cifar(tmp_path, n_train=20, n_test=10, form="folder")
    (folder / "data_batch_3").unlink()
    (folder / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        load_cifar("cifar10", tmp_path)
    message = str(caught.value)
    assert str(folder / "data_batch_3") in message and str(folder / "batches.meta") in message
    assert str(folder / "data_batch_1") not in message


def test_archive_missing_a_member(tmp_path):
    target = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/readme.html")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="lacks cifar-10-batches-py/data_batch_1"):
        load_cifar("cifar10", tmp_path, expected_md5=file_md5(target))


def test_unpickler_refuses_code(tmp_path):
    folder = write_synthetic_cifar(tmp_path, n_train=20, n_test=10, form="folder")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global"):
        load_cifar("cifar10", tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Invalid dataset: 'mnist'"):
        load_cifar("mnist")
    with pytest.raises(ValueError, match="Invalid form"):
        write_synthetic_cifar("/nonexistent", form="zip")
    with pytest.raises(ValueError, match="Invalid expected_md5: 'abc'"):
        load_cifar("cifar10", expected_md5="abc")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LCAMLAB_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    monkeypatch.delenv("LCAMLAB_DATA_DIR")
    assert data.default_data_dir().parts[-2:] == ("data", "cifar")


def test_download_verifies_and_writes_atomically(tmp_path, monkeypatch):
    source = write_synthetic_cifar(tmp_path / "server", n_train=20, n_test=10)
    md5 = file_md5(source)
    url = source.resolve().as_uri()  # file:// works offline and goes through the same urllib path

    target_dir = tmp_path / "wrong"
    with pytest.raises(ChecksumError) as caught:
        download_cifar("cifar10", target_dir, url=url, progress=False)  # the official md5 cannot match
    assert url in str(caught.value) and CIFAR_MD5["cifar10"] in str(caught.value) and md5 in str(caught.value)
    assert list(target_dir.iterdir()) == []  # neither the archive nor a temp file

    # load_cifar(download=True) fetches from CIFAR_URLS when nothing is there yet.
    monkeypatch.setitem(data.CIFAR_URLS, "cifar10", url)
    loaded = load_cifar("cifar10", tmp_path / "fresh", download=True, expected_md5=md5)
    assert file_md5(tmp_path / "fresh" / "cifar-10-python.tar.gz") == md5
    assert loaded.train_images.shape == (20, 3, 32, 32)

    with pytest.raises(FileNotFoundError, match="Could not download"):
        download_cifar("cifar10", tmp_path / "offline", url=(tmp_path / "absent.tar.gz").as_uri(), progress=False)


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------


def _reference_crop_flip(images, offsets, flips, pad):
    out = []
    for image, (oy, ox), flip in zip(images.numpy(), offsets.tolist(), flips.tolist()):
        padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)))
        crop = padded[:, oy:oy + image.shape[1], ox:ox + image.shape[2]]
        out.append(crop[:, :, ::-1] if flip else crop)
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("channels_last", [False, True])
def test_crop_flip_matches_per_image_reference(channels_last):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), generator=g, dtype=torch.uint8)
    offsets, flips = sample_crop_flip(40, g, pad=4)
    out = crop_flip(images, offsets, flips, 4, channels_last=channels_last)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.equal(out, _reference_crop_flip(images, offsets, flips, 4))
    # Offset (4, 4) without flip is the identity; with flip the mirror image.
    centre = torch.full((2, 2), 4)
    assert torch.equal(crop_flip(images[:2], centre, torch.tensor([False, True]), 4),
                       torch.stack([images[0], images[1].flip(-1)]))


def test_crop_offsets_uniform_and_flips_fair():
    n = 90_000
    offsets, flips = sample_crop_flip(n, torch.Generator().manual_seed(123), pad=4)
    assert offsets.min() == 0 and offsets.max() == 8
    for axis in range(2):
        counts = torch.bincount(offsets[:, axis], minlength=9).numpy()
        assert counts.size == 9
        assert stats.chisquare(counts).pvalue > 1e-3, counts
    joint = torch.bincount(offsets[:, 0] * 9 + offsets[:, 1], minlength=81).numpy()
    assert stats.chisquare(joint).pvalue > 1e-3  # independent row and column offsets
    fraction = flips.float().mean().item()
    assert abs(fraction - 0.5) < 4 * (0.25 / n) ** 0.5, fraction
    # A flip is independent of the offsets.
    table = np.array([[((offsets[:, 1] == k) & (flips == f)).sum().item() for k in range(9)] for f in (False, True)])
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_loader_offsets_uniform_over_epochs():
    """The offsets the DeviceLoader draws (its plan), pooled over epochs, are uniform on 0..8."""
    images = torch.zeros(2000, 3, 32, 32, dtype=torch.uint8)
    loader = DeviceLoader(images, torch.zeros(2000, dtype=torch.int64), batch_size=100, train=True, seed=4,
                          mean=(0.5,) * 3, std=(0.5,) * 3, device="cpu")
    plans = [loader.plan(e) for e in range(10)]
    offsets = torch.cat([p.offsets for p in plans])
    flips = torch.cat([p.flips for p in plans])
    counts = torch.bincount(offsets.flatten(), minlength=9).numpy()
    assert counts.size == 9 and stats.chisquare(counts).pvalue > 1e-3
    assert abs(flips.float().mean().item() - 0.5) < 4 * (0.25 / flips.numel()) ** 0.5


# --------------------------------------------------------------------------------------
# DeviceLoader
# --------------------------------------------------------------------------------------


def _loader(n=50, batch_size=16, seed=0, train=True, **kwargs):
    g = torch.Generator().manual_seed(99)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    mean, std = NORMALIZATIONS["imagenet"]
    return DeviceLoader(images, labels, batch_size=batch_size, train=train, seed=seed, mean=mean, std=std,
                        device="cpu", **kwargs)


def _epoch(loader, e):
    batches = list(loader.epoch(e))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_loader_permutation_fresh_every_epoch_and_pure():
    a, b = _loader(seed=7), _loader(seed=7)
    orders = [a.plan(e).order for e in range(4)]
    for order in orders:
        assert torch.equal(order.sort().values, torch.arange(50))  # a permutation
    assert all(not torch.equal(orders[i], orders[j]) for i in range(4) for j in range(i + 1, 4))
    # Same (seed, epoch) -> the same batches, whatever was drawn before (order of calls does not matter).
    list(b.epoch(3))
    for e in (2, 0):
        xa, ya = _epoch(a, e)
        xb, yb = _epoch(b, e)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(_loader(seed=8).plan(0).order, a.plan(0).order)
    # Every sample exactly once per epoch.
    _, labels = _epoch(a, 1)
    assert torch.equal(labels.sort().values, (torch.arange(50) % 10).sort().values)


def test_loader_batches_are_the_plan_applied():
    loader = _loader()
    plan = loader.plan(5)
    x, y = _epoch(loader, 5)
    expected = data.normalize(crop_flip(loader.images[plan.order], plan.offsets, plan.flips, 4), loader.mean, loader.std)
    torch.testing.assert_close(x, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(y, loader.labels[plan.order])
    first, _ = next(iter(loader.epoch(5)))
    assert first.dtype == torch.float32 and first.is_contiguous(memory_format=torch.channels_last)


def test_loader_lengths_and_last_batch():
    loader = _loader(n=50, batch_size=16)
    sizes = [x.shape[0] for x, _ in loader.epoch(0)]
    assert len(loader) == 4 and sizes == [16, 16, 16, 2]
    dropping = _loader(n=50, batch_size=16, drop_last=True)
    assert len(dropping) == 3 and [x.shape[0] for x, _ in dropping.epoch(0)] == [16, 16, 16]


def test_eval_loader_fixed_order_no_augmentation():
    loader = _loader(train=False, channels_last=False)
    x, y = _epoch(loader, 3)
    assert torch.equal(y, loader.labels)
    mean = torch.tensor(loader.mean).view(1, 3, 1, 1)
    std = torch.tensor(loader.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (loader.images.float() / 255 - mean) / std, rtol=1e-6, atol=1e-6)
    assert x.is_contiguous()
    assert torch.equal(_epoch(loader, 0)[0], x)


def test_epoch_seed_mixes():
    assert epoch_seed(0, 1) == epoch_seed(0, 1)
    assert len({epoch_seed(s, e) for s in range(5) for e in range(5)}) == 25
    with pytest.raises(ValueError, match="Invalid epoch"):
        epoch_seed(0, -1)


def test_loader_rejects_bad_arguments():
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    labels = torch.zeros(4, dtype=torch.int64)
    common = dict(train=True, seed=0, mean=(0.5,) * 3, std=(0.5,) * 3, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(images.float(), labels, batch_size=2, **common)
    with pytest.raises(ValueError, match="labels"):
        DeviceLoader(images, labels[:3], batch_size=2, **common)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(images, labels, batch_size=0, **common)
    with pytest.raises(ValueError, match="Invalid seed"):
        DeviceLoader(images, labels, batch_size=2, **{**common, "seed": -1})
    with pytest.raises(ValueError, match="std > 0"):
        DeviceLoader(images, labels, batch_size=2, **{**common, "std": (0.5, 0.0, 0.5)})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loader_never_synchronises_on_cuda():
    loader = _loader(n=512, batch_size=128)
    loader = DeviceLoader(loader.images, loader.labels, batch_size=128, train=True, seed=0, mean=loader.mean,
                          std=loader.std, device="cuda")
    list(loader.epoch(0))  # warm-up: allocator, kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batches = list(loader.epoch(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(batches) == 4 and batches[0][0].device.type == "cuda"
    # The CUDA batches are the plan applied, as on the CPU.
    plan = loader.plan(1)
    images = loader.images.cpu()[plan.order.cpu()]
    expected = data.normalize(crop_flip(images, plan.offsets.cpu(), plan.flips.cpu(), 4), loader.mean, loader.std)
    torch.testing.assert_close(torch.cat([x for x, _ in batches]).cpu(), expected, rtol=1e-6, atol=1e-6)
