"""Registries: the one list of each kind of building block, and the options each declares.

A :class:`Registry` maps a name (what a user types: ``"adam"``, ``"leaky_relu"``) to a
class. A class declares its own hyperparameters as :class:`Option` objects in a class
attribute ``options``; the command line, the estimator, the search space and the run
configuration read their choices, defaults, ranges and help from there, so a newly
registered optimizer or activation is usable everywhere at once::

    from dlscratch.optim import OPTIMIZERS, Optimizer
    from dlscratch.registry import Option

    @OPTIMIZERS.register("lion")
    class Lion(Optimizer):
        default_lr = 1e-4
        options = (Option("beta1", float, 0.9, "...", low=0.0, high=1.0),)

Registries fill themselves: :func:`load_modules` imports every module of a package, so
a new file in ``dlscratch/optim/`` or ``dlscratch/layers/`` registers its classes without
an edit anywhere else.
"""

from __future__ import annotations

import importlib
import math
import numbers
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dlscratch.checks import fail


@dataclass(frozen=True)
class Option:
    """One hyperparameter a registered class accepts as a keyword argument.

    ``type`` is ``float``, ``int``, ``bool`` or ``str``; numbers may be bounded by
    ``low``/``high`` (inclusive unless ``low_open``/``high_open``); ``choices``
    restricts a string. ``log``: the natural search scale is logarithmic.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    log: bool = False

    def bounds_text(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)

    def validate(self, value, where: str = ""):
        """``value`` converted to this option's type, or a ValueError naming the option."""
        label = f"{where}{self.name}"
        if self.choices is not None:
            if value not in self.choices:
                fail(f"{label} must be one of {', '.join(map(str, self.choices))}", value)
            return value
        if self.type is bool:
            if not isinstance(value, bool):
                fail(f"{label} must be true or false", value)
            return value
        if self.type is str:
            if not isinstance(value, str):
                fail(f"{label} must be a string", value)
            return value
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            fail(f"{label} must be a number", value)
        if self.type is int:
            if isinstance(value, float) and not value.is_integer():
                fail(f"{label} must be a whole number", value)
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                fail(f"{label} must be a finite number", value)
        low_bad = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        high_bad = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if low_bad or high_bad:
            fail(f"{label} must be {self.bounds_text()}", value)
        return value

    def describe(self) -> str:
        """One line for ``--help``: the help text, the range and the default."""
        extra = [self.bounds_text()] if self.bounds_text() else []
        if self.default is not None:
            extra.append(f"default {self.default}")
        return f"{self.help} ({'; '.join(extra)})"


class Registry(Mapping):
    """``name -> class``, filled by :meth:`register`; read like a dict.

    ``kind`` names what is registered ("optimizer", "activation", ...) for error messages.
    """

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, type] = {}
        self._package = package
        self._loaded = package is None

    def register(self, name: str):
        """Class decorator: add the class under ``name`` (lower case, unique)."""

        def add(cls):
            key = name.lower()
            if key in self._entries and self._entries[key] is not cls:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = cls
            cls.registry_name = key
            return cls

        return add

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            load_modules(self._package)

    def __getitem__(self, name: str) -> type:
        self._ensure_loaded()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self._ensure_loaded()
        return iter(self._entries)

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def get_class(self, name) -> type:
        """The class registered as ``name`` (case-insensitive), or a ValueError listing them all."""
        self._ensure_loaded()
        key = name.lower() if isinstance(name, str) else name
        if key not in self._entries:
            fail(f"unknown {self.kind} {name!r}: choose one of {', '.join(self._entries)}")
        return self._entries[key]

    def options(self, name) -> dict[str, Option]:
        """The options the class registered as ``name`` declares, by option name."""
        return {o.name: o for o in getattr(self.get_class(name), "options", ())}

    def check_options(self, name, values: Mapping | None) -> dict:
        """Validate ``values`` against the options of ``name``; unknown keys are refused."""
        declared = self.options(name)
        checked = {}
        for key, value in dict(values or {}).items():
            if key not in declared:
                known = ", ".join(declared) or "none"
                fail(f"{self.kind} {name!r} has no option {key!r} (its options: {known})")
            checked[key] = declared[key].validate(value, where=f"{name} ")
        return checked

    def create(self, name, /, **kwargs):
        """An instance of ``name`` built with its validated options."""
        return self.get_class(name)(**self.check_options(name, kwargs))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self)})"


def load_modules(package: str) -> None:
    """Import every module of ``package`` (so that the classes in them register themselves)."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
