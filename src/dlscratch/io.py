"""Model files: save and load networks, and read the book's pickled weights safely.

Our format is one ``.npz`` archive (read with ``allow_pickle=False``, so
loading a file can never run code) holding

* every parameter and buffer of the network by name (``W1``, ``b1``,
  ``gamma1``, ``running_mean1``, ...), exactly :meth:`Network.state_dict`;
* optionally the optimizer's state arrays under ``optim/<slot>/<param>``
  (e.g. ``optim/m/W1`` for Adam's first moment of ``W1``);
* ``__metadata__``: UTF-8 JSON bytes (a ``uint8`` array) with the
  architecture (:meth:`Network.get_config`), dtype, library and NumPy versions,
  the optimizer's type, hyperparameters and step count, and any user metadata
  (a training summary, say) under ``"user"``.

The same JSON is written beside the archive as ``<stem>.json`` for people to
read. Both files are written atomically (:func:`dlscratch.fileio.atomic_path`).
:func:`load_model` rebuilds the network from the metadata alone.

The book ships its trained weights as ``sample_weight.pkl``, a pickled dict of
NumPy arrays. ``pickle.load`` on such a file runs whatever the file asks for;
:func:`load_book_weights` instead unpickles through an allow-list that admits
only the few NumPy functions that rebuild arrays and dtypes, and refuses
anything else (:class:`UnsafePickleError`) before it can run.

>>> from dlscratch.io import load_book_weights, save_model, load_model
>>> net = load_book_weights("sample_weight.pkl")        # doctest: +SKIP
>>> save_model("book.npz", net)                          # doctest: +SKIP
>>> load_model("book.npz")                               # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlscratch.fileio import atomic_path, json_default, write_text

#: Name of the archive entry holding the JSON metadata.
METADATA_KEY = "__metadata__"
#: Prefix of the archive entries holding optimizer state: ``optim/<slot>/<param>``.
OPTIM_PREFIX = "optim/"
#: Prefix of the archive entries holding a checkpoint's training state: ``state/...``.
STATE_PREFIX = "state/"
#: ``metadata["format"]`` of our files, and the newest format version this code reads.
FORMAT_NAME = "dlscratch-model"
FORMAT_VERSION = 1
#: File name :func:`save_model` and :func:`load_model` use inside a run directory.
MODEL_FILENAME = "model.npz"

#: The arrays of the book's ``sample_weight.pkl`` and their shapes (784-50-100-10).
BOOK_SHAPES = {
    "W1": (784, 50),
    "b1": (50,),
    "W2": (50, 100),
    "b2": (100,),
    "W3": (100, 10),
    "b3": (10,),
}

__all__ = [
    "BOOK_SHAPES",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "MODEL_FILENAME",
    "BOOK_WEIGHTS_NAME",
    "LoadedModel",
    "MAX_PARAMETERS",
    "ModelArchive",
    "UnsafePickleError",
    "convert_book_weights",
    "find_book_weights",
    "load_book_weights",
    "load_checkpoint",
    "load_model",
    "load_network",
    "network_size",
    "read_book_pickle",
    "read_metadata",
    "resolve_model_path",
    "save_model",
    "write_model_file",
]


# -- our format: writing -------------------------------------------------------------------


def save_model(path, net, *, optimizer=None, metadata: dict | None = None) -> Path:
    """Write ``net`` (and optionally ``optimizer``) to one ``.npz`` file plus a JSON sidecar.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; ``.npz`` is appended when missing. An existing directory
        (a run folder) receives ``model.npz``.
    net : Network
        Any network with ``state_dict()`` and ``get_config()`` (MultiLayerNet,
        TwoLayerNet).
    optimizer : Optimizer, optional
        Saved with its hyperparameters, step count ``t`` and state arrays, so
        that :func:`load_checkpoint` can resume training exactly.
    metadata : dict, optional
        Anything JSON-serialisable (e.g. a training summary); stored under
        ``metadata["user"]``.

    Returns
    -------
    Path
        The ``.npz`` file written. ``<stem>.json`` beside it holds the same
        metadata for reading.
    """
    return write_model_file(path, net, optimizer=optimizer, metadata=metadata)


def write_model_file(
    path, net, *, optimizer=None, metadata: dict | None = None, extra_arrays=None, sidecar=True
) -> Path:
    """:func:`save_model` plus ``extra_arrays`` (entry name -> array, names starting with
    ``state/``) in the same archive; ``sidecar=False`` writes no ``<stem>.json``.

    The archive is written atomically (:func:`dlscratch.fileio.atomic_path`): at
    every instant the target is either the old complete file or the new one.
    """
    path = _npz_target(path)
    if not (hasattr(net, "state_dict") and hasattr(net, "get_config")):
        raise TypeError(
            f"save_model needs a network with state_dict() and get_config(), "
            f"got {type(net).__name__}"
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")

    state = net.state_dict()
    arrays = {name: np.asarray(a) for name, a in state.items()}
    param_names = set(getattr(net, "params", state))
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": net.get_config(),
        "dtype": np.dtype(getattr(net, "dtype", arrays[next(iter(arrays))].dtype)).name,
        "parameters": {n: list(a.shape) for n, a in arrays.items() if n in param_names},
        "buffers": {n: list(a.shape) for n, a in arrays.items() if n not in param_names},
        "dlscratch_version": _library_version(),
        "numpy_version": np.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(net, "random_state"):
        meta["random_state"] = net.random_state()
    if optimizer is not None:
        ostate = optimizer.state_dict()
        meta["optimizer"] = {
            "type": ostate["type"],
            "hyperparameters": ostate["hyperparameters"],
            "t": int(ostate["t"]),
            "slots": {slot: sorted(bufs) for slot, bufs in ostate["state"].items()},
        }
        for slot, bufs in ostate["state"].items():
            for name, a in bufs.items():
                if "/" in slot or "/" in name:
                    raise ValueError(
                        f"optimizer slot/parameter names may not contain '/': {slot!r}/{name!r}"
                    )
                arrays[f"{OPTIM_PREFIX}{slot}/{name}"] = np.asarray(a)
    else:
        meta["optimizer"] = None
    if metadata is not None:
        meta["user"] = metadata
    try:
        text = json.dumps(meta, indent=2, default=json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from exc
    arrays[METADATA_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    for key, value in (extra_arrays or {}).items():
        if not key.startswith(STATE_PREFIX):
            raise ValueError(f"extra entries must be named {STATE_PREFIX}..., got {key!r}")
        arrays[key] = np.asarray(value)

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    if sidecar:
        write_text(path.with_suffix(".json"), text)
    return path


def _npz_target(path) -> Path:
    path = Path(path)
    if path.is_dir():
        return path / MODEL_FILENAME
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + ".npz")
    return path


def _library_version() -> str:
    from dlscratch import __version__

    return __version__


# -- our format: reading -------------------------------------------------------------------
#
# A model file comes from anywhere, so nothing in it is trusted before it is checked, and
# every check runs before the memory it would cost is spent: the zip directory's size, each
# entry's declared shape and dtype (read from its .npy header without its data), the network
# the metadata describes (its parameter count, before it is built), and the values (finite
# and real, after the cast to the network's dtype).

#: Largest network a model file may describe (parameters plus batch-norm statistics).
MAX_PARAMETERS = 100_000_000
#: Largest metadata entry (JSON bytes) and its deepest nesting.
MAX_METADATA_BYTES = 64 * 2**20
MAX_METADATA_DEPTH = 64
#: Most entries in a model or checkpoint archive.
MAX_ENTRIES = 10_000
#: Extra room for arrays that are not network-shaped (a checkpoint's per-step losses).
EXTRA_ARRAY_BYTES = 256 * 2**20


@dataclass
class LoadedModel:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    network : Network
        Rebuilt from the stored architecture, weights and buffers loaded.
    optimizer : Optimizer or None
        Rebuilt with its hyperparameters, step count and state (None when the
        file holds no optimizer, or when it was not asked for).
    metadata : dict
        The file's full metadata; the caller's own dict is ``metadata["user"]``.
    path : Path
        The ``.npz`` file read.
    arrays : dict
        Further arrays stored with the model (a checkpoint's training state),
        by entry name; empty unless asked for.
    """

    network: object
    optimizer: object | None
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    arrays: dict = field(default_factory=dict)

    @property
    def user(self) -> dict:
        """The ``metadata`` dict given to :func:`save_model` (empty if none)."""
        user = self.metadata.get("user")
        return user if isinstance(user, dict) else {}


