"""Stratified k-fold cross-validation (study 003): one model per fold, keep the best by validation."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from .. import runs
from ..data.sources import Dataset, load_dataset
from ..data.splits import Split, stratified_kfold, stratified_subset
from ..track import log_group_result, tracked_group
from ..train.config import TrainConfig, validate
from ..utils import atomic_write_json
from .parallel import check_jobs, run_jobs, train_metrics

log = logging.getLogger("fashionbench.cv")


def kfold_splits(labels, folds: int, seed: int, data_fraction: float = 1.0) -> list[Split]:
    """Stratified folds over (a stratified fraction of) the training set, as train_run takes them."""
    subset = stratified_subset(labels, data_fraction, seed)
    sub_labels = labels[subset]
    return [Split(subset[tr], subset[va]) for tr, va in stratified_kfold(sub_labels, folds, seed)]


def cross_validate(cfg: TrainConfig, run_dir: str | Path, folds: int, *, dataset: Dataset | None = None,
                   overwrite: bool = False, jobs: int = 1, tracking=None) -> dict:
    """Train `folds` models, each validated on its held-out fold; report per-fold validation
    accuracy, mean and std, and the test accuracy of the fold model with the best validation accuracy.

    `jobs` trains that many folds at a time (one thread each); `tracking` logs every fold as a
    run nested under one for the whole cross-validation."""
    validate(cfg)
    check_jobs(jobs)
    run_dir = Path(run_dir)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir)
    t0 = time.perf_counter()
    splits = kfold_splits(ds.train_labels, folds, cfg.seed, cfg.data_fraction)
    with tracked_group(tracking, f"cv {cfg.recipe or cfg.model} ({folds} folds)", {**cfg.to_dict(), "folds": folds},
                       root=run_dir) as group:
        tasks = [{"cfg": cfg, "run_dir": run_dir / f"fold{k}", "split": split,
                  "overwrite": overwrite, "tracking": group} for k, split in enumerate(splits, start=1)]
        metrics = run_jobs(train_metrics, tasks, jobs=jobs, dataset=ds, desc="folds")
        rows = []
        for k, (task, m) in enumerate(zip(tasks, metrics, strict=True), start=1):
            split = task["split"]
            rows.append({"fold": k, "train_size": len(split.train_idx), "val_size": len(split.val_idx),
                         "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
                         "train_seconds": m["train_seconds"], "run_dir": str(task["run_dir"])})
            log.info("fold %d/%d: validation accuracy %.4f", k, folds, m["val_accuracy"])
        result = _summary(cfg, rows, time.perf_counter() - t0, jobs)
        atomic_write_json(run_dir / runs.CV_SUMMARY, result)
        log_group_result(group, {k: result[k] for k in ("val_mean", "val_std", "test_accuracy",
                                                        "test_accuracy_mean_over_folds")}, [run_dir / runs.CV_SUMMARY])
    return result


def _summary(cfg: TrainConfig, rows: list[dict], wall_seconds: float, jobs: int) -> dict:
    vals = [r["val_accuracy"] for r in rows]
    best = max(rows, key=lambda r: r["val_accuracy"])
    return {
        "model": cfg.model,
        "folds": rows,
        "val_mean": statistics.fmean(vals),
        "val_std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "chosen_fold": best["fold"],
        "chosen_run_dir": best["run_dir"],
        "test_accuracy": best["test_accuracy"],
        "test_accuracy_mean_over_folds": statistics.fmean(r["test_accuracy"] for r in rows),
        "train_seconds": round(sum(r["train_seconds"] for r in rows), 3),
        "wall_seconds": round(wall_seconds, 3),
        "jobs": jobs,
        "seed": cfg.seed,
    }


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
