"""One training run end to end: data -> model -> fit -> test evaluation -> run folder."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import __version__
from ..data.augment import build_augment
from ..data.normalize import Normalization, to_float
from ..data.sources import Dataset, load_dataset
from ..data.splits import stratified_holdout, stratified_subset
from ..errors import CheckpointError, ConfigError
from ..evaluate.metrics import classification_metrics
from ..models.registry import count_params, create_model, place_model
from ..utils import (atomic_savez, atomic_write_json, machine_description, resolve_device, resolve_precision,
                     seed_everything)
from .callbacks import EarlyStopping, RunWriter
from .checkpoint import make_checkpoint, read_checkpoint
from .config import TrainConfig, validate
from .engine import Lookahead, TrainState, evaluate, fit
from .optim import build_loss, build_optimizer, build_scheduler, param_groups

log = logging.getLogger("fashionbench.train")


@dataclass
class Split:
    train_idx: np.ndarray
    val_idx: np.ndarray


def split_training_set(labels: torch.Tensor, cfg: TrainConfig) -> Split:
    """Stratified data fraction first, then a stratified validation holdout from what is left."""
    subset = stratified_subset(labels, cfg.data_fraction, cfg.seed)
    tr, va = stratified_holdout(labels[subset], cfg.val_fraction, cfg.seed)
    return Split(subset[tr], subset[va])


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.recipe or cfg.model}-s{cfg.seed}-{stamp}"


def _check_run_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(f"run folder {run_dir} already holds files; pass another --out, "
                          f"--resume {run_dir} to continue it, or --overwrite to replace it")


def freeze_features(model: torch.nn.Module) -> int:
    """Train only the head: parameters under `model.head_prefixes`, else the last Linear layer's.

    Returns the number of parameters left trainable."""
    prefixes = getattr(model, "head_prefixes", None)
    if prefixes is None:
        last = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1:]
        if not last:
            raise ConfigError("--freeze features needs a model with a Linear classifier head")
        prefixes = (last[0] + ".",)
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(tuple(prefixes))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    """The model `cfg` names, with starting weights when it asks for them."""
    kwargs = dict(cfg.model_args)
    if cfg.pretrained:
        kwargs["pretrained"] = cfg.pretrained
    if cfg.weights:
        kwargs["weights"] = cfg.weights
    model = create_model(cfg.model, num_classes=num_classes, **kwargs)
    if cfg.freeze == "features":
        freeze_features(model)
    return model


def train_model(cfg: TrainConfig, run_dir: str | Path, *, dataset: Dataset | None = None, resume: bool = False,
                overwrite: bool = False, split: Split | None = None, callbacks: Sequence = ()) -> dict:
    """Train as `cfg` says, write the run folder and return the metrics dict.

    `dataset` skips loading (callers that train many models pass it once); `split` replaces
    the stratified fraction/holdout split (k-fold cross-validation passes its folds); extra
    `callbacks` see every event (benchmarks use them to test after each epoch)."""
    validate(cfg)
    run_dir = Path(run_dir)
    if not resume:
        _check_run_dir(run_dir, overwrite)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir)
    split = split or split_training_set(ds.train_labels, cfg)
    train_x, train_y = ds.train_images[split.train_idx].to(device), ds.train_labels[split.train_idx].to(device)
    val = None
    if len(split.val_idx):
        val = (ds.train_images[split.val_idx].to(device), ds.train_labels[split.val_idx].to(device))
    normalizer = Normalization.fit(cfg.normalize, ds.train_images[split.train_idx])

    model = build_model(cfg, ds.num_classes).to(device)
    if hasattr(model, "init_from_data") and not resume:  # data-dependent init, e.g. patch whitening
        model.init_from_data(normalizer(to_float(train_x[:5000])))
    model, channels_last = place_model(model, device)
    optimizer = build_optimizer(param_groups(model, cfg.lr, cfg.weight_decay, cfg.bias_lr_scale), cfg.optimizer,
                                cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    steps = len(train_x) // cfg.batch_size if cfg.drop_last else len(range(0, len(train_x), cfg.batch_size))
    scheduler, per_batch = build_scheduler(optimizer, cfg.schedule, epochs=cfg.epochs, steps_per_epoch=steps,
                                           warmup_epochs=cfg.warmup_epochs, step_epochs=cfg.step_epochs,
                                           gamma=cfg.gamma, final_factor=cfg.final_lr_factor)
    lookahead = Lookahead(model, cfg.epochs * steps, cfg.lookahead_every, cfg.lookahead_decay) if cfg.lookahead else None
    loss_fn = build_loss(cfg.loss, cfg.label_smoothing)
    state = TrainState()
    if resume:
        last = read_checkpoint(run_dir / "last.pt")
        if "train_state" not in last:
            raise CheckpointError(f"{run_dir / 'last.pt'} holds no resume state; start a new run instead")
        model.load_state_dict(last["state_dict"])
        optimizer.load_state_dict(last["optimizer"])
        if last.get("scheduler") is not None:
            scheduler.load_state_dict(last["scheduler"])
        if lookahead is not None:
            lookahead.load_state_dict(last["lookahead"])
        state = TrainState.from_dict(last["train_state"])  # a run that stopped early stays stopped
        if (run_dir / "best.pt").is_file():
            state.best_state = read_checkpoint(run_dir / "best.pt")["state_dict"]
        log.info("resuming %s after epoch %d of %d", run_dir, state.epoch, cfg.epochs)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", cfg.to_dict())

    def payload(st: TrainState, kind: str) -> dict:
        weights = st.best_state if kind == "best" else model.state_dict()
        extra = {}
        if kind == "last":
            extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "train_state": st.to_dict(),
                     "lookahead": lookahead.state_dict() if lookahead is not None else None}
        return make_checkpoint(model_name=cfg.model, model_args=cfg.model_args, state_dict=weights,
                               class_names=ds.class_names, normalization=normalizer, config=cfg.to_dict(),
                               epoch=st.epoch if kind == "last" else st.best_epoch, **extra)

    callbacks = [RunWriter(run_dir, payload), *callbacks]
    if cfg.early_stopping:
        callbacks.insert(0, EarlyStopping(cfg.early_stopping))
    state = fit(model, (train_x, train_y), val, epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=optimizer,
                loss_fn=loss_fn, normalizer=normalizer, seed=cfg.seed, precision=precision,
                augment=build_augment(cfg.augment), scheduler=scheduler, per_batch_schedule=per_batch,
                channels_last=channels_last, monitor=cfg.resolved_monitor, eval_batch_size=cfg.eval_batch_size,
                callbacks=callbacks, state=state, drop_last=cfg.drop_last, lookahead=lookahead)
    if cfg.restore_best and state.best_state is not None:
        model.load_state_dict(state.best_state)

    t0 = time.perf_counter()
    test_x = ds.test_images.to(device)
    ev = evaluate(model, test_x, ds.test_labels, normalizer=normalizer, batch_size=cfg.eval_batch_size,
                  precision=precision, channels_last=channels_last, tta=cfg.tta)
    test_seconds = time.perf_counter() - t0
    metrics = {
        "model": cfg.model,
        "recipe": cfg.recipe,
        "params": count_params(model),
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.epoch < cfg.epochs,
        "train_seconds": round(state.train_seconds, 3),
        "test_seconds": round(test_seconds, 3),
        "train_size": len(train_x),
        "val_size": 0 if val is None else len(val[0]),
        "val_accuracy": state.history[-1]["val_accuracy"] if val is not None else None,
        "evaluated_weights": "best" if cfg.restore_best else "last",
        "tta": cfg.tta,
        **classification_metrics(ev["logits"], ds.test_labels.numpy(), ds.class_names),
        "class_names": ds.class_names,
        "seed": cfg.seed,
        "device": str(device),
        "precision": precision,
        "dataset": ds.name,
        "data_source": ds.source,
        "fashionbench_version": __version__,
        "torch_version": torch.__version__,
        "machine": machine_description(),
    }
    # run outputs (issue 5): reports and extra artifacts hook in here
    from ..evaluate.report import write_run_outputs

    metrics.update(write_run_outputs(run_dir, model=model, dataset=ds, logits=ev["logits"], normalizer=normalizer,
                                     precision=precision, channels_last=channels_last, train_idx=split.train_idx,
                                     metrics=metrics))
    atomic_savez(run_dir / "predictions.npz", logits=ev["logits"].numpy().astype(np.float32),
                 labels=ds.test_labels.numpy().astype(np.int64))
    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder (no config.json); pass the folder `train` wrote")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise CheckpointError(f"{path} is corrupt ({e}); the run cannot be resumed, start a new one") from None
