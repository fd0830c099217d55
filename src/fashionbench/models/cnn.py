"""Small convolutional networks from the studies."""

from __future__ import annotations

from torch import nn

from .registry import register_model


@register_model("cnn_002", paper_params=423_338, source="study 002")
def cnn_002(num_classes: int = 10, dropout: float = 0.2) -> nn.Module:
    """CNN conv64-conv32 (same padding, dropout 0.2, max-pool) + dense 256 (study 002)."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.MaxPool2d(2),
        nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 256), nn.ReLU(inplace=True),
        nn.Linear(256, num_classes),
    )
