"""The training loop as plain functions: train_one_epoch, evaluate, fit.

Data stays in memory as uint8 tensors on the device; a batch is a slice of a permutation,
converted to float, augmented as a whole and normalized. Randomness for epoch e comes from
seed-derived generators, so resuming at an epoch boundary replays exactly the same run.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.augment import alternating_flip
from ..data.normalize import Normalization, to_float
from ..errors import FashionbenchError
from ..forward import inference_model, predict_logits
from ..utils import autocast

if TYPE_CHECKING:
    from .distributed import Distributed
    from .selection import EasySkipper

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DivergedError(FashionbenchError):
    """The training loss became NaN or infinite: the weights after this step are garbage."""

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel-style wrapper (the model itself otherwise)."""
    return getattr(model, "module", model)


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    history: list[dict] = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    improved: bool = False
    stop: bool = False
    train_seconds: float = 0.0
    best_state: dict | None = None  # weights at the best epoch (kept in memory, saved as best.pt)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "best_state"}
        return copy.deepcopy(d)

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(**d)


class Lookahead:
    """airbench's lookahead EMA: every `every` steps, ema <- lerp(ema, weights) and weights <- ema.

    The decay ramps as decay * (step / total)^3, so it only bites late in training; at the
    end the weights become the EMA (`finish`)."""

    def __init__(self, model: nn.Module, total_steps: int, every: int = 5, decay: float = 0.95**5) -> None:
        self.model, self.total, self.every, self.decay = model, max(total_steps, 1), every, decay
        self.steps = 0
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    @torch.no_grad()
    def _blend(self, decay: float) -> None:
        for k, v in self.model.state_dict().items():
            if k in self.ema:
                self.ema[k].lerp_(v, 1 - decay)
                v.copy_(self.ema[k])

    def after_step(self) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self._blend(self.decay * (self.steps / self.total) ** 3)

    def finish(self) -> None:
        self._blend(1.0)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "ema": self.ema}

    def load_state_dict(self, d: dict) -> None:
        self.steps = d["steps"]
        self.ema = {k: v.clone() for k, v in d["ema"].items()}


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def progressive_sizes(epochs: int, full: int, min_size: int | None, start: float, end: float) -> list[int] | None:
    """Image side per epoch for progressive resizing (FFCV's ramp): `min_size` until epoch `start`,
    then growing linearly to `full` at epoch `end`, in steps of 2 pixels; None without a ramp."""
    if not min_size or min_size >= full:
        return None
    sizes = []
    for e in range(epochs):
        t = 0.0 if e < start else 1.0 if e >= end else (e - start) / (end - start)
        sizes.append(min(full, int((min_size + t * (full - min_size)) / 2 + 0.5) * 2))
    return sizes


