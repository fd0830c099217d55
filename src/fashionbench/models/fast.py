"""FastNet: an airbench-style CNN adapted to 28x28 grayscale, built to train fast on a CPU.

Shape: a k x k patch-whitening stem (filters set from the eigenvectors of the training
patches' covariance, with their negations), then one ConvGroup per width, each halving the
resolution where `pools` says so, then a global max-pool and a bias-free linear head whose
output is scaled down. With `whiten_stride=2` the 2x2 stem is a lossless space-to-depth step
(28 -> 14), so the conv groups run at 14 -> 7 -> 3: measured 2.3x fewer seconds per step than
the stride-1 stem (27 -> 13 -> 6 -> 3) on a 2-core CPU, where max-pooling large bf16 maps
dominates the step. BatchNorm uses airbench's settings: fast running statistics, tiny eps
and a frozen scale (only the bias learns). As in airbench the whitening filters stay fixed and
only their bias learns, for the first `whiten_bias_epochs` epochs; after that no gradient flows
into the stem at all, which saves its backward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale stays at 1; airbench's momentum 0.6 is torch momentum 0.4."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12, affine_weight: bool = False):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad = affine_weight


class DiracConv(nn.Conv2d):
    """3x3 'same' conv without bias whose first channels start as identity plus noise."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, kernel_size=3, padding="same", bias=False)
        with torch.no_grad():
            nn.init.dirac_(self.weight[: min(cin, cout)])


def _activation(name: str) -> nn.Module:
    return {"gelu": nn.GELU(), "relu": nn.ReLU(), "silu": nn.SiLU()}[name]


class ConvGroup(nn.Sequential):
    """conv -> max-pool 2 -> BN -> act, then (depth - 1) x (conv -> BN -> act)."""

    def __init__(self, cin: int, cout: int, depth: int = 2, act: str = "gelu", bn_momentum: float = 0.4,
                 pool: bool = True):
        layers: list[nn.Module] = [DiracConv(cin, cout), *([nn.MaxPool2d(2)] if pool else []),
                                   FrozenScaleBatchNorm(cout, bn_momentum), _activation(act)]
        for _ in range(depth - 1):
            layers += [DiracConv(cout, cout), FrozenScaleBatchNorm(cout, bn_momentum), _activation(act)]
        super().__init__(*layers)


class FastNet(nn.Module):
    def __init__(self, widths=(64, 128, 256), depth: int = 2, whiten_k: int = 2, act: str = "gelu",
                 scale: float = 1 / 9, bn_momentum: float = 0.4, whiten_bias_epochs: int = 3,
                 whiten_init: bool = True, whiten_stride: int = 1, pools: tuple[bool, ...] | None = None,
                 num_classes: int = 10, in_channels: int = 1, train_whiten_weight: bool | None = None):
        super().__init__()
        stem = 2 * in_channels * whiten_k * whiten_k
        self.whiten = nn.Conv2d(in_channels, stem, kernel_size=whiten_k, padding=0, bias=True, stride=whiten_stride)
        # fixed whitening filters; a first layer without the whitening init trains like any other
        self.whiten.weight.requires_grad = (not whiten_init) if train_whiten_weight is None else train_whiten_weight
        self.act = _activation(act)
        groups, cin = [], stem
        pools = tuple(pools) if pools is not None else (True,) * len(widths)
        for w, pool in zip(widths, pools):
            groups.append(ConvGroup(cin, w, depth, act, bn_momentum, pool))
            cin = w
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.scale = scale
        self.whiten_bias_epochs = whiten_bias_epochs
        self.whiten_init = whiten_init

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Patch whitening: filters = eigenvectors / sqrt(eigenvalues + eps) of the k x k patch covariance."""
        if not self.whiten_init:  # ablation: keep PyTorch's random init
            return
        k = self.whiten.kernel_size[0]
        c = x.shape[1]
        patches = F.unfold(x.float(), k).transpose(1, 2).reshape(-1, c * k * k)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        w = (eigenvectors / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, k, k)
        self.whiten.weight.copy_(torch.cat((w, -w)))
        self.whiten.bias.zero_()

    def on_epoch_start(self, epoch: int) -> None:
        # airbench trains the whitening bias for the first few epochs only
        self.whiten.bias.requires_grad = epoch < self.whiten_bias_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        return self.head(torch.amax(x, dim=(2, 3))) * self.scale


@register_model("fastnet", source="fashionbench")
def fastnet(num_classes: int = 10, widths: tuple[int, ...] | list[int] = (64, 128, 256), depth: int = 2,
            whiten_k: int = 2, act: str = "gelu", scale: float = 1 / 9, bn_momentum: float = 0.4,
            whiten_bias_epochs: int = 3, whiten_init: bool = True, whiten_stride: int = 1,
            pools: tuple[bool, ...] | list[bool] | None = None, train_whiten_weight: bool | None = None) -> nn.Module:
    """airbench-style CNN for 28x28: patch-whitening stem, 3 conv groups, frozen-scale BN (default recipes)."""
    return FastNet(tuple(widths), depth, whiten_k, act, scale, bn_momentum, whiten_bias_epochs, whiten_init,
                   whiten_stride, pools, num_classes, train_whiten_weight=train_whiten_weight)


@register_model("fastnet_light", source="fashionbench")
def fastnet_light(num_classes: int = 10, widths: tuple[int, ...] | list[int] = (24, 40, 60), depth: int = 2,
                  act: str = "gelu", whiten_stride: int = 2, pools: tuple[bool, ...] | list[bool] = (True, True, False),
                  whiten_bias_epochs: int = 3) -> nn.Module:
    """FastNet 24/40/60 with the stride-2 stem: 85 k parameters, an int8 ONNX file under 100 KB (recipe `light`).

    The `light` recipe passes act=relu: int8 ONNX Runtime fuses conv + ReLU into one integer op, while
    GELU runs in float between a dequantize and a quantize (0.068 vs 0.109 ms at batch 1). The default
    stays GELU so that checkpoints saved before the recipe chose ReLU rebuild as they were trained."""
    return fastnet(num_classes, widths, depth, act=act, whiten_bias_epochs=whiten_bias_epochs,
                   whiten_stride=whiten_stride, pools=pools)
