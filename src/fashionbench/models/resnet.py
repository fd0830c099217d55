"""ResNets from torchvision: ImageNet transfer (study 000), 28x28 one-channel (001), ResNet-50 (004)."""

from __future__ import annotations

from torch import nn
from torchvision.models import ResNet, ResNet18_Weights
from torchvision.models.resnet import BasicBlock, Bottleneck

from ..errors import ConfigError
from ._pretrained import GrayToImageNet, imagenet_mean_std, init_weights
from .registry import register_model


class ResNetTL(ResNet):
    """torchvision's ResNet (same parameter names, so torchvision state_dicts load as they are)
    behind a preprocessing step: resize, gray -> 3 channels, ImageNet normalization."""

    head_prefixes = ("fc.",)

    def __init__(self, block, layers, num_classes: int, input_size: int, mean, std):
        super().__init__(block, layers, num_classes=num_classes)
        self.prep = GrayToImageNet(input_size, mean, std)

    def forward(self, x):
        return super().forward(self.prep(x))


@register_model("resnet18_tl", source="study 000")
def resnet18_tl(num_classes: int = 10, pretrained: str | None = None, weights: str | None = None,
                input_size: int = 224) -> nn.Module:
    """ResNet-18 for ImageNet transfer: input resized to 224, gray stacked to 3 channels, new 10-class fc."""
    w = ResNet18_Weights.IMAGENET1K_V1
    model = ResNetTL(BasicBlock, [2, 2, 2, 2], num_classes, input_size, *imagenet_mean_std(w))
    init_weights(model, w, "resnet18_tl", model.head_prefixes, pretrained, weights)
    return model


def _one_channel_stem(model: ResNet, stem: str) -> ResNet:
    if stem == "cifar":  # 3x3 stride-1 conv, no max-pool: keeps 28x28 resolution into layer1
        model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif stem == "imagenet":  # the standard 7x7/2 conv + 3x3/2 max-pool, on one channel
        model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    else:
        raise ConfigError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


@register_model("resnet18_28px", source="study 001")
def resnet18_28px(num_classes: int = 10, stem: str = "cifar") -> nn.Module:
    """torchvision ResNet-18 with conv1 for 1-channel 28x28 input (3x3 stride 1, no max-pool; study 001)."""
    return _one_channel_stem(ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes), stem)


@register_model("resnet50_28px", source="study 004")
def resnet50_28px(num_classes: int = 10, stem: str = "imagenet") -> nn.Module:
    """ResNet-50 (bottleneck blocks, stages 3-4-6-3) from scratch on 1-channel 28x28 input (study 004)."""
    return _one_channel_stem(ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes), stem)
