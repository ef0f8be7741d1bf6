"""MNIST and Fashion-MNIST, loaded the way the book's ``load_mnist`` does.

Where the four IDX files are looked for, in order:

1. ``data_dir`` when given (a folder holding the files, or holding a
   ``<dataset>/`` subfolder with them). An explicit ``data_dir`` is the only
   place searched.
2. ``$DLSCRATCH_DATA/<dataset>/`` (``DLSCRATCH_DATA`` names a folder with one
   subfolder per dataset: ``mnist/``, ``fashion-mnist/``).
3. The user cache, ``cache_dir()/<dataset>/`` (``$DLSCRATCH_CACHE`` or the
   platform's user cache folder for ``dlscratch``).
4. For Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's package).

If none holds them, they are downloaded into the user cache (unless
``download=False`` or ``$DLSCRATCH_OFFLINE`` is set). Each file may be gzipped
(original name) or plain (name without ``.gz``).

Parsed arrays are cached as ``.npy`` files under ``cache_dir()/arrays/``, keyed
by the source files' paths, sizes and modification times, with a JSON sidecar
holding shapes, CRC32s of the array data and the MD5s of the decompressed
source files. A cache entry that does not match is rebuilt, never trusted.
Nothing is ever written next to the source files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlscratch.data.download import (
    CHECKSUMS,
    FILENAMES,
    ChecksumError,
    DownloadError,
    _md5,
    download_dataset,
)
from dlscratch.data.idx import (
    DataError,
    DataNotFoundError,
    atomic_write,
    decompress_idx,
    parse_idx,
    read_file_bytes,
)
from dlscratch.fileio import read_json

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "DatasetLocation",
    "cache_dir",
    "canonical_dataset",
    "dataset_checksum",
    "dataset_info",
    "load_mnist",
    "locate_dataset",
]

DATASETS = ("mnist", "fashion-mnist")
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "mnist": (),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

_CACHE_VERSION = 1
# what a usable sidecar holds besides "version" and "sources"
_SIDECAR_KEYS = {"raw_md5", "file_md5", "checksum", "arrays"}
# cached array name -> source file key in FILENAMES
_ARRAY_SOURCES = {
    "x_train": "train_images",
    "t_train": "train_labels",
    "x_test": "test_images",
    "t_test": "test_labels",
}


# ----------------------------------------------------------------------------- locating


def canonical_dataset(dataset: str) -> str:
    """Return the canonical dataset name (``"mnist"`` or ``"fashion-mnist"``).

    Case and ``_`` versus ``-`` do not matter. Raises ``ValueError`` listing the
    valid names for anything else.
    """
    name = str(dataset).strip().lower().replace("_", "-")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")
    return name


def cache_dir() -> Path:
    """Root of the dlscratch cache: ``$DLSCRATCH_CACHE`` or the user cache folder."""
    override = os.environ.get("DLSCRATCH_CACHE")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dlscratch"))


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset's four files were found.

    Attributes
    ----------
    dataset : str
        Canonical dataset name.
    folder : pathlib.Path
        Folder holding the files.
    found_in : str
        Which search place matched: ``"data_dir"``, ``"DLSCRATCH_DATA"``,
        ``"cache"``, ``"system"`` or ``"download"``.
    files : dict of str to pathlib.Path
        ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
    """

    dataset: str
    folder: Path
    found_in: str
    files: dict[str, Path] = field(default_factory=dict)