def resolve_model_path(path) -> Path:
    """The ``.npz`` file ``path`` means: itself, ``path + ".npz"`` or ``DIR/model.npz``.

    Raises FileNotFoundError naming what was looked for.
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / MODEL_FILENAME
        if not candidate.is_file():
            raise FileNotFoundError(
                f"no {MODEL_FILENAME} in directory {path}; pass the model file itself"
            )
        return candidate
    if path.exists():
        return path
    with_suffix = path.with_name(path.name + ".npz")
    if path.suffix.lower() != ".npz" and with_suffix.is_file():
        return with_suffix
    raise FileNotFoundError(f"model file not found: {path}")


def read_metadata(path) -> dict:
    """The JSON metadata of a model file (reads only that entry)."""
    path = resolve_model_path(path)
    with ModelArchive(path) as archive:
        return archive.metadata()


def load_model(path, *, network=None, device: str = "cpu"):
    """Load a network saved by :func:`save_model`.

    Only the network's entries are read: optimizer or training state, even
    damaged, does not matter here.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file, or a run directory holding ``model.npz``.
    network : Network, optional
        Load the weights into this network instead of building one from the
        stored architecture. Its parameter names and shapes must match; a
        mismatch raises ValueError naming the parameter and both shapes.
    device : 'cpu' or 'cuda'
        Where a rebuilt network lives.

    Returns
    -------
    Network
    """
    return load_checkpoint(path, network=network, device=device, with_optimizer=False).network


def load_checkpoint(
    path,
    *,
    network=None,
    optimizer=None,
    device: str = "cpu",
    with_optimizer: bool = True,
    extra_prefix: str | None = None,
) -> LoadedModel:
    """Load network, optimizer and metadata saved by :func:`save_model`.

    ``network`` / ``optimizer``, when given, receive the stored state instead
    of fresh objects being built (the optimizer must be of the stored type).
    ``with_optimizer=False`` reads the network alone (``optimizer`` is None).
    ``extra_prefix`` also reads the entries whose names start with it into
    ``LoadedModel.arrays`` (a checkpoint's training state).

    Raises
    ------
    FileNotFoundError
        No such file (or no ``model.npz`` in the directory).
    ValueError
        Not an ``.npz`` archive, no or unreadable metadata, a corrupt entry,
        arrays that do not fit the architecture (the message names the
        parameter and the expected and found shapes), or values that are not
        finite real numbers in the network's dtype.
    """
    path = resolve_model_path(path)
    with ModelArchive(path) as archive:
        meta = archive.metadata()
        names = archive.array_names()
        net_keys = [k for k in names if not k.startswith(OPTIM_PREFIX) and not _is_extra(k)]
        archive.check_declared_network(meta.get("config"), net_keys, network)
        built = network is None
        if built:
            network = _build_from_config(path, meta, device)
        shapes = {name: tuple(a.shape) for name, a in network.state_dict().items()}
        dtype = np.dtype(network.dtype)
        missing = [k for k in shapes if k not in net_keys]
        unexpected = [k for k in net_keys if k not in shapes]
        if missing or unexpected:
            raise ValueError(
                f"{path}: the stored weights do not fit the network: missing {missing}, "
                f"unexpected {unexpected}"
            )
        net_state = {k: archive.read_array(k, shapes[k], dtype) for k in shapes}
        optim_arrays = {}
        if with_optimizer:
            for key in names:
                if key.startswith(OPTIM_PREFIX):
                    name = key[len(OPTIM_PREFIX) :].partition("/")[2]
                    if name not in network.params:
                        raise ValueError(
                            f"{path}: optimizer state {key!r} is for parameter {name!r}, "
                            "which the network does not have"
                        )
                    optim_arrays[key] = archive.read_array(key, shapes[name], dtype)
        extra = {}
        if extra_prefix is not None:
            budget = 4 * sum(int(np.prod(s)) for s in shapes.values()) * dtype.itemsize
            budget += EXTRA_ARRAY_BYTES
            for key in names:
                if key.startswith(extra_prefix):
                    extra[key] = archive.read_array(key, None, None, budget=budget)
                    budget -= extra[key].nbytes

    try:
        network.load_state_dict(net_state)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    random_state = meta.get("random_state")
    if random_state and hasattr(network, "set_random_state"):
        try:
            network.set_random_state(random_state)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise ValueError(f"{path}: stored dropout random state does not fit: {exc}") from exc

    if with_optimizer:
        optimizer = _restore_optimizer(
            path, meta.get("optimizer"), optim_arrays, network, optimizer
        )
    else:
        optimizer = None
    return LoadedModel(network=network, optimizer=optimizer, metadata=meta, path=path, arrays=extra)


def _is_extra(key: str) -> bool:
    """Entries beside the network and optimizer (training state): ``state/...``."""
    return key.startswith(STATE_PREFIX)


def load_network(path, *, device: str = "cpu"):
    """Load weights from any file dlscratch understands.

    ``.pkl`` / ``.pickle``: one of the book's weight files (``sample_weight.pkl`` or
    the two CNN files), recognised by its arrays (:mod:`dlscratch.book_weights`);
    anything else (an ``.npz`` or a run directory): :func:`load_model`.
    """
    p = Path(path)
    if p.suffix.lower() in (".pkl", ".pickle"):
        from dlscratch.book_weights import load_book_network

        return load_book_network(p, device=device)
    return load_model(p, device=device)


def network_size(config) -> int | None:
    """Numbers (parameters and batch-norm statistics) the network ``config`` describes.

    Computed from the configuration alone, so an absurd one is refused before
    any memory is spent on it (None for a network class with no formula here:
    its configuration's numbers are only checked to be below 10**6). Raises
    ValueError for sizes that are not positive integers or a total over
    :data:`MAX_PARAMETERS`.
    """
    if not isinstance(config, dict):
        raise ValueError(f"the network configuration must be a dict, got {type(config).__name__}")
    kind = config.get("class", "MultiLayerNet")
    if kind not in ("MultiLayerNet", "TwoLayerNet"):
        from dlscratch.nets import NETWORKS

        cls = NETWORKS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"unknown network class {kind!r:.60}")
        if hasattr(cls, "parameter_count"):  # a class that can say its size from its config
            total = int(cls.parameter_count(config))
            if total > MAX_PARAMETERS:
                raise ValueError(
                    f"the {kind} would have {total:,} parameters, more than the "
                    f"{MAX_PARAMETERS:,} dlscratch accepts"
                )
            return total
        _check_config_numbers(config)
        return None
    hidden = config.get("hidden_size_list", config.get("hidden_size", []))
    if isinstance(hidden, int):
        hidden = [hidden]
    if not isinstance(hidden, list):
        raise ValueError(f"hidden layer sizes must be a list of integers, got {hidden!r:.80}")
    sizes = [config.get("input_size"), *hidden, config.get("output_size")]
    if len(sizes) > 1000:
        raise ValueError(f"a network of {len(sizes) - 2} hidden layers is not supported")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"layer sizes must be positive integers, got {s!r:.80}")
    total = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if config.get("use_batchnorm"):
        total += 4 * sum(hidden)
    if total > MAX_PARAMETERS:
        raise ValueError(
            f"the network {'-'.join(map(str, sizes))} would have {total:,} parameters, more "
            f"than the {MAX_PARAMETERS:,} dlscratch accepts; choose smaller layers"
        )
    return total


def _check_config_numbers(config) -> None:
    """For a network whose size has no formula here: no size in its configuration is absurd."""
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**6:
            raise ValueError(f"the network configuration holds the absurd size {value}")


class ModelArchive:
    """Bounded, read-only access to the entries of a model ``.npz`` file.

    Opening reads the zip directory (after checking its size from the end
    record); :meth:`read_array` reads one entry after checking its ``.npy``
    header (shape, dtype) and its declared size, and returns it cast to the
    dtype asked for, refusing non-finite or complex values.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        self._file = None
        self._zip = None

    def __enter__(self) -> ModelArchive:
        from dlscratch.fileio import open_regular

        self._file = open_regular(self.path)
        if self._file.read(6) == b"\x93NUMPY":
            self._file.close()
            raise ValueError(
                f"{self.path} is not a dlscratch model file: it holds a single .npy array, "
                "not an .npz archive"
            )
        try:
            _check_zip_directory(self._file, self.path)
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
            self._file.close()
            raise ValueError(
                f"{self.path} is not a dlscratch model file: it is not a readable .npz archive "
                f"({exc}); dlscratch models are .npz files written by save_model or "
                "dlscratch train"
            ) from None
        except BaseException:
            self._file.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._zip is not None:
            self._zip.close()
        self._file.close()

    def array_names(self) -> list[str]:
        """Entry names without ``.npy`` (the metadata entry left out)."""
        names = [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]
        return [n for n in names if n != METADATA_KEY]

    def metadata(self) -> dict:
        """The metadata JSON, checked for size, nesting and the keys every model file has."""
        from dlscratch.fileio import parse_json

        path = self.path
        if METADATA_KEY + ".npy" not in self._zip.namelist():
            if any(n.endswith(".npy") for n in self._zip.namelist()):
                raise ValueError(
                    f"{path} has no {METADATA_KEY!r} entry, so it is not a dlscratch model file "
                    "(a plain .npz of arrays?); save networks with dlscratch.io.save_model"
                )
            raise ValueError(
                f"{path} is not a dlscratch model file: it is not a readable .npz archive "
                "(no .npy entries)"
            )
        shape, dtype = self._header(METADATA_KEY)
        if dtype == np.uint8 and len(shape) == 1 and shape[0] <= MAX_METADATA_BYTES:
            text = self._read(METADATA_KEY, shape, dtype).tobytes()
        elif dtype.kind == "U" and shape == () and dtype.itemsize <= 4 * MAX_METADATA_BYTES:
            text = str(self._read(METADATA_KEY, shape, dtype)[()])
        else:
            raise ValueError(
                f"{path}: the metadata entry is not UTF-8 JSON bytes of at most "
                f"{MAX_METADATA_BYTES:,} bytes (found {dtype} of shape {shape})"
            )
        meta = parse_json(
            text, f"{path} (metadata)", max_bytes=MAX_METADATA_BYTES, max_depth=MAX_METADATA_DEPTH
        )
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: metadata is not that of a dlscratch model file")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{path} uses model format version {version!r:.40}; this dlscratch reads up to "
                f"{FORMAT_VERSION}: upgrade dlscratch"
            )
        if not isinstance(meta.get("config"), dict):
            raise ValueError(f"{path}: metadata lacks the network configuration ('config')")
        for key, kind in (("user", dict), ("optimizer", dict), ("random_state", dict)):
            if meta.get(key) is not None and not isinstance(meta[key], kind):
                raise ValueError(
                    f"{path}: metadata {key!r} must be a {kind.__name__}, "
                    f"found {type(meta[key]).__name__}"
                )
        return meta

    def check_declared_network(self, config, keys, network) -> None:
        """Refuse, before anything is built, a network larger than the file's own arrays."""
        try:
            size = network_size(config) if network is None else None
        except ValueError as exc:
            raise ValueError(f"{self.path}: {exc}") from None
        if size is None:
            return
        declared = 0
        for key in keys:
            shape, _ = self._header(key)
            declared += math.prod(shape)
        if declared < size and size > 2**16:  # small ones get the exact shape message
            raise ValueError(
                f"{self.path}: the stored configuration describes {size:,} parameters but the "
                f"file holds only {declared:,} numbers; the file is damaged or inconsistent"
            )

    def read_array(self, key: str, shape, dtype, *, budget: int | None = None) -> np.ndarray:
        """Entry ``key`` checked against ``shape`` and cast to ``dtype`` (finite, real values).

        ``shape`` None accepts any shape of at most ``budget`` bytes; ``dtype`` None keeps the
        stored (numeric, non-complex) dtype.
        """
        found, stored = self._header(key)
        what = f"{self.path}: entry {key!r}"
        if shape is not None and tuple(found) != tuple(shape):
            raise ValueError(f"{what}: expected shape {tuple(shape)}, found {tuple(found)}")
        if stored.kind == "c":
            raise ValueError(f"{what} holds complex numbers; weights must be real")
        if stored.kind not in "fiub" or stored.names is not None:
            raise ValueError(f"{what} holds {stored}, not numbers")
        if shape is None and math.prod(found) * stored.itemsize > (budget or 0):
            raise ValueError(
                f"{what}: {math.prod(found) * stored.itemsize:,} bytes is more than a model "
                "file of this size can need; the file is damaged or not a dlscratch file"
            )
        value = self._read(key, found, stored)
        if dtype is not None:
            if stored.kind != "f":
                raise ValueError(f"{what} holds {stored}; weights must be floating-point")
            with np.errstate(over="ignore", invalid="ignore"):
                value = value.astype(dtype, copy=False)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            cast = f" once stored as {dtype}" if dtype is not None and stored != dtype else ""
            raise ValueError(f"{what} contains NaN or infinity{cast}; it cannot be used")
        return value

    def _header(self, key: str):
        """(shape, dtype) from the entry's ``.npy`` header; its size checked against the zip's."""
        name = key + ".npy"
        what = f"{self.path}: entry {key!r}"
        try:
            info = self._zip.getinfo(name)
            with self._zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown .npy format version {version}")
                header = f.tell()
        except KeyError:
            raise ValueError(f"{self.path} has no entry {key!r}") from None
        except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{what} is corrupt ({exc})") from None
        if dtype.hasobject:
            raise ValueError(f"{what} holds Python objects, which model files never contain")
        if fortran and len(shape) > 1:
            raise ValueError(f"{what} is stored in Fortran order, which dlscratch never writes")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != header + nbytes:
            raise ValueError(
                f"{what}: header says shape {shape} of {dtype} ({nbytes:,} bytes) but the entry "
                f"holds {info.file_size - header:,} bytes; the file is damaged"
            )
        return shape, dtype

    def _read(self, key: str, shape, dtype) -> np.ndarray:
        try:
            with self._zip.open(key + ".npy") as f:
                value = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{self.path}: entry {key!r} is corrupt ({exc})") from None
        if value.shape != tuple(shape) or value.dtype != dtype:  # pragma: no cover - checked
            raise ValueError(f"{self.path}: entry {key!r} changed while being read")
        return value


