"""A model's logits for a batch of 28x28 images: the test-time augmentation views, the batched forward
at a precision and memory format, and what is computed from logits (an ensemble's, the unknown-item
scores). `Predictor` (inference.py), training, export and the benchmarks all call these, so they
agree on what "the model's output" is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.normalize import Normalization, to_float
from .errors import ConfigError
from .models.fold import count_foldable, fold_batchnorm
from .utils import autocast

TTA_VIEWS = ("flip", "translate")
def parse_tta(value: str | Sequence[str] | None) -> list[str]:
    """'none', 'flip', 'flip+translate' (or a list of views) -> checked list of views."""
    if value is None:
        return []
    if not isinstance(value, (str, list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"--tta must be 'none', a '+'-joined string or a list of views, got {value!r}")
    views = ([] if value.strip() in ("", "none") else value.replace(",", "+").split("+")) if isinstance(value, str) \
        else list(value)
    bad = [v for v in views if v not in TTA_VIEWS]
    if bad:
        raise ConfigError(f"unknown --tta view {', '.join(map(repr, bad))}; choose none or a '+'-joined list of "
                          f"{', '.join(TTA_VIEWS)}")
    return views


def shift_images(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """The batch moved by (dx, dy) pixels, black coming in (pad and crop: exports to ONNX as is)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + h, left:left + w]


def _translate_views(x: torch.Tensor, shift: int = 1) -> list[torch.Tensor]:
    """The batch shifted by one pixel in each of the four directions (black fill)."""
    return [shift_images(x, dx, dy) for dx, dy in ((shift, 0), (-shift, 0), (0, shift), (0, -shift))]


def tta_forward(forward, x01: torch.Tensor, tta: Sequence[str] = ()) -> torch.Tensor:
    """`forward` (views in [0, 1] -> float logits) averaged over the TTA views of the batch; used
    by `predict_logits` and baked into exported ONNX graphs, so both compute the same thing."""

    def run(views: list[torch.Tensor]) -> torch.Tensor:
        return sum(forward(v) for v in views) / len(views)

    bases = [x01, x01.flip(3)] if "flip" in tta else [x01]
    logits = run(bases)
    if "translate" in tta:  # airbench weighting: half on the unshifted views, half on the shifted ones
        logits = 0.5 * logits + 0.5 * run([v for b in bases for v in _translate_views(b)])
    return logits


def inference_model(model: nn.Module) -> nn.Module:
    """`model` as predictions run it: an eval-mode copy with the BatchNorms that follow a conv in an
    nn.Sequential folded into it (the same function up to rounding, one pass less per BN;
    `models/fold.py`), or `model` itself where there is nothing to fold (no copy made). Training's
    test passes fold a copy each time (the weights move between them); a `Predictor` keeps one."""
    return fold_batchnorm(model)[0] if count_foldable(model) else model


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, normalizer: Normalization, batch_size: int = 1000,
                   precision: str = "fp32", channels_last: bool = False, tta: Sequence[str] = ()) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 images (N, 28, 28) on the model's device; TTA averages
    logits over flipped/shifted views."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    model.eval()
    device = images.device

    def forward(v: torch.Tensor) -> torch.Tensor:
        v = normalizer(v)
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            return model(v).float()

    out = [tta_forward(forward, to_float(images[start:start + batch_size]), tta).cpu()
           for start in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


def unknown_scores(logits, temperature: float = 1.0) -> dict[str, np.ndarray]:
    """Scores that grow as an input looks like none of the classes: 'msp' (1 - the largest
    softmax(logits / T) probability, Hendrycks & Gimpel 2017) and 'energy' (-T logsumexp(logits / T),
    Liu et al. 2020)."""
    z = torch.as_tensor(logits).float() / temperature
    return {"msp": (1 - torch.softmax(z, 1).amax(1)).numpy() if len(z) else np.zeros(0),
            "energy": (-temperature * torch.logsumexp(z, 1)).numpy() if len(z) else np.zeros(0)}


@contextlib.contextmanager
def model_threads(threads: int | None):
    """torch's CPU threads set to `threads` inside the block, restored after (None: unchanged)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def ensemble_logits(calibrated: Sequence[torch.Tensor]) -> torch.Tensor:
    """Members' logits already divided by their temperatures -> the ensemble's logits (temperature 1):
    their mean, so its softmax is the normalized geometric mean of the calibrated probabilities.
    Averaged logits keep the energy score meaningful (the log of averaged probabilities has
    logsumexp 0 for every input), and the real-photo pair in BENCHMARKS.md was measured this way."""
    if not calibrated:
        raise ConfigError("an ensemble needs at least one member")
    return torch.stack([z.float() for z in calibrated]).mean(0)
