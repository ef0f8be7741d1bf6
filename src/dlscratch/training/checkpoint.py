"""Checkpoints: one ``.npz`` file holding everything a run needs to continue exactly.

A checkpoint is a model file (:func:`dlscratch.io.save_model`'s format, so
``load_model`` reads its network) with, in the same archive,

* the optimizer's state arrays (``optim/<slot>/<param>``) and its step count;
* the trainer's state under ``metadata["user"]["trainer"]``: counters, the
  shuffling generator's state, the history, every callback's state; the
  NumPy arrays among them (per-step losses, early stopping's best weights)
  are archive entries ``state/<n>``, referenced from the JSON as
  ``{"__array__": "state/<n>"}``;
* the caller's ``metadata`` (a run's configuration) under ``["run"]``.

The file is written atomically, so at every instant the path holds either the
previous complete checkpoint or the new one. Loading checks every value before
it is used: counters in range and consistent with the history, a known random
generator, finite weights of the network's shapes.

Checkpoints of the first format (version 1: callbacks' arrays in a separate
``<stem>-callbacks.npz`` tied by a token) still load.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np

from dlscratch.io import STATE_PREFIX, ModelArchive, load_checkpoint, write_model_file

#: Version of the trainer state this code writes; it reads 1 and 2.
STATE_VERSION = 2
#: Bounds on counters read from a file.
MAX_EPOCHS = 10**7
MAX_STEPS = 10**12
#: Random bit generators a trainer state may name.
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")

__all__ = ["STATE_VERSION", "load_trainer_checkpoint", "save_checkpoint", "apply_trainer_state"]


def save_checkpoint(trainer, path, metadata: dict | None = None) -> Path:
    """Write ``trainer``'s network, optimizer and state to one ``.npz`` file; return it."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + ".npz")
    state = trainer.state_dict()
    state["version"] = STATE_VERSION
    history = dict(state["history"])
    history["losses"] = np.asarray(history["losses"], dtype=np.float64)
    state["history"] = history
    arrays: dict = {}
    state = _split_arrays(state, arrays)
    meta = {"trainer": state, "run": dict(metadata or {})}
    return write_model_file(
        path,
        trainer.network,
        optimizer=trainer.optimizer,
        metadata=meta,
        extra_arrays=arrays,
        sidecar=False,
    )


def load_trainer_checkpoint(path, *, network=None, optimizer=None, device: str = "cpu"):
    """``(Checkpoint, trainer state)`` of the checkpoint at ``path``, every part checked.

    Raises ValueError naming the file and what is wrong for a model file
    without training state, damaged or tampered state, or a missing piece.
    """
    ck = load_checkpoint(
        path, network=network, optimizer=optimizer, device=device, extra_prefix=STATE_PREFIX
    )
    where = ck.path
    state = ck.user.get("trainer")
    if not isinstance(state, dict):
        raise ValueError(
            f"{where} is a model file without training state; resume from a checkpoint "
            "written during training (checkpoint.npz in the run folder)"
        )
    version = state.get("version")
    if version == 1:
        arrays = _version1_arrays(where, state, ck.network)
    elif version == STATE_VERSION:
        arrays = ck.arrays
    else:
        raise ValueError(
            f"{where}: trainer state version {version!r:.40} is not supported (this dlscratch "
            f"reads 1 and {STATE_VERSION}); upgrade dlscratch, or re-train"
        )
    try:
        state = _join_arrays(state, arrays)
    except KeyError as exc:
        raise ValueError(f"{where}: the training state refers to a missing entry {exc}") from None
    check_trainer_state(state, where, ck.network)
    if ck.optimizer is None:
        raise ValueError(f"{where} holds no optimizer state, so training cannot resume from it")
    return ck, state


