"""``nw.tune`` / ``netwright tune``: a resumable Optuna search over a config's ``tune:`` section.

Every trial is an ordinary run (:func:`netwright.runner.run`) with a run directory under
``<run_dir>/<name>-tune/trials/<number>``; the study lives in a database (SQLite in the tune
directory by default, or any RDB URL shared by several machines), so the same command continues
an interrupted search: finished trials are kept, a trial whose worker died is marked FAIL (at
once when its process is gone from this machine, else when its heartbeat goes stale), and the
study is run until it holds the asked number of finished trials. Optuna is imported only here,
inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..config import RunConfig, apply_overrides, config_to_dict, load_config, read_yaml_file
from ..errors import ConfigError, NetwrightError
from .pruning import PruneOnMetric
from .space import Space, apply_params, parse_space
from .tune_report import TuneResult, trial_info, trial_rows, write_html

__all__ = ["tune", "TuneResult", "PruneOnMetric", "open_storage"]

HEARTBEAT_S = 5  # a running trial's worker writes a heartbeat this often ...
GRACE_S = 30  # ... and a trial without one for this long is failed by the next worker
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def tune(config: str | os.PathLike | Mapping | RunConfig, overrides: Sequence[str] = (), *,
         trials: int = 20, jobs: int = 1, timeout: float | None = None,
         storage: str | None = None, trust_code: bool = False, verbose: int = 1) -> TuneResult:
    """Search the hyperparameters of ``config``'s ``tune:`` section with Optuna.

    The search runs until the study holds ``trials`` finished trials (complete, pruned or
    failed; those of an earlier, interrupted search count) or ``timeout`` seconds have passed,
    in ``jobs`` worker processes on the same study. It writes ``best.yaml`` (the config with the
    best parameters, ready for ``netwright train``), ``tune.html`` and ``study.db`` (unless
    ``storage`` names another database) in ``<run_dir>/<name>-tune``. Every problem with the
    space or the config is a :class:`ConfigError` before the first trial starts.
    """
    for name, value in (("trials", trials), ("jobs", jobs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"tune: {name} expects a whole number >= 1, received {value!r}.")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"tune: timeout expects a number of seconds > 0, received {timeout!r}.")
    raw, where = _raw_config(config, overrides)
    # Read from a file, the messages name the file.
    cfg = load_config(raw) if where == "config" else load_config(config, overrides)
    space = parse_space(raw, f"{where}: tune" if where != "config" else "tune")
    _pruner(space)  # its options checked now, before any trial
    if not cfg.data.val:
        raise ConfigError(f"{where}: data.val is 0: a search compares trials on validation data. "
                          f"Fix: hold some out, e.g. data.val: 0.1.")
    if not trust_code:
        from ..runner import check_model_classes  # refused now, not in every trial

        check_model_classes(raw.get("model"), where)
    tune_dir = (Path(cfg.run_dir) / f"{cfg.name}-tune").resolve()
    tune_dir.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{tune_dir / 'study.db'}"
    base = {k: v for k, v in raw.items() if k != "tune"}
    started = time.perf_counter()
    study, storage_opened = _open_study(url, cfg.name, space, verbose)
    job = {"raw": base, "space": space, "url": url, "study": cfg.name, "trials": trials,
           "deadline": None if timeout is None else time.time() + timeout,
           "trust_code": trust_code, "verbose": verbose, "tune_dir": str(tune_dir),
           "parent": os.getpid()}
    crashed = []
    if jobs == 1:
        work(job, 0, storage_opened)  # in this process: the storage opened above
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=work, args=(job, k), name=f"netwright-tune-{k}")
                 for k in range(jobs)]
        for p in procs:
            p.start()
        try:
            _join_as_they_end(procs)
        finally:
            # Interrupted (Ctrl-C reaches the workers too): they record their trials first.
            deadline = time.monotonic() + 5.0
            for p in procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.terminate()
                    p.join()
            # the trial a crashed or stopped worker ran: FAIL with why, not left RUNNING (if
            # the database cannot be reached now, the next start of the search does it)
            if any(p.exitcode for p in procs):
                with contextlib.suppress(Exception):
                    _fail_interrupted(study, storage_opened)
        crashed = [f"worker {k} (exit code {p.exitcode})" for k, p in enumerate(procs) if p.exitcode]
    result = _finish(study, space, base, tune_dir, url, time.perf_counter() - started)
    if crashed:
        raise NetwrightError(f"tune: {', '.join(crashed)} stopped with an error (printed above); "
                             f"the study keeps its trials. Fix the cause and run the same command "
                             f"to continue.")
    return result


def _join_as_they_end(procs: list) -> None:
    """Wait for the worker processes, reaping each as it ends: an ended worker that is not
    reaped stays a zombie, which /proc still shows with its pid and start time, and the other
    workers would wait for its trial."""
    from multiprocessing.connection import wait

    pending = list(procs)
    while pending:
        wait([p.sentinel for p in pending])
        for p in [p for p in pending if not p.is_alive()]:
            p.join()
            pending.remove(p)


def _raw_config(config: Any, overrides: Sequence[str]) -> tuple[dict, str]:
    if isinstance(config, RunConfig):
        raw, where = config_to_dict(config), "config"
    elif isinstance(config, Mapping):
        raw, where = dict(config), "config"
    else:
        path = Path(config)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {where!r} does not exist. Fix: check the path.")
        raw = read_yaml_file(path) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {where!r}: expected a mapping at the top.")
    return apply_overrides(raw, overrides), where


# --- the study ----------------------------------------------------------------------------------


def open_storage(url: str) -> Any:
    """Optuna's RDB storage for ``url``. A database server (shared by several machines) gets
    Optuna's heartbeats: a running trial's worker writes one every ``HEARTBEAT_S`` seconds, and
    a trial without one for ``GRACE_S`` is failed by the next worker. A SQLite file (one
    machine's: SQLite's locks do not hold across network file systems) gets none: its trials'
    workers are this machine's processes, checked directly (:func:`_alive`), which saves each
    trial the heartbeat thread's writes (5.5 ms a trial, measured); and a lock timeout, so that
    several processes can share the file."""
    import optuna

    _quiet_optuna()
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 60}} if sqlite else {}
    # A database file that does not exist yet is made by Optuna at its own schema version (and
    # stamped so): checking that version again reads its 30 migration scripts once more (50 ms).
    new_file = False
    if url.startswith("sqlite"):
        import sqlalchemy

        database = sqlalchemy.engine.make_url(url).database
        new_file = bool(database) and database != ":memory:" and not Path(database).exists()
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                             skip_compatibility_check=new_file,
                                             heartbeat_interval=None if sqlite else HEARTBEAT_S,
                                             grace_period=None if sqlite else GRACE_S)
        if sqlite:
            _sqlite_wal(storage)
        return storage
    except Exception as exc:  # noqa: BLE001 - a bad URL or an unreachable server, said plainly
        raise ConfigError(f"tune: cannot open the study storage {url!r}: {type(exc).__name__}: "
                          f"{exc}. Fix: check --storage (e.g. postgresql://user@host/db; its "
                          f"driver must be installed).") from None


def _sqlite_wal(storage: Any) -> None:
    """SQLite in write-ahead-log mode with synchronous=NORMAL: each epoch's report commits
    without waiting for the disk twice (61 against 111 ms per 12-epoch trial, measured). A
    killed process loses nothing committed; only a power cut may lose the last commits. Several
    processes on one machine share a WAL database as they share a plain one."""
    import sqlalchemy

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # the connections opened so far reconnect with the pragmas


def _quiet_optuna() -> None:
    """Optuna's INFO lines and its 'experimental feature' warnings (heartbeats) off: the
    search prints its own one line per trial."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class _FailedTrialLines(logging.Filter):
    """Drops Optuna's 'Trial N failed with ...' records, a traceback with each, while a worker
    runs its trials: the search prints its own line a trial, a failed one's with its reason
    (kept in the study too: ``user_attrs['error']``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trial ") or " failed with " not in str(record.msg)


def _space_key(space: Space) -> list:
    return [[p.path, p.kind, p.low, p.high, p.log, p.step, [repr(c) for c in p.choices]]
            for p in space.params]


def _open_study(url: str, name: str, space: Space, verbose: int) -> tuple[Any, Any]:
    """Create (or load) the study; an existing one must search the same space and metric. Its
    trials left RUNNING by a process of this machine that is gone are marked FAIL now.
    Returns the study and its storage."""
    import optuna

    _quiet_optuna()
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=name, direction=space.direction,
                                load_if_exists=True)
    before = study.user_attrs.get("space")
    now = {"params": _space_key(space), "metric": space.metric, "direction": space.direction}
    if before is None:
        study.set_user_attr("space", now)
    elif before != now:
        raise ConfigError(f"tune: the study {name!r} in {url} searched another space or metric "
                          f"({before.get('metric')}, {[p[0] for p in before.get('params', [])]}); "
                          f"its trials cannot be compared with this one's. Fix: give the config "
                          f"another name, or delete the old study (its tune directory).")
    failed = _fail_interrupted(study, storage)
    optuna.storages.fail_stale_trials(study)
    if verbose:
        counts = _counts(study)
        done = sum(counts.get(s, 0) for s in _FINISHED)
        note = f"; {failed} interrupted trial(s) marked FAIL" if failed else ""
        print(f"tune: study {name!r} in {url}: {done} finished trial(s) kept{note}",
              file=sys.stderr)
    return study, storage


def _proc_stat(pid: int) -> tuple[str, str, int] | None:
    """Process ``pid`` as Linux's /proc shows it: its state (``Z``: ended, not yet reaped), its
    identity (the boot and its start time, which a pid reused after the process ended, or after
    a reboot, does not share) and its start time in clock ticks since the boot. None where
    /proc does not show it (no such process, a hidden one, or no /proc)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        # the name, in parentheses, may hold anything: the fields are read after its last ')'
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # stat's 22nd field, starttime (the 3rd, state, follows the name)
        return fields[0].decode("ascii", "replace"), f"{boot}/{ticks}", ticks
    except (OSError, IndexError, ValueError):
        return None


