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


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory, band_data):
    """A small FastNet (TTA flip+translate, temperature fitted) trained for 5 epochs."""
    run_dir = tmp_path_factory.mktemp("serve-runs") / "fast"
    cfg = TrainConfig(model="fastnet", model_args={"widths": [8, 16, 16], "whiten_stride": 2,
                                                    "pools": [True, True, False]},
                      epochs=5, batch_size=50, optimizer="adam", lr=1e-2, device="cpu", precision="fp32",
                      val_fraction=0.1, tta=["flip", "translate"], seed=0)
    train_run(cfg, run_dir, dataset=band_data)
    return run_dir


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
