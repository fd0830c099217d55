"""BatchNorm folding for predictions and export: exact, across a max-pool only where the scale is positive."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fashionbench.models import create_model
from fashionbench.models.fold import fold_batchnorm


@torch.no_grad()
def _random_stats(model: nn.Module, negative: bool = False) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.bias.uniform_(-0.5, 0.5)
            m.weight.uniform_(0.5, 2)
            if negative:
                m.weight[0] = -1.0
    return model.eval()


def _bns(model):
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("name", ["fastnet_light", "fastnet", "lenet5_bn"])
def test_folding_is_exact_and_removes_the_batchnorms(name):
    model = _random_stats(create_model(name))
    before = _bns(model)
    folded, n = fold_batchnorm(model)
    assert n == before > 0 and _bns(folded) == 0
    assert _bns(model) == before, "the original model is left as it was"
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4, rtol=1e-4)


def test_a_negative_scale_behind_a_max_pool_is_not_folded():
    seq = _random_stats(nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)), negative=True)
    folded, n = fold_batchnorm(seq)
    assert n == 1 and isinstance(folded[2], nn.BatchNorm2d) and isinstance(folded[5], nn.Identity)
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(folded(x), seq(x), atol=1e-5)


def test_inference_model_folds_a_copy_and_leaves_models_without_batchnorm_alone():
    from fashionbench.forward import inference_model

    model = _random_stats(create_model("fastnet")).train()
    folded = inference_model(model)
    assert folded is not model and _bns(folded) == 0 and not folded.training
    assert model.training and _bns(model) > 0, "the training model keeps its mode and its BatchNorms"
    plain = create_model("lenet5")
    assert inference_model(plain) is plain


def test_folding_keeps_channels_last_weights():
    model = _random_stats(create_model("fastnet")).to(memory_format=torch.channels_last)
    folded, _ = fold_batchnorm(model)
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_a_predictor_predicts_with_the_folded_copy_and_keeps_its_model():
    from fashionbench.data.normalize import Normalization
    from fashionbench.inference import Predictor

    model = _random_stats(create_model("fastnet"))
    p = Predictor.from_model(model, Normalization("standardize", 0.3, 0.35), [str(i) for i in range(10)],
                             device="cpu", precision="fp32", tta="flip+translate")
    x = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    logits = p.predict_logits(x)
    assert _bns(p.model) > 0, "Predictor.model keeps its BatchNorms (pruning and gradients read them)"
    assert _bns(p.forward_model()) == 0 and p.forward_model() is p.forward_model(), "folded once"
    from fashionbench.forward import predict_logits

    reference = predict_logits(p.model, x, normalizer=p.normalizer, precision=p.precision,
                               channels_last=p.channels_last, tta=p.tta)
    assert torch.allclose(logits, reference, atol=1e-4, rtol=1e-4)
    unfolded = dataclasses.replace(p, fold_batchnorm=False)
    assert unfolded.forward_model() is p.model and torch.equal(unfolded.predict_logits(x), reference)

    with torch.no_grad():  # weights changed in place (a state dict loaded, fine-tuning): predictions follow
        for m in p.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.add_(0.3)
    after = predict_logits(p.model, x, normalizer=p.normalizer, precision=p.precision,
                           channels_last=p.channels_last, tta=p.tta)
    assert not torch.allclose(after, reference, atol=1e-3)
    assert torch.allclose(p.predict_logits(x), after, atol=1e-4, rtol=1e-4)


def test_an_ensemble_passes_its_folding_setting_to_its_members():
    from fashionbench.data.normalize import Normalization
    from fashionbench.inference import Predictor

    members = [Predictor.from_model(_random_stats(create_model("fastnet_light")), Normalization("standardize", 0.3, 0.35),
                                    [str(i) for i in range(10)], device="cpu", precision="fp32") for _ in range(2)]
    ens = Predictor.ensemble(members)
    x = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    ens.predict_logits(x)
    assert all(m.forward_model() is not m.model for m in ens.members)
    ens.fold_batchnorm = False
    plain = dataclasses.replace(ens, members=[dataclasses.replace(m, fold_batchnorm=False) for m in ens.members])
    assert torch.equal(ens.predict_logits(x), plain.predict_logits(x))


def test_count_foldable_counts_without_copying():
    from fashionbench.models.fold import count_foldable

    model = _random_stats(create_model("fastnet"))
    assert count_foldable(model) == _bns(model) == fold_batchnorm(model)[1]
    assert count_foldable(create_model("lenet5")) == 0
