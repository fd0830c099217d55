"""Ensembles that add their members' outputs (study 000's boosting: "the outputs are simply added")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError

COMBINE = ("softmax", "logits")


def combine_outputs(outputs: Sequence[torch.Tensor], how: str = "softmax") -> torch.Tensor:
    """Sum member outputs: 'softmax' adds probabilities (returns their log, so argmax and softmax
    still work downstream), 'logits' adds raw logits."""
    if how not in COMBINE:
        raise ConfigError(f"ensemble combine must be one of {', '.join(COMBINE)}, got {how!r}")
    if not outputs:
        raise ConfigError("an ensemble needs at least one member")
    if how == "logits":
        return torch.stack([o.float() for o in outputs]).sum(0)
    probs = torch.stack([o.float().softmax(-1) for o in outputs]).mean(0)
    return probs.clamp_min(1e-12).log()


class SumEnsemble(nn.Module):
    """Members that share one input normalization; forward returns the combined output."""

    def __init__(self, members: Sequence[nn.Module], combine: str = "softmax"):
        super().__init__()
        if combine not in COMBINE:
            raise ConfigError(f"ensemble combine must be one of {', '.join(COMBINE)}, got {combine!r}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine_outputs([m(x) for m in self.members], self.combine)
