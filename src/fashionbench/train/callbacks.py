"""A handful of callback events: on_train_begin, on_batch_end, on_epoch_end, on_train_end."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .. import runs
from .engine import TrainState

log = logging.getLogger("fashionbench.train")


class Callback:
    def on_train_begin(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState, row: dict) -> None: ...
    def on_epoch_end(self, state: TrainState, row: dict) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class EarlyStopping(Callback):
    """Stop after `patience` epochs without improvement of the monitored metric (Keras semantics)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        if state.epoch - state.best_epoch >= self.patience:
            log.info("early stopping at epoch %d: no improvement since epoch %d", state.epoch, state.best_epoch)
            state.stop = True


class RunWriter(Callback):
    """Writes history.csv, batches.csv, best.pt and last.pt into the run folder after every epoch.

    `payload(state, kind)` builds the checkpoint dict ('best' holds the best weights,
    'last' adds everything needed to resume).
    """

    def __init__(self, run_dir: Path, payload: Callable[[TrainState, str], dict]) -> None:
        self.run_dir = Path(run_dir)
        self.payload = payload

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        runs.write_history(self.run_dir, state.history, state.batches)
        if state.improved:
            runs.write_checkpoint(self.run_dir, "best", self.payload(state, "best"))
        runs.write_checkpoint(self.run_dir, "last", self.payload(state, "last"))