def _check_zip_directory(f, path) -> None:
    """Refuse a zip whose directory is huge (zip64, too many entries) before zipfile reads it."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ValueError("no zip end record")
    entries, cd_size, cd_offset = struct.unpack("<HII", tail[at + 10 : at + 20])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        raise ValueError("a zip64 archive, larger than any dlscratch model")
    if entries > MAX_ENTRIES or cd_size > 1000 * MAX_ENTRIES:
        raise ValueError(f"{entries} entries, more than the {MAX_ENTRIES} a model file can have")
    f.seek(0)


def _build_from_config(path: Path, meta: dict, device: str):
    from dlscratch.nets import build_network

    config = meta["config"]
    try:
        return build_network(config, device=device)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{path}: stored network configuration cannot be rebuilt ({exc}); "
            "the file is damaged or from a newer dlscratch"
        ) from exc
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


#: Largest optimizer step count accepted from a file.
MAX_STEPS = 10**12


def _restore_optimizer(path: Path, info, arrays: dict, network, optimizer):
    if info is None:
        if arrays:
            raise ValueError(f"{path}: optimizer arrays present but no optimizer metadata")
        if optimizer is not None:
            raise ValueError(f"{path} holds no optimizer state to load into {optimizer!r}")
        return None
    from dlscratch.optim import OPTIMIZERS

    kind, hyper, t, slots = (info.get(k) for k in ("type", "hyperparameters", "t", "slots"))
    if not isinstance(kind, str) or not isinstance(hyper or {}, dict):
        raise ValueError(f"{path}: the optimizer metadata is damaged (type {kind!r:.40})")
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_STEPS:
        raise ValueError(
            f"{path}: optimizer step count {t!r:.40} is not an integer from 0 to {MAX_STEPS}; "
            "the file is damaged or was edited"
        )
    if not isinstance(slots or {}, dict):
        raise ValueError(f"{path}: the optimizer metadata is damaged ('slots')")
    for name, value in (hyper or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{path}: optimizer hyperparameter {name!r} is {value}")
    state: dict = {slot: {} for slot in (slots or {})}
    for key, value in arrays.items():
        slot, _, name = key[len(OPTIM_PREFIX) :].partition("/")
        state.setdefault(slot, {})[name] = value
    full = {"type": kind, "hyperparameters": dict(hyper or {}), "t": t, "state": state}
    try:
        if optimizer is None:
            by_class = {cls.__name__: cls for cls in OPTIMIZERS.values()}
            cls = by_class.get(kind)
            if cls is None:
                known = ", ".join(by_class)
                raise ValueError(f"unknown optimizer type {kind!r:.40}; known: {known}")
            optimizer = cls(**full["hyperparameters"])
        optimizer.load_state_dict(full)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ValueError(f"{path}: stored optimizer state does not fit: {exc}") from exc
    if hasattr(optimizer, "to_device") and network.params:
        optimizer.to_device(next(iter(network.params.values())))
    return optimizer


# -- the book's pickled weights -----------------------------------------------------------


class UnsafePickleError(ValueError):
    """A pickle asked for something other than NumPy arrays and dtypes; nothing was run."""


#: Limits of :func:`read_book_pickle` (the book's file is 182 kB with 6 arrays, nesting 4).
MAX_PICKLE_BYTES = 64 * 2**20
MAX_PICKLE_DEPTH = 16
MAX_PICKLE_OPS = 200_000
MAX_PICKLE_ARRAYS = 1_000

#: Opcodes a pickled dict of NumPy arrays uses (protocols 0 to 5); anything else is refused.
_PICKLE_OPCODES = frozenset(
    """PROTO FRAME STOP MARK EMPTY_DICT DICT SETITEM SETITEMS EMPTY_TUPLE TUPLE TUPLE1 TUPLE2
    TUPLE3 NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 BINFLOAT FLOAT STRING
    BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINBYTES
    SHORT_BINBYTES BINBYTES8 BYTEARRAY8 GLOBAL STACK_GLOBAL REDUCE BUILD PUT BINPUT LONG_BINPUT
    MEMOIZE GET BINGET LONG_BINGET""".split()
)
#: Numeric dtypes an array of weights may have (no objects, strings, records, complex).
_PICKLE_DTYPES = frozenset("b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8".split())


def _scan_pickle(data: bytes, source: str) -> None:
    """Walk the opcode stream without building anything; refuse what an array dict never has.

    A small model of the unpickler's stack tracks how deeply containers nest
    (a tuple nested a million deep would crash the interpreter when hashed),
    which globals are asked for (``GLOBAL`` and ``STACK_GLOBAL``) and how many
    operations, arrays and items there are.
    """
    import pickletools

    allowed = _allowed_globals()
    mark = object()
    stack: list = []  # (nesting depth, value of a string or None) or ``mark``
    memo: dict = {}
    arrays = 0

    def refuse(why: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"refused to load {source}: {why}; only pickled dicts of NumPy arrays are "
            "accepted, and nothing in the file was run"
        )

    def pop_mark() -> list:
        items = []
        while stack:
            top = stack.pop()
            if top is mark:
                return items
            items.append(top)
        raise ValueError("MARK missing")

    def pop(n: int = 1) -> list:
        if len(stack) < n or any(x is mark for x in stack[-n:]):
            raise ValueError("stack underflow")
        items = stack[-n:]
        del stack[-n:]
        return items

    def push(depth: int, value=None) -> None:
        if depth > MAX_PICKLE_DEPTH:
            raise refuse(f"containers nested more than {MAX_PICKLE_DEPTH} deep")
        stack.append((depth, value))

    def check_global(module, name) -> None:
        if (module, name) not in allowed:
            raise refuse(
                f"it asks for {module}.{name}, which is not a NumPy array or dtype constructor"
            )

    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
            if count >= MAX_PICKLE_OPS:
                raise refuse(f"more than {MAX_PICKLE_OPS} operations")
            name = op.name
            if name not in _PICKLE_OPCODES:
                raise refuse(f"it uses the pickle operation {name}, which arrays never need")
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            if name == "MARK":
                if sum(x is mark for x in stack) >= MAX_PICKLE_DEPTH:
                    raise refuse(f"marks nested more than {MAX_PICKLE_DEPTH} deep")
                stack.append(mark)
            elif name in ("EMPTY_DICT", "EMPTY_TUPLE"):
                push(1)
            elif name in ("DICT", "TUPLE"):
                items = pop_mark()
                push(1 + max((d for d, _ in items), default=0))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                items = pop(int(name[-1]))
                push(1 + max(d for d, _ in items))
            elif name in ("SETITEM", "SETITEMS"):
                items = pop(2) if name == "SETITEM" else pop_mark()
                if len(items) > 2 * MAX_PICKLE_ARRAYS:
                    raise refuse(f"a dict of more than {MAX_PICKLE_ARRAYS} items")
                (depth, _), = pop(1)
                push(max(depth, 1 + max((d for d, _ in items), default=0)))
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                check_global(module, attr)
                push(0, ("global", module, attr))
            elif name == "STACK_GLOBAL":
                (_, module), (_, attr) = pop(2)
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise refuse("it names a global through something other than strings")
                check_global(module, attr)
                push(0, ("global", module, attr))
            elif name == "REDUCE":
                (_, func), (depth, _) = pop(2)
                if not (isinstance(func, tuple) and func[0] == "global"):
                    raise refuse("it calls something that is not an allowed NumPy constructor")
                if func[2] in ("_reconstruct", "_frombuffer"):
                    arrays += 1
                    if arrays > MAX_PICKLE_ARRAYS:
                        raise refuse(f"more than {MAX_PICKLE_ARRAYS} arrays")
                push(depth)
            elif name == "BUILD":
                (depth, _), = pop(1)
                (top, _), = pop(1)
                push(max(top, depth))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if not stack or stack[-1] is mark:
                    raise ValueError("memoizing an empty stack")
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise ValueError(f"memo key {arg} missing")
                stack.append(memo[arg])
            elif isinstance(arg, str):
                push(0, arg if len(arg) < 100 else None)
            else:  # numbers, bytes, None, booleans
                push(0)
        else:
            raise ValueError("no STOP at the end")
    except UnsafePickleError:
        raise
    except (ValueError, TypeError, EOFError, OverflowError, IndexError, KeyError) as exc:
        raise ValueError(f"{source} is not a readable pickle of NumPy arrays ({exc})") from None


def _allowed_globals() -> dict:
    """``(module, name) -> object`` for everything a pickled NumPy array may need.

    NumPy 1 writes ``numpy.core.multiarray``; NumPy 2 renamed the package to
    ``numpy._core``. Both spellings map to checked stand-ins that refuse object
    dtypes and arrays larger than the file could hold before anything is made.
    """
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _numeric_dtype,
        # protocols 0-2 store array bytes as a latin-1 str and call _codecs.encode on it
        ("_codecs", "encode"): _latin1_encode,
    }
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = _scalar
        allowed[(f"{pkg}.numeric", "_frombuffer")] = _frombuffer
    return allowed


def _numeric_dtype(spec, align=False, copy=False):
    """``numpy.dtype`` for plain numeric type codes only (never ``object``)."""
    text = spec if isinstance(spec, str) else None
    if text is None or text.lstrip("<>=|") not in _PICKLE_DTYPES:
        raise UnsafePickleError(
            f"refused: the pickle asks for dtype {spec!r:.40}; weight files hold numbers "
            "only (no objects, strings or records), and nothing in the file was run"
        )
    return np.dtype(text, align=bool(align), copy=bool(copy))


def _check_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.names is not None:
        raise UnsafePickleError(f"refused: an array of dtype {dtype!r:.40} in a weight file")
    if dtype.kind not in "biuf":
        raise UnsafePickleError(f"refused: an array of dtype {dtype} in a weight file")
    return dtype


class _CheckedArray(np.ndarray):
    """What ``_reconstruct`` makes while unpickling: checks the declared array before NumPy
    allocates it (shape, dtype, and that the pickle holds all its bytes)."""

    budget = 0  # bytes left for arrays in the file being read

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafePickleError("refused: an array whose pickled state is not NumPy's")
        _version, shape, dtype, _fortran, raw = state
        dtype = _check_dtype(dtype)
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise UnsafePickleError(f"refused: an array of shape {shape!r:.60}")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > _CheckedArray.budget or not isinstance(raw, (bytes, bytearray)):
            raise UnsafePickleError(
                f"refused: an array of shape {shape} {dtype} ({nbytes:,} bytes) that the file "
                "does not hold"
            )
        if len(raw) != nbytes:
            raise ValueError(f"array of shape {shape} {dtype} with {len(raw)} bytes of data")
        _CheckedArray.budget -= nbytes
        super().__setstate__(state)


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refused: an array subclass {subtype!r:.60}")
    if not isinstance(dtype, (bytes, str)) or len(dtype) > 8:
        raise UnsafePickleError("refused: an unusual array placeholder")
    return _CheckedArray((0,), np.uint8)


def _scalar(dtype, data=None):
    dtype = _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError("refused: a NumPy scalar without its bytes")
    return np.frombuffer(data, dtype=dtype)[0]


def _frombuffer(buf, dtype, shape, order):
    dtype = _check_dtype(dtype)
    if not isinstance(buf, (bytes, bytearray)) or len(buf) > _CheckedArray.budget:
        raise UnsafePickleError("refused: an array whose data the file does not hold")
    _CheckedArray.budget -= len(buf)
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _latin1_encode(text, encoding="utf-8"):
    """Stand-in for ``_codecs.encode`` admitting only what array pickles use: str -> latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            f"refused: the pickle calls _codecs.encode with encoding {encoding!r:.40}; "
            "array pickles only ever use 'latin1'"
        )
    return text.encode("latin-1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals NumPy arrays and dtypes need."""

    def __init__(self, file, source: str) -> None:
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"refused to load {self._source}: it asks for {module}.{name}, which is not "
                "a NumPy array or dtype constructor; only NumPy arrays are accepted from "
                "pickled weight files, and nothing in the file was run"
            )
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(
            f"refused to load {self._source}: it uses persistent IDs, which weight files never need"
        )


