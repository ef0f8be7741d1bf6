"""What every experiment shares: the registry, the run context, the manifest, the training loop.

An experiment is a function ``run(ctx)`` registered with :func:`experiment`.
It reads its sizes from ``ctx`` (``ctx.pick(quick_value, full_value)``),
draws randomness from ``ctx.rng(key)``, and reports through ``ctx``:

* ``ctx.save_figure(fig, stem)`` writes ``stem.png`` and ``stem.svg``;
* ``ctx.write_csv(stem, header, rows)`` writes the raw series;
* ``ctx.summary[name] = number`` records the headline numbers;
* ``ctx.reference(quantity, ours, book, tol=..., claim=..., holds=...)`` puts our number
  beside the book's with a computed verdict: reproduced exactly, within a stated
  tolerance, lesson only (the qualitative claim holds), or not reproduced;
* ``ctx.claim(sentence, holds)`` states a claim and whether this run's numbers bear it
  out; ``ctx.finding(sentence)`` states a plain measurement.

:func:`run_experiment` creates ``OUT/NAME/``, runs the function, and writes
``result.json`` (config, seed, versions, dataset checksum, summary, wall time).
"""

from __future__ import annotations

import datetime
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlscratch import fileio
from dlscratch.provenance import versions

#: Experiments by name, filled by the :func:`experiment` decorator.
REGISTRY: dict = {}

#: Default output folder of ``dlscratch experiment`` (relative to the working directory).
DEFAULT_OUT = Path("experiment-results")

