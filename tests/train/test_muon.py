"""Muon for conv filters, SGD for the rest: the orthogonalization, the groups, the step, a short run."""

import pytest
import torch

from fashionbench.errors import ConfigError
from fashionbench.models import create_model
from fashionbench.train import muon
from fashionbench.train.config import TrainConfig, validate
from fashionbench.train.muon import Muon, orthogonalize
from fashionbench.train.optim import build_optimizer, param_groups


@pytest.mark.parametrize("shape", [(16, 72), (72, 16), (24, 216)])  # conv filters are wide: out x in*k*k
def test_orthogonalize_flattens_the_spectrum_and_keeps_the_singular_vectors(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g[:, 0] *= 50  # one dominant direction: plain SGD would move almost only along it
    o = orthogonalize([g])[0]
    s = torch.linalg.svdvals(o)
    sg = torch.linalg.svdvals(g)
    assert sg.max() / sg.min() > 20  # plain SGD would move almost only along one direction
    assert o.shape == g.shape and s.max() < 1.3 and s.max() / s.min() < 3  # Muon moves along all of them
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    m = u.T @ o @ vh.T  # diagonal when o has g's singular vectors
    assert (m - torch.diag(torch.diagonal(m))).abs().max() < 0.02


def test_bf16_newton_schulz_lands_near_the_fp32_result():
    g = torch.randn(128, 1152, generator=torch.Generator().manual_seed(0))
    g[:, 0] *= 50
    ref, low = orthogonalize([g])[0], orthogonalize([g], dtype=torch.bfloat16)[0]
    assert low.dtype == torch.float32  # the input's dtype comes back
    assert not torch.equal(low, ref) and (low - ref).norm() / ref.norm() < 0.05  # computed in bf16, close
    s = torch.linalg.svdvals(low)
    assert s.max() < 1.3 and s.max() / s.min() < 3
    small = g[:64, :576]  # too little work for bf16 to pay: fp32, exactly as without it
    assert torch.equal(orthogonalize([small], dtype=torch.bfloat16)[0], orthogonalize([small])[0])


@pytest.mark.parametrize("precision, fast, expected", [
    ("bf16", True, torch.bfloat16), ("bf16", False, torch.float32), ("fp32", True, torch.float32)])
def test_newton_schulz_follows_the_runs_precision_where_bf16_is_native(precision, fast, expected, monkeypatch):
    monkeypatch.setattr(muon, "native_bf16", lambda device: fast)
    assert muon.matmul_dtype(precision, torch.device("cpu")) == expected


def test_the_step_iterates_in_the_optimizers_dtype_and_checkpoints_do_not_carry_it(monkeypatch):
    seen = []
    real = muon.orthogonalize
    monkeypatch.setattr(muon, "orthogonalize", lambda mats, **kw: seen.append(kw["dtype"]) or real(mats, **kw))
    model = create_model("fastnet", widths=[8, 8, 8])
    groups = param_groups(model, 0.1, 0.0, filter_lr=0.2)
    opt = build_optimizer(groups, "muon", 0.1, matmul_dtype=torch.bfloat16)
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    opt.step()
    assert seen == [torch.bfloat16]
    saved = opt.state_dict()
    assert all("matmul_dtype" not in g for g in saved["param_groups"])
    fp32 = build_optimizer(param_groups(model, 0.1, 0.0, filter_lr=0.2), "muon", 0.1)
    fp32.load_state_dict(saved)  # a run resumed on another CPU kind iterates in its own precision
    assert fp32.matmul_dtype == torch.float32


def test_filters_get_their_own_orthogonal_group():
    model = create_model("fastnet", widths=[8, 8, 8])
    groups = param_groups(model, lr=0.1, weight_decay=0.01, bias_lr_scale=64, filter_lr=0.24)
    filters = [p for p in model.parameters() if p.requires_grad and p.ndim == 4]
    assert filters and groups[-1]["orthogonal"] and groups[-1]["lr"] == 0.24 and groups[-1]["weight_decay"] == 0
    assert {id(p) for p in groups[-1]["params"]} == {id(p) for p in filters}
    rest = [p for g in groups[:-1] for p in g["params"]]
    assert rest and all(p.ndim < 4 for p in rest)
    assert groups[0]["lr"] == 0.1  # the first group still carries the nominal lr the history logs
    with pytest.raises(ConfigError, match="conv filters"):
        param_groups(torch.nn.Linear(3, 2), 0.1, 0.0, filter_lr=0.24)


def test_other_groups_step_exactly_like_sgd():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    muon = build_optimizer(a.parameters(), "muon", 0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    sgd = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    x = torch.randn(8, 5)
    for _ in range(3):
        for m, opt in ((a, muon), (b, sgd)):
            opt.zero_grad()
            m(x).square().sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_filter_step_renormalises_and_moves_by_the_lr():
    w = torch.nn.Parameter(torch.randn(4, 2, 3, 3) * 7)
    opt = Muon([{"params": [w], "orthogonal": True, "lr": 0.01}], lr=0.5, matrix_momentum=0.0, nesterov=False)
    w.grad = torch.randn_like(w) * 1000  # the gradient's scale does not matter, only its directions
    opt.step()
    assert w.norm().item() == pytest.approx(4 ** 0.5, rel=0.05)
    before = w.detach().clone()
    w.grad = torch.randn_like(w)
    opt.step()
    step = w.detach() - before * (4 ** 0.5 / before.norm())
    svals = torch.linalg.svdvals(step.reshape(4, -1)) / 0.01
    assert svals.min() > 0.5 and svals.max() < 1.3


def test_config_checks_the_filter_settings():
    validate(TrainConfig(model="fastnet", optimizer="muon", nesterov=True, momentum=0.85))
    with pytest.raises(ConfigError, match="--filter-lr"):
        validate(TrainConfig(model="fastnet", optimizer="muon", filter_lr=0.0))
    with pytest.raises(ConfigError, match="--filter-momentum"):
        validate(TrainConfig(model="fastnet", optimizer="muon", filter_momentum=1.0))
