"""Augmentations that imitate what converting a real photo to a 28x28 Fashion-MNIST-style image gets wrong.

The photo conversion finds the item against its background, crops to its bounding box, fits the
longest side to 28, centres it, negates to light-on-black and contrast-stretches. Each step can
miss, and each miss has an augmentation here, so a model trained with them is robust to it:

- ``scale-aspect``: the box was too loose or too tight, or the item squashed/stretched;
- ``shift-crop``: the item is off-centre and partly cut off by the frame;
- ``photometric``: gamma, gain (the stretched range differs), an illumination ramp across the
  item, a small brightness offset;
- ``blur-sharpen``: soft (downscaled) photos, or sharpening halos;
- ``clutter``: leftover background texture (smooth noise or stripes, low amplitude) in the black
  region and a few bright blobs/lines entering from the border (hangers, hands, other objects);
- ``noise``: additive Gaussian noise;
- ``occlusion``: a rectangle of mid-gray or of the image's own background level.

Same contract as augment.py: (B, C, H, W) floats in [0, 1], any float dtype, randomness from an
explicit torch.Generator, the whole batch at once. Each function takes `p`, the probability that
an image is augmented; the others come back exactly as they were. The input is left alone unless
`inplace=True` (build_augment passes that for the batch copies it owns). Only the drawn images are
computed, gathered into one smaller batch (occlusion, a cheap mask, works on the whole batch).
Resampling and blurring are separable, so they are batched matmuls with per-image matrices.

augment.py registers PHOTO_AUGMENTS in AUGMENTS and as the group "photo". This module imports only
torch, so augment.py can import it without an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def _rand(shape: int | tuple[int, ...], g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=g.device).to(device)


def _uniforms(b: int, g: torch.Generator, device: torch.device, *ranges: tuple) -> list[torch.Tensor]:
    """One (b,) tensor per (lo, hi) range, uniform in it, from a single draw; (lo, hi, "log") is log-uniform."""
    u = _rand((len(ranges), b), g, device)
    lo = u.new_tensor([math.log(r[0]) if len(r) > 2 else r[0] for r in ranges])[:, None]
    hi = u.new_tensor([math.log(r[1]) if len(r) > 2 else r[1] for r in ranges])[:, None]
    u = u.mul_(hi - lo).add_(lo)
    return [row.exp() if len(r) > 2 else row for row, r in zip(u, ranges)]


def _on_some(x: torch.Tensor, g: torch.Generator, p: float, fn: Callable[[torch.Tensor], torch.Tensor],
             inplace: bool = False) -> torch.Tensor:
    """fn applied to the images drawn with probability p, clamped to [0, 1]; the others exactly as they were.

    fn gets a batch of its own (float32 for half types), so it may work in place on it. With
    inplace, x itself is updated (and may be returned): build_augment does that on its own copy,
    which saves a copy of the batch per augmentation.
    """
    chosen = _rand(len(x), g, x.device) < p
    n = int(chosen.sum())
    if n == 0:
        return x
    low = x.dtype in (torch.float16, torch.bfloat16)
    if n == len(x):
        return fn(x.float() if low else x if inplace else x.clone()).clamp_(0, 1).to(x.dtype)
    idx = chosen.nonzero().squeeze(1)
    sub = x.index_select(0, idx)
    y = fn(sub.float() if low else sub).clamp_(0, 1).to(x.dtype)
    return x.index_copy_(0, idx, y) if inplace else x.index_copy(0, idx, y)


def _resample_matrix(scale: torch.Tensor, shift: torch.Tensor, n: int) -> torch.Tensor:
    """(b, n_in, n_out) bilinear weights: output pixel o reads the input at scale * u(o) + shift (normalized),
    0 outside: F.affine_grid + F.grid_sample (align_corners=False, zero padding) along one axis, transposed."""
    dev = scale.device
    u = (torch.arange(n, device=dev) * 2 + 1) / n - 1
    src = (scale[:, None] * u + shift[:, None] + 1).mul_(n / 2).sub_(0.5)  # (b, n_out): input pixel positions
    return (src[:, None, :] - torch.arange(n, device=dev)[:, None]).abs_().neg_().add_(1).clamp_(min=0)


def _toeplitz(k: torch.Tensor, n: int) -> torch.Tensor:
    """(b, 2n - 1) kernels over offsets -(n - 1)..(n - 1) -> (b, n, n) matrices m[i, j] = k[n - 1 + j - i]."""
    return k.unfold(1, n, 1).flip(1)


def _shift_matrix(shift: torch.Tensor, n: int) -> torch.Tensor:
    """(b, n_in, n_out) bilinear weights: output pixel o reads the input at o + shift (pixels), 0 outside."""
    d = torch.arange(-(n - 1), n, device=shift.device)
    return _toeplitz((d + shift[:, None]).abs_().neg_().add_(1).clamp_(min=0), n)


def _separable(x: torch.Tensor, rows_t: torch.Tensor, cols_t: torch.Tensor) -> torch.Tensor:
    """out[i] = rows[i] @ x[i] @ cols[i].T per image (every channel alike), given rows_t, cols_t (b, n_in, n_out)."""
    b, c, h, w = x.shape
    if c > 1:
        rows_t, cols_t = rows_t.repeat_interleave(c, 0), cols_t.repeat_interleave(c, 0)
    y = torch.bmm(rows_t.to(x.dtype).transpose(1, 2), x.reshape(b * c, h, w))
    return torch.bmm(y, cols_t.to(x.dtype)).view(b, c, h, w)


def _warp(x: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Sample x at (sx * u + tx, sy * v + ty) in normalized coordinates, black outside.

    A scale-and-shift affine map is separable, so it is two small batched matmuls (rows, then
    columns): the result equals F.grid_sample's to float rounding, about 3x faster on a CPU.
    """
    b, _, h, w = x.shape
    if h == w:
        m = _resample_matrix(torch.cat([sy, sx]), torch.cat([ty, tx]), h)
        return _separable(x, m[:b], m[b:])
    return _separable(x, _resample_matrix(sy, ty, h), _resample_matrix(sx, tx, w))