def epoch_steps(n: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps the schedule counts for an epoch of n images (drop_last keeps one partial batch
    when there is no full one)."""
    return n // batch_size if drop_last and n >= batch_size else math.ceil(n / batch_size)


def prepare(x_u8: torch.Tensor, normalizer: Normalization, channels_last: bool,
            augment=None, generator: torch.Generator | None = None, size: int | None = None) -> torch.Tensor:
    x = to_float(x_u8)
    if augment is not None:
        x = augment(x, generator)
    if size is not None and size != x.shape[-1]:  # progressive resizing: early epochs see smaller images
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = normalizer(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_one_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                    optimizer: torch.optim.Optimizer, loss_fn: LossFn, batch_size: int,
                    normalizer: Normalization, generator: torch.Generator, precision: str = "fp32",
                    augment=None, scheduler=None, channels_last: bool = False,
                    on_batch: Callable[[dict], None] | None = None, desc: str = "train",
                    drop_last: bool = False, lookahead: Lookahead | None = None,
                    dist: Distributed | None = None, size: int | None = None, skipper: EasySkipper | None = None,
                    sample_loss_fn: LossFn | None = None, epoch: int = 0) -> dict:
    """One pass over (images, labels) in a seeded random order. Returns mean loss and accuracy.

    `size` resizes the (augmented) images to size x size before the model sees them. With `skipper`
    (and `sample_loss_fn`, the loss per image) the epoch trains on the images the skipper draws for
    `epoch`, weighting their losses as it says, and records each image's loss.

    With `dist`, every rank draws the same permutation and trains on its slice of each batch
    (augmented with its own generator); loss and accuracy are summed over the ranks."""
    model.train()
    device = images.device
    plan = skipper.plan(epoch, generator) if skipper is not None else None
    n = len(images) if plan is None else len(plan[0])
    perm = torch.randperm(n, generator=generator)
    perm = (perm if plan is None else plan[0][perm]).to(device)
    weights = plan[1].to(device) if plan is not None else None
    starts = range(0, n, batch_size)
    if (drop_last and n >= batch_size) or (n % batch_size == 1 and n > 1):  # a batch of one breaks BatchNorm
        starts = range(0, n - n % batch_size, batch_size)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    aug_generator = generator
    if dist is not None and dist.world_size > 1:
        if n // batch_size and n % batch_size and n % batch_size < 2 * dist.world_size:
            starts = range(0, n - n % batch_size, batch_size)  # a last batch too small to share out
        aug_generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)) + dist.rank)
    bar = tqdm(starts, desc=desc, leave=False, disable=None if dist is None or dist.is_writer else True, unit="batch")
    for i, start in enumerate(bar):
        idx = perm[start:start + batch_size]
        if dist is not None:
            idx = dist.shard(idx)
        x = prepare(images[idx], normalizer, channels_last, augment, aug_generator, size)
        y = labels[idx]
        with autocast(device, precision):
            logits = model(x)
        if skipper is not None:
            per_image = sample_loss_fn(logits, y)
            skipper.record(idx, per_image)
            loss = (per_image * weights[idx]).mean() if weights is not None else per_image.mean()
        else:
            loss = loss_fn(logits, y)
        if dist is not None:  # every rank must see a divergence, or the others hang
            loss_value = dist.all_reduce_sum(loss.detach().float().clone()).item() / dist.world_size
        else:
            loss_value = loss.item()
        if not math.isfinite(loss_value):  # stop before the step turns the weights into NaN
            raise DivergedError(f"the training loss is {loss_value} at batch {i + 1}", 0, i + 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if lookahead is not None:
            lookahead.after_step()
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == (y if y.ndim == 1 else y.argmax(1))).sum()  # soft targets: their top class
        seen += len(idx)
        if on_batch is not None:
            on_batch({"batch": i, "loss": loss_value, "lr": lr})
    if dist is not None:
        sums = dist.all_reduce_sum(torch.stack([total_loss.float(), correct.float(), torch.tensor(float(seen), device=device)]))
        total_loss, correct, seen = sums[0], sums[1], int(sums[2])
    return {"loss": total_loss.item() / max(seen, 1), "accuracy": correct.item() / max(seen, 1), "images": seen}


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, normalizer: Normalization,
             loss_fn: LossFn | None = None, batch_size: int = 1000, precision: str = "fp32",
             channels_last: bool = False, tta: Sequence[str] = ()) -> dict:
    """Loss (cross-entropy unless loss_fn given), accuracy and the logits themselves."""
    model.eval()
    logits = predict_logits(inference_model(model), images, normalizer=normalizer, batch_size=batch_size,
                            precision=precision, channels_last=channels_last, tta=tta)
    y = labels.cpu()
    loss = (loss_fn or F.cross_entropy)(logits, y).item() if len(y) else math.nan
    acc = (logits.argmax(1) == y).float().mean().item() if len(y) else math.nan
    return {"loss": loss, "accuracy": acc, "logits": logits}


def _is_better(value: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return value > best if monitor.endswith("accuracy") else value < best


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor] | None, *,
        epochs: int, batch_size: int, optimizer: torch.optim.Optimizer, loss_fn: LossFn, normalizer: Normalization,
        seed: int, precision: str = "fp32", augment=None, scheduler=None, per_batch_schedule: bool = True,
        channels_last: bool = False, monitor: str = "val_loss", eval_batch_size: int = 1000,
        callbacks: Sequence = (), state: TrainState | None = None, drop_last: bool = False,
        lookahead: Lookahead | None = None, dist: Distributed | None = None,
        sizes: Sequence[int] | None = None, alternate_flip: bool = False, skipper: EasySkipper | None = None,
        sample_loss_fn: LossFn | None = None) -> TrainState:
    """Train for `epochs` (from `state.epoch` when resuming), calling callbacks at each event.

    `sizes` gives the training images' side per epoch (progressive resizing); `alternate_flip`
    mirrors the training set as `augment.alternating_flip` says for each epoch; validation and
    test always see the images as they are. `skipper` (with `sample_loss_fn`) leaves well-learned
    images out of the middle epochs (`train.selection`).

    `model` may be a distributed wrapper (with `dist` saying this rank's place); callbacks, hooks,
    validation and the kept best weights see the model inside it, so saved weights never carry a
    `module.` prefix."""
    state = state or TrainState()
    base = unwrap(model)
    for cb in callbacks:
        cb.model = base  # as in Keras: callbacks may look at (not replace) the model
        cb.on_train_begin(state)

    def on_batch(info: dict) -> None:
        state.step += 1
        row = {"epoch": state.epoch + 1, "step": state.step, **info}
        state.batches.append(row)
        for cb in callbacks:
            cb.on_batch_end(state, row)

    while state.epoch < epochs and not state.stop:
        e = state.epoch
        generator = torch.Generator().manual_seed(epoch_seed(seed, e))
        torch.manual_seed(epoch_seed(seed, e))  # dropout and other global-RNG layers
        t0 = time.perf_counter()
        if hasattr(base, "on_epoch_start"):  # e.g. FastNet freezes its whitening bias after a few epochs
            base.on_epoch_start(e)
        lr = optimizer.param_groups[0]["lr"]
        images = alternating_flip(train[0], seed, e) if alternate_flip else train[0]
        try:
            tr = train_one_epoch(model, images, train[1], optimizer=optimizer, loss_fn=loss_fn, batch_size=batch_size,
                                 normalizer=normalizer, generator=generator, precision=precision, augment=augment,
                                 scheduler=scheduler if per_batch_schedule else None, channels_last=channels_last,
                                 on_batch=on_batch, desc=f"epoch {e + 1}/{epochs}", drop_last=drop_last,
                                 lookahead=lookahead, dist=dist, size=sizes[e] if sizes else None,
                                 skipper=skipper, sample_loss_fn=sample_loss_fn, epoch=e)
        except DivergedError as err:
            raise DivergedError(f"{err} of epoch {e + 1}", e + 1, err.step) from None
        if lookahead is not None and e + 1 == epochs:
            lookahead.finish()
        if dist is not None:  # BatchNorm statistics saw each rank's own slices
            dist.broadcast_buffers(base)
            if skipper is not None:  # each rank recorded the losses of its own slices
                skipper.share(dist.all_reduce_sum, train[0].device)
        row = {"epoch": e + 1, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
               "val_loss": math.nan, "val_accuracy": math.nan, "lr": lr}
        if sizes:
            row["image_size"] = sizes[e]
        if skipper is not None:
            row["images"] = tr["images"]
        if val is not None and len(val[0]):
            ev = evaluate(base, *val, normalizer=normalizer, loss_fn=loss_fn, batch_size=eval_batch_size,
                          precision=precision, channels_last=channels_last)
            row["val_loss"], row["val_accuracy"] = ev["loss"], ev["accuracy"]
        if scheduler is not None and not per_batch_schedule:
            scheduler.step(row["val_loss"])
        seconds = time.perf_counter() - t0
        state.train_seconds += seconds
        row["seconds"] = seconds
        row["elapsed"] = state.train_seconds
        state.history.append(row)
        state.epoch = e + 1
        state.improved = _is_better(row[monitor], state.best_metric, monitor)
        if state.improved:
            state.best_metric, state.best_epoch = row[monitor], e + 1
            state.best_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
        for cb in callbacks:
            cb.on_epoch_end(state, row)
    for cb in callbacks:
        cb.on_train_end(state)
    return state