def _version1_arrays(where: Path, state: dict, network) -> dict:
    """The callbacks' arrays of a first-format checkpoint (``<stem>-callbacks.npz``)."""
    name = state.get("arrays_file")
    if not name:
        return {}
    if not isinstance(name, str) or Path(name).name != name:
        raise ValueError(f"{where}: damaged training state ('arrays_file' {name!r:.60})")
    extra = where.with_name(name)
    if not extra.is_file():
        raise FileNotFoundError(
            f"{extra} is missing; it belongs to {where} (a checkpoint of an older dlscratch). "
            "Re-train, or resume from a copy of the run folder that has it"
        )
    budget = 4 * sum(a.nbytes for a in network.state_dict().values()) + 2**20
    arrays = {}
    try:
        with ModelArchive(extra) as archive:
            for key in [n[:-4] for n in archive._zip.namelist() if n.endswith(".npy")]:
                arrays[key] = archive.read_array(key, None, None, budget=budget)
                budget -= arrays[key].nbytes
    except ValueError as exc:
        raise ValueError(f"{extra} (part of {where}) is damaged: {exc}") from None
    token = arrays.pop("__token__", np.zeros(0, np.uint8))
    if token.dtype != np.uint8 or token.tobytes().decode("latin-1") != state.get("token"):
        raise ValueError(
            f"{extra} does not belong to {where} (written by another save); the checkpoint is "
            "inconsistent: re-train, or resume from an older copy of the run folder"
        )
    return arrays


def _split_arrays(obj, arrays: dict):
    """Replace NumPy arrays inside ``obj`` by ``{"__array__": "state/<n>"}`` and collect them."""
    if isinstance(obj, dict):
        return {k: _split_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_arrays(v, arrays) for v in obj]
    if isinstance(obj, np.ndarray):
        key = f"{STATE_PREFIX}{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    return obj


