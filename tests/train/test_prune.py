"""Structured pruning: the strongest channels of a trained FastNet start a narrower one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bands import band_dataset
from fashionbench.cli import main
from fashionbench.errors import ConfigError
from fashionbench.inference import Predictor
from fashionbench.models import count_params, create_model
from fashionbench.train.config import TrainConfig
from fashionbench.train.prune import _chain, prune_into, top_l1_channels
from fashionbench.train.run import setup_run, train_run

SMALL = dict(whiten_stride=2, pools=[True, True, False])


def test_top_l1_channels_keeps_the_largest_norms():
    conv = nn.Conv2d(2, 5, 3, bias=False)
    with torch.no_grad():
        for c, scale in enumerate([0.1, 3.0, 0.5, 2.0, -4.0]):  # L1 norm grows with |scale|
            conv.weight[c] = scale
    assert top_l1_channels(conv, 3).tolist() == [1, 3, 4]
    assert top_l1_channels(conv, 5).tolist() == [0, 1, 2, 3, 4]


@torch.no_grad()
def _parent_with_dead_channels(child_widths, act):
    """A random FastNet whose channels beyond each conv's child width carry nothing: pruning them is lossless."""
    torch.manual_seed(0)
    parent = create_model("fastnet", widths=[16, 24, 32], act=act, **SMALL)
    child_chain = _chain(create_model("fastnet", widths=child_widths, act=act, **SMALL))
    for (conv, bn), (small, _) in zip(_chain(parent), child_chain):
        dead = torch.randperm(conv.out_channels)[: conv.out_channels - small.out_channels]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.bias.uniform_(-0.2, 0.2)
        conv.weight[dead] = 0
        bn.running_mean[dead], bn.bias[dead] = 0, 0  # a dead channel is exactly 0 after BN and the activation
    return parent.eval()


@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_pruning_dead_channels_is_exact_and_shrinks_the_network(act):
    widths = [8, 12, 20]
    parent = _parent_with_dead_channels(widths, act)
    child = create_model("fastnet", widths=widths, act=act, **SMALL).eval()
    kept = prune_into(parent, child)
    assert kept == [8, 8, 12, 12, 20, 20]
    assert count_params(child) < count_params(parent) / 2
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(child(x), parent(x), atol=1e-5)


def test_pruning_refuses_a_wider_child_or_another_layout():
    parent = create_model("fastnet", widths=[16, 24, 32], **SMALL)
    with pytest.raises(ConfigError, match="widths no larger than the parent's"):
        prune_into(parent, create_model("fastnet", widths=[16, 24, 40], **SMALL))
    with pytest.raises(ConfigError, match="same stem"):
        prune_into(parent, create_model("fastnet", widths=[8, 8, 8]))  # stride-1 stem, three pools
    with pytest.raises(ConfigError, match="works on FastNet models"):
        prune_into(parent, create_model("mlp_002"))


def _cfg(**kw) -> TrainConfig:
    base = dict(model="fastnet", model_args={"widths": [16, 24, 32], **SMALL}, epochs=2, batch_size=50,
                device="cpu", precision="fp32", val_fraction=0.0, seed=0, lr=0.05, momentum=0.9)
    return TrainConfig(**{**base, **kw})


def test_prune_from_fine_tunes_a_narrower_model(tmp_path):
    ds = band_dataset(boost=90)
    parent = train_run(_cfg(epochs=4), tmp_path / "parent", dataset=ds)
    trained = Predictor.from_checkpoint(tmp_path / "parent", device="cpu").model
    s = setup_run(_cfg(model="fastnet_light", model_args={"widths": [8, 12, 16]}, prune_from=str(tmp_path / "parent")),
                  dataset=ds)
    # the run starts from the pruned parent: the first conv holds the parent's 8 strongest filters
    first_big, first_small = trained.groups[0][0], s.model.groups[0][0]
    assert torch.equal(first_small.weight, first_big.weight[top_l1_channels(first_big, 8)])
    assert torch.equal(s.model.whiten.weight, trained.whiten.weight)
    with pytest.raises(ConfigError, match="trained with --normalize standardize"):
        setup_run(_cfg(model="fastnet_light", model_args={"widths": [8, 12, 16]}, normalize="minmax",
                       prune_from=str(tmp_path / "parent")), dataset=ds)
    child = train_run(_cfg(model="fastnet_light", model_args={"widths": [8, 12, 16]}, prune_from=str(tmp_path / "parent"),
                           epochs=1), tmp_path / "child", dataset=ds)
    p = Predictor.from_checkpoint(tmp_path / "child", device="cpu")
    assert count_params(p.model) < count_params(Predictor.from_checkpoint(tmp_path / "parent", device="cpu").model)
    assert child.config.prune_from == str(tmp_path / "parent")
    assert parent.test_accuracy > 0.5 and child.test_accuracy > 0.3


def test_prune_from_bad_parent_is_one_line(tmp_path, capsys, idx_folder):
    train_run(TrainConfig(model="mlp_002", epochs=1, batch_size=50, device="cpu", val_fraction=0.0),
              tmp_path / "mlp", dataset=band_dataset())
    assert main(["train", "--model", "fastnet_light", "--prune-from", str(tmp_path / "mlp"), "--epochs", "1",
                 "--dataset", "mnist-format", "--data-dir", str(idx_folder), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--prune-from works on FastNet models" in err and "Traceback" not in err
