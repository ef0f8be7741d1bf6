"""load_mnist and friends: real MNIST facts, search order, the array cache, errors."""

from __future__ import annotations

import collections
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from dlscratch.data import (
    DataError,
    DataNotFoundError,
    dataset_checksum,
    dataset_info,
    load_mnist,
    locate_dataset,
    write_idx,
)
from dlscratch.data import download as download_mod
from dlscratch.data import mnist as mnist_mod
from shared_data import DATA_ROOT, HAVE_MNIST, needs_mnist

README_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
PUBLISHED = {name: dict(sums) for name, sums in download_mod.CHECKSUMS.items()}
NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def make_tiny(folder: Path, seed: int = 0, n_train: int = 20, n_test: int = 10, gz: bool = True):
    """Write a small MNIST-format dataset; return its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": ((np.arange(n_train) + seed) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": ((np.arange(n_test) + seed + 3) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        name = NAMES[key] if gz else NAMES[key].removesuffix(".gz")
        write_idx(folder / name, array)
    return arrays


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Private cache, no DLSCRATCH_DATA, never any network, no published checksums."""
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLSCRATCH_DATA", raising=False)
    monkeypatch.setenv("DLSCRATCH_OFFLINE", "1")
    monkeypatch.setitem(download_mod.CHECKSUMS, "mnist", {})
    monkeypatch.setitem(download_mod.CHECKSUMS, "fashion-mnist", {})
    monkeypatch.setitem(mnist_mod.SYSTEM_DIRS, "fashion-mnist", ())


# ----------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """A cache dir holding parsed real MNIST (parsed once for the whole module)."""
    if not HAVE_MNIST:
        pytest.skip("no MNIST")
    cache = tmp_path_factory.mktemp("mnist-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLSCRATCH_CACHE", str(cache))
        mp.setenv("DLSCRATCH_DATA", str(DATA_ROOT))
        load_mnist(normalize=False)
    return cache


@pytest.fixture
def real_env(monkeypatch, real_cache):
    """Real MNIST through DLSCRATCH_DATA, the module's cache, published checksums."""
    monkeypatch.setenv("DLSCRATCH_CACHE", str(real_cache))
    monkeypatch.setenv("DLSCRATCH_DATA", str(DATA_ROOT))
    monkeypatch.setitem(download_mod.CHECKSUMS, "mnist", PUBLISHED["mnist"])


