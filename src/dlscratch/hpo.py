"""Hyperparameter search: Optuna chooses the trials, Dask runs them (book, section 6.5 and on).

The book ends chapter 6 by drawing the learning rate and the weight decay at random
on a log scale, training briefly with each pair and keeping the best region of the
*validation* accuracy. Here Optuna does the drawing (``sampler="random"`` is the
book's search, ``"tpe"`` the Bayesian one it points to), prunes trials that fall
behind after an epoch, and keeps the study in a file so that a search can be resumed;
Dask runs the trials, on worker processes of this machine or on a cluster::

    from dlscratch.config import RunConfig
    from dlscratch.hpo import search

    cfg = RunConfig.from_dict({"optimizer": "sgd", "hidden": [100] * 6, "limit": 500,
                               "val_split": 0.2, "epochs": 50})
    result = search(cfg, ["lr=1e-6:1e-2:log", "weight_decay=1e-8:1e-4:log"],
                    n_trials=100, sampler="random", workers=2, storage="runs/s/study.log")
    result.best_config          # a RunConfig with the best trial's values
    result.study                # the optuna.Study (trials, states, user attributes)

A trial is ``cfg.replace(**params)`` trained by :func:`dlscratch.config.build_trainer`,
reporting its validation accuracy after every epoch and scored by the last one; the
test set is never evaluated. A trial whose loss diverges, or whose values make no valid
configuration, is recorded as failed with its reason (user attributes ``state`` and
``reason``) and the search goes on. :func:`search` also runs a function of your own::

    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        return -(x - 2) ** 2

    search(objective=objective, n_trials=30, workers=0)   # 0 workers: in this process

With ``workers=N`` the trials run on an embedded Dask ``LocalCluster`` of N processes
(one BLAS thread each, listening on 127.0.0.1 only); ``scheduler="tcp://HOST:8786"``
sends them to an existing cluster. Each worker process opens the study from its
journal file once and keeps it (and its data and objective) for the next trials, so
the workers must reach that file (a local or shared file system). Dask moves
pickled data between its processes: run a cluster only on a trusted network, or use
Dask's TLS settings. Workers load MNIST themselves, once each. With one worker a seed
always gives the same trials; with more, the same trials may finish in another order,
and the Bayesian sampler sees a different history, so later trials may differ.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlscratch.checks import fail
from dlscratch.config import (
    HARDWARE_FIELDS,
    RunConfig,
    RunData,
    build_trainer,
    load_run_data,
    parse_layer_sizes,
)
from dlscratch.training.callbacks import Callback
from dlscratch.training.errors import NonFiniteLossError

__all__ = [
    "DEFAULT_SPACE",
    "PRUNERS",
    "SAMPLERS",
    "SearchResult",
    "SearchSpace",
    "check_sampler_space",
    "check_scheduler",
    "local_cluster",
    "make_pruner",
    "make_sampler",
    "objective_for",
    "open_study",
    "search",
]

#: The book's space: learning rate 10^[-6, -2] and weight decay 10^[-8, -4], log scales.
DEFAULT_SPACE = ("lr=1e-6:1e-2:log", "weight_decay=1e-8:1e-4:log")
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
#: Fields that define the data or the machine: fixed for a whole search.
FIXED_FIELDS = ("dataset", "limit", "val_split", "activation_options", "optimizer_options",
                *HARDWARE_FIELDS)
#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT_S = 10.0
#: Largest search-space file read (bytes).
SPACE_FILE_MAX_BYTES = 64 * 1024


# -- the search space ------------------------------------------------------------------------


def _option_for(key: str):
    """The :class:`~dlscratch.registry.Option` behind a search key, or a ValueError."""
    from dlscratch.layers import ACTIVATIONS
    from dlscratch.optim import OPTIMIZERS

    prefixes = {"opt.": OPTIMIZERS, "act.": ACTIVATIONS}
    for prefix, registry in prefixes.items():
        if key.startswith(prefix):
            name = key[len(prefix):]
            for entry in registry:
                option = registry.options(entry).get(name)
                if option is not None:
                    return option
            known = sorted({o for e in registry for o in registry.options(e)})
            fail(f"no {registry.kind} has an option {name!r} (search key {key!r}); "
                 f"options: {', '.join(prefix + o for o in known) or 'none'}")
    if key in RunConfig.FIELDS and key not in FIXED_FIELDS:
        return RunConfig.FIELDS[key]
    keys = [k for k in RunConfig.FIELDS if k not in FIXED_FIELDS]
    why = " (it is fixed for a whole search: set it as an option)" if key in FIXED_FIELDS else ""
    fail(f"cannot search {key!r}{why}; searchable keys: {', '.join(keys)}, and opt.NAME / "
         "act.NAME for an option of the optimizer / activation")


def _parse_bool(key: str, text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    fail(f"{key}: {text!r} is not true or false")


def _parse_choice(key: str, option, text: str):
    """One categorical value as Optuna stores it (hidden sizes as the text ``"50,100"``)."""
    text = text.strip()
    if option.type is bool:
        return _parse_bool(key, text)
    if option.type is list:  # hidden sizes: kept as text, turned into a list per trial
        try:
            sizes = parse_layer_sizes(text)
        except ValueError:
            fail(f"{key}: {text!r} is not a list of layer sizes such as 100,100")
        RunConfig().replace(**{key: sizes})
        return ",".join(map(str, sizes))
    if option.type in (int, float):
        try:
            value = option.type(float(text)) if option.type is int else float(text)
        except ValueError:
            fail(f"{key}: {text!r} is not a number")
        if option.type is int and float(text) != value:
            fail(f"{key}: {text!r} is not a whole number")
        return _check_value(key, option, value)
    return _check_value(key, option, text)


def _check_value(key: str, option, value):
    if key.startswith(("opt.", "act.")):
        return option.validate(value, where=f"{key[:3]} ")
    checked = getattr(RunConfig().replace(**{key: value}), key)
    return value if isinstance(value, str) else checked


@dataclass(frozen=True)
class SearchSpace:
    """Parsed ``KEY=SPEC`` entries: which run-configuration values a search varies.

    ``SPEC`` is a range ``LOW:HIGH`` (``LOW:HIGH:log`` for a log scale) for a number,
    or choices ``A|B|C`` (``hidden=50,100|100,100``, ``batchnorm=true|false``). Keys are
    run-configuration fields, ``opt.NAME`` (an optimizer option) or ``act.NAME`` (an
    activation option); an option a trial's optimizer/activation lacks is not drawn.
    """

    specs: tuple
    distributions: dict = field(compare=False)

    @classmethod
    def parse(cls, specs: Iterable[str] | Mapping[str, str] | None = None) -> SearchSpace:
        if specs is None:
            specs = DEFAULT_SPACE
        if isinstance(specs, SearchSpace):
            return specs
        if isinstance(specs, Mapping):
            specs = [f"{k}={v}" for k, v in specs.items()]
        if isinstance(specs, str):
            specs = [specs]
        import optuna.distributions as od

        dists, canon = {}, []
        for text in specs:
            key, sep, spec = str(text).partition("=")
            key, spec = key.strip(), spec.strip()
            if not sep or not key or not spec:
                fail(f"search space entry {text!r} must be KEY=SPEC, e.g. lr=1e-4:1e-1:log, "
                     "optimizer=sgd|adam or hidden=50|100,100")
            if key in dists:
                fail(f"{key!r} appears twice in the search space; give each key once")
            option = _option_for(key)
            if "|" in spec:
                choices = [_parse_choice(key, option, c) for c in spec.split("|")]
                if len(set(choices)) != len(choices):
                    fail(f"{key}={spec}: a choice appears twice; list each once")
                dists[key] = od.CategoricalDistribution(choices)
            elif ":" in spec:
                dists[key] = _parse_range(key, option, spec)
            else:
                fail(f"{key}={spec} fixes one value: set it as an option (--{key.replace('_', '-')}"
                     f" {spec}), or search a range LOW:HIGH or choices A|B")
            canon.append(f"{key}={spec}")
        if not dists:
            fail("the search space is empty; give at least one KEY=SPEC, e.g. lr=1e-4:1e-1:log")
        return cls(tuple(canon), dists)

    @classmethod
    def from_file(cls, path) -> SearchSpace:
        """One ``KEY=SPEC`` per line; blank lines and ``#`` comments are skipped."""
        path = Path(path)
        with open(path, "rb") as f:
            raw = f.read(SPACE_FILE_MAX_BYTES + 1)
        if len(raw) > SPACE_FILE_MAX_BYTES:
            fail(f"search-space file {path} is larger than {SPACE_FILE_MAX_BYTES} bytes; "
                 "it should hold one KEY=SPEC per line")
        lines = [ln.split("#", 1)[0].strip() for ln in raw.decode("utf-8").splitlines()]
        return cls.parse([ln for ln in lines if ln])

    @property
    def keys(self) -> list[str]:
        return list(self.distributions)

    def suggest(self, trial, base: RunConfig) -> dict:
        """Draw this trial's values; returns ``RunConfig.replace`` keyword arguments.

        Plain fields are drawn first, so that ``opt.NAME`` is drawn only when the
        trial's optimizer has that option (likewise ``act.NAME``).
        """
        from dlscratch.layers import ACTIVATIONS
        from dlscratch.optim import OPTIMIZERS

        params = {}
        keys = sorted(self.distributions, key=lambda k: k.startswith(("opt.", "act.")))
        for key in keys:
            if key.startswith("opt."):
                owner = params.get("optimizer", base.optimizer)
                if key[4:] not in OPTIMIZERS.options(owner):
                    continue
            if key.startswith("act."):
                owner = params.get("activation", base.activation)
                if key[4:] not in ACTIVATIONS.options(owner):
                    continue
            value = _suggest(trial, key, self.distributions[key])
            if key == "hidden":
                value = parse_layer_sizes(value)
            params[key] = value
        return params

    def edges(self, params: Mapping) -> list[str]:
        """Hints for numbers that lie within 5% (of the scale) of a range's edge."""
        hints = []
        for key, dist in self.distributions.items():
            if key not in params or not hasattr(dist, "low"):
                continue
            low, high, value = dist.low, dist.high, params[key]
            scale = math.log10 if dist.log else float
            span = scale(high) - scale(low)
            if span <= 0:
                continue
            where = (scale(value) - scale(low)) / span
            if where <= 0.05 or where >= 0.95:
                side = "lower" if where <= 0.05 else "upper"
                hints.append(f"the best {key} {value:.3g} lies at the {side} edge of "
                             f"{low:g}:{high:g}: widen the range past it")
        return hints


