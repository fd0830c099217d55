"""Muon (Jordan et al. 2024) for conv filters, SGD with Nesterov momentum for the rest, in one optimizer.

Muon replaces a filter's momentum update by its nearest semi-orthogonal matrix (the update reshaped
to out x (in * k * k), orthogonalized by a few Newton-Schulz steps), so every direction of the
filter moves at the same rate; airbench's CIFAR-10 speed-run reached its 94% in 20% fewer epochs
with it. As there, the filter is renormalised to norm sqrt(out) before each step instead of
weight decay (BatchNorm follows every conv, so only its direction matters), and the vectors and
the classifier head keep plain SGD. One optimizer object, so the schedules, lookahead, checkpoints
and resume treat it like any other: a param group with `orthogonal: True` is Muon's, its own `lr`
scheduled with the others'.
"""

from __future__ import annotations

import torch

from ..utils import native_bf16

# the quintic iteration's coefficients from the Muon write-up: they maximise the slope at zero, so
# a few steps bring every singular value into roughly [0.5, 1.5], which trains as well as exactly 1;
# 3 as in airbench (5, the write-up's, cost 40% more per step here for nothing measured)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 3
# multiply-adds of one Gram product (small side^2 x large side) from which bf16 pays: on Sapphire Rapids
# (AMX) a 128 x 1152 filter's iteration takes 0.9x fp32's time, 256 x 2304 0.27x, 64 x 576 1.6x
BF16_MIN_WORK = 16_000_000


def matmul_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The Newton-Schulz iteration's dtype: bf16 where the run trains in bf16 on hardware with bf16
    units (several times the fp32 matmul rate there), fp32 otherwise (emulated bf16 is slower)."""
    return torch.bfloat16 if precision == "bf16" and native_bf16(device) else torch.float32


def orthogonalize(mats: list[torch.Tensor], steps: int = NS_STEPS, eps: float = 1e-7,
                  dtype: torch.dtype = torch.float32, min_work: int = BF16_MIN_WORK) -> list[torch.Tensor]:
    """(m, n) matrices -> approximately semi-orthogonal ones with the same singular vectors (Newton-Schulz).

    `dtype` bf16 computes those of at least `min_work` multiply-adds per Gram product in bf16 (as good:
    the iteration only needs singular values near 1); smaller ones stay fp32, where the casts cost more
    than bf16's matmuls save. One at a time:
    batching them zero-padded measured slower on a 2-core CPU."""
    a, b, c = NS_COEFFICIENTS
    out = []
    for m in mats:
        small, large = sorted(m.shape)
        dt = dtype if small * small * large >= min_work else torch.float32
        x = m.to(dt) if m.shape[0] <= m.shape[1] else m.to(dt).T  # wide: the Gram matrix is the small side
        x = x / (x.norm() + eps)  # largest singular value <= 1
        for _ in range(steps):
            s = x @ x.T
            x = a * x + (b * s + c * s @ s) @ x
        out.append((x if m.shape[0] <= m.shape[1] else x.T).to(m.dtype))
    return out


class Muon(torch.optim.Optimizer):
    """Groups with `orthogonal: True` (4-D conv filters): Muon with `matrix_momentum` (Nesterov).
    Other groups: SGD, `momentum`, `nesterov` and coupled `weight_decay` as torch.optim.SGD does them.
    `matmul_dtype` is the Newton-Schulz iteration's for the filters large enough (`matmul_dtype()`, `orthogonalize`)."""

    def __init__(self, params, lr: float, momentum: float = 0.85, nesterov: bool = True, weight_decay: float = 0.0,
                 matrix_momentum: float = 0.85, matmul_dtype: torch.dtype = torch.float32):
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
                    "orthogonal": False, "matrix_momentum": matrix_momentum}
        super().__init__(params, defaults)
        self.matmul_dtype = matmul_dtype  # not a group setting: checkpoints stay loadable wherever the run resumes

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            ortho = group["orthogonal"]
            mom = group["matrix_momentum"] if ortho else group["momentum"]
            grads = [p.grad for p in params]
            if not ortho and group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            bufs = []
            for p, g in zip(params, grads):
                state = self.state[p]
                if "momentum_buffer" not in state:  # zeros: after the first step it is the gradient, as in SGD
                    state["momentum_buffer"] = torch.zeros_like(g)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, mom)
            torch._foreach_add_(bufs, grads)
            steps = torch._foreach_add(grads, bufs, alpha=mom) if group["nesterov"] else bufs
            if ortho:
                # the filter's scale is BatchNorm's business: keep its norm at sqrt(out) and step its direction
                norms = torch.stack(torch._foreach_norm(params)).tolist()
                torch._foreach_mul_(params, [len(p) ** 0.5 / (n + 1e-12) for p, n in zip(params, norms)])
                flat = orthogonalize([d.reshape(len(d), -1) for d in steps], dtype=self.matmul_dtype)
                steps = [o.view_as(d) for o, d in zip(flat, steps)]
            torch._foreach_add_(params, steps, alpha=-group["lr"])
        return loss
