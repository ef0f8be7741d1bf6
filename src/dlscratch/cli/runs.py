"""``dlscratch runs``: list the run folders ``dlscratch train`` wrote, and compare runs.

::

    dlscratch runs                      # the runs in ./runs, newest first
    dlscratch runs results/ --sort test # another folder, best test accuracy first
    dlscratch runs compare runs/a runs/b --out compare.png

The table has one row per run folder (date, network, optimizer, epochs, best
validation accuracy, test accuracy, training time), read from its
``config.json``, ``metrics.json`` and ``history.csv``. ``compare`` overlays the
runs' learning curves in one figure and prints the settings in which they differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

from dlscratch.config import RUNS_DIR

#: The folder ``dlscratch train`` writes into without ``--out``.
DEFAULT_DIR = RUNS_DIR

#: Table columns: name -> (heading, sorted best-first (descending) by default).
COLUMNS = {
    "name": ("run", False),
    "date": ("date", True),
    "network": ("network", False),
    "optimizer": ("optimizer", False),
    "epochs": ("epochs", True),
    "val": ("best val acc", True),
    "test": ("test acc", True),
    "time": ("time", False),
}


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``runs`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "runs",
        help="list training runs as a table, or compare runs' curves and settings",
        description="List the run folders in DIR (default: runs, where dlscratch train writes) "
        "as a table, or, as 'dlscratch runs compare RUN RUN...', overlay the learning curves "
        "of two or more runs in one figure (--out) and print how their settings differ.",
        epilog="examples:\n  dlscratch runs\n  dlscratch runs --sort test\n"
        "  dlscratch runs compare runs/A runs/B --out compare.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "args",
        nargs="*",
        metavar="DIR | compare RUN RUN...",
        help="a folder of runs (default runs), or 'compare' and two or more run folders",
    )
    parser.add_argument(
        "--sort",
        choices=tuple(COLUMNS),
        default="date",
        help="column to sort by (default date; dates and accuracies best/newest first)",
    )
    parser.add_argument("--reverse", action="store_true", help="reverse the sort order")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument(
        "--out", type=Path, help="compare: write the overlaid curves to this image (.png, .svg)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="compare: replace an existing --out file"
    )
    parser.set_defaults(func=run)
    return parser


# -- reading runs ---------------------------------------------------------------------------


def _history(path: Path) -> dict:
    """history.csv as columns of numbers (``{}`` when missing)."""
    from dlscratch.serve.runs import read_history

    try:
        table = read_history(path)
    except FileNotFoundError:
        return {}
    columns = table["columns"]
    return {
        c: [row[i] if i < len(row) else None for row in table["rows"]]
        for i, c in enumerate(columns)
    }


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def network_text(config: dict) -> str:
    """``mlp 100-100 relu bn do0.2 wd1e-04`` from a run's configuration."""
    from dlscratch.config import RunConfig

    try:  # a current configuration: the network's own defaults fill what it leaves unset
        cfg = RunConfig.from_dict(config)
        config = {**config, "hidden": list(cfg.hidden_sizes), "dropout": cfg.dropout_ratio}
    except (ValueError, TypeError):  # an older or damaged one: show what it says
        pass
    hidden = config.get("hidden") or []
    hidden = "-".join(str(h) for h in hidden) if isinstance(hidden, list) else str(hidden)
    parts = [str(config.get("net") or "mlp"), hidden or "?", str(config.get("activation", "?"))]
    if config.get("batchnorm"):
        parts.append("bn")
    if _number(config.get("dropout")):
        parts.append(f"do{config['dropout']:g}")
    if _number(config.get("weight_decay")):
        parts.append(f"wd{config['weight_decay']:g}")
    return " ".join(parts)


def optimizer_text(config: dict) -> str:
    name = str(config.get("optimizer", "?"))
    lr = _number(config.get("lr"))
    if lr is None and "lr" in config:  # the optimizer's default rate
        from dlscratch.optim import OPTIMIZERS

        lr = getattr(OPTIMIZERS.get(name.lower()), "default_lr", None)
    return f"{name} lr={lr:g}" if lr is not None else name


def run_row(path: Path) -> dict:
    """One table row for the run folder ``path``."""
    from dlscratch.serve.runs import read_json, run_summary

    summary = run_summary(path)
    config, final = summary["config"], summary["final"]
    history = _history(path)
    val = [v for v in history.get("val_acc", []) if _number(v) is not None]
    best_val = max(val) if val else _number(final.get("val_acc"))
    metrics_date = None
    metrics = read_json(path / "metrics.json") or {}
    if isinstance(metrics.get("finished"), str):
        try:
            metrics_date = datetime.datetime.fromisoformat(metrics["finished"]).timestamp()
        except ValueError:
            metrics_date = None
    epochs_done = summary["epochs_completed"]
    return {
        "name": path.name,
        "path": str(path),
        "status": summary["status"],
        "date": metrics_date or summary["modified"],
        "network": network_text(config),
        "optimizer": optimizer_text(config),
        "epochs": _number(epochs_done) if epochs_done is not None else len(val) or None,
        "epochs_planned": _number(config.get("epochs")),
        "val": best_val,
        "test": _number(final.get("test_acc")),
        "time": _number(summary["wall_time_s"]),
        "config": config,
    }


def find_runs(folder: Path) -> list[dict]:
    from dlscratch.serve.runs import list_runs

    if not folder.exists():
        raise ValueError(
            f"{folder}: no such folder; give the folder your runs are in "
            "(dlscratch train writes them to ./runs)"
        )
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file; give the folder your runs are in")
    return [run_row(folder / r["name"]) for r in list_runs(folder)]


