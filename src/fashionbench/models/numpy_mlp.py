"""Study 002's one-hidden-layer network written from scratch in NumPy (784-128 sigmoid-10).

Forward and backward passes are plain NumPy. They are wrapped in a torch.autograd.Function
only so the standard engine (mini-batch SGD, lr 0.03, batch 32, softmax cross-entropy) can
train the network unchanged: torch never differentiates anything inside it.

With softmax + cross-entropy on the output, the gradient the engine hands back is
dZ2 = A2 - Y (per sample, divided by the batch size), exactly the paper's equations;
the sigmoid derivative is A1 - A1**2.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .registry import register_model


def sigmoid(z: np.ndarray) -> np.ndarray:
    # Split by sign so large |z| never overflows exp.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def forward_np(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray):
    """x (B, 784) -> (logits Z2 (B, 10), hidden activations A1 (B, 128))."""
    a1 = sigmoid(x @ w1 + b1)
    return a1 @ w2 + b2, a1


def backward_np(dz2: np.ndarray, x: np.ndarray, a1: np.ndarray, w1: np.ndarray, w2: np.ndarray):
    """Gradients of the loss w.r.t. (x, W1, b1, W2, b2) given dLoss/dZ2."""
    dw2 = a1.T @ dz2
    db2 = dz2.sum(0)
    da1 = dz2 @ w2.T
    dz1 = da1 * (a1 - a1 * a1)  # sigmoid'(z1) = A1 - A1^2
    dw1 = x.T @ dz1
    db1 = dz1.sum(0)
    dx = dz1 @ w1.T
    return dx, dw1, db1, dw2, db2


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class NumpyMLPFunction(torch.autograd.Function):
    """Calls forward_np / backward_np on NumPy arrays (float32 in training, float64 in gradcheck)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        dtype = torch.promote_types(x.dtype, w1.dtype)
        arrays = [_np(t.to(dtype)) for t in (x, w1, b1, w2, b2)]
        z2, a1 = forward_np(*arrays)
        ctx.arrays = (arrays[0], a1, arrays[1], arrays[3])
        ctx.device, ctx.dtypes = x.device, (x.dtype, w1.dtype, b1.dtype, w2.dtype, b2.dtype)
        return torch.from_numpy(z2).to(x.device)

    @staticmethod
    def backward(ctx, grad_z2):
        x, a1, w1, w2 = ctx.arrays
        grads = backward_np(_np(grad_z2.to(torch.from_numpy(x).dtype)), x, a1, w1, w2)
        return tuple(torch.from_numpy(np.ascontiguousarray(g)).to(ctx.device, dt) for g, dt in zip(grads, ctx.dtypes))


class NumpyMLP(nn.Module):
    """784 -> hidden (sigmoid) -> num_classes logits; the softmax lives in the loss."""

    def __init__(self, num_classes: int = 10, hidden: int = 128, in_features: int = 784, seed: int | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        # Xavier/Glorot uniform (the paper does not state its initialization)
        def glorot(fan_in: int, fan_out: int) -> torch.Tensor:
            limit = (6.0 / (fan_in + fan_out)) ** 0.5
            return (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * limit

        self.w1 = nn.Parameter(glorot(in_features, hidden))
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(glorot(hidden, num_classes))
        self.b2 = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1).float() if x.dtype not in (torch.float32, torch.float64) else x.reshape(len(x), -1)
        return NumpyMLPFunction.apply(x, self.w1, self.b1, self.w2, self.b2)


@register_model("numpy_mlp", source="study 002", cpu_threads=1)
def numpy_mlp(num_classes: int = 10, hidden: int = 128) -> nn.Module:
    """One hidden layer (128 sigmoid) written in NumPy, forward and backward (study 002)."""
    return NumpyMLP(num_classes, hidden)