MANIFEST = "result.json"


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, words for people, and the function that runs it."""

    name: str
    title: str
    summary: str  # one line for ``--list``
    shows: str  # one sentence for the report: what the figure shows
    func: Callable
    section: str = ""  # the book's section, e.g. "6.1"
    needs_mnist: bool = False
    needs_weights: bool = False


def experiment(
    name: str,
    *,
    title: str,
    summary: str,
    shows: str,
    section: str = "",
    needs_mnist: bool = False,
    needs_weights: bool = False,
):
    """Register ``func(ctx)`` as experiment ``name`` (decorator)."""

    def register(func):
        if name in REGISTRY:
            raise RuntimeError(f"experiment {name!r} registered twice")
        REGISTRY[name] = Experiment(
            name, title, summary, shows, func, section, needs_mnist, needs_weights
        )
        return func

    return register


# -- data and weights ------------------------------------------------------------------------------
_MNIST_CACHE: dict = {}


def load_mnist_cached(data_dir=None):
    """``load_mnist(normalize=True)`` once per process and folder: ((x, t), (x_test, t_test)).

    Images float32 (N, 784) in [0, 1], labels uint8 (N,). The arrays are shared
    between experiments: treat them as read-only.
    """
    from dlscratch.data import load_mnist

    key = str(data_dir)
    if key not in _MNIST_CACHE:
        _MNIST_CACHE[key] = load_mnist(normalize=True, flatten=True, data_dir=data_dir)
    return _MNIST_CACHE[key]


def default_data_dir():
    """None: the loader finds MNIST itself (``DLSCRATCH_DATA``, then the user cache)."""
    return None


# -- the run context -------------------------------------------------------------------------------
def _key(k) -> int:
    if isinstance(k, (int, np.integer)) and k >= 0:
        return int(k)
    return zlib.crc32(str(k).encode("utf-8"))


#: The verdicts a reference row can carry, strongest first.
EXACT = "reproduced exactly"
WITHIN = "within tolerance"
LESSON = "lesson only"
NOT_REPRODUCED = "not reproduced"
VERDICTS = (EXACT, WITHIN, LESSON, NOT_REPRODUCED)

#: What ``result.json`` and the report say about a quick-mode run.
QUICK_BANNER = (
    "Quick mode: tiny sizes chosen to finish in seconds, not the book's setup. These numbers "
    "are not comparable to the book's; verdicts below judge this small run only. Run without "
    "--quick for the book's sizes."
)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(v):
    """``v`` as a flat list of numbers, or None when it holds anything else."""
    if _is_number(v):
        return [v]
    if isinstance(v, (list, tuple)) and v and all(_is_number(x) for x in v):
        return list(v)
    return None


def printed_half_unit(book: float) -> float:
    """Half a unit in the last significant digit of ``book`` as printed (shortest ``repr``).

    0.9352 -> 5e-5; -2.58983747e13 -> 5e3; 0.0 and integers -> 0 (must be equal).
    """
    if isinstance(book, int) or float(book) == 0.0 or not math.isfinite(float(book)):
        return 0.0
    mantissa = repr(abs(float(book))).lower().partition("e")[0]
    digits = mantissa.replace(".", "").lstrip("0").rstrip("0") or "0"
    exponent = math.floor(math.log10(abs(float(book))))
    return 0.5 * 10.0 ** (exponent - len(digits) + 1)


def matches_printed(ours, book) -> bool:
    """True when ``ours`` rounds to ``book`` at the precision the book prints it with.

    Integers must be equal; a float matches when it differs from the printed value by
    at most half a unit in its last printed digit (0.9352 matches 0.93518 ... 0.93525).
    Lists match element by element.
    """
    a, b = _numbers(ours), _numbers(book)
    if a is None or b is None or len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if not math.isfinite(float(x)):
            return False
        if abs(float(x) - float(y)) > printed_half_unit(y) * (1 + 1e-9):
            return False
    return True


def judge(ours, book, *, tol=None, rtol=None, lesson=None) -> str:
    """The verdict for one reference row (one of :data:`VERDICTS`).

    * :data:`EXACT` when the book has a number and ours matches it as printed;
    * :data:`WITHIN` when it lies within ``tol`` (absolute) or ``rtol`` (relative) of it;
    * :data:`LESSON` when not, but the qualitative claim (``lesson``: a bool computed from
      the run) holds;
    * :data:`NOT_REPRODUCED` otherwise.
    """
    a, b = _numbers(ours), _numbers(book)
    if a is not None and b is not None and len(a) == len(b):
        if matches_printed(a, b):
            return EXACT
        diffs = [abs(float(x) - float(y)) for x, y in zip(a, b)]
        if all(math.isfinite(d) for d in diffs):
            if tol is not None and all(d <= tol for d in diffs):
                return WITHIN
            if rtol is not None and all(d <= rtol * abs(float(y)) for d, y in zip(diffs, b)):
                return WITHIN
    if lesson is not None and bool(lesson):
        return LESSON
    return NOT_REPRODUCED


@dataclass
class Reference:
    """One row of the comparison table: our number, the book's, and the verdict.

    ``book`` is a number the book prints (None when it prints none); ``expected`` is
    our own expectation in words, labelled as ours; ``claim`` is the qualitative
    statement judged (the book's lesson); ``verdict`` is computed by :func:`judge`.
    """

    quantity: str
    ours: object
    book: object = None
    expected: str = ""
    claim: str = ""
    verdict: str | None = None
    tolerance: str = ""
    note: str = ""
    digits: int | None = None  # significant digits to show (None: 4)

    def to_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "ours": self.ours,
            "book": self.book,
            "expected": self.expected,
            "claim": self.claim,
            "verdict": self.verdict,
            "tolerance": self.tolerance,
            "note": self.note,
            "digits": self.digits,
        }


class Context:
    """Everything an experiment needs to know and report. Created by :func:`run_experiment`.

    Attributes
    ----------
    spec : Experiment
    out_dir : Path
        ``OUT/NAME``; files written here.
    quick : bool
        Tiny sizes for tests (seconds).
    seed : int
    config : dict
        The settings used (sizes, learning rates...), recorded in ``result.json``.
    summary : dict
        Headline numbers, recorded in ``result.json``.
    """

    def __init__(
        self, spec, out_dir, *, quick=False, seed=0, data_dir=None, weights=None, echo=print
    ):
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.quick = bool(quick)
        self.seed = int(seed)
        self.data_dir = data_dir
        self.weights = weights
        self.echo = echo
        self.config: dict = {}
        self.summary: dict = {}
        self.references: list = []
        self.findings: list = []
        self.figures: list = []
        self.series: list = []
        self.dataset: dict | None = None

    # sizes and randomness
    def pick(self, quick, full):
        """``quick`` in quick mode, ``full`` otherwise."""
        return quick if self.quick else full

    def rng(self, *keys) -> np.random.Generator:
        """A generator determined by the run's seed and ``keys`` (strings or ints).

        Runs that share keys share their random numbers: e.g. two networks built
        with ``ctx.rng("init")`` start from identical weights.
        """
        return np.random.default_rng([self.seed, *(_key(k) for k in keys)])

    # data
    def mnist(self):
        """MNIST as ``((x_train, t_train), (x_test, t_test))``; records its checksum."""
        data_dir = self.data_dir if self.data_dir is not None else default_data_dir()
        data = load_mnist_cached(data_dir)
        if self.dataset is None:
            from dlscratch.data import dataset_checksum

            try:
                checksum = dataset_checksum("mnist", data_dir)
            except (OSError, ValueError):  # pragma: no cover - files vanished meanwhile
                checksum = None
            self.dataset = {"name": "mnist", "checksum": checksum}
        return data

    # output
    def path(self, name) -> Path:
        return self.out_dir / name

    def save_figure(self, fig, stem: str) -> Path:
        """Write ``fig`` as ``stem.png`` and ``stem.svg`` and close it. Returns the PNG path."""
        import matplotlib.pyplot as plt

        png = fileio.save_figure(fig, self.path(f"{stem}.png"), dpi=100)
        fileio.save_figure(fig, self.path(f"{stem}.svg"), metadata={"Date": None})
        plt.close(fig)
        self.figures.append(f"{stem}.png")
        return png

    def write_csv(self, stem: str, header, rows) -> Path:
        """Write the raw series ``rows`` under ``header`` to ``stem.csv``."""
        rows = [[_plain(v) for v in row] for row in rows]
        path = fileio.write_csv(self.path(f"{stem}.csv"), header, rows)
        self.series.append(f"{stem}.csv")
        return path

    def reference(
        self,
        quantity: str,
        ours,
        book=None,
        *,
        expected: str = "",
        tol: float | None = None,
        rtol: float | None = None,
        claim: str = "",
        holds: bool | None = None,
        note: str = "",
        digits: int | None = None,
    ) -> str:
        """Record our value of ``quantity`` beside the book's, with a computed verdict.

        book : the number (or list) the book prints, or None when it prints none.
        expected : what *we* expect, in words (shown as ours, never as the book's).
        tol, rtol : the stated tolerance (absolute, relative) for "within tolerance".
        claim, holds : the qualitative lesson and whether this run's numbers bear it out
            (computed by the caller); it decides between "lesson only" and "not reproduced".
        Returns the verdict (one of :data:`VERDICTS`).
        """
        ours, book = _plain(ours), _plain(book)
        holds = None if holds is None else bool(holds)
        verdict = judge(ours, book, tol=tol, rtol=rtol, lesson=holds)
        tolerance = ""
        if tol is not None:
            tolerance = f"±{tol:g}"
        elif rtol is not None:
            tolerance = f"±{rtol:.0%}"
        if holds is None and verdict == NOT_REPRODUCED and book is None:
            verdict = None  # neither a number nor a claim: nothing to judge
        self.references.append(
            Reference(quantity, ours, book, expected, claim, verdict, tolerance, note, digits)
        )
        return verdict

    def compare(self, quantity: str, ours, book, note: str = "", digits: int | None = None):
        """Older form of :meth:`reference`: ``book`` a number, or words taken as our expectation.

        Words get no verdict ("not judged"); prefer :meth:`reference` with ``claim``/``holds``.
        """
        if isinstance(book, str):
            return self.reference(quantity, ours, expected=book, note=note, digits=digits)
        return self.reference(quantity, ours, book, note=note, digits=digits)

    def finding(self, sentence: str) -> None:
        """Record a sentence stating a measurement (no claim to judge)."""
        self.findings.append({"text": sentence, "holds": None})

    def claim(self, sentence: str, holds: bool, measured: str = "") -> bool:
        """Record a claim and whether this run's numbers bear it out (computed by the caller).

        ``measured``: the numbers it was judged on, appended in parentheses.
        The report shows it as holding or not holding. Returns ``holds``.
        """
        text = f"{sentence} ({measured})" if measured else sentence
        self.findings.append({"text": text, "holds": bool(holds)})
        return bool(holds)

    def log(self, message: str) -> None:
        """A progress line (long full-size runs)."""
        if self.echo is not None:
            self.echo(f"  [{self.spec.name}] {message}")


def _plain(v):
    """NumPy scalars/arrays to plain Python for JSON and CSV."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


# -- the runner -----------------------------------------------------------------------------------
def get_experiment(name: str) -> Experiment:
    if name not in REGISTRY:
        raise ValueError(
            f"unknown experiment {name!r}; choose one of: {', '.join(REGISTRY)} "
            "(see 'dlscratch experiment --list')"
        )
    return REGISTRY[name]


def run_experiment(
    name: str,
    out=DEFAULT_OUT,
    *,
    quick: bool = False,
    seed: int = 0,
    data_dir=None,
    weights=None,
    echo=print,
) -> dict:
    """Run experiment ``name``, writing into ``out/name/``; returns the manifest dict.

    The manifest (also written as ``result.json``) holds: ``experiment``, ``title``,
    ``quick``, ``banner`` (quick mode's warning, else None), ``seed``, ``config``,
    ``summary``, ``references`` (our numbers beside the book's, each with its verdict),
    ``verdicts`` (how many rows got each verdict), ``findings`` (``{"text", "holds"}``),
    ``figures``, ``series``, ``versions``, ``dataset``
    (name and checksum, or None), ``started`` (UTC), ``wall_time_s`` and ``command``.
    ``echo`` (None for silence) receives the printed summary.
    """
    spec = get_experiment(name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out) / name
    ctx = Context(
        spec, out_dir, quick=quick, seed=seed, data_dir=data_dir, weights=weights, echo=echo
    )
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    spec.func(ctx)
    wall = time.perf_counter() - t0
    command = f"dlscratch experiment {name}" + (" --quick" if quick else "") + f" --seed {seed}"
    manifest = {
        "experiment": name,
        "title": spec.title,
        "section": spec.section,
        "shows": spec.shows,
        "quick": ctx.quick,
        "seed": ctx.seed,
        "config": _plain(ctx.config),
        "summary": _plain(ctx.summary),
        "banner": QUICK_BANNER if ctx.quick else None,
        "references": [r.to_dict() for r in ctx.references],
        "verdicts": verdict_counts(ctx.references),
        "findings": list(ctx.findings),
        "figures": list(ctx.figures),
        "series": list(ctx.series),
        "versions": versions("matplotlib"),
        "dataset": ctx.dataset,
        "started": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 3),
        "command": command,
    }
    fileio.write_json(out_dir / MANIFEST, manifest)
    if echo is not None:
        echo(format_summary(manifest, out_dir))
    return manifest


def verdict_counts(references) -> dict:
    """``{verdict: number of rows}`` for every verdict in :data:`VERDICTS` (and "not judged")."""
    counts = dict.fromkeys(VERDICTS, 0)
    counts["not judged"] = 0
    for r in references:
        counts[r.verdict or "not judged"] += 1
    return counts


def finding_text(finding) -> str:
    """A finding as one line: the sentence with "[holds]" / "[does NOT hold]" when judged."""
    if isinstance(finding, str):  # result.json written before findings were judged
        return finding
    mark = {True: "[holds] ", False: "[does NOT hold] ", None: ""}[finding.get("holds")]
    return mark + finding["text"]


def load_manifest(folder) -> dict:
    """Read ``folder/result.json``."""
    import json

    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))


