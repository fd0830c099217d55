"""The NumPy network: gradients against finite differences, and it learns with the plain engine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fashionbench.models import create_model
from fashionbench.models.numpy_mlp import NumpyMLPFunction, backward_np, forward_np, sigmoid


def test_gradcheck_float64():
    torch.manual_seed(0)
    x = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    w1 = torch.randn(12, 7, dtype=torch.float64, requires_grad=True)
    b1 = torch.randn(7, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    b2 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(NumpyMLPFunction.apply, (x, w1, b1, w2, b2), eps=1e-6, atol=1e-5)


def test_backward_matches_central_differences_of_cross_entropy():
    """The paper's equations (dZ2 = A2 - Y, sigmoid' = A1 - A1^2) checked entry by entry in NumPy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 10))
    w1, b1 = rng.normal(size=(10, 5)) * 0.5, rng.normal(size=5) * 0.1
    w2, b2 = rng.normal(size=(5, 3)) * 0.5, rng.normal(size=3) * 0.1
    y = np.eye(3)[rng.integers(0, 3, size=6)]

    def loss(w1, b1, w2, b2):
        z2, _ = forward_np(x, w1, b1, w2, b2)
        z2 = z2 - z2.max(1, keepdims=True)
        logp = z2 - np.log(np.exp(z2).sum(1, keepdims=True))
        return -(y * logp).sum() / len(x)

    z2, a1 = forward_np(x, w1, b1, w2, b2)
    a2 = np.exp(z2 - z2.max(1, keepdims=True))
    a2 /= a2.sum(1, keepdims=True)
    _, dw1, db1, dw2, db2 = backward_np((a2 - y) / len(x), x, a1, w1, w2)
    params = [w1, b1, w2, b2]
    for i, analytic in enumerate((dw1, db1, dw2, db2)):
        numeric = np.zeros_like(params[i])
        for idx in np.ndindex(params[i].shape):
            plus = [p.copy() for p in params]
            minus = [p.copy() for p in params]
            plus[i][idx] += 1e-6
            minus[i][idx] -= 1e-6
            numeric[idx] = (loss(*plus) - loss(*minus)) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_sigmoid_is_stable():
    z = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0], dtype=np.float32)
    s = sigmoid(z)
    assert np.isfinite(s).all() and s[0] == 0.0 and s[2] == 0.5 and s[-1] == 1.0


def test_float32_matches_torch_reference():
    torch.manual_seed(0)
    m = create_model("numpy_mlp")
    x = torch.randn(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    out = m(x)
    ref = torch.sigmoid(x.view(8, -1) @ m.w1 + m.b1) @ m.w2 + m.b2
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    F.cross_entropy(out, y).backward()
    g_numpy = [p.grad.clone() for p in m.parameters()]
    for p in m.parameters():
        p.grad = None
    F.cross_entropy(ref, y).backward()
    for gn, p in zip(g_numpy, m.parameters()):
        torch.testing.assert_close(gn, p.grad, rtol=1e-4, atol=1e-6)


def test_trains_with_the_standard_engine(tiny_dataset, tmp_path):
    from fashionbench.train.config import TrainConfig
    from fashionbench.train.run import train_run

    cfg = TrainConfig(model="numpy_mlp", optimizer="sgd", lr=0.03, momentum=0.0, batch_size=32, epochs=3,
                      normalize="per-pixel", val_fraction=0.1, device="cpu", precision="fp32")
    m = train_run(cfg, tmp_path / "run", dataset=tiny_dataset).metrics
    assert m["test_accuracy"] > 0.8
