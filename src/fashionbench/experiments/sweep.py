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

import contextlib
import io
import logging
import math
import multiprocessing
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, FashionbenchError
from ..runs import csv_text
from ..train.config import TrainConfig, field_names, resolve_config, validate
from ..utils import atomic_write_json, atomic_write_text

log = logging.getLogger("fashionbench.sweep")

JOURNAL = "journal.log"
BEST_CONFIG = "best_config.json"
TRIALS_CSV, TRIALS_MD, PLOTS = "trials.csv", "trials.md", "plots.html"
SUMMARY = "sweep.json"
PRUNERS = ("median", "hyperband", "none")
WORKER_ATTR = "worker"  # host:pid of the process running a trial, to find trials whose worker died
HEARTBEAT_SECONDS = 60  # database storages: a trial without a heartbeat for 2 minutes is failed
_NOT_SWEPT = {"recipe", "dataset", "data_dir", "device", "threads", "photos", "teacher", "prune_from", "weights"}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("fashionbench sweep needs Optuna; install it with pip install 'fashionbench[sweep]'") \
            from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class Param:
    """One searched field: `choices`, or a `low`..`high` range (int or float, optionally log, step)."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None
    integer: bool = False

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]{' log' if self.log else ''}" + (
            f" step {self.step:g}" if self.step else "")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_space(data: Mapping, where: str = "the space") -> list[Param]:
    """`{field: {low, high[, log, step]} | {choices: [...]}}`; `model_args.NAME` searches a model argument."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{where} names no field to search; add a table per TrainConfig field, e.g. "
                          "[lr] low = 0.01, high = 0.5, log = true")
    fields = field_names() - _NOT_SWEPT - {"model_args"}
    defaults = TrainConfig()
    params = []
    for name, spec in data.items():
        is_arg = name.startswith("model_args.") and len(name) > len("model_args.")
        if not is_arg and name not in fields:
            close = sorted(f for f in fields if f.startswith(name[:3]))
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{where}: unknown field {name!r}{hint}; search TrainConfig fields (see `fashionbench "
                              "train --help`) or model_args.NAME")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: {name} must be a table with low/high or choices, got {spec!r}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise ConfigError(f"{where}: {name} has unknown key(s) {', '.join(sorted(unknown))}; use low, high, log, "
                              "step or choices")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: {name}.choices must be a non-empty list, got {choices!r}")
            if set(spec) != {"choices"}:
                raise ConfigError(f"{where}: {name} has both choices and a range; keep one")
            ok = (str, int, float, bool, type(None))
            if not all(isinstance(c, ok) for c in choices):  # Optuna stores plain values only
                choices = [c if isinstance(c, ok) else _json(c) for c in choices]
            params.append(Param(name, choices=tuple(choices)))
            continue
        low, high = spec.get("low"), spec.get("high")
        if not (_number(low) and _number(high)):
            raise ConfigError(f"{where}: {name} needs numbers low and high (or choices), got low={low!r} high={high!r}")
        if not low < high:
            raise ConfigError(f"{where}: {name} has an empty range (low {low} is not below high {high})")
        log_scale = spec.get("log", False)
        if not isinstance(log_scale, bool):
            raise ConfigError(f"{where}: {name}.log must be true or false, got {log_scale!r}")
        if log_scale and low <= 0:
            raise ConfigError(f"{where}: {name} is on a log scale, so low must be above 0, got {low}")
        step = spec.get("step")
        if step is not None and not (_number(step) and step > 0):
            raise ConfigError(f"{where}: {name}.step must be a positive number, got {step!r}")
        if step is not None and log_scale:
            raise ConfigError(f"{where}: {name} cannot have both log and step (Optuna samples one or the other)")
        current = None if is_arg else getattr(defaults, name)
        if isinstance(current, bool) or isinstance(current, (str, list, dict)):
            raise ConfigError(f"{where}: {name} is not a number field; search it with choices = [...]")
        integer = isinstance(current, int) or (is_arg and all(isinstance(v, int) for v in (low, high)))
        if integer and not all(isinstance(v, int) for v in (low, high, step or 1)):
            raise ConfigError(f"{where}: {name} is a whole number; give whole low/high/step, got {low!r}..{high!r}")
        params.append(Param(name, float(low) if not integer else low, float(high) if not integer else high,
                            log_scale, step, integer=integer))
    return params


def _json(value) -> str:
    import json

    return json.dumps(value)


def load_space(path: str | Path) -> list[Param]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--space {path}: no such file; write a TOML file with one table per searched field") \
            from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--space {path}: not valid TOML ({e})") from None
    return parse_space(data, f"--space {path}")


