"""VGG-16 with batch norm for ImageNet transfer learning (study 000, Table 2)."""

from __future__ import annotations

from torch import nn
from torchvision.models import VGG, VGG16_BN_Weights
from torchvision.models.vgg import cfgs, make_layers

from ._pretrained import GrayToImageNet, imagenet_mean_std, init_weights
from .registry import register_model


class VGGTL(VGG):
    """torchvision's VGG (same parameter names) behind resize + gray->3 channels + ImageNet normalization.

    The head is the whole classifier (4096-4096-10 with dropout 0.5): study 000 trained "only the
    fully connected network" with `--freeze features`."""

    head_prefixes = ("classifier.",)

    def __init__(self, num_classes: int, input_size: int, mean, std, dropout: float = 0.5):
        super().__init__(make_layers(cfgs["D"], batch_norm=True), num_classes=num_classes, dropout=dropout)
        self.prep = GrayToImageNet(input_size, mean, std)

    def forward(self, x):
        return super().forward(self.prep(x))


@register_model("vgg16_bn_tl", source="study 000")
def vgg16_bn_tl(num_classes: int = 10, pretrained: str | None = None, weights: str | None = None,
                input_size: int = 224, dropout: float = 0.5) -> nn.Module:
    """VGG-16-BN for ImageNet transfer: input resized to 224, gray stacked to 3 channels, new 10-class layer."""
    w = VGG16_BN_Weights.IMAGENET1K_V1
    model = VGGTL(num_classes, input_size, *imagenet_mean_std(w), dropout=dropout)
    init_weights(model, w, "vgg16_bn_tl", model.head_prefixes, pretrained, weights)
    return model
