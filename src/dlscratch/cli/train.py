"""``dlscratch train``: train a network on MNIST / Fashion-MNIST; keep everything in a run folder.

::

    dlscratch train                                   # 784-100-100-10 ReLU, Adam, 10 epochs
    dlscratch train --hidden 50 --activation sigmoid --init 0.01 --optimizer sgd --lr 0.1
    dlscratch train --batchnorm --dropout 0.2 --weight-decay 1e-4 --schedule cosine
    dlscratch train --resume runs/20250101-120000-mnist-100x100-relu-adam

The run folder holds ``model.npz`` (+ ``model.json``), ``history.csv``,
``metrics.json``, ``config.json``, ``curves.png``, ``confusion.png``,
``misclassified.png`` and ``checkpoint.npz`` (what ``--resume`` continues from).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np

from dlscratch.cli.options import prepare_output_folder
from dlscratch.cli.runconfig import add_run_options, config_from_args, given_changes
from dlscratch.config import HARDWARE_FIELDS, RunConfig
from dlscratch.provenance import versions

#: Settings that may change when resuming (the rest come from the checkpoint).
RESUME_OPTIONS = ("epochs", *HARDWARE_FIELDS)
FILES = (
    "model.npz",
    "model.json",
    "history.csv",
    "metrics.json",
    "config.json",
    "curves.png",
    "confusion.png",
    "misclassified.png",
)
CHECKPOINT = "checkpoint.npz"


# -- the parser ---------------------------------------------------------------------------------


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train a network on MNIST and write model, history, metrics and figures",
        description="Train a network on MNIST (or Fashion-MNIST): the fully connected one "
        "(--net mlp, the default), or the convolutional ones of chapters 7-8 (--net simple-cnn, "
        "deep-cnn). Without options: 784-100-100-10 ReLU, He init, Adam (lr 0.001), batch 100, "
        "10 epochs, 10% of the training set held out for validation - about 98% test "
        "accuracy in about 8 seconds on two CPU cores. Everything lands in a run folder "
        "(config.json is the run configuration; --config trains one again); Ctrl-C saves a "
        "checkpoint that --resume continues from.",
        epilog="examples:\n"
        "  dlscratch train\n"
        "  dlscratch train --hidden 50 --activation sigmoid --init 0.01 --optimizer sgd\n"
        "  dlscratch train --batchnorm --dropout 0.2 --schedule cosine --epochs 20\n"
        "  dlscratch train --optimizer adamw --opt weight_decay=0.01 --activation leaky_relu\n"
        "  dlscratch train --net simple-cnn --epochs 20 --val-split 0\n"
        "  dlscratch train --config runs/<search folder>/best.json\n"
        "  dlscratch train --resume runs/<run folder>",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser)

    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="run folder (default runs/<time>-<dataset>-<sizes>-<activation>-"
        "<optimizer>); must not exist or be empty unless --overwrite",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="allow writing into an existing, non-empty run folder",
    )
    out.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the interrupted (or finished) run in DIR from its "
        "checkpoint; only --epochs may change",
    )
    out.add_argument(
        "--progress",
        choices=("auto", "bar", "none", "jsonl"),
        default="auto",
        help="auto: a progress bar on a terminal (default); bar: always; none: never; jsonl: "
        "JSON lines on standard output for programs that follow the run (progress and epochs)",
    )
    out.add_argument("--no-progress", action="store_true", help="same as --progress none")

    parser.set_defaults(func=run, _parser=parser)
    return parser


# -- configuration --------------------------------------------------------------------------


def _resume_config(args) -> tuple[RunConfig, Path]:
    changes = given_changes(args)
    fixed = [f"--{k.replace('_', '-')}" for k in changes if k not in RESUME_OPTIONS]
    if getattr(args, "config", None) is not None:
        fixed.append("--config")
    if fixed or args.out is not None:
        extra = fixed + (["--out"] if args.out is not None else [])
        raise ValueError(
            f"{', '.join(extra)} cannot be changed when resuming: the run continues with its "
            "saved settings (only --epochs, --device and --threads may be given)"
        )
    from dlscratch.io import read_metadata

    folder = args.resume
    if not folder.exists():
        raise FileNotFoundError(f"run folder not found: {folder}; pass a folder written by "
                                "dlscratch train")
    checkpoint = folder / CHECKPOINT if folder.is_dir() else folder
    if folder.is_dir() and not checkpoint.is_file():
        raise FileNotFoundError(
            f"no {CHECKPOINT} in {folder}: nothing to resume (was the run started with "
            "dlscratch train?)"
        )
    meta = read_metadata(checkpoint)
    user = meta.get("user") if isinstance(meta, dict) else None
    run = user.get("run") if isinstance(user, dict) else None
    saved = run.get("config") if isinstance(run, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(
            f"{checkpoint} is not a checkpoint of dlscratch train; pass the run folder "
            "(it holds checkpoint.npz)"
        )
    config = RunConfig.from_dict(saved, source=f"the configuration saved in {checkpoint}")
    return config.replace(**{k: changes[k] for k in RESUME_OPTIONS if k in changes}), checkpoint


#: Everything a run writes into its folder (--overwrite removes these first), with the
#: side files of the older checkpoint format.
RUN_FILES = (*FILES, CHECKPOINT, "checkpoint.json", "checkpoint-callbacks.npz")


def _check_hardware(config: RunConfig):
    """Fail early, with the fix, when the asked-for device cannot be used; set BLAS threads."""
    from dlscratch.backend import GPU_AVAILABLE, set_num_threads

    if config.device == "cuda" and not GPU_AVAILABLE:
        raise ValueError(
            "--device cuda needs CuPy and an NVIDIA GPU, and none was found; install CuPy "
            "(pip install 'dlscratch[gpu]') on a machine with a GPU, or use --device cpu"
        )
    if config.threads is not None and set_num_threads(config.threads) is None:
        raise ValueError(  # pragma: no cover - threadpoolctl is a dependency
            "--threads needs the threadpoolctl package; set OPENBLAS_NUM_THREADS instead"
        )


def _callbacks(config: RunConfig, out: Path) -> list:
    """What the command adds to the configuration's own callbacks: the checkpoint."""
    from dlscratch.training import Checkpoint

    return [Checkpoint(out / CHECKPOINT, metadata={"config": config.to_dict()})]


