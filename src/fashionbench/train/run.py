"""One training run in clear steps: setup -> fit -> test -> outputs.

`train_run` composes the steps for the usual case: claim the run folder (before any data
loads), set up data and model, fit with checkpoints after every epoch, test, then write the
outputs (predictions, report, metrics.json last, so a folder with metrics.json is a finished
run). Callers that need more take the steps one by one: a sweep trial skips the report, a
distributed run (train/distributed.py) passes `dist` on every rank and only rank 0 writes,
boosting reuses the trained model in the returned `RunResult`. The test step (temperature,
test set, `RunResult`) is testing.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import run_lock, runs
from ..checkpoint import make_checkpoint, read_checkpoint
from ..data.augment import build_augment
from ..data.normalize import Normalization, to_float
from ..data.sources import DATASETS, Dataset, load_dataset
from ..data.splits import Split, split_training_set
from ..errors import ConfigError, FashionbenchError
from ..layout import PROBE_BATCH, choose_layout, rule_layout
from ..models.registry import check_forward, create_model, model_info, place_model
from ..utils import keep_freed_memory, resolve_device, resolve_precision, seed_everything, set_threads
from .callbacks import EarlyStopping, RunWriter
from .config import TrainConfig, validate
from .distributed import Distributed
from .engine import DivergedError, Lookahead, LossFn, TrainState, epoch_steps, fit, prepare, progressive_sizes
from .muon import matmul_dtype
from .optim import build_loss, build_optimizer, build_scheduler, head_prefixes, param_groups
from .resume import load_run_config, restore
from .selection import EasySkipper, run_steps
from .testing import RunResult, test_run

log = logging.getLogger("fashionbench.train")

OUTPUTS = ("predictions", "report", "metrics")  # metrics.json marks a finished run


class TrainingError(FashionbenchError):
    """Training could not go on (for example the loss diverged)."""


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.recipe or cfg.model}-s{cfg.seed}-{stamp}"


def freeze_features(model: nn.Module) -> int:
    """Train only the head: parameters under `model.head_prefixes`, else the last Linear layer's.

    Returns the number of parameters left trainable."""
    try:
        prefixes = head_prefixes(model)
    except ConfigError:
        raise ConfigError("--freeze features needs a model with a Linear classifier head") from None
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(prefixes)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The model `cfg` names, with starting weights when it asks for them."""
    kwargs = dict(cfg.model_args)
    if cfg.pretrained:
        kwargs["pretrained"] = cfg.pretrained
    if cfg.weights:
        kwargs["weights"] = cfg.weights
    model = create_model(cfg.model, num_classes=num_classes, **kwargs)
    check_forward(model, cfg.model, num_classes, cfg.model_args)
    if cfg.freeze == "features":
        freeze_features(model)
    return model


@dataclass
class RunSetup:
    """Everything `fit` needs, built from a config: data on the device, model, optimizer, schedule."""

    cfg: TrainConfig
    dataset: Dataset
    split: Split
    device: torch.device
    precision: str
    normalizer: Normalization
    model: nn.Module  # what checkpoints and hooks see
    train_model: nn.Module  # what the loop calls: `model`, or a distributed wrapper around it
    channels_last: bool
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    per_batch_schedule: bool
    lookahead: Lookahead | None
    loss_fn: LossFn
    state: TrainState = field(default_factory=TrainState)
    calibration: dict = field(default_factory=dict)  # fitted after training: {"temperature": T}
    targets: torch.Tensor | None = None  # (N, C) soft training targets (distillation) instead of train's labels
    skipper: EasySkipper | None = None  # --skip-easy: the per-image losses and each epoch's draw
    sample_loss_fn: LossFn | None = None  # the loss per image, which --skip-easy weights and records

    def checkpoint(self, state: TrainState, kind: str) -> dict:
        """best.pt (the best epoch's weights) or last.pt (everything needed to resume)."""
        weights = state.best_state if kind == "best" else self.model.state_dict()
        extra = {}
        if kind == "last":
            extra = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "train_state": state.to_dict(),
                     "lookahead": self.lookahead.state_dict() if self.lookahead is not None else None,
                     "skipper": self.skipper.state_dict() if self.skipper is not None else None}
        return make_checkpoint(model_name=self.cfg.model, model_args=self.cfg.model_args, state_dict=weights,
                               class_names=self.dataset.class_names, normalization=self.normalizer,
                               config=self.cfg.to_dict(), epoch=state.epoch if kind == "last" else state.best_epoch,
                               **extra)