def _join_arrays(obj, arrays: dict):
    """Put the arrays back (iteratively bounded: the JSON was depth-checked on reading)."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _join_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, arrays) for v in obj]
    return obj


# -- checks ------------------------------------------------------------------------------------


def _count(state: dict, key: str, high: int, where) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= high:
        raise ValueError(
            f"{where}: trainer state {key!r} is {value!r:.40}, not an integer from 0 to {high}; "
            "the checkpoint is damaged or was edited"
        )
    return int(value)


def check_trainer_state(state: dict, where, network=None) -> None:
    """Refuse a trainer state of the wrong shape, type or range (ValueError naming ``where``)."""

    def bad(what: str) -> ValueError:
        return ValueError(
            f"{where}: trainer state {what}; the checkpoint is damaged or was edited. "
            "Resume from an intact copy, or re-train"
        )

    config = state.get("config")
    if not isinstance(config, dict):
        raise bad("has no 'config' dict")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        _count(config, key, MAX_STEPS, where)
        if config[key] < 1:
            raise bad(f"config {key!r} is {config[key]}, not >= 1")
    if config.get("sampling") not in ("epoch", "random"):
        raise bad(f"config 'sampling' is {config.get('sampling')!r:.40}")
    tes = config.get("train_eval_size")
    if tes is not None and (isinstance(tes, bool) or not isinstance(tes, int) or tes < 1):
        raise bad(f"config 'train_eval_size' is {tes!r:.40}")
    epoch = _count(state, "epoch", MAX_EPOCHS, where)
    step = _count(state, "step", MAX_STEPS, where)
    _count(state, "step_in_epoch", MAX_STEPS, where)
    elapsed = state.get("epoch_elapsed", 0.0)
    if (
        isinstance(elapsed, bool)
        or not isinstance(elapsed, numbers.Real)
        or not (math.isfinite(elapsed) and elapsed >= 0)
    ):
        raise bad(f"'epoch_elapsed' is {elapsed!r:.40}")
    if not isinstance(state.get("stop_training"), bool):
        raise bad("'stop_training' is not true or false")
    rng = state.get("rng_state")
    if not (
        isinstance(rng, dict)
        and rng.get("bit_generator") in BIT_GENERATORS
        and isinstance(rng.get("state"), dict)
    ):
        raise bad(f"'rng_state' is not a state of one of {', '.join(BIT_GENERATORS)}")
    history = state.get("history")
    if not isinstance(history, dict):
        raise bad("has no 'history' dict")
    losses = history.get("losses", [])
    if isinstance(losses, list):
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses)
        losses = np.asarray(losses, dtype=np.float64) if ok else None
    if not (isinstance(losses, np.ndarray) and losses.ndim == 1 and losses.dtype.kind == "f"):
        raise bad("'history.losses' is not a list of numbers")
    if not np.isfinite(losses).all():
        raise bad("'history.losses' holds NaN or infinity")
    if len(losses) != step:
        raise bad(f"says {step} steps but its history has {len(losses)} losses")
    rows = history.get("epochs", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise bad("'history.epochs' is not a list of rows")
    if len(rows) != epoch:
        raise bad(f"says {epoch} epochs but its history has {len(rows)} rows")
    for row in rows:
        for key, value in row.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and not number:
                raise bad(f"history row value {key!r} is {value!r:.40}")
    best = history.get("best_epoch")
    if best is not None and (isinstance(best, bool) or not isinstance(best, int)):
        raise bad(f"'history.best_epoch' is {best!r:.40}")
    if not isinstance(state.get("data", {}), dict):
        raise bad("'data' is not a dict")
    callbacks = state.get("callbacks", {})
    if not isinstance(callbacks, dict) or not all(isinstance(v, dict) for v in callbacks.values()):
        raise bad("'callbacks' is not a dict of callback states")
    if network is not None:
        shapes = {k: v.shape for k, v in network.state_dict().items()}
        for key, cb_state in callbacks.items():
            weights = cb_state.get("best_state")
            if weights is None:
                continue
            if not isinstance(weights, dict) or set(weights) != set(shapes):
                raise bad(f"callback {key!r} holds weights that do not fit the network")
            for name, value in weights.items():
                if not isinstance(value, np.ndarray) or value.shape != shapes[name]:
                    raise bad(f"callback {key!r} weight {name!r} does not fit the network")


def apply_trainer_state(trainer, state: dict, where="the trainer state") -> None:
    """Load a checked trainer state into ``trainer`` (network and optimizer are separate)."""
    from dlscratch.training.history import History

    if state.get("version") not in (1, STATE_VERSION):
        raise ValueError(
            f"{where}: trainer state version {state.get('version')!r:.40} is not supported "
            f"(expected {STATE_VERSION})"
        )
    check_trainer_state(state, where)
    expected = state.get("data", {})
    found = trainer._data_fingerprint()
    for key in ("n_train", "n_val", "train_crc32", "val_crc32"):
        if key in expected and expected[key] != found[key]:
            raise ValueError(
                f"the data differ from the checkpoint's ({key}: {found[key]} now, "
                f"{expected[key]} then); resume with the same training and validation data"
            )
    config = state["config"]
    if config["batch_size"] != trainer.batch_size or config["sampling"] != trainer.sampling:
        raise ValueError(
            "batch_size and sampling must match the checkpoint's "
            f"({config['batch_size']}, {config['sampling']!r}) to resume"
        )
    if state["step_in_epoch"] >= trainer.steps_per_epoch:
        raise ValueError(
            f"{where}: trainer state 'step_in_epoch' {state['step_in_epoch']} is not below the "
            f"{trainer.steps_per_epoch} steps of an epoch; the checkpoint is damaged or was edited"
        )
    kind = state["rng_state"]["bit_generator"]
    rng = np.random.Generator(getattr(np.random, kind)())
    try:
        rng.bit_generator.state = state["rng_state"]
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise ValueError(f"{where}: the stored random generator state is damaged ({exc})") from None
    history = History.from_dict(state["history"])
    saved = state.get("callbacks", {})
    for key, cb in trainer._keyed_callbacks():
        if key in saved:
            try:
                cb.load_state_dict(saved[key])
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                raise ValueError(
                    f"{where}: the saved state of callback {key} does not fit it ({exc!r:.80}); "
                    "pass the same callbacks as the run that wrote the checkpoint"
                ) from None
    if type(trainer.rng.bit_generator) is type(rng.bit_generator):
        trainer.rng.bit_generator.state = rng.bit_generator.state
    else:  # e.g. a run shuffled by MT19937
        trainer.rng = rng
    trainer.epoch = state["epoch"]
    trainer.step = state["step"]
    trainer.step_in_epoch = state["step_in_epoch"]
    trainer._epoch_elapsed = float(state.get("epoch_elapsed", 0.0))
    trainer.stop_training = state["stop_training"]
    trainer.history = history