# -- formatting -----------------------------------------------------------------------------------
def fmt(v, digits: int | None = None) -> str:
    """A number or list as a short string for tables (``digits`` significant digits, default 4)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if digits is not None:
            return f"{v:.{digits}g}"
        if abs(v) < 1e-3 or abs(v) >= 1e6:
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return str(v)


def format_summary(manifest: dict, out_dir=None) -> str:
    """The short text printed after a run: our numbers beside the book's."""
    mode = "quick" if manifest["quick"] else "full size"
    lines = [
        f"== {manifest['experiment']}: {manifest['title']} "
        f"({mode}, seed {manifest['seed']}, {manifest['wall_time_s']:.1f} s)"
    ]
    if manifest.get("banner"):
        lines.append(f"  ! {manifest['banner']}")
    refs = manifest["references"]
    if refs:
        rows = [
            (
                r["quantity"],
                fmt(r["ours"], r.get("digits")),
                _book_cell(r),
                verdict_label(r),
            )
            for r in refs
        ]
        w0 = max(len("quantity"), *(len(r[0]) for r in rows))
        w1 = max(len("ours"), *(len(r[1]) for r in rows))
        w2 = max(len("book"), *(len(r[2]) for r in rows))
        lines.append(f"  {'quantity':<{w0}}  {'ours':>{w1}}  {'book':<{w2}}  verdict")
        for q, ours, book, verdict in rows:
            lines.append(f"  {q:<{w0}}  {ours:>{w1}}  {book:<{w2}}  {verdict}")
    for finding in manifest["findings"]:
        lines.append(f"  * {finding_text(finding)}")
    if out_dir is not None:
        files = [*manifest["figures"], *manifest["series"], MANIFEST]
        lines.append(f"  wrote {out_dir}/: {', '.join(files)}")
    return "\n".join(lines)


