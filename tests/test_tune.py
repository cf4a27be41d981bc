"""nw.tune / netwright tune: the search space and its errors, a real study end to end, pruning,
diverging trials, several workers, resuming after SIGKILL, the command line."""

from __future__ import annotations

import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import netwright as nw
from netwright.errors import ConfigError
from netwright.tuning.space import apply_params, parse_space

pytest.importorskip("optuna")


def _config(tmp_path: Path, tune: dict, **over) -> dict:
    cfg = {"name": "iris", "run_dir": str(tmp_path / "runs"),
           "model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
           "loss": "cross_entropy", "metrics": ["accuracy"],
           "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 2, "batch_size": 16},
           "tune": tune}
    for key, value in over.items():
        cfg[key] = value
    return cfg


def _states(db: Path) -> dict[int, str]:
    with sqlite3.connect(db, timeout=30) as con:
        return dict(con.execute("SELECT number, state FROM trials").fetchall())


# --- the space and its errors -------------------------------------------------------------------


def test_space_parses_every_distribution_and_the_settings(tmp_path):
    space = parse_space(_config(tmp_path, {
        "optimizer.lr": {"log_uniform": [1e-4, 1e-1]},
        "model": {"hidden": {"choice": [[8], [16, 8]]}, "dropout": {"uniform": [0.0, 0.5]}},
        "train.batch_size": {"int": [8, 64], "log": True},
        "train.epochs": {"int": [1, 3]},
        "metric": "accuracy", "pruner": "hyperband", "sampler": "random", "seed": 3}))
    kinds = {p.path: p.kind for p in space.params}
    assert kinds == {"optimizer.lr": "log_uniform", "model.hidden": "choice",
                     "model.dropout": "uniform", "train.batch_size": "int", "train.epochs": "int"}
    assert (space.metric, space.direction, space.pruner["name"], space.sampler, space.seed) == \
        ("val_accuracy", "maximize", "hyperband", "random", 3)
    assert parse_space(_config(tmp_path, {"optimizer.lr": {"uniform": [0.01, 0.1]}})).direction == "minimize"
    assert apply_params({"model": "mlp", "tune": {}}, {"model.hidden": [4]}) == \
        {"model": {"zoo": "mlp", "hidden": [4]}}


@pytest.mark.parametrize("tune, expected", [
    ({"optimiser.lr": {"uniform": [0.1, 0.2]}}, "Did you mean 'optimizer'?"),
    ({"train.batchsize": {"int": [8, 16]}}, "Did you mean 'batch_size'?"),
    ({"model.hiden": {"choice": [[8]]}}, "Did you mean 'hidden'?"),
    ({"optimizer.momentun": {"uniform": [0.1, 0.9]}}, "not an option of optimizer 'adam'"),
    ({"optimizer.lr": {"loguniform": [1e-4, 1e-1]}}, "Did you mean 'log_uniform'?"),
    ({"optimizer.lr": {"log_uniform": [1e-1, 1e-4]}}, "low < high"),
    ({"optimizer.lr": {"log_uniform": [0, 1e-1]}}, "log scale needs low > 0"),
    ({"train.batch_size": {"int": [8.5, 16]}}, "whole bounds"),
    ({"optimizer.lr": {"choice": []}}, "non-empty list"),
    ({"optimizer.lr": 0.1}, "expected a distribution"),
    ({"train.batch_size": {"choice": [16, "big"]}}, "train.batch_size"),  # a type error, at once
    ({"optimizer.lr": {"uniform": [0.1, 0.2]}, "metric": "f1"}, "not logged by this config"),
    ({"optimizer.lr": {"uniform": [0.1, 0.2]}, "pruner": "medain"}, "Did you mean 'median'?"),
])
def test_every_problem_is_a_config_error_before_any_trial(tmp_path, tune, expected):
    with pytest.raises(ConfigError) as info:
        nw.tune(_config(tmp_path, tune), trials=1, verbose=0)
    assert expected in str(info.value)
    assert not (tmp_path / "runs" / "iris-tune" / "trials").exists()


def test_a_config_without_validation_data_is_refused(tmp_path):
    cfg = _config(tmp_path, {"optimizer.lr": {"uniform": [0.01, 0.1]}},
                  data={"source": "iris", "val": 0})
    with pytest.raises(ConfigError, match="validation data"):
        nw.tune(cfg, trials=1, verbose=0)


# --- studies ------------------------------------------------------------------------------------