def scale_aspect(x: torch.Tensor, g: torch.Generator, p: float = 0.5, scale=(0.7, 1.1),
                 ratio=(0.75, 4 / 3), inplace: bool = False) -> torch.Tensor:
    """Resize the item about the centre by a log-uniform `scale`, stretched to width/height `ratio`.

    Neither side grows past scale[1], so the item stays mostly inside the frame.
    """
    def fn(s: torch.Tensor) -> torch.Tensor:
        z, r = _uniforms(len(s), g, s.device, (*scale, "log"), (*ratio, "log"))
        r = r.sqrt_()
        zx, zy = (z * r).clamp_(max=scale[1]), (z / r).clamp_(max=scale[1])
        return _warp(s, zx.reciprocal_(), zy.reciprocal_(), torch.zeros_like(z), torch.zeros_like(z))
    return _on_some(x, g, p, fn, inplace)


def shift_crop(x: torch.Tensor, g: torch.Generator, p: float = 0.5, max_shift: float = 0.2,
               inplace: bool = False) -> torch.Tensor:
    """Move the item by up to `max_shift` of the frame in x and y (sub-pixel); what leaves the frame is lost."""
    def fn(s: torch.Tensor) -> torch.Tensor:
        _, _, h, w = s.shape
        dx, dy = _uniforms(len(s), g, s.device, (-max_shift, max_shift), (-max_shift, max_shift))
        return _separable(s, _shift_matrix(dy * h, h), _shift_matrix(dx * w, w))
    return _on_some(x, g, p, fn, inplace)


def photometric(x: torch.Tensor, g: torch.Generator, p: float = 0.5, gamma=(0.6, 1.6), gain=(0.7, 1.2),
                ramp=(0.0, 0.35), brightness=(-0.05, 0.05), inplace: bool = False) -> torch.Tensor:
    """A gamma-like curve, a gain, an illumination ramp and a brightness offset, all per image.

    The curve is Schlick's bias x / (x (1 - k) + k), which equals x ** gamma at 0, 1/2 and 1 for
    k = 2 ** gamma - 1 (4x cheaper than pow). Gain (the stretched range differs; > 1 saturates) and
    the linear ramp 1 + a (cos t X + sin t Y), X, Y in [-1, 1] (an unevenly lit item) multiply.
    Curve, gain and ramp keep black at 0; the offset lifts the background to at most brightness[1]
    (0.05), or, negative, crushes the faintest parts of the item to black.
    """
    def fn(s: torch.Tensor) -> torch.Tensor:
        b, _, h, w = s.shape
        dev = s.device
        gam, k, a, angle, off = _uniforms(b, g, dev, (*gamma, "log"), gain, ramp, (0, 2 * math.pi), brightness)
        view = (-1, 1, 1, 1)
        bias = (2**gam - 1).view(view)
        a = a * k
        light = ((a * angle.cos()).view(view) * torch.linspace(-1, 1, w, device=dev)
                 + (a * angle.sin()).view(view) * torch.linspace(-1, 1, h, device=dev)[:, None]).add_(k.view(view))
        return s.mul_(torch.addcmul(bias, s, 1 - bias).reciprocal_().mul_(light)).add_(off.view(view))
    return _on_some(x, g, p, fn, inplace)


