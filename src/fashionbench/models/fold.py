"""BatchNorm folded into the conv before it: for predictions (`forward.inference_model`) and export.

In eval mode a BatchNorm is a fixed per-channel affine map, so the conv before it can absorb it and
the BN's pass over the feature map disappears (the same function up to float rounding). Only a
BatchNorm2d that follows a conv inside an nn.Sequential is folded, where nothing else reads the
conv's output; blocks that call their layers by name (ResNet's bn1/bn2) keep theirs.

ONNX Runtime folds a BatchNorm that directly follows a conv, but not one behind a max-pool
(FastNet's conv -> max-pool -> BN); in an int8 graph that BN costs a dequantize/quantize pair and
its own parameters. A per-channel affine map with a positive scale commutes with max-pooling
(max(a*x + b) = a*max(x) + b for a > 0), so such a BN can move before the pool and fold into the
conv exactly. A channel with a negative scale would turn the max into a min: that BN is left where
it is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    weight = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    return weight / torch.sqrt(bn.running_var + bn.eps)


def _pairs(seq: nn.Sequential) -> list[tuple[int, int]]:
    """(conv index, BN index) of each foldable pair in `seq`."""
    pairs, layers = [], list(seq)
    for i, bn in enumerate(layers):
        # without running statistics a BN normalizes with batch statistics: nothing fixed to fold
        if not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None:
            continue
        j = i - 1
        if j >= 0 and isinstance(layers[j], nn.MaxPool2d):
            if not bool((_bn_scale(bn) > 0).all()):
                continue
            j -= 1
        if j >= 0 and isinstance(layers[j], nn.Conv2d):
            pairs.append((j, i))
    return pairs


def count_foldable(model: nn.Module) -> int:
    """How many BatchNorms `fold_batchnorm` would fold, without copying anything."""
    return sum(len(_pairs(m)) for m in model.modules() if isinstance(m, nn.Sequential))


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` (in eval mode) with every foldable BatchNorm2d in an nn.Sequential folded into
    the conv before it, directly or across a max-pool; returns the copy and how many were folded."""
    model = copy.deepcopy(model).eval()
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for j, i in _pairs(seq):
            seq[j] = fuse_conv_bn_eval(seq[j].eval(), seq[i].eval())
            seq[i] = nn.Identity()
            folded += 1
    return model, folded
