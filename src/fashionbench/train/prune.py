"""Structured pruning: start a narrower FastNet from a trained wider one, then fine-tune it.

Each conv of the trained parent keeps the output channels with the largest L1 norm
(`torch.nn.utils.prune.ln_structured` picks them), and everything those channels feed is cut
to match: the BatchNorm after the conv, the next conv's input channels, the head's columns.
The result is a genuinely smaller network with the child's widths, not a masked copy: zeros
left in place would neither shrink an ONNX file nor speed it up. The patch-whitening stem is
kept whole (it is tiny and fixed). Fine-tuning is ordinary training from these weights
(`train --prune-from PARENT`), with distillation through `--teacher` if wanted.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import ConfigError

log = logging.getLogger(__name__)


def _chain(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, its BatchNorm) in the order the features flow through a FastNet's groups."""
    pairs = []
    for group in model.groups:
        convs = [m for m in group if isinstance(m, nn.Conv2d)]
        bns = [m for m in group if isinstance(m, nn.BatchNorm2d)]
        pairs += list(zip(convs, bns, strict=True))
    return pairs


def top_l1_channels(conv: nn.Conv2d, keep: int) -> torch.Tensor:
    """Indices (ascending) of the `keep` output channels of `conv` with the largest L1 norm."""
    probe = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, bias=False)
    with torch.no_grad():
        probe.weight.copy_(conv.weight.detach().float().cpu())
    prune.ln_structured(probe, "weight", amount=conv.out_channels - keep, n=1, dim=0)
    return probe.weight_mask.flatten(1).any(1).nonzero().flatten()


@torch.no_grad()
def prune_into(parent: nn.Module, child: nn.Module) -> list[int]:
    """Copy `parent`'s strongest channels into `child` (same FastNet layout, each conv as wide or narrower).
    Returns the number of output channels kept per conv."""
    for m, who in ((parent, "the parent"), (child, "the model to train")):
        if not all(hasattr(m, a) for a in ("whiten", "groups", "head")):
            raise ConfigError(f"--prune-from works on FastNet models (fastnet, fastnet_light); {who} is "
                              f"{type(m).__name__}")
    p_chain, c_chain = _chain(parent), _chain(child)
    same_layout = (len(p_chain) == len(c_chain) and parent.whiten.weight.shape == child.whiten.weight.shape
                   and parent.whiten.stride == child.whiten.stride
                   and [len(g) for g in parent.groups] == [len(g) for g in child.groups]
                   and all(pc.out_channels >= cc.out_channels for (pc, _), (cc, _) in zip(p_chain, c_chain)))
    if parent.head.out_features != child.head.out_features:
        raise ConfigError(f"--prune-from: the parent has {parent.head.out_features} classes but the dataset has "
                          f"{child.head.out_features}; prune a model of the same dataset")
    if not same_layout:
        widths = [g[0].out_channels for g in parent.groups]
        raise ConfigError(f"--prune-from: the parent is a FastNet with widths {widths}, stem stride "
                          f"{parent.whiten.stride[0]} and {len(p_chain) // len(parent.groups)} convs per group; "
                          "the model to train must have the same stem, pools and depth and widths "
                          "no larger than the parent's (e.g. --model-arg widths=24,40,60)")
    child.whiten.load_state_dict(parent.whiten.state_dict())
    keep_in = torch.arange(parent.whiten.out_channels)
    kept = []
    for (pc, pb), (cc, cb) in zip(p_chain, c_chain):
        keep = top_l1_channels(pc, cc.out_channels)
        cc.weight.copy_(pc.weight[keep][:, keep_in])
        if pc.bias is not None and cc.bias is not None:
            cc.bias.copy_(pc.bias[keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(cb, name).copy_(getattr(pb, name)[keep])
        keep_in = keep
        kept.append(len(keep))
    child.head.weight.copy_(parent.head.weight[:, keep_in])
    if parent.head.bias is not None and child.head.bias is not None:
        child.head.bias.copy_(parent.head.bias)
    return kept


def prune_from_checkpoint(path: str, child: nn.Module, normalization: str) -> None:
    """Initialise `child` with the pruned weights of the FastNet checkpoint (or run folder) at `path`;
    `normalization` is the child's input normalization kind, which must be the parent's."""
    from ..inference import Predictor
    from ..onnx_file import is_onnx_path

    if is_onnx_path(path):
        raise ConfigError(f"--prune-from {path}: pass the PyTorch checkpoint (best.pt or its run folder), not an "
                          "ONNX file")
    predictor = Predictor.from_checkpoint(path, device="cpu", precision="fp32", tta="none")
    if predictor.normalizer.kind != normalization:
        raise ConfigError(f"--prune-from {path}: the parent was trained with --normalize {predictor.normalizer.kind}, "
                          f"this run uses {normalization}; its weights expect their own inputs, so use the same")
    parent = predictor.model
    before = sum(p.numel() for p in parent.parameters())
    kept = prune_into(parent, child)
    after = sum(p.numel() for p in child.parameters())
    log.info("pruned %s: %s -> %s output channels per conv, %d -> %d parameters", path,
             [c.out_channels for c, _ in _chain(parent)], kept, before, after)
