"""One model trained by several processes: `torchrun ... -m fashionbench train` and DistributedDataParallel.

Every rank holds the whole in-memory dataset and draws the same seeded permutation each epoch;
each takes its slice of every global batch, so the global batch size, the learning rate, the
schedules and lookahead are those of a one-process run. Gradients are averaged by DDP's
all-reduce (gloo on CPU, NCCL on CUDA). BatchNorm stays plain (each rank normalizes with its own
slice, as a one-process run would with ghost batches of that size); its running statistics are
broadcast from rank 0 after every epoch, so validation, early stopping and the saved weights
agree on every rank. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, FashionbenchError

log = logging.getLogger("fashionbench.train")

TIMEOUT = datetime.timedelta(minutes=30)  # a rank that crashed lets the others fail instead of hanging for ever


@dataclass(frozen=True)
class Distributed:
    """This process's place in a distributed run (an initialised default process group)."""

    rank: int
    world_size: int
    local_rank: int = 0
    backend: str = "gloo"

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of one global batch (sizes differ by at most one)."""
        return idx.tensor_split(self.world_size)[self.rank]

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        # find_unused_parameters: some models freeze a parameter after a few epochs (FastNet's whitening
        # bias); DDP then skips it instead of waiting for its gradient
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    @torch.no_grad()
    def broadcast_buffers(self, model: nn.Module) -> None:
        for b in model.buffers():
            dist.broadcast(b, 0)

    def broadcast_object(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def on_writer(self, fn, share: bool = True):
        """Run `fn` on rank 0 only; every rank gets its result (`share`) or None, or raises its error.

        Without this, a check that fails on rank 0 (a run folder in use, a corrupt checkpoint)
        would leave the other ranks waiting in their next collective until the timeout."""
        value, error, outcome = None, None, None
        if self.is_writer:
            try:
                value = fn()
            except FashionbenchError as e:
                error, outcome = e, (type(e), str(e))
        outcome, shared = self.broadcast_object((outcome, value if share else None))
        if error is not None:
            raise error
        if outcome is not None:
            try:
                raise outcome[0](outcome[1])
            except TypeError:  # an error class with another constructor
                raise FashionbenchError(outcome[1]) from None
        return value if self.is_writer else shared

    def gather_objects(self, obj) -> list:
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def weights_digests(self, model: nn.Module) -> list[str]:
        """Every rank's SHA-256 of its model's parameters and buffers (all equal when in sync)."""
        h = hashlib.sha256()
        for k, v in model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        return self.gather_objects(h.hexdigest())

    def summary(self, model: nn.Module) -> dict:
        digests = self.weights_digests(model)
        return {"world_size": self.world_size, "backend": self.backend,
                "weights_identical": len(set(digests)) == 1}


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment(device: str = "auto") -> Distributed | None:
    """Join the process group torchrun describes in the environment (None outside torchrun).

    The backend follows the device: NCCL where every rank has a CUDA GPU, gloo on CPU."""
    if not launched_by_torchrun():
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "mps":
        raise ConfigError("distributed training runs on CPU (gloo) or CUDA (NCCL), not on MPS; pass --device cpu")
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError) as e:
            raise ConfigError(f"could not join the distributed run ({str(e).splitlines()[0][:160]}); check "
                              "--rdzv-endpoint / MASTER_ADDR and that every node runs the same command") from None
    log.info("distributed: rank %d of %d (%s)", rank, world, backend)
    return Distributed(rank, world, local_rank, backend)


def shutdown(ctx: Distributed | None, together: bool = False) -> None:
    """Leave the process group. `together` (this rank's work ended well) first waits at a barrier
    for every rank, so that no rank tears its connections down while rank 0 still writes the run
    folder: a rank that dies in its teardown makes torchrun stop the others, the writer included."""
    if ctx is None or not dist.is_initialized():
        return
    try:
        if together and ctx.world_size > 1:
            try:
                dist.barrier()
            except RuntimeError as e:  # another rank failed; its own error is the one to report
                why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
                log.warning("distributed: leaving without the other ranks (%s)", why)
    finally:
        dist.destroy_process_group()


__all__ = ["Distributed", "init_from_environment", "launched_by_torchrun", "shutdown"]
