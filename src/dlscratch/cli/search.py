"""``dlscratch search``: random hyperparameter search on a log scale (book, section 6.5).

::

    dlscratch search                                        # 20 trials, 5 epochs, SGD
    dlscratch search --trials 50 --lr 1e-4:1e-1 --weight-decay 0
    dlscratch search --optimizer adam --lr 1e-5:1e-2 --hidden 100,100 --limit 10000

Each trial trains a MultiLayerNet with the Trainer on the training split and is
scored by its validation accuracy after the last epoch; the test set is never
evaluated. The folder gets ``results.csv`` and ``results.json`` (ranked trials,
configuration, seed, versions) and ``search.png``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np

from dlscratch.cli.options import (
    add_dataset_options,
    choose_output_folder,
    claim_output_folder,
    log_range,
    non_negative_int,
    positive_int,
    unit_interval,
)
from dlscratch.cli.train import ACTIVATIONS, layer_sizes
from dlscratch.provenance import versions

FILES = ("results.csv", "results.json", "search.png")


def _lr_range(text: str):
    value = log_range(text)
    if isinstance(value, float) and value <= 0:
        raise argparse.ArgumentTypeError(
            f"a fixed learning rate must be > 0, got {text}; or give a range such as 1e-6:1e-2"
        )
    return value


def _val_fraction(text: str) -> float:
    value = unit_interval(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a number between 0 and 1 (exclusive), got {text}: the search is scored "
            "on the validation split, so it cannot be empty"
        )
    return value


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``search`` subcommand to ``subparsers``."""
    from dlscratch.optim import OPTIMIZERS

    parser = subparsers.add_parser(
        "search",
        help="random search for the learning rate and weight decay, scored on validation data",
        description="Random hyperparameter search, as in the book's section 6.5: each trial "
        "draws the learning rate and the weight decay uniformly on a log scale, trains a "
        "fully connected network on the training split and is ranked by its validation "
        "accuracy. The test set is never evaluated. Writes results.csv, results.json and "
        "search.png into the output folder.",
        epilog="examples:\n"
        "  dlscratch search\n"
        "  dlscratch search --trials 50 --epochs 10 --lr 1e-4:1e-1 --weight-decay 0\n"
        "  dlscratch search --optimizer adam --lr 1e-5:1e-2 --limit 10000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    space = parser.add_argument_group("search space (LOW:HIGH is searched on a log scale)")
    space.add_argument(
        "--lr",
        type=_lr_range,
        default="1e-6:1e-2",
        metavar="LOW:HIGH|VALUE",
        help="learning-rate range, or one fixed value > 0 (default 1e-6:1e-2)",
    )
    space.add_argument(
        "--weight-decay",
        type=log_range,
        default="1e-8:1e-4",
        metavar="LOW:HIGH|VALUE",
        help="L2 weight-decay range, or one fixed value >= 0 (default 1e-8:1e-4)",
    )
    space.add_argument(
        "--trials", type=positive_int, default=20, help="configurations to try (default 20)"
    )

    model = parser.add_argument_group("each trial")
    model.add_argument(
        "--epochs", type=positive_int, default=5, help="epochs per trial (default 5)"
    )
    model.add_argument(
        "--hidden",
        type=layer_sizes,
        default=[100, 100],
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (default 100,100)",
    )
    model.add_argument(
        "--activation",
        type=str.lower,
        choices=ACTIVATIONS,
        default="relu",
        help="hidden activation (default relu)",
    )
    model.add_argument(
        "--optimizer",
        type=str.lower,
        choices=tuple(OPTIMIZERS),
        default="sgd",
        help="update rule (default sgd, as in the book)",
    )
    model.add_argument(
        "--batch-size", type=positive_int, default=100, help="images per update (default 100)"
    )

    data = parser.add_argument_group("data")
    add_dataset_options(data)
    data.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="use only the first N training images (the book uses 500)",
    )
    data.add_argument(
        "--val-split",
        type=_val_fraction,
        default=0.2,
        metavar="FRACTION",
        help="share of the training images held out for scoring, 0 < FRACTION < 1 (default 0.2)",
    )
    data.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed for the split, the sampled values, the weights and the shuffling "
        "(default 0; the same seed gives the same trials)",
    )

    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default runs/<time>-search); must not exist or be empty "
        "unless --overwrite",
    )
    out.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty folder"
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, _parser=parser)
    return parser


# -- pieces ---------------------------------------------------------------------------------------


def _choose_out(args) -> Path:
    return choose_output_folder(args.out, "search", overwrite=args.overwrite)


def _seeds(seed: int) -> dict:
    """Independent streams: the split, the sampled values, and per-trial weights/shuffling."""
    split, search, trials = np.random.SeedSequence(seed).spawn(3)
    return {
        "split": np.random.default_rng(split),
        "search": np.random.default_rng(search),
        "trials": trials,
    }


