"""Stratified holdout, data fractions and k-fold splits (indices into the training set)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from ..errors import ConfigError


def _labels_np(labels) -> np.ndarray:
    return labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)


def _seed(seed) -> int:
    """sklearn's random_state takes 0..2**32-1: refuse negatives, fold larger seeds like
    utils.seed_everything does for NumPy, so any accepted --seed works."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"--seed must be a whole number >= 0, got {seed!r}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}; use 0 or a positive seed")
    return int(seed) % 2**32


def _nice_at_least(x: float, works: Callable[[float], bool]) -> float:
    """The smallest value >= x with two significant digits for which `works` holds (1 if none
    below): a fraction a person can type, checked with the same float rounding sklearn uses."""
    unit = 10.0 ** (math.floor(math.log10(max(x, 1e-9))) - 1)
    steps = math.ceil(x / unit - 1e-9)
    while steps * unit < 1:
        value = round(steps * unit, 12)
        if works(value):
            return value
        steps += 1
    return 1.0


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _need_two_per_class(y: np.ndarray, option: str, value: float, way_out: str) -> None:
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        c = classes[counts.argmin()]
        raise ConfigError(f"{option} {value} needs a stratified split, but class {c} has only 1 image; "
                          f"{way_out}")


def _every_class_trains(y: np.ndarray, train: np.ndarray, option: str, value: float, fix: str) -> None:
    """A class without a training image would silently never be predicted: refuse."""
    classes, counts = np.unique(y, return_counts=True)
    lost = np.setdiff1d(classes, np.unique(y[train]))
    if lost.size:
        sizes = ", ".join(f"class {c}: {counts[classes == c][0]} images" for c in lost[:5])
        raise ConfigError(f"{option} {value} leaves {lost.size} class(es) without a training image "
                          f"({sizes}); {fix}")


def _sklearn_split(option: str, value: float, idx: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:
    try:
        return train_test_split(idx, **kw)
    except ValueError as e:  # checked above; anything sklearn still refuses ends as one clear line
        raise ConfigError(f"{option} {value} cannot split these labels ({e}); choose another {option}") from None


def stratified_subset(labels, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced `fraction` of the samples."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"--data-fraction must be in (0, 1], got {fraction}")
    seed = _seed(seed)
    y = _labels_np(labels)
    idx = np.arange(len(y))
    if fraction == 1:
        return idx
    n, k = len(y), len(np.unique(y))
    if n < 2 * max(k, 1):  # both sides of the split need every class
        raise ConfigError(f"--data-fraction {fraction}: {n} images are too few to take a stratified part "
                          f"of {k} classes; use --data-fraction 1")
    kept = math.floor(fraction * n)  # sklearn's rounding for a float train_size
    if kept < k:
        least = _nice_at_least(k / n, lambda f: math.floor(f * n) >= k)
        raise ConfigError(f"--data-fraction {fraction} keeps {kept} of {n} images, fewer than the {k} "
                          f"classes; use at least {_fmt(least)}")
    if n - kept < k:
        drop = _nice_at_least(k / n, lambda c: n - math.floor((1 - c) * n) >= k)
        raise ConfigError(f"--data-fraction {fraction} leaves out {n - kept} of {n} images, fewer than the "
                          f"{k} classes a stratified split needs; use 1 to keep everything, or at most "
                          f"{_fmt(1 - drop)}")
    _need_two_per_class(y, "--data-fraction", fraction, "use --data-fraction 1")
    keep, _ = _sklearn_split("--data-fraction", fraction, idx, train_size=fraction,
                             stratify=y, random_state=seed)
    _every_class_trains(y, keep, "--data-fraction", fraction, "use a larger --data-fraction (or 1)")
    return np.sort(keep)


def stratified_holdout(labels, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) with the same class mix in both."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    seed = _seed(seed)
    y = _labels_np(labels)
    idx = np.arange(len(y))
    if val_fraction == 0:
        return idx, idx[:0]
    n, k = len(y), len(np.unique(y))
    if n < 2 * max(k, 1):  # both sides of the split need every class
        raise ConfigError(f"--val-fraction {val_fraction}: {n} images are too few to hold out a stratified "
                          f"validation set of {k} classes; use --val-fraction 0")
    held = math.ceil(val_fraction * n)  # sklearn's rounding for a float test_size
    if held < k:
        least = _nice_at_least((k - 1) / n, lambda f: math.ceil(f * n) >= k)  # ceil: just above (k-1)/n
        raise ConfigError(f"--val-fraction {val_fraction} holds out {held} of {n} images, fewer than the "
                          f"{k} classes; use at least {_fmt(least)}, or 0 for no validation set")
    if n - held < k:
        keep = _nice_at_least(k / n, lambda c: n - math.ceil((1 - c) * n) >= k)
        raise ConfigError(f"--val-fraction {val_fraction} leaves {n - held} of {n} images for training, "
                          f"fewer than the {k} classes; use at most {_fmt(1 - keep)}")
    _need_two_per_class(y, "--val-fraction", val_fraction, "use --val-fraction 0")
    train, val = _sklearn_split("--val-fraction", val_fraction, idx, test_size=val_fraction,
                                stratify=y, random_state=seed)
    _every_class_trains(y, train, "--val-fraction", val_fraction, "use a smaller --val-fraction (or 0)")
    return np.sort(train), np.sort(val)


def stratified_kfold(labels, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    seed = _seed(seed)
    y = _labels_np(labels)
    classes, counts = np.unique(y, return_counts=True)
    smallest = int(counts.min()) if len(y) else 0
    if folds > smallest:  # sklearn would fail, or leave a class out of some folds' validation
        c = classes[counts.argmin()] if len(y) else None
        if smallest < 2:
            raise ConfigError(f"--folds {folds}: class {c} has only {smallest} image(s), and k-fold needs at "
                              "least 2 per class; cross-validate on data with more images per class")
        raise ConfigError(f"--folds {folds} is more than the {smallest} images of class {c}, the smallest "
                          f"class (every fold must hold each class); use --folds {smallest} or fewer")
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
