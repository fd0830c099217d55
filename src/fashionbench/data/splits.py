"""Stratified holdout, data fractions and k-fold splits (indices into the training set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from ..errors import ConfigError


def _labels_np(labels) -> np.ndarray:
    return labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)


def stratified_subset(labels, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced `fraction` of the samples."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"--data-fraction must be in (0, 1], got {fraction}")
    y = _labels_np(labels)
    idx = np.arange(len(y))
    if fraction == 1:
        return idx
    keep, _ = train_test_split(idx, train_size=fraction, stratify=y, random_state=seed)
    return np.sort(keep)


def stratified_holdout(labels, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) with the same class mix in both."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    y = _labels_np(labels)
    idx = np.arange(len(y))
    if val_fraction == 0:
        return idx, idx[:0]
    train, val = train_test_split(idx, test_size=val_fraction, stratify=y, random_state=seed)
    return np.sort(train), np.sort(val)


def stratified_kfold(labels, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    y = _labels_np(labels)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in skf.split(np.zeros(len(y)), y)]


@dataclass
class Split:
    """Indices into the training set: what a run trains on and what it validates on."""

    train_idx: np.ndarray
    val_idx: np.ndarray


def split_training_set(labels, data_fraction: float, val_fraction: float, seed: int) -> Split:
    """Stratified data fraction first, then a stratified validation holdout from what is left."""
    subset = stratified_subset(labels, data_fraction, seed)
    tr, va = stratified_holdout(_labels_np(labels)[subset], val_fraction, seed)
    return Split(subset[tr], subset[va])
