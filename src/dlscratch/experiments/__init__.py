"""Every figure of the notes, reproducible by one command: ``dlscratch experiment NAME``.

>>> from dlscratch.experiments import EXPERIMENTS, run_experiment
>>> list(EXPERIMENTS)[:3]
['activations', 'inference', 'numerical-diff']
>>> manifest = run_experiment("optimizers-2d", "out", quick=True)  # doctest: +SKIP

Each run writes ``OUT/NAME/``: the figure as PNG and SVG, the raw series as
CSV and ``result.json`` (config, seed, versions, dataset checksum, summary
numbers with the book's beside them, wall time). :func:`build_report` turns a
folder of runs into one offline ``index.html``.

To add an experiment: write ``run(ctx)`` in a module here and decorate it with
:func:`dlscratch.experiments.base.experiment` (with its book ``section``): the
module is found and the experiment takes its place in the book's order by itself.
"""

from __future__ import annotations

from dlscratch.experiments.base import (
    DEFAULT_OUT,
    REGISTRY,
    Context,
    Experiment,
    TrainLog,
    get_experiment,
    run_experiment,
    train_iterations,
)
from dlscratch.experiments.report import build_report
from dlscratch.registry import load_modules

load_modules(__name__)  # every module here registers its experiments with @experiment


def _book_order(name: str) -> tuple:
    """Sort key: the book section ("6.4.2" -> (6, 4, 2)), then the order of registration."""
    section = REGISTRY[name].section
    numbers = tuple(int(part) for part in section.split(".") if part.isdigit())
    return (numbers or (99,), list(REGISTRY).index(name))


#: The experiments in the order of the book (and of ``--list`` and the report).
ORDER = tuple(sorted(REGISTRY, key=_book_order))

#: Name -> :class:`Experiment`, in book order.
EXPERIMENTS = {name: REGISTRY[name] for name in ORDER}

__all__ = [
    "DEFAULT_OUT",
    "EXPERIMENTS",
    "ORDER",
    "Context",
    "Experiment",
    "TrainLog",
    "build_report",
    "get_experiment",
    "run_experiment",
    "train_iterations",
]
