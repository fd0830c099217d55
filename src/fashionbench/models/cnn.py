"""Small convolutional networks from the studies."""

from __future__ import annotations

from torch import nn

from .init import apply_init
from .registry import register_model


@register_model("cnn_002", paper_params=423_338, source="study 002")
def cnn_002(num_classes: int = 10, dropout: float = 0.2, init: str = "torch") -> nn.Module:
    """CNN conv64-conv32 (same padding, dropout 0.2, max-pool) + dense 256 (study 002); init='keras' as in Keras."""
    return apply_init(nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.MaxPool2d(2),
        nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 256), nn.ReLU(inplace=True),
        nn.Linear(256, num_classes),
    ), init)


@register_model("cnn_003", source="study 003")
def cnn_003(num_classes: int = 10, dropout: float = 0.25, hidden: tuple[int, int] = (600, 120)) -> nn.Module:
    """CNN conv32(pad 1)-BN-ReLU-pool, conv64(no pad)-BN-ReLU-pool, 3 linear + dropout 0.25 (study 003)."""
    # Widths 600/120 and no activation between the linear layers: the widely copied "FashionCNN"
    # the study's text matches (the paper states neither); 1,475,338 parameters.
    h1, h2 = hidden
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 6 * 6, h1), nn.Dropout(dropout),
        nn.Linear(h1, h2),
        nn.Linear(h2, num_classes),
    )


@register_model("convnet_000", source="study 000")
def convnet_000(num_classes: int = 10, dropout: float = 0.35, init: str = "torch") -> nn.Module:
    """2 conv (64, 512 channels, BN, max-pool) + 3 FC (128, 64, 10) with dropout 0.35 (study 000);
    init='keras' as in the authors' Keras notebook."""
    # Layout from the authors' Keras notebook: BN on the input and before the second conv,
    # 5x5 valid convs, FC 128-64-10. Keras counts 1,879,246 with the 130 BN running statistics;
    # the trainable parameters are 1,879,116.
    return apply_init(nn.Sequential(
        nn.BatchNorm2d(1), nn.Conv2d(1, 64, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 24 -> 12
        nn.BatchNorm2d(64), nn.Conv2d(64, 512, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 8 -> 4
        nn.Flatten(),
        nn.Linear(512 * 4 * 4, 128), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(128, 64), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(64, num_classes),
    ), init)