def _process(pid: int) -> str | None:
    """The identity of process ``pid`` on this machine (:func:`_proc_stat`), or None."""
    stat = _proc_stat(pid)
    return None if stat is None else stat[1]


def _started(ticks: int) -> float | None:
    """The time (seconds since the epoch) a process started ``ticks`` clock ticks after the
    boot; to the second (the boot time /proc gives is whole seconds)."""
    try:
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return None


def _alive(pid: Any, process: Any = None, since: float | None = None) -> bool:
    """Whether the worker ``pid`` of this machine still runs. ``process``: what
    :func:`_process` said of it when it started; records without it (before 2026-11-30) give
    ``since``, when its trial started: a process that took the pid later is not the worker."""
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown: leave it to the heartbeat
    stat = _proc_stat(pid)
    if stat is not None:
        state, identity, ticks = stat
        if state in ("Z", "X"):
            return False  # ended; its parent has not reaped it yet
        if isinstance(process, str):
            return identity == process
        started = _started(ticks) if since is not None else None
        # 2 s: the boot time is whole seconds, and the worker started before its trial
        return started is None or started <= since + 2.0
    try:  # gone, or hidden from this user's /proc (hidepid, another pid namespace)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_interrupted(study: Any, storage: Any) -> int:
    """Trials RUNNING in a process of this machine that no longer exists: FAIL, with why; and
    trials whose worker never recorded itself (killed in the milliseconds between Optuna
    creating the trial and netwright's first write, before any heartbeat: a trial no heartbeat
    check would ever fail) once they are older than the grace period. (Those of other
    machines, in a server database, fail when their heartbeat is older than the grace period.)"""
    import datetime

    from optuna.trial import TrialState

    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = t.user_attrs
        worker_host, pid = trial_info(attrs, "host"), trial_info(attrs, "worker_pid")
        if worker_host is None and pid is None:
            age = (datetime.datetime.now() - t.datetime_start).total_seconds() \
                if t.datetime_start is not None else math.inf
            if age < GRACE_S:
                continue  # a worker may be about to record itself
            why = "interrupted: its worker stopped (killed?) before it recorded itself"
        elif worker_host == host and not _alive(pid, trial_info(attrs, "worker_process"),
                                                t.datetime_start.timestamp()
                                                if t.datetime_start is not None else None):
            why = "interrupted: its worker process ended (killed?) while the trial ran"
        else:
            continue
        trial_id = t._trial_id  # Optuna's storage key for the trial
        try:
            storage.set_trial_user_attr(trial_id, "error", why)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            n += 1
        except Exception:  # noqa: BLE001 - another process finished it first
            continue
    return n


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _sampler(space: Space, seed: int) -> Any:
    import optuna

    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(space: Space) -> Any:
    import optuna

    options = {k: v for k, v in space.pruner.items() if k != "name"}
    try:
        if space.pruner["name"] == "median":
            return optuna.pruners.MedianPruner(**options)
        if space.pruner["name"] == "hyperband":
            return optuna.pruners.HyperbandPruner(**options)
        return optuna.pruners.NopPruner(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tune.pruner: {str(exc).rstrip('.')}. Fix: use the pruner's own options (median: "
                          f"n_startup_trials, n_warmup_steps; hyperband: min_resource, "
                          f"reduction_factor).") from None


