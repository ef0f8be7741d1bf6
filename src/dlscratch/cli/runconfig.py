"""Command-line options for a :class:`~dlscratch.config.RunConfig`, derived from it.

``dlscratch train`` (and every command that trains: ``search``, the web app's training)
adds these with :func:`add_run_options` and reads them back with :func:`config_from_args`.
Choices, defaults, ranges and help come from ``RunConfig.FIELDS`` and the registries, so a
newly registered optimizer, activation, schedule or network appears here by itself, and
so do its options (``--momentum``, ``--beta1``, ``--alpha``, ...).

Every option's argparse default is None, so that a run can tell what was given (which
matters for ``--config`` and ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from dlscratch.config import HARDWARE_FIELDS, RunConfig, parse_layer_sizes
from dlscratch.registry import Option

#: Flags of the config fields, in the groups ``--help`` shows them in.
GROUPS = {
    "data": ("dataset", "limit", "val_split"),
    "network": ("net", "hidden", "activation", "init", "batchnorm", "dropout", "weight_decay",
                "dtype"),
    "optimisation": ("optimizer", "lr", "epochs", "batch_size", "sampling", "schedule",
                     "early_stopping", "seed"),
    "hardware (not saved with the run; may differ on --resume)": HARDWARE_FIELDS,
}


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


# -- argument types ---------------------------------------------------------------------------


def _typed(option: Option):
    """An argparse type that converts text and validates it with ``option``."""

    def convert(text: str):
        raw = text.strip()
        if option.type is int:
            try:
                value = int(raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        elif option.type is float:
            try:
                value = float(raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        else:
            value = raw.lower()
        try:
            return option.validate(value, where="")
        except ValueError as exc:  # "lr must be > 0, got -1" -> "must be > 0, got -1"
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{option.name} ")) from None

    convert.__name__ = option.type.__name__
    return convert


def layer_sizes(text: str) -> list[int]:
    """``100,100`` -> [100, 100] (see :func:`dlscratch.config.parse_layer_sizes`)."""
    try:
        return parse_layer_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def init_method(text: str):
    """``he``, ``xavier`` or a positive standard deviation such as ``0.01``."""
    if text.lower() in ("he", "xavier", "relu", "sigmoid"):
        return {"relu": "he", "sigmoid": "xavier"}.get(text.lower(), text.lower())
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'he', 'xavier' or a standard deviation > 0 such as 0.01, got {text!r}"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"the standard deviation must be > 0, got {text}")
    return value


def key_value(text: str) -> tuple[str, float]:
    """``momentum=0.9`` -> ("momentum", 0.9)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as momentum=0.9, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value.strip()
    return key.strip().replace("-", "_"), parsed


def betas(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        b1, b2 = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected two numbers BETA1,BETA2 such as 0.9,0.999, got {text!r}"
        ) from None
    return b1, b2


# -- the options ------------------------------------------------------------------------------


def _registry_choices(field: str) -> tuple:
    from dlscratch.config import _registry

    kinds = {"optimizer": "optimizer", "activation": "activation", "schedule": "schedule",
             "net": "network"}
    names = tuple(_registry(kinds[field]))
    return ("none", *names) if field == "schedule" else names


def _option_owners(kind: str) -> dict[str, Option]:
    """Every option name declared by any entry of a registry (first declaration wins)."""
    from dlscratch.config import _registry

    registry = _registry(kind)
    found: dict[str, Option] = {}
    for name in registry:
        for option in getattr(registry[name], "options", ()):
            found.setdefault(option.name, option)
    return found


