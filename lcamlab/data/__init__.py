"""CIFAR-10 / CIFAR-100 for the WRN experiments (000 section 4): files, synthetic stand-ins, a device loader.

===========================  ===============================================================
module                       concern
===========================  ===============================================================
:mod:`.cifar`                the official archives and folders: MD5 verification, download,
                             decoding, the uint8 cache (:func:`load_cifar`)
:mod:`.synthetic`            small CIFAR-format archives with learnable images, for tests and
                             quick mode (:func:`write_synthetic_cifar`, :func:`synthetic_cifar`)
:mod:`.loader`               the device-resident loader with crop/flip augmentation, random
                             as a pure function of ``(seed, epoch)`` (:class:`DeviceLoader`)
===========================  ===============================================================

Every public name is available from ``lcamlab.data`` directly.
"""

from lcamlab.data import cifar, loader, synthetic
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
    get_normalization,
    load_cifar,
)
from lcamlab.data.loader import (
    DeviceLoader,
    EpochPlan,
    crop_flip,
    epoch_seed,
    normalize,
    random_crop_flip,
    sample_crop_flip,
)
from lcamlab.data.synthetic import synthetic_cifar, write_synthetic_cifar

# The package exports exactly what its modules export.
__all__ = [*cifar.__all__, *synthetic.__all__, *loader.__all__]
