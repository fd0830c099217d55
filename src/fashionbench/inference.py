"""The one inference path: checkpoint -> model on device -> normalization -> precision and memory
format -> test-time augmentation -> logits / probabilities.

Training (validation and test), evaluation, boosting, the report and every later consumer
(photos, export, serving) go through `predict_logits` or a `Predictor`, so they agree on what
"the model's output" is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import build_from_checkpoint, load_checkpoint
from .data.normalize import Normalization, to_float
from .errors import ConfigError
from .models.registry import place_model
from .utils import autocast, resolve_device, resolve_precision

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


def _translate_views(x: torch.Tensor, shift: int = 1) -> list[torch.Tensor]:
    """The batch shifted by one pixel in each of the four directions (black fill)."""
    views = []
    for dx, dy in ((shift, 0), (-shift, 0), (0, shift), (0, -shift)):
        v = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        if dx > 0:
            v[..., :, :dx] = 0
        elif dx < 0:
            v[..., :, dx:] = 0
        if dy > 0:
            v[..., :dy, :] = 0
        elif dy < 0:
            v[..., dy:, :] = 0
        views.append(v)
    return views


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, normalizer: Normalization, batch_size: int = 1000,
                   precision: str = "fp32", channels_last: bool = False, tta: Sequence[str] = ()) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 images (N, 28, 28) on the model's device; TTA averages
    logits over flipped/shifted views."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    model.eval()
    device = images.device
    out = []
    for start in range(0, len(images), batch_size):
        x01 = to_float(images[start:start + batch_size])

        def run(views: list[torch.Tensor]) -> torch.Tensor:
            total = 0
            for v in views:
                v = normalizer(v)
                if channels_last:
                    v = v.contiguous(memory_format=torch.channels_last)
                with autocast(device, precision):
                    total = total + model(v).float()
            return total / len(views)

        bases = [x01, x01.flip(3)] if "flip" in tta else [x01]
        logits = run(bases)
        if "translate" in tta:  # airbench weighting: half on the unshifted views, half on the shifted ones
            logits = 0.5 * logits + 0.5 * run([v for b in bases for v in _translate_views(b)])
        out.append(logits.cpu())
    return torch.cat(out) if out else torch.zeros(0)


def last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def as_image_batch(images) -> torch.Tensor:
    """uint8 images as a (N, 28, 28) tensor, from a tensor or array of (N, 28, 28) or one (28, 28)."""
    try:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"expected 28x28 grayscale images (a tensor or NumPy array), got {type(images).__name__}") \
            from None
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int16, torch.int32,
                                                                       torch.int64, torch.int8)):
        raise ConfigError(f"expected numeric images, got {x.dtype}")
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or tuple(x.shape[1:]) != (28, 28):
        raise ConfigError(f"expected 28x28 grayscale images shaped (N, 28, 28), got {tuple(x.shape)}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ConfigError("the images hold NaN or infinite values; pass pixels in 0..255 or floats in [0, 1]")
    if x.dtype != torch.uint8:
        if x.is_floating_point() and x.numel() and float(x.max()) <= 1.0:
            x = x * 255  # floats in [0, 1]
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


@dataclass
class Predictor:
    """A trained model ready to predict: `Predictor.from_checkpoint(path)` or `fashionbench.load(path)`.

    `predict_logits(images)` / `predict_proba(images)` take uint8 images (N, 28, 28) as a tensor
    or NumPy array; `predict(images, k)` returns the top-k classes with probabilities."""

    model: nn.Module
    normalizer: Normalization
    class_names: list[str]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    tta: list[str] = field(default_factory=list)
    batch_size: int = 1000
    info: dict = field(default_factory=dict)  # model name, epoch, path, training config

    def __post_init__(self) -> None:
        self.tta = parse_tta(self.tta)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")

    @classmethod
    def from_model(cls, model: nn.Module, normalizer: Normalization, class_names: Sequence[str], *,
                   device: str | torch.device = "auto", precision: str = "auto", tta: Sequence[str] | str = (),
                   batch_size: int = 1000, info: dict | None = None) -> Predictor:
        """Wrap an in-memory model (placed on `device`, channels_last where that pays)."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        model, channels_last = place_model(model, dev)
        return cls(model, normalizer, list(class_names), dev, resolve_precision(precision, dev), channels_last,
                   parse_tta(tta), batch_size, dict(info or {}))

    @classmethod
    def from_checkpoint(cls, path: str | Path | dict, *, device: str = "auto", precision: str = "auto",
                        tta: Sequence[str] | str | None = None, batch_size: int = 1000,
                        expect_model: str | None = None) -> Predictor:
        """Load best.pt / last.pt (or a run folder, or a checkpoint dict already read with
        `read_checkpoint`). `tta=None` uses the views the run was trained with."""
        if isinstance(path, dict):
            ckpt = path
            model = build_from_checkpoint(ckpt, expect_model)
        else:
            model, ckpt = load_checkpoint(path, expect_model=expect_model)
        cfg = ckpt.get("config") or {}
        info = {"model": ckpt["model"], "epoch": ckpt.get("epoch"), "path": ckpt["path"], "config": cfg}
        return cls.from_model(model, Normalization.from_dict(ckpt["normalization"]), ckpt["class_names"],
                              device=device, precision=precision, tta=cfg.get("tta", []) if tta is None else tta,
                              batch_size=batch_size, info=info)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def predict_logits(self, images) -> torch.Tensor:
        x = as_image_batch(images).to(self.device)
        if not len(x):
            return torch.zeros(0, self.num_classes)
        return predict_logits(self.model, x, normalizer=self.normalizer, batch_size=self.batch_size,
                              precision=self.precision, channels_last=self.channels_last, tta=self.tta)

    def predict_proba(self, images) -> np.ndarray:
        return torch.softmax(self.predict_logits(images), 1).numpy()

    def predict(self, images, k: int = 3) -> list[dict]:
        """Per image: the predicted class, its probability and the top-k (name, probability) pairs."""
        probs = self.predict_proba(images)
        k = max(1, min(k, self.num_classes))
        out = []
        for p in probs:
            top = np.argsort(-p, kind="stable")[:k]
            out.append({"label": self.class_names[top[0]], "index": int(top[0]), "probability": float(p[top[0]]),
                        "top_k": [(self.class_names[i], float(p[i])) for i in top]})
        return out

    @torch.no_grad()
    def embeddings(self, images) -> np.ndarray | None:
        """The features entering the last nn.Linear (the classifier head), without TTA; None for a
        model without a Linear layer."""
        head = last_linear(self.model)
        if head is None:
            return None
        captured: list[torch.Tensor] = []

        def hook(module, inputs):
            captured.append(inputs[0].detach().float().flatten(1).cpu())

        handle = head.register_forward_pre_hook(hook)
        try:
            predict_logits(self.model, as_image_batch(images).to(self.device), normalizer=self.normalizer,
                           batch_size=self.batch_size, precision=self.precision, channels_last=self.channels_last)
        finally:
            handle.remove()
        return torch.cat(captured).numpy() if captured else None

    def __repr__(self) -> str:
        return (f"Predictor({self.info.get('model', type(self.model).__name__)}, {self.num_classes} classes, "
                f"{self.device}, {self.precision}, tta={'+'.join(self.tta) or 'none'})")