def trial_overrides(values: Mapping) -> dict:
    """A trial's sampled values as TrainConfig overrides (model_args.NAME gathered into model_args)."""
    out: dict = {}
    for name, value in values.items():
        if name.startswith("model_args."):
            out.setdefault("model_args", {})[name[len("model_args."):]] = _decode(value)
        else:
            out[name] = _decode(value)
    return out


def _decode(value):
    """Choices that are not plain values (lists, tables) travel through Optuna as JSON text."""
    import json

    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def trial_config(base: Mapping, params: list[Param], values: Mapping) -> TrainConfig:
    """defaults < recipe < config file < the command's flags < the trial's values."""
    overrides = {**base.get("overrides", {})}
    sampled = trial_overrides(values)
    if "model_args" in sampled:
        sampled["model_args"] = {**overrides.get("model_args", {}), **sampled["model_args"]}
    overrides.update(sampled)
    cfg = resolve_config(recipe=base.get("recipe"), config=base.get("config"), overrides=overrides)
    validate(cfg)
    return cfg


def check_base(base: Mapping, params: list[Param]) -> TrainConfig:
    """Fail before any trial: the space's bounds must make valid configs, and there must be a validation split."""
    cfg = resolve_config(recipe=base.get("recipe"), config=base.get("config"), overrides=base.get("overrides", {}))
    validate(cfg)
    if cfg.val_fraction <= 0:
        raise ConfigError("a sweep tunes on the validation split, never the test set; set --val-fraction > 0 "
                          "(e.g. 0.1)")
    for p in params:
        for value in (p.choices if p.choices is not None else (p.low, p.high)):
            try:
                trial_config(base, params, {p.name: value})
            except ConfigError as e:
                raise ConfigError(f"the space's {p.name} = {value!r} makes an invalid config: {e}") from None
    return cfg


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


def run_worker(job: SweepJob) -> int:
    """Run up to `job.quota` trials of the shared study; returns how many this worker ran."""
    optuna = _optuna()
    from ..data.sources import load_dataset
    from ..train.run import train_run
    from ..utils import set_threads

    set_threads(job.threads)
    storage = open_storage(job.storage, Path(job.out_dir))
    study = optuna.load_study(study_name=job.study, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=job.seed, n_startup_trials=5),
                              pruner=_pruner(job.pruner, job.base.get("epochs_hint", 10)))
    params = list(job.params)
    base_cfg = trial_config(job.base, params, {})
    ds = job.dataset or load_dataset(base_cfg.dataset, base_cfg.data_dir)
    ran = 0

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
        nonlocal ran
        ran += 1
        if _finished(study) >= job.trials:
            study.stop()

    if _finished(study) < job.trials and job.quota > 0:
        study.optimize(objective, n_trials=job.quota, callbacks=[enough], catch=(FashionbenchError,),
                       gc_after_trial=True)
    return ran


