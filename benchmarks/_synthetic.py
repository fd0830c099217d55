"""What the step benchmarks share: a model and a random batch placed as training places them, and one
training step on them (forward in the given precision, cross-entropy, backward, optimizer step)."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from fashionbench.models.registry import uses_conv


def placed(model: torch.nn.Module, batch: int, precision: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model and a random (batch, 1, 28, 28) input, channels_last for conv nets in bf16 (as `train` does)."""
    x = torch.randn(batch, 1, 28, 28)
    if precision == "bf16" and uses_conv(model):
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return model, x


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, precision: str):
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def setup_step(s, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One training step of a `train.run.setup_run` setup on (x, y), as `train` takes it: `model`
    (the setup's, or a changed copy of it) forward in the setup's precision, its loss, backward,
    and the setup's optimizer (Muon where the recipe has it)."""
    from fashionbench.utils import autocast

    def step() -> None:
        with autocast(s.device, s.precision):
            loss = s.loss_fn(model(x), y)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()

    return step


def interleaved_medians(steps: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each step function, timed round by round so that all share the noise."""
    times: dict = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}