def test_a_real_study_end_to_end(tmp_path):
    cfg = _config(tmp_path, {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]},
                             "model.hidden": {"choice": [[8], [16, 8]]}, "metric": "accuracy"})
    result = nw.tune(cfg, trials=3, verbose=0)
    tune_dir = tmp_path / "runs" / "iris-tune"
    assert result.tune_dir == tune_dir.resolve() and (tune_dir / "study.db").is_file()
    assert len(result.trials) == 3 and all((tune_dir / "trials" / str(n)).is_dir() for n in range(3))
    assert result.best_value == max(t["value"] for t in result.trials if t["value"] is not None)
    assert set(result.best_params) == {"optimizer.lr", "model.hidden"}
    assert isinstance(result.best_config["model"]["hidden"], list) and "tune" not in result.best_config
    best = nw.load_config(tune_dir / "best.yaml")
    assert best.optimizer.lr == pytest.approx(result.best_params["optimizer.lr"])
    trained = nw.run(tune_dir / "best.yaml", ["train.epochs=1", f"run_dir={tmp_path / 'again'}"],
                     verbose=0)
    assert "val" in trained.scores
    page = (tune_dir / "tune.html").read_text()
    assert page.count("<img") >= 2 and "data:image/png;base64," in page
    text = result.summary()
    assert "COMPLETE" in text and "best.yaml" in text


def test_pruning_and_a_diverging_trial(tmp_path, capsys):
    # SGD at 1e-7 learns nothing (pruned against a trial that learns); at 1e9 it diverges.
    import logging

    cfg = _config(tmp_path, {"optimizer.lr": {"choice": [0.05, 1e-7, 1e9]}, "sampler": "random",
                             "seed": 1, "pruner": {"name": "median", "n_startup_trials": 1}},
                  optimizer={"name": "sgd", "lr": 0.05}, train={"epochs": 3, "batch_size": 16})
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("optuna").addHandler(handler)  # what Optuna's own handler would print
    try:
        result = nw.tune(cfg, trials=5, verbose=1)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    err = capsys.readouterr().err
    # one line a trial, a failed one's with its reason; not Optuna's warning with a traceback
    assert "FAIL" in err and "NonFiniteLossError" in err, err
    assert not [m for m in logged if " failed with " in m], logged
    states = [t["state"] for t in result.trials]
    assert len(states) == 5 and "COMPLETE" in states, states
    pruned = [t for t in result.trials if t["state"] == "PRUNED"]
    failed = [t for t in result.trials if t["state"] == "FAIL"]
    assert pruned and all("pruned at epoch" in t["reason"] for t in pruned), result.trials
    assert failed and all(t["params"]["optimizer.lr"] == 1e9 for t in failed)
    assert all("NonFiniteLossError" in t["reason"] for t in failed), failed
    assert result.best_params["optimizer.lr"] == 0.05


PRUNERS = [("maximize", {"n_startup_trials": 2, "n_warmup_steps": 1}),
           ("minimize", {"n_startup_trials": 1, "interval_steps": 2, "n_min_trials": 3}),
           ("maximize", {"percentile": 25.0, "n_startup_trials": 3})]


@pytest.mark.parametrize("direction, options", PRUNERS)
def test_the_percentile_pruner_decides_as_optunas_own_should_prune(tmp_path, direction, options):
    # PruneOnMetric asks a median/percentile pruner itself (the completed trials read when the
    # trial starts, its own values kept in memory) instead of through Optuna's should_prune(),
    # which reads the study every epoch: the same answers, epoch after epoch (the callback's
    # answer recorded just before Optuna's own is asked on the same stored values).
    import optuna

    from netwright.tuning.search import PruneOnMetric, open_storage

    options = dict(options)
    kind = (optuna.pruners.PercentilePruner if "percentile" in options
            else optuna.pruners.MedianPruner)
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, direction=direction, pruner=kind(**options))
    rng = np.random.default_rng(0)
    answers = []
    for number in range(9):
        trial = study.ask()
        # odd trials: the completed trials handed over as a worker reads them before a trial
        completed = ([t for t in study.get_trials(deepcopy=False)
                      if t.state == optuna.trial.TrialState.COMPLETE] if number % 2 else None)
        pruning = PruneOnMetric(trial, "val_metric", completed)
        asked = []
        pruning.should_prune = lambda value, step, ask=pruning.should_prune: (
            asked.append(ask(value, step)) or False)  # record, never stop: every epoch compared
        start = rng.uniform(0.2, 0.6)
        for step in range(6):
            value = float(start + 0.05 * step + rng.normal(0, 0.05))
            if step == 3 and number == 4:
                value = float("nan")  # not reported, by either
            pruning.on_epoch_end(step, {"val_metric": value, "epoch": step}, None)
            pruning.flush()  # the values kept in memory, stored for Optuna's own answer
            if math.isfinite(value):
                assert asked[-1] == trial.should_prune(), (number, step, options)
                answers.append(asked[-1])
        study.tell(trial, start)
    assert True in answers and False in answers  # both answers were exercised


