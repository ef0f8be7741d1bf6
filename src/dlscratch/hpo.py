"""Random hyperparameter search (book, section 6.5), judged on validation data.

The book searches the learning rate and the weight decay by drawing them at random
on a *log* scale (``10 ** uniform(-6, -2)``), training briefly with each pair and
keeping the region where the validation accuracy is best. This module does that
for any objective::

    from dlscratch.hpo import LogUniform, random_search

    space = {"lr": LogUniform(1e-6, 1e-2), "weight_decay": LogUniform(1e-8, 1e-4)}

    def objective(params, trial_index):
        ...  # build, train on the training split, evaluate on the validation split
        return {"val_acc": 0.91, "train_acc": 0.95}

    result = random_search(objective, space, n_trials=20, rng=0)
    result.best["params"]          # {'lr': 0.0031..., 'weight_decay': 2.4e-07}
    result.to_csv("results.csv")   # ranked, best first

A search space maps parameter names to distributions (:class:`LogUniform`,
:class:`Uniform`, :class:`IntUniform`, :class:`Choice`) or to fixed values, which
are passed through unchanged. Every trial's parameters are drawn, in the order of
the space's keys, from one generator before any objective runs, so the same seed
gives the same trials whatever the objectives do. The test set has no place here:
score on validation data.

Imports only NumPy and dlscratch modules.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dlscratch.fileio import json_default, write_csv, write_text
from dlscratch.training.errors import NonFiniteLossError

__all__ = [
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "SearchResult",
    "Uniform",
    "random_search",
    "sample_space",
]

#: Values of a trial's ``status``.
OK, FAILED = "ok", "failed"


def _real(name: str, value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what}: {name} must be finite, got {value}")
    return value


def _as_generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool):
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")
    return np.random.default_rng(rng)


# -- distributions --------------------------------------------------------------------------


class Distribution:
    """Base of the search-space distributions: ``sample(rng)`` draws one value."""

    #: Name in :meth:`to_dict` (and so in results.json).
    kind = "distribution"
    #: Whether plots should use a logarithmic axis for this parameter.
    log_scale = False

    def sample(self, rng, size=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:
        """A JSON-serialisable description, e.g. ``{"type": "log-uniform", "low": ..}``."""
        return {"type": self.kind, **vars(self)}


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Uniform on a log scale: ``10 ** U(log10(low), log10(high))``, as the book samples.

    Every decade between ``low`` and ``high`` is equally likely: with
    ``LogUniform(1e-6, 1e-2)`` a quarter of the draws fall in each of
    [1e-6, 1e-5), [1e-5, 1e-4), [1e-4, 1e-3) and [1e-3, 1e-2].

    Parameters
    ----------
    low, high : float
        Bounds with ``0 < low < high`` (both finite).
    """

    low: float
    high: float
    kind = "log-uniform"
    log_scale = True

    def __post_init__(self):
        what = "LogUniform"
        low, high = _real("low", self.low, what), _real("high", self.high, what)
        if not 0 < low < high:
            raise ValueError(
                f"LogUniform needs 0 < low < high (a log scale has no zero or negative "
                f"values), got low={low:g}, high={high:g}"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng, size=None):
        """One float (``size=None``) or an ndarray of shape ``size``, in [low, high]."""
        exponent = _as_generator(rng).uniform(math.log10(self.low), math.log10(self.high), size)
        value = np.clip(10.0**exponent, self.low, self.high)
        return float(value) if size is None else value