def train_threads(cfg: TrainConfig, device: torch.device) -> int | None:
    """The torch threads a run trains with: the config's, else on a CPU the model's own choice
    (one for NumPy models: 2 torch + 2 BLAS threads on 2 cores run numpy_mlp 20x slower), else torch's."""
    if cfg.threads is not None or device.type != "cpu":
        return cfg.threads
    return model_info(cfg.model).cpu_threads


def setup_run(cfg: TrainConfig, *, dataset: Dataset | None = None, split: Split | None = None,
              wrap: Callable[[nn.Module], nn.Module] | None = None, data_init: bool = True) -> RunSetup:
    """Load (or take) the data, split it, build and place the model, optimizer and schedule.

    `wrap` receives the placed model and returns what the loop trains (DistributedDataParallel);
    `data_init=False` skips data-dependent initialisation (a resumed run loads its weights)."""
    validate(cfg)
    device = resolve_device(cfg.device)
    resolve_precision(cfg.precision, device)  # a bad name fails before the data loads
    set_threads(train_threads(cfg, device))
    seed_everything(cfg.seed)
    ds = dataset or load_dataset(cfg.dataset, cfg.data_dir)
    split = split or split_training_set(ds.train_labels, cfg.data_fraction, cfg.val_fraction, cfg.seed)
    train_x, train_y = ds.train_images[split.train_idx].to(device), ds.train_labels[split.train_idx].to(device)
    if cfg.photos:  # the user's own labelled photos, converted as predict converts them, repeated
        from ..evaluate.photos import labelled_images

        px, py = labelled_images(cfg.photos, ds.num_classes)
        log.info("adding %d labelled photos x %d to the %d training images", len(px), cfg.photos_repeat, len(train_x))
        train_x = torch.cat([train_x, px.to(device).repeat(cfg.photos_repeat, 1, 1)])
        train_y = torch.cat([train_y, py.to(device).repeat(cfg.photos_repeat)])
    targets = None
    if cfg.teacher:
        from .distill import teacher_targets

        targets = teacher_targets(cfg.teacher, train_x, train_y, ds.num_classes, cfg.teacher_weight, device)
    val = None
    if len(split.val_idx):
        val = (ds.train_images[split.val_idx].to(device), ds.train_labels[split.val_idx].to(device))
    normalizer = Normalization.fit(cfg.normalize, ds.train_images[split.train_idx])

    model = build_model(cfg, ds.num_classes).to(device)
    if data_init and cfg.prune_from:
        from .prune import prune_from_checkpoint

        prune_from_checkpoint(cfg.prune_from, model, normalizer.kind)
    elif data_init and hasattr(model, "init_from_data"):  # data-dependent init, e.g. patch whitening
        model.init_from_data(normalizer(to_float(train_x[:5000])))
    if cfg.resize_min:
        _check_takes_side(model, prepare(train_x[:2], normalizer, False, size=cfg.resize_min), cfg)
    # the fastest precision and memory format for this model here (a probe, cached); every rank of a
    # distributed run must agree, so those follow the rule
    layout = (rule_layout(model, device, cfg.precision) if wrap else
              choose_layout(model, normalizer(to_float(train_x[:min(cfg.batch_size, PROBE_BATCH)])), device,
                            precision=cfg.precision, train=True))
    precision = layout.precision
    model, channels_last = place_model(model, device, layout.channels_last)
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.bias_lr_scale, cfg.backbone_lr_scale,
                          filter_lr=cfg.filter_lr if cfg.optimizer == "muon" else None)
    optimizer = build_optimizer(groups, cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay,
                                cfg.filter_momentum, matmul_dtype(precision, device))
    steps = epoch_steps(len(train_x), cfg.batch_size, cfg.drop_last)
    if steps < 1 or (cfg.drop_last and len(train_x) < cfg.batch_size):
        raise ConfigError(f"--batch-size {cfg.batch_size} with drop_last leaves no batch of the {len(train_x)} "
                          "training images; lower --batch-size or pass --no-drop-last")
    total = run_steps(len(train_x), cfg.epochs, cfg.batch_size, cfg.skip_easy, cfg.drop_last)
    scheduler, per_batch = build_scheduler(optimizer, cfg.schedule, epochs=cfg.epochs, steps_per_epoch=steps,
                                           warmup_epochs=cfg.warmup_epochs, step_epochs=cfg.step_epochs,
                                           gamma=cfg.gamma, final_factor=cfg.final_lr_factor, total_steps=total)
    lookahead = Lookahead(model, total, cfg.lookahead_every, cfg.lookahead_decay) if cfg.lookahead else None
    skipper = EasySkipper(len(train_x), cfg.epochs, cfg.skip_easy, cfg.keep_hard) if cfg.skip_easy else None
    return RunSetup(cfg, ds, split, device, precision, normalizer, model, wrap(model) if wrap else model,
                    channels_last, (train_x, train_y), val, optimizer, scheduler, per_batch, lookahead,
                    build_loss(cfg.loss, cfg.label_smoothing), targets=targets, skipper=skipper,
                    sample_loss_fn=build_loss(cfg.loss, cfg.label_smoothing, per_image=True) if skipper else None)