def _blur_matrix(sigma: torch.Tensor, sharpen: torch.Tensor, n: int) -> torch.Tensor:
    """(b, n, n), symmetric: Gaussian blur of per-image `sigma` along one axis (zero padding), or where
    sharpen > 0 the unsharp mask (1 + sharpen) I - sharpen * blur."""
    arg = torch.arange(-(n - 1), n, device=sigma.device) ** 2 * (-0.5 / sigma**2)[:, None]
    k = arg.clamp(min=-25).exp_().mul_(arg > -25)  # no tiny weights: denormals make exp and matmuls slow
    sharp = sharpen > 0
    k = k * (torch.where(sharp, -sharpen, 1.0) / k.sum(1))[:, None]
    m = _toeplitz(k, n)
    m.diagonal(dim1=1, dim2=2).add_(torch.where(sharp, 1 + sharpen, 0.0)[:, None])
    return m


def blur_sharpen(x: torch.Tensor, g: torch.Generator, p: float = 0.5, sigma=(0.4, 1.2), sharpen=(0.3, 1.0),
                 sharpen_share: float = 1 / 3, inplace: bool = False) -> torch.Tensor:
    """Gaussian blur with a per-image sigma in `sigma` (soft, downscaled photos), or for a `sharpen_share`
    of the images a separable unsharp mask of strength `sharpen` (bright rims, clipped haloes).

    Both are separable: per-image kernel matrices, two batched matmuls.
    """
    def fn(s: torch.Tensor) -> torch.Tensor:
        b, _, h, w = s.shape
        sig, amount, u = _uniforms(b, g, s.device, sigma, sharpen, (0, 1))
        amount = amount.mul_(u < sharpen_share)
        rows = _blur_matrix(sig, amount, h)  # symmetric: its own transpose
        return _separable(s, rows, rows if h == w else _blur_matrix(sig, amount, w))
    return _on_some(x, g, p, fn, inplace)


def noise(x: torch.Tensor, g: torch.Generator, p: float = 0.3, sigma=(0.01, 0.08),
          inplace: bool = False) -> torch.Tensor:
    """Add Gaussian noise with a per-image standard deviation in `sigma` (clipped to [0, 1]).

    p is lower than the others': fitting a photo to 28 px averages most sensor noise away.
    """
    def fn(s: torch.Tensor) -> torch.Tensor:
        (std,) = _uniforms(len(s), g, s.device, sigma)
        z = torch.randn(s.shape, generator=g, device=g.device).to(s.device)
        return s.add_(z.mul_(std.view(-1, 1, 1, 1)))
    return _on_some(x, g, p, fn, inplace)


def _upsample_matrix(n_out: int, n_in: int, dev: torch.device) -> torch.Tensor:
    """(n_out, n_in) bilinear upsampling weights, edges clamped (F.interpolate, align_corners=False)."""
    src = ((torch.arange(n_out, device=dev) + 0.5) * (n_in / n_out) - 0.5).clamp(0, n_in - 1)
    return (1 - (src[:, None] - torch.arange(n_in, device=dev)).abs()).clamp(min=0)