#: What a damaged (not malicious) pickle raises while loading.
_UNPICKLING_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    MemoryError,
    RecursionError,
    OverflowError,
    UnicodeDecodeError,
)


def read_book_pickle(path) -> dict:
    """Read a pickled ``dict`` of NumPy arrays through the restricted unpickler.

    The file (at most :data:`MAX_PICKLE_BYTES`) is first scanned opcode by
    opcode without building anything (:func:`_scan_pickle`): unknown operations,
    globals other than NumPy's array and dtype constructors, deep nesting and
    too many items are refused there. Unpickling then goes through stand-ins
    that refuse object dtypes and arrays larger than the file's bytes.

    Returns the dict as stored (no shape checks). Raises FileNotFoundError,
    :class:`UnsafePickleError` for anything but arrays, and ValueError for a
    file that is not such a pickle.
    """
    from dlscratch.fileio import open_regular

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open_regular(path) as f:
        too_big = os.fstat(f.fileno()).st_size > MAX_PICKLE_BYTES
        data = b"" if too_big else f.read(MAX_PICKLE_BYTES + 1)
    if too_big or len(data) > MAX_PICKLE_BYTES:
        raise ValueError(
            f"{path} is larger than {MAX_PICKLE_BYTES // 2**20} MB, more than a pickled weight "
            "file needs; convert large models to .npz (dlscratch.io.save_model)"
        )
    _scan_pickle(data, str(path))
    _CheckedArray.budget = len(data)
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), str(path)).load()
    except UnsafePickleError as exc:
        if str(path) in str(exc):
            raise
        raise UnsafePickleError(f"{path}: {exc}; nothing in the file was run") from None
    except _UNPICKLING_ERRORS as exc:
        raise ValueError(f"{path} is not a readable pickle of NumPy arrays ({exc})") from None
    finally:
        _CheckedArray.budget = 0
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict of NumPy arrays")
    out = {}
    for key, value in obj.items():
        if isinstance(value, _CheckedArray):
            value = value.view(np.ndarray)
        out[key] = value
    return out


