"""Datasets for notebooks: `fashionbench.datasets.load()` returns Fashion-MNIST as in-memory tensors.

`load` finds the data as every command does (--data-dir / FASHIONBENCH_DATA, the user cache,
Debian's package, then a download) and verifies it; `load("mnist-format", data_dir=DIR)` reads
any folder of MNIST-format IDX files.
"""

from __future__ import annotations

from pathlib import Path

from . import FASHION_CLASSES
from .data.sources import DATASETS, Dataset, load_dataset

__all__ = ["CLASSES", "DATASETS", "Dataset", "load"]

CLASSES = FASHION_CLASSES


def load(name: str = "fashion-mnist", data_dir: str | Path | None = None, *, download: bool = True) -> Dataset:
    """The whole dataset: train/test images as uint8 (N, 28, 28) tensors, labels as int64 (N,)."""
    return load_dataset(name, data_dir, allow_download=download)
