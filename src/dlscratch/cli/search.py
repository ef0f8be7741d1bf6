"""``dlscratch search``: hyperparameter search on Optuna, trials run on Dask.

::

    dlscratch search                                     # TPE, the book's lr x weight decay
    dlscratch search --sampler random --trials 100 --optimizer sgd \\
        --hidden 100,100,100,100,100,100 --limit 500 --val-split 0.2 --epochs 50  # section 6.5
    dlscratch search --space lr=1e-4:1e-1:log --space optimizer=sgd|adam --space dropout=0:0.5
    dlscratch search --scheduler tcp://HOST:8786 ...     # trials on an existing Dask cluster
    dlscratch search --resume RUN --trials 20            # 20 more trials of the same study

Every trial trains on the training split and is scored on the validation split (the
test set is never evaluated). The folder gets ``trials.csv`` (ranked), ``study.log``
(the Optuna study), ``search.json`` (what ``--resume`` continues), ``best.json`` (a run
configuration for ``dlscratch train --config``) and figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlscratch.cli.options import non_negative_int, positive_int, prepare_output_folder
from dlscratch.cli.runconfig import add_run_options, config_from_args, given_changes

FILES = ("trials.csv", "best.json", "search.json", "study.log", "history.png",
         "lr-weight-decay.png", "importances.png")
SETTINGS = "search.json"
STUDY = "study.log"
STUDY_NAME = "dlscratch"


# -- run-configuration options, derived from RunConfig.FIELDS ---------------------------------


def _config_values(args) -> dict:
    """The run-configuration changes the command line gives (see cli/runconfig.py)."""
    return given_changes(args)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``search`` subcommand to ``subparsers``."""
    from dlscratch.hpo import PRUNERS, SAMPLERS

    p = subparsers.add_parser(
        "search",
        help="hyperparameter search (Optuna), trials run in parallel (Dask)",
        description=__doc__.split("::")[0].strip().splitlines()[0],
        epilog="Search space: --space KEY=SPEC, SPEC a range LOW:HIGH[:log] or choices A|B|C; "
        "KEY any RunConfig field, opt.NAME (optimizer option) or act.NAME (activation "
        "option). Default: lr=1e-6:1e-2:log and weight_decay=1e-8:1e-4:log, the book's.",
    )
    s = p.add_argument_group("the search")
    s.add_argument("--sampler", type=str.lower, default=None,
                   metavar="{" + ",".join(SAMPLERS) + "}",
                   help="tpe: Bayesian (default); random: the book's search on log scales; "
                   "cmaes: CMA-ES, numeric ranges only (needs the cmaes package)")
    s.add_argument("--pruner", type=str.lower, default=None,
                   metavar="{" + ",".join(PRUNERS) + "}",
                   help="stop trials that fall behind after an epoch (default median)")
    s.add_argument("--trials", type=positive_int, default=20, help="trials to run (default 20)")
    s.add_argument("--space", action="append", default=[], metavar="KEY=SPEC",
                   help="a searched value (repeatable), e.g. lr=1e-4:1e-1:log, hidden=50|100,100")
    s.add_argument("--space-file", type=Path, default=None, metavar="FILE",
                   help="search space, one KEY=SPEC per line (# comments)")
    s.add_argument("--workers", type=non_negative_int, default=None,
                   help="Dask worker processes on this machine (default: the number of cores; "
                   "0: in this process); with --scheduler: trials in flight")
    s.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="an existing Dask scheduler, e.g. tcp://HOST:8786 (its workers must "
                   "reach the run folder: a shared file system)")
    s.add_argument("--resume", type=Path, default=None, metavar="RUN",
                   help="continue the study in the search folder RUN, adding --trials trials")
    s.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default runs/<time>-search-<config>)")
    s.add_argument("--overwrite", action="store_true", help="replace the files of --out")
    add_run_options(p)
    p.set_defaults(func=run)
    return p


# -- running -----------------------------------------------------------------------------------


def _settings_from_resume(args) -> dict:
    from dlscratch.fileio import read_json

    run = args.resume
    path = run / SETTINGS
    if not path.is_file() or not (run / STUDY).is_file():
        raise ValueError(f"--resume {run} is not a search folder (it needs {SETTINGS} and "
                         f"{STUDY}); start a search with dlscratch search --out {run}")
    settings = read_json(path)
    if not isinstance(settings, dict) or not {"config", "space", "sampler", "pruner",
                                              "seed"} <= set(settings):
        raise ValueError(f"{path} is not a search's settings file; start a new search instead")
    fixed = [k for k in _config_values(args) if k not in ("threads", "device")]
    if args.config is not None:
        fixed.append("config")
    if args.space or args.space_file or fixed:
        what = ", ".join([f"--{k.replace('_', '-')}" for k in fixed]
                         + (["--space"] if args.space or args.space_file else []))
        raise ValueError(f"{what} cannot change when resuming: the study continues with the "
                         "configuration and space it started with; start a new search to "
                         "change them")
    for name in ("sampler", "pruner"):
        given = getattr(args, name)
        if given is not None and given != settings[name]:
            raise ValueError(f"--{name} {given} differs from the study's {settings[name]}; "
                             f"leave --{name} out to resume")
    return settings


