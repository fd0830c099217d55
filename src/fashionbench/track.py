"""Experiment tracking: MLflow and TensorBoard loggers as training callbacks.

`tracking_spec` checks the choice once (before any training), `open_run` turns the spec into
a `RunTracker` callback for one training run, and `tracked_group` opens a parent run for a
study that trains many models (cross-validation folds, ablation cells, sweep trials), so the
MLflow UI shows them nested under it. Neither backend is imported until it is used: both are
optional extras (`pip install 'fashionbench[track]'`).

MLflow goes through an explicit `MlflowClient` per tracking URI, never the global
`mlflow.start_run` state, so several trackers in one process and worker processes do not
fight over it. By default it writes a SQLite store `mlruns.db` in the current folder, with the
artifacts in `mlartifacts/` beside it; view it with `mlflow ui --backend-store-uri sqlite:///mlruns.db`.
TensorBoard writes into `<run folder>/tensorboard` (or `<uri>/<run name>` when a log root is given).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import runs
from .errors import ConfigError
from .train.callbacks import Callback

log = logging.getLogger("fashionbench.track")

TRACKERS = ("mlflow", "tensorboard")
DEFAULT_MLFLOW_URI = "sqlite:///mlruns.db"  # relative to the current folder
MLFLOW_BATCH_EVERY = 50  # steps between logged batch-loss points: a db write per batch would slow training
MAX_PARAM_KEY, MAX_PARAM_VALUE, MAX_PER_BATCH = 250, 6000, 100  # MLflow's limits for params in one log_batch
# history.csv's columns are logged per epoch; metrics.json repeats some of them (the last epoch's)
EPOCH_KEYS = tuple(c for c in runs.HISTORY_COLUMNS if c != "epoch")
REMOTE = ("http", "https", "databricks")  # tracking URI schemes of MLflow servers
_BACKEND = {"mlflow": ("mlflow", "MLflow"), "tensorboard": ("tensorboard", "TensorBoard")}


@dataclass(frozen=True)
class TrackingSpec:
    """Where to track (picklable: it travels to worker processes).

    uri: MLflow tracking URI (None: $MLFLOW_TRACKING_URI, else DEFAULT_MLFLOW_URI), or the
    TensorBoard log root (None: each run writes into <its run folder>/tensorboard)."""

    kind: str
    uri: str | None = None
    experiment: str = "fashionbench"
    parent_run_id: str | None = None  # mlflow: runs opened with this spec are nested under this run


def _require(kind: str) -> None:
    module, label = _BACKEND[kind]
    try:
        importlib.import_module(module)
        if kind == "tensorboard":
            importlib.import_module("torch.utils.tensorboard")
    except ImportError:
        raise ConfigError(f"--track {kind} needs {label}; install it with pip install 'fashionbench[track]'") from None


def tracking_spec(kind: str | None, uri: str | None = None, experiment: str | None = None) -> TrackingSpec | None:
    """The checked tracking choice (None for no tracking): a known backend that imports."""
    if kind is None or kind == "none":
        return None
    if kind not in TRACKERS:
        raise ConfigError(f"unknown tracker {kind!r} for --track; choose from {', '.join(TRACKERS)} or none")
    if experiment is not None and not experiment.strip():
        raise ConfigError("--experiment is empty; pass a name for the MLflow experiment (or leave it out)")
    _require(kind)
    return TrackingSpec(kind, uri or None, experiment or TrackingSpec.experiment)


# ----------------------------------------------------------------------------- values

def _finite_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def flatten(config: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys; lists, None and other values become strings (params are strings)."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        elif isinstance(v, list | tuple | dict):
            out[key] = json.dumps(v, default=str)
        else:
            out[key] = v
    return out


def final_metrics(metrics: dict) -> dict:
    """The top-level finite numbers of a metrics record, less what the epoch history already logs."""
    return {k: float(v) for k, v in metrics.items()
            if _finite_number(v) and k not in EPOCH_KEYS and k != "metrics_version"}


# ----------------------------------------------------------------------------- mlflow plumbing

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

    with _quiet_mlflow():
        client = mlflow.MlflowClient(tracking_uri=uri)
        try:
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                db = _sqlite_path(uri)
                # beside the database, not in ./mlruns of whatever folder the run started in
                where = None if db is None else (db.resolve().parent / "mlartifacts" / _slug(experiment)).as_uri()
                try:
                    return client, client.create_experiment(experiment, artifact_location=where)
                except MlflowException:  # another process created it first
                    exp = client.get_experiment_by_name(experiment)
                    if exp is None:
                        raise
        except MlflowException as e:
            raise ConfigError(f"cannot open the MLflow store {uri} ({_first_line(e)}); check --track-uri "
                              "(e.g. sqlite:///mlruns.db or http://host:5000)") from None
    if exp.lifecycle_stage == "deleted":
        raise ConfigError(f"MLflow experiment {experiment!r} in {uri} is deleted; restore it "
                          f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or pick another name")
    return client, exp.experiment_id


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


# ----------------------------------------------------------------------------- groups

@contextlib.contextmanager
def tracked_group(spec: TrackingSpec | None, name: str, params: dict | None = None,
                  tags: dict | None = None) -> Iterator[TrackingSpec | None]:
    """A parent run for a study: yields the spec its member runs are opened with.

    MLflow: a run named `name` (with params and tags) that the members nest under; it ends
    FINISHED, FAILED when an exception escapes, KILLED on Ctrl-C. TensorBoard and None: the spec unchanged."""
    if spec is None or spec.kind != "mlflow":
        yield spec
        return
    client, run_id, _ = _create_run(spec, name, dict(tags or {}))
    if params:
        _log_batch(client, run_id, params=_params(params))
    status = "FINISHED"
    try:
        yield dataclasses.replace(spec, parent_run_id=run_id)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        client.set_terminated(run_id, status)


def log_group_result(spec: TrackingSpec | None, metrics: dict, files: list[Path] = ()) -> None:
    """Log a study's final numbers and summary files (JSON, markdown) to its group run.

    `spec` is the one `tracked_group` yielded; a no-op for TensorBoard and None."""
    if spec is None or spec.kind != "mlflow" or not spec.parent_run_id:
        return
    client, _ = _client_and_experiment(_mlflow_uri(spec), spec.experiment)
    _log_batch(client, spec.parent_run_id, metrics=_metric_list(metrics, 0))
    _log_files(client, spec.parent_run_id, [(Path(f), "summary") for f in files])


# ----------------------------------------------------------------------------- run trackers

def open_run(spec: TrackingSpec | None, name: str, config: dict, run_dir: Path | None) -> RunTracker | None:
    """The tracker callback for one training run (None without a spec). Pass it in `callbacks`,
    then call `log_result(result)` and `close()`; or use it as a context manager."""
    if spec is None:
        return None
    if spec.kind == "mlflow":
        return MlflowTracker(spec, name, config, run_dir)
    if spec.kind == "tensorboard":
        return TensorBoardTracker(spec, name, config, run_dir)
    raise ConfigError(f"unknown tracker {spec.kind!r}; choose from {', '.join(TRACKERS)}")


class RunTracker(Callback):
    """One tracked training run. Subclasses log; this class holds the shared lifecycle."""

    def __init__(self, spec: TrackingSpec, name: str, config: dict, run_dir: Path | None) -> None:
        self.spec, self.name, self.config = spec, name, dict(config)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.closed = False

    def log_result(self, result) -> None:
        """Final metrics and the run folder's files, from a fashionbench.train.run.RunResult."""

    def close(self, status: str = "FINISHED") -> None:
        self.closed = True

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def _tags(self) -> dict:
        return {"model": self.config.get("model"), "recipe": self.config.get("recipe") or "",
                "run_dir": str(self.run_dir or "")}


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
        self.client, self.run_id, uri = _create_run(spec, name, self._tags())
        self.remote, self.asynchronous = uri.split(":", 1)[0] in REMOTE, _use_async(uri)
        self._pending: list = []  # asynchronous operations not yet confirmed
        self._buffer: list = []  # batch points waiting for the next write
        self._losses: list[float] = []
        self._params_logged = False
        self._failed = False

    def _safe(self, fn, *args, **kw) -> None:
        """Tracking trouble (a locked database, a server gone) must not end the training: warn once."""
        try:
            fn(*args, **kw)
        except Exception as e:
            if not self._failed:
                log.warning("MLflow logging failed (%s: %s); training goes on without it", type(e).__name__,
                            _first_line(e))
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
        self._safe(self.client.set_terminated, self.run_id, status)