def _check_takes_side(model: torch.nn.Module, x: torch.Tensor, cfg: TrainConfig) -> None:
    """Progressive resizing needs a model that takes smaller images (one that pools globally)."""
    was_training = model.training
    model.eval()  # no BatchNorm statistics move
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as e:
        raise ConfigError(f"--resize-min {cfg.resize_min}: model {cfg.model} does not take {cfg.resize_min}x"
                          f"{cfg.resize_min} images ({str(e).splitlines()[0]}); progressive resizing needs a model "
                          "that pools globally, such as fastnet; drop --resize-min") from None
    finally:
        model.train(was_training)


def fit_run(s: RunSetup, *, run_dir: Path | None = None, callbacks: Sequence = (),
            dist: Distributed | None = None) -> TrainState:
    """Train; with `run_dir`, history and checkpoints are written after every epoch.

    A diverging loss stops the run with a TrainingError; the last good checkpoint stays."""
    cbs = list(callbacks)
    if run_dir is not None:
        cbs.insert(0, RunWriter(run_dir, s.checkpoint))
    if s.cfg.early_stopping:
        cbs.insert(0, EarlyStopping(s.cfg.early_stopping))
    cfg = s.cfg
    try:
        train = s.train if s.targets is None else (s.train[0], s.targets)
        state = fit(s.train_model, train, s.val, epochs=cfg.epochs, batch_size=cfg.batch_size,
                    optimizer=s.optimizer, loss_fn=s.loss_fn, normalizer=s.normalizer, seed=cfg.seed,
                    precision=s.precision, augment=build_augment(cfg.augment), scheduler=s.scheduler,
                    per_batch_schedule=s.per_batch_schedule, channels_last=s.channels_last,
                    monitor=cfg.resolved_monitor, eval_batch_size=cfg.eval_batch_size, callbacks=cbs,
                    state=s.state, drop_last=cfg.drop_last, lookahead=s.lookahead, dist=dist,
                    sizes=progressive_sizes(cfg.epochs, s.train[0].shape[-1], cfg.resize_min, cfg.resize_start,
                                            cfg.resize_end), alternate_flip="alternating-flip" in cfg.augment,
                    skipper=s.skipper, sample_loss_fn=s.sample_loss_fn)
    except DivergedError as e:
        kept = ""
        if run_dir is not None and (run_dir / runs.LAST).is_file():
            kept = f"; the last good checkpoint (epoch {e.epoch - 1}) is {run_dir / runs.LAST}"
        raise TrainingError(f"training diverged: {e} (lr {cfg.lr:g}); lower --lr or raise --warmup-epochs and "
                            f"train again{kept}") from None
    if cfg.restore_best and state.best_state is not None:
        s.model.load_state_dict(state.best_state)
    return state


