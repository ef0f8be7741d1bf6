"""The run configuration: one validated description of a training run, and what builds from it.

Every front end builds its networks through this module: ``dlscratch train`` and
``dlscratch search``, the estimator, the experiments, the benchmarks and the web app.
A run folder's ``config.json`` *is* a :class:`RunConfig`, and ``dlscratch train --config
FILE`` reads one back::

    >>> from dlscratch.config import RunConfig
    >>> cfg = RunConfig.from_dict({"optimizer": "sgd", "hidden": [50]})
    >>> cfg.learning_rate              # SGD's default rate for this network
    0.1
    >>> cfg.replace(**{"opt.momentum": 0.5})
    Traceback (most recent call last):
    ...
    ValueError: optimizer 'sgd' has no option 'momentum' (its options: none)
    >>> RunConfig.from_dict({"epoch": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown key 'epoch' in the run configuration; did you mean 'epochs'? ...

The choices of ``optimizer``, ``activation``, ``schedule`` and ``net`` are read from
their registries, so a newly registered optimizer or activation is accepted here, on the
command line and in the search space without another edit.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlscratch.checks import fail
from dlscratch.registry import Option

#: Where run folders go without --out (and where ``dlscratch runs`` and ``serve`` look).
RUNS_DIR = Path("runs")
#: Largest hidden layer and number of epochs a configuration accepts (bounded work and memory).
MAX_LAYER = 100_000
MAX_EPOCHS = 100_000
#: Largest number of parameters a fully connected network may have (400 MB in float32).
MAX_PARAMETERS = 100_000_000


def _registry(kind: str):
    if kind == "optimizer":
        from dlscratch.optim import OPTIMIZERS

        return OPTIMIZERS
    if kind == "activation":
        from dlscratch.layers import ACTIVATIONS

        return ACTIVATIONS
    if kind == "schedule":
        from dlscratch.training.schedules import SCHEDULES

        return SCHEDULES
    from dlscratch.nets import ARCHITECTURES

    return ARCHITECTURES


#: Fields whose value is one of a registry's names; "none" is also valid for the schedule.
_REGISTRY_FIELDS = {"optimizer": "optimizer", "activation": "activation", "schedule": "schedule",
                    "net": "network"}
#: Fields that describe the machine, not the run: they may change when a run is resumed.
HARDWARE_FIELDS = ("device", "threads")
DATASETS = ("mnist", "fashion-mnist")


@dataclass(frozen=True)
class RunConfig:
    """What a run trains, on what, and how (every field has a working default).

    Build one with :meth:`from_dict` (validates, refuses unknown keys) or
    :meth:`replace` on an existing one; ``RunConfig()`` is the default MNIST run.
    """

    dataset: str = "mnist"
    net: str = "mlp"
    hidden: tuple | None = None
    activation: str = "relu"
    activation_options: dict = field(default_factory=dict)
    init: Any = None
    batchnorm: bool = False
    dropout: float | None = None
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr: float | None = None
    optimizer_options: dict = field(default_factory=dict)
    schedule: str = "none"
    epochs: int = 10
    batch_size: int = 100
    sampling: str = "epoch"
    val_split: float = 0.1
    limit: int | None = None
    early_stopping: int | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    threads: int | None = None

    #: Help and bounds of each field, for the command line and the search space.
    FIELDS = {}  # filled below the class

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _check_field(f.name, getattr(self, f.name), self)
            object.__setattr__(self, f.name, value)
        architecture = _registry("network").get_class(self.net)
        for name, value in getattr(architecture, "fixed", {}).items():
            if getattr(self, name) not in (None, value):
                fail(
                    f"the network {self.net!r} has {name} {value!r} built in and it cannot be "
                    f"changed (net 'mlp' lets you choose {name})",
                    getattr(self, name),
                )
        layers = getattr(architecture, "hidden_layers", None)
        if layers is not None and len(self.hidden_sizes) != layers:
            fail(
                f"the network {self.net!r} has {layers} hidden fully connected layer(s); "
                f"give {layers} size(s) in hidden",
                list(self.hidden_sizes),
            )
        if self.net == "mlp":
            sizes = [784, *self.hidden_sizes, 10]
            n = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
            if n > MAX_PARAMETERS:
                fail(
                    f"hidden layers {list(self.hidden_sizes)} make a network of {n:,} "
                    f"parameters; at most {MAX_PARAMETERS:,} are allowed, choose smaller layers"
                )

    # -- building and reading back -----------------------------------------------------
    @classmethod
    def from_dict(cls, values, *, source: str = "the run configuration") -> RunConfig:
        """A validated config from a dict (e.g. ``config.json``); unknown keys are refused."""
        if not isinstance(values, dict):
            fail(f"{source} must be a JSON object of settings", type(values).__name__)
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                fail(
                    f"unknown key {key!r} in {source}; {hint}valid keys: {', '.join(known)}"
                )
        return cls(**values)

    def replace(self, **changes) -> RunConfig:
        """A copy with ``changes`` applied and validated.

        ``"opt.NAME"`` sets an option of the optimizer (``{"opt.momentum": 0.9}``),
        ``"act.NAME"`` one of the activation (``{"act.alpha": 0.1}``). Changing the
        optimizer drops options the new one does not have.
        """
        values = self.to_dict()
        opt = dict(values["optimizer_options"])
        act = dict(values["activation_options"])
        if "optimizer" in changes and changes["optimizer"] != self.optimizer:
            new = _registry("optimizer").options(changes["optimizer"])
            opt = {k: v for k, v in opt.items() if k in new}
        if "activation" in changes and changes["activation"] != self.activation:
            act = {}
        for key, value in changes.items():
            if key.startswith("opt."):
                opt[key[4:]] = value
            elif key.startswith("act."):
                act[key[4:]] = value
            else:
                values[key] = value
        values.setdefault("optimizer_options", {})
        values["optimizer_options"] = {**opt, **changes.get("optimizer_options", {})}
        values["activation_options"] = {**act, **changes.get("activation_options", {})}
        return RunConfig.from_dict(values)

    def to_dict(self) -> dict:
        """Plain JSON-able values, in field order (what ``config.json`` holds)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    # -- derived values ----------------------------------------------------------------
    @property
    def hidden_sizes(self) -> tuple:
        """``hidden``, or the network's own default when it is None (MLP: 100, 100)."""
        if self.hidden is not None:
            return self.hidden
        return tuple(_registry("network").get_class(self.net).defaults["hidden"])

    @property
    def dropout_ratio(self) -> float:
        """``dropout``, or the network's own default when it is None (MLP: 0, off)."""
        if self.dropout is not None:
            return self.dropout
        return float(_registry("network").get_class(self.net).defaults["dropout"])

    @property
    def weight_init(self):
        """``init``, or the network's own default when it is None.

        ``mlp``: the activation's own choice (He for ReLU-like units, Xavier for
        sigmoid and tanh, section 6.2); the convolutional networks: the book's
        (a standard deviation of 0.01 for SimpleConvNet, He for DeepConvNet).
        """
        if self.init is not None:
            return self.init
        default = _registry("network").get_class(self.net).defaults.get("init")
        if default is None:
            return _registry("activation").get_class(self.activation).preferred_init
        return default

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default rate when ``lr`` is None."""
        if self.lr is not None:
            return self.lr
        return float(_registry("optimizer").get_class(self.optimizer).default_lr)

    def short_name(self) -> str:
        """A folder-name summary: ``mnist-100x100-relu-adam[-bn][-do0.5]``."""
        if self.net == "mlp":
            body = "x".join(map(str, self.hidden_sizes)) or "linear"
            parts = [self.dataset, body, self.activation, self.optimizer]
        else:
            parts = [self.dataset, self.net, self.optimizer]
        if self.batchnorm:
            parts.append("bn")
        if self.dropout:
            parts.append(f"do{self.dropout_ratio:g}")
        return "-".join(parts)

    def rngs(self) -> dict:
        """Independent generators for the split, the weights (and dropout), the shuffling."""
        split, init, shuffle = np.random.SeedSequence(self.seed).spawn(3)
        return {
            "split": np.random.default_rng(split),
            "init": np.random.default_rng(init),
            "shuffle": np.random.default_rng(shuffle),
        }

    def build_network(self, rng=None, *, input_shape=(1, 28, 28), n_classes: int = 10):
        """The network this configuration describes, freshly initialised from ``rng``."""
        builder = _registry("network").get_class(self.net)
        return builder(self, rng=rng, input_shape=input_shape, n_classes=n_classes)

    def build_optimizer(self):
        """The optimizer with its options and learning rate."""
        from dlscratch.optim import get_optimizer

        return get_optimizer(self.optimizer, lr=self.learning_rate, **self.optimizer_options)

    def build_callbacks(self, *, has_validation: bool) -> list:
        """The learning-rate schedule and early stopping this configuration asks for."""
        from dlscratch.training.callbacks import EarlyStopping

        callbacks = []
        if self.schedule != "none":
            callbacks.append(_registry("schedule").get_class(self.schedule).for_run(self.epochs))
        if self.early_stopping is not None:
            if not has_validation:
                fail(
                    "early stopping (early_stopping, --early-stopping) needs validation data: "
                    "set val_split (--val-split) > 0"
                )
            callbacks.append(EarlyStopping("val_acc", patience=self.early_stopping))
        return callbacks

    def describe(self, net=None) -> str:
        """Two human lines: the network, then the optimisation."""
        if self.net == "mlp":
            sizes = "-".join(map(str, [784, *self.hidden_sizes, 10]))
            arch = f"network {sizes} {self.activation}"
        else:
            arch = f"network {self.net}"
        extras = [f"init {self.weight_init}"]
        if self.activation_options:
            extras += [f"{k} {v:g}" for k, v in self.activation_options.items()]
        if self.batchnorm:
            extras.append("batch norm")
        if self.dropout_ratio:
            extras.append(f"dropout {self.dropout_ratio:g}")
        if self.weight_decay:
            extras.append(f"weight decay {self.weight_decay:g}")
        if net is not None:
            extras.append(f"{sum(int(p.size) for p in net.params.values()):,} parameters")
        opts = "".join(f", {k} {v:g}" for k, v in self.optimizer_options.items())
        sched = f" ({self.schedule} schedule)" if self.schedule != "none" else ""
        epochs = f"{self.epochs} epoch{'' if self.epochs == 1 else 's'}"
        return (
            f"{arch} ({'; '.join(extras)})\n"
            f"{self.optimizer} lr {self.learning_rate:g}{opts}{sched}, batch {self.batch_size}, "
            f"{epochs}, seed {self.seed}"
        )


_FIELD_OPTIONS = (
    Option("dataset", str, "mnist", "data set", choices=DATASETS),
    Option("net", str, "mlp", "network architecture"),
    Option("hidden", list, None, "hidden layer sizes of the fully connected layers "
           "(default: the network's own, 100,100 for mlp)"),
    Option("activation", str, "relu", "hidden activation"),
    Option("activation_options", dict, {}, "options of the activation (e.g. alpha)"),
    Option("init", str, None, "weight initialisation: he, xavier or a standard deviation "
           "(default: the network's own; for mlp the activation's: he for ReLU-like units, "
           "xavier for sigmoid and tanh)"),
    Option("batchnorm", bool, False, "batch normalization after every hidden affine layer"),
    Option("dropout", float, None, "dropout ratio after every hidden activation (0: off; "
           "default: the network's own, off for mlp)", low=0.0, high=1.0, high_open=True),
    Option("weight_decay", float, 0.0, "L2 penalty strength in the loss (the book's lambda)",
           low=0.0, log=True),
    Option("optimizer", str, "adam", "update rule"),
    Option("lr", float, None, "learning rate", low=0.0, low_open=True, log=True),
    Option("optimizer_options", dict, {}, "options of the optimizer (momentum, betas, ...)"),
    Option("schedule", str, "none", "learning-rate schedule per epoch"),
    Option("epochs", int, 10, "passes over the training set", low=1, high=MAX_EPOCHS),
    Option("batch_size", int, 100, "images per update", low=1, high=1_000_000, log=True),
    Option("sampling", str, "epoch", "epoch: shuffled passes; random: the book's draws",
           choices=("epoch", "random")),
    Option("val_split", float, 0.1, "share of the training images held out for validation",
           low=0.0, high=1.0, high_open=True),
    Option("limit", int, None, "use only the first N training images", low=1),
    Option("early_stopping", int, None, "patience in epochs without a better val accuracy",
           low=1),
    Option("seed", int, 0, "seed of the split, weights, shuffling and dropout",
           low=0, high=2**63 - 1),
    Option("dtype", str, "float32", "float32 (fast) or float64", choices=("float32", "float64")),
    Option("device", str, "cpu", "cpu (NumPy) or cuda (CuPy)", choices=("cpu", "cuda")),
    Option("threads", int, None, "BLAS threads", low=1, high=1024),
)
RunConfig.FIELDS = {o.name: o for o in _FIELD_OPTIONS}


def _check_field(name: str, value, cfg: RunConfig):
    option = RunConfig.FIELDS[name]
    if name == "hidden":
        return _check_hidden(value)
    if name == "init":
        return None if value is None else _check_init(value)
    if name in ("activation_options", "optimizer_options"):
        owner = "activation" if name == "activation_options" else "optimizer"
        if not isinstance(value, dict):
            fail(f"{name} must be a mapping of option names to values", value)
        return _registry(owner).check_options(getattr(cfg, owner), value)
    if name in _REGISTRY_FIELDS:
        if name == "schedule" and value == "none":
            return value
        if not isinstance(value, str):
            fail(f"{name} must be a name", value)
        registry = _registry(_REGISTRY_FIELDS[name])
        registry.get_class(value)  # refuses an unknown name with the list of known ones
        return value.lower()
    if value is None and option.default is None:
        return None
    return option.validate(value)


def parse_layer_sizes(text: str) -> list[int]:
    """``"100,100"`` -> [100, 100]; ``"none"`` or empty -> [] (no hidden layer).

    How hidden sizes are written on the command line and in a search space.
    """
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            fail(
                f"invalid layer sizes {text!r}: expected comma-separated positive integers "
                f"such as 100,100 (bad part: {part!r})"
            )
        sizes.append(int(part))
    return sizes


def _check_hidden(value) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        fail("hidden must be a list of layer sizes such as [100, 100]", value)
    sizes = []
    for size in value:
        if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
            fail("hidden layer sizes must be whole numbers >= 1", list(value))
        if size > MAX_LAYER:
            fail(f"hidden layer sizes must be at most {MAX_LAYER:,}", list(value))
        sizes.append(int(size))
    return tuple(sizes)


def _check_init(value):
    if isinstance(value, str):
        name = value.lower()
        names = {"he": "he", "relu": "he", "xavier": "xavier", "sigmoid": "xavier"}
        if name not in names:
            try:
                value = float(value)
            except ValueError:
                fail("init must be 'he', 'xavier' or a standard deviation > 0 such as 0.01",
                     value)
        else:
            return names[name]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return float(value)
    fail("init must be 'he', 'xavier' or a standard deviation > 0 such as 0.01", value)


# -- data ---------------------------------------------------------------------------------


@dataclass
class RunData:
    """The arrays a run trains on: training, validation (optional) and test splits."""

    x_train: Any
    t_train: Any
    x_val: Any = None
    t_val: Any = None
    x_test: Any = None
    t_test: Any = None
    class_names: list = field(default_factory=lambda: [str(i) for i in range(10)])
    checksum: str | None = None

    @classmethod
    def from_arrays(cls, x_train, t_train, x_val=None, t_val=None, **extra) -> RunData:
        return cls(x_train, t_train, x_val, t_val, **extra)

    @property
    def has_validation(self) -> bool:
        return self.x_val is not None


def load_run_data(cfg: RunConfig, data_dir=None, *, rng=None) -> RunData:
    """Load ``cfg.dataset``, keep the first ``cfg.limit`` training images and split off
    ``cfg.val_split`` of them for validation (drawn with ``rng``, by default the
    config's split generator). Pixels stay uint8; the Trainer scales each batch."""
    from dlscratch.data import CLASS_NAMES, dataset_checksum, load_mnist, train_val_split

    (x, t), (x_test, t_test) = load_mnist(normalize=False, dataset=cfg.dataset,
                                          data_dir=data_dir)
    if cfg.limit is not None:
        x, t = x[: cfg.limit], t[: cfg.limit]
    x_val = t_val = None
    if cfg.val_split > 0:
        rng = cfg.rngs()["split"] if rng is None else rng
        n_val = int(round(len(x) * cfg.val_split))
        if n_val < 1 or n_val >= len(x):
            fail(
                f"val_split {cfg.val_split:g} of {len(x)} training images leaves "
                f"{len(x) - n_val} for training and {n_val} for validation; "
                "use more images (limit, --limit) or another val_split (--val-split; 0 for none)"
            )
        (x, t), (x_val, t_val) = train_val_split(x, t, cfg.val_split, rng=rng)
    return RunData(
        x, t, x_val, t_val, x_test, t_test,
        class_names=list(CLASS_NAMES[cfg.dataset]),
        checksum=dataset_checksum(cfg.dataset, data_dir),
    )


# -- the trainer -------------------------------------------------------------------------


def build_trainer(
    cfg: RunConfig,
    data: RunData,
    *,
    callbacks=(),
    network=None,
    optimizer=None,
    input_shape=None,
    n_classes: int | None = None,
    **trainer_kw,
):
    """Network, optimizer, schedule and early stopping, and the Trainer that runs them.

    ``network``/``optimizer``: use these instead of building new ones (warm starts).
    ``input_shape`` defaults to one sample of ``data.x_train`` (a flat 784 for MNIST
    loaded flat), ``n_classes`` to ``len(data.class_names)``. The batch size is clamped
    to the training set (the command line prints a note when it does).
    ``trainer_kw`` goes to :class:`~dlscratch.training.Trainer` (``verbose``,
    ``progress``, ...).
    """
    from dlscratch.backend import set_num_threads
    from dlscratch.training import Trainer

    if cfg.threads is not None:
        set_num_threads(cfg.threads)
    rngs = cfg.rngs()
    if network is None:
        shape = tuple(data.x_train.shape[1:]) if input_shape is None else tuple(input_shape)
        classes = len(data.class_names) if n_classes is None else int(n_classes)
        network = cfg.build_network(rngs["init"], input_shape=shape, n_classes=classes)
    batch_size = min(cfg.batch_size, len(data.x_train))
    return Trainer(
        network,
        cfg.build_optimizer() if optimizer is None else optimizer,
        data.x_train,
        data.t_train,
        data.x_val,
        data.t_val,
        epochs=cfg.epochs,
        batch_size=batch_size,
        sampling=cfg.sampling,
        rng=rngs["shuffle"],
        callbacks=[*cfg.build_callbacks(has_validation=data.has_validation), *callbacks],
        **trainer_kw,
    )
