"""The MLflow backend of `fashionbench.track`: an explicit MlflowClient per store, never the
global `mlflow.start_run` state, so several trackers in one process and worker processes do not
fight over it."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .. import runs
from ..errors import ConfigError
from . import DEFAULT_MLFLOW_URI, EPOCH_KEYS, RunTracker, TrackingSpec, _finite_number, exit_status, final_metrics, flatten

log = logging.getLogger("fashionbench.track")

MLFLOW_BATCH_EVERY = 50  # steps between logged batch-loss points: a db write per batch would slow training
MAX_PARAM_KEY, MAX_PARAM_VALUE, MAX_PER_BATCH = 250, 6000, 100  # MLflow's limits for params in one log_batch
REMOTE = ("http", "https", "databricks")  # tracking URI schemes of MLflow servers
CONNECT_TIMEOUT = 5.0  # seconds to reach a tracking server before the command is refused


def _mlflow_uri(spec: TrackingSpec) -> str:
    uri = spec.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI
    db = _sqlite_path(uri)
    if db is not None:  # absolute: the same store whatever folder a worker (or a later call) runs in
        db = db.expanduser().resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        query = uri.partition("?")[2]
        return f"sqlite:///{db}" + (f"?{query}" if query else "")
    return uri


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):].split("?")[0])


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow and alembic log every migration step of a new SQLite store at INFO: keep that out of the output."""
    loggers = [logging.getLogger(n) for n in ("alembic", "mlflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@functools.lru_cache(maxsize=8)
def _client_and_experiment(uri: str, experiment: str):
    """One client per store and process (creating one opens and migrates the store: seconds)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    db = _sqlite_path(uri)
    if db is not None:  # MLflow retries a database it cannot open for minutes; SQLite says so at once
        import sqlite3

        try:
            sqlite3.connect(db).close()
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open the MLflow store {uri} ({e}); check --tracking-uri "
                              "(e.g. sqlite:///mlruns.db or http://host:5000)") from None
    _check_reachable(uri)
    with _quiet_mlflow():
        try:
            client = mlflow.MlflowClient(tracking_uri=uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                # beside the database, not in ./mlruns of whatever folder the run started in
                where = None if db is None else (db.resolve().parent / "mlartifacts" / _slug(experiment)).as_uri()
                try:
                    return client, client.create_experiment(experiment, artifact_location=where)
                except MlflowException:  # another process created it first
                    exp = client.get_experiment_by_name(experiment)
                    if exp is None:
                        raise
        except Exception as e:  # the store is user input: MLflow, SQLAlchemy or the network may refuse it
            raise ConfigError(f"cannot open the MLflow store {uri} ({_first_line(e)}); check --tracking-uri "
                              "(e.g. sqlite:///mlruns.db or http://host:5000)") from None
    if exp.lifecycle_stage == "deleted":
        raise ConfigError(f"MLflow experiment {experiment!r} in {uri} is deleted; restore it "
                          f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or pick another name")
    return client, exp.experiment_id


def _check_reachable(uri: str) -> None:
    """MLflow retries a server that refuses connections for about 2 minutes: one connection attempt says so at once."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname):
        return  # MLflow goes through the proxy, which this connection would not
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError) as e:  # refused, unknown host, timed out; ValueError: a port out of range
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"cannot reach the MLflow server at {uri} ({reason}); start it "
                          "(mlflow server --host HOST --port PORT) or check --tracking-uri") from None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _params(values: dict) -> list:
    from mlflow.entities import Param

    return [Param(str(k)[:MAX_PARAM_KEY], str(v)[:MAX_PARAM_VALUE]) for k, v in flatten(values).items()]


def _create_run(spec: TrackingSpec, name: str, tags: dict):
    uri = _mlflow_uri(spec)
    client, exp_id = _client_and_experiment(uri, spec.experiment)
    tags = {k: str(v) for k, v in tags.items() if v is not None}
    if spec.parent_run_id:
        tags["mlflow.parentRunId"] = spec.parent_run_id  # what the MLflow UI nests runs by
    return client, client.create_run(exp_id, tags=tags, run_name=name).info.run_id, uri


def _log_batch(client, run_id: str, *, metrics=(), params=(), synchronous: bool = True) -> list:
    """log_batch in MLflow's per-call limits; returns the pending operations of asynchronous calls."""
    pending = []
    for i in range(0, max(len(metrics), len(params)), MAX_PER_BATCH):
        kw = {} if synchronous else {"synchronous": False}
        ops = client.log_batch(run_id, metrics=metrics[i:i + MAX_PER_BATCH], params=params[i:i + MAX_PER_BATCH], **kw)
        if ops is not None:
            pending.append(ops)
    return pending


def _use_async(uri: str) -> bool:
    """Asynchronous logging for a remote server only. A local store writes a batch in ~6 ms, while
    ending a run that logged asynchronously waits up to 1 s for MLflow's queue thread to stop."""
    import inspect

    import mlflow

    supported = "synchronous" in inspect.signature(mlflow.MlflowClient.log_batch).parameters  # MLflow >= 2.8
    return supported and uri.split(":", 1)[0] in REMOTE


def _metric_list(values: dict, step: int) -> list:
    from mlflow.entities import Metric

    ts = _now_ms()
    return [Metric(k, float(v), ts, step) for k, v in values.items() if _finite_number(v)]