def add_run_options(parser: argparse.ArgumentParser, *, skip=()) -> None:
    """Add a flag for every RunConfig field (and every optimizer/activation option)."""
    from dlscratch.cli.options import add_dataset_options

    fields = RunConfig.FIELDS
    grouped = {name for names in GROUPS.values() for name in names}
    # a field no group names yet still gets its flag (options dicts have flags of their own)
    rest = tuple(name for name, option in fields.items()
                 if name not in grouped and option.type is not dict)
    for title, names in {**GROUPS, "other settings": rest}.items():
        if not names:
            continue
        group = parser.add_argument_group(title)
        for name in names:
            if name in skip:
                continue
            option = fields[name]
            if name == "dataset":
                add_dataset_options(group, default=None, help="mnist (default) or fashion-mnist")
                continue
            kw: dict = {"default": None, "help": option.describe()}
            if name in ("optimizer", "activation", "schedule", "net"):
                kw.update(type=str.lower, choices=_registry_choices(name))
                if name == "optimizer":
                    from dlscratch.optim import OPTIMIZERS

                    rates = ", ".join(f"{k} {OPTIMIZERS[k].default_lr:g}" for k in OPTIMIZERS)
                    kw["help"] = f"update rule (default {option.default}; default rates: {rates})"
                elif name == "schedule":
                    from dlscratch.training.schedules import SCHEDULES

                    kw["help"] = "learning-rate schedule per epoch (default none): " + "; ".join(
                        f"{k}: {SCHEDULES[k].summary}" for k in SCHEDULES
                    )
            elif name == "hidden":
                from dlscratch.nets import ARCHITECTURES

                own = "; ".join(
                    f"{','.join(map(str, ARCHITECTURES[n].defaults['hidden']))} for {n}"
                    for n in ARCHITECTURES
                )
                kw.update(type=layer_sizes, metavar="SIZES",
                          help=f"hidden layer sizes, comma-separated (default: the network's "
                          f"own: {own})")
            elif name == "init":
                from dlscratch.layers import ACTIVATIONS
                from dlscratch.nets import ARCHITECTURES

                by_init: dict = {}
                for act in ACTIVATIONS:
                    by_init.setdefault(ACTIVATIONS[act].preferred_init, []).append(act)
                acts = "; ".join(f"{k} for {', '.join(v)}" for k, v in by_init.items())
                own = "; ".join(
                    f"{ARCHITECTURES[n].defaults['init']} for {n}"
                    for n in ARCHITECTURES if ARCHITECTURES[n].defaults.get("init") is not None
                )
                kw.update(type=init_method, metavar="he|xavier|STD",
                          help="weight initialisation: he, xavier or a std like 0.01 (default: "
                          f"the network's own: for mlp the activation's ({acts}); {own})")
            elif option.type is bool:
                kw.update(action="store_true", help=option.help)
            elif name == "lr":
                kw.update(type=_typed(option),
                          help="learning rate > 0 (default: the optimizer's, see --optimizer)")
            elif option.choices is not None:
                kw.update(choices=option.choices)
            else:
                kw.update(type=_typed(option), metavar="N" if option.type is int else "X")
            group.add_argument(flag(name), **kw)

    opt_group = parser.add_argument_group(
        "optimizer and activation options (each applies to the optimizer/activation that has it)"
    )
    for name, option in _option_owners("optimizer").items():
        if name in fields:  # e.g. AdamW's weight_decay: --opt weight_decay=0.01
            continue
        opt_group.add_argument(flag(name), dest=f"opt_{name}", type=_typed(option),
                               default=None, metavar=name.upper(), help=option.describe())
    if {"beta1", "beta2"} <= set(_option_owners("optimizer")):
        opt_group.add_argument("--betas", type=betas, default=None, metavar="B1,B2",
                               help="both of Adam's decay rates at once, e.g. 0.9,0.999")
    for name, option in _option_owners("activation").items():
        opt_group.add_argument(flag(name), dest=f"act_{name}", type=_typed(option),
                               default=None, metavar=name.upper(), help=option.describe())
    opt_group.add_argument("--opt", type=key_value, action="append", default=None,
                           metavar="KEY=VALUE",
                           help="any optimizer option, e.g. --opt weight_decay=0.01 (AdamW)")
    opt_group.add_argument("--config", type=Path, default=None, metavar="FILE",
                           help="start from a run configuration (a config.json or best.json); "
                           "options given on the command line override it")


def given_changes(args) -> dict:
    """The RunConfig changes the command line asks for (only what was given)."""
    changes = {}
    for name in RunConfig.FIELDS:
        if name == "dataset":
            value = getattr(args, "dataset", None)
        else:
            value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    for key, value in vars(args).items():
        if value is None:
            continue
        if key.startswith("opt_"):
            changes[f"opt.{key[4:]}"] = value
        elif key.startswith("act_"):
            changes[f"act.{key[4:]}"] = value
    if getattr(args, "betas", None) is not None:
        changes["opt.beta1"], changes["opt.beta2"] = args.betas
    for key, value in getattr(args, "opt", None) or ():
        changes[f"opt.{key}"] = value
    return changes


#: A run configuration is a few hundred bytes; anything near this is not one.
CONFIG_MAX_BYTES = 2**20


def read_config_file(path: Path) -> RunConfig:
    """A RunConfig from a JSON file (a run's config.json, a search's best.json)."""
    from dlscratch.fileio import read_json

    values = read_json(path, max_bytes=CONFIG_MAX_BYTES)
    if isinstance(values, dict) and isinstance(values.get("config"), dict):
        values = values["config"]  # a metrics.json or a file that wraps the config
    return RunConfig.from_dict(values, source=str(path))


def config_from_args(args, base: RunConfig | None = None) -> RunConfig:
    """The base config (``--config FILE``, else ``base``, else the defaults) plus the flags."""
    if getattr(args, "config", None) is not None:
        base = read_config_file(args.config)
    base = base or RunConfig()
    changes = given_changes(args)
    if "optimizer" in changes:  # options of another optimizer do not carry over
        base = base.replace(optimizer=changes.pop("optimizer"))
    return base.replace(**changes)
