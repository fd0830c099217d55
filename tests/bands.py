"""Band datasets for tests: class k is a horizontal band at its own height on noise."""

from __future__ import annotations

import torch

from fashionbench import FASHION_CLASSES
from fashionbench.data.sources import Dataset


def band_dataset(n_train: int = 300, n_test: int = 200, seed: int = 0, *, noise: int = 200, boost: int = 45,
                 rows: int = 4) -> Dataset:
    """`noise` is the background's top value, `boost` the band's extra brightness, `rows` its height:
    the defaults (faint bands in strong noise) leave mistakes for one epoch of mlp_002 to make."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.arange(n) % 10
        x = torch.randint(0, noise, (n, 28, 28), generator=g)
        for k in range(10):
            x[y == k, 2 + 2 * k: 2 + 2 * k + rows, 4:24] += boost
        return x.clamp(0, 255).to(torch.uint8), y.long()

    tx, ty = make(n_train)
    sx, sy = make(n_test)
    return Dataset(tx, ty, sx, sy, list(FASHION_CLASSES), name="synthetic", source="tests")