# --- a worker -----------------------------------------------------------------------------------


class _Objective:
    def __init__(self, job: dict):
        self.job, self.space = job, job["space"]
        self.completed: list | None = None  # the study's completed trials, read by the worker
        self.process = _process(os.getpid())  # which process runs the trials

    def __call__(self, trial: Any) -> float:
        import optuna

        from ..runner import run

        job, space = self.job, self.space
        # Who runs it, written first: a resumed search fails the trials of dead workers.
        trials_dir = Path(job["tune_dir"]) / "trials"
        info = {"worker_pid": os.getpid(), "worker_process": self.process,
                "host": socket.gethostname(), "run_dir": str(trials_dir / str(trial.number))}
        trial.set_user_attr("netwright", info)
        params = {p.path: p.suggest(trial) for p in space.params}
        raw = apply_params(job["raw"], params)
        raw["run_dir"], raw["name"] = str(trials_dir), str(trial.number)
        # The epochs' values held to the end: with the trial's record, one commit.
        pruning = PruneOnMetric(trial, space.metric, self.completed, hold=True)
        self.completed = None  # read again before the next trial
        started = time.perf_counter()

        def record(error: str | None = None, **more: Any) -> None:  # the trial's own times
            run_seconds = time.perf_counter() - started - pruning.search_seconds
            attrs = {"netwright": {**info, "fit_seconds": round(pruning.seconds, 4),
                                   "run_seconds": round(run_seconds, 4), **more}}
            if error is not None:
                attrs["error"] = error
            pruning.flush(attrs)  # before Optuna closes the trial (a pruned one: its last value)

        try:
            # A trial's report.html (a second of plots each) is left out: tune.html shows the
            # trials, and `netwright report RUN_DIR` draws any trial's report from its files.
            result = run(raw, verbose=0, trust_code=job["trust_code"], callbacks=[pruning],
                         report=False)
        except optuna.TrialPruned:
            record(pruned=pruning.pruned)
            raise
        except NetwrightError as exc:
            record(f"{type(exc).__name__}: {str(exc)[:600]}")
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory at a searched batch size:
            # that trial fails with its reason, the search goes on (KeyboardInterrupt stops it).
            record(f"{type(exc).__name__}: {str(exc)[:600]}")
            raise NetwrightError(f"trial {trial.number}: {type(exc).__name__}: {exc}") from exc
        except KeyboardInterrupt:
            record("KeyboardInterrupt: the search was interrupted while the trial ran")
            raise
        fit = result.fit
        row = next((r for r in fit.history if r.get("epoch") == fit.weights_epoch), fit.final)
        value = row.get(space.metric)
        info["run_dir"] = str(result.run_dir)  # as numbered by the run
        why = None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            why = f"{space.metric} at epoch {row.get('epoch')} is {value!r}"
        record(why, epoch=row.get("epoch"))
        if why is not None:
            raise NetwrightError(f"trial {trial.number}: {why}")
        return float(value)


