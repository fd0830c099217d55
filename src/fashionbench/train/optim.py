"""Optimizers, losses and learning-rate schedules, chosen by name."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "muon")
LOSSES = ("ce", "nll", "mse", "mae")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "linear", "plateau")


def head_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier head: `model.head_prefixes`, else the last Linear layer's."""
    prefixes = getattr(model, "head_prefixes", None)
    if prefixes is not None:
        return tuple(prefixes)
    last = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1:]
    if not last:
        raise ConfigError("this model has no Linear classifier head to tell apart from its features")
    return (last[0] + ".",)


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float, bias_lr_scale: float = 1.0,
                 backbone_lr_scale: float = 1.0, filter_lr: float | None = None) -> list[dict]:
    """Trainable parameters grouped by lr: weights, and 1-D parameters (biases, norm scales).

    The 1-D group's lr is multiplied by `bias_lr_scale` and its weight decay divided by it, so the
    decay applied per step (lr * wd) is the same in both groups (airbench's convention). With
    `backbone_lr_scale` everything but the classifier head also gets its lr multiplied by it
    (fine-tuning a pretrained network: the new head learns fast, the features move slowly). With
    `filter_lr` the 4-D conv filters form a last group of their own at that lr, no weight decay,
    marked `orthogonal` (Muon's, `muon.py`)."""
    head = head_prefixes(model) if backbone_lr_scale != 1.0 else ()
    filters = []
    groups: dict[tuple[float, float], list] = {}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # weights before vectors, head before backbone: the first group carries the nominal lr, which is what
    # the training history logs
    for name, p in sorted(trainable, key=lambda np_: (np_[1].ndim < 2, bool(head) and not np_[0].startswith(head))):
        if filter_lr is not None and p.ndim == 4:
            filters.append(p)
            continue
        scale, wd = (bias_lr_scale, weight_decay / bias_lr_scale) if p.ndim < 2 else (1.0, weight_decay)
        if head and not name.startswith(head):
            scale *= backbone_lr_scale
        groups.setdefault((scale, wd), []).append(p)
    scaled = [{"params": ps, "lr": lr * scale, "weight_decay": wd} for (scale, wd), ps in groups.items()]
    if filter_lr is not None:
        if not filters:
            raise ConfigError("--optimizer muon needs a model with trainable conv filters; this one has none")
        return scaled + [{"params": filters, "lr": filter_lr, "weight_decay": 0.0, "orthogonal": True}]
    if len(groups) == 1 and next(iter(groups))[0] == 1.0:
        return [{"params": next(iter(groups.values()))}]
    return scaled


def build_optimizer(params, name: str, lr: float, momentum: float = 0.9, nesterov: bool = False,
                    weight_decay: float = 0.0, filter_momentum: float = 0.85,
                    matmul_dtype: torch.dtype = torch.float32) -> torch.optim.Optimizer:
    """`muon` expects the filter group of `param_groups(..., filter_lr=)`; its other groups get SGD;
    `matmul_dtype` is its Newton-Schulz iteration's (`muon.matmul_dtype`)."""
    if name == "muon":
        from .muon import Muon

        return Muon(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                    matrix_momentum=filter_momentum, matmul_dtype=matmul_dtype)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_loss(name: str, label_smoothing: float = 0.0,
               per_image: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss on raw logits, averaged over the batch or (per_image) one per image. mse/mae compare
    softmax probabilities with one-hot targets."""
    reduction = "none" if per_image else "mean"
    if name == "ce":
        return lambda logits, y: F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing,
                                                 reduction=reduction)
    if name == "nll":
        return lambda logits, y: F.nll_loss(F.log_softmax(logits.float(), 1), y, reduction=reduction)
    if name in ("mse", "mae"):
        dist = F.mse_loss if name == "mse" else F.l1_loss

        def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            probs = logits.float().softmax(1)
            one_hot = F.one_hot(y, probs.shape[1]).float()
            return dist(probs, one_hot, reduction="none").mean(1) if per_image else dist(probs, one_hot)

        return loss
    raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0, *, steps_per_epoch: int = 1,
              step_epochs: int = 10, gamma: float = 0.1, final_factor: float = 0.0) -> float:
    """Multiplier on the base lr after `step` optimizer steps (per-batch schedules)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return gamma ** ((step // steps_per_epoch) // step_epochs)
    frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    frac = min(max(frac, 0.0), 1.0)
    if schedule == "cosine":
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * frac))
    if schedule == "linear":
        return final_factor + (1 - final_factor) * (1 - frac)
    raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, *, epochs: int, steps_per_epoch: int,
                    warmup_epochs: float = 0.0, step_epochs: int = 10, gamma: float = 0.1,
                    final_factor: float = 0.0, total_steps: int | None = None):
    """Return (scheduler, per_batch). 'plateau' steps once per epoch on the monitored loss; `total_steps`
    (default epochs x steps_per_epoch) is the run's length where epochs differ in length."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    total = total_steps or epochs * steps_per_epoch
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=gamma if gamma < 1 else 0.1,
                                                          patience=2), False
    if schedule == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        pct = warmup_epochs / epochs if warmup_epochs else 0.25
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total,
                                                   pct_start=min(max(pct, 0.01), 0.99)), True
    warmup = int(round(warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        return lr_factor(schedule, step, total, warmup, steps_per_epoch=steps_per_epoch,
                         step_epochs=step_epochs, gamma=gamma, final_factor=final_factor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
