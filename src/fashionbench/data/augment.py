"""Batched, vectorized augmentation of image tensors (B, C, H, W) with values in [0, 1].

Each function draws its randomness from an explicit torch.Generator, so a seed makes the
augmented batch repeatable. Everything works on the whole batch at once: no per-image Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .photo_augment import PHOTO_AUGMENTS

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _rand(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device).to(device)


def _mirror(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (N, ..., W) with the images where `mask` (N,) is true mirrored left-right; a new tensor."""
    return torch.where(mask.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)


def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror left-right with probability 1/2 per image."""
    return _mirror(x, _rand(len(x), g, x.device) < 0.5)


def alternating_flip(images: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """The whole training set as epoch `epoch` sees it under airbench's alternating flip: a half of
    the images drawn once from `seed` is mirrored in even epochs, the other half in odd ones. Every
    image is seen both ways in any two epochs in a row (a random flip misses a quarter of them),
    which is worth most in short runs. Images are (N, ..., W); a new tensor, the input is not written."""
    mask = torch.rand(len(images), generator=torch.Generator().manual_seed(seed)) < 0.5
    return _mirror(images, (~mask if epoch % 2 else mask).to(images.device))


def translate(x: torch.Tensor, g: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, filling with black (pad-and-crop)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = (_rand(b, g, x.device) * (2 * pad + 1)).long()
    dx = (_rand(b, g, x.device) * (2 * pad + 1)).long()
    rows = dy[:, None] + torch.arange(h, device=x.device)[None]
    cols = dx[:, None] + torch.arange(w, device=x.device)[None]
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_resized_crop(x: torch.Tensor, g: torch.Generator, scale=(0.64, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Zoom into a random crop covering `scale` of the area with aspect `ratio`, resized back."""
    b = len(x)
    area = scale[0] + (scale[1] - scale[0]) * _rand(b, g, x.device)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(b, g, x.device)
    r = torch.exp(log_r)
    sx = torch.sqrt(area * r).clamp(max=1.0)
    sy = torch.sqrt(area / r).clamp(max=1.0)
    tx = (1 - sx) * (2 * _rand(b, g, x.device) - 1)
    ty = (1 - sy) * (2 * _rand(b, g, x.device) - 1)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    return _affine(x, theta)


def rotation(x: torch.Tensor, g: torch.Generator, degrees: float = 10.0) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees]."""
    b = len(x)
    a = (2 * _rand(b, g, x.device) - 1) * math.radians(degrees)
    cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _affine(x, theta)


def random_erasing(x: torch.Tensor, g: torch.Generator, p: float = 0.5, scale=(0.02, 0.33),
                   ratio=(0.3, 3.3)) -> torch.Tensor:
    """Black out one random rectangle per image with probability p (Zhong et al., 2017)."""
    b, _, h, w = x.shape
    dev = x.device
    area = (scale[0] + (scale[1] - scale[0]) * _rand(b, g, dev)) * h * w
    r = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(b, g, dev))
    eh = torch.sqrt(area * r).round().clamp(1, h)
    ew = torch.sqrt(area / r).round().clamp(1, w)
    y0 = ((h - eh + 1) * _rand(b, g, dev)).floor()
    x0 = ((w - ew + 1) * _rand(b, g, dev)).floor()
    apply = _rand(b, g, dev) < p
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


AUGMENTS: dict[str, Augment] = {
    "flip": flip,
    "translate": translate,
    "random-resized-crop": random_resized_crop,
    "rotation": rotation,
    "random-erasing": random_erasing,
    **PHOTO_AUGMENTS,  # photo_augment.py: what converting a real photo gets wrong
}
# Applied by the training loop to the whole training set at each epoch's start, not per batch.
EPOCH_AUGMENTS = ("alternating-flip",)
# Geometric transforms first, then intensity (photometric, blur), then what is added (clutter, noise),
# covering (occlusion, erasing) last, as torchvision pipelines order them.
_ORDER = ("alternating-flip", "random-resized-crop", "scale-aspect", "rotation", "shift-crop", "flip", "translate",
          "photometric", "blur-sharpen", "clutter", "noise", "occlusion", "random-erasing")
# Group names that parse_augment expands to their members: `--augment flip+photo`.
GROUPS: dict[str, tuple[str, ...]] = {"photo": tuple(PHOTO_AUGMENTS)}


def parse_augment(spec: str | Sequence[str] | None) -> list[str]:
    """'flip+translate' or ['flip', 'translate'] -> validated names in a canonical order; groups expanded."""
    if spec is None:
        return []
    if not isinstance(spec, (str, list, tuple)) or not all(isinstance(n, str) for n in spec):
        raise ConfigError(f"--augment must be 'none', a '+'-joined string or a list of names, got {spec!r}")
    names = spec.replace(",", "+").split("+") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in AUGMENTS and n not in GROUPS and n not in EPOCH_AUGMENTS]
    if unknown:
        groups = ", ".join(f"{k} (= {'+'.join(v)})" for k, v in GROUPS.items())
        raise ConfigError(f"unknown augmentation {', '.join(unknown)}; choose from none, "
                          f"{', '.join([*AUGMENTS, *EPOCH_AUGMENTS])}, or the group {groups} "
                          "(combine with '+', e.g. flip+translate)")
    names = [m for n in names for m in GROUPS.get(n, (n,))]
    if "flip" in names and "alternating-flip" in names:
        raise ConfigError("--augment has both flip and alternating-flip, two ways to mirror the same images; "
                          "keep one of them")
    return sorted(set(names), key=_ORDER.index)


def build_augment(names: Sequence[str]) -> Augment | None:
    """The per-batch augmentations of `names` as one function (those in EPOCH_AUGMENTS are the loop's)."""
    names = [n for n in parse_augment(list(names)) if n not in EPOCH_AUGMENTS]
    if not names:
        return None
    steps = [(AUGMENTS[n], n in PHOTO_AUGMENTS) for n in names]  # the photo ones can work in place

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        # Every augmentation returns its input untouched or a new tensor (never a view of it), so once
        # one has returned a new tensor the batch is ours and the photo augmentations may update it
        # in place: one copy of the batch saved per augmentation. The caller's batch is never written.
        owned = False
        for fn, can_inplace in steps:
            if can_inplace and owned:
                x = fn(x, g, inplace=True)
            else:
                y = fn(x, g)
                owned, x = owned or y is not x, y
        return x

    return apply
