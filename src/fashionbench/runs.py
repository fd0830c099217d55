"""The run folder: its file names, the typed metrics record, writing and reading.

Every layer that touches a run folder goes through here: training writes it, the report and
`compare` read it back, the study protocols list it. Claiming a folder for a run (its lock
file, --overwrite, --resume) is in run_lock.py.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from .errors import CheckpointError
from .utils import atomic_savez, atomic_torch_save, atomic_write_json, atomic_write_text

log = logging.getLogger("fashionbench.runs")

CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
BATCHES = "batches.csv"
BEST = "best.pt"
LAST = "last.pt"
PREDICTIONS = "predictions.npz"
ARTIFACTS = "artifacts.npz"
REPORT = "report.html"
FIGURES = "figures"
LOCK = ".lock"
VALIDATION_NOTE = "validation.json"  # beside a run whose validation set is the test set (study tables)
# The summaries a study folder holds beside its run folders.
CV_SUMMARY = "cv.json"
BOOST_SUMMARY = "boost.json"
ABLATION_SUMMARY = "ablation.json"
# Everything a training run writes (and so everything --overwrite clears, and nothing else).
TENSORBOARD = "tensorboard"  # event files of --track tensorboard
RUN_OUTPUTS = (CONFIG, METRICS, HISTORY, BATCHES, BEST, LAST, PREDICTIONS, ARTIFACTS, REPORT, FIGURES,
               VALIDATION_NOTE, TENSORBOARD)

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "elapsed"]
BATCH_COLUMNS = ["epoch", "step", "batch", "loss", "lr"]

METRICS_VERSION = 1


class RunMetrics(TypedDict, total=False):
    """metrics.json: what training measured. The report adds the detailed test metrics
    (per_class, reliability, ece, test_accuracy_ci95, most_confused, top_losses, ...)."""

    metrics_version: int
    model: str
    recipe: str | None
    params: int
    epochs: int
    best_epoch: int
    stopped_early: bool
    train_seconds: float
    test_seconds: float
    train_size: int
    val_size: int
    val_accuracy: float | None
    evaluated_weights: str  # 'best' or 'last'
    tta: list[str]
    temperature: float | None  # softmax temperature fitted after training (validation split, else training images)
    temperature_fitted_on: str | None
    test_accuracy: float
    test_loss: float
    per_class_accuracy: dict[str, float]
    class_names: list[str]
    seed: int
    device: str
    precision: str
    dataset: str
    data_source: str
    fashionbench_version: str
    torch_version: str
    machine: str
    report_seconds: float
    tsne_seconds: float
    embedding_layer: str


REQUIRED_METRICS = {"model": str, "test_accuracy": (int, float)}


def validate_metrics(metrics: dict, path: Path) -> RunMetrics:
    for key, kind in REQUIRED_METRICS.items():
        if key not in metrics:
            raise _corrupt(path, f"no {key!r} entry")
        if not isinstance(metrics[key], kind) or isinstance(metrics[key], bool):
            raise _corrupt(path, f"{key!r} is {type(metrics[key]).__name__}, not {getattr(kind, '__name__', 'a number')}")
    if metrics.get("metrics_version", 1) > METRICS_VERSION:
        raise CheckpointError(f"{path} was written by a newer fashionbench (metrics version "
                              f"{metrics['metrics_version']}); upgrade fashionbench to read it")
    return metrics  # type: ignore[return-value]


# ----------------------------------------------------------------------------- writing

def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_config(run_dir: Path, config: dict) -> None:
    atomic_write_json(run_dir / CONFIG, config)


def write_metrics(run_dir: Path, metrics: dict) -> None:
    atomic_write_json(run_dir / METRICS, {"metrics_version": METRICS_VERSION, **metrics})


def write_history(run_dir: Path, history: list[dict], batches: list[dict]) -> None:
    # optional columns, before the timings: the side trained on (progressive resizing), the images
    # trained on (--skip-easy)
    extra = [name for name in ("image_size", "images") if any(name in row for row in history)]
    columns = [*HISTORY_COLUMNS[:-2], *extra, *HISTORY_COLUMNS[-2:]]
    atomic_write_text(run_dir / HISTORY, csv_text(history, columns))
    atomic_write_text(run_dir / BATCHES, csv_text(batches, BATCH_COLUMNS))


def write_checkpoint(run_dir: Path, kind: str, payload: dict) -> None:
    atomic_torch_save(payload, run_dir / (BEST if kind == "best" else LAST))


def write_predictions(run_dir: Path, logits: np.ndarray, labels: np.ndarray) -> None:
    atomic_savez(run_dir / PREDICTIONS, logits=np.asarray(logits, np.float32), labels=np.asarray(labels, np.int64))


def write_artifacts(run_dir: Path, artifacts: dict) -> None:
    atomic_savez(run_dir / ARTIFACTS, **artifacts)


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


# ----------------------------------------------------------------------------- reading

@dataclass
class RunData:
    run_dir: Path
    config: dict
    metrics: dict
    history: list[dict] = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    artifacts: dict | None = None

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def class_names(self) -> list[str]:
        return list(self.metrics.get("class_names") or [str(i) for i in range(self.logits.shape[1])])


def _missing(path: Path) -> CheckpointError:
    if not path.parent.exists():
        return CheckpointError(f"run folder {path.parent} not found; pass a folder written by `fashionbench train`")
    hint = ("training did not finish or the folder is not a run folder; pass a folder written by "
            "`fashionbench train` (or train it again)")
    return CheckpointError(f"{path.parent} lacks {path.name}: {hint}")


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is corrupt ({why[:160]}); restore it or train the run again")


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise _missing(path)
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise _corrupt(path, str(e)) from None
    if not isinstance(obj, dict):
        raise _corrupt(path, "expected a JSON object")
    return obj


def _num(text: str):
    if text is None or text == "":
        return None
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise _missing(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"no column {', '.join(missing)}")
            rows = [{k: _num(v) for k, v in row.items() if k is not None} for row in reader]
        for i, row in enumerate(rows, 2):
            empty = [c for c in required if row.get(c) is None]
            if empty:
                raise ValueError(f"line {i} has no {', '.join(empty)}")
        return rows
    except (ValueError, csv.Error, UnicodeDecodeError, OSError) as e:
        raise _corrupt(path, str(e)) from None


def read_npz(path: Path, required: tuple[str, ...]) -> dict:
    if not path.is_file():
        raise _missing(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise _corrupt(path, str(e) or type(e).__name__) from None
    missing = [k for k in required if k not in out]
    if missing:
        raise _corrupt(path, f"no array {', '.join(missing)}")
    return out


def load_predictions(run_dir: Path, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    path = run_dir / PREDICTIONS
    z = read_npz(path, ("logits", "labels"))
    logits, labels = z["logits"], z["labels"]
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels):
        raise _corrupt(path, f"logits {logits.shape} and labels {labels.shape} do not pair up")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise _corrupt(path, f"{logits.shape[1]} logit columns but metrics.json names {num_classes} classes")
    if not np.isfinite(logits).all():
        raise _corrupt(path, "logits hold NaN or infinity")
    return logits.astype(np.float32), labels.astype(np.int64)


def load_run(run_dir: str | Path, *, full: bool = True) -> RunData:
    """Everything a report (full=True) or a comparison (full=False) needs from a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} not found; pass a folder written by `fashionbench train`")
    if (run_dir / LOCK).is_file() and not (run_dir / METRICS).is_file():
        raise CheckpointError(f"{run_dir} is still being trained (or its run crashed); wait for it, or train it "
                              "again with --overwrite")
    config = read_json(run_dir / CONFIG)
    metrics = validate_metrics(read_json(run_dir / METRICS), run_dir / METRICS)
    names = metrics.get("class_names")
    logits, labels = load_predictions(run_dir, len(names) if names else None)
    data = RunData(run_dir, config, metrics, logits=logits, labels=labels)
    if full:
        data.history = read_csv(run_dir / HISTORY, ("epoch", "train_loss", "train_accuracy"))
        data.batches = read_csv(run_dir / BATCHES, ("step", "loss", "lr"))
        art = run_dir / ARTIFACTS
        data.artifacts = read_npz(art, ()) if art.is_file() else None
    return data


def fmt_pct(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def is_run_dir(path: Path) -> bool:
    return (path / METRICS).is_file() or (path / CONFIG).is_file()


def read_config(run_dir: Path) -> dict:
    """config.json as a dict ({} when missing or unreadable: for best-effort uses like the report)."""
    try:
        obj = json.loads((Path(run_dir) / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def try_csv(path: Path) -> list[dict]:
    try:
        return read_csv(path, ())
    except CheckpointError:
        return []


def checkpoint_for(run_dir: Path, evaluated: str = "best") -> Path | None:
    """The checkpoint a run's test metrics came from (`evaluated` is 'best' or 'last'), else the other one."""
    names = [BEST, LAST] if evaluated != "last" else [LAST, BEST]
    return next((run_dir / n for n in names if (run_dir / n).is_file()), None)
