"""The test step of a run: fit the softmax temperature, evaluate on the test set, and the
`RunResult` that holds the metrics record, the trained model and its test logits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .. import __version__, runs
from ..data.normalize import Normalization
from ..data.sources import Dataset
from ..data.splits import Split
from ..evaluate.metrics import classification_metrics
from ..evaluate.stats import fit_temperature, stratified_sample
from ..forward import inference_model, predict_logits
from ..inference import Predictor
from ..models.registry import count_params
from ..utils import machine_description
from .config import TrainConfig
from .distributed import Distributed
from .engine import TrainState, evaluate

if TYPE_CHECKING:
    from .run import RunSetup


@dataclass
class RunResult:
    """What a run produced: the trained model (in memory), its metrics, its state and test logits."""

    config: TrainConfig
    run_dir: Path | None
    model: nn.Module
    metrics: runs.RunMetrics
    state: TrainState
    test_logits: torch.Tensor
    dataset: Dataset
    split: Split
    normalizer: Normalization
    device: torch.device
    precision: str
    temperature: float = 1.0

    @property
    def test_accuracy(self) -> float:
        return float(self.metrics["test_accuracy"])

    def predictor(self, tta: Sequence[str] | str | None = None, batch_size: int | None = None) -> Predictor:
        """The trained model as a Predictor (the run's TTA and precision unless told otherwise)."""
        return Predictor.from_model(self.model, self.normalizer, self.dataset.class_names, device=self.device,
                                    precision=self.precision, tta=self.config.tta if tta is None else tta,
                                    batch_size=batch_size or self.config.eval_batch_size,
                                    temperature=self.temperature,
                                    info={"model": self.config.model, "epoch": self.state.epoch,
                                          "config": self.config.to_dict(), "path": str(self.run_dir or "")})

    def __repr__(self) -> str:
        return (f"RunResult({self.config.recipe or self.config.model}: test accuracy "
                f"{100 * self.test_accuracy:.2f}% after {self.state.epoch} epochs, run folder {self.run_dir})")


CALIBRATION_TRAIN_IMAGES = 2000  # without a validation split: a stratified sample of the training images


def calibrate(s: RunSetup) -> dict:
    """Fit the softmax temperature (with the run's TTA, as predictions are made) on the validation
    split, or without one on a stratified sample of the training images: their logits are a little
    more confident than unseen images' (on fast-60s: ECE 18% -> 2.8%, against 1.5% at the
    test-optimal T), far better than none. The test set never tunes anything."""
    if s.val is not None and len(s.val[0]):
        x, y, where = s.val[0], s.val[1], f"validation split ({len(s.val[0])} images)"
    else:
        idx = torch.as_tensor(stratified_sample(s.train[1].cpu().numpy(), CALIBRATION_TRAIN_IMAGES, seed=s.cfg.seed))
        x, y = s.train[0][idx.to(s.train[0].device)], s.train[1][idx.to(s.train[1].device)]
        where = f"{len(idx)} training images (no validation split)"
    if not len(x):
        return {}
    s.model.eval()
    logits = predict_logits(inference_model(s.model), x, normalizer=s.normalizer, batch_size=s.cfg.eval_batch_size,
                            precision=s.precision, channels_last=s.channels_last, tta=s.cfg.tta)
    return {"temperature": fit_temperature(logits.numpy(), y.cpu().numpy()), "temperature_fitted_on": where}


def test_run(s: RunSetup, state: TrainState, run_dir: Path | None = None, dist: Distributed | None = None) -> RunResult:
    """Calibrate on the validation split, evaluate on the test set; the result holds the metrics record.

    Every rank of a distributed run tests (the weights are the same), which also checks that they are."""
    cfg, ds = s.cfg, s.dataset
    s.calibration = calibrate(s)
    t0 = time.perf_counter()
    ev = evaluate(s.model, ds.test_images.to(s.device), ds.test_labels, normalizer=s.normalizer,
                  batch_size=cfg.eval_batch_size, precision=s.precision, channels_last=s.channels_last, tta=cfg.tta)
    metrics: runs.RunMetrics = {
        "model": cfg.model,
        "recipe": cfg.recipe,
        "params": count_params(s.model),
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.epoch < cfg.epochs,
        "train_seconds": round(state.train_seconds, 3),
        "test_seconds": round(time.perf_counter() - t0, 3),
        "train_size": len(s.train[0]),
        "val_size": 0 if s.val is None else len(s.val[0]),
        "val_accuracy": state.history[-1]["val_accuracy"] if s.val is not None and state.history else None,
        "evaluated_weights": "best" if cfg.restore_best else "last",
        "tta": cfg.tta,
        "temperature": s.calibration.get("temperature"),
        "temperature_fitted_on": s.calibration.get("temperature_fitted_on"),
        **classification_metrics(ev["logits"], ds.test_labels.numpy(), ds.class_names),
        "class_names": ds.class_names,
        "seed": cfg.seed,
        "device": str(s.device),
        "precision": s.precision,
        "channels_last": s.channels_last,
        "dataset": ds.name,
        "data_source": ds.source,
        "fashionbench_version": __version__,
        "torch_version": torch.__version__,
        "machine": machine_description(),
    }
    if dist is not None:
        metrics["distributed"] = dist.summary(s.model)
    return RunResult(cfg, run_dir, s.model, metrics, state, ev["logits"], ds, s.split, s.normalizer, s.device,
                     s.precision, s.calibration.get("temperature", 1.0))


__all__ = ["CALIBRATION_TRAIN_IMAGES", "RunResult", "calibrate", "test_run"]
