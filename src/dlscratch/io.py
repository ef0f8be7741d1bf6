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

import contextlib
import datetime as _dt
import json
import os
import pickle
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
    "Checkpoint",
    "UnsafePickleError",
    "convert_book_weights",
    "find_book_weights",
    "load_book_weights",
    "load_checkpoint",
    "load_model",
    "load_network",
    "read_book_pickle",
    "read_metadata",
    "resolve_model_path",
    "save_model",
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

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
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


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    network : Network
        Rebuilt from the stored architecture, weights and buffers loaded.
    optimizer : Optimizer or None
        Rebuilt with its hyperparameters, step count and state (None when the
        file holds no optimizer).
    metadata : dict
        The file's full metadata; the caller's own dict is ``metadata["user"]``.
    path : Path
        The ``.npz`` file read.
    """

    network: object
    optimizer: object | None
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def user(self) -> dict:
        """The ``metadata`` dict given to :func:`save_model` (empty if none)."""
        return self.metadata.get("user") or {}


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
    if path.is_file():
        return path
    with_suffix = path.with_name(path.name + ".npz")
    if path.suffix.lower() != ".npz" and with_suffix.is_file():
        return with_suffix
    raise FileNotFoundError(f"model file not found: {path}")


def read_metadata(path) -> dict:
    """The JSON metadata of a model file (reads only that entry)."""
    path = resolve_model_path(path)
    with _open_npz(path) as npz:
        return _metadata_of(path, npz)


def load_model(path, *, network=None, device: str = "cpu"):
    """Load a network saved by :func:`save_model`.

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
    return _load(path, network=network, device=device, optimizer=None, with_optimizer=False).network


def load_checkpoint(path, *, network=None, optimizer=None, device: str = "cpu") -> Checkpoint:
    """Load network, optimizer and metadata saved by :func:`save_model`.

    ``network`` / ``optimizer``, when given, receive the stored state instead
    of fresh objects being built (the optimizer must be of the stored type).

    Raises
    ------
    FileNotFoundError
        No such file (or no ``model.npz`` in the directory).
    ValueError
        Not an ``.npz`` archive, no or unreadable metadata, a corrupt entry,
        or arrays that do not fit the architecture (the message names the
        parameter and the expected and found shapes).
    """
    return _load(path, network=network, device=device, optimizer=optimizer, with_optimizer=True)


def _load(path, *, network, device, optimizer, with_optimizer: bool) -> Checkpoint:
    path = resolve_model_path(path)
    with _open_npz(path) as npz:
        meta = _metadata_of(path, npz)
        # optimizer entries are read only when wanted (Adam's doubles the file)
        keys = [
            key
            for key in npz.files
            if key != METADATA_KEY and (with_optimizer or not key.startswith(OPTIM_PREFIX))
        ]
        try:
            arrays = {key: npz[key] for key in keys}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{path}: an array entry is corrupt ({exc})") from exc

    net_state = {k: v for k, v in arrays.items() if not k.startswith(OPTIM_PREFIX)}
    optim_arrays = {k: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)}

    if network is None:
        network = _build_from_config(path, meta, device)
    try:
        network.load_state_dict(net_state)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    random_state = meta.get("random_state")
    if random_state and hasattr(network, "set_random_state"):
        try:
            network.set_random_state(random_state)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: stored dropout random state does not fit: {exc}") from exc

    if with_optimizer:
        optimizer = _restore_optimizer(
            path, meta.get("optimizer"), optim_arrays, network, optimizer
        )
    return Checkpoint(network=network, optimizer=optimizer, metadata=meta, path=path)


def load_network(path, *, device: str = "cpu"):
    """Load weights from any file dlscratch understands.

    ``.pkl`` / ``.pickle``: the book's weights through :func:`load_book_weights`;
    anything else (an ``.npz`` or a run directory): :func:`load_model`.
    """
    p = Path(path)
    if p.suffix.lower() in (".pkl", ".pickle"):
        return load_book_weights(p)
    return load_model(p, device=device)


@contextlib.contextmanager
def _open_npz(path: Path):
    """``np.load`` of an archive (closed on exit), with clear errors."""
    try:
        obj = np.load(path, allow_pickle=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # NumPy's own message may suggest allow_pickle=True; we never do, so say why plainly.
        why = "" if "pickle" in str(exc) else f" ({exc})"
        raise ValueError(
            f"{path} is not a dlscratch model file: it is not a readable .npz archive{why}; "
            "dlscratch models are .npz files written by save_model or dlscratch train"
        ) from exc
    if not isinstance(obj, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} is not a dlscratch model file: it holds a single .npy array, "
            "not an .npz archive"
        )
    with obj:
        yield obj


def _metadata_of(path: Path, npz) -> dict:
    if METADATA_KEY not in npz.files:
        raise ValueError(
            f"{path} has no {METADATA_KEY!r} entry, so it is not a dlscratch model file "
            "(a plain .npz of arrays?); save networks with dlscratch.io.save_model"
        )
    try:
        raw = npz[METADATA_KEY]
        text = raw.tobytes().decode("utf-8") if raw.dtype == np.uint8 else str(raw[()])
        meta = json.loads(text)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path}: the metadata entry is corrupt ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: metadata is not that of a dlscratch model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model format version {version!r}; this dlscratch reads up to "
            f"{FORMAT_VERSION}: upgrade dlscratch"
        )
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path}: metadata lacks the network configuration ('config')")
    return meta


