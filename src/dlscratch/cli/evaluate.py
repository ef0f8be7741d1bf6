"""``dlscratch evaluate``: accuracy, per-class precision/recall and the confusion matrix.

::

    dlscratch evaluate --model runs/<run>                    # MNIST test set
    dlscratch evaluate --model runs/<run> --split train --out confusion-train.png
    dlscratch evaluate --model sample_weight.pkl             # the book's weights

The dataset defaults to the one the model was trained on (from its metadata).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dlscratch.cli.options import DATASETS, add_dataset_options, add_model_option, positive_int


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy, per-class precision/recall and confusion matrix of a trained model",
        description="Classify the test set (or the training set) with a trained model and print "
        "the accuracy, precision/recall/F1 per class and the confusion matrix.",
    )
    add_model_option(parser)
    parser.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="which part of the dataset (default test)",
    )
    add_dataset_options(
        parser, default=None, help="default: the model's training dataset, else mnist"
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate only the first N images",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="images per forward pass (default: the network's own, 1000 for fully connected "
        "networks, 100 for convolutional ones)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="also draw the confusion matrix into this image file",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the --out image if it exists"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)
    return parser


def load_classifier(path: Path):
    """(network, metadata dict) from a run folder, an ``.npz`` model file or the book's pickle.

    Only the network is read (optimizer and training state are not needed to
    classify, so damage there does not matter). The metadata's ``dataset``
    entry is checked: a dict whose ``class_names``, if any, name every output.
    """
    from dlscratch.io import load_checkpoint, load_network

    if path.suffix.lower() in (".pkl", ".pickle"):
        return load_network(path), {}
    ck = load_checkpoint(path, with_optimizer=False)
    user = dict(ck.user)
    dataset = user.get("dataset")
    if dataset is None:
        return ck.network, user
    if not isinstance(dataset, dict):
        raise ValueError(f"{ck.path}: metadata 'dataset' must be a dict, found {dataset!r:.60}")
    names = dataset.get("class_names")
    outputs = getattr(ck.network, "output_size", None)
    if names is not None:
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError(f"{ck.path}: metadata 'class_names' must be a list of names")
        if outputs is not None and len(names) != outputs:
            raise ValueError(
                f"{ck.path}: metadata names {len(names)} classes but the network has "
                f"{outputs} outputs; the file is damaged or was edited"
            )
    return ck.network, user


def model_dataset(user: dict) -> str:
    """The dataset a model was trained on, from its metadata (mnist when unknown)."""
    dataset = (user.get("dataset") or {}).get("name")
    return dataset if dataset in DATASETS else "mnist"


def run(args) -> int:
    from dlscratch.data import CLASS_NAMES, load_mnist
    from dlscratch.training import ClassReport, confusion_matrix, evaluate, format_confusion

    if args.out is not None:
        out = args.out / "confusion.png" if args.out.is_dir() else args.out
        if out.exists() and not args.overwrite:
            raise FileExistsError(
                f"--out {out} already exists; pass --overwrite to replace it, or choose "
                "another file"
            )
    net, user = load_classifier(args.model)
    dataset = args.dataset or model_dataset(user)
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=False, dataset=dataset, data_dir=args.data_dir
    )
    x, t = (x_test, t_test) if args.split == "test" else (x_train, t_train)
    if args.limit is not None:
        x, t = x[: args.limit], t[: args.limit]
    if net.input_size is not None and net.input_size != x.shape[1]:
        raise ValueError(
            f"the model expects {net.input_size} inputs per image, {dataset} images have "
            f"{x.shape[1]}"
        )
    batch_size = args.batch_size or getattr(net, "eval_batch_size", 1000)
    loss, accuracy, scores = evaluate(net, x, t, batch_size=batch_size, return_scores=True)
    k = scores.shape[1]
    cm = confusion_matrix(t, scores.argmax(axis=1), num_classes=k)
    report = ClassReport.from_confusion(cm)
    names = list(CLASS_NAMES[dataset]) if k == len(CLASS_NAMES[dataset]) else None

    if args.out is not None:
        from dlscratch.plotting import plot_confusion

        plot_confusion(
            cm, names, out, title=f"{dataset} {args.split} set (accuracy {accuracy:.4f})"
        )

    if args.json:
        result = {
            "model": str(args.model),
            "dataset": dataset,
            "split": args.split,
            "samples": len(x),
            "loss": loss,
            "accuracy": accuracy,
            **{k2: v for k2, v in report.to_dict(names).items() if k2 != "accuracy"},
            "confusion_matrix": cm.tolist(),
        }
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {args.model}: {dataset} {args.split} set, {len(x)} images")
    print(f"accuracy {accuracy:.4f} ({int(np.trace(cm))}/{len(x)} correct), loss {loss:.4f}\n")
    print(report.format(names))
    print()
    print(format_confusion(cm, names))
    if args.out is not None:
        print(f"\nconfusion matrix drawn to {out}")
    return 0