BOOK_WEIGHTS_NAME = "sample_weight.pkl"


#: The book's trained CNN weights, as named here (see :mod:`dlscratch.book_weights`).
SIMPLE_CONVNET_FILE = "simple_convnet_params.pkl"
DEEP_CONVNET_FILE = "deep_convnet_params.pkl"
#: Where each of the book's weight files lies in the book's repository.
BOOK_FILE_ORIGINS = {
    BOOK_WEIGHTS_NAME: "ch03/sample_weight.pkl",
    SIMPLE_CONVNET_FILE: "ch07/params.pkl",
    DEEP_CONVNET_FILE: "ch08/deep_convnet_params.pkl",
}


def find_book_weights(path=None, *, name: str = BOOK_WEIGHTS_NAME) -> Path:
    """Locate one of the book's weight files, by default ``sample_weight.pkl``.

    Order: ``path`` if given (the file, or a folder holding it);
    ``$DLSCRATCH_WEIGHTS`` (likewise); ``weights/`` beside ``$DLSCRATCH_DATA``
    (the layout of a folder with ``datasets/`` and ``weights/`` side by side);
    ``weights/`` in the user cache folder. For another ``name`` than the default,
    a file given in ``path`` or the variable stands for its folder (the CNN files
    lie beside ``sample_weight.pkl``). Raises FileNotFoundError naming every place
    looked in and where the file comes from.
    """

    def candidate(p: Path) -> Path:
        if p.is_dir():
            return p / name
        if name == BOOK_WEIGHTS_NAME or p.name == name:
            return p  # a file named explicitly is taken as it is
        return p.parent / name

    if path is not None:
        p = candidate(Path(path))
        if not p.is_file():
            raise FileNotFoundError(f"weights file not found: {p}")
        return p
    places = []
    env = os.environ.get("DLSCRATCH_WEIGHTS")
    if env:
        places.append(candidate(Path(env)))
    data = os.environ.get("DLSCRATCH_DATA")
    if data:
        places.append(Path(data).parent / "weights" / name)
    from dlscratch.data.mnist import cache_dir

    places.append(cache_dir() / "weights" / name)
    places = list(dict.fromkeys(places))  # the same folder once
    for p in places:
        if p.is_file():
            return p
    looked = "\n".join(f"  - {p}" for p in places)
    origin = BOOK_FILE_ORIGINS.get(name, name)
    raise FileNotFoundError(
        f"the book's {name} was not found. Looked in:\n{looked}\n"
        f"It comes with the book's code (the repository deep-learning-from-scratch, "
        f"{origin}). Pass its path (--weights /path/to/{name}), set DLSCRATCH_WEIGHTS, "
        "or copy it into one of the places above."
    )


