"""Every figure of the notes, reproducible by one command: ``dlscratch experiment NAME``.

>>> from dlscratch.experiments import EXPERIMENTS, run_experiment
>>> list(EXPERIMENTS)[:3]
['activations', 'inference', 'numerical-diff']
>>> manifest = run_experiment("optimizers-2d", "out", quick=True)  # doctest: +SKIP

Each run writes ``OUT/NAME/``: the figure as PNG and SVG, the raw series as
CSV and ``result.json`` (config, seed, versions, dataset checksum, summary
numbers with the book's beside them, wall time). :func:`build_report` turns a
folder of runs into one offline ``index.html``.

To add an experiment: write ``run(ctx)`` in a module here, decorate it with
:func:`dlscratch.experiments.base.experiment`, import the module below and put
its name in ``ORDER``.
"""

from __future__ import annotations

from dlscratch.experiments import (  # noqa: F401  (importing registers the experiments)
    basics,
    batchnorm,
    gradcheck,
    hyperparameter,
    inference,
    optimizers,
    regularization,
    twolayer,
    weight_init,
)
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

#: The experiments in the order of the book (and of ``--list`` and the report).
ORDER = (
    "activations",
    "inference",
    "numerical-diff",
    "gradient-field",
    "gradient-descent",
    "two-layer-net",
    "gradient-check",
    "two-layer-backprop",
    "optimizers-2d",
    "optimizers-mnist",
    "weight-init-histogram",
    "weight-init-mnist",
    "batchnorm",
    "weight-decay",
    "dropout",
    "hyperparameter-search",
)

#: Name -> :class:`Experiment`, in book order.
EXPERIMENTS = {name: REGISTRY[name] for name in ORDER}
if set(EXPERIMENTS) != set(REGISTRY):  # pragma: no cover - a new module not put in ORDER
    raise RuntimeError(f"experiments missing from ORDER: {sorted(set(REGISTRY) - set(ORDER))}")

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