def _files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Find the four files in ``folder`` (``.gz`` or plain); return (found, missing names)."""
    found, missing = {}, []
    for key, name in FILENAMES.items():
        for candidate in (folder / name, folder / name.removesuffix(".gz")):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _search_places(dataset: str, data_dir) -> list[tuple[str, Path | None]]:
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        return [("data_dir", folder), ("data_dir", folder / dataset)]
    env = os.environ.get("DLSCRATCH_DATA")
    places: list[tuple[str, Path | None]] = [
        ("DLSCRATCH_DATA", Path(env).expanduser() / dataset if env else None),
        ("cache", cache_dir() / dataset),
    ]
    places += [("system", Path(p)) for p in SYSTEM_DIRS[dataset]]
    return places


def _describe_place(label: str, folder: Path | None) -> str:
    if folder is None:
        return f"${label}/<dataset>: not set"
    if not folder.is_dir():
        return f"{label}: {folder} (no such folder)"
    _, missing = _files_in(folder)
    return f"{label}: {folder} (missing {', '.join(missing)})"


def _offline() -> bool:
    return os.environ.get("DLSCRATCH_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _not_found(dataset: str, places, download_note: str) -> DataNotFoundError:
    looked = "\n".join(f"  - {_describe_place(label, folder)}" for label, folder in places)
    names = ", ".join(FILENAMES.values())
    return DataNotFoundError(
        f"{dataset} data files not found. Looked in:\n{looked}\n  - {download_note}\n"
        f"Point dlscratch at local copies of {names} (gzipped or not) with "
        f"load_mnist(data_dir='/path/to/folder') or --data-dir /path/to/folder, or set "
        f"DLSCRATCH_DATA to a folder holding a '{dataset}/' subfolder with them."
    )


def locate_dataset(
    dataset: str = "mnist", data_dir=None, *, download: bool = True, progress: bool = True
) -> DatasetLocation:
    """Find (or download) a dataset's four IDX files.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        Folder with the files (or with a ``<dataset>/`` subfolder); when given,
        nothing else is searched and nothing is downloaded.
    download : bool
        Download into ``cache_dir()/<dataset>`` when not found (ignored when
        ``$DLSCRATCH_OFFLINE`` is set).
    progress : bool
        Show download progress bars.

    Raises
    ------
    DataNotFoundError
        Not found anywhere and not downloadable; the message lists every place
        searched.
    """
    dataset = canonical_dataset(dataset)
    places = _search_places(dataset, data_dir)
    for label, folder in places:
        if folder is None or not folder.is_dir():
            continue
        found, missing = _files_in(folder)
        if not missing:
            return DatasetLocation(dataset, folder, label, found)
    if data_dir is not None:
        raise _not_found(dataset, places, "no download: data_dir was given explicitly")
    if not download:
        raise _not_found(
            dataset,
            places,
            "download: not attempted here (load_mnist() downloads; so does `dlscratch data "
            "download`)",
        )
    if _offline():
        raise _not_found(dataset, places, "download: disabled by DLSCRATCH_OFFLINE")
    target = cache_dir() / dataset
    try:
        download_dataset(dataset, target, progress=progress)
    except ChecksumError:
        raise  # something answered with the wrong data: not a "not found"
    except DownloadError as exc:
        raise _not_found(dataset, places, f"download into {target} failed:\n{exc}") from exc
    found, _ = _files_in(target)
    return DatasetLocation(dataset, target, "download", found)


# ----------------------------------------------------------------------------- parsing


def _checksum_status(dataset: str, key: str, path: Path, raw_md5: str, file_md5: str) -> str:
    """``"ok"``, ``"mismatch"`` or ``"unknown"`` for one source file."""
    expected = CHECKSUMS.get(dataset, {}).get(FILENAMES[key])
    if expected is None:
        return "unknown"
    if expected.raw is not None:
        return "ok" if raw_md5 == expected.raw else "mismatch"
    if expected.gz is not None and path.name.endswith(".gz") and file_md5 == expected.gz:
        return "ok"
    return "unknown"  # only a .gz MD5 is known; a re-compressed copy cannot be judged


def _check_images(x: np.ndarray, path: Path) -> None:
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or len(x) == 0:
        hint = "; is a labels file under an images file's name?" if x.ndim == 1 else ""
        raise DataError(
            f"{path}: expected images (uint8 IDX of shape (N, 28, 28)), found {x.dtype} "
            f"array of shape {x.shape}{hint}"
        )


def _check_labels(t: np.ndarray, n: int, path: Path) -> None:
    if t.dtype != np.uint8 or t.ndim != 1:
        hint = "; is an images file under a labels file's name?" if t.ndim == 3 else ""
        raise DataError(
            f"{path}: expected labels (1-D uint8 IDX), found {t.dtype} array of shape "
            f"{t.shape}{hint}"
        )
    if len(t) != n:
        raise DataError(f"{path}: {len(t)} labels for {n} images")
    if t.max() >= NUM_CLASSES:
        raise DataError(f"{path}: label {int(t.max())} out of range 0-{NUM_CLASSES - 1}")


#: A cache sidecar is a few kB; anything far larger is not ours.
_META_MAX_BYTES = 2**20


def _combined_checksum(raw_md5: dict[str, str]) -> str:
    text = "".join(f"{key}:{raw_md5[key]}\n" for key in FILENAMES)
    return _md5(text.encode())[:16]


def _parse_sources(location: DatasetLocation) -> tuple[dict[str, np.ndarray], dict]:
    """Read and validate the four files; return arrays and the sidecar's content fields."""
    arrays, raw_md5, file_md5 = {}, {}, {}
    for name, key in _ARRAY_SOURCES.items():
        path = location.files[key]
        data = read_file_bytes(path)  # read once: hashed as is and decompressed
        raw = decompress_idx(data, path)
        arrays[name] = parse_idx(raw, path)
        raw_md5[key] = _md5(raw)
        file_md5[key] = raw_md5[key] if raw is data else _md5(data)
        status = _checksum_status(location.dataset, key, path, raw_md5[key], file_md5[key])
        if status == "mismatch":
            expected = CHECKSUMS[location.dataset][FILENAMES[key]].raw
            warnings.warn(
                f"{path}: MD5 of the decompressed data is {raw_md5[key]}, but the published "
                f"{location.dataset} file has {expected}; the data differs from the original",
                stacklevel=5,  # _build_and_cache, _load_arrays, the public function, its caller
            )
    for split in ("train", "test"):
        _check_images(arrays[f"x_{split}"], location.files[f"{split}_images"])
        _check_labels(
            arrays[f"t_{split}"], len(arrays[f"x_{split}"]), location.files[f"{split}_labels"]
        )
    info = {"raw_md5": raw_md5, "file_md5": file_md5, "checksum": _combined_checksum(raw_md5)}
    return arrays, info