def _new_settings(args) -> dict:
    from dlscratch.hpo import SearchSpace, check_sampler_space, make_pruner, make_sampler

    cfg = config_from_args(args)
    specs = []
    if args.space_file is not None:
        specs += list(SearchSpace.from_file(args.space_file).specs)
    specs += args.space
    space = SearchSpace.parse(specs or None)
    sampler, pruner = args.sampler or "tpe", args.pruner or "median"
    make_sampler(sampler)
    check_sampler_space(sampler, space)
    make_pruner(pruner, cfg.epochs)
    if cfg.val_split <= 0:
        raise ValueError("a search is scored on the validation split: set --val-split > 0")
    return {"config": cfg.to_dict(), "space": list(space.specs), "sampler": sampler,
            "pruner": pruner, "seed": cfg.seed, "study_name": STUDY_NAME}


def run(args) -> int:
    from dlscratch.config import RunConfig
    from dlscratch.fileio import write_json
    from dlscratch.hpo import SearchSpace, check_scheduler, save_results, search

    if args.scheduler is not None and args.resume is None:
        _new_settings(args)  # bad options first, then the cluster, then the folder
    if args.scheduler is not None:
        n = check_scheduler(args.scheduler)
        print(f"Dask scheduler {args.scheduler}: {n} worker{'' if n == 1 else 's'}")
    if args.resume is not None:
        settings = _settings_from_resume(args)
        out = args.resume
        hardware = {k: v for k, v in _config_values(args).items() if k in ("threads", "device")}
        cfg = RunConfig.from_dict(settings["config"]).replace(**hardware)
    else:
        settings = _new_settings(args)
        cfg = RunConfig.from_dict(settings["config"])
        out = prepare_output_folder(args.out, f"search-{cfg.short_name()}",
                                    overwrite=args.overwrite, owned_files=FILES,
                                    hint="--resume it to add trials, ")
        write_json(out / SETTINGS, settings)
    space = SearchSpace.parse(settings["space"])
    print(f"search: {args.trials} trials, {settings['sampler']} sampler, "
          f"{settings['pruner']} pruner, space {' '.join(space.specs)}")
    print(cfg.describe(), flush=True)

    bar = _progress(args.trials)
    try:
        result = search(cfg, space, n_trials=args.trials, sampler=settings["sampler"],
                        pruner=settings["pruner"], workers=args.workers,
                        scheduler=args.scheduler, storage=out / STUDY,
                        study_name=settings.get("study_name", STUDY_NAME), seed=settings["seed"],
                        data_dir=args.data_dir, callbacks=[bar.update])
    finally:
        bar.close()
    save_results(result, out)
    _summary(result, out, space)
    if result.interrupted:
        kept = [t for t in result.study.get_trials(deepcopy=False) if t.number in result.added
                and t.state.name in ("COMPLETE", "PRUNED")]
        print(f"interrupted: {len(kept)} trials of this run finished and are kept; "
              f"continue with: dlscratch search --resume {out} --trials N", file=sys.stderr)
        return 130
    return 0


class _progress:
    """A tqdm bar over trials, with the best validation accuracy so far."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.best = None
        self.bar = tqdm(total=total, unit="trial", file=sys.stderr, disable=None,
                        dynamic_ncols=True)

    def update(self, study, trial) -> None:
        if trial.value is not None and (self.best is None or trial.value > self.best):
            self.best = trial.value
        if self.best is not None:
            self.bar.set_postfix_str(f"best val acc {self.best:.4f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _summary(result, out: Path, space) -> None:
    import collections

    states = collections.Counter(t.user_attrs.get("state", t.state.name.lower())
                                 for t in result.ranked())
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    print(f"study: {sum(states.values())} trials ({counts}) in {out / STUDY}")
    best = result.best_trial
    if best is None:
        print("no trial completed: look at the reasons in trials.csv; a diverging loss "
              "means lower learning rates")
        return
    params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in best.params.items())
    print(f"best: trial {best.number}, val acc {best.value:.4f} ({params})")
    print(f"wrote {out / 'trials.csv'}, {out / 'best.json'} and figures")
    hints = space.edges(best.params)
    for hint in hints:
        print(f"next: {hint}")
    if not hints:
        print("next: the best values lie inside their ranges; narrow the ranges around them "
              "for a finer search")
    print(f"train it: dlscratch train --config {out / 'best.json'}")
