"""Boosting by filtering (Drucker, Schapire & Simard, 1993) as in study 000.

Net 1 trains on the training set. Net 2 trains on a 50/50 mix of training patterns net 1 got
right and wrong. Net 3 trains on the patterns where nets 1 and 2 disagree. At test time the
three outputs are added (softmax probabilities by default, as the authors' code does).
Works with any registered model: each net is an ordinary run folder (net1/, net2/, net3/).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .. import runs
from ..data.sources import Dataset, load_dataset
from ..data.splits import Split, split_training_set
from ..models.ensemble import combine_outputs
from ..track import log_group_result, tracked_group
from ..train.config import TrainConfig, validate
from ..train.run import train_run
from ..utils import atomic_write_json

log = logging.getLogger("fashionbench.boost")


def select_net2(correct: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions (into `correct`) of a 50/50 mix of patterns net 1 got wrong and right.

    Every wrong pattern is used with as many right ones drawn at random; when net 1 made more
    errors than it got right, the errors are subsampled instead. Returned sorted."""
    wrong = np.flatnonzero(~correct)
    right = np.flatnonzero(correct)
    n = min(len(wrong), len(right))
    if n == 0:  # net 1 got everything right (or wrong): nothing to filter, use everything
        return np.arange(len(correct))
    pick_w = wrong if len(wrong) == n else rng.choice(wrong, n, replace=False)
    pick_r = right if len(right) == n else rng.choice(right, n, replace=False)
    return np.sort(np.concatenate([pick_w, pick_r]))


def select_net3(pred1: np.ndarray, pred2: np.ndarray) -> np.ndarray:
    """Positions where nets 1 and 2 predict different classes."""
    return np.flatnonzero(np.asarray(pred1) != np.asarray(pred2))


def _ensure_min(positions: np.ndarray, pool: int, minimum: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Top up a too-small selection with random other patterns (BatchNorm needs a batch of 2+)."""
    if len(positions) >= minimum or pool <= len(positions):
        return positions, 0
    others = np.setdiff1d(np.arange(pool), positions)
    extra = rng.choice(others, min(minimum - len(positions), len(others)), replace=False)
    return np.sort(np.concatenate([positions, extra])), len(extra)


def boost(cfg: TrainConfig, run_dir: str | Path, *, dataset: Dataset | None = None, combine: str = "softmax",
          overwrite: bool = False, split: Split | None = None, tracking=None) -> dict:
    """Train the three nets and return (and write as boost.json) each net's and the ensemble's accuracy.

    `tracking` logs each net as a run nested under one for the ensemble. The nets train one
    after the other: net 2's data depends on net 1's mistakes, net 3's on both."""
    validate(cfg)
    run_dir = Path(run_dir)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir)
    split = split or split_training_set(ds.train_labels, cfg.data_fraction, cfg.val_fraction, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_idx = np.asarray(split.train_idx)
    train_images = ds.train_images[train_idx]
    train_labels = ds.train_labels[train_idx].numpy()
    min_size = min(len(train_idx), max(2 * cfg.batch_size, 20))
    t0 = time.perf_counter()
    nets, subsets, topped, test_logits = [], [], [], []

    with tracked_group(tracking, f"boost {cfg.recipe or cfg.model}", {**cfg.to_dict(), "combine": combine},
                       root=run_dir) as group:

        def train_net(k: int, positions: np.ndarray) -> tuple[dict, np.ndarray]:
            sub = Split(train_idx[positions], split.val_idx)
            r = train_run(cfg.replace(seed=cfg.seed + k - 1), run_dir / f"net{k}", dataset=ds, split=sub,
                          overwrite=overwrite, tracking=group)
            # the trained net in memory, without TTA: what filtering by "right or wrong" means
            pred = r.predictor(tta=()).predict_logits(train_images).argmax(1).numpy()
            nets.append(r.metrics)
            test_logits.append(r.test_logits)
            subsets.append(len(positions))
            log.info("net %d: %d training patterns, test accuracy %.4f", k, len(positions), r.test_accuracy)
            return r.metrics, pred

        _, pred1 = train_net(1, np.arange(len(train_idx)))
        pos2, extra2 = _ensure_min(select_net2(pred1 == train_labels, rng), len(train_idx), min_size, rng)
        topped.append(0)
        topped.append(extra2)
        _, pred2 = train_net(2, pos2)
        pos3, extra3 = _ensure_min(select_net3(pred1, pred2), len(train_idx), min_size, rng)
        topped.append(extra3)
        train_net(3, pos3)

        y = ds.test_labels
        combined = combine_outputs(test_logits, combine)
        ens_acc = (combined.argmax(1) == y).float().mean().item()
        result = {
            "model": cfg.model,
            "combine": combine,
            "nets": [{"net": k + 1, "train_patterns": subsets[k], "topped_up_with_random": topped[k],
                      "test_accuracy": nets[k]["test_accuracy"], "train_seconds": nets[k]["train_seconds"],
                      "run_dir": str(run_dir / f"net{k + 1}")} for k in range(3)],
            "net2_selection": "50% patterns net 1 got wrong + 50% it got right",
            "net3_selection": "patterns where nets 1 and 2 disagree",
            "ensemble_test_accuracy": ens_acc,
            "train_seconds": round(sum(n["train_seconds"] for n in nets), 3),
            "wall_seconds": round(time.perf_counter() - t0, 3),
            "seed": cfg.seed,
        }
        atomic_write_json(run_dir / runs.BOOST_SUMMARY, result)
        log_group_result(group, {"ensemble_test_accuracy": ens_acc}, [run_dir / runs.BOOST_SUMMARY])
    return result


def format_boost(result: dict) -> str:
    lines = [f"boosting {result['model']} (outputs added as {result['combine']})",
             f"{'net':<10} {'patterns':>9} {'test acc':>9}"]
    for n in result["nets"]:
        note = f"  (+{n['topped_up_with_random']} random to reach a minimum)" if n["topped_up_with_random"] else ""
        lines.append(f"net {n['net']:<6} {n['train_patterns']:>9} {100 * n['test_accuracy']:>8.2f}%{note}")
    lines.append(f"{'ensemble':<10} {'':>9} {100 * result['ensemble_test_accuracy']:>8.2f}%")
    lines.append(f"training time {result['train_seconds']:.1f} s")
    return "\n".join(lines)