def load_book_weights(path=None):
    """The book's ``sample_weight.pkl`` as a 784-50-100-10 sigmoid :class:`MultiLayerNet`.

    ``path`` may be omitted: :func:`find_book_weights` then looks in the usual
    places. The pickle is read by :func:`read_book_pickle` (NumPy arrays only,
    nothing executed); keys and shapes are checked against :data:`BOOK_SHAPES`.

    Returns
    -------
    MultiLayerNet
        ``MultiLayerNet(784, [50, 100], 10, activation='sigmoid', dtype=float32)``
        computing the book's ``predict``: ``sigmoid(x W1 + b1)``,
        ``sigmoid(. W2 + b2)``, ``. W3 + b3`` (softmax in ``predict_proba``).
    """
    from dlscratch.nets import MultiLayerNet

    path = find_book_weights(path)
    weights = read_book_pickle(path)
    missing = [k for k in BOOK_SHAPES if k not in weights]
    unexpected = [str(k) for k in weights if k not in BOOK_SHAPES]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not hold the book's weights: missing {missing}, "
            f"unexpected {unexpected} (expected keys {list(BOOK_SHAPES)})"
        )
    arrays = {}
    for name, shape in BOOK_SHAPES.items():
        a = weights[name]
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            found = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{path}: {name!r} must be a floating-point array, found {found}")
        if a.shape != shape:
            raise ValueError(f"{path}: parameter {name!r}: expected shape {shape}, found {a.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            arrays[name] = a.astype(np.float32)  # checked after the cast: 1e300 becomes inf
        if not np.isfinite(arrays[name]).all():
            raise ValueError(
                f"{path}: parameter {name!r} contains NaN or infinity (as float32); "
                "it cannot be used"
            )
    net = MultiLayerNet(
        784, [50, 100], 10, activation="sigmoid", weight_init_std=0.01, dtype=np.float32, rng=0
    )
    net.load_state_dict(arrays)
    return net


def convert_book_weights(pkl_path, out_path) -> Path:
    """Convert the book's ``sample_weight.pkl`` to our ``.npz`` format; return the file written."""
    import hashlib

    pkl_path = Path(pkl_path)
    net = load_book_weights(pkl_path)
    digest = hashlib.sha256(pkl_path.read_bytes()).hexdigest()
    return save_model(
        out_path,
        net,
        metadata={
            "source": pkl_path.name,
            "source_sha256": digest,
            "converted_from": "book pickle",
        },
    )