def _progress(verbose: int) -> Any:
    def report(study: Any, trial: Any) -> None:
        if not verbose:
            return
        value = "" if trial.value is None or trial.state.name != "COMPLETE" else f" {study.user_attrs['space']['metric']}={trial.value:.4g}"
        took = trial.duration.total_seconds() if trial.duration else 0.0
        why = trial.user_attrs.get("error") or trial_info(trial.user_attrs, "pruned") or ""
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        print(f"trial {trial.number} {trial.state.name}{value} in {took:.1f}s  {params}"
              f"{'  (' + why.splitlines()[0][:120] + ')' if why else ''}", file=sys.stderr)

    return report


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def work(job: dict, index: int, storage: Any = None) -> None:
    """One worker: trials on the shared study until it holds ``job['trials']`` finished ones,
    the deadline passes, or the process that started it is gone. Run in the caller's process
    (one job) or in a spawned one per job."""
    import optuna

    _quiet_optuna()
    storage = storage if storage is not None else open_storage(job["url"])
    space: Space = job["space"]
    probe = optuna.load_study(study_name=job["study"], storage=storage)
    # A seed per worker and per start: a resumed search does not repeat its first trials.
    seed = space.seed + 1009 * index + len(probe.get_trials(deepcopy=False))
    study = optuna.load_study(study_name=job["study"], storage=storage,
                              sampler=_sampler(space, seed), pruner=_pruner(space))
    objective, callbacks = _Objective(job), [_progress(job["verbose"])]
    lines = logging.getLogger("optuna.study._optimize")  # where study.optimize logs a trial
    quiet = _FailedTrialLines()
    lines.addFilter(quiet)
    try:
        _trials(job, study, storage, objective, callbacks)
    finally:
        lines.removeFilter(quiet)