def write_outputs(result: RunResult, outputs: Sequence[str] = OUTPUTS) -> None:
    """Write the chosen outputs into the run folder: 'predictions', 'report', 'metrics' (in that order)."""
    unknown = set(outputs) - set(OUTPUTS)
    if unknown:
        raise ConfigError(f"unknown run outputs {', '.join(sorted(unknown))}; choose from {', '.join(OUTPUTS)}")
    run_dir = result.run_dir
    if run_dir is None:
        return
    labels = result.dataset.test_labels.numpy()
    if "predictions" in outputs:
        runs.write_predictions(run_dir, result.test_logits.numpy(), labels)
    if "metrics" in outputs and "report" in outputs:  # written first too: a crash in the report loses nothing
        runs.write_metrics(run_dir, result.metrics)
    if "report" in outputs:
        from ..evaluate.report import write_run_outputs

        result.metrics.update(write_run_outputs(run_dir, predictor=result.predictor(tta=()), dataset=result.dataset,
                                                logits=result.test_logits, train_idx=result.split.train_idx,
                                                metrics=result.metrics))
    if "metrics" in outputs:
        runs.write_metrics(run_dir, result.metrics)


def train_run(cfg: TrainConfig, run_dir: str | Path | None = None, *, dataset: Dataset | None = None,
              split: Split | None = None, resume: bool = False, overwrite: bool = False, callbacks: Sequence = (),
              outputs: Sequence[str] = OUTPUTS, dist: Distributed | None = None, tracking=None) -> RunResult:
    """Train as `cfg` says and return the RunResult; with `run_dir`, write the run folder.

    `dataset` skips loading (callers that train many models pass it once); `split` replaces
    the stratified fraction/holdout split (k-fold cross-validation passes its folds); extra
    `callbacks` see every event; `outputs` picks what is written after the test; `dist` makes
    this process one rank of a distributed run, where rank 0 alone claims and writes the folder;
    `tracking` (a `track.TrackingSpec`) logs the run to MLflow or TensorBoard as well."""
    if dataset is not None and dataset.name in DATASETS and dataset.files and (
            cfg.dataset != dataset.name or (dataset.name == "mnist-format" and not cfg.data_dir)):
        # record where the data really came from, so resume, evaluate and report find it again
        cfg = cfg.replace(dataset=dataset.name, data_dir=str(Path(dataset.files["train_images"]).parent))
    if cfg.data_dir and not resume:  # the run folder's config is read from other folders later: record it absolute
        cfg = cfg.replace(data_dir=str(Path(cfg.data_dir).expanduser().resolve()))
    validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else None
    is_writer = dist is None or dist.is_writer
    writes = run_dir is not None and is_writer
    claim = lambda: run_lock.claim_run_dir(run_dir, overwrite=overwrite, resume=resume) if writes else None
    folder = claim() if dist is None else dist.on_writer(claim, share=False)
    try:
        with contextlib.ExitStack() as stack:  # a tracker ends FINISHED, or FAILED / KILLED with the exception
            tracker = None
            if tracking is not None and is_writer:
                from ..track import open_run, run_name

                tracker = stack.enter_context(open_run(tracking, run_name(tracking, run_dir, cfg.recipe or cfg.model),
                                                       cfg.to_dict(), run_dir))
                callbacks = [*callbacks, tracker]
            if cfg.threads is None:  # a model's own thread choice (train_threads) ends with its run
                stack.callback(torch.set_num_threads, torch.get_num_threads())
            keep_freed_memory()
            s = setup_run(cfg, dataset=dataset, split=split, wrap=dist.wrap if dist else None, data_init=not resume)
            if resume:
                restore(s, run_dir, dist)
            if writes:
                runs.write_config(run_dir, cfg.to_dict())
            state = fit_run(s, run_dir=run_dir if writes else None, callbacks=callbacks, dist=dist)
            result = test_run(s, state, run_dir if writes else None, dist)
            if writes:
                if s.calibration:  # the checkpoints on disk carry the fitted temperature, so predictions use it
                    for kind, name in (("best", runs.BEST), ("last", runs.LAST)):
                        if (run_dir / name).is_file():
                            ckpt = read_checkpoint(run_dir / name)
                            ckpt.pop("path", None)
                            runs.write_checkpoint(run_dir, kind, {**ckpt, **s.calibration})
                write_outputs(result, outputs)
            if tracker is not None:
                tracker.log_result(result)
            return result
    finally:
        if folder is not None:
            folder.release()


__all__ = ["OUTPUTS", "RunResult", "RunSetup", "TrainingError", "build_model", "default_run_dir", "fit_run",
           "freeze_features", "load_run_config", "restore", "setup_run", "test_run", "train_run", "write_outputs"]