def sort_rows(rows: list[dict], column: str, reverse: bool = False) -> list[dict]:
    """Rows sorted by ``column``; missing values last either way."""
    descending = COLUMNS[column][1] != reverse
    present = [r for r in rows if r[column] is not None]
    missing = [r for r in rows if r[column] is None]
    present.sort(key=lambda r: r[column], reverse=descending)
    return present + missing


# -- formatting -----------------------------------------------------------------------------


def _cell(column: str, row: dict) -> str:
    value = row[column]
    if value is None:
        return "-"
    if column == "date":
        return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    if column in ("val", "test"):
        return f"{value:.4f}"
    if column == "time":
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    if column == "epochs":
        planned = row.get("epochs_planned")
        return f"{value}/{planned}" if planned and planned != value else str(value)
    return str(value)


def format_table(rows: list[dict]) -> str:
    headings = [COLUMNS[c][0] for c in COLUMNS]
    cells = [
        [
            _cell(c, r) + ("" if c != "name" or r["status"] == "finished" else f" ({r['status']})")
            for c in COLUMNS
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headings)]
    numeric = {"epochs", "val", "test", "time"}

    def line(values):
        return "  ".join(
            v.rjust(w) if c in numeric else v.ljust(w) for c, v, w in zip(COLUMNS, values, widths)
        ).rstrip()

    return "\n".join([line(headings), *(line(r) for r in cells)])


# -- compare --------------------------------------------------------------------------------


def resolve_run(name: str, runs_dir: Path = DEFAULT_DIR) -> Path:
    """A run folder from a path, or from a name inside ``runs_dir``."""
    from dlscratch.serve.runs import is_run_folder

    path = Path(name)
    if not path.exists() and (runs_dir / name).exists():
        path = runs_dir / name
    if not path.exists():
        raise ValueError(f"run folder not found: {name} (give the folder dlscratch train wrote)")
    if not is_run_folder(path):
        raise ValueError(
            f"{name} is not a run folder: it has no config.json or metrics.json "
            "(give a folder that dlscratch train wrote)"
        )
    return path


def config_differences(configs: list[dict]) -> list[tuple[str, list]]:
    """``(key, [value per run])`` for every setting that is not the same in all runs."""
    keys = []
    for config in configs:
        keys += [k for k in config if k not in keys]
    missing = object()
    diffs = []
    for key in keys:
        values = [c.get(key, missing) for c in configs]
        if any(v != values[0] for v in values[1:]):
            diffs.append((key, ["(unset)" if v is missing else v for v in values]))
    return diffs


def plot_runs(paths: list[Path], histories: list[dict], out: Path) -> None:
    from dlscratch.fileio import save_figure
    from dlscratch.plotting import _pyplot

    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, (path, history) in enumerate(zip(paths, histories)):
        colour = colours[n % len(colours)]
        epochs = history.get("epoch") or list(range(1, len(history.get("train_acc", [])) + 1))
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            for split, style in (("train", "-"), ("val", "--")):
                values = history.get(f"{split}_{metric}")
                if values and any(_number(v) is not None for v in values):
                    y = [math.nan if _number(v) is None else v for v in values]
                    ax.plot(
                        epochs,
                        y,
                        style,
                        color=colour,
                        marker="o",
                        markersize=3,
                        label=f"{path.name} {split}",
                    )
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: validation)")
    ax_acc.set(
        xlabel="epoch", ylabel="accuracy", title="accuracy (solid: train, dashed: validation)"
    )
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, out, dpi=100)
    plt.close(fig)


def compare(args) -> int:
    names = args.args[1:]
    if len(names) < 2:
        raise ValueError("compare needs two or more run folders: dlscratch runs compare RUN RUN")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists; pass --overwrite to replace it")
    paths = [resolve_run(name) for name in names]
    rows = [run_row(p) for p in paths]
    histories = []
    for path in paths:
        history = _history(path)
        if args.out is not None and not history:
            raise ValueError(f"{path} has no history.csv (the run did not finish an epoch)")
        histories.append(history)
    print(format_table(rows))
    diffs = config_differences([r["config"] for r in rows])
    print()
    if diffs:
        print("settings that differ:")
        width = max(len(k) for k, _ in diffs)
        for key, values in diffs:
            shown = "  |  ".join(json.dumps(v) if not isinstance(v, str) else v for v in values)
            print(f"  {key.ljust(width)}  {shown}")
    else:
        print("the runs have the same settings")
    if args.out is not None:
        plot_runs(paths, histories, args.out)
        print(f"wrote {args.out}")
    else:
        print("(add --out compare.png to overlay their learning curves in one figure)")
    return 0


def run(args) -> int:
    if args.args and args.args[0] == "compare":
        return compare(args)
    if len(args.args) > 1:
        raise ValueError(
            f"give one folder of runs, not {len(args.args)}; to compare runs use "
            "dlscratch runs compare RUN RUN..."
        )
    if args.out is not None:
        raise ValueError("--out is for 'dlscratch runs compare RUN RUN... --out FILE'")
    folder = Path(args.args[0]) if args.args else DEFAULT_DIR
    rows = sort_rows(find_runs(folder), args.sort, args.reverse)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "config"} for r in rows], indent=2))
    elif not rows:
        print(f"no run folders in {folder} (dlscratch train writes them there)")
    else:
        print(format_table(rows))
    return 0
