"""k-fold cross-validation: stratified folds that partition the data, and a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import torch

from fashionbench.experiments.crossval import cross_validate, format_cv, kfold_splits
from fashionbench.train.config import TrainConfig


def test_folds_partition_and_are_stratified():
    labels = torch.arange(300) % 10
    splits = kfold_splits(labels, 3, seed=0)
    assert len(splits) == 3
    vals = np.concatenate([s.val_idx for s in splits])
    assert sorted(vals.tolist()) == list(range(300))  # each sample validates exactly once
    for s in splits:
        assert not set(s.train_idx) & set(s.val_idx)
        assert np.bincount(labels[s.val_idx].numpy(), minlength=10).tolist() == [10] * 10


def test_folds_respect_data_fraction():
    labels = torch.arange(1000) % 10
    splits = kfold_splits(labels, 2, seed=1, data_fraction=0.2)
    assert sum(len(s.val_idx) for s in splits) == 200
    assert np.bincount(labels[splits[0].val_idx].numpy(), minlength=10).tolist() == [10] * 10


def test_cross_validate_end_to_end(tiny_dataset, tmp_path):
    cfg = TrainConfig(model="mlp_002", epochs=2, batch_size=64, lr=2e-3, device="cpu", precision="fp32")
    res = cross_validate(cfg, tmp_path / "cv", 3, dataset=tiny_dataset)
    assert [r["fold"] for r in res["folds"]] == [1, 2, 3]
    assert all(r["val_size"] == 200 and r["train_size"] == 400 for r in res["folds"])
    best = max(res["folds"], key=lambda r: r["val_accuracy"])
    assert res["chosen_fold"] == best["fold"] and res["test_accuracy"] == best["test_accuracy"]
    assert (tmp_path / "cv" / "cv.json").is_file()
    assert "chosen" in format_cv(res)
