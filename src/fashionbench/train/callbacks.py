"""A handful of callback events: on_train_begin, on_batch_end, on_epoch_end, on_train_end."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Callable

from ..utils import atomic_torch_save, atomic_write_text
from .engine import TrainState

log = logging.getLogger("fashionbench.train")

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "elapsed"]
BATCH_COLUMNS = ["epoch", "step", "batch", "loss", "lr"]


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


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class RunWriter(Callback):
    """Writes history.csv, batches.csv, best.pt and last.pt into the run folder after every epoch.

    `payload(state, kind)` builds the checkpoint dict ('best' holds the best weights,
    'last' adds everything needed to resume).
    """

    def __init__(self, run_dir: Path, payload: Callable[[TrainState, str], dict]) -> None:
        self.run_dir = Path(run_dir)
        self.payload = payload

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        atomic_write_text(self.run_dir / "history.csv", csv_text(state.history, HISTORY_COLUMNS))
        atomic_write_text(self.run_dir / "batches.csv", csv_text(state.batches, BATCH_COLUMNS))
        if state.improved:
            atomic_torch_save(self.payload(state, "best"), self.run_dir / "best.pt")
        atomic_torch_save(self.payload(state, "last"), self.run_dir / "last.pt")
