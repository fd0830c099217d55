"""Reading a run folder back, with one clear error per missing or corrupt file."""

from __future__ import annotations

import csv
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

RUN_FILES = ("config.json", "metrics.json", "history.csv", "batches.csv", "predictions.npz")


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
            return [{k: _num(v) for k, v in row.items() if k is not None} for row in reader]
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
    path = run_dir / "predictions.npz"
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
    config = read_json(run_dir / "config.json")
    metrics = read_json(run_dir / "metrics.json")
    for key in ("model", "test_accuracy"):
        if key not in metrics:
            raise _corrupt(run_dir / "metrics.json", f"no {key!r} entry")
    names = metrics.get("class_names")
    logits, labels = load_predictions(run_dir, len(names) if names else None)
    data = RunData(run_dir, config, metrics, logits=logits, labels=labels)
    if full:
        data.history = read_csv(run_dir / "history.csv", ("epoch", "train_loss", "train_accuracy"))
        data.batches = read_csv(run_dir / "batches.csv", ("step", "loss", "lr"))
        art = run_dir / "artifacts.npz"
        data.artifacts = read_npz(art, ()) if art.is_file() else None
    return data


def fmt_pct(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"