@pytest.fixture(scope="module")
def mnist_default(real_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLSCRATCH_CACHE", str(real_cache))
        mp.setenv("DLSCRATCH_DATA", str(DATA_ROOT))
        return load_mnist()


@needs_mnist
def test_default_load_matches_the_book(mnist_default):
    (x_train, t_train), (x_test, t_test) = mnist_default
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert t_train.shape == (60000,) and t_train.dtype == np.uint8
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert t_train[0] == 5
    assert t_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(t_train).tolist() == TRAIN_COUNTS
    assert np.bincount(t_test).tolist() == TEST_COUNTS


@needs_mnist
def test_uint8_unflattened_and_consistent_with_normalized(real_env, mnist_default):
    (x_train, t_train), (x_test, _) = load_mnist(normalize=False, flatten=False)
    assert x_train.shape == (60000, 1, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 1, 28, 28)
    assert x_train.max() == 255 and x_train.flags.writeable
    rows = x_train[:2000].reshape(2000, 784)
    assert np.array_equal(mnist_default[0][0][:2000], rows.astype(np.float32) / 255.0)
    assert np.array_equal(t_train, mnist_default[0][1])


@needs_mnist
def test_one_hot_labels(real_env):
    (_, t_train), (_, t_test) = load_mnist(one_hot_label=True)
    assert t_train.shape == (60000, 10) and t_train.dtype == np.float32
    assert t_test.shape == (10000, 10)
    assert set(np.unique(t_train).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(t_train.sum(axis=1), 1.0)
    assert t_test.argmax(axis=1)[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(t_train.argmax(axis=1)).tolist() == TRAIN_COUNTS


@needs_mnist
def test_dataset_info_on_real_mnist(real_env):
    info = dataset_info()
    assert info["dataset"] == "mnist" and info["found_in"] == "DLSCRATCH_DATA"
    assert Path(info["folder"]) == DATA_ROOT / "mnist"
    assert info["train_size"] == 60000 and info["test_size"] == 10000
    assert info["class_counts"] == {"train": TRAIN_COUNTS, "test": TEST_COUNTS}
    for key, entry in info["files"].items():
        assert entry["md5"] == README_MD5[key]
        assert entry["checksum"] == "ok"
        assert entry["size"] == (DATA_ROOT / "mnist" / NAMES[key]).stat().st_size
    assert info["files"]["train_images"]["shape"] == [60000, 28, 28]


@needs_mnist
def test_dataset_checksum_is_content_based_and_read_from_the_sidecar(real_env, monkeypatch):
    text = "".join(f"{key}:{README_MD5[key]}\n" for key in NAMES)
    expected = hashlib.md5(text.encode()).hexdigest()[:16]
    assert dataset_checksum() == expected

    def no_parsing(*args, **kwargs):
        raise AssertionError("dataset_checksum re-read the IDX files")

    monkeypatch.setattr(mnist_mod, "decompress_idx", no_parsing)
    assert dataset_checksum("mnist", DATA_ROOT / "mnist") == expected


@needs_mnist
def test_real_cache_entry_has_sidecar_and_arrays(real_env, real_cache):
    entries = list((real_cache / "arrays").glob("mnist-*"))
    assert len(entries) == 1
    names = sorted(p.name for p in entries[0].iterdir())
    assert names == ["meta.json", "t_test.npy", "t_train.npy", "x_test.npy", "x_train.npy"]


# ----------------------------------------------------------------------------- search order


def test_data_dir_beats_env_beats_cache(monkeypatch, tmp_path):
    explicit = make_tiny(tmp_path / "explicit", seed=1)
    from_env = make_tiny(tmp_path / "env" / "mnist", seed=2)
    cached = make_tiny(tmp_path / "cache" / "mnist", seed=3)
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "env"))

    (x, t), _ = load_mnist(normalize=False, flatten=False, data_dir=tmp_path / "explicit")
    np.testing.assert_array_equal(x[:, 0], explicit["train_images"])
    np.testing.assert_array_equal(t, explicit["train_labels"])

    (x, _), (_, t_test) = load_mnist(normalize=False, flatten=False)
    np.testing.assert_array_equal(x[:, 0], from_env["train_images"])
    np.testing.assert_array_equal(t_test, from_env["test_labels"])
    assert locate_dataset().found_in == "DLSCRATCH_DATA"

    monkeypatch.delenv("DLSCRATCH_DATA")
    (x, _), _ = load_mnist(normalize=False, flatten=False)
    np.testing.assert_array_equal(x[:, 0], cached["train_images"])
    assert locate_dataset().found_in == "cache"


def test_env_without_the_dataset_falls_through_to_cache(monkeypatch, tmp_path):
    (tmp_path / "env" / "mnist").mkdir(parents=True)
    cached = make_tiny(tmp_path / "cache" / "mnist", seed=3)
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "env"))
    _, (_, t_test) = load_mnist()
    np.testing.assert_array_equal(t_test, cached["test_labels"])


def test_data_dir_may_be_the_parent_folder(tmp_path):
    tiny = make_tiny(tmp_path / "root" / "mnist", seed=4)
    location = locate_dataset("mnist", tmp_path / "root")
    assert location.folder == tmp_path / "root" / "mnist" and location.found_in == "data_dir"
    _, (_, t_test) = load_mnist(data_dir=tmp_path / "root")
    np.testing.assert_array_equal(t_test, tiny["test_labels"])


def test_explicit_incomplete_data_dir_does_not_fall_back(monkeypatch, tmp_path):
    make_tiny(tmp_path / "env" / "mnist")
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "env"))
    folder = tmp_path / "partial"
    make_tiny(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match=r"partial \(missing t10k-labels-idx1-ubyte\.gz\)"):
        load_mnist(data_dir=folder)


def test_not_found_lists_every_place_and_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "mnist") in message
    assert str(tmp_path / "cache" / "mnist") in message
    assert "DLSCRATCH_OFFLINE" in message
    assert "data_dir=" in message and "DLSCRATCH_DATA" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DataError)


def test_not_found_says_when_env_is_unset():
    with pytest.raises(DataNotFoundError, match=r"\$DLSCRATCH_DATA/<dataset>: not set"):
        locate_dataset("mnist", download=False)


