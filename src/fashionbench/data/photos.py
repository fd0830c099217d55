"""Real photo -> Fashion-MNIST-like 28x28 uint8 image (light item on black).

Fashion-MNIST was made from catalogue photos on a light background by a fixed pipeline (Xiao et
al. 2017, arXiv 1708.07747, section 2): trim the edges close to the corner colour, resize the
longest edge to 28, sharpen, extend the short edge to 28 and centre, negate, 8-bit gray. The
"fmnist" method reproduces it; the other methods first find the item against a real background
(bed, rug, floor, door, shadows, hangers, hands, people) and then render it the same way.

Methods (METHODS): "naive" gray-invert-squash (the tutorial baseline); "fmnist" the paper's
pipeline (right for catalogue shots on white, wrong on any other background); "border" border
colour statistics (flood fill on a plain background, else distance to the border ring's colour
clusters; NumPy/SciPy only); "grabcut" OpenCV GrabCut from a rectangle 4% inside the frame;
"auto" GrabCut, plus, on a plain studio background, the flood fill where GrabCut lost a light
item and the removal of a person's head and skin (the masks: foreground.py). Without OpenCV "auto"
uses "border".

Rendering follows the training data, not the development photos: negated gray (jeans come out
bright, as Fashion-MNIST's trousers do; the other polarity lost 10-12 points everywhere), area
filter, a mild unsharp mask that gives Fashion-MNIST's edge contrast (mean |Laplacian| on the
item ~90 vs 86 in the dataset), longest side 28 px with the bounding box centred, brightest item
pixels stretched to 255. benchmarks/photo_preprocessing.py measures every method.

Finding and loading the files (EXIF, 16-bit, alpha, the pixel limit) is image_files.py; its
`load_image`, `find_images`, `IMAGE_EXTENSIONS` and `MAX_PIXELS` are part of this module's API too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, PhotoError
from .foreground import LUMA, MASKS, TRIM_TOL, gray, require_cv2, rgb_dist
from .image_files import IMAGE_EXTENSIONS, MAX_PIXELS, find_images, load_image, load_scaled, photo_error, source_name

log = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "METHODS", "Converted", "convert_many", "find_images",
           "is_fmnist_like", "load_image", "to_fmnist"]

METHODS = ("auto", "naive", "fmnist", "border", "grabcut")
_OPENCV_METHODS = ("grabcut",)
SIZE = 28
WORK_SIDE = 160  # long side of the copy the item is searched in: GrabCut takes ~40 ms there
RENDER_SIDE = 320  # long side of the copy the 28x28 image is drawn from: finer detail than the search needs


def is_fmnist_like(image) -> bool:
    """True for a 28x28 grayscale image that already looks like Fashion-MNIST (light item on a dark
    border); such an image goes through unchanged. In Fashion-MNIST at least 58% of the border ring
    is below 32 in 99.9% of the images, and the middle is brighter than the border."""
    if isinstance(image, Image.Image):
        if image.size != (SIZE, SIZE) or image.mode not in ("L", "RGB", "1"):
            return False
        a = np.asarray(image.convert("L") if image.mode == "1" else image)
    else:
        a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 3 and (a == a[:, :, :1]).all():
        a = a[:, :, 0]  # gray stored as RGB
    if a.shape != (SIZE, SIZE) or a.dtype != np.uint8:
        return False
    ring = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]]).astype(np.float64)
    return bool((ring < 32).mean() >= 0.5 and a[7:21, 7:21].mean() > ring.mean())


# ---------------------------------------------------------------------------------- rendering

_SHARPEN = 0.4  # unsharp-mask amount (sigma 1 px at 28 px): gives the edge contrast of Fashion-MNIST items
_MIN_ITEM = 0.005  # an item smaller than 0.5% of the photo is a failed search: use the whole frame


def _fit(canvas: np.ndarray) -> np.ndarray:
    """Longest side to 28 (area filter), sharpen, centre on black: steps 3-5 of the paper."""
    from scipy import ndimage

    h, w = canvas.shape
    nh, nw = (SIZE, max(1, round(w * SIZE / h))) if h >= w else (max(1, round(h * SIZE / w)), SIZE)
    small = np.asarray(Image.fromarray(canvas.astype(np.float32), "F").resize((nw, nh), Image.BOX))
    out = np.zeros((SIZE, SIZE), np.float32)
    oy, ox = (SIZE - nh) // 2, (SIZE - nw) // 2
    out[oy:oy + nh, ox:ox + nw] = small
    out += _SHARPEN * (out - ndimage.gaussian_filter(out, 1.0, mode="constant"))
    return np.clip(out, 0, None)


def _stretch(out: np.ndarray) -> np.ndarray:
    """Brightest item pixels to 255, as in every Fashion-MNIST image (its max is 255 in 99%), by the
    99.5th percentile so one glint does not darken the item."""
    item = out[out > 0]
    hi = float(np.percentile(item, 99.5)) if item.size else 0.0
    return np.clip(out * (255 / hi) + 0.5 if hi > 1 else out, 0, 255).astype(np.uint8)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _render(rgb: np.ndarray, mask: np.ndarray, steps: list | None) -> np.ndarray:
    """Item pixels negated (light on black), background 0, the darkest 1% of the item to 0."""
    x0, y0, x1, y1 = _box(mask)
    neg = 255 - gray(rgb[y0:y1, x0:x1])
    m = mask[y0:y1, x0:x1]
    crop = np.clip(neg - np.percentile(neg[m], 1), 0, None) * m
    if steps is not None:
        steps.append(("crop", np.clip(crop, 0, 255).astype(np.uint8)))
    return _stretch(_fit(crop))


def _render_fmnist(rgb: np.ndarray, steps: list | None) -> tuple[np.ndarray, np.ndarray]:
    """The paper's pipeline: trim to the pixels off the corner colour, fit, sharpen, centre, negate;
    intensities relative to the background so it maps to 0, and stretched like the dataset's."""
    a = rgb.astype(np.float32)
    corner = np.median(np.stack([a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]]), 0)
    keep = rgb_dist(rgb, corner) > TRIM_TOL
    if keep.sum() < _MIN_ITEM * keep.size:
        keep = np.ones_like(keep)
    x0, y0, x1, y1 = _box(keep)
    crop = np.clip(gray(rgb[y0:y1, x0:x1]) * -1 + float(corner @ LUMA), 0, None)
    if steps is not None:
        steps.append(("crop", np.clip(crop, 0, 255).astype(np.uint8)))
    box_mask = np.zeros_like(keep)
    box_mask[y0:y1, x0:x1] = True
    return _stretch(_fit(crop)), box_mask