def _worker_main(job: SweepJob) -> int:
    import logging as _logging

    _logging.basicConfig(level=_logging.WARNING)
    try:
        return run_worker(job)
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
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs!r}")
    if pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner {pruner!r}; choose one of {', '.join(PRUNERS)}")
    out_dir = Path(out_dir)
    base_cfg = check_base(base, params)
    base = {**base, "epochs_hint": base_cfg.epochs}
    study_name = study_name or out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage, out_dir)
    study = optuna.create_study(study_name=study_name, storage=store, direction="maximize", load_if_exists=True)
    fail_dead_trials(study)
    remaining = trials - _finished(study)
    log.info("study %s: %d of %d trials finished, %d to run (%d worker%s)", study_name, trials - max(remaining, 0),
             trials, max(remaining, 0), jobs, "s" if jobs > 1 else "")
    params_t = tuple(params)
    with _group(tracking, f"sweep {study_name}", {"space": "; ".join(p.describe() for p in params),
                                                  "trials": trials, "pruner": pruner}) as group:
        if remaining > 0:
            quotas = [remaining // jobs + (1 if k < remaining % jobs else 0) for k in range(jobs)]
            jobs_list = [SweepJob(dict(base), params_t, str(out_dir), storage, study_name, trials, q, pruner,
                                  seed + 1000 * k + len(study.trials), group, threads if jobs == 1 else 1,
                                  dataset if jobs == 1 else None) for k, q in enumerate(quotas) if q]
            if len(jobs_list) == 1:
                run_worker(jobs_list[0])
            else:
                ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
                with ctx.Pool(len(jobs_list)) as pool:
                    try:
                        pool.map(_worker_main, jobs_list)
                    except RuntimeError as e:
                        raise FashionbenchError(str(e)) from None
        summary = write_outputs(optuna.load_study(study_name=study_name, storage=store), params, base, out_dir,
                                trials)
        if group is not None:
            from ..track import log_group_result

            best = summary.get("best") or {}
            log_group_result(group, {"best_val_accuracy": best.get("value")} if best else {},
                             [out_dir / n for n in (BEST_CONFIG, TRIALS_CSV, TRIALS_MD, PLOTS) if (out_dir / n).is_file()])
    return summary


def _group(tracking, name: str, params: dict):
    """A parent tracking run whose children are the trials (nothing without tracking)."""
    if tracking is None:
        return contextlib.nullcontext(None)
    from ..track import tracked_group

    return tracked_group(tracking, name, params)


def _rows(study, params: list[Param]) -> list[dict]:
    rows = []
    for t in study.trials:
        row = {"trial": t.number, "state": t.state.name, "val_accuracy": t.value,
               "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("train_seconds")}
        row.update({p.name: t.params.get(p.name) for p in params})
        rows.append(row)
    return rows


def _markdown(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_outputs(study, params: list[Param], base: Mapping, out_dir: Path, trials: int) -> dict:
    """best_config.json (what `train --config` takes), trials.csv / trials.md, plots.html, sweep.json."""
    rows = _rows(study, params)
    columns = ["trial", "state", "val_accuracy", "epochs", "seconds", *[p.name for p in params]]
    atomic_write_text(out_dir / TRIALS_CSV, csv_text(rows, columns))
    ranked = sorted((r for r in rows if r["state"] == "COMPLETE" and r["val_accuracy"] is not None),
                    key=lambda r: -r["val_accuracy"])
    atomic_write_text(out_dir / TRIALS_MD, f"# Sweep {study.study_name}: trials by validation accuracy\n\n"
                           + _markdown(ranked + [r for r in rows if r not in ranked], columns))
    summary: dict = {"study": study.study_name, "trials": len(rows), "asked": trials,
                     "states": {s: sum(r["state"] == s for r in rows) for s in sorted({r["state"] for r in rows})},
                     "space": [p.describe() for p in params], "out": str(out_dir), "best": None}
    if ranked:
        best = study.best_trial
        cfg = trial_config(base, params, best.params)
        atomic_write_json(out_dir / BEST_CONFIG, cfg.to_dict())
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                           "config": str(out_dir / BEST_CONFIG), "run_dir": best.user_attrs.get("run_dir")}
    write_plots(study, out_dir / PLOTS)
    atomic_write_json(out_dir / SUMMARY, summary)
    return summary


def write_plots(study, path: Path) -> None:
    """Optuna's optimization history, parameter importances and parallel coordinates, on one HTML page
    (matplotlib figures as embedded PNGs: the page works offline)."""
    import base64
    import html
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = _optuna()
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    parts = []
    for title, fn, needs in (("Optimization history", ovm.plot_optimization_history, 1),
                             ("Parameter importances", ovm.plot_param_importances, 2),
                             ("Parallel coordinates", ovm.plot_parallel_coordinate, 2),
                             ("Intermediate values (validation accuracy per epoch)", ovm.plot_intermediate_values, 1)):
        if len(complete) < needs:
            parts.append(f"<h2>{title}</h2><p>needs at least {needs} complete trial(s)</p>")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = fn(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            parts.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,"
                         f"{base64.b64encode(buf.getvalue()).decode()}'>")
        except Exception as e:  # a plot that cannot be drawn (e.g. a constant objective) must not lose the sweep
            parts.append(f"<h2>{title}</h2><p>not drawn: {html.escape(str(e)[:200])}</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {html.escape(study.study_name)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}img{max-width:100%}</style></head><body>"
            f"<h1>Sweep {html.escape(study.study_name)}</h1><p>{len(study.trials)} trials, "
            f"{len(complete)} complete</p>{''.join(parts)}</body></html>")
    atomic_write_text(path, page)


def format_sweep(summary: dict) -> str:
    states = ", ".join(f"{n} {s.lower()}" for s, n in summary["states"].items())
    lines = [f"study {summary['study']}: {summary['trials']} trials ({states}); asked for {summary['asked']} finished"]
    best = summary.get("best")
    if best:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        lines.append(f"best: trial {best['trial']}, validation accuracy {100 * best['value']:.2f}% ({values})")
        lines.append(f"train it: fashionbench train --config {best['config']}")
    else:
        lines.append("no trial has completed yet")
    out = summary["out"]
    lines.append(f"trials: {out}/{TRIALS_MD} and {TRIALS_CSV}; plots: {out}/{PLOTS}")
    return "\n".join(lines)


__all__ = ["Param", "fail_dead_trials", "format_sweep", "load_space", "open_storage", "parse_space", "sweep",
           "trial_config"]
