"""A tiny trained run and its exported ONNX file, shared by the export and serve tests."""

from __future__ import annotations

import pytest

from bands import band_dataset
from fashionbench.data.sources import Dataset
from fashionbench.serve.local import start_server as serve_process
from fashionbench.train.config import TrainConfig
from fashionbench.train.run import train_run


@pytest.fixture(scope="session")
def band_data() -> Dataset:
    """Bright bands on mild noise: learnable in a few epochs."""
    return band_dataset(400, 300, noise=120, boost=120, rows=3)


def small_fastnet_run(run_dir, data: Dataset, *, epochs: int, tta: list[str], seed: int):
    """A small FastNet trained on `data` with a validation split (so its temperature is fitted)."""
    cfg = TrainConfig(model="fastnet", model_args={"widths": [8, 16, 16], "whiten_stride": 2,
                                                    "pools": [True, True, False]},
                      epochs=epochs, batch_size=50, optimizer="adam", lr=1e-2, device="cpu", precision="fp32",
                      val_fraction=0.1, tta=tta, seed=seed)
    train_run(cfg, run_dir, dataset=data)
    return run_dir


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory, band_data):
    """A small FastNet (TTA flip+translate, temperature fitted) trained for 5 epochs."""
    return small_fastnet_run(tmp_path_factory.mktemp("serve-runs") / "fast", band_data, epochs=5,
                             tta=["flip", "translate"], seed=0)


@pytest.fixture(scope="session")
def second_run(tmp_path_factory, band_data):
    """Another seed, 3 epochs and flip TTA only: the second member of an ensemble."""
    return small_fastnet_run(tmp_path_factory.mktemp("serve-runs") / "fast-s1", band_data, epochs=3, tta=["flip"],
                             seed=1)


@pytest.fixture(scope="session")
def onnx_file(fast_run, band_data, tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="pip install 'fashionbench[export]'")
    from fashionbench.serve.export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "fast.onnx"
    export_onnx(fast_run, out, data=band_data)
    return out


@pytest.fixture(scope="session")
def start_server():
    """`fashionbench serve MODEL *extra` on a free 127.0.0.1 port, one thread: (process, base URL)."""
    return serve_process