def _render_naive(rgb: np.ndarray) -> np.ndarray:
    """The common tutorial baseline: gray, invert, squash the whole frame to 28x28."""
    img = Image.fromarray(255 - gray(rgb).astype(np.uint8)).resize((SIZE, SIZE), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


# ------------------------------------------------------------------------------------- conversion

@dataclass
class Converted:
    image: np.ndarray  # (28, 28) uint8, what the model sees
    method: str  # the method actually used ("passthrough" when is_fmnist_like)
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)  # named intermediate images (keep_steps)
    box: tuple[int, int, int, int] | None = None  # item bounding box (x0, y0, x1, y1) in the loaded photo


def check_method(method: str) -> str:
    """`method` if it is one of METHODS; else a ConfigError that lists them."""
    if method not in METHODS:
        raise ConfigError(f"unknown photo method {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def _has_cv2() -> bool:
    try:
        require_cv2("auto")
    except PhotoError:
        return False
    return True


def _shrunk(img: Image.Image, side: int) -> Image.Image:
    """The long side at most `side` (area filter: no aliasing)."""
    w, h = img.size
    s = side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BOX) if s < 1 else img


def _upsized(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if mask.shape == shape[:2]:
        return mask
    return np.asarray(Image.fromarray(mask).resize((shape[1], shape[0]), Image.NEAREST))


def to_fmnist(source, method: str = "auto", *, keep_steps: bool = False) -> Converted:
    """One photo as Fashion-MNIST would show it: (28, 28) uint8, light item on black, longest
    side 28 px, centred. Methods: "auto" (GrabCut, flood fill on plain backgrounds, person
    removed; "border" when OpenCV is missing), "naive", "fmnist", "border", "grabcut"."""
    check_method(method)
    if method == "auto" and not _has_cv2():
        method = "border"  # the best method a base install has; Converted.method says so
    elif method in _OPENCV_METHODS:
        require_cv2(method)  # fail before decoding
    img, scale = load_scaled(source, draft=2 * RENDER_SIDE)
    if is_fmnist_like(img):
        a = np.array(img.convert("L"))
        return Converted(a, "passthrough", [("28x28", a)] if keep_steps else [], (0, 0, SIZE, SIZE))
    big = _shrunk(img.convert("RGB"), RENDER_SIDE)
    rgb = np.asarray(big)
    steps: list | None = [("photo", rgb)] if keep_steps else None
    if method == "naive":
        out, mask = _render_naive(rgb), np.ones(rgb.shape[:2], bool)
    elif method == "fmnist":
        out, mask = _render_fmnist(rgb, steps)
    else:
        mask = _upsized(MASKS[method](np.asarray(_shrunk(big, WORK_SIDE))), rgb.shape)
        if mask.sum() < _MIN_ITEM * mask.size:
            mask = np.ones_like(mask)
        if steps is not None:
            steps.append(("foreground", np.where(mask[..., None], rgb, 0).astype(np.uint8)))
        out = _render(rgb, mask, steps)
    if not out.any():  # a one-colour (or fully transparent) photo: there is no item to classify
        raise photo_error(source_name(source), "no item found: the image is a single colour",
                          "pass a photo of the item")
    if steps is not None:
        steps.append(("28x28", out))
    f = img.size[0] / rgb.shape[1] * scale  # work copy -> full-size photo
    x0, y0, x1, y1 = _box(mask)
    full = (round(img.size[0] * scale), round(img.size[1] * scale))
    box = (max(0, int(x0 * f)), max(0, int(y0 * f)), min(full[0], round(x1 * f)), min(full[1], round(y1 * f)))
    return Converted(out, method, steps or [], box)


def _source_name(source, i: int) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"#{i} ({type(source).__name__})"


def convert_many(sources: Iterable, method: str = "auto", *, keep_steps: bool = False, progress: bool = False
                 ) -> tuple[np.ndarray, list[Converted | None], list[tuple[str, str]]]:
    """Convert every source; a bad one becomes a (name, message) problem and None, the rest go on
    (an unknown method still raises ConfigError at once).
    Returns the (N_ok, 28, 28) uint8 stack, one Converted or None per source, and the problems."""
    check_method(method)
    from tqdm.auto import tqdm

    sources = list(sources)
    results: list[Converted | None] = []
    problems: list[tuple[str, str]] = []
    for i, src in enumerate(tqdm(sources, desc="photos", unit="photo", disable=not progress)):
        try:
            results.append(to_fmnist(src, method, keep_steps=keep_steps))
        except PhotoError as e:
            msg = str(e)
            prefix = f"{source_name(src)}: "  # the name is the problem's first element; don't say it twice
            results.append(None)
            problems.append((_source_name(src, i), msg[len(prefix):] if msg.startswith(prefix) else msg))
        except Exception as e:  # one odd photo must not stop a batch of thousands
            log.debug("converting %s failed", _source_name(src, i), exc_info=True)
            results.append(None)
            problems.append((_source_name(src, i), f"cannot convert: {type(e).__name__}: {e}"))
    images = [r.image for r in results if r is not None]
    stack = np.stack(images) if images else np.zeros((0, SIZE, SIZE), np.uint8)
    return stack, results, problems