# ----------------------------------------------------------------------------- array cache


def _file_stat(path) -> dict:
    """What identifies a source file's version: resolved path, size, modification time."""
    path = Path(path)
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _source_stats(location: DatasetLocation) -> dict[str, dict]:
    return {key: _file_stat(path) for key, path in location.files.items()}


def _cache_entry(dataset: str, stats: dict) -> Path:
    key = hashlib.sha1(json.dumps(stats, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "arrays" / f"{dataset}-{key}"


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def _read_meta(entry: Path, stats: dict) -> dict | None:
    """The entry's sidecar if it exists, parses and describes the current sources."""
    try:
        meta = read_json(entry / "meta.json", max_bytes=_META_MAX_BYTES, max_depth=8)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != _CACHE_VERSION:
        return None
    if meta.get("sources") != stats or not _SIDECAR_KEYS <= meta.keys():
        return None
    return meta


def _read_cached_arrays(entry: Path, meta: dict) -> dict[str, np.ndarray]:
    """Memory-map the entry's arrays (read-only), checking each against the sidecar.

    Raises DataError when a file is unreadable or disagrees with the sidecar.
    """
    arrays = {}
    for name in _ARRAY_SOURCES:
        spec = meta["arrays"][name]
        path = entry / f"{name}.npy"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: unreadable ({exc})") from None
        if list(array.shape) != spec["shape"] or array.dtype.str != spec["dtype"]:
            raise DataError(
                f"{path}: shape {array.shape} {array.dtype}, sidecar says {spec['shape']} "
                f"{spec['dtype']}"
            )
        if _crc32(array) != spec["crc32"]:
            raise DataError(f"{path}: CRC32 of the data does not match the sidecar")
        arrays[name] = array
    return arrays


def _write_cache(entry: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays then the sidecar (last, so a partial entry never validates)."""
    entry.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (entry / "meta.json").unlink()
    for name, array in arrays.items():
        with atomic_write(entry / f"{name}.npy") as handle:
            np.save(handle, array, allow_pickle=False)
    with atomic_write(entry / "meta.json", "w") as handle:
        json.dump(meta, handle, indent=1)


def _prune_stale(entry: Path, dataset: str) -> None:
    """Remove other cache entries of ``dataset`` whose source files changed or vanished."""
    for other in entry.parent.glob(f"{dataset}-*"):
        if other == entry or not other.is_dir():
            continue
        try:
            meta = read_json(other / "meta.json", max_bytes=_META_MAX_BYTES, max_depth=8)
            sources = meta["sources"]
            stale = {key: _file_stat(s["path"]) for key, s in sources.items()} != sources
        except (OSError, ValueError, KeyError, TypeError):
            stale = True
        if stale:
            shutil.rmtree(other, ignore_errors=True)


def _build_and_cache(location: DatasetLocation, stats: dict, entry: Path):
    arrays, info = _parse_sources(location)
    meta = {
        "version": _CACHE_VERSION,
        "dataset": location.dataset,
        "sources": stats,
        **info,
        "arrays": {
            name: {"shape": list(a.shape), "dtype": a.dtype.str, "crc32": _crc32(a)}
            for name, a in arrays.items()
        },
    }
    try:
        _write_cache(entry, arrays, meta)
        _prune_stale(entry, location.dataset)
    except OSError as exc:
        warnings.warn(
            f"could not write the array cache in {entry} ({exc}); "
            f"set DLSCRATCH_CACHE to a writable folder",
            stacklevel=4,
        )
    return arrays, meta


def _load_arrays(dataset, data_dir, *, download=True, progress=True, need_arrays=True):
    """Raw uint8 arrays ``x_train, t_train, x_test, t_test``, their sidecar and location.

    With ``need_arrays=False`` a valid sidecar is returned with ``None`` for the
    arrays, without reading (and CRC-checking) the cached ``.npy`` files.
    """
    location = locate_dataset(dataset, data_dir, download=download, progress=progress)
    stats = _source_stats(location)
    entry = _cache_entry(location.dataset, stats)
    meta = _read_meta(entry, stats)
    if meta is not None and not need_arrays:
        return None, meta, location
    if meta is not None:
        try:
            return _read_cached_arrays(entry, meta), meta, location
        except (DataError, KeyError, TypeError) as exc:
            warnings.warn(f"ignoring corrupt array cache ({exc}); rebuilding it", stacklevel=3)
    arrays, meta = _build_and_cache(location, stats, entry)
    return arrays, meta, location


# ----------------------------------------------------------------------------- public API


def _images(x: np.ndarray, normalize: bool, flatten: bool) -> np.ndarray:
    """New (writable, never memory-mapped) image array in the requested layout."""
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *IMAGE_SHAPE)
    if normalize:
        return np.divide(x, np.float32(255.0), dtype=np.float32)
    return np.array(x)


def _labels(t: np.ndarray, one_hot: bool) -> np.ndarray:
    if one_hot:
        return np.eye(NUM_CLASSES, dtype=np.float32)[t]
    return np.array(t)


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    dataset: str = "mnist",
    data_dir=None,
    *,
    download: bool = True,
):
    """Load MNIST (or Fashion-MNIST) as the book's ``load_mnist`` does.

    Parameters
    ----------
    normalize : bool
        Scale pixels to float32 in [0, 1]; otherwise keep uint8 0-255.
    flatten : bool
        Images as rows of 784; otherwise as ``(N, 1, 28, 28)``.
    one_hot_label : bool
        Labels as float32 one-hot rows ``(N, 10)``; otherwise uint8 ``(N,)``.
    dataset : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        Folder holding the four files; see the module docstring for the
        search order when it is not given.
    download : bool
        Allow downloading into the user cache when the files are not found.

    Returns
    -------
    (x_train, t_train), (x_test, t_test)
        ``x`` float32 (or uint8) of shape ``(N, 784)`` or ``(N, 1, 28, 28)``;
        ``t`` uint8 ``(N,)`` or float32 ``(N, 10)``. N is 60000 / 10000.

    Raises
    ------
    ValueError
        Unknown dataset name.
    DataNotFoundError
        Files not found and not downloadable; lists the places searched.
    DataError
        A file is corrupt, truncated or not what its name says.
    """
    arrays, _, _ = _load_arrays(dataset, data_dir, download=download)
    return (
        (_images(arrays["x_train"], normalize, flatten), _labels(arrays["t_train"], one_hot_label)),
        (_images(arrays["x_test"], normalize, flatten), _labels(arrays["t_test"], one_hot_label)),
    )


def dataset_checksum(dataset: str = "mnist", data_dir=None, *, download: bool = False) -> str:
    """Short fingerprint of the dataset's content, for run metadata.

    The first 16 hex digits of an MD5 over the MD5s of the four decompressed
    files, so it does not depend on gzip wrapping or file location. Read from
    the cache sidecar when valid (a few stat calls), computed otherwise.
    """
    _, meta, _ = _load_arrays(dataset, data_dir, download=download, need_arrays=False)
    return str(meta["checksum"])


def dataset_info(dataset: str = "mnist", data_dir=None, *, download: bool = False) -> dict:
    """Describe a dataset: where its files are, sizes, class counts, checksum status.

    Returns
    -------
    dict
        ``dataset``, ``folder``, ``found_in``, ``files`` (per file key: ``path``,
        ``size`` in bytes, ``shape``, ``md5`` of the decompressed data,
        ``checksum``: ``"ok"``, ``"mismatch"`` or ``"unknown"``), ``train_size``,
        ``test_size``, ``image_shape``, ``class_names``, ``class_counts``
        (``{"train": [10 ints], "test": [10 ints]}``), ``checksum`` (see
        :func:`dataset_checksum`) and ``cache`` (the array cache folder).
    """
    arrays, meta, location = _load_arrays(dataset, data_dir, download=download)
    stats = meta["sources"]  # what _load_arrays checked the cache against
    files = {}
    for name, key in _ARRAY_SOURCES.items():
        path = location.files[key]
        files[key] = {
            "path": str(path),
            "size": stats[key]["size"],
            "shape": list(arrays[name].shape),
            "md5": meta["raw_md5"][key],
            "checksum": _checksum_status(
                location.dataset, key, path, meta["raw_md5"][key], meta["file_md5"][key]
            ),
        }
    return {
        "dataset": location.dataset,
        "folder": str(location.folder),
        "found_in": location.found_in,
        "files": files,
        "train_size": len(arrays["t_train"]),
        "test_size": len(arrays["t_test"]),
        "image_shape": list(IMAGE_SHAPE),
        "class_names": list(CLASS_NAMES[location.dataset]),
        "class_counts": {
            split: np.bincount(arrays[f"t_{split}"], minlength=NUM_CLASSES).tolist()
            for split in ("train", "test")
        },
        "checksum": meta["checksum"],
        "cache": str(_cache_entry(location.dataset, stats)),
    }
