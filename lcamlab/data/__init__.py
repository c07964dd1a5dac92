"""CIFAR-10 / CIFAR-100 for the WRN experiments (000 section 4): files, synthetic stand-ins, a device loader.

===========================  ===============================================================
module                       concern
===========================  ===============================================================
:mod:`.cifar`                the official archives and folders: MD5 verification, download,
                             decoding, the uint8 cache (:func:`load_cifar`)
:mod:`.fashion_mnist`         Fashion-MNIST's official IDX files (or Debian's recompressed copy):
                             MD5 verification, download, the same uint8 cache
                             (:func:`load_fashion_mnist`); generated IDX stand-ins
:mod:`.synthetic`            small CIFAR-format archives with learnable images, for tests and
                             quick mode (:func:`write_synthetic_cifar`, :func:`synthetic_cifar`)
:mod:`.loader`               the device-resident loader with crop/flip augmentation, random
                             as a pure function of ``(seed, epoch)`` (:class:`DeviceLoader`)
===========================  ===============================================================

Every public name is available from ``lcamlab.data`` directly.
"""

from lcamlab.data import cifar, fashion_mnist, loader, synthetic
from lcamlab.data.cifar import (
    CIFAR_MD5,
    CIFAR_URLS,
    DATA_DIR_ENV,
    DATASET_TITLES,
    DATASETS,
    NORMALIZATIONS,
    ChecksumError,
    CifarData,
    cifar_sources,
    default_data_dir,
    download_cifar,
    file_md5,
    load_cifar,
)
from lcamlab.data.loader import (
    DeviceLoader,
    EpochPlan,
    crop_flip,
    epoch_seed,
    normalize,
    sample_crop_flip,
)
from lcamlab.data.fashion_mnist import (
    FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR_ENV,
    FASHION_MNIST_FILES,
    FASHION_MNIST_IDX_MD5,
    FASHION_MNIST_MD5,
    FASHION_MNIST_SYSTEM_DIR,
    FASHION_MNIST_URL,
    download_fashion_mnist,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
    synthetic_fashion_mnist,
    write_idx,
    write_synthetic_fashion_mnist,
)
from lcamlab.data.synthetic import synthetic_cifar, write_synthetic_cifar

# The package exports exactly what its modules export.
__all__ = [*cifar.__all__, *synthetic.__all__, *loader.__all__, *fashion_mnist.__all__]
