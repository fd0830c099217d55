"""Every registered model: forward/backward on a tiny batch, output shape, parameter counts."""

from __future__ import annotations

import pytest
import torch

from fashionbench.models import count_params, create_model, list_models, model_info

# Counts the studies state (paper_params in the registry) are checked for every model that has one;
# these are the counts implied by our reading of each architecture (see seeds_summary / REPRODUCTION.md).
COMPUTED_PARAMS = {
    "numpy_mlp": 101_770,  # 784*128+128 + 128*10+10
    "lenet5": 61_706,  # C1 padded by 2, C5 a 5x5 conv
    "lenet5_bn": 61_706 + 2 * (6 + 16 + 120 + 84),
    "cnn_003": 1_475_338,  # FashionCNN reading: 2304-600-120-10
    "convnet_000": 1_879_116,  # authors' Keras total 1,879,246 minus 130 BN running statistics
    "resnet18_28px": 11_172_810,
    "resnet18_tl": 11_181_642,
    "resnet50_28px": 23_522_250,
    "vgg16_bn_tl": 134_309_962,
    "efficientnet_lite0_tl": 3_383_818,  # 4,652,008 with ImageNet's 1000-class head
}


def small_kwargs(name: str) -> dict:
    """Transfer-learning models resize inside forward; test them at 32 px instead of 224."""
    return {"input_size": 32} if "input_size" in model_info(name).defaults else {}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shape(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **small_kwargs(name))
    x = torch.randn(3, 1, 28, 28, requires_grad=False)
    model.train()
    out = model(x)
    assert out.shape == (3, 10)
    assert out.dtype == torch.float32
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), "every trainable parameter gets a gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 10)


@pytest.mark.parametrize("name", list_models())
def test_num_classes(name):
    model = create_model(name, num_classes=4, **small_kwargs(name))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 4)


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).paper_params])
def test_paper_parameter_count(name):
    assert count_params(create_model(name)) == model_info(name).paper_params


@pytest.mark.parametrize("name", sorted(COMPUTED_PARAMS))
def test_computed_parameter_count(name):
    assert count_params(create_model(name, **small_kwargs(name))) == COMPUTED_PARAMS[name]


def test_study_models_registered():
    names = set(list_models())
    assert set(COMPUTED_PARAMS) | {"mlp_002", "cnn_002"} <= names
    assert model_info("mlp_002").paper_params == 567_434
    assert model_info("cnn_002").paper_params == 423_338


def test_lenet_relu_variant_and_bad_activation():
    from fashionbench.errors import ConfigError

    assert count_params(create_model("lenet5", activation="relu")) == 61_706
    with pytest.raises(ConfigError, match="activation"):
        create_model("lenet5", activation="swish")


def test_resnet_stems():
    assert create_model("resnet18_28px", stem="imagenet")(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert create_model("resnet50_28px", stem="cifar").conv1.kernel_size == (3, 3)


def test_ensemble_combine():
    from fashionbench.models.ensemble import SumEnsemble, combine_outputs

    a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 3.0], [0.0, 5.0]])
    assert torch.equal(combine_outputs([a, b], "logits"), a + b)
    probs = combine_outputs([a, b], "softmax").exp()
    assert torch.allclose(probs.sum(1), torch.ones(2))
    assert torch.allclose(probs, (a.softmax(1) + b.softmax(1)) / 2)
    ens = SumEnsemble([torch.nn.Identity(), torch.nn.Identity()], "logits")
    assert torch.equal(ens(a), 2 * a)


@pytest.mark.parametrize("name", ["mlp_002", "cnn_002", "convnet_000"])
def test_keras_init_is_glorot_uniform_with_zero_biases(name):
    torch.manual_seed(0)
    model = create_model(name, init="keras")
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    for m in layers:
        fan_in = m.weight[0].numel()
        fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
        assert torch.count_nonzero(m.bias) == 0
    torch.manual_seed(0)
    default = [m for m in create_model(name).modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert torch.count_nonzero(default[0].bias) > 0  # PyTorch's default init is untouched


def test_keras_init_uses_keras_batchnorm_defaults():
    bns = [m for m in create_model("convnet_000", init="keras").modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 2 and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    default = [m for m in create_model("convnet_000").modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in default)


def test_unknown_init_is_refused():
    from fashionbench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown init 'glorot'.*keras"):
        create_model("mlp_002", init="glorot")
