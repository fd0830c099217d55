"""The fast recipe's pieces on small data: whitening init, lookahead, lr groups, schedule, TTA."""

import pytest
import torch
import torch.nn.functional as F

from fashionbench.data.normalize import Normalization
from fashionbench.data.photo_augment import PHOTO_AUGMENTS
from fashionbench.forward import _translate_views
from fashionbench.forward import predict_logits as predict
from fashionbench.models import create_model
from fashionbench.train.config import validate
from fashionbench.train.engine import Lookahead
from fashionbench.train.optim import build_optimizer, lr_factor, param_groups
from fashionbench.train.recipes import RECIPES, STRIDE_1, STRIDE_2, recipe_train_config
from fashionbench.train.run import train_run


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_a_valid_config(name):
    cfg = recipe_train_config(name)
    validate(cfg)
    assert cfg.recipe == name
    create_model(cfg.model, **cfg.model_args)


@pytest.mark.parametrize("short_name, long_name, epochs, first_width",
                         [("fast-30s", "fast-60s", 4, 32), ("fast-90s", "fast-3m", 6, 24),
                          ("fast-8m", "fast-15m", 13, 64)])
def test_muon_recipes_are_their_sgd_parents_shorter_with_half_the_batch(short_name, long_name, epochs, first_width):
    fast, short = recipe_train_config(long_name), recipe_train_config(short_name)
    # the same network but for the first group's width, which sets the cost of the largest maps
    parent_widths = fast.model_args["widths"]
    assert short.model_args == {**fast.model_args, "widths": [first_width, *parent_widths[1:]]}
    assert short.tta == fast.tta
    assert (short.epochs, short.batch_size, short.optimizer) == (epochs, 512, "muon") and fast.optimizer == "sgd"
    # lr and weight decay follow the batch; Muon's normalised steps need no warmup
    assert short.lr == pytest.approx(fast.lr / 2) and short.weight_decay == pytest.approx(2 * fast.weight_decay)
    assert short.warmup_epochs == 0 and fast.warmup_epochs > 0
    # the stride-1 Muon recipes skip well-learned images (the others lost 0.3-0.5 points to it)
    assert short.skip_easy == (0.0 if short_name == "fast-30s" else 0.35) and fast.skip_easy == 0.0


def test_photo_recipe_is_fast_8m_with_photo_augmentations_and_a_validation_split():
    photo, fast = recipe_train_config("photo"), recipe_train_config("fast-8m")
    assert photo.model_args == fast.model_args and (photo.optimizer, photo.batch_size) == (fast.optimizer, 512)
    assert set(photo.augment) == {"flip", *PHOTO_AUGMENTS} and fast.augment == ["flip"]
    assert photo.val_fraction > 0 == fast.val_fraction  # the temperature predict uses is fitted on held-out images


@pytest.mark.parametrize("stem, sizes", [(STRIDE_2, [14, 7, 3, 3]), (STRIDE_1, [27, 13, 6, 3])])
def test_stem_sets_each_groups_resolution(stem, sizes):
    # the speed/accuracy trade of the recipes: stride-2 halves the maps before the first group
    model = create_model("fastnet", widths=[8, 8, 8], **stem)
    seen = []
    for g in model.groups:
        g.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape[-1]))
    model.groups[-1].register_forward_hook(lambda m, inp, out: seen.append(out.shape[-1]))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert seen == sizes


def test_whitening_init_decorrelates_patches(tiny_dataset):
    model = create_model("fastnet", widths=[8, 8, 8])
    x = tiny_dataset.train_images[:200].unsqueeze(1).float() / 255
    x = (x - x.mean()) / x.std()
    model.init_from_data(x)
    with torch.no_grad():
        out = F.conv2d(x, model.whiten.weight[:4])  # the positive half: one filter per eigenvector
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(4, -1))
    assert torch.allclose(cov, torch.eye(4), atol=0.05), cov


def test_whitening_bias_trains_for_first_epochs_only():
    model = create_model("fastnet", widths=[8, 8, 8], whiten_bias_epochs=2)
    model.on_epoch_start(1)
    assert model.whiten.bias.requires_grad
    model.on_epoch_start(2)
    assert not model.whiten.bias.requires_grad


