"""Input normalization, fitted on training images and stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..errors import ConfigError

KINDS = ("standardize", "minmax", "per-pixel")


@dataclass
class Normalization:
    """x = (pixels / 255 - mean) / std. `mean`/`std` are scalars or 28*28 per-pixel lists."""

    kind: str = "standardize"
    mean: float | list[float] = 0.0
    std: float | list[float] = 1.0

    @classmethod
    def fit(cls, kind: str, images_u8: torch.Tensor) -> Normalization:
        if kind not in KINDS:
            raise ConfigError(f"unknown normalization {kind!r}; choose one of {', '.join(KINDS)}")
        if kind == "minmax":
            return cls(kind, 0.0, 1.0)
        x = images_u8.float().div_(255)
        if kind == "standardize":
            return cls(kind, round(x.mean().item(), 6), round(x.std().item(), 6))
        # per-pixel standard scaling (scikit-learn's StandardScaler on flattened pixels)
        std = x.std(0)
        std[std < 1e-6] = 1.0  # constant pixels (always-black borders) stay finite
        return cls(kind, x.mean(0).flatten().tolist(), std.flatten().tolist())

    @classmethod
    def identity(cls) -> Normalization:
        """No change to [0, 1] pixels: for models that normalize inside (exported ONNX graphs)."""
        return cls("minmax", 0.0, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(d["kind"], d["mean"], d["std"])

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=device)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=device)
        if mean.ndim:
            mean, std = mean.view(1, 1, 28, 28), std.view(1, 1, 28, 28)
        return mean, std

    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        """Normalize float images in [0, 1] of shape (B, 1, H, W)."""
        mean, std = self.tensors(x01.device)
        return (x01 - mean) / std


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) -> float (B, 1, H, W) in [0, 1]."""
    return images_u8.unsqueeze(1).float().div_(255)