def _trials(job: dict, study: Any, storage: Any, objective: Any, callbacks: list) -> None:
    """The worker's loop: a trial at a time until the study is done or the worker must stop."""
    import optuna
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    while True:
        if job["deadline"] is not None and time.time() >= job["deadline"]:
            return
        if job["parent"] != os.getpid() and os.getppid() != job["parent"]:
            return  # the tune command that started this worker was killed
        trials = study.get_trials(deepcopy=False)  # one read of the study: counts, pruner
        states = [t.state for t in trials]
        objective.completed = [t for t in trials if t.state == TrialState.COMPLETE]
        done = sum(state in finished for state in states)
        running = states.count(TrialState.RUNNING)
        if done >= job["trials"]:
            return
        if done + running >= job["trials"]:  # the last trials are another worker's: wait
            time.sleep(1.0)
            optuna.storages.fail_stale_trials(study)
            _fail_interrupted(study, storage)
            continue
        study.optimize(objective, n_trials=1, catch=(NetwrightError,), callbacks=callbacks,
                       gc_after_trial=False, show_progress_bar=False)


# --- results ------------------------------------------------------------------------------------


def _finish(study: Any, space: Space, base: dict, tune_dir: Path, url: str,
            seconds: float) -> TuneResult:
    import yaml
    from optuna.trial import TrialState

    rows = trial_rows(study, space)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    best_params: dict = {}
    best_value = best_config = best_number = None
    if complete:
        best = study.best_trial
        best_params = space.decode(best.params)
        best_value, best_number = best.value, best.number
        best_config = apply_params(base, best_params)
        atomic_write_text(tune_dir / "best.yaml", f"# netwright tune: trial {best.number} of study "
                          f"{study.study_name!r}, {space.metric} {best.value:.6g}\n"
                          + yaml.safe_dump(best_config, sort_keys=False))
    result = TuneResult(tune_dir=tune_dir, study_name=study.study_name, storage=url,
                        metric=space.metric, direction=space.direction, best_params=best_params,
                        best_value=best_value, best_config=best_config, best_trial=best_number,
                        trials=rows, seconds=seconds)
    result.html = write_html(study, space, result)
    return result
