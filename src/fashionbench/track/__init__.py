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
The backends are `_mlflow.py` and `_tensorboard.py`, imported when a run asks for one.
TensorBoard writes into `<run folder>/tensorboard` (or `<uri>/<run name>` when a log root is given).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from ..errors import ConfigError
from ..train.callbacks import Callback

TRACKERS = ("mlflow", "tensorboard")
DEFAULT_MLFLOW_URI = "sqlite:///mlruns.db"  # relative to the current folder
# history.csv's columns are logged per epoch; metrics.json repeats some of them (the last epoch's)
EPOCH_KEYS = tuple(c for c in runs.HISTORY_COLUMNS if c != "epoch")
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
    root: str | None = None  # a group's folder: its members are named by their folder relative to it


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
    spec = TrackingSpec(kind, uri or None, experiment or TrackingSpec.experiment)
    if kind == "mlflow":
        from ._mlflow import check_store

        check_store(spec)
    return spec


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


# ----------------------------------------------------------------------------- groups

@contextlib.contextmanager
def tracked_group(spec: TrackingSpec | None, name: str, params: dict | None = None,
                  tags: dict | None = None, root: str | Path | None = None) -> Iterator[TrackingSpec | None]:
    """A parent run for a study: yields the spec its member runs are opened with.

    MLflow: a run named `name` (with params and tags) that the members nest under; it ends
    FINISHED, FAILED when an exception escapes, KILLED on Ctrl-C. With `root` (the study's
    folder) members are named by their folder below it ("fold2", "sgd/seed1"), also in TensorBoard.
    None: None."""
    if spec is None:
        yield None
        return
    if root is not None:
        spec = dataclasses.replace(spec, root=str(root))
    if spec.kind != "mlflow":
        yield spec
        return
    from ._mlflow import group_run

    with group_run(spec, name, params, tags) as member_spec:
        yield member_spec


def run_name(spec: TrackingSpec, run_dir: Path | None, fallback: str) -> str:
    """A tracked run's name: its folder below the group's root, else the folder's name, else `fallback`."""
    if run_dir is None:
        return fallback
    if spec.root:
        with contextlib.suppress(ValueError):
            return Path(run_dir).resolve().relative_to(Path(spec.root).resolve()).as_posix()
    return Path(run_dir).name


def log_group_result(spec: TrackingSpec | None, metrics: dict, files: list[Path] = ()) -> None:
    """Log a study's final numbers and summary files (JSON, markdown) to its group run.

    `spec` is the one `tracked_group` yielded; a no-op for TensorBoard and None."""
    if spec is None or spec.kind != "mlflow" or not spec.parent_run_id:
        return
    from . import _mlflow

    _mlflow.log_group_result(spec, metrics, files)


def exit_status(exc_type: type[BaseException] | None) -> str:
    """The status a tracked run ends with: FINISHED, KILLED on Ctrl-C, FAILED on any other exception."""
    if exc_type is None:
        return "FINISHED"
    return "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"


# ----------------------------------------------------------------------------- run trackers

def open_run(spec: TrackingSpec | None, name: str, config: dict, run_dir: Path | None) -> RunTracker | None:
    """The tracker callback for one training run (None without a spec). Pass it in `callbacks`,
    then call `log_result(result)` and `close()`; or use it as a context manager."""
    if spec is None:
        return None
    if spec.kind == "mlflow":
        from ._mlflow import MlflowTracker

        return MlflowTracker(spec, name, config, run_dir)
    if spec.kind == "tensorboard":
        from ._tensorboard import TensorBoardTracker

        return TensorBoardTracker(spec, name, config, run_dir)
    raise ConfigError(f"unknown tracker {spec.kind!r}; choose from {', '.join(TRACKERS)}")


class RunTracker(Callback):
    """One tracked training run. Subclasses log; this class holds the shared lifecycle."""

    def __init__(self, spec: TrackingSpec, name: str, config: dict, run_dir: Path | None) -> None:
        self.spec, self.name, self.config = spec, name, dict(config)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.closed = False

    def log_result(self, result) -> None:
        """Final metrics and the run folder's files, from a fashionbench.train.testing.RunResult."""

    def close(self, status: str = "FINISHED") -> None:
        self.closed = True

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exit_status(exc_type))

    def _tags(self) -> dict:
        return {"model": self.config.get("model"), "recipe": self.config.get("recipe") or "",
                "run_dir": str(self.run_dir or "")}


__all__ = ["DEFAULT_MLFLOW_URI", "TRACKERS", "RunTracker", "TrackingSpec", "exit_status", "log_group_result", "open_run",
           "run_name", "tracked_group", "tracking_spec"]
