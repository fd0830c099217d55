"""What the step benchmarks share: a model and a random batch placed as training places them, one
training step on them (forward in the given precision, cross-entropy, backward, optimizer step), the
same step for a `train.run.setup_run` setup on real images, and a FLOP count."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fashionbench.models.registry import uses_conv
from fashionbench.train.engine import prepare
from fashionbench.utils import autocast

CPU = torch.device("cpu")


def placed(model: torch.nn.Module, batch: int, precision: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model and a random (batch, 1, 28, 28) input, channels_last for conv nets in bf16 (as `train` does)."""
    x = torch.randn(batch, 1, 28, 28)
    if precision == "bf16" and uses_conv(model):
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return model, x


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.float(), y)


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, precision: str,
               loss_fn=cross_entropy, device: torch.device = CPU):
    """One step as `train` takes it; a `train.run.setup_run` setup passes its own loss and device."""
    def step() -> None:
        with autocast(device, precision):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def first_batch_step(s, size: int | None = None):
    """A `setup_run` setup's step on its first batch of real training images (resized to `size`), and that batch."""
    images, labels = s.train
    x = prepare(images[:s.cfg.batch_size], s.normalizer, s.channels_last, size=size)
    return train_step(s.train_model, x, labels[:s.cfg.batch_size], s.optimizer, s.precision, s.loss_fn,
                      s.device), x


def flops(model, x: torch.Tensor, train: bool) -> int:
    """FLOPs of a forward (train=False, no grad) or forward + backward pass on `x`."""
    with FlopCounterMode(display=False) as fc:
        if train:
            model(x).float().sum().backward()
        else:
            with torch.no_grad():
                model(x)
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()


def setup_layout(s) -> str:
    """A `setup_run` setup's precision, memory format and batch, for a table's column."""
    return f"{s.precision}{' + channels_last' if s.channels_last else ''}, batch {s.cfg.batch_size}"


def interleaved_medians(steps: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each step function, timed round by round so that all share the noise."""
    times: dict = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}
