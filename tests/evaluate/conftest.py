"""Tiny synthetic runs: mlp_002 trained for one epoch on 300 fake 28x28 images, in about a second."""

from __future__ import annotations

import pytest

from bands import band_dataset
from fashionbench.data.sources import Dataset
from fashionbench.train.config import TrainConfig
from fashionbench.train.run import train_run


def synthetic_dataset(n_train: int = 300, n_test: int = 200, seed: int = 0) -> Dataset:
    """Each class is a faint horizontal band at its own height in strong noise: one epoch of mlp_002
    gets most but not all of them right, so there are mistakes to report."""
    return band_dataset(n_train, n_test, seed)


def tiny_config(**kw) -> TrainConfig:
    base = dict(model="mlp_002", epochs=2, batch_size=32, device="cpu", precision="fp32", val_fraction=0.1, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def train_tiny(run_dir, dataset=None, **kw) -> dict:
    return train_run(tiny_config(**kw), run_dir, dataset=dataset or synthetic_dataset()).metrics


@pytest.fixture(scope="session")
def eval_dataset() -> Dataset:
    return synthetic_dataset()


@pytest.fixture(scope="session")
def train_tiny_run():
    """train_tiny(run_dir, dataset, **config) as a fixture (test modules cannot import conftest)."""
    return train_tiny


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, eval_dataset):
    """One trained run folder (do not modify it; copy it first)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mlp-s0"
    train_tiny(run_dir, eval_dataset)
    return run_dir
