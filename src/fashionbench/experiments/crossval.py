"""Stratified k-fold cross-validation (study 003): one model per fold, keep the best by validation."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from .. import runs
from ..data.sources import Dataset, load_dataset
from ..data.splits import Split, stratified_kfold, stratified_subset
from ..train.config import TrainConfig, validate
from ..train.run import train_run
from ..utils import atomic_write_json

log = logging.getLogger("fashionbench.cv")


def kfold_splits(labels, folds: int, seed: int, data_fraction: float = 1.0) -> list[Split]:
    """Stratified folds over (a stratified fraction of) the training set, as train_run takes them."""
    subset = stratified_subset(labels, data_fraction, seed)
    sub_labels = labels[subset]
    return [Split(subset[tr], subset[va]) for tr, va in stratified_kfold(sub_labels, folds, seed)]


def cross_validate(cfg: TrainConfig, run_dir: str | Path, folds: int, *, dataset: Dataset | None = None,
                   overwrite: bool = False) -> dict:
    """Train `folds` models, each validated on its held-out fold; report per-fold validation
    accuracy, mean and std, and the test accuracy of the fold model with the best validation accuracy."""
    validate(cfg)
    run_dir = Path(run_dir)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir)
    t0 = time.perf_counter()
    rows = []
    for k, split in enumerate(kfold_splits(ds.train_labels, folds, cfg.seed, cfg.data_fraction), start=1):
        m = train_run(cfg, run_dir / f"fold{k}", dataset=ds, split=split, overwrite=overwrite).metrics
        rows.append({"fold": k, "train_size": len(split.train_idx), "val_size": len(split.val_idx),
                     "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
                     "train_seconds": m["train_seconds"], "run_dir": str(run_dir / f"fold{k}")})
        log.info("fold %d/%d: validation accuracy %.4f", k, folds, m["val_accuracy"])
    vals = [r["val_accuracy"] for r in rows]
    best = max(rows, key=lambda r: r["val_accuracy"])
    result = {
        "model": cfg.model,
        "folds": rows,
        "val_mean": statistics.fmean(vals),
        "val_std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "chosen_fold": best["fold"],
        "chosen_run_dir": best["run_dir"],
        "test_accuracy": best["test_accuracy"],
        "test_accuracy_mean_over_folds": statistics.fmean(r["test_accuracy"] for r in rows),
        "train_seconds": round(sum(r["train_seconds"] for r in rows), 3),
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "seed": cfg.seed,
    }
    atomic_write_json(run_dir / runs.CV_SUMMARY, result)
    return result


def format_cv(result: dict) -> str:
    lines = [f"{len(result['folds'])}-fold cross-validation of {result['model']}",
             f"{'fold':<6} {'train':>7} {'val':>7} {'val acc':>9} {'test acc':>9}"]
    for r in result["folds"]:
        mark = "  <- chosen" if r["fold"] == result["chosen_fold"] else ""
        lines.append(f"{r['fold']:<6} {r['train_size']:>7} {r['val_size']:>7} {100 * r['val_accuracy']:>8.2f}% "
                     f"{100 * r['test_accuracy']:>8.2f}%{mark}")
    lines.append(f"validation accuracy {100 * result['val_mean']:.2f} +- {100 * result['val_std']:.2f}%")
    lines.append(f"test accuracy of the chosen model (fold {result['chosen_fold']}): "
                 f"{100 * result['test_accuracy']:.2f}%")
    lines.append(f"training time {result['train_seconds']:.1f} s")
    return "\n".join(lines)
