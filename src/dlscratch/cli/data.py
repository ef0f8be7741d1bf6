"""``dlscratch data``: inspect, fetch and look at the datasets.

Actions::

    dlscratch data info [--dataset mnist|fashion-mnist] [--data-dir DIR] [--json]
    dlscratch data show [--index 0] [--count 16] [--split train|test] [--out FILE.png]
    dlscratch data download [--dataset ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from dlscratch.cli.options import DATASETS, add_dataset_options

MAX_SHOW = 256
DEFAULT_SHOW = 16


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` subcommand and its actions to ``subparsers``."""
    parser = subparsers.add_parser(
        "data",
        help="inspect the MNIST / Fashion-MNIST files, view digits, download",
        description="Inspect the datasets: where they are, sizes, class counts, checksums; "
        "draw images to a PNG; download them into the user cache.",
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    info = actions.add_parser("info", help="where the files are, sizes, class counts, checksums")
    add_dataset_options(info)
    info.add_argument("--json", action="store_true", help="print the details as JSON")
    info.set_defaults(func=cmd_info)

    show = actions.add_parser("show", help="draw images with their labels into a PNG grid")
    add_dataset_options(show)
    show.add_argument("--index", type=int, default=0, help="first image (default 0)")
    show.add_argument(
        "--count",
        type=int,
        default=None,
        help=f"how many, 1-{MAX_SHOW} (default 16, or up to the last image)",
    )
    show.add_argument("--split", choices=("train", "test"), default="train")
    show.add_argument("--cols", type=int, default=8, help="images per row (default 8)")
    show.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG file to write (default <dataset>-<split>-<index>.png here)",
    )
    show.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    show.set_defaults(func=cmd_show)

    fetch = actions.add_parser(
        "download", help="download the dataset into the user cache unless found locally"
    )
    fetch.add_argument(
        "--dataset", type=str.lower, choices=DATASETS, default="mnist", help="default mnist"
    )
    fetch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fetch.set_defaults(func=cmd_download)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_info(info: dict) -> str:
    """Render :func:`dlscratch.data.dataset_info`'s dict as readable text."""
    lines = [
        f"dataset   {info['dataset']}",
        f"folder    {info['folder']}  (found via {info['found_in']})",
        "files",
    ]
    for key, f in info["files"].items():
        shape = "x".join(str(n) for n in f["shape"])
        lines.append(
            f"  {key:<13} {Path(f['path']).name:<27} {_human(f['size']):>10}  {shape:<12}"
            f"md5 {f['checksum']}"
        )
    h, w = info["image_shape"]
    lines.append(
        f"samples   train {info['train_size']}, test {info['test_size']} "
        f"({h}x{w} pixels, {len(info['class_names'])} classes)"
    )
    lines.append("class counts")
    lines.append(f"  {'class':<14} {'train':>6} {'test':>6}")
    counts = info["class_counts"]
    for i, name in enumerate(info["class_names"]):
        label = f"{i}" if name == str(i) else f"{i} {name}"
        lines.append(f"  {label:<14} {counts['train'][i]:>6} {counts['test'][i]:>6}")
    lines.append(f"checksum  {info['checksum']}")
    lines.append(f"cache     {info['cache']}")
    return "\n".join(lines)


def cmd_info(args) -> int:
    from dlscratch.data import dataset_info

    info = dataset_info(args.dataset, args.data_dir)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def cmd_download(args) -> int:
    from dlscratch.data import locate_dataset

    where = locate_dataset(args.dataset, download=True, progress=not args.no_progress)
    verb = "downloaded to" if where.found_in == "download" else "already present in"
    print(f"{where.dataset}: {verb} {where.folder}")
    return 0


def _check_show_args(args, n: int) -> None:
    if not 1 <= args.count <= MAX_SHOW:
        raise ValueError(f"--count must be 1 to {MAX_SHOW}, got {args.count}")
    if args.cols < 1:
        raise ValueError(f"--cols must be positive, got {args.cols}")
    if not 0 <= args.index < n:
        raise ValueError(f"--index {args.index} is out of range: {args.split} has {n} images")
    if args.index + args.count > n:
        print(
            f"note: --index {args.index} with --count {args.count} runs past the end of the "
            f"{n} {args.split} images; showing the last {n - args.index}",
            file=sys.stderr,
        )
        args.count = n - args.index


def render_grid(images, labels, indices, class_names, out: Path, cols: int = 8) -> Path:
    """Draw uint8 images ``(K, 28, 28)`` with labels into a PNG at ``out``, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dlscratch.fileio import save_figure

    count = len(images)
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(1.2 * cols, 1.4 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, label, index in zip(axes.flat, images, labels, indices):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"#{index}: {class_names[int(label)]}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


def cmd_show(args) -> int:
    from dlscratch.data import CLASS_NAMES, load_mnist
    from dlscratch.data.mnist import canonical_dataset

    dataset = canonical_dataset(args.dataset)
    out = args.out or Path(f"{dataset}-{args.split}-{args.index}.png")
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    if not out.parent.resolve().is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    train, test = load_mnist(
        normalize=False, flatten=False, dataset=dataset, data_dir=args.data_dir, download=False
    )
    x, t = train if args.split == "train" else test
    if args.count is None:
        args.count = max(1, min(DEFAULT_SHOW, len(x) - args.index))
    _check_show_args(args, len(x))
    picked = range(args.index, args.index + args.count)
    render_grid(
        x[picked.start : picked.stop, 0],
        t[picked.start : picked.stop],
        picked,
        CLASS_NAMES[dataset],
        out,
        cols=args.cols,
    )
    print(f"wrote {out} ({args.count} {dataset} {args.split} images from #{args.index})")
    return 0
