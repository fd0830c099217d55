"""Finding the item against its background: boolean masks on a small work copy of the photo.

"border" uses border colour statistics (flood fill on a plain background, else distance to the
border ring's colour clusters); "grabcut" OpenCV's GrabCut from a rectangle 4% inside the frame;
"auto" GrabCut, plus, on a plain studio background, the flood fill where GrabCut lost a light item
and the removal of a person's head and skin. Only GrabCut needs OpenCV; the rest is NumPy/SciPy
(SciPy comes with scikit-learn, a base dependency), so "border" works on a base install.
"""

from __future__ import annotations

import numpy as np

from ..errors import PhotoError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
TRIM_TOL = 0.05 * 255  # the paper's trim threshold: 5% of the largest RGB distance
_RING = 0.03  # border ring width, as a share of the short side: what "background" is sampled from


def gray(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ LUMA


def rgb_dist(rgb: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """RGB distance scaled to 0..255 (Euclidean / sqrt 3), as ImageMagick's -fuzz measures it."""
    return np.sqrt(((rgb.astype(np.float32) - ref) ** 2).sum(-1) / 3)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65): colour differences there follow what the eye sees, unlike RGB."""
    c = rgb.astype(np.float32) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]], np.float32)
    xyz /= np.array([0.9505, 1.0, 1.089], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _ring(h: int, w: int) -> np.ndarray:
    r = max(2, round(min(h, w) * _RING))
    m = np.zeros((h, w), bool)
    m[:r] = m[-r:] = True
    m[:, :r] = m[:, -r:] = True
    return m


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component with its holes filled: one item, no specks."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, np.ones((3, 3), bool))
    if n > 1:
        mask = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    return ndimage.binary_fill_holes(mask)


def _plain_background(rgb: np.ndarray) -> np.ndarray | None:
    """The background colour of a studio/catalogue shot: 80% of the border ring within the trim
    tolerance of its median (the rest may be the item touching the frame); None otherwise."""
    px = rgb[_ring(*rgb.shape[:2])].astype(np.float32)
    ref = np.median(px, 0)
    return ref if (rgb_dist(px, ref) <= TRIM_TOL).mean() >= 0.8 else None


def _flood(rgb: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Foreground = everything but the background-coloured regions that touch the frame (a bag's
    handle hole stays item, as Fashion-MNIST shows it; after negation it renders black anyway)."""
    from scipy import ndimage

    close = rgb_dist(ndimage.uniform_filter(rgb.astype(np.float32), (3, 3, 1)), ref) <= TRIM_TOL
    lab, _ = ndimage.label(close)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return ~np.isin(lab, edge[edge > 0])


def _kmeans(x: np.ndarray, k: int, iters: int = 8) -> np.ndarray:
    """Deterministic k-means (farthest-point start) on a few thousand colours."""
    centres = [x.mean(0)]
    for _ in range(k - 1):
        d = ((x[:, None] - np.array(centres)[None]) ** 2).sum(-1).min(1)
        centres.append(x[int(np.argmax(d))])
    c = np.array(centres)
    for _ in range(iters):
        near = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        c = np.array([x[near == j].mean(0) if (near == j).any() else c[j] for j in range(k)])
    return c


def border_mask(rgb: np.ndarray) -> np.ndarray:
    """Border colour statistics: flood fill on a plain background; otherwise pixels far (in Lab,
    after a blur that hides fabric and floor texture) from every colour cluster of the border ring."""
    from scipy import ndimage

    ref = _plain_background(rgb)
    if ref is not None:
        return _largest(_flood(rgb, ref))
    h, w = rgb.shape[:2]
    sigma = max(0.5, 0.01 * max(h, w))
    lab = _lab(ndimage.gaussian_filter(rgb.astype(np.float32), (sigma, sigma, 0)))
    ring = _ring(h, w)
    sample = lab[ring][:: max(1, int(ring.sum()) // 3000)]
    centres = _kmeans(sample, 4)
    dist = np.sqrt(((lab[..., None, :] - centres) ** 2).sum(-1)).min(-1)
    fg = dist > max(12.0, 1.5 * float(np.percentile(dist[ring], 95)))
    r = max(1, round(0.01 * max(h, w)))
    fg = ndimage.binary_closing(ndimage.binary_opening(fg, _disk(r)), _disk(2 * r))
    return _largest(fg)


def grabcut_mask(rgb: np.ndarray) -> np.ndarray:
    """GrabCut from a rectangle 4% inside the frame (3 iterations: 4+ bought nothing measurable),
    seeded so the same photo always gives the same mask."""
    cv2 = require_cv2("grabcut")
    h, w = rgb.shape[:2]
    dx, dy = max(1, round(0.04 * w)), max(1, round(0.04 * h))
    gm = np.zeros((h, w), np.uint8)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[:, :, ::-1]), gm, (dx, dy, w - 2 * dx, h - 2 * dy), *models, 3,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # e.g. a one-colour photo: no GMM can be fitted
        return np.zeros((h, w), bool)
    return _largest((gm == cv2.GC_FGD) | (gm == cv2.GC_PR_FGD))


def _skin(rgb: np.ndarray) -> np.ndarray:
    """Skin tones by the classic YCrCb box (Chai & Ngan 1999), not too dark."""
    c = rgb.astype(np.float32)
    y = c @ LUMA
    cr = (c[..., 0] - y) * 0.713 + 128
    cb = (c[..., 2] - y) * 0.564 + 128
    return (cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 130) & (y > 40)


def _without_person(mask: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """A garment worn by a person: cut the head at the neck, then drop skin (arms, hands).
    The head is a narrow top protrusion (median width under 45% of the body's) holding skin,
    followed by shoulders (over 60%); a laid-out garment, a shoe or a bag has none."""
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return mask
    y0, y1 = rows[0], rows[-1] + 1
    cols = np.flatnonzero(mask.any(0))
    if y1 - y0 < cols[-1] + 1 - cols[0]:
        return mask  # wider than tall: not a standing person
    first, last = mask.argmax(1), mask.shape[1] - 1 - mask[:, ::-1].argmax(1)
    width = np.where(mask.any(1), last - first + 1, 0)
    body = np.percentile(width[y0:y1], 90)
    t = y0 + int(np.argmax(width[y0:y1] > 0.6 * body))  # first shoulder row
    if not 0.06 * (y1 - y0) <= t - y0 <= 0.45 * (y1 - y0) or np.median(width[y0:t]) > 0.45 * body:
        return mask
    skin = _skin(rgb)
    if (skin[y0:t] & mask[y0:t]).sum() < 0.15 * mask[y0:t].sum():
        return mask  # a hanger hook or a collar, not a head
    mid = y0 + (t - y0) // 2
    neck = mid + int(np.argmin(width[mid:t]))
    cut = mask.copy()
    cut[: neck + 1] = False
    bare = _largest(cut & ~skin)
    return bare if bare.sum() > 0.3 * cut.sum() else _largest(cut)


def auto_mask(rgb: np.ndarray) -> np.ndarray:
    """GrabCut, whose rectangle start also drops what the frame cuts off (a model's legs under a
    shirt share the colours of the border ring). On a plain (studio) background: the flood fill
    where GrabCut lost a light item (a white shirt on white keeps only the head), and the person
    removed. Elsewhere skin tests are off: wooden floors and beige beds are skin-coloured."""
    mask = grabcut_mask(rgb)
    ref = _plain_background(rgb)
    if ref is None:
        return mask
    flood = _largest(_flood(rgb, ref))
    if mask.sum() < 0.5 * flood.sum():
        mask = flood
    return _without_person(mask, rgb) if mask.any() else mask


def require_cv2(method: str):
    try:
        import cv2
    except ImportError:
        raise PhotoError(f"the {method!r} photo method needs OpenCV: pip install 'fashionbench[photo]'") from None
    cv2.setNumThreads(1)
    return cv2


MASKS = {"border": border_mask, "grabcut": grabcut_mask, "auto": auto_mask}
