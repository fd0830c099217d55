"""Image files in, 8-bit upright PIL images out: finding them (files, folders, globs) and loading them
safely (EXIF orientation, 16-bit, palette, alpha on white, CMYK, first frame; a decompression-bomb
limit checked before decoding). Every problem is a PhotoError of one line naming the file."""

from __future__ import annotations

import glob
import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageTooLargeError, PhotoError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 64_000_000  # decompression-bomb limit: width * height of one frame, checked before decoding


def source_name(source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"<{type(source).__name__}>"


def photo_error(name: str, problem: str, fix: str, kind: type[PhotoError] = PhotoError) -> PhotoError:
    return kind(f"{name}: {problem}; {fix}")


def _from_array(a: np.ndarray, name: str) -> Image.Image:
    """HxW / HxWx1 / HxWx3 / HxWx4 array (uint8, uint16, bool, or float in [0, 1]) -> PIL image."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise photo_error(name, f"an array shaped {a.shape} is not an image", "pass HxW, HxWx3 or HxWx4 pixels")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise photo_error(name, f"{a.shape[1]}x{a.shape[0]} pixels is over the {MAX_PIXELS:,}-pixel limit", "resize it first",
                    ImageTooLargeError)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a.astype(np.uint32) * 255 + 32767) // 65535  # full 16-bit range -> 8 bits, rounded
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise photo_error(name, "the array holds NaN or infinite values", "pass floats in [0, 1]")
        a = np.clip(a, 0.0, 1.0) * 255 + 0.5
    elif a.dtype != np.uint8:
        if a.min() < 0 or a.max() > 255:
            raise photo_error(name, f"{a.dtype} pixels outside 0..255", "pass uint8, uint16 or floats in [0, 1]")
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8))  # L, RGB or RGBA (composited later)


def _open(source, name: str, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decoded first frame (not yet normalized) and the full size (w, h) before any JPEG draft."""
    if isinstance(source, Image.Image):
        return source, source.size
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise photo_error(name, "no such file", "check the path")
        if path.is_dir():
            raise photo_error(name, "is a folder, not an image file", "name an image file (find_images lists a folder)")
        if path.stat().st_size == 0:
            raise photo_error(name, "empty file (0 bytes)", "copy or upload the photo again")
        fp = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise photo_error(name, "empty file (0 bytes)", "upload the photo again")
        fp = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        fp = source
    else:
        raise photo_error(name, f"cannot read a photo from a {type(source).__name__}",
                    "pass a path, bytes, a PIL image or a NumPy array")
    try:
        img = Image.open(fp)
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise photo_error(name, f"{w}x{h} pixels is over the {MAX_PIXELS:,}-pixel limit (a decompression bomb?)",
                        "resize it first", ImageTooLargeError)
        if draft and img.format == "JPEG" and max(w, h) > 2 * draft:
            img.draft("RGB", (draft, draft))  # decode at 1/2..1/8 scale: big phone JPEGs load 10x faster
        img.load()
    except PhotoError:
        raise
    except Image.DecompressionBombError:
        raise photo_error(name, f"too many pixels: over the {MAX_PIXELS:,}-pixel limit (Pillow refused it as a decompression "
                    "bomb)", "resize it first", ImageTooLargeError) from None
    except UnidentifiedImageError:
        raise photo_error(name, "not an image (or a format Pillow cannot read)",
                    f"use one of {', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}") from None
    except PermissionError:
        raise photo_error(name, "cannot be read (permission denied)", "check its permissions") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise photo_error(name, f"truncated or corrupt image ({e})", "copy or upload the photo again") from None
    return img, (w, h)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB" or "L"; transparency composited on white (a catalogue background)."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":  # 16/32-bit gray: scale the 16-bit range to 8 bits
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or a.max() > 255:
            a = a / 257.0
        elif mode == "F" and a.max() <= 1.0:
            a = a * 255.0
        return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        white = Image.new(img.mode, img.size, (255,) * len(img.mode))
        img = Image.alpha_composite(white, img).convert(img.mode[:-1])
    return img if img.mode in ("RGB", "L") else img.convert("RGB")  # CMYK, YCbCr, LAB, HSV...


def load_scaled(source, name: str | None = None, draft: int | None = None) -> tuple[Image.Image, float]:
    """Normalized photo and the factor from its coordinates to the full-size photo's."""
    name = name or source_name(source)
    if isinstance(source, np.ndarray):
        return _to_8bit(_from_array(source, name)), 1.0
    img, (w, h) = _open(source, name, draft)
    scale = w / img.size[0] if img.size[0] else 1.0
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not lose the photo: keep it as stored
        log.debug("%s: EXIF orientation unreadable, ignored", name)
    return _to_8bit(img), scale


def load_image(source) -> Image.Image:
    """A photo as an 8-bit "RGB" or "L" PIL image, upright (EXIF orientation), first frame of an
    animation, transparency on white. `source`: path, bytes (an uploaded file), PIL image or NumPy
    array (HxW, HxWx3, HxWx4; uint8, uint16 or float in [0, 1]). Raises PhotoError (one line)."""
    return load_scaled(source)[0]


def _glob(pattern: str) -> list[Path]:
    """Expand a glob with pathlib, which (unlike glob.glob) does not follow symlinked folders:
    a link loop cannot make '**' run for ever."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:first]) if first else Path(".")
    rest = "/".join(parts[first:]) + ("/*" if parts[-1] == "**" else "")  # glob.glob's 'x/**' means everything below
    try:
        return list(root.glob(rest)) if root.is_dir() else []
    except (OSError, ValueError):
        return []


def find_images(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by `paths` (files, folders searched recursively, globs), sorted within each
    folder or glob, without duplicates; and (path, problem) for names that found nothing."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    problems: list[tuple[str, str]] = []

    def is_image(p: Path) -> bool:
        return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS

    for raw in paths:
        text = str(raw)
        p = Path(text)
        if p.is_file():
            found.append(p)  # named explicitly: load_image decides whether it is an image
        elif p.is_dir():
            images = sorted(q for q in p.rglob("*") if is_image(q))
            found.extend(images)
            if not images:
                problems.append((text, f"no images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})"))
        elif glob.has_magic(text):
            matches = sorted(_glob(text))
            images = [q for q in matches if is_image(q)]
            if "**" not in text:  # a folder the pattern names is searched; '**' already reaches inside
                for d in (q for q in matches if q.is_dir()):
                    images.extend(sorted(q for q in d.rglob("*") if is_image(q)))
            found.extend(images)
            if not images:
                problems.append((text, "the pattern matches no images"))
        else:
            problems.append((text, "no such file or folder"))
    seen: set[Path] = set()
    unique = [q for q in found if not (q.resolve() in seen or seen.add(q.resolve()))]
    return unique, problems
