import pytest
import torch

from fashionbench.data.augment import AUGMENTS, alternating_flip, build_augment, flip, parse_augment, random_erasing, translate
from fashionbench.errors import ConfigError


def batch(n=16):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_shape_range_and_seed_determinism(name):
    x = batch()
    a = AUGMENTS[name](x, torch.Generator().manual_seed(5))
    b = AUGMENTS[name](x, torch.Generator().manual_seed(5))
    c = AUGMENTS[name](x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1 + 1e-6
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flip_mirrors_exactly_some_images():
    x = batch(64)
    y = flip(x, torch.Generator().manual_seed(0))
    flipped = (y == x.flip(3)).flatten(1).all(1)
    same = (y == x).flatten(1).all(1)
    assert (flipped | same).all() and 10 < flipped.sum() < 54


def test_translate_moves_content_without_losing_it():
    x = torch.zeros(32, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0  # centred square: any shift up to 2 px keeps it inside
    y = translate(x, torch.Generator().manual_seed(0), pad=2)
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)))
    moved = ~(y == x).flatten(1).all(1)
    assert moved.sum() > 16


def test_random_erasing_only_blacks_out():
    x = torch.ones(32, 1, 28, 28)
    y = random_erasing(x, torch.Generator().manual_seed(0), p=1.0)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert (y.flatten(1).sum(1) < 784).all()


def test_compose_and_parse():
    assert parse_augment("translate+flip") == ["flip", "translate"]
    assert parse_augment("none") == []
    assert build_augment([]) is None
    aug = build_augment(["flip", "translate", "random-erasing"])
    assert aug(batch(), torch.Generator().manual_seed(0)).shape == (16, 1, 28, 28)
    with pytest.raises(ConfigError, match="unknown augmentation blur"):
        parse_augment("flip+blur")
    assert parse_augment("translate+alternating-flip") == ["alternating-flip", "translate"]
    assert build_augment(["alternating-flip"]) is None  # the training loop applies it, per epoch
    with pytest.raises(ConfigError, match="both flip and alternating-flip.*keep one"):
        parse_augment("flip+alternating-flip")


def test_alternating_flip_mirrors_each_image_in_one_of_two_epochs():
    x = (torch.rand(400, 28, 28, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    before = x.clone()
    seen = [alternating_flip(x, seed=3, epoch=e) for e in range(4)]
    mirrored = [(v == x.flip(-1)).flatten(1).all(1) for v in seen]
    assert all(((v == x).flatten(1).all(1) | m).all() for v, m in zip(seen, mirrored))  # each image whole, one way
    assert torch.equal(mirrored[0], ~mirrored[1]) and torch.equal(mirrored[0], mirrored[2])
    assert 150 < int(mirrored[0].sum()) < 250
    assert torch.equal(alternating_flip(x, 3, 0), seen[0]) and not torch.equal(alternating_flip(x, 4, 0), seen[0])
    assert torch.equal(x, before)


def test_batch_is_vectorized_not_per_image():
    # 4096 images through every augmentation in one call: fast because it is batched.
    x = torch.rand(4096, 1, 28, 28)
    y = build_augment(list(AUGMENTS))(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