def _log_files(client, run_id: str, files: list[tuple[Path, str]]) -> None:
    for path, artifact_path in files:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path)
        elif path.is_file():
            client.log_artifact(run_id, str(path), artifact_path)


@contextlib.contextmanager
def group_run(spec: TrackingSpec, name: str, params: dict | None, tags: dict | None) -> Iterator[TrackingSpec]:
    """tracked_group for MLflow: a run the members nest under, ended with the status of how the block ended."""
    client, run_id, _ = _create_run(spec, name, dict(tags or {}))
    if params:
        _log_batch(client, run_id, params=_params(params))
    status = "FINISHED"
    try:
        yield dataclasses.replace(spec, parent_run_id=run_id)
    except BaseException as e:
        status = exit_status(type(e))
        raise
    finally:
        client.set_terminated(run_id, status)


def log_group_result(spec: TrackingSpec, metrics: dict, files) -> None:
    client, _ = _client_and_experiment(_mlflow_uri(spec), spec.experiment)
    _log_batch(client, spec.parent_run_id, metrics=_metric_list(metrics, 0))
    _log_files(client, spec.parent_run_id, [(Path(f), "summary") for f in files])


def _run_files(run_dir: Path) -> list[tuple[Path, str]]:
    files = [(run_dir / runs.FIGURES, "figures")]
    files += [(run_dir / n, "report") for n in (runs.REPORT, runs.METRICS, runs.CONFIG, runs.HISTORY)]
    files += [(run_dir / runs.BEST, "model")] + [(p, "model") for p in sorted(run_dir.glob("*.onnx"))]
    return files



class MlflowTracker(RunTracker):
    """Params at the start, epoch metrics at each epoch's end (step = epoch), a batch-loss point
    every MLFLOW_BATCH_EVERY steps (the mean since the last point); to a server asynchronously
    where MLflow can. Final metrics and the run folder's files as artifacts in `log_result`."""

    def __init__(self, spec: TrackingSpec, name: str, config: dict, run_dir: Path | None) -> None:
        super().__init__(spec, name, config, run_dir)
        self.client, self.run_id, self.uri = _create_run(spec, name, self._tags())
        self.remote, self.asynchronous = self.uri.split(":", 1)[0] in REMOTE, _use_async(self.uri)
        self._pending: list = []  # asynchronous operations not yet confirmed
        self._buffer: list = []  # batch points waiting for the next write
        self._losses: list[float] = []
        self._params_logged = False
        self._failed = False

    def _safe(self, fn, *args, **kw) -> None:
        """Tracking trouble (a locked database, a server gone) must not end the training, nor stall it:
        after the first failure warn once and send nothing more, since every later call to a server
        that is gone would wait through MLflow's retries (about 2 minutes each)."""
        if self._failed:
            return
        try:
            fn(*args, **kw)
        except Exception as e:
            log.warning("MLflow logging failed (%s: %s); training goes on, and this run's MLflow record "
                        "stops here", type(e).__name__, _first_line(e))
            self._failed = True

    def _send(self, metrics=(), params=()) -> None:
        self._pending += _log_batch(self.client, self.run_id, metrics=list(metrics), params=list(params),
                                    synchronous=not self.asynchronous)

    def on_train_begin(self, state) -> None:
        if not self._params_logged:
            self._params_logged = True
            self._safe(self._send, params=_params(self.config))

    def on_batch_end(self, state, row: dict) -> None:
        self._losses.append(float(row["loss"]))
        step = int(row["step"])
        if step % MLFLOW_BATCH_EVERY:
            return
        loss = sum(self._losses) / len(self._losses)
        self._losses = []
        self._buffer += _metric_list({"batch_loss": loss, "batch_lr": row.get("lr")}, step)
        if self.asynchronous or not self.remote:  # cheap now; a blocking server call waits for the epoch's write
            self._safe(self._send, self._buffer)
            self._buffer = []

    def on_epoch_end(self, state, row: dict) -> None:
        values = {k: v for k, v in row.items() if k in EPOCH_KEYS}  # NaN (no validation split) is skipped
        self._safe(self._send, self._buffer + _metric_list(values, int(row["epoch"])))
        self._buffer = []

    def on_train_end(self, state) -> None:
        self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._safe(self._send, self._buffer)
            self._buffer = []
        pending, self._pending = self._pending, []
        for ops in pending:
            self._safe(ops.wait)

    def log_result(self, result) -> None:
        self.flush()
        step = int(result.metrics.get("epochs") or 0)
        self._safe(self._send, _metric_list(final_metrics(result.metrics), step))
        if result.run_dir is not None and Path(result.run_dir).is_dir():
            self._safe(_log_files, self.client, self.run_id, _run_files(Path(result.run_dir)))
        self.flush()

    def close(self, status: str = "FINISHED") -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self._failed:
            self._end_after_failure(status)
        else:
            self._safe(self.client.set_terminated, self.run_id, status)

    def _end_after_failure(self, status: str) -> None:
        """One last try to end the record, so it does not show RUNNING for ever; to a server only
        if it takes a connection at once (a server that is gone would hold the exit for minutes)."""
        with contextlib.suppress(Exception):  # already warned: the record stays as the failure left it
            _check_reachable(self.uri)
            self.client.set_terminated(self.run_id, status)


def check_store(spec: TrackingSpec) -> None:
    """Open the store (and the experiment) now: a bad --tracking-uri is refused before any training."""
    _client_and_experiment(_mlflow_uri(spec), spec.experiment)
