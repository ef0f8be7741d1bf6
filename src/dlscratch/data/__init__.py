"""Datasets and mini-batching: MNIST / Fashion-MNIST loading, IDX files, splits.

>>> from dlscratch.data import load_mnist
>>> (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)  # doctest: +SKIP
>>> x_train.shape, x_train.dtype, t_train[:3]                           # doctest: +SKIP
((60000, 784), dtype('float32'), array([5, 0, 4], dtype=uint8))
"""

from dlscratch.data.batching import (
    BatchSampler,
    as_rng,
    iterate_minibatches,
    sample_minibatch,
    to_float,
)
from dlscratch.data.download import (
    CHECKSUMS,
    MIRRORS,
    ChecksumError,
    DownloadError,
    download_dataset,
    download_file,
)
from dlscratch.data.idx import DataError, DataNotFoundError, read_idx, write_idx
from dlscratch.data.mnist import (
    CLASS_NAMES,
    DATASETS,
    cache_dir,
    dataset_checksum,
    dataset_info,
    load_mnist,
    locate_dataset,
)
from dlscratch.data.split import shuffle_dataset, train_val_split

__all__ = [
    "CHECKSUMS",
    "CLASS_NAMES",
    "DATASETS",
    "MIRRORS",
    "BatchSampler",
    "ChecksumError",
    "DataError",
    "DataNotFoundError",
    "DownloadError",
    "as_rng",
    "cache_dir",
    "dataset_checksum",
    "dataset_info",
    "download_dataset",
    "download_file",
    "iterate_minibatches",
    "load_mnist",
    "locate_dataset",
    "read_idx",
    "sample_minibatch",
    "shuffle_dataset",
    "to_float",
    "train_val_split",
    "write_idx",
]
