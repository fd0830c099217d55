"""Starting weights for the transfer models, without the internet: local files and a faked download."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights

from fashionbench.errors import ConfigError
from fashionbench.models import create_model
from fashionbench.train.config import TrainConfig
from fashionbench.train.run import build_model, freeze_features


@pytest.fixture(scope="module")
def tv_resnet18_state():
    """A randomly initialised torchvision ResNet-18 with ImageNet's 1000-class head."""
    torch.manual_seed(1)
    return torchvision.models.resnet18().state_dict()


def test_weights_file_torchvision_format(tmp_path, tv_resnet18_state):
    path = tmp_path / "resnet18.pth"
    torch.save(tv_resnet18_state, path)
    model = create_model("resnet18_tl", weights=str(path), input_size=32)
    sd = model.state_dict()
    torch.testing.assert_close(sd["conv1.weight"], tv_resnet18_state["conv1.weight"])
    torch.testing.assert_close(sd["layer4.1.bn2.running_var"], tv_resnet18_state["layer4.1.bn2.running_var"])
    assert sd["fc.weight"].shape == (10, 512)  # new head, not ImageNet's
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_pretrained_imagenet_uses_weights_api(monkeypatch, tv_resnet18_state):
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return tv_resnet18_state

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", fake_get_state_dict)
    model = create_model("resnet18_tl", pretrained="imagenet", input_size=32)
    assert calls == [ResNet18_Weights.IMAGENET1K_V1]
    torch.testing.assert_close(model.state_dict()["layer1.0.conv1.weight"], tv_resnet18_state["layer1.0.conv1.weight"])


def test_pretrained_download_failure_is_clear(monkeypatch):
    def offline(self, *args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", offline)
    with pytest.raises(ConfigError, match="--weights FILE"):
        create_model("resnet18_tl", pretrained="imagenet", input_size=32)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.pth not found"):
        create_model("resnet18_tl", weights=str(tmp_path / "nope.pth"), input_size=32)


def test_mismatched_weights_file(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(ConfigError, match=r"resnet34\.pth do not fit resnet18_tl"):
        create_model("resnet18_tl", weights=str(path), input_size=32)


def test_garbage_weights_file(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="junk.pth could not be read"):
        create_model("resnet18_tl", weights=str(path), input_size=32)


def test_fashionbench_checkpoint_as_weights(tmp_path):
    src = create_model("resnet18_tl", input_size=32)
    ckpt = {"format": "fashionbench-checkpoint", "model": "resnet18_tl", "state_dict": src.state_dict()}
    torch.save(ckpt, tmp_path / "best.pt")
    model = create_model("resnet18_tl", weights=str(tmp_path / "best.pt"), input_size=32)
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    torch.save({**ckpt, "model": "cnn_002"}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="checkpoint of 'cnn_002'"):
        create_model("resnet18_tl", weights=str(tmp_path / "other.pt"), input_size=32)


@pytest.mark.slow
def test_vgg_weights_file_and_freeze(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.vgg16_bn()
    path = tmp_path / "vgg16_bn.pth"
    torch.save(tv.state_dict(), path)
    cfg = TrainConfig(model="vgg16_bn_tl", model_args={"input_size": 32}, weights=str(path), freeze="features")
    model = build_model(cfg, 10)
    torch.testing.assert_close(model.state_dict()["features.0.weight"], tv.state_dict()["features.0.weight"])
    torch.testing.assert_close(model.state_dict()["classifier.0.weight"], tv.state_dict()["classifier.0.weight"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("classifier.") for n in trainable)
    assert "classifier.6.weight" in trainable and "features.0.weight" not in trainable


def test_tl_preprocessing_resizes_and_normalizes():
    model = create_model("resnet18_tl", input_size=64)
    x = torch.ones(2, 1, 28, 28)
    y = model.prep(x)
    assert y.shape == (2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, ((torch.ones(2, 3, 64, 64) - mean) / std))
    assert freeze_features(model) == 512 * 10 + 10