def _trial_rngs(trials_seq: np.random.SeedSequence, index: int) -> tuple:
    """(init, shuffle) generators of trial ``index``: fixed by the seed and the index only."""
    init, shuffle = np.random.SeedSequence(
        entropy=trials_seq.entropy, spawn_key=(*trials_seq.spawn_key, index)
    ).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(shuffle)


def _load_training_data(args, split_rng) -> dict:
    """The training images only, split into training and validation parts.

    ``load_mnist`` returns the test set too; it is dropped here unread.
    """
    from dlscratch import data as _data

    (x, t), _ = _data.load_mnist(normalize=False, dataset=args.dataset, data_dir=args.data_dir)
    if args.limit is not None:
        x, t = x[: args.limit], t[: args.limit]
    (x_train, t_train), (x_val, t_val) = _data.train_val_split(x, t, args.val_split, rng=split_rng)
    if args.batch_size > len(x_train):
        raise ValueError(
            f"--batch-size {args.batch_size} is larger than the training split "
            f"({len(x_train)} images); choose 1 to {len(x_train)} or a larger --limit"
        )
    try:
        checksum = _data.dataset_checksum(args.dataset, args.data_dir)
    except (OSError, ValueError):  # pragma: no cover - the files vanished meanwhile
        checksum = None
    return {
        "x_train": x_train,
        "t_train": t_train,
        "x_val": x_val,
        "t_val": t_val,
        "dataset": {
            "name": args.dataset,
            "checksum": checksum,
            "train_size": len(x_train),
            "val_size": len(x_val),
            "test_set": "not used",
        },
    }


def make_objective(args, data: dict, trials_seq):
    """``objective(params, index)`` for :func:`dlscratch.hpo.random_search`.

    Trains ``MultiLayerNet(784, args.hidden, 10)`` with ``params["lr"]`` and
    ``params["weight_decay"]`` on the training split and returns the last
    epoch's metrics (``val_acc``, ``val_loss``, ``train_acc``, ``train_loss``)
    plus ``best_val_acc`` and ``epochs``. A diverging run raises
    :class:`~dlscratch.training.NonFiniteLossError`, which the search records
    as a failed trial.
    """
    from dlscratch.nets import MultiLayerNet
    from dlscratch.optim import get_optimizer
    from dlscratch.training import Trainer

    def objective(params: dict, index: int) -> dict:
        init_rng, shuffle_rng = _trial_rngs(trials_seq, index)
        net = MultiLayerNet(
            784,
            args.hidden,
            10,
            activation=args.activation,
            weight_decay_lambda=params["weight_decay"],
            rng=init_rng,
        )
        trainer = Trainer(
            net,
            get_optimizer(args.optimizer, lr=params["lr"]),
            data["x_train"],
            data["t_train"],
            data["x_val"],
            data["t_val"],
            epochs=args.epochs,
            batch_size=args.batch_size,
            rng=shuffle_rng,
            progress=False if args.no_progress else None,
            handle_interrupt=False,
        )
        history = trainer.fit()
        last = history.last()
        return {
            "val_acc": last["val_acc"],
            "val_loss": last["val_loss"],
            "train_acc": last["train_acc"],
            "train_loss": last["train_loss"],
            "best_val_acc": max(history.val_acc),
            "epochs": len(history),
        }

    return objective


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _small(value) -> bool:
    return value is None or abs(value) < 1e4


def _fmt(value, spec: str) -> str:
    """``format(value, spec)``; a right-aligned dash of the same width for None."""
    if value is None:
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return format("-", f">{width or 1}")
    return format(value, spec)


def format_table(result, limit: int | None = None) -> str:
    """The ranked trials as a text table, best first."""
    head = (
        f"{'rank':>4}  {'trial':>5}  {'lr':>9}  {'weight decay':>12}  {'val acc':>7}  "
        f"{'val loss':>8}  {'train acc':>9}  {'time':>6}  status"
    )
    lines = [head, "-" * len(head)]
    for t in result.trials[:limit]:
        p, m = t["params"], t["metrics"]
        loss_spec = "8.4f" if _small(m.get("val_loss")) else "8.2e"
        lines.append(
            f"{t['rank']:>4}  {t['index']:>5}  {_fmt(p.get('lr'), '9.3g')}  "
            f"{_fmt(p.get('weight_decay'), '12.3g')}  {_fmt(m.get('val_acc'), '7.4f')}  "
            f"{_fmt(m.get('val_loss'), loss_spec)}  {_fmt(m.get('train_acc'), '9.4f')}  "
            f"{t['seconds']:>5.1f}s  {t['status']}"
        )
    return "\n".join(lines)