class TensorBoardTracker(RunTracker):
    """Scalars batch/loss, batch/lr (step = global step) and epoch/<key> (step = epoch); in
    `log_result` the hparams with the final metrics, the figures as images and the test
    embeddings for the projector. The writer opens at the start of training (after the run
    folder is claimed: a folder must be empty for a new run)."""

    def __init__(self, spec: TrackingSpec, name: str, config: dict, run_dir: Path | None) -> None:
        super().__init__(spec, name, config, run_dir)
        if spec.uri:
            self.log_dir = Path(spec.uri) / name
        elif run_dir is not None:
            self.log_dir = Path(run_dir) / "tensorboard"
        else:  # a run without a folder (save=False): the current folder, by run name
            self.log_dir = Path("tensorboard") / name
        self._writer = None

    def writer(self, purge_step: int | None = None):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)
        return self._writer

    def on_train_begin(self, state) -> None:
        # a resumed run drops the batch points the interrupted one wrote after its last checkpoint
        w = self.writer(purge_step=state.step + 1 if state is not None and state.step else None)
        w.add_text("config", "```\n" + json.dumps(self.config, indent=1, default=str) + "\n```")

    def on_batch_end(self, state, row: dict) -> None:
        w, step = self.writer(), int(row["step"])
        w.add_scalar("batch/loss", float(row["loss"]), step)
        if _finite_number(row.get("lr")):
            w.add_scalar("batch/lr", float(row["lr"]), step)

    def on_epoch_end(self, state, row: dict) -> None:
        w, epoch = self.writer(), int(row["epoch"])
        for k in EPOCH_KEYS:
            if _finite_number(row.get(k)):  # NaN without a validation split
                w.add_scalar(f"epoch/{k}", float(row[k]), epoch)

    def on_train_end(self, state) -> None:
        if self._writer is not None:
            self._writer.flush()

    def log_result(self, result) -> None:
        w, step = self.writer(), int(result.metrics.get("epochs") or 0)
        config = result.config.to_dict() if hasattr(result.config, "to_dict") else self.config
        hparams = {k: v for k, v in flatten(config).items() if isinstance(v, int | float | str | bool)}
        final = {f"final/{k}": v for k, v in final_metrics(result.metrics).items()}
        w.add_hparams(hparams, final, run_name=".", global_step=step)  # ".": this log dir, no subfolder
        run_dir = Path(result.run_dir) if result.run_dir is not None else None
        if run_dir is not None and run_dir.is_dir():
            self._log_figures(w, run_dir, step)
            self._log_embeddings(w, run_dir, result, step)
        w.flush()

    def _log_figures(self, w, run_dir: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        for png in sorted((run_dir / runs.FIGURES).glob("*.png")):
            with Image.open(png) as im:
                w.add_image(f"figures/{png.stem}", np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def _log_embeddings(self, w, run_dir: Path, result, step: int) -> None:
        """The report's test-sample embeddings (input of the classifier head) for the projector."""
        import numpy as np
        import torch

        path = run_dir / runs.ARTIFACTS
        if not path.is_file():
            return
        with np.load(path, allow_pickle=False) as z:
            if not {"embeddings", "tsne_index", "tsne_labels"} <= set(z.files):
                return  # a model without a Linear head: no embeddings
            emb, idx, labels = z["embeddings"].astype(np.float32), z["tsne_index"], z["tsne_labels"]
        if len(emb) != len(idx) or not len(emb):
            return
        names = list(result.metrics.get("class_names") or [])
        metadata = [names[int(y)] if 0 <= int(y) < len(names) else str(int(y)) for y in labels]
        images = getattr(getattr(result, "dataset", None), "test_images", None)
        label_img = None
        if images is not None and int(idx.max()) < len(images):
            label_img = images[torch.as_tensor(idx, dtype=torch.long)].float().div(255).unsqueeze(1)
        w.add_embedding(torch.from_numpy(emb), metadata=metadata, label_img=label_img, global_step=step,
                        tag="test_embeddings")

    def close(self, status: str = "FINISHED") -> None:
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            if status != "FINISHED":
                self._writer.add_text("status", status)
            self._writer.close()


__all__ = ["DEFAULT_MLFLOW_URI", "TRACKERS", "MlflowTracker", "RunTracker", "TensorBoardTracker", "TrackingSpec",
           "log_group_result", "open_run", "tracked_group", "tracking_spec"]