@dataclass(frozen=True)
class Uniform(Distribution):
    """Uniform on a linear scale, in [low, high).

    Parameters
    ----------
    low, high : float
        Finite bounds with ``low < high``.
    """

    low: float
    high: float
    kind = "uniform"

    def __post_init__(self):
        low, high = _real("low", self.low, "Uniform"), _real("high", self.high, "Uniform")
        if not low < high:
            raise ValueError(f"Uniform needs low < high, got low={low:g}, high={high:g}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng, size=None):
        """One float (``size=None``) or an ndarray of shape ``size``."""
        value = _as_generator(rng).uniform(self.low, self.high, size)
        return float(value) if size is None else value


@dataclass(frozen=True)
class IntUniform(Distribution):
    """A uniformly drawn integer from ``low`` to ``high``, both included.

    Parameters
    ----------
    low, high : int
        Integers with ``low <= high``.
    """

    low: int
    high: int
    kind = "int-uniform"

    def __post_init__(self):
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"IntUniform: {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not self.low <= self.high:
            raise ValueError(f"IntUniform needs low <= high, got low={self.low}, high={self.high}")

    def sample(self, rng, size=None):
        """One int (``size=None``) or an int64 ndarray of shape ``size``."""
        value = _as_generator(rng).integers(self.low, self.high, size, endpoint=True)
        return int(value) if size is None else value


@dataclass(frozen=True)
class Choice(Distribution):
    """One of ``options``, each equally likely.

    Parameters
    ----------
    options : sequence
        A non-empty list or tuple (not a string) or a 1-D array, e.g. ``("sgd", "adam")``.
    """

    options: tuple
    kind = "choice"

    def __post_init__(self):
        opts = self.options
        if isinstance(opts, np.ndarray) and opts.ndim == 1:
            opts = opts.tolist()
        if isinstance(opts, (str, bytes)) or not isinstance(opts, Sequence):
            raise TypeError(
                f"Choice needs a list or tuple of options, got {type(opts).__name__}: {opts!r}"
            )
        if len(opts) == 0:
            raise ValueError("Choice needs at least one option, got an empty sequence")
        object.__setattr__(self, "options", tuple(opts))

    def sample(self, rng, size=None):
        """One option (``size=None``) or a list of ``size`` options (an int)."""
        index = _as_generator(rng).integers(len(self.options), size=size)
        if size is None:
            return _plain(self.options[int(index)])
        return [_plain(self.options[int(i)]) for i in np.ravel(index)]

    def to_dict(self) -> dict:
        return {"type": self.kind, "options": [_plain(o) for o in self.options]}


def _plain(value):
    """NumPy scalars as Python numbers (JSON and CSV friendly)."""
    return value.item() if isinstance(value, np.generic) else value


def _describe(value) -> dict:
    if isinstance(value, Distribution):
        return value.to_dict()
    return {"type": "fixed", "value": _plain(value)}


def sample_space(space: Mapping, rng) -> dict:
    """One draw of every parameter of ``space``, in its key order.

    Parameters
    ----------
    space : mapping of str to Distribution or fixed value
    rng : numpy.random.Generator or int or None

    Returns
    -------
    dict
        Same keys; distributions replaced by a sample (Python float, int or an
        option), fixed values passed through.
    """
    rng = _as_generator(rng)
    return {
        name: dist.sample(rng) if isinstance(dist, Distribution) else _plain(dist)
        for name, dist in space.items()
    }


# -- the search ---------------------------------------------------------------------------------


def random_search(
    objective: Callable[[dict, int], Mapping],
    space: Mapping,
    n_trials: int,
    *,
    rng=None,
    callback: Callable[[dict], None] | None = None,
    score: str = "val_acc",
    maximize: bool = True,
) -> SearchResult:
    """Try ``n_trials`` random points of ``space``; rank them by ``score``.

    Parameters
    ----------
    objective : callable(params: dict, trial_index: int) -> dict
        Trains and evaluates one configuration; returns metrics (numbers by
        name) including ``score``. ``trial_index`` (0-based) lets it derive
        its own seeds. If it raises
        :class:`~dlscratch.training.NonFiniteLossError` (a diverging run), or
        returns a NaN or infinite score, the trial is recorded as failed and
        the search goes on; any other exception ends the search.
    space : mapping of str to Distribution or fixed value
        E.g. ``{"lr": LogUniform(1e-6, 1e-2), "optimizer": "sgd"}``.
    n_trials : int
        Number of trials, >= 1.
    rng : numpy.random.Generator or int or None
        Randomness for drawing the parameters; an int is a seed. All trials'
        parameters are drawn before the first objective runs.
    callback : callable(trial: dict) -> None, optional
        Called after each trial, in trial order, with its record (see
        :class:`SearchResult`; ``rank`` is not known yet and is None).
    score : str
        The metric to rank by (default ``"val_acc"``).
    maximize : bool
        True (default) when larger scores are better (accuracies); False for
        losses.

    Returns
    -------
    SearchResult
        Trials ranked best first, failed trials last.
    """
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    if not isinstance(space, Mapping):
        raise TypeError(f"space must be a dict of name -> distribution, got {type(space).__name__}")
    for name in space:
        if not isinstance(name, str):
            raise TypeError(f"space keys must be parameter names (str), got {name!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if not isinstance(score, str):
        raise TypeError(f"score must be a metric name (str), got {score!r}")

    gen = _as_generator(rng)
    points = [sample_space(space, gen) for _ in range(int(n_trials))]
    trials = []
    for index, params in enumerate(points):
        trial = run_trial(objective, params, index, score=score)
        trials.append(trial)
        if callback is not None:
            callback(dict(trial))
    return SearchResult(trials, space=space, score=score, maximize=maximize)


def run_trial(objective, params: dict, index: int, *, score: str = "val_acc") -> dict:
    """Run ``objective(params, index)`` once and return its trial record.

    A :class:`~dlscratch.training.NonFiniteLossError`, or a NaN/infinite score,
    makes the trial ``"failed"`` (with the reason in ``error``); a missing score
    raises ``ValueError``.
    """
    started = time.perf_counter()
    metrics, status, error = {}, OK, None
    try:
        returned = objective(dict(params), index)
    except NonFiniteLossError as exc:
        status, error = FAILED, str(exc)
    else:
        if not isinstance(returned, Mapping):
            raise TypeError(
                f"the objective must return a dict of metrics, got {type(returned).__name__}"
            )
        metrics = {str(k): _plain(v) for k, v in returned.items()}
        if score not in metrics:
            raise ValueError(
                f"the objective's metrics have no {score!r} (the score to rank by); it returned "
                f"{', '.join(map(repr, metrics)) or 'nothing'}. Return it, or pass score=..."
            )
        value = metrics[score]
        if not _finite(value):
            status, error = FAILED, f"{score} is {value}"
    return {
        "index": int(index),
        "rank": None,
        "params": dict(params),
        "metrics": metrics,
        "status": status,
        "error": error,
        "seconds": time.perf_counter() - started,
    }


def _finite(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# -- results ------------------------------------------------------------------------------------


class SearchResult:
    """The trials of a search, ranked best first.

    Parameters
    ----------
    trials : list of dict
        Trial records in any order (they are ranked here).
    space : mapping, optional
        The search space (for :meth:`to_dict` and plot axes).
    score : str
    maximize : bool

    Attributes
    ----------
    trials : list of dict
        Best first; failed trials last (in trial order). Each record has
        ``index`` (int, 0-based trial number), ``rank`` (int, 1-based),
        ``params`` (dict name -> value), ``metrics`` (dict name -> number;
        empty when the objective raised), ``status`` (``"ok"`` or
        ``"failed"``), ``error`` (str or None) and ``seconds`` (float).
    score : str
    maximize : bool
    space : dict
    """

    def __init__(self, trials, *, space=None, score: str = "val_acc", maximize: bool = True):
        self.score = score
        self.maximize = bool(maximize)
        self.space = dict(space or {})
        sign = -1.0 if self.maximize else 1.0
        ok = [dict(t) for t in trials if t["status"] == OK]
        failed = [dict(t) for t in trials if t["status"] != OK]
        ok.sort(key=lambda t: (sign * t["metrics"][score], t["index"]))
        failed.sort(key=lambda t: t["index"])
        self.trials = ok + failed
        for rank, trial in enumerate(self.trials, start=1):
            trial["rank"] = rank

    def __len__(self) -> int:
        return len(self.trials)

    def __repr__(self) -> str:
        best = self.best
        shown = "none succeeded" if best is None else f"best {self.score} {self.best_score:.4g}"
        return f"SearchResult({len(self)} trials, {self.n_failed} failed, {shown})"

    @property
    def best(self) -> dict | None:
        """The best trial's record, or None when every trial failed."""
        if self.trials and self.trials[0]["status"] == OK:
            return self.trials[0]
        return None

    @property
    def best_params(self) -> dict | None:
        """The best trial's parameters, or None when every trial failed."""
        return None if self.best is None else dict(self.best["params"])

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best["metrics"][self.score]

    @property
    def n_failed(self) -> int:
        return sum(t["status"] != OK for t in self.trials)

    def param_names(self) -> list[str]:
        """Parameter names: the space's order, then any others found in the trials."""
        names = list(self.space)
        for trial in self.trials:
            names += [k for k in trial["params"] if k not in names]
        return names

    def metric_names(self) -> list[str]:
        """Metric names, the score first, then in order of first appearance."""
        names = [self.score]
        for trial in self.trials:
            names += [k for k in trial["metrics"] if k not in names]
        return names

    def narrowed_space(self, top: int = 5) -> dict:
        """The search space shrunk to where the ``top`` best trials lie (the book's step 4).

        The book repeats random search, each round within the range where the
        previous round did best. Each :class:`LogUniform`, :class:`Uniform` or
        :class:`IntUniform` here becomes the same kind of distribution spanning
        the values of the ``top`` best successful trials (never beyond the old
        bounds); a :class:`Choice` keeps only the options those trials used;
        fixed values stay. A span that collapses to one value is widened by a
        tenth of a decade (log scale) or of the old range on each side.
        Returns a new dict; raises ValueError if no trial succeeded.
        """
        top = int(top)
        if top < 1:
            raise ValueError(f"top must be a positive integer, got {top}")
        best = [t for t in self.trials if t["status"] == OK][:top]
        if not best:
            raise ValueError("no trial succeeded, so there is no better region to narrow to")
        narrowed = {}
        for name, dist in self.space.items():
            values = [t["params"][name] for t in best]
            narrowed[name] = _narrow(dist, values)
        return narrowed

    # -- saving ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready: score, maximize, space, counts, best and the ranked trials.

        Non-finite numbers become None (JSON has no NaN).
        """
        return _json_safe(
            {
                "score": self.score,
                "maximize": self.maximize,
                "space": {name: _describe(v) for name, v in self.space.items()},
                "n_trials": len(self.trials),
                "n_failed": self.n_failed,
                "best": self.best,
                "trials": self.trials,
            }
        )

    def to_json(self, path, extra: Mapping | None = None):
        """Write :meth:`to_dict` (with ``extra``'s keys first) as JSON, atomically."""
        import json

        data = _json_safe(dict(extra or {}))
        data.update(self.to_dict())
        text = json.dumps(data, indent=2, default=json_default, allow_nan=False)
        return write_text(path, text + "\n")

    def to_csv(self, path):
        """Write one row per trial, best first, atomically.

        Columns: ``rank``, ``trial`` (the index), ``status``, the parameters,
        the metrics (a metric named like a parameter gets a ``metric_`` prefix),
        ``seconds`` and ``error``. Missing values are empty cells.
        """
        params, metrics = self.param_names(), self.metric_names()
        metric_cols = [f"metric_{m}" if m in params else m for m in metrics]
        header = ["rank", "trial", "status", *params, *metric_cols, "seconds", "error"]
        rows = []
        for t in self.trials:
            row = [t["rank"], t["index"], t["status"]]
            row += [_cell(t["params"].get(p)) for p in params]
            row += [_cell(t["metrics"].get(m)) for m in metrics]
            row += [f"{t['seconds']:.3f}", t["error"] or ""]
            rows.append(row)
        return write_csv(path, header, rows)


def _narrow(dist, values):
    """``dist`` shrunk to span ``values`` (see :meth:`SearchResult.narrowed_space`)."""
    if isinstance(dist, Choice):
        return Choice(tuple(o for o in dist.options if _plain(o) in values))
    if isinstance(dist, LogUniform):
        low, high = math.log10(min(values)), math.log10(max(values))
        pad = 0.1 if high - low < 1e-9 else 0.0
        return LogUniform(max(10 ** (low - pad), dist.low), min(10 ** (high + pad), dist.high))
    if isinstance(dist, Uniform):
        low, high = min(values), max(values)
        pad = 0.1 * (dist.high - dist.low) if high - low < 1e-12 else 0.0
        return Uniform(max(low - pad, dist.low), min(high + pad, dist.high))
    if isinstance(dist, IntUniform):
        return IntUniform(min(values), max(values))
    return dist  # a fixed value


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def _json_safe(obj):
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
