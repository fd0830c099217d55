"""Epochs vs accuracy vs time (study 004's diminishing-returns table) from any run's history."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .. import runs
from ..data.sources import Dataset
from ..data.splits import Split
from ..errors import CheckpointError, ConfigError

VALIDATION_NOTE = runs.VALIDATION_NOTE


def test_as_validation(ds: Dataset, train_idx) -> tuple[Dataset, Split]:
    """A dataset whose 'training' tensor is train + test, and a Split validating on the test part,
    so the per-epoch history records test accuracy (studies 002 and 004 track it that way)."""
    n = len(ds.train_images)
    joined = Dataset(torch.cat([ds.train_images, ds.test_images]), torch.cat([ds.train_labels, ds.test_labels]),
                     ds.test_images, ds.test_labels, ds.class_names, ds.name, ds.source, ds.verified, ds.files)
    return joined, Split(torch.as_tensor(train_idx).numpy(), torch.arange(n, n + len(ds.test_images)).numpy())


def read_history(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / runs.HISTORY
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {runs.HISTORY}; pass a run folder written by `fashionbench train`")
    rows = [{k: math.nan if v is None else float(v) for k, v in r.items()}
            for r in runs.read_csv(path, ("epoch", "train_accuracy", "elapsed"))]
    if not rows:
        raise CheckpointError(f"{path} is empty; the run finished no epoch")
    return rows


def epochs_table(history: list[dict], every: int) -> list[dict]:
    """Rows every `every` epochs (and the last one): train/val accuracy, elapsed seconds, gain per step."""
    if every < 1:
        raise ConfigError(f"--every must be at least 1, got {every}")
    last = int(history[-1]["epoch"])
    picked = [r for r in history if int(r["epoch"]) % every == 0 or int(r["epoch"]) == last]
    out, prev = [], None
    for r in picked:
        val = r.get("val_accuracy", math.nan)
        gain = None if prev is None or math.isnan(val) else val - prev
        out.append({"epoch": int(r["epoch"]), "train_accuracy": r.get("train_accuracy"), "val_accuracy": val,
                    "elapsed": r.get("elapsed"), "gain": gain})
        prev = val
    return out


def json_rows(rows: list[dict]) -> list[dict]:
    """The table's rows with NaN (no validation split) as null: NaN is not JSON."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def format_epochs_table(rows: list[dict], val_label: str = "val acc") -> str:
    lines = [f"{'epoch':>6} {'train acc':>10} {val_label:>10} {'elapsed s':>10} {'gain':>8}"]
    for r in rows:
        val = "" if math.isnan(r["val_accuracy"]) else f"{100 * r['val_accuracy']:.2f}%"
        gain = "" if r["gain"] is None else f"{100 * r['gain']:+.2f}"
        lines.append(f"{r['epoch']:>6} {100 * r['train_accuracy']:>9.2f}% {val:>10} {r['elapsed']:>10.1f} {gain:>8}")
    return "\n".join(lines)


def val_label(run_dir: str | Path) -> str:
    note = Path(run_dir) / VALIDATION_NOTE
    if note.is_file():
        try:
            if json.loads(note.read_text()).get("validation") == "test set":
                return "test acc"
        except json.JSONDecodeError:
            pass
    return "val acc"