def _build_from_config(path: Path, meta: dict, device: str):
    from dlscratch.nets import build_network

    config = meta["config"]
    try:
        return build_network(config, device=device)
    except TypeError as exc:
        raise ValueError(
            f"{path}: stored network configuration {config} cannot be rebuilt: {exc}"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _restore_optimizer(path: Path, info, arrays: dict, network, optimizer):
    if info is None:
        if arrays:
            raise ValueError(f"{path}: optimizer arrays present but no optimizer metadata")
        if optimizer is not None:
            raise ValueError(f"{path} holds no optimizer state to load into {optimizer!r}")
        return None
    from dlscratch.optim import OPTIMIZERS

    state: dict = {slot: {} for slot in info.get("slots", {})}
    for key, value in arrays.items():
        slot, _, name = key[len(OPTIM_PREFIX) :].partition("/")
        if name not in network.params:
            raise ValueError(
                f"{path}: optimizer state {key!r} is for parameter {name!r}, "
                f"which the network does not have"
            )
        expected = tuple(network.params[name].shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"{path}: optimizer state {key!r}: expected shape {expected}, "
                f"found {tuple(value.shape)}"
            )
        state.setdefault(slot, {})[name] = value
    full = {
        "type": info["type"],
        "hyperparameters": dict(info.get("hyperparameters", {})),
        "t": int(info.get("t", 0)),
        "state": state,
    }
    if optimizer is None:
        by_class = {cls.__name__: cls for cls in OPTIMIZERS.values()}
        cls = by_class.get(info["type"])
        if cls is None:
            raise ValueError(
                f"{path}: unknown optimizer type {info['type']!r}; known: {', '.join(by_class)}"
            )
        try:
            optimizer = cls(**full["hyperparameters"])
        except TypeError as exc:
            raise ValueError(f"{path}: stored optimizer hyperparameters do not fit: {exc}") from exc
    optimizer.load_state_dict(full)
    if hasattr(optimizer, "to_device") and network.params:
        optimizer.to_device(next(iter(network.params.values())))
    return optimizer


# -- the book's pickled weights -----------------------------------------------------------


class UnsafePickleError(ValueError):
    """A pickle asked for something other than NumPy arrays and dtypes; nothing was run."""


def _allowed_globals() -> dict:
    """``(module, name) -> object`` for everything a pickled NumPy array may need.

    NumPy 1 writes ``numpy.core.multiarray``; NumPy 2 renamed the package to
    ``numpy._core``. Both spellings map to the module this NumPy has, imported
    without touching the deprecated ``numpy.core`` alias.
    """
    try:  # NumPy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray, numeric
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # protocols 0-2 store array bytes as a latin-1 str and call _codecs.encode on it
        ("_codecs", "encode"): _latin1_encode,
    }
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):  # arrays pickled with protocol 5
            allowed[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


def _latin1_encode(text, encoding="utf-8"):
    """Stand-in for ``_codecs.encode`` admitting only what array pickles use: str -> latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            f"refused: the pickle calls _codecs.encode with encoding {encoding!r}; "
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
    UnicodeDecodeError,
)


def read_book_pickle(path) -> dict:
    """Read a pickled ``dict`` of NumPy arrays through the restricted unpickler.

    Returns the dict as stored (no shape checks). Raises FileNotFoundError,
    :class:`UnsafePickleError` for any global other than NumPy's array and
    dtype constructors, and ValueError for a file that is not such a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        try:
            obj = _NumpyOnlyUnpickler(f, str(path)).load()
        except UnsafePickleError:
            raise
        except _UNPICKLING_ERRORS as exc:
            raise ValueError(f"{path} is not a readable pickle of NumPy arrays ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict of NumPy arrays")
    return obj


BOOK_WEIGHTS_NAME = "sample_weight.pkl"


def find_book_weights(path=None) -> Path:
    """Locate the book's ``sample_weight.pkl``.

    Order: ``path`` if given (the file, or a folder holding it);
    ``$DLSCRATCH_WEIGHTS`` (likewise); ``weights/`` beside ``$DLSCRATCH_DATA``
    (the layout of a folder with ``datasets/`` and ``weights/`` side by side);
    ``../shared/weights/`` and ``shared/weights/`` from the working directory.
    Raises FileNotFoundError naming every place looked in.
    """
    if path is not None:
        p = Path(path)
        if p.is_dir():
            p = p / BOOK_WEIGHTS_NAME
        if not p.is_file():
            raise FileNotFoundError(f"weights file not found: {p}")
        return p
    places = []
    env = os.environ.get("DLSCRATCH_WEIGHTS")
    if env:
        p = Path(env)
        places.append(p / BOOK_WEIGHTS_NAME if p.is_dir() else p)
    data = os.environ.get("DLSCRATCH_DATA")
    if data:
        places.append(Path(data).parent / "weights" / BOOK_WEIGHTS_NAME)
    cwd = Path.cwd()
    places += [cwd.parent / "shared" / "weights" / BOOK_WEIGHTS_NAME]
    places += [cwd / "shared" / "weights" / BOOK_WEIGHTS_NAME]
    places = list(dict.fromkeys(places))  # the same folder once (cwd may be /)
    for p in places:
        if p.is_file():
            return p
    looked = "\n".join(f"  - {p}" for p in places)
    raise FileNotFoundError(
        f"the book's {BOOK_WEIGHTS_NAME} was not found. Looked in:\n{looked}\n"
        "Pass its path (--weights /path/to/sample_weight.pkl) or set DLSCRATCH_WEIGHTS."
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
    for name, shape in BOOK_SHAPES.items():
        a = weights[name]
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            found = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{path}: {name!r} must be a floating-point array, found {found}")
        if a.shape != shape:
            raise ValueError(f"{path}: parameter {name!r}: expected shape {shape}, found {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{path}: parameter {name!r} contains NaN or infinity")
    net = MultiLayerNet(
        784, [50, 100], 10, activation="sigmoid", weight_init_std=0.01, dtype=np.float32, rng=0
    )
    net.load_state_dict({name: weights[name] for name in BOOK_SHAPES})
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