def test_fashion_mnist_from_env_and_from_system_dir(monkeypatch, tmp_path):
    tiny = make_tiny(tmp_path / "env" / "fashion-mnist", seed=5)
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "env"))
    (x, t), _ = load_mnist(dataset="fashion-mnist", one_hot_label=True)
    assert x.shape == (20, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(t.argmax(axis=1), tiny["train_labels"])

    monkeypatch.delenv("DLSCRATCH_DATA")
    system = make_tiny(tmp_path / "usr-share" / "fashion-mnist", seed=6)
    system_dir = tmp_path / "usr-share" / "fashion-mnist"
    monkeypatch.setitem(mnist_mod.SYSTEM_DIRS, "fashion-mnist", (str(system_dir),))
    assert locate_dataset("Fashion_MNIST").found_in == "system"
    _, (_, t_test) = load_mnist(dataset="fashion_mnist")
    np.testing.assert_array_equal(t_test, system["test_labels"])


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
#: The real places and checksums, before the autouse fixture hides them.
REAL_SYSTEM_DIRS = dict(mnist_mod.SYSTEM_DIRS)
REAL_CHECKSUMS = dict(download_mod.CHECKSUMS)


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debians_package(monkeypatch, tmp_path):
    """Debian re-gzips the files; the decompressed data must still be Zalando's, byte for byte."""
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(mnist_mod.SYSTEM_DIRS, "fashion-mnist", REAL_SYSTEM_DIRS["fashion-mnist"])
    monkeypatch.setitem(download_mod.CHECKSUMS, "fashion-mnist", REAL_CHECKSUMS["fashion-mnist"])
    assert str(DEBIAN_FASHION) in REAL_SYSTEM_DIRS["fashion-mnist"]
    assert locate_dataset("fashion-mnist").found_in == "system"
    (x, t), (x_test, t_test) = load_mnist(dataset="fashion-mnist", normalize=False)
    assert x.shape == (60000, 784) and x_test.shape == (10000, 784) and x.dtype == np.uint8
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(t), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(t_test), [1000] * 10)
    assert t[:5].tolist() == [9, 0, 0, 3, 0]  # ankle boot, T-shirt, T-shirt, dress, T-shirt
    info = dataset_info("fashion-mnist")
    assert {f["checksum"] for f in info["files"].values()} == {"ok"}


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; valid names: mnist, fashion"):
        load_mnist(dataset="cifar10")


def test_uncompressed_files_are_accepted(tmp_path):
    plain = make_tiny(tmp_path / "plain", seed=7, gz=False)
    (x, _), _ = load_mnist(normalize=False, data_dir=tmp_path / "plain")
    np.testing.assert_array_equal(x, plain["train_images"].reshape(20, 784))
    make_tiny(tmp_path / "gz", seed=7)
    assert dataset_checksum(data_dir=tmp_path / "plain") == dataset_checksum(
        data_dir=tmp_path / "gz"
    )


# ----------------------------------------------------------------------------- bad files


def test_labels_under_the_images_name_is_rejected(tmp_path):
    tiny = make_tiny(tmp_path / "d")
    write_idx(tmp_path / "d" / "train-images-idx3-ubyte.gz", tiny["train_labels"])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: expected images"):
        load_mnist(data_dir=tmp_path / "d")


