"""Skipping well-learned training images in the middle epochs (InfoBatch's unbiased dynamic pruning,
with fixed counts so that the schedule knows every epoch's length in advance).

Each image's loss is recorded when it is trained on. A middle epoch keeps the `keep_hard` share of
the images with the highest recorded loss, and a random draw from the rest that leaves out `skip` of
the training set; the losses of the drawn well-learned images count (rest / drawn) times, so the
epoch's expected gradient is the full epoch's. The first epoch (nothing recorded yet) and the last
eighth of the run (InfoBatch's annealing, at least one epoch) see every image.
"""

from __future__ import annotations

import math

import torch

from .engine import epoch_steps

FULL_TAIL = 0.125  # share of the last epochs that see every image


def full_epoch(epoch: int, epochs: int) -> bool:
    return epoch == 0 or epoch >= epochs - max(1, math.ceil(FULL_TAIL * epochs))


def epoch_images(n: int, epoch: int, epochs: int, skip: float) -> int:
    """How many of the n training images epoch `epoch` (from 0) trains on."""
    return n if skip <= 0 or full_epoch(epoch, epochs) else n - round(skip * n)


def run_steps(n: int, epochs: int, batch_size: int, skip: float, drop_last: bool) -> int:
    """Optimizer steps over the whole run (what the lr schedule and the lookahead ramp span)."""
    return sum(epoch_steps(epoch_images(n, e, epochs, skip), batch_size, drop_last) for e in range(epochs))


class EasySkipper:
    """The per-image losses and the draw of each middle epoch's images (state saved for --resume)."""

    def __init__(self, n: int, epochs: int, skip: float, keep_hard: float) -> None:
        self.n, self.epochs, self.skip, self.keep_hard = n, epochs, skip, keep_hard
        self.losses = torch.zeros(n)  # each image's training loss when it was last seen
        self.fresh = torch.zeros(n, dtype=torch.bool)  # recorded by this process since the last share

    def plan(self, epoch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(indices, loss weights per image of the training set) for this epoch; None: every image, weight 1."""
        kept = epoch_images(self.n, epoch, self.epochs, self.skip)
        if kept == self.n:
            return None
        order = torch.argsort(self.losses, descending=True, stable=True)
        n_hard = min(int(self.keep_hard * self.n), kept)
        easy = order[n_hard:]
        drawn = easy[torch.randperm(len(easy), generator=generator)[:kept - n_hard]]
        weights = torch.ones(self.n)
        weights[drawn] = len(easy) / max(len(drawn), 1)
        return torch.cat([order[:n_hard], drawn]).sort().values, weights

    def record(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        idx = idx.cpu()
        self.losses[idx] = losses.detach().float().cpu()
        self.fresh[idx] = True

    def share(self, all_reduce_sum, device: torch.device) -> None:
        """Merge what every rank of a distributed run recorded this epoch (each saw its own slices)."""
        mask = self.fresh.float()
        total = all_reduce_sum(torch.stack([self.losses * mask, mask]).to(device)).cpu()
        seen = total[1] > 0
        self.losses[seen] = total[0][seen] / total[1][seen]
        self.fresh.zero_()

    def state_dict(self) -> dict:
        return {"losses": self.losses.clone()}

    def load_state_dict(self, d: dict) -> None:
        losses = d["losses"]
        if losses.shape != self.losses.shape:
            raise ValueError(f"per-image losses for {len(losses)} images, this run trains on {self.n}")
        self.losses = losses.float().clone()