def _space_text(value) -> str:
    from dlscratch.hpo import LogUniform

    if isinstance(value, LogUniform):
        return f"{value.low:g}:{value.high:g} (log scale)"
    return f"{value:g} (fixed)"


def _range_arg(value) -> str:
    """A search-space entry as the command line writes it: ``LOW:HIGH`` or a fixed value."""
    if hasattr(value, "low"):
        return f"{value.low:.3g}:{value.high:.3g}"
    return f"{value:g}"


def _config(args) -> dict:
    from dlscratch.hpo import _describe

    return {
        "trials": args.trials,
        "epochs": args.epochs,
        "lr": _describe(args.lr),
        "weight_decay": _describe(args.weight_decay),
        "hidden": list(args.hidden),
        "activation": args.activation,
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "dataset": args.dataset,
        "limit": args.limit,
        "val_split": args.val_split,
        "seed": args.seed,
        "score": "val_acc (after the last epoch)",
    }


# -- the command ----------------------------------------------------------------------------------


def run(args) -> int:
    from dlscratch.hpo import SearchResult, random_search
    from dlscratch.plotting import plot_search

    started = time.perf_counter()
    out = _choose_out(args)  # created when the first results are written
    seeds = _seeds(args.seed)
    data = _load_training_data(args, seeds["split"])
    space = {"lr": args.lr, "weight_decay": args.weight_decay}
    sizes = "-".join(map(str, [784, *args.hidden, 10]))
    print(
        f"random search: {args.trials} trial{_s(args.trials)} of {args.epochs} "
        f"epoch{_s(args.epochs)}, network {sizes} "
        f"{args.activation}, {args.optimizer}, batch {args.batch_size}, seed {args.seed}\n"
        f"lr {_space_text(args.lr)}, weight decay {_space_text(args.weight_decay)}\n"
        f"{args.dataset}: {data['dataset']['train_size']} training images, "
        f"{data['dataset']['val_size']} for validation (scores); test set not used\n"
        f"output folder: {out}"
    )
    sys.stdout.flush()

    done = []
    width = len(str(args.trials))

    def report(trial: dict) -> None:
        done.append(trial)
        p, m = trial["params"], trial["metrics"]
        outcome = (
            f"val acc {m['val_acc']:.4f}"
            if trial["status"] == "ok"
            else f"failed: {trial['error'].split(';')[0]}"
        )
        print(
            f"[{len(done):>{width}}/{args.trials}] trial {trial['index']:>{width}}  "
            f"lr {p['lr']:.3g}  "
            f"weight decay {p['weight_decay']:.3g}  {outcome}  {trial['seconds']:.1f}s",
            flush=True,
        )

    objective = make_objective(args, data, seeds["trials"])
    interrupted = False
    try:
        result = random_search(objective, space, args.trials, rng=seeds["search"], callback=report)
    except KeyboardInterrupt:
        interrupted = True
        result = SearchResult(done, space=space)
        if not done:
            print("\ninterrupted before the first trial finished; nothing written", file=sys.stderr)
            return 130

    extra = {
        "config": _config(args),
        "seed": args.seed,
        "versions": versions(),
        "dataset": data["dataset"],
        "interrupted": interrupted,
        "wall_time_s": time.perf_counter() - started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    claim_output_folder(out, FILES)
    result.to_csv(out / "results.csv")
    result.to_json(out / "results.json", extra=extra)
    title = (
        f"{args.dataset} {sizes} {args.optimizer}, {args.epochs} epochs: "
        f"{len(result)} trials ranked by validation accuracy"
    )
    plot_search(result, out / "search.png", title=title)

    print()
    print(format_table(result))
    best = result.best
    if best is None:
        print("every trial failed (the loss diverged): lower the learning-rate range")
    else:
        print(
            f"best: trial {best['index']}  lr {best['params']['lr']:.3g}  weight decay "
            f"{best['params']['weight_decay']:.3g}  val acc {best['metrics']['val_acc']:.4f}\n"
            f"train it: dlscratch train --hidden {','.join(map(str, args.hidden)) or 'none'} "
            f"--activation {args.activation} --optimizer {args.optimizer} "
            f"--lr {best['params']['lr']:.3g} --weight-decay {best['params']['weight_decay']:.3g}"
        )
        ok = len(result) - result.n_failed
        if ok >= 2:
            top = max(2, ok // 4)
            narrow = result.narrowed_space(top=top)
            print(
                f"search again where the best {top} trials lie: dlscratch search "
                f"--lr {_range_arg(narrow['lr'])} "
                f"--weight-decay {_range_arg(narrow['weight_decay'])}"
            )
    print(f"wrote {out}/: {', '.join(FILES)}")
    if interrupted:
        print(f"interrupted after {len(done)} of {args.trials} trials", file=sys.stderr)
        return 130
    return 0