def verdict_label(r: dict) -> str:
    """The verdict of a reference row in words, with its stated tolerance."""
    verdict = r.get("verdict") or "not judged"
    if r.get("tolerance"):
        met = "" if verdict in (EXACT, WITHIN) else "outside "
        return f"{verdict} ({met}{r['tolerance']})"
    return verdict


def _book_cell(r: dict) -> str:
    """The book column: the book's number, or our expectation marked as ours, or a dash."""
    if r.get("book") is not None:
        return fmt(r["book"], r.get("digits"))
    if r.get("expected"):
        return f"(ours: {r['expected']})"
    return "—"


# -- plotting -------------------------------------------------------------------------------------
def pyplot():
    """matplotlib.pyplot on the Agg backend (imported only when an experiment draws)."""
    from dlscratch.plotting import _pyplot

    return _pyplot()


def smooth_curve(x, window: int = 11, beta: float = 2.0):
    """Smooth a noisy loss curve with a normalised Kaiser window (as the book's plots do).

    x: (N,) -> (N,). The ends are padded by reflection so the length is kept.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < window:
        return x.copy()
    half = window // 2
    padded = np.concatenate([x[half:0:-1], x, x[-2 : -half - 2 : -1]])
    w = np.kaiser(window, beta)
    return np.convolve(padded, w / w.sum(), mode="valid")


def plot_loss_curves(ctx, losses: dict, *, markers: dict, ylim, title: str, stem: str) -> None:
    """The book's loss-per-iteration figure: one smoothed, marked curve per entry of ``losses``.

    losses : ``{label: (iterations,) losses}``; markers : ``{label: matplotlib marker}``.
    Writes ``stem``.png/.svg through ``ctx``.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in losses.items():
        it = np.arange(1, len(curve) + 1)
        ax.plot(
            it,
            smooth_curve(curve),
            marker=markers[name],
            markevery=max(len(curve) // 20, 1),
            ms=4,
            label=name,
        )
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss (smoothed)")
    ax.set_ylim(*ylim)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    ctx.save_figure(fig, stem)


# -- the training loop ----------------------------------------------------------------------------
@dataclass
class TrainLog:
    """What :func:`train_iterations` recorded.

    losses : (iterations,) mini-batch loss after each update (empty if not recorded).
    eval_iterations : updates done at each evaluation (0 = before training).
    accuracy : ``{set name: [accuracy at each evaluation]}``.
    diverged : a parameter became NaN or infinite.
    """

    losses: list = field(default_factory=list)
    eval_iterations: list = field(default_factory=list)
    accuracy: dict = field(default_factory=dict)
    diverged: bool = False
    seconds: float = 0.0

    def final(self, name: str) -> float:
        return self.accuracy[name][-1]

    @property
    def epochs(self) -> list:
        return list(range(len(self.eval_iterations)))


def iterations_per_epoch(n_train: int, batch_size: int) -> int:
    """``max(n_train // batch_size, 1)``: the book's updates per epoch."""
    return max(int(n_train) // int(batch_size), 1)


def train_iterations(
    net,
    optimizer,
    x,
    t,
    *,
    iterations: int,
    batch_size: int,
    rng,
    eval_every: int | None = None,
    eval_sets: dict | None = None,
    record_loss: bool = True,
) -> TrainLog:
    """The book's own explicit training loop: ``iterations`` updates on random mini-batches.

    This is the one training loop besides :class:`~dlscratch.training.Trainer`, kept
    because the figures of chapters 4-6 are defined by it: the loss is recorded *after*
    each update, accuracy is measured before the first update, and networks are allowed
    to explode (the batch-norm and weight-init figures provoke it). Batches come from
    the same sampler as the Trainer's (:class:`~dlscratch.data.BatchSampler` in
    ``'random'`` mode: ``batch_size`` samples drawn *with replacement*, as the book's
    ``np.random.choice``). Each update computes the gradient by
    backpropagation and lets ``optimizer`` update ``net.params``. With
    ``record_loss`` the loss of that mini-batch is recorded after the update,
    as in the book's ``train_neuralnet.py``.

    Accuracy on each of ``eval_sets`` (``{name: (x, t)}``) is measured before
    training, after every ``eval_every`` updates (one epoch) and after the last update.
    """
    from dlscratch.data import BatchSampler

    log = TrainLog(accuracy={name: [] for name in (eval_sets or {})})

    def evaluate(i):
        log.eval_iterations.append(i)
        for name, (xe, te) in (eval_sets or {}).items():
            log.accuracy[name].append(float(net.accuracy(xe, te)))

    t0 = time.perf_counter()
    # An exploding network (as batch norm's experiment provokes on purpose) overflows quietly.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if eval_sets:
            evaluate(0)
        sampler = BatchSampler(len(x), batch_size, mode="random", rng=rng)
        batches = iter(())
        for i in range(1, int(iterations) + 1):
            index = next(batches, None)
            if index is None:  # a new pass of the sampler, continuing the same rng stream
                batches = iter(sampler)
                index = next(batches)
            xb, tb = x[index], t[index]
            grads = net.gradient(xb, tb)
            optimizer.update(net.params, grads)
            if record_loss:
                log.losses.append(float(net.loss(xb, tb)))
            if eval_sets and eval_every and (i % eval_every == 0 or i == iterations):
                evaluate(i)
    log.diverged = not all(bool(np.isfinite(p).all()) for p in net.params.values())
    log.seconds = time.perf_counter() - t0
    return log