def _suggest(trial, key: str, dist):
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, od.IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(key, dist.low, dist.high, log=dist.log)


def _parse_range(key: str, option, spec: str):
    import optuna.distributions as od

    parts = spec.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        fail(f"{key}={spec}: a range is LOW:HIGH or LOW:HIGH:log, e.g. 1e-4:1e-1:log")
    if option.type not in (int, float):
        fail(f"{key} is not a number: search it over choices such as A|B")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        fail(f"{key}={spec}: LOW and HIGH must be numbers, e.g. 1e-4:1e-1:log")
    if not low < high:
        what = "empty" if low == high else "inverted"
        fail(f"{key}={spec}: the range is {what}; LOW must be smaller than HIGH, "
             f"e.g. {key}={min(low, high):g}:{max(low, high) if low != high else high * 10:g}")
    if log and low <= 0:
        fail(f"{key}={spec}: a log-scale range needs LOW > 0, e.g. {key}=1e-6:{high:g}:log")
    if option.type is int:
        if not (low.is_integer() and high.is_integer()):
            fail(f"{key}={spec}: {key} is a whole number; give whole bounds")
        low, high = int(low), int(high)
    _check_value(key, option, low)
    _check_value(key, option, high)
    if option.type is int:
        return od.IntDistribution(low, high, log=log)
    return od.FloatDistribution(low, high, log=log)


