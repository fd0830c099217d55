"""Hyperparameter sweeps with Optuna: a TOML space of TrainConfig fields, TPE, pruning, resumable.

The objective is the validation accuracy at the last epoch (the test set never tunes anything);
every epoch's validation accuracy is reported so the pruner (median or Hyperband) stops weak
trials early. The study lives in a storage that several workers share: Optuna's journal file
in the sweep folder by default (safe for processes on one machine), or a database URL
(`postgresql://...`) for workers on several machines. Running the same command again continues
the study until it holds `trials` finished (complete or pruned) trials; trials whose worker died
are marked failed first, so they never block it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, FashionbenchError
from ..track import log_group_result, tracked_group
from .parallel import check_jobs, spawn_pool
from .sweep_report import BEST_CONFIG, PLOTS, TRIALS_CSV, TRIALS_MD, format_sweep, write_outputs
from .sweep_space import Param, check_base, load_space, parse_space, trial_config

log = logging.getLogger("fashionbench.sweep")

JOURNAL = "journal.log"
PRUNERS = ("median", "hyperband", "none")
WORKER_ATTR = "worker"  # host:pid of the process running a trial, to find trials whose worker died
HEARTBEAT_SECONDS = 60  # database storages: a trial without a heartbeat for 2 minutes is failed


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("fashionbench sweep needs Optuna; install it with pip install 'fashionbench[sweep]'") \
            from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(storage: str | None, out_dir: Path):
    """Optuna's journal file in the sweep folder, or a database URL (postgresql://, sqlite:///...)."""
    optuna = _optuna()
    if storage is None or storage.startswith("journal:"):
        path = Path(storage[len("journal:"):]) if storage else out_dir / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        # the open(O_EXCL) lock works on every file system (symlink locks do not on some)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return optuna.storages.JournalStorage(backend)
    url = storage
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError("--storage postgresql:// needs psycopg; install it with pip install "
                              "'fashionbench[postgres]'") from None
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=2 * HEARTBEAT_SECONDS,
                                          engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # SQLAlchemy's errors: a bad URL, an unreachable server, a missing driver
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ConfigError(f"--storage {storage}: cannot open it ({first}); check the URL, that the server runs "
                          "and that the database exists") from None


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool | None:
    """Whether the process behind host:pid runs; None when it is on another host (the heartbeat decides)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study) -> list[int]:
    """Mark RUNNING trials whose worker process on this host is gone as FAIL (what a heartbeat does
    for a database storage; a journal file has none)."""
    optuna = _optuna()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER_ATTR)
        if worker and _alive(worker) is False:
            try:
                study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
                failed.append(t.number)
            except RuntimeError:  # finished in the meantime
                pass
    if failed:
        log.info("marked trial(s) %s failed: their worker process is gone", ", ".join(map(str, failed)))
    return failed


def _pruner(name: str, epochs: int):
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


def _finished(study) -> int:
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


@dataclass(frozen=True)
class SweepJob:
    """Everything a worker process needs (picklable)."""

    base: dict
    params: tuple
    out_dir: str
    storage: str | None
    study: str
    trials: int
    quota: int
    pruner: str
    seed: int
    tracking: object = None
    threads: int | None = None
    dataset: object = None  # an already loaded Dataset (in-process workers only)


def _pruning_callback(trial):
    from ..train.callbacks import Callback

    optuna = _optuna()

    class ReportToOptuna(Callback):
        def on_epoch_end(self, state, row):
            value = row.get("val_accuracy")
            if value is None or not math.isfinite(value):
                return
            trial.report(value, state.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {state.epoch} (validation accuracy {value:.4f})")

    return ReportToOptuna()


def run_worker(job: SweepJob) -> None:
    """Run up to `job.quota` trials of the shared study (fewer once it holds `job.trials` finished ones)."""
    optuna = _optuna()
    from ..data.sources import load_dataset
    from ..train.run import train_run
    from ..utils import set_threads

    set_threads(job.threads)
    params = list(job.params)
    base_cfg = trial_config(job.base, params, {})
    storage = open_storage(job.storage, Path(job.out_dir))
    study = optuna.load_study(study_name=job.study, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=job.seed, n_startup_trials=5),
                              pruner=_pruner(job.pruner, base_cfg.epochs))
    ds = job.dataset or load_dataset(base_cfg.dataset, base_cfg.data_dir)

    def objective(trial):
        trial.set_user_attr(WORKER_ATTR, _worker_id())
        cfg = trial_config(job.base, params, {p.name: p.suggest(trial) for p in params})
        run_dir = Path(job.out_dir) / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        result = train_run(cfg, run_dir, dataset=ds, overwrite=True, callbacks=[_pruning_callback(trial)],
                           outputs=("metrics",), tracking=job.tracking)
        value = result.metrics.get("val_accuracy")
        trial.set_user_attr("epochs", result.state.epoch)
        trial.set_user_attr("train_seconds", round(result.state.train_seconds, 2))
        return float(value)

    def enough(study, trial) -> None:
        if _finished(study) >= job.trials:
            study.stop()

    if _finished(study) < job.trials and job.quota > 0:
        study.optimize(objective, n_trials=job.quota, callbacks=[enough], catch=(FashionbenchError,),
                       gc_after_trial=True)


def _worker_main(job: SweepJob) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        run_worker(job)
    except FashionbenchError as e:  # one line from the worker, as from the command
        raise RuntimeError(str(e)) from None


def sweep(base: Mapping, params: list[Param], out_dir: str | Path, *, trials: int, storage: str | None = None,
          study_name: str | None = None, jobs: int = 1, pruner: str = "median", seed: int = 0, tracking=None,
          dataset=None, threads: int | None = None) -> dict:
    """Run (or continue) the study until it holds `trials` finished trials; write the sweep outputs.

    `base` holds the training config the space varies: {"recipe", "config", "overrides"}."""
    optuna = _optuna()
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials!r}")
    check_jobs(jobs)
    if pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner {pruner!r}; choose one of {', '.join(PRUNERS)}")
    out_dir = Path(out_dir)
    check_base(base, params)
    study_name = study_name or out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage, out_dir)
    study = optuna.create_study(study_name=study_name, storage=store, direction="maximize", load_if_exists=True)
    fail_dead_trials(study)
    remaining = trials - _finished(study)
    log.info("study %s: %d of %d trials finished, %d to run (%d worker%s)", study_name, trials - max(remaining, 0),
             trials, max(remaining, 0), jobs, "s" if jobs > 1 else "")
    params_t = tuple(params)
    with tracked_group(tracking, f"sweep {study_name}", {"space": "; ".join(p.describe() for p in params),
                                                         "trials": trials, "pruner": pruner},
                       root=out_dir / "trials") as group:
        if remaining > 0:
            quotas = [remaining // jobs + (1 if k < remaining % jobs else 0) for k in range(jobs)]
            jobs_list = [SweepJob(dict(base), params_t, str(out_dir), storage, study_name, trials, q, pruner,
                                  seed + 1000 * k + len(study.trials), group, threads if jobs == 1 else 1,
                                  dataset if jobs == 1 else None) for k, q in enumerate(quotas) if q]
            if len(jobs_list) == 1:
                run_worker(jobs_list[0])
            else:
                with spawn_pool(len(jobs_list), bars=True) as pool:
                    try:
                        pool.map(_worker_main, jobs_list)
                    except RuntimeError as e:
                        raise FashionbenchError(str(e)) from None
        summary = write_outputs(optuna.load_study(study_name=study_name, storage=store), params, base, out_dir,
                                trials)
        if group is not None:
            best = summary.get("best") or {}
            log_group_result(group, {"best_val_accuracy": best.get("value")} if best else {},
                             [out_dir / n for n in (BEST_CONFIG, TRIALS_CSV, TRIALS_MD, PLOTS) if (out_dir / n).is_file()])
    return summary


__all__ = ["Param", "fail_dead_trials", "format_sweep", "load_space", "open_storage", "parse_space", "sweep",
           "trial_config"]
