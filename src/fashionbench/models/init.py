"""Weight initializations other frameworks use, for reproducing papers written with them."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

INITS = ("torch", "keras")


def apply_init(model: nn.Module, init: str) -> nn.Module:
    """'torch': leave PyTorch's defaults. 'keras': Keras' layer defaults: Glorot-uniform weights
    and zero biases for every Linear and Conv layer (Dense, Conv2D), and BatchNorm with Keras'
    momentum 0.99 (PyTorch counts it the other way: 0.01) and epsilon 1e-3."""
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if init == "keras":
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum, m.eps = 0.01, 1e-3
    return model
