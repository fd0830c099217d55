"""The run lifecycle's choices that depend on the model: the thread layout."""

from __future__ import annotations

from fashionbench.train.config import TrainConfig


def test_numpy_models_train_with_one_torch_thread_unless_asked(tiny_dataset, monkeypatch):
    """2 torch + 2 BLAS threads on 2 cores spin against each other (numpy_mlp 20x slower); the
    model's own choice holds for its run only, and explicit --threads win."""
    import torch

    from fashionbench.models.registry import model_info
    from fashionbench.train.run import train_run, train_threads

    cpu = torch.device("cpu")
    assert model_info("numpy_mlp").cpu_threads == 1 and model_info("mlp_002").cpu_threads is None
    assert train_threads(TrainConfig(model="numpy_mlp"), cpu) == 1
    assert train_threads(TrainConfig(model="numpy_mlp", threads=2), cpu) == 2
    assert train_threads(TrainConfig(model="mlp_002"), cpu) is None
    seen = []
    monkeypatch.setattr("fashionbench.models.numpy_mlp.forward_np", _record_threads(seen))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_run(TrainConfig(model="numpy_mlp", epochs=1, batch_size=64, device="cpu", precision="fp32"),
                  dataset=tiny_dataset, outputs=())
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _record_threads(seen):
    import torch

    from fashionbench.models import numpy_mlp

    real = numpy_mlp.forward_np

    def forward(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    return forward


def test_numpy_models_predict_with_their_own_thread_count(tiny_dataset, monkeypatch, tmp_path):
    """Loading a checkpoint applies the model's registered CPU threads to its forward only;
    threads= given explicitly wins."""
    import torch

    import fashionbench as fb
    from fashionbench.train.run import train_run

    train_run(TrainConfig(model="numpy_mlp", epochs=1, batch_size=64, device="cpu", precision="fp32"),
              dataset=tiny_dataset, run_dir=tmp_path / "run", outputs=())
    seen = []
    monkeypatch.setattr("fashionbench.models.numpy_mlp.forward_np", _record_threads(seen))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        images = tiny_dataset.test_images[:8]
        assert len(fb.load(tmp_path / "run").predict(images)) == 8
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        fb.load(tmp_path / "run", threads=2).predict(images)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_resume_takes_its_own_threads_not_those_of_an_earlier_start(tiny_dataset, monkeypatch, tmp_path):
    """--threads is about the machine at the time (another job beside it), not the run: a run started
    with explicit threads resumes with the model's own choice unless this call gives some."""
    import pytest
    import torch

    import fashionbench as fb
    from fashionbench.train import callbacks as callbacks_mod
    from fashionbench.train.run import train_run

    original = callbacks_mod.RunWriter.on_epoch_end

    def crash(self, state, row):
        original(self, state, row)
        raise KeyboardInterrupt

    c = TrainConfig(model="numpy_mlp", epochs=2, batch_size=64, device="cpu", precision="fp32", threads=2)
    monkeypatch.setattr(callbacks_mod.RunWriter, "on_epoch_end", crash)
    with pytest.raises(KeyboardInterrupt):
        train_run(c, tmp_path / "run", dataset=tiny_dataset)
    monkeypatch.setattr(callbacks_mod.RunWriter, "on_epoch_end", original)
    seen = []
    monkeypatch.setattr("fashionbench.models.numpy_mlp.forward_np", _record_threads(seen))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert fb.resume(tmp_path / "run", data=tiny_dataset).metrics["epochs"] == 2
        assert seen and set(seen) == {1}
        assert fb.make_config(config=str(tmp_path / "run" / "config.json")).threads is None
    finally:
        torch.set_num_threads(before)
