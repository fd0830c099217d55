"""LeNet-5 (study 000): two conv + average-pool stages, C5 with 120 maps, F6 84, output 10.

The paper does not state activations or padding. We follow LeCun et al. (1998): tanh, and C1
padded by 2 so a 28x28 image behaves like LeCun's 32x32 input (28-14-10-5, C5 is a 5x5 conv
giving 1x1x120): 61,706 parameters. `activation="relu"` gives the common modern variant.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .registry import register_model

_ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _lenet(num_classes: int, activation: str, batch_norm: bool) -> nn.Sequential:
    if activation not in _ACTS:
        raise ConfigError(f"lenet activation must be one of {', '.join(_ACTS)}, got {activation!r}")
    act = _ACTS[activation]

    def block(layer: nn.Module, width: int, bn_cls) -> list[nn.Module]:
        return [layer, *( [bn_cls(width)] if batch_norm else []), act()]

    return nn.Sequential(
        *block(nn.Conv2d(1, 6, 5, padding=2), 6, nn.BatchNorm2d),  # C1: 28x28x6
        nn.AvgPool2d(2, 2),  # S2: 14x14x6
        *block(nn.Conv2d(6, 16, 5), 16, nn.BatchNorm2d),  # C3: 10x10x16
        nn.AvgPool2d(2, 2),  # S4: 5x5x16
        *block(nn.Conv2d(16, 120, 5), 120, nn.BatchNorm2d),  # C5: 1x1x120
        nn.Flatten(),
        *block(nn.Linear(120, 84), 84, nn.BatchNorm1d),  # F6
        nn.Linear(84, num_classes),
    )


@register_model("lenet5", source="study 000")
def lenet5(num_classes: int = 10, activation: str = "tanh") -> nn.Module:
    """LeNet-5: conv6-avgpool-conv16-avgpool-conv120-fc84-fc10 (study 000 baseline)."""
    return _lenet(num_classes, activation, batch_norm=False)


@register_model("lenet5_bn", source="study 000")
def lenet5_bn(num_classes: int = 10, activation: str = "tanh") -> nn.Module:
    """LeNet-5 with batch norm after every conv/FC pre-activation (study 000, Figure 5.1)."""
    return _lenet(num_classes, activation, batch_norm=True)
