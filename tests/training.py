"""What the training tests share: a small config, and a run crashed after an epoch then resumed."""

import pytest

from fashionbench.train import callbacks as callbacks_mod
from fashionbench.train.config import TrainConfig
from fashionbench.train.run import train_run

# for tests of training itself: the report's plots take seconds a run and are tested elsewhere
METRICS_ONLY = ("metrics",)


def cfg(**kw) -> TrainConfig:
    base = dict(model="mlp_002", epochs=3, batch_size=64, lr=1e-3, device="cpu", precision="fp32", seed=0)
    return TrainConfig(**{**base, **kw})


class Interrupt(Exception):
    pass


def interrupted_then_resumed(c: TrainConfig, run_dir, dataset, monkeypatch, after_epoch: int) -> dict:
    """Train `c` into run_dir, crash after `after_epoch` epochs, resume: the resumed run's metrics."""
    original = callbacks_mod.RunWriter.on_epoch_end

    def crash(self, state, row):
        original(self, state, row)
        if state.epoch == after_epoch:
            raise Interrupt

    monkeypatch.setattr(callbacks_mod.RunWriter, "on_epoch_end", crash)
    with pytest.raises(Interrupt):
        train_run(c, run_dir, dataset=dataset)
    monkeypatch.setattr(callbacks_mod.RunWriter, "on_epoch_end", original)
    return train_run(c, run_dir, dataset=dataset, resume=True, outputs=METRICS_ONLY).metrics