def _soft_interval(t: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """1 inside [lo, hi], 0 outside, an anti-aliased edge `soft` px wide; t (n,) pixel centres, the rest (b, k) -> (b, k, n)."""
    inside = torch.minimum(t - lo[..., None], hi[..., None] - t)
    return inside.div_(soft[..., None]).add_(0.5).clamp_(0, 1)


def _border_shapes(b: int, h: int, w: int, g: torch.Generator, dev: torch.device, n: int):
    """Separable factors (b, h, n) and (b, n, w) of n axis-aligned soft rectangles per image, each standing
    on a random edge (see clutter), brightness folded into the first."""
    u = _rand((9, b, n), g, dev)
    edge = (u[0] * 4).long().clamp_(max=3)  # top, bottom, left, right
    along, line = u[1], u[2] < 0.5
    half = torch.where(line, 0.5 + 0.7 * u[3], 1.5 + 2 * u[3])
    length = torch.where(line, 3 + 5 * u[4], 2 + 4 * u[4])
    start = u[5] * 4 - 3  # -3 to 1 px from the edge
    soft = torch.where(line, 0.7, 1.5)
    bright = (0.4 + 0.6 * u[6]) * (u[7] < 0.5)
    across = edge < 2  # top/bottom: the shape runs along y
    y_lo = torch.where(across, torch.where(edge == 0, start, h - start - length), along * h - half)
    y_hi = torch.where(across, y_lo + length, along * h + half)
    x_lo = torch.where(across, along * w - half, torch.where(edge == 2, start, w - start - length))
    x_hi = torch.where(across, along * w + half, x_lo + length)
    ty, tx = torch.arange(h, device=dev) + 0.5, torch.arange(w, device=dev) + 0.5
    return (_soft_interval(ty, y_lo, y_hi, soft) * bright[..., None]).transpose(1, 2), _soft_interval(tx, x_lo, x_hi, soft)


def clutter(x: torch.Tensor, g: torch.Generator, p: float = 0.5, texture: float = 0.12, objects: int = 3,
            inplace: bool = False) -> torch.Tensor:
    """Leftover background: faint texture (amplitude up to `texture`) and up to `objects` bright shapes at the border.

    Texture, per image: smooth noise (7x7 upsampled) or stripes (period 3-8 px, any angle). Shapes:
    each slot is used with probability 1/2, brightness 0.4-1, a line (0.5-1.2 px half-width, 3-8
    px long) or a blob (1.5-3.5 px half-width, 2-6 px long) standing on a random edge, starting up
    to 3 px outside it, never reaching more than 9.5 px into the frame. All of it is merged with max(), so
    it shows only where the image is darker: the texture in the black background, the shapes near
    the border. Every part is separable, so the whole clutter image is one low-rank batched matmul.
    """
    def fn(s: torch.Tensor) -> torch.Tensor:
        b, _, h, w = s.shape
        dev = s.device
        amp, period, angle, phase, u = _uniforms(b, g, dev, (0, texture), (3, 8), (0, math.pi), (0, 2 * math.pi), (0, 1))
        smooth = (u < 0.5).float()
        freq = 2 * math.pi / period
        fy = (freq * angle.sin())[:, None] * torch.arange(h, device=dev)  # stripes: sin(fx + fy), separably
        fx = (freq * angle.cos())[:, None] * torch.arange(w, device=dev) + phase[:, None]
        grid = (_rand((b * 7, 7), g, dev) @ _upsample_matrix(w, 7, dev).T).view(b, 7, w)  # smooth: U N V^T
        left = [_upsample_matrix(h, 7, dev).expand(b, h, 7) * (amp * smooth)[:, None, None],
                torch.stack([fy.cos(), fy.sin(), torch.ones_like(fy)], 2) * (0.5 * amp * (1 - smooth))[:, None, None]]
        right = [grid, torch.stack([fx.sin(), fx.cos(), torch.ones_like(fx)], 1)]
        if objects > 0:
            ly, rx = _border_shapes(b, h, w, g, dev, objects)
            left.append(ly)
            right.append(rx)
        background = torch.cat(left, 2) @ torch.cat(right, 1)
        return torch.maximum(s, background[:, None].to(s.dtype), out=s)
    return _on_some(x, g, p, fn, inplace)


def occlusion(x: torch.Tensor, g: torch.Generator, p: float = 0.3, scale=(0.03, 0.2), ratio=(1 / 3, 3.0),
              gray=(0.25, 0.75), inplace: bool = False) -> torch.Tensor:
    """Cover one rectangle (`scale` of the area, `ratio` h/w) with mid-gray or, half the time, background.

    The background level is the mean of the image's 1-pixel border ring (0 for a clean image). One
    masked select over the whole batch (like random-erasing): no gathering of the drawn images.
    """
    b, _, h, w = x.shape
    dev = x.device
    chosen, area, r, uy, ux, level, u = _uniforms(b, g, dev, (0, 1), scale, (*ratio, "log"), (0, 1), (0, 1), gray, (0, 1))
    area = area * (h * w)
    eh = torch.sqrt(area * r).round_().clamp_(1, h)
    ew = torch.sqrt(area / r).round_().clamp_(1, w)
    y0 = ((h - eh + 1) * uy).floor_()
    x0 = ((w - ew + 1) * ux).floor_()
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    in_rows = ((rows >= y0[:, None]) & (rows < (y0 + eh)[:, None]) & (chosen < p)[:, None]).to(x.dtype)
    in_cols = ((cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])).to(x.dtype)
    mask = in_rows[:, None, :, None] * in_cols[:, None, None, :]  # 0/1 floats: much faster than bool ops
    ring = x[:, :, 0].sum(2) + x[:, :, -1].sum(2) + x[:, :, 1:-1, 0].sum(2) + x[:, :, 1:-1, -1].sum(2)
    background = ring / max(2 * w + 2 * (h - 2), 1)
    fill = torch.where((u < 0.5)[:, None], level[:, None].to(x.dtype), background)  # (b, c)
    fill = fill[:, :, None, None].expand_as(x)
    return x.lerp_(fill, mask) if inplace else torch.lerp(x, fill, mask)  # exactly x where the mask is 0


# In canonical order: geometric, photometric, blur, clutter, noise, occlusion.
PHOTO_AUGMENTS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "scale-aspect": scale_aspect,
    "shift-crop": shift_crop,
    "photometric": photometric,
    "blur-sharpen": blur_sharpen,
    "clutter": clutter,
    "noise": noise,
    "occlusion": occlusion,
}