def _describe(config: RunConfig, net, data) -> str:
    val = f", {len(data.x_val)} for validation" if data.has_validation else ""
    return (
        f"{config.describe(net)}\n"
        f"{config.dataset}: {len(data.x_train)} training images{val}, "
        f"{len(data.x_test)} test images"
    )


# -- the command ----------------------------------------------------------------------------


def run(args) -> int:
    from dlscratch.config import build_trainer, load_run_data
    from dlscratch.fileio import write_json
    from dlscratch.training import NonFiniteLossError, Trainer, TrainingInterrupted

    started = time.perf_counter()
    if args.resume is not None:
        config, checkpoint = _resume_config(args)
        _check_hardware(config)
        out = prepare_output_folder(checkpoint.parent, "", overwrite=False, resume=True)
    else:
        config, checkpoint = config_from_args(args), None
        config = config.replace(lr=config.learning_rate)  # the folder says which rate ran
        _check_hardware(config)
        # claimed before any work: a second run into the same folder is refused at once
        out = prepare_output_folder(
            args.out,
            config.short_name(),
            overwrite=args.overwrite,
            owned_files=RUN_FILES,
            hint=f"continue it with --resume {args.out}, " if args.out is not None else "",
        )
    data = load_run_data(config, args.data_dir)
    if config.batch_size > len(data.x_train):
        print(
            f"note: --batch-size {config.batch_size} is larger than the {len(data.x_train)} "
            f"training images; using {len(data.x_train)}",
            file=sys.stderr,
        )
    callbacks = _callbacks(config, out)
    mode = "none" if args.no_progress else args.progress
    progress = {"auto": None, "bar": True, "none": False, "jsonl": False}[mode]
    if mode == "jsonl":
        from dlscratch.training.progress import JsonProgress

        callbacks.append(JsonProgress())
    if checkpoint is None:
        trainer = build_trainer(
            config, data, callbacks=callbacks, verbose=True, progress=progress
        )
        net = trainer.network
        write_json(out / "config.json", config.to_dict())
        print(_describe(config, net, data))
        print(f"run folder: {out}")
    else:
        trainer = Trainer.resume(
            checkpoint,
            data.x_train,
            data.t_train,
            data.x_val,
            data.t_val,
            device=config.device,
            epochs=config.epochs,
            callbacks=[*config.build_callbacks(has_validation=data.has_validation), *callbacks],
            verbose=True,
            progress=progress,
        )
        net = trainer.network
        print(_describe(config, net, data))
        if trainer.epoch < trainer.epochs and not trainer.stop_training:
            into = f", {trainer.step_in_epoch} steps into it" if trainer.step_in_epoch else ""
            print(f"resuming {out} at epoch {trainer.epoch + 1} (step {trainer.step}{into})")
        else:
            print(
                f"{out} has already finished ({trainer.epoch} epochs); pass a larger --epochs "
                "to train longer. Rewriting its results."
            )
    sys.stdout.flush()

    try:
        history = trainer.fit()
    except TrainingInterrupted as exc:
        where = f"at step {exc.step} ({exc.epoch} of {trainer.epochs} epochs done)"
        if exc.checkpoint is not None:
            print(
                f"\ninterrupted {where}; checkpoint saved to {exc.checkpoint}\n"
                f"resume with: dlscratch train --resume {out}",
                file=sys.stderr,
            )
        else:  # pragma: no cover - the command always adds a checkpoint
            print(f"\ninterrupted {where}; nothing saved", file=sys.stderr)
        return 130
    except NonFiniteLossError as exc:
        print(f"dlscratch train: error: {exc}", file=sys.stderr)
        last = trainer.epoch
        if last:
            print(f"the checkpoint after epoch {last} is in {out / CHECKPOINT}", file=sys.stderr)
        return 1

    try:
        results = _finish(out, config, data, trainer, history, started)
        results["hardware"] = _hardware(config)
        write_json(out / "metrics.json", results)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted while writing the results; training had finished and its "
            f"checkpoint is complete.\nwrite them with: dlscratch train --resume {out}",
            file=sys.stderr,
        )
        return 130
    final = results["final"]
    accs = "  ".join(
        f"{split} {final[f'{split}_acc']:.4f}"
        for split in ("train", "val", "test")
        if final.get(f"{split}_acc") is not None
    )
    stop = f", stopped early, best epoch {history.best_epoch}" if history.stopped_early else ""
    print(
        f"done in {results['wall_time_s']:.1f} s ({len(history)} "
        f"epoch{'' if len(history) == 1 else 's'}, {trainer.step} "
        f"steps{stop})\naccuracy  {accs}\n"
        f"wrote {out}/: {', '.join(n for n in FILES if (out / n).exists())}, "
        f"{CHECKPOINT} (what --resume continues from)\n"
        f"next: dlscratch evaluate --model {out}   |   dlscratch predict --model {out} IMAGE.png"
    )
    return 0