def test_trials_record_their_own_times_without_the_search(tmp_path):
    cfg = _config(tmp_path, {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}, "pruner": "median"},
                  train={"epochs": 3, "batch_size": 16})
    result = nw.tune(cfg, trials=2, verbose=0)
    for t in result.trials:
        assert 0 < t["fit_seconds"] <= t["run_seconds"] <= t["seconds"], t
        assert t["epoch"] in (1, 2, 3) and Path(t["run_dir"]).is_dir()
    with sqlite3.connect(result.tune_dir / "study.db") as con:  # one attribute a trial, not six
        keys = {k for (k,) in con.execute("SELECT key FROM trial_user_attributes")}
    assert keys == {"netwright"}, keys


def test_every_epochs_value_reaches_the_study_in_one_commit_a_trial(tmp_path):
    # With the median pruner the values are kept in memory and written when the trial ends:
    # each trial's stored values are its run's validation metric epoch by epoch, a pruned
    # trial's value is its last one, and a trial's values cost one commit, not one an epoch.
    import optuna
    import sqlalchemy

    import netwright.tuning.pruning as pruning

    commits: list[int] = []
    real = pruning.write_trial

    def count(_connection):
        commits.append(1)

    calls: list[int] = []

    def counted(trial, values, attrs):
        calls.append(trial.number)
        engine = trial.storage._backend.engine
        sqlalchemy.event.listen(engine, "commit", count)
        try:
            real(trial, values, attrs)
        finally:
            sqlalchemy.event.remove(engine, "commit", count)
        # the values and the trial's record together
        assert len(commits) == 1 and len(values) >= 1 and "netwright" in attrs, (commits, values)
        commits.clear()

    cfg = _config(tmp_path, {"optimizer.lr": {"choice": [0.05, 1e-7]}, "sampler": "random",
                             "seed": 0, "pruner": {"name": "median", "n_startup_trials": 1},
                             "metric": "accuracy"},
                  optimizer={"name": "sgd", "lr": 0.05}, train={"epochs": 4, "batch_size": 16})
    pruning.write_trial = counted
    try:
        result = nw.tune(cfg, trials=4, verbose=0)
    finally:
        pruning.write_trial = real
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    states = set()
    for t in study.get_trials():
        states.add(t.state.name)
        if t.state == optuna.trial.TrialState.PRUNED:  # a stopped run writes no metrics.csv
            epoch = int(t.user_attrs["netwright"]["pruned"].split("epoch ")[1].split()[0])
            assert sorted(t.intermediate_values) == list(range(1, epoch + 1))
            assert t.value == t.intermediate_values[epoch]
            continue
        with open(Path(t.user_attrs["netwright"]["run_dir"]) / "metrics.csv") as f:
            expected = {int(row["epoch"]): float(row["val_accuracy"]) for row in csv.DictReader(f)}
        assert len(expected) == 4 and t.intermediate_values == pytest.approx(expected), t.number
    assert {"COMPLETE", "PRUNED"} <= states, states
    assert sorted(calls) == list(range(4))  # each trial's values in one write, none per epoch


def test_values_kept_in_memory_are_reported_one_by_one_to_other_storages():
    import optuna

    from netwright.tuning.search import PruneOnMetric

    study = optuna.create_study(direction="maximize")  # in memory: no RDB session to batch in
    trial = study.ask()
    pruning = PruneOnMetric(trial, "val_accuracy")
    for step, value in enumerate([0.5, 0.6, float("nan"), 0.7]):
        pruning.on_epoch_end(step, {"val_accuracy": value, "epoch": step}, None)
    assert study.trials[0].intermediate_values == {}  # not yet written
    pruning.on_fit_end([], None)
    assert study.trials[0].intermediate_values == {0: 0.5, 1: 0.6, 3: 0.7}
    study.tell(trial, 0.7)
    # a pruned trial's values are written before the callback stops the fit (Optuna then gives
    # the trial its last one), also when the callback is used in an objective of one's own
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=1)
    trial = study.ask()
    pruning = PruneOnMetric(trial, "val_accuracy")
    pruning.on_epoch_end(0, {"val_accuracy": 0.55, "epoch": 0}, None)
    with pytest.raises(optuna.TrialPruned):
        pruning.on_epoch_end(1, {"val_accuracy": 0.1, "epoch": 1}, None)
    assert study.trials[1].intermediate_values == {0: 0.55, 1: 0.1}