# -- samplers, pruners, storage -------------------------------------------------------------


def _trial_seed(seed: int | None, slot: int) -> int | None:
    """The sampler seed of the ``slot``-th trial (each trial gets its own stream)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), int(slot)]).generate_state(1)[0])


def make_sampler(name: str, seed: int | None = None):
    """An Optuna sampler by name: ``tpe`` (Bayesian), ``random`` (the book's), ``cmaes``."""
    import optuna

    name = str(name).lower()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            fail("the cmaes sampler needs the cmaes package: pip install cmaes "
                 "(or use --sampler tpe or random)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    fail(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")


def check_sampler_space(sampler: str, space: SearchSpace) -> None:
    """Refuse a sampler that cannot search ``space`` (CMA-ES draws numbers only)."""
    import optuna.distributions as od

    if str(sampler).lower() == "cmaes":
        choices = [k for k, d in space.distributions.items()
                   if isinstance(d, od.CategoricalDistribution)]
        if choices:
            fail(f"the cmaes sampler searches numeric ranges only, and {', '.join(choices)} "
                 "is a list of choices; use --sampler tpe or random, or search ranges LOW:HIGH")


def make_pruner(name: str, epochs: int | None = None):
    """An Optuna pruner by name: ``median``, ``hyperband`` or ``none``."""
    import optuna

    name = str(name).lower()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    fail(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")


def _journal_file(path: str):
    """Optuna's journal file backend, synced to disk (fsync) only when a trial finishes.

    Optuna syncs every line it writes, and a trial writes one per epoch (its validation
    accuracy, for the pruner): on short trials those syncs cost more than the training.
    A line written without a sync is already in the operating system's cache, so it
    survives a killed or interrupted process; a power loss could lose only lines of
    trials that had not finished, since the sync at a trial's end writes all before it.
    """
    from optuna.storages.journal import JournalFileBackend

    class JournalFile(JournalFileBackend):
        def append_logs(self, logs: list) -> None:
            with _ctrl_c_deferred():
                if any(log.get("op_code") in _SYNCED_OPS for log in logs):
                    return super().append_logs(logs)
                text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
                self._lock.acquire()
                try:
                    with open(self._file_path, "ab") as f:
                        f.write(text.encode("utf-8"))
                finally:
                    self._lock.release()

    return JournalFile(path)


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold back Ctrl-C (SIGINT) until the block is done: a write to the study completes.

    Optuna's lock file, interrupted half-way, would be left behind or fail with an
    unrelated error; the interrupt is raised right after the write instead. (Only the
    main thread receives Python's signals; elsewhere this does nothing.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


#: Journal operations synced to disk: creating a study, and a trial's final state.
_SYNCED_OPS = (0, 6)  # optuna's JournalOperation CREATE_STUDY and SET_TRIAL_STATE_VALUES


def open_study(storage, study_name: str, *, sampler=None, pruner=None, create: bool = True):
    """The study in the journal file ``storage`` (created when ``create``), or in memory."""
    import optuna

    if storage is None:
        store = optuna.storages.InMemoryStorage()
    else:
        from optuna.storages.journal import JournalStorage

        store = JournalStorage(_journal_file(str(storage)))
    if create:
        return optuna.create_study(storage=store, study_name=study_name, sampler=sampler,
                                   pruner=pruner, direction="maximize", load_if_exists=True)
    try:
        return optuna.load_study(storage=store, study_name=study_name, sampler=sampler,
                                 pruner=pruner)
    except KeyError:
        fail(f"{storage} holds no study named {study_name!r}")


def _fail_running(study, slots, reason: str, kind: str = "lost") -> int:
    """Mark RUNNING trials of ``slots`` as failed (``kind``, ``reason``); returns how many."""
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("slot") in slots:
            study._storage.set_trial_user_attr(t._trial_id, "state", kind)
            study._storage.set_trial_user_attr(t._trial_id, "reason", reason)
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            n += 1
    return n


# -- one trial ---------------------------------------------------------------------------------


class _Report(Callback):
    """Reports the validation accuracy to Optuna after each epoch; raises TrialPruned."""

    def __init__(self, trial):
        self.trial = trial
        self.epochs = 0

    def on_epoch_end(self, trainer, epoch, logs):
        import optuna

        self.epochs = epoch
        self.trial.report(float(logs["val_acc"]), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")


def objective_for(config: RunConfig, space, data: RunData) -> Callable:
    """``objective(trial) -> val_acc``: one trial of ``space`` around ``config`` on ``data``.

    Raises ``optuna.TrialPruned`` when the pruner stops it, NonFiniteLossError when it
    diverges, ValueError when the drawn values make no valid configuration.
    """
    space = SearchSpace.parse(space)
    if not data.has_validation:
        fail("a search is scored on the validation split: set val_split > 0")

    def objective(trial) -> float:
        params = space.suggest(trial, config)
        cfg = config.replace(**params)
        report = _Report(trial)
        trainer = build_trainer(cfg, data, callbacks=[report])
        try:
            history = trainer.fit()
        finally:  # one write per trial, not one per epoch
            trial.set_user_attr("epochs", report.epochs)
        return float(history.val_acc[-1])

    return objective


#: This process's data (one data set at a time), how often it was loaded, its BLAS limit,
#: its open studies and objectives (a Dask worker keeps them from one trial to the next).
_DATA: dict = {}
LOADS = {"count": 0}
_THREADS: dict = {}
_STUDIES: dict = {}
_OBJECTIVES: dict = {}
#: Studies and objectives kept per process, at most.
_KEEP = 4


def _cached(cache: dict, key, make):
    if key not in cache:
        if len(cache) >= _KEEP:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]


def _worker_study(job: dict):
    """The study of ``job``, opened once per process (journal read incrementally after)."""
    path = job["storage"]
    st = os.stat(path)  # a new file at the same path (a new search) is a new study
    key = (path, st.st_dev, st.st_ino, job["study_name"], job["pruner"], job.get("epochs"))
    return _cached(_STUDIES, key, lambda: open_study(
        path, job["study_name"], pruner=make_pruner(job["pruner"], job.get("epochs")),
        create=False))


def _worker_objective(job: dict, data):
    """The objective of ``job`` on ``data``, built once per process (and data set)."""
    config = RunConfig.from_dict(job["config"])
    if data is None:
        data = _worker_data(config, job.get("data_dir"))
    key = (json.dumps(job["config"], sort_keys=True), tuple(job["space"]), id(data))
    return _cached(_OBJECTIVES, key, lambda: objective_for(config, job["space"], data))


def _worker_data(config: RunConfig, data_dir) -> RunData:
    """The run's data, loaded once per process (per data set, limit, split and seed)."""
    key = (config.dataset, config.limit, config.val_split, config.seed, str(data_dir))
    if key not in _DATA:
        _DATA.clear()  # one data set at a time: bounded memory on a long-lived worker
        _DATA[key] = load_run_data(config, data_dir)
        LOADS["count"] += 1
    return _DATA[key]


def _limit_threads(n: int) -> None:
    if _THREADS.get("n") != n:
        from dlscratch.backend import set_num_threads

        _THREADS.update(n=n, limiter=set_num_threads(n))


def _run_slot(job: dict, slot: int, data=None, *, study=None) -> dict:
    """Ask, run and tell one trial of the study in ``job`` (a Dask task, or in-process)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if job.get("threads"):
        _limit_threads(job["threads"])
    if study is None:
        study = _worker_study(job)
    study.sampler = make_sampler(job["sampler"], _trial_seed(job["seed"], slot))
    # A retried task (its worker died): the trial the dead worker left running failed.
    _fail_running(study, {slot}, "its worker stopped in the middle of the trial")
    if job.get("objective") is not None:
        objective, catch = job["objective"], tuple(job.get("catch") or ())
    else:
        objective = _worker_objective(job, data)
        catch = (NonFiniteLossError, ValueError)
    with _ctrl_c_deferred():  # a trial is never left without its slot
        trial = study.ask()
        trial.set_user_attr("slot", slot)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    state, value = optuna.trial.TrialState.COMPLETE, None
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        state = optuna.trial.TrialState.PRUNED
    except catch as exc:
        kind = "diverged" if isinstance(exc, NonFiniteLossError) else "failed"
        trial.set_user_attr("state", kind)
        trial.set_user_attr("reason", str(exc).splitlines()[0][:500])
        state = optuna.trial.TrialState.FAIL
    except BaseException as exc:  # a bug, or Ctrl-C: record the trial as failed, then stop
        trial.set_user_attr("state", "interrupted" if isinstance(exc, KeyboardInterrupt)
                            else "failed")
        trial.set_user_attr("reason", f"{type(exc).__name__}: {exc}"[:500])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    if state == optuna.trial.TrialState.COMPLETE:
        if value is None or not math.isfinite(value):
            trial.set_user_attr("state", "failed")
            trial.set_user_attr("reason", f"the objective returned {value!r}, not a number")
            state = optuna.trial.TrialState.FAIL
            value = None
        study.tell(trial, value, state=state) if value is not None else study.tell(
            trial, state=state)
    else:
        study.tell(trial, state=state)
    return {"number": trial.number, "slot": slot, "state": state.name, "value": value}


# -- the search -----------------------------------------------------------------------------


@dataclass
class SearchResult:
    """What :func:`search` returns: the study, and the run configuration it searched around."""

    study: object
    config: RunConfig | None = None
    space: SearchSpace | None = None
    interrupted: bool = False
    #: Trials this call added (numbers), in the order they finished.
    added: list = field(default_factory=list)

    @property
    def best_trial(self):
        """The best completed trial, or None when none completed."""
        import optuna

        done = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return max(done, key=lambda t: (t.value, -t.number)) if done else None

    @property
    def best_config(self) -> RunConfig | None:
        """The run configuration of the best trial (None without a config or a completed trial)."""
        best = self.best_trial
        if best is None or self.config is None:
            return None
        params = dict(best.params)
        if "hidden" in params:
            params["hidden"] = parse_layer_sizes(params["hidden"])
        return self.config.replace(**params)

    def ranked(self) -> list:
        """Every finished trial, best first: completed by value, then pruned, then failed."""
        import optuna

        order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2}
        trials = [t for t in self.study.get_trials(deepcopy=False)
                  if t.state != optuna.trial.TrialState.RUNNING]
        return sorted(trials, key=lambda t: (order.get(t.state.name, 3),
                                             -(t.value if t.value is not None else -1),
                                             t.number))


def _workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        fail("workers must be a whole number >= 0 (0: in this process, no Dask)", workers)
    return workers


def _connect(scheduler, n_workers: int, threads: int):
    """A Dask client: of an existing cluster at ``scheduler``, or of a new LocalCluster."""
    from distributed import Client

    if scheduler is not None:
        try:
            return Client(str(scheduler), timeout=CONNECT_TIMEOUT_S), None
        except (OSError, TimeoutError) as exc:
            fail(f"cannot reach the Dask scheduler at {scheduler} within "
                 f"{CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}); start one with "
                 "`dask scheduler` and `dask worker ADDRESS`, or leave out --scheduler")
    cluster = local_cluster(n_workers, threads)
    return Client(cluster), cluster


def local_cluster(n_workers: int, threads: int = 1):
    """A Dask ``LocalCluster`` for trials: ``n_workers`` processes on 127.0.0.1 only.

    Each worker runs one trial at a time with ``threads`` BLAS threads. Dask's default
    worker environment also sets ``MALLOC_TRIM_THRESHOLD_``, which makes the C library
    map and unmap every large array afresh: a third more CPU time per trial of the
    book's network. The workers here keep the library's default.
    """
    import dask
    from distributed import LocalCluster

    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None)


def check_scheduler(address: str) -> int:
    """The number of workers of the Dask cluster at ``address``; a ValueError if unreachable."""
    client, _ = _connect(address, 0, 1)
    try:
        return len(client.scheduler_info().get("workers", {}))
    finally:
        client.close()


def search(
    config: RunConfig | None = None,
    space=None,
    *,
    objective: Callable | None = None,
    n_trials: int = 20,
    sampler: str = "tpe",
    pruner: str = "median",
    workers: int | None = None,
    scheduler: str | None = None,
    storage=None,
    study_name: str = "dlscratch",
    seed: int | None = 0,
    data: RunData | None = None,
    data_dir=None,
    callbacks: Sequence[Callable] = (),
    catch: tuple = (),
) -> SearchResult:
    """Run ``n_trials`` more trials of a study; returns a :class:`SearchResult`.

    Parameters
    ----------
    config : RunConfig
        The run every trial starts from (``cfg.replace(**params)``). Or pass
        ``objective`` instead: ``objective(trial) -> float`` (maximised).
    space : list of "KEY=SPEC", dict, or SearchSpace
        Default :data:`DEFAULT_SPACE`, the book's learning rate and weight decay.
    sampler, pruner : str
        :data:`SAMPLERS` and :data:`PRUNERS`.
    workers : int
        Dask worker processes (default: the number of cores); 0 runs in this process.
        With ``scheduler`` it is the number of trials in flight (default: the cluster's
        workers).
    scheduler : str
        Address of an existing Dask scheduler (``tcp://HOST:8786``).
    storage : path
        Optuna journal file holding the study (None: a temporary one, and the study
        is returned in memory). An existing study of the same name is continued.
    seed : int
        Seeds the sampler (trial k draws from its own stream, so a resumed study
        gets new trials); the training seed is ``config.seed``.
    data : RunData
        Your own arrays (sent to each Dask worker once); default: loaded from
        ``config`` by every worker (from ``data_dir`` or ``$DLSCRATCH_DATA``).
    callbacks : callables ``cb(study, frozen_trial)``
        Called here after each finished trial (e.g. a progress bar).
    catch : exception types
        For ``objective``: exceptions that fail a trial instead of the search.
    """
    import optuna

    if (config is None) == (objective is None):
        fail("pass a RunConfig (config=...) or a function (objective=...), not both or neither")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        fail("n_trials must be a whole number >= 1", n_trials)
    n_workers = _workers(workers)
    make_sampler(sampler)  # refuse unknown names before anything starts
    epochs = config.epochs if config is not None else None
    make_pruner(pruner, epochs)
    job = {"sampler": sampler, "pruner": pruner, "seed": seed, "epochs": epochs,
           "study_name": study_name, "threads": None}
    if config is not None:
        space = SearchSpace.parse(space)
        check_sampler_space(sampler, space)
        if config.val_split <= 0:
            fail("a search is scored on the validation split: set val_split > 0")
        job.update(config=config.to_dict(), space=list(space.specs),
                   data_dir=None if data_dir is None else str(data_dir))
    else:
        job.update(objective=objective, catch=tuple(catch))
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tmp = None
    if storage is None and (n_workers > 0 or scheduler is not None):
        tmp = tempfile.TemporaryDirectory(prefix="dlscratch-search-")
        storage = Path(tmp.name) / "study.log"
    job["storage"] = None if storage is None else str(storage)
    study = open_study(storage, study_name, pruner=make_pruner(pruner, epochs))
    first = len(study.get_trials(deepcopy=False))
    slots = range(first, first + n_trials)
    result = SearchResult(study, config, space if config is not None else None)

    def finished(summary):
        result.added.append(summary["number"])
        frozen = study.get_trials(deepcopy=False)[summary["number"]]
        for cb in callbacks:
            cb(study, frozen)

    try:
        if n_workers == 0 and scheduler is None:
            here = dict(job)
            if config is not None:
                if data is None:
                    data = _worker_data(config, data_dir)
                here.update(objective=objective_for(config, space, data),
                            catch=(NonFiniteLossError, ValueError))
            for slot in slots:
                finished(_run_slot(here, slot, study=study))
        else:
            job["threads"] = (config.threads if config is not None else None) or 1
            _run_on_dask(job, slots, data, scheduler, n_workers, finished, study)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        _fail_running(study, set(slots), "the search stopped before the trial finished",
                      "interrupted" if result.interrupted else "lost")
        seen = set(result.added)  # trials that finished on a worker as the search stopped
        result.added += [t.number for t in study.get_trials(deepcopy=False)
                         if t.user_attrs.get("slot") in slots and t.number not in seen]
        if tmp is not None:
            memory = optuna.create_study(direction="maximize", study_name=study_name)
            for t in study.get_trials():
                memory.add_trial(t)
            result.study = memory
            tmp.cleanup()
    return result


def _run_on_dask(job, slots, data, scheduler, n_workers, finished, study) -> None:
    from distributed import as_completed

    client, cluster = _connect(scheduler, max(n_workers, 1), job["threads"])
    futures = {}
    try:
        if scheduler is not None and not n_workers:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        # Your own arrays go to every worker once; otherwise each worker loads its data.
        data_ref = client.scatter(data, broadcast=True) if data is not None else None
        todo = iter(slots)
        pending = as_completed()
        token = os.urandom(4).hex()

        def submit(slot):
            future = client.submit(_run_slot, job, slot, data_ref, pure=False,
                                   key=f"dlscratch-trial-{job['study_name']}-{slot}-{token}")
            futures[future] = slot
            pending.add(future)

        # One trial more than there are workers: a worker that finishes starts the next
        # at once. A trial asks the sampler when it starts, so the extra one waiting in
        # the queue does not change what the sampler knows.
        for slot in todo:
            submit(slot)
            if len(futures) > n_workers:
                break
        for future in pending:
            slot = futures.pop(future)
            try:
                summary = future.result()
            except Exception as exc:
                if not _is_lost_worker(exc):
                    raise
                _fail_running(study, {slot}, f"its worker stopped ({type(exc).__name__})")
                summary = None
            if summary is not None:
                finished(summary)
            nxt = next(todo, None)
            if nxt is not None:
                submit(nxt)
    finally:
        for future in list(futures):
            future.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


def _is_lost_worker(exc: BaseException) -> bool:
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    return isinstance(exc, (KilledWorker, CommClosedError))


# -- what a search leaves in its folder -------------------------------------------------------


def trials_table(result: SearchResult) -> tuple[list, list]:
    """``(header, rows)`` of the ranked trials: parameters, val acc, epochs run, state."""
    keys = result.space.keys if result.space is not None else sorted(
        {k for t in result.study.get_trials(deepcopy=False) for k in t.params})
    header = ["rank", "trial", "state", "val_acc", "epochs", *keys, "reason"]
    rows = []
    for rank, t in enumerate(result.ranked(), start=1):
        state = t.user_attrs.get("state", t.state.name.lower())
        rows.append([rank, t.number, state, "" if t.value is None else t.value,
                     t.user_attrs.get("epochs", ""), *[t.params.get(k, "") for k in keys],
                     t.user_attrs.get("reason", "")])
    return header, rows


def save_results(result: SearchResult, folder) -> list[Path]:
    """Write ``trials.csv``, ``best.json`` and the figures into ``folder``; returns the paths."""
    import optuna

    from dlscratch.fileio import save_figure, write_csv, write_json

    folder = Path(folder)
    written = [write_csv(folder / "trials.csv", *trials_table(result))]
    best = result.best_config
    if best is not None:
        written.append(write_json(folder / "best.json", best.to_dict()))
    done = result.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return written
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    figures = [("history.png", lambda: ovm.plot_optimization_history(result.study))]
    keys = result.space.keys if result.space is not None else []
    if "lr" in keys and "weight_decay" in keys:
        figures.append(("lr-weight-decay.png", lambda: _lr_wd_figure(plt, done)))
    if len(result.study.best_trial.params) >= 2 and len(done) >= 5:
        figures.append(("importances.png", lambda: ovm.plot_param_importances(result.study)))
    for name, draw in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            art = draw()
        fig = getattr(art, "figure", art)
        if hasattr(art, "flat"):  # an array of axes
            fig = art.flat[0].figure
        fig.tight_layout()
        written.append(save_figure(fig, folder / name, dpi=100))
        plt.close(fig)
    return written


def _lr_wd_figure(plt, trials):
    fig, ax = plt.subplots(figsize=(6, 4.5))
    lr = [t.params["lr"] for t in trials if "lr" in t.params and "weight_decay" in t.params]
    wd = [t.params["weight_decay"] for t in trials if "lr" in t.params
          and "weight_decay" in t.params]
    acc = [t.value for t in trials if "lr" in t.params and "weight_decay" in t.params]
    dots = ax.scatter(lr, wd, c=acc, cmap="viridis", vmin=0, vmax=1, edgecolors="k",
                      linewidths=0.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weight decay")
    ax.set_title("completed trials, coloured by validation accuracy")
    fig.colorbar(dots, label="validation accuracy")
    return fig