def _hardware(config: RunConfig) -> dict:
    """Where the run trained: device, BLAS library and its threads, CPU count."""
    import os

    from dlscratch.backend import blas_info

    return {"device": config.device, "cpu_count": os.cpu_count(), "blas": blas_info()}


def _finish(out: Path, config: RunConfig, data, trainer, history, started: float) -> dict:
    """Evaluate on every split, save model, history, figures; return the metrics."""
    from dlscratch.functions import softmax
    from dlscratch.io import save_model
    from dlscratch.plotting import plot_confusion, plot_history, plot_misclassified
    from dlscratch.training import confident_mistakes, confusion_matrix, evaluate

    net = trainer.network
    final = {}
    for split in ("train", "val"):
        x, t = getattr(data, f"x_{split}"), getattr(data, f"t_{split}")
        if x is not None:
            final[f"{split}_loss"], final[f"{split}_acc"] = evaluate(net, x, t)
    # The test set is used once, here, after training - never for a decision.
    final["test_loss"], final["test_acc"], scores = evaluate(
        net, data.x_test, data.t_test, return_scores=True
    )
    probs = softmax(scores.astype(np.float64))
    cm = confusion_matrix(data.t_test, scores.argmax(axis=1), num_classes=10)

    names = data.class_names
    dataset = {
        "name": config.dataset,
        "checksum": data.checksum,
        "train_size": len(data.x_train),
        "val_size": 0 if data.x_val is None else len(data.x_val),
        "test_size": len(data.x_test),
        "class_names": names,
    }
    summary = {"dataset": dataset, "final": final, "seed": config.seed, "config": config.to_dict()}
    save_model(out / "model.npz", net, optimizer=trainer.optimizer, metadata=summary)
    history.to_csv(out / "history.csv")
    lines = config.describe().splitlines()
    title = f"{config.dataset}: {lines[0].removeprefix('network ')}\n{lines[1]}"
    plot_history(history, out / "curves.png", title=title)
    cm_title = f"test set confusion matrix (accuracy {final['test_acc']:.4f})"
    plot_confusion(cm, names, out / "confusion.png", title=cm_title)
    wrong = confident_mistakes(probs, data.t_test, k=32)
    plot_misclassified(
        data.x_test, data.t_test, probs, wrong, names, out / "misclassified.png"
    )
    return {
        "config": config.to_dict(),
        "seed": config.seed,
        "versions": versions(),
        "dataset": dataset,
        "network": net.get_config(),
        "parameters": sum(int(p.size) for p in net.params.values()),
        "final": final,
        "epochs_completed": len(history),
        "steps": trainer.step,
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
        "train_time_s": float(sum(history.epoch_times)),
        "wall_time_s": time.perf_counter() - started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