def test_prune_on_metric_in_an_objective_of_ones_own(tmp_path, blobs):
    # The callback as docs/tuning.md shows it, with nw.fit in a user's objective on a SQLite
    # study: each trial's stored values are its fit's val_accuracy epoch by epoch.
    import optuna

    from netwright.tuning.pruning import PruneOnMetric

    X, y = blobs
    histories = {}

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        result = nw.fit(torch.nn.Linear(2, 3), (X, y), loss="cross_entropy", lr=lr, epochs=4,
                        val=0.2, metrics=["accuracy"], verbose=0,
                        callbacks=[PruneOnMetric(trial, "val_accuracy")])
        histories[trial.number] = {r["epoch"]: r["val_accuracy"] for r in result.history}
        return result.history[-1]["val_accuracy"]

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'own.db'}", direction="maximize",
                                pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=2)
    for t in study.get_trials():
        assert t.state.name == "COMPLETE"
        assert t.intermediate_values == pytest.approx(histories[t.number]), t.number


def test_two_workers_share_the_study(tmp_path):
    cfg = _config(tmp_path, {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}},
                  train={"epochs": 3, "batch_size": 4})
    result = nw.tune(cfg, trials=4, jobs=2, verbose=0)
    finished = [t for t in result.trials if t["state"] in ("COMPLETE", "PRUNED", "FAIL")]
    assert len(finished) >= 4
    assert len({t["worker_pid"] for t in result.trials}) == 2
    assert os.getpid() not in {t["worker_pid"] for t in result.trials}


def test_a_crashed_worker_s_trial_is_failed_and_the_other_worker_finishes(tmp_path, monkeypatch):
    # One of two workers dies in a trial (os._exit in the model's forward, the first time only,
    # as a segfault or the out-of-memory killer would end it) and takes no part in closing its
    # trial. The other worker must not wait for that trial forever: the tune reaps the dead
    # worker at once (a zombie still shows its pid and start time), the survivor fails the
    # trial with why and completes the study, and the tune then reports the crash.
    import optuna

    marker = tmp_path / "crashed-once"
    (tmp_path / "crashmod.py").write_text(
        "import os\nimport torch.nn as nn\n\n\nclass Crash(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.l = nn.Linear(4, 3)\n\n"
        "    def forward(self, x):\n        try:\n"
        f"            os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL))\n"
        "        except FileExistsError:\n            return self.l(x)\n        os._exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers start with this sys.path
    cfg = _config(tmp_path, {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}, "pruner": "none"},
                  model={"class": "crashmod:Crash"})
    with pytest.raises(nw.NetwrightError, match=r"worker \d \(exit code 3\) stopped.*continue"):
        nw.tune(cfg, trials=3, jobs=2, trust_code=True, verbose=0, timeout=120)
    db = tmp_path / "runs" / "iris-tune" / "study.db"
    trials = optuna.load_study(study_name="iris", storage=f"sqlite:///{db}").get_trials()
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"], states
    (failed,) = [t for t in trials if t.state.name == "FAIL"]
    assert "worker process ended" in failed.user_attrs["error"]
    # failed by the surviving worker within seconds, not by the tune at its 120 s timeout
    assert (failed.datetime_complete - failed.datetime_start).total_seconds() < 60


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_worker_is_known_by_its_start_time_and_an_ended_one_is_dead():
    from netwright.tuning import search

    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # runs until its input closes
    identity = search._process(child.pid)
    state, same, ticks = search._proc_stat(child.pid)
    assert identity == same and state in "RSD"
    # the start time /proc gives, read independently of the pid: when it was started
    assert before - 2 <= search._started(ticks) <= time.time() + 2
    assert search._alive(child.pid, identity)
    assert search._alive(child.pid, None, since=before + 60)  # started before its trial
    assert not search._alive(child.pid, None, since=before - 60)  # took the pid afterwards
    child.stdin.close()
    deadline = time.time() + 10
    while search._proc_stat(child.pid)[0] != "Z" and time.time() < deadline:
        time.sleep(0.02)  # ended, not yet reaped: a zombie still has its pid and start time
    assert search._process(child.pid) == identity
    assert not search._alive(child.pid, identity) and not search._alive(child.pid)
    child.wait()
    assert not search._alive(child.pid, identity) and not search._alive(child.pid)


