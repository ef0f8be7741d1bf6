"""Trials on real Dask clusters: an embedded LocalCluster, a cluster started with Dask's own
``dask scheduler`` / ``dask worker`` commands, and a worker killed in the middle of a trial."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from dlscratch import hpo
from dlscratch.config import RunConfig
from shared_data import needs_mnist

pytestmark = needs_mnist

TINY = {"optimizer": "sgd", "hidden": [20], "limit": 600, "val_split": 0.2, "epochs": 1,
        "batch_size": 50}
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_cluster_of_two_processes_runs_the_same_trials_as_one_process(tmp_path):
    cfg = RunConfig.from_dict(TINY)
    space = ["lr=1e-3:1:log", "weight_decay=1e-8:1e-4:log"]
    kw = dict(sampler="random", pruner="none", seed=7, n_trials=4)
    here = hpo.search(cfg, space, workers=0, **kw)
    dask = hpo.search(cfg, space, workers=2, storage=tmp_path / "study.log", **kw)
    assert all(t.state.name == "COMPLETE" for t in dask.study.trials)

    def key(t):
        return t.params["lr"]

    # The random sampler draws per trial: the same trials, maybe finished in another order.
    assert [(t.params, t.value) for t in sorted(here.study.trials, key=key)] == [
        (t.params, t.value) for t in sorted(dask.study.trials, key=key)]
    assert (tmp_path / "study.log").stat().st_size > 0


def test_one_dask_worker_gives_the_same_bayesian_trials_as_this_process(tmp_path):
    cfg = RunConfig.from_dict({**TINY, "limit": 300})
    kw = dict(sampler="tpe", pruner="none", seed=3, n_trials=12)  # TPE from trial 11 on
    here = hpo.search(cfg, None, workers=0, **kw)
    dask = hpo.search(cfg, None, workers=1, storage=tmp_path / "study.log", **kw)
    assert [(t.number, t.params, t.value) for t in dask.study.trials] == [
        (t.number, t.params, t.value) for t in here.study.trials]
    assert dask.added == list(range(12))


@pytest.mark.slow
def test_worker_killed_mid_trial_fails_that_trial_and_the_search_finishes(tmp_path):
    from distributed import Client, LocalCluster

    cfg = RunConfig.from_dict({**TINY, "limit": 3000, "epochs": 4, "hidden": [100]})
    store = tmp_path / "study.log"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        box = {}

        def run():
            box["result"] = hpo.search(cfg, ["lr=1e-2:1e-1:log"], n_trials=3, sampler="random",
                                       pruner="none", seed=0, storage=store,
                                       scheduler=cluster.scheduler_address, workers=2)

        thread = threading.Thread(target=run)
        thread.start()
        killed = None
        deadline = time.monotonic() + 60
        while killed is None and time.monotonic() < deadline and thread.is_alive():
            running = []
            if store.exists():
                try:  # the journal file exists a moment before the study is written into it
                    running = optuna.load_study(
                        study_name="dlscratch",
                        storage=optuna.storages.JournalStorage(
                            optuna.storages.journal.JournalFileBackend(str(store))),
                    ).get_trials(states=(optuna.trial.TrialState.RUNNING,))
                except KeyError:
                    pass
            if running and "worker" in running[0].user_attrs:
                killed = int(running[0].user_attrs["worker"].rsplit(":", 1)[1])
                assert killed in pids.values()
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        thread.join(timeout=120)
        assert killed is not None and not thread.is_alive()
        loads = client.run(lambda: hpo.LOADS["count"])  # MNIST once per worker, not per trial
        assert max(loads.values()) == 1  # (a restarted worker may have had no trial yet)
    trials = box["result"].study.trials
    lost = [t for t in trials if t.state.name == "FAIL"]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert lost and all(t.user_attrs["state"] == "lost" for t in lost)
    assert all("worker stopped" in t.user_attrs["reason"] for t in lost)
    assert len(done) == 3  # the lost trial's slot was retried; no finished trial lost
    assert not [t for t in trials if t.state.name == "RUNNING"]


@pytest.mark.slow
def test_cli_search_on_a_cluster_started_with_dask_commands(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nthreads", "1", "--no-dashboard",
                 "--host", "127.0.0.1"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "run"
        done = subprocess.run(
            [sys.executable, "-m", "dlscratch.cli", "search", "--scheduler", address,
             "--out", str(out), "--trials", "3", "--sampler", "random", "--pruner", "none",
             *[f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, list) else v}"
               for k, v in TINY.items()]],
            env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Dask scheduler" in done.stdout and "2 workers" in done.stdout
        rows = (out / "trials.csv").read_text().splitlines()
        assert len(rows) == 4 and all(",complete," in r for r in rows[1:])
        assert (out / "best.json").exists()
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait(timeout=30)
