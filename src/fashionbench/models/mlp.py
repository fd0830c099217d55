"""Fully connected networks."""

from __future__ import annotations

from torch import nn

from .init import apply_init
from .registry import register_model


def mlp(hidden: tuple[int, ...], num_classes: int = 10, dropout: float = 0.0, in_features: int = 784) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


@register_model("mlp_002", paper_params=567_434, source="study 002")
def mlp_002(num_classes: int = 10, dropout: float = 0.0, init: str = "torch") -> nn.Module:
    """MLP 784-512-256-128-10 with ReLU (study 002, Keras, Adam 1e-4, batch 256); init='keras' as in Keras."""
    return apply_init(mlp((512, 256, 128), num_classes, dropout), init)