def test_a_write_that_conflicts_writes_nothing_and_keeps_the_values(tmp_path):
    # A step stored that the trial's own view lacks: the one transaction fails as a whole, with
    # an error (not a silently dropped write), and the callback keeps its values.
    import optuna

    from netwright.tuning.pruning import PruneOnMetric, write_trial
    from netwright.tuning.search import open_storage

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    trial = study.ask()
    study._storage.set_trial_intermediate_value(trial._trial_id, 1, 0.4)  # behind its back
    with pytest.raises(Exception):
        write_trial(trial, {1: 0.5, 2: 0.6}, {"error": "why"})
    (stored,) = study.get_trials()
    assert stored.intermediate_values == {1: 0.4} and "error" not in stored.user_attrs
    pruning = PruneOnMetric(trial, "val_metric", hold=True)
    pruning.on_epoch_end(0, {"val_metric": 0.5, "epoch": 1}, None)
    with pytest.raises(Exception):
        pruning.flush({"netwright": {}})
    assert pruning._unwritten == {1: 0.5}


def test_a_killed_tune_continues_where_it_stopped(tmp_path):
    cfg = _config(tmp_path, {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}, "pruner": "none"},
                  train={"epochs": 12, "batch_size": 4})
    path = tmp_path / "iris.yaml"
    path.write_text(yaml.safe_dump(cfg))
    db = tmp_path / "runs" / "iris-tune" / "study.db"
    command = [sys.executable, "-m", "netwright", "tune", str(path), "--trials", "3", "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    states: dict = {}
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                states = _states(db) if db.exists() else {}
            except sqlite3.OperationalError:
                continue  # the tables are not made yet, or the file is locked
            if "COMPLETE" in states.values() and "RUNNING" in states.values():
                break
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    complete = {n for n, s in states.items() if s == "COMPLETE"}
    running = {n for n, s in states.items() if s == "RUNNING"}
    assert complete and len(running) == 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    after = _states(db)
    assert {n for n, s in after.items() if s == "COMPLETE"} >= complete
    assert all(after[n] == "FAIL" for n in running)
    assert sum(s in ("COMPLETE", "PRUNED", "FAIL") for s in after.values()) == 3
    assert "RUNNING" not in after.values()


def test_a_trial_killed_before_its_worker_recorded_itself_fails_after_the_grace_period(
        tmp_path, monkeypatch):
    # Optuna creates a trial RUNNING; a worker killed before its first write (and heartbeat)
    # leaves a trial no heartbeat check fails: without this, a resumed search waited forever.
    import optuna

    from netwright.tuning import search

    storage = search.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    orphan = study.ask()  # RUNNING, no worker recorded
    assert search._fail_interrupted(study, storage) == 0  # young: its worker may be writing
    monkeypatch.setattr(search, "GRACE_S", 0)
    assert search._fail_interrupted(study, storage) == 1
    (trial,) = study.get_trials()
    assert trial.number == orphan.number and trial.state.name == "FAIL"
    assert "before it recorded itself" in trial.user_attrs["error"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_trial_whose_worker_pid_now_names_another_process_fails(tmp_path):
    # A SQLite study has no heartbeats: its trials' workers are this machine's processes, known
    # by pid and start time. A pid that a new process took (after the worker was killed, or a
    # reboot) must not keep the worker's trial RUNNING forever; a live worker's trial is kept.
    import socket

    import optuna

    from netwright.tuning import search

    storage = search.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert storage.get_heartbeat_interval() is None  # no heartbeat thread, no writes
    study = optuna.create_study(storage=storage, study_name="s")
    me = {"worker_pid": os.getpid(), "host": socket.gethostname()}
    live, reused, old = study.ask(), study.ask(), study.ask()
    live.set_user_attr("netwright", {**me, "worker_process": search._process(os.getpid())})
    reused.set_user_attr("netwright", {**me, "worker_process": "another-boot/12345"})
    old.set_user_attr("netwright", me)  # recorded before process identities: the pid alone
    assert search._fail_interrupted(study, storage) == 1
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {live.number: "RUNNING", reused.number: "FAIL", old.number: "RUNNING"}
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # runs until its input closes
    identity = search._process(child.pid)
    assert search._alive(child.pid, identity)
    child.communicate()
    assert identity is not None and not search._alive(child.pid, identity)
    assert search._alive(os.getpid(), search._process(os.getpid()))


def test_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from netwright.cli import app

    path = tmp_path / "iris.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}})))
    out = CliRunner().invoke(app, ["tune", str(path), "--trials", "2", "-q"])
    assert out.exit_code == 0, out.output
    assert "COMPLETE" in out.output and "best.yaml" in out.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_config(tmp_path, {"optimizer.lr": {"loguniform": [1e-3, 1]}})))
    out = CliRunner().invoke(app, ["tune", str(bad), "--trials", "2"])
    assert out.exit_code != 0 and "log_uniform" in out.output
