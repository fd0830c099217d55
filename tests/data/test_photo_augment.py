"""The photo-robustness augmentations (data/photo_augment.py) and the "photo" group in parse_augment."""

import pytest
import torch
import torch.nn.functional as F

from fashionbench.data import photo_augment as pa
from fashionbench.data.augment import _ORDER, AUGMENTS, EPOCH_AUGMENTS, GROUPS, build_augment, parse_augment
from fashionbench.errors import ConfigError

PHOTO = list(pa.PHOTO_AUGMENTS)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def items(n=64, seed=0, size=(8, 18)):
    """Fashion-MNIST-like: a bright textured rectangle of random size, roughly centred, on black."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    size = torch.randint(*size, (n, 2), generator=g)
    for i, (h, w) in enumerate(size.tolist()):  # test data only
        y0, x0 = (28 - h) // 2, (28 - w) // 2
        x[i, 0, y0:y0 + h, x0:x0 + w] = 0.5 + 0.5 * torch.rand(h, w, generator=g)
    return x


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def changed(x, y):
    return (x != y).flatten(1).any(1)


def bbox(img):
    """(height, width) of the pixels above 0.05 in each (1, H, W) image of a batch."""
    on = img[:, 0] > 0.05
    rows, cols = on.any(2), on.any(1)
    def extent(m):
        idx = torch.arange(m.shape[1]).expand_as(m)
        return torch.where(m, idx, -1).amax(1) - torch.where(m, idx, 99).amin(1) + 1
    return extent(rows), extent(cols)


def centre_of_mass(img):
    w = img[:, 0]
    r = torch.arange(28.0)
    m = w.sum((1, 2))
    return (w.sum(2) * r).sum(1) / m, (w.sum(1) * r).sum(1) / m


# ---- every photo augmentation ----------------------------------------------------------------------

def test_registered_with_canonical_order_and_group():
    assert set(AUGMENTS) | set(EPOCH_AUGMENTS) == set(_ORDER) and not set(AUGMENTS) & set(EPOCH_AUGMENTS)
    assert set(PHOTO) <= set(AUGMENTS)
    assert GROUPS["photo"] == tuple(PHOTO)
    assert [n for n in _ORDER if n in PHOTO] == PHOTO


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", PHOTO)
def test_shape_dtype_device_and_range(name, dtype):
    x = items(32).to(dtype)
    y = AUGMENTS[name](x, gen(1))
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert y.min() >= 0 and y.max() <= 1
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("name", PHOTO)
def test_seeded_determinism(name):
    x = items(32)
    a = AUGMENTS[name](x, gen(5))
    b = AUGMENTS[name](x, gen(5))
    c = AUGMENTS[name](x, gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", PHOTO)
def test_default_p_changes_some_images_and_leaves_the_rest_exact(name):
    x = items(64)
    x_before = x.clone()
    y = AUGMENTS[name](x, gen(2))
    n = int(changed(x, y).sum())
    assert 5 < n < 60, n  # some augmented, some clean
    assert torch.equal(x, x_before), "the input must not be modified"


@pytest.mark.parametrize("name", PHOTO)
def test_p_zero_is_the_exact_input_and_p_one_changes_almost_all(name):
    x = items(32)
    assert torch.equal(AUGMENTS[name](x, gen(3), p=0.0), x)
    assert changed(x, AUGMENTS[name](x, gen(3), p=1.0)).sum() >= 28


@pytest.mark.parametrize("name", PHOTO)
@pytest.mark.parametrize("p", [0.5, 1.0])
def test_inplace_gives_the_same_result(name, p):
    x = items(32)
    expected = AUGMENTS[name](x, gen(7), p=p)
    work = x.clone()
    got = AUGMENTS[name](work, gen(7), p=p, inplace=True)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", PHOTO)
@pytest.mark.parametrize("shape", [(0, 1, 28, 28), (1, 1, 28, 28), (4, 3, 28, 28), (3, 1, 20, 32)])
def test_empty_single_colour_and_non_square_batches(name, shape):
    x = torch.rand(shape, generator=gen(0))
    for p in (0.5, 1.0):
        y = AUGMENTS[name](x, gen(4), p=p)
        assert y.shape == x.shape and (y.numel() == 0 or (y.min() >= 0 and y.max() <= 1))


@pytest.mark.parametrize("name", PHOTO)
def test_black_batch(name):
    x = torch.zeros(16, 1, 28, 28)
    y = AUGMENTS[name](x, gen(0), p=1.0)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    if name in ("scale-aspect", "shift-crop", "blur-sharpen"):
        assert torch.equal(y, x)  # nothing to move or blur
    if name == "photometric":
        assert y.max() <= 0.05 + 1e-6  # black stays black-ish


# ---- what each one does ----------------------------------------------------------------------------

def test_warp_matches_grid_sample():
    x = torch.rand(64, 2, 28, 28, generator=gen(0))
    u = torch.rand(4, 64, generator=gen(1))
    sx, sy, tx, ty = 0.3 + 2 * u[0], 0.3 + 2 * u[1], 4 * u[2] - 2, 4 * u[3] - 2
    zero = torch.zeros(64)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    ref = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    assert torch.allclose(pa._warp(x, sx, sy, tx, ty), ref, atol=1e-5)
    shift = pa._separable(x, pa._shift_matrix(ty * 14, 28), pa._shift_matrix(tx * 14, 28))
    assert torch.allclose(shift, pa._warp(x, torch.ones(64), torch.ones(64), tx, ty), atol=1e-5)


def test_blur_matrix_is_a_gaussian_blur_with_black_padding():
    x = torch.rand(2, 1, 28, 28, generator=gen(0))
    m = pa._blur_matrix(torch.tensor([0.7, 1.2]), torch.zeros(2), 28)
    for i, sigma in enumerate((0.7, 1.2)):
        k = torch.exp(-torch.arange(-6, 7.0) ** 2 / (2 * sigma**2))
        k = k / k.sum()
        ref = F.conv2d(x[i:i + 1], (k[:, None] * k[None])[None, None], padding=6)
        assert torch.allclose(pa._separable(x[i:i + 1], m[i:i + 1], m[i:i + 1]), ref, atol=1e-5)


def test_scale_aspect_changes_the_bounding_box_and_keeps_the_item_inside():
    x = items(64)
    y = AUGMENTS["scale-aspect"](x, gen(0), p=1.0)
    (h0, w0), (h1, w1) = bbox(x), bbox(y)
    assert ((h1 != h0) | (w1 != w0)).float().mean() > 0.8
    assert (h1 < h0).any() and (h1 > h0).any() and (w1 < w0).any() and (w1 > w0).any()
    ratio = (h1 / h0) / (w1 / w0)  # aspect changed, not just size
    assert ratio.min() < 0.9 and ratio.max() > 1.1
    assert (y[:, :, [0, -1]] < 0.05).all() and (y[..., [0, -1]] < 0.05).all()  # items <= 18 px never reach the edge


def test_shift_crop_moves_the_centre_of_mass_and_cuts_items_off():
    x = items(64, size=(18, 27))  # real items fill the frame: their longest side is fitted to 28
    y = AUGMENTS["shift-crop"](x, gen(0), p=1.0)
    (r0, c0), (r1, c1) = centre_of_mass(x), centre_of_mass(y)
    moved = torch.maximum((r1 - r0).abs(), (c1 - c0).abs())
    assert (moved > 0.5).float().mean() > 0.7
    assert moved.max() <= 0.2 * 28 + 0.5
    lost = y.sum((1, 2, 3)) < x.sum((1, 2, 3)) - 1
    assert lost.sum() > 5  # some items partly leave the frame


def test_photometric_keeps_black_black_ish_and_changes_the_item():
    x = items(64)
    y = AUGMENTS["photometric"](x, gen(0), p=1.0)
    background = x == 0
    assert y[background].max() <= 0.05 + 1e-6
    item = ~background
    assert (y[item] - x[item]).abs().mean() > 0.02
    brightness = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert brightness.min() < 0.9 and brightness.max() > 1.1  # darker and brighter items


def test_blur_sharpen_blurs_some_and_sharpens_others():
    x = items(64)
    y = AUGMENTS["blur-sharpen"](x, gen(0), p=1.0)
    def roughness(img):  # mean absolute neighbour difference
        return (img[..., 1:] - img[..., :-1]).abs().mean((1, 2, 3))
    r0, r1 = roughness(x), roughness(y)
    assert (r1 < r0).sum() > 20 and (r1 > r0).sum() > 5
    point = torch.zeros(8, 1, 28, 28)
    point[:, :, 14, 14] = 0.5
    z = AUGMENTS["blur-sharpen"](point, gen(1), p=1.0, sharpen_share=0.0)
    assert torch.allclose(z.sum((1, 2, 3)), torch.full((8,), 0.5), atol=1e-4)  # blur keeps the mass
    assert (z.amax((1, 2, 3)) < 0.5).all()


def test_noise_is_zero_mean_with_the_drawn_spread():
    x = torch.full((32, 1, 28, 28), 0.5)
    y = AUGMENTS["noise"](x, gen(0), p=1.0)
    d = (y - x).flatten(1)
    assert d.mean().abs() < 0.005
    std = d.std(1)
    assert std.min() > 0.007 and std.max() < 0.09 and std.max() > 0.05


def test_clutter_adds_light_only_in_the_background_and_near_the_border():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 0.8
    y = AUGMENTS["clutter"](x, gen(0), p=1.0)
    assert (y >= x).all()  # clutter never darkens
    assert torch.equal(y[:, :, 12:16, 12:16], x[:, :, 12:16, 12:16])  # the item is untouched
    added = y - x
    assert added[:, :, 10:18, 10:18].max() <= 0.12 + 1e-6  # deep inside only the faint texture
    r = torch.arange(28)
    depth = torch.minimum(torch.minimum(r, 27 - r)[:, None], torch.minimum(r, 27 - r)[None])  # px to the edge
    bright = added[:, 0] > 0.13  # shapes, not texture
    assert bright.any(0).sum() > 20 and depth[bright.any(0)].max() < 10
    assert (added.flatten(1).amax(1) > 0.3).sum() > 20  # most images got a shape
    assert ((added > 0) & (added <= 0.12)).flatten(1).any(1).sum() > 40  # and texture


def test_occlusion_fills_one_rectangle_with_gray_or_background():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 1:-1, 1:-1] = 1.0  # black ring: the background level is 0
    y = AUGMENTS["occlusion"](x, gen(0), p=1.0)
    grays = 0
    for img in y[:, 0]:  # test checks only
        diff = img != 1.0
        diff[[0, -1]] = False
        diff[:, [0, -1]] = False
        vals = img[diff].unique()
        assert len(vals) == 1  # one fill per image
        v = float(vals[0])
        assert v == 0.0 or 0.25 <= v <= 0.75
        grays += v > 0
        rows, cols = diff.any(1).nonzero(), diff.any(0).nonzero()
        assert diff.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
    assert 15 < grays < 50


# ---- parsing and composition -----------------------------------------------------------------------

def test_parse_expands_the_photo_group_in_canonical_order():
    assert parse_augment("photo") == PHOTO
    assert parse_augment("flip+photo") == ["scale-aspect", "shift-crop", "flip", "photometric", "blur-sharpen",
                                           "clutter", "noise", "occlusion"]
    assert parse_augment(["noise", "photo", "random-erasing", "rotation"]) == (
        ["scale-aspect", "rotation", "shift-crop", "photometric", "blur-sharpen", "clutter", "noise", "occlusion",
         "random-erasing"])
    assert parse_augment("occlusion+translate+clutter") == ["translate", "clutter", "occlusion"]


def test_unknown_names_still_raise_config_error():
    with pytest.raises(ConfigError, match="unknown augmentation photos; choose from none, .*photo"):
        parse_augment("flip+photos")
    with pytest.raises(ConfigError, match="unknown augmentation blur"):
        parse_augment("photo+blur")


@pytest.mark.parametrize("spec", ["photo", "flip+photo", "noise+occlusion", "random-resized-crop+photo+random-erasing"])
def test_build_equals_the_plain_composition_and_never_writes_the_callers_batch(spec):
    x = items(64)
    before = x.clone()
    y = build_augment(parse_augment(spec))(x, gen(9))
    assert torch.equal(x, before)
    g, z = gen(9), x
    for name in parse_augment(spec):
        z = AUGMENTS[name](z, g)
    assert torch.equal(y, z)


def test_build_flip_plus_photo_end_to_end():
    aug = build_augment(["flip", "photo"])
    x = items(128)
    y = aug(x, gen(0))
    assert y.shape == x.shape and y.dtype == x.dtype and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, aug(x, gen(0)))
    assert 100 < changed(x, y).sum() < 128  # ~1/2^8 of images are left alone by all eight