def test_whitening_filters_stay_fixed_and_stem_gets_no_gradient_once_bias_freezes():
    torch.manual_seed(0)
    model = create_model("fastnet", widths=[8, 8, 8], whiten_bias_epochs=1)
    opt = torch.optim.SGD(param_groups(model, 0.1, 0.0, 1.0), lr=0.1)
    filters = model.whiten.weight.detach().clone()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    for epoch in (0, 1):
        model.on_epoch_start(epoch)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert model.whiten.weight.grad is None and torch.equal(model.whiten.weight, filters)
    assert not model.whiten(x).requires_grad  # epoch 1: nothing in the stem learns, so no backward through it
    assert create_model("fastnet", train_whiten_weight=True).whiten.weight.requires_grad
    assert create_model("fastnet", whiten_init=False).whiten.weight.requires_grad  # random filters must learn


def test_bias_lr_scale_keeps_per_step_decay_equal():
    model = create_model("fastnet", widths=[8, 8, 8])
    groups = param_groups(model, lr=0.1, weight_decay=0.01, bias_lr_scale=64)
    opt = build_optimizer(groups, "sgd", 0.1, weight_decay=0.01, nesterov=True)
    w, b = opt.param_groups
    assert all(p.ndim >= 2 for p in w["params"]) and all(p.ndim < 2 for p in b["params"])
    assert b["lr"] == pytest.approx(6.4)
    assert b["lr"] * b["weight_decay"] == pytest.approx(w["lr"] * w["weight_decay"])
    # The frozen BN scale is not trained at all.
    assert not any(p is m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in b["params"])


def test_lookahead_pulls_weights_back_and_finishes_on_ema():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    la = Lookahead(model, total_steps=10, every=1, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    la.steps = 9
    la.after_step()  # step 10 of 10: decay 0.5 -> halfway between ema (0) and weights (1)
    assert torch.allclose(model.weight, torch.full((1, 2), 0.5))
    with torch.no_grad():
        model.weight.fill_(3.0)
    la.finish()
    assert torch.allclose(model.weight, torch.full((1, 2), 0.5))


def test_warmup_then_linear_decay_to_final_factor():
    f = [lr_factor("linear", s, 100, warmup_steps=20, final_factor=0.07) for s in range(100)]
    assert f[0] == pytest.approx(0.05) and f[19] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[20:], f[21:]))
    assert lr_factor("linear", 100, 100, warmup_steps=20, final_factor=0.07) == pytest.approx(0.07)


def test_translate_tta_views_shift_with_black_fill():
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    right, left, down, up = _translate_views(x)
    assert torch.equal(right[0, 0, :, 1:], x[0, 0, :, :3]) and (right[0, 0, :, 0] == 0).all()
    assert torch.equal(up[0, 0, :3], x[0, 0, 1:]) and (up[0, 0, 3] == 0).all()


def test_flip_tta_makes_predictions_mirror_invariant():
    model = create_model("fastnet", widths=[8, 8, 8]).eval()
    x = torch.randint(0, 255, (6, 28, 28), dtype=torch.uint8)
    norm = Normalization()
    a = predict(model, x, normalizer=norm, tta=["flip"])
    b = predict(model, x.flip(2), normalizer=norm, tta=["flip"])
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.realdata
@pytest.mark.slow
def test_fast_recipe_learns_real_subset(real_dataset, tmp_path):
    # FastNet pools globally, so it needs real garments (not the positional synthetic set):
    # 10% of the training set, 3 short epochs of a narrow net, all recipe pieces switched on.
    cfg = recipe_train_config("fast-60s").replace(epochs=3, batch_size=256, lr=1.5 * 256 / 1024, warmup_epochs=0.7,
                                                  data_fraction=0.1, model_args={"widths": [16, 32, 64]})
    m = train_run(cfg, tmp_path / "fast", dataset=real_dataset).metrics
    assert m["test_accuracy"] > 0.80 and m["tta"] == ["flip", "translate"]


def test_backbone_lr_scale_slows_everything_but_the_head():
    model = create_model("efficientnet_lite0_tl", input_size=32)
    groups = param_groups(model, lr=0.01, weight_decay=1e-4, backbone_lr_scale=0.1)
    head = {id(p) for p in model._fc.parameters()}
    for g in groups:
        in_head = {id(p) in head for p in g["params"]}
        assert len(in_head) == 1, "a group is all head or all backbone"
        assert g["lr"] == pytest.approx(0.01 if in_head == {True} else 0.001)
    assert sum(len(g["params"]) for g in groups) == len([p for p in model.parameters() if p.requires_grad])
    assert len(param_groups(model, 0.01, 1e-4)) == 1  # no scale: one group, the optimizer's own lr