def test_label_count_mismatch_is_rejected(tmp_path):
    make_tiny(tmp_path / "d")
    write_idx(tmp_path / "d" / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: 9 labels for 10 images"):
        load_mnist(data_dir=tmp_path / "d")


def test_truncated_source_file_is_rejected(tmp_path):
    make_tiny(tmp_path / "d")
    path = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated gzip"):
        load_mnist(data_dir=tmp_path / "d")


def test_published_checksum_mismatch_warns_and_is_reported(monkeypatch, tmp_path):
    monkeypatch.setitem(
        download_mod.CHECKSUMS,
        "mnist",
        {
            "train-images-idx3-ubyte.gz": download_mod.Checksum(raw="0" * 32),
        },
    )
    make_tiny(tmp_path / "d")
    with pytest.warns(UserWarning, match="differs from the original"):
        load_mnist(data_dir=tmp_path / "d")
    info = dataset_info(data_dir=tmp_path / "d")
    assert info["files"]["train_images"]["checksum"] == "mismatch"
    assert info["files"]["test_images"]["checksum"] == "unknown"


# ----------------------------------------------------------------------------- cache


def _entry(tmp_path: Path) -> Path:
    (entry,) = (tmp_path / "cache" / "arrays").iterdir()
    return entry


def test_second_load_comes_from_the_cache(monkeypatch, tmp_path):
    make_tiny(tmp_path / "d")
    first = load_mnist(data_dir=tmp_path / "d")

    def fail(*args, **kwargs):
        raise AssertionError("source files parsed again")

    monkeypatch.setattr(mnist_mod, "decompress_idx", fail)
    second = load_mnist(data_dir=tmp_path / "d")
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_cache_never_goes_into_the_data_folder(tmp_path):
    make_tiny(tmp_path / "d")
    before = sorted(p.name for p in (tmp_path / "d").iterdir())
    load_mnist(data_dir=tmp_path / "d")
    dataset_info(data_dir=tmp_path / "d")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == before
    assert (_entry(tmp_path) / "meta.json").is_file()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage-meta"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    tiny = make_tiny(tmp_path / "d")
    load_mnist(data_dir=tmp_path / "d")
    entry = _entry(tmp_path)
    npy = entry / "x_train.npy"
    if damage == "flip":
        blob = bytearray(npy.read_bytes())
        blob[-5] ^= 0xFF
        npy.write_bytes(bytes(blob))
    elif damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:200])
    else:
        (entry / "meta.json").write_text("{not json")
    if damage == "garbage-meta":
        (x, _), _ = load_mnist(normalize=False, data_dir=tmp_path / "d")  # silently rebuilt
    else:
        with pytest.warns(UserWarning, match="corrupt array cache"):
            (x, _), _ = load_mnist(normalize=False, data_dir=tmp_path / "d")
    np.testing.assert_array_equal(x, tiny["train_images"].reshape(20, 784))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x, _), _ = load_mnist(normalize=False, data_dir=tmp_path / "d")  # clean again
    np.testing.assert_array_equal(x, tiny["train_images"].reshape(20, 784))


@pytest.mark.parametrize("key", ["checksum", "raw_md5", "file_md5", "arrays"])
def test_sidecar_missing_a_field_is_rebuilt(tmp_path, key):
    make_tiny(tmp_path / "d")
    expected = dataset_checksum(data_dir=tmp_path / "d")
    sidecar = _entry(tmp_path) / "meta.json"
    meta = json.loads(sidecar.read_text())
    del meta[key]
    sidecar.write_text(json.dumps(meta))
    info = dataset_info(data_dir=tmp_path / "d")  # no KeyError: the entry is rebuilt
    assert info["checksum"] == expected == dataset_checksum(data_dir=tmp_path / "d")
    assert key in json.loads(sidecar.read_text())


def test_each_source_file_is_read_once(monkeypatch, tmp_path):
    make_tiny(tmp_path / "d")
    reads = collections.Counter()
    real_read = mnist_mod.read_file_bytes

    def counting(path, **kw):
        reads[path.name] += 1
        return real_read(path, **kw)

    monkeypatch.setattr(mnist_mod, "read_file_bytes", counting)
    dataset_info(data_dir=tmp_path / "d")  # parses, hashes, caches
    dataset_checksum(data_dir=tmp_path / "d")  # from the sidecar alone
    assert {name: reads[name] for name in NAMES.values()} == dict.fromkeys(NAMES.values(), 1)


def test_changed_source_files_invalidate_the_cache(tmp_path):
    make_tiny(tmp_path / "d", seed=1)
    load_mnist(data_dir=tmp_path / "d")
    old_entry = _entry(tmp_path)
    newer = make_tiny(tmp_path / "d", seed=2, n_train=30)
    (x, t), _ = load_mnist(normalize=False, data_dir=tmp_path / "d")
    np.testing.assert_array_equal(x, newer["train_images"].reshape(30, 784))
    np.testing.assert_array_equal(t, newer["train_labels"])
    assert _entry(tmp_path) != old_entry  # the stale entry was pruned


def test_unwritable_cache_still_loads(monkeypatch, tmp_path):
    tiny = make_tiny(tmp_path / "d")
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.warns(UserWarning, match="could not write the array cache"):
        _, (_, t_test) = load_mnist(data_dir=tmp_path / "d")
    np.testing.assert_array_equal(t_test, tiny["test_labels"])


def test_returned_arrays_do_not_alias_the_cache(tmp_path):
    make_tiny(tmp_path / "d")
    (x, t), _ = load_mnist(normalize=False, data_dir=tmp_path / "d")
    x[:] = 0
    t[:] = 0
    (x2, t2), _ = load_mnist(normalize=False, data_dir=tmp_path / "d")
    assert x2.any() and t2.any()
