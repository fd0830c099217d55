"""Real photo -> 28x28: synthetic photos drawn here (no network, no photo files), every format and
every bad input."""

from __future__ import annotations

import io
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fashionbench.data import image_files, photos
from fashionbench.errors import ConfigError, PhotoError

W, H = 300, 400  # a 3:4 phone frame
# a T-shirt: shoulders, sleeves, body; bounding box x 75..225, y 90..330 (tall: 150 x 240)
TSHIRT = [(120, 90), (180, 90), (225, 130), (210, 170), (195, 160), (195, 330), (105, 330), (105, 160),
          (90, 170), (75, 130)]
BOX = (75, 90, 225, 330)


def textured_background(w: int = W, h: int = H, seed: int = 0) -> np.ndarray:
    """A beige rug: coloured, with a weave, stripes and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.array([196, 170, 140], np.float32)
    weave = 10 * np.sin(x / 2.5) * np.sin(y / 2.5)
    stripes = 14 * (((x + y) // 24) % 2)
    img = base + (weave + stripes)[..., None] + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def shirt_photo(background: np.ndarray | None = None, colour=(40, 45, 70), shift=(0, 0)) -> Image.Image:
    img = Image.fromarray(textured_background() if background is None else background)
    ImageDraw.Draw(img).polygon([(x + shift[0], y + shift[1]) for x, y in TSHIRT], fill=colour)
    return img


def white_photo(colour=(40, 45, 70)) -> Image.Image:
    return shirt_photo(np.full((H, W, 3), 253, np.uint8), colour)


def assert_fmnist_like(a: np.ndarray, *, tall: bool | None = True) -> None:
    """Light item on black, centred, longest side filling the 28-px frame as Fashion-MNIST does."""
    assert a.shape == (28, 28) and a.dtype == np.uint8
    item = a > 40
    ys, xs = np.nonzero(item)
    assert item.sum() > 60, "no item"
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert 26 <= max(height, width) <= 28
    if tall is not None:
        assert (height > width) == tall
    cy, cx = (np.array(np.nonzero(a)) * a[a > 0]).sum(1) / a[a > 0].sum()
    assert abs(cy - 13.5) < 3 and abs(cx - 13.5) < 3
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    assert np.median(ring) < 20  # dark border
    assert a[item].mean() > 100 and a.max() >= 250  # bright, stretched item


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- conversion quality

@pytest.mark.parametrize("method", ["auto", "grabcut", "border"])
def test_item_on_textured_background(method):
    c = photos.to_fmnist(shirt_photo(), method)
    assert c.method == method
    assert_fmnist_like(c.image)
    x0, y0, x1, y1 = c.box  # in the photo's own pixels
    assert abs(x0 - BOX[0]) <= 12 and abs(y0 - BOX[1]) <= 12 and abs(x1 - BOX[2]) <= 12 and abs(y1 - BOX[3]) <= 12


def test_off_centre_item_is_centred_and_light_item_on_dark_floor():
    dark_floor = (textured_background().astype(np.float32) * 0.35).astype(np.uint8)
    assert_fmnist_like(photos.to_fmnist(shirt_photo(shift=(60, -50))).image)
    c = photos.to_fmnist(shirt_photo(dark_floor, colour=(235, 230, 220)))
    # a white shirt negates to a dark item, as in Fashion-MNIST; it is still found and fitted
    ys, xs = np.nonzero(c.image > 0)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 >= 26
    assert abs(c.box[1] - BOX[1]) <= 12 and abs(c.box[3] - BOX[3]) <= 12


@pytest.mark.parametrize("method", ["auto", "fmnist", "border", "grabcut"])
def test_catalogue_photo_on_white(method):
    assert_fmnist_like(photos.to_fmnist(white_photo(), method).image)


def test_naive_squashes_the_whole_frame():
    c = photos.to_fmnist(shirt_photo(), "naive")
    assert c.image.shape == (28, 28) and c.box == (0, 0, W, H)


def test_person_on_white_loses_head():
    """A model wearing a shirt on a studio background: the head (skin, hair) is cut at the neck."""
    img = white_photo(colour=(30, 60, 150))
    d = ImageDraw.Draw(img)
    d.ellipse((128, 20, 172, 78), fill=(205, 150, 120))  # face, skin tone
    d.rectangle((141, 70, 159, 95), fill=(200, 145, 115))  # neck
    c = photos.to_fmnist(img, "auto")
    assert c.box[1] >= 70  # the box starts at the neck, not the head
    assert_fmnist_like(c.image)


def test_wide_item_and_nine_by_sixteen_frame():
    shoe = Image.new("RGB", (405, 720), (120, 140, 90))  # 9:16, green
    ImageDraw.Draw(shoe).polygon([(60, 330), (300, 330), (345, 400), (60, 400)], fill=(20, 20, 20))
    assert_fmnist_like(photos.to_fmnist(shoe).image, tall=False)


def test_keep_steps_and_deterministic():
    a = photos.to_fmnist(shirt_photo(), keep_steps=True)
    b = photos.to_fmnist(shirt_photo())
    assert [n for n, _ in a.steps] == ["photo", "foreground", "crop", "28x28"]
    assert np.array_equal(a.steps[-1][1], a.image) and a.steps[0][1].ndim == 3
    assert b.steps == [] and np.array_equal(a.image, b.image)


# -------------------------------------------------------------------------------------- formats

def tall_item() -> Image.Image:
    img = Image.new("RGB", (200, 300), (240, 238, 230))
    ImageDraw.Draw(img).rectangle((70, 30, 130, 270), fill=(30, 30, 60))  # trousers-like: tall
    return img


def test_exif_orientation_honoured(tmp_path):
    stored = tall_item().transpose(Image.Transpose.ROTATE_90)  # pixels lie wide...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...and the camera says "rotate 90 degrees clockwise to view"
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", exif=exif, quality=95)
    assert stored.size == (300, 200)
    assert photos.load_image(path).size == (200, 300)
    assert_fmnist_like(photos.to_fmnist(path).image, tall=True)


def test_alpha_composited_on_white(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)  # transparent black background
    item = Image.new("L", (W, H), 0)
    ImageDraw.Draw(item).polygon(TSHIRT, fill=255)
    rgba[..., :3] = (40, 45, 70)
    rgba[..., 3] = np.asarray(item)
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba).save(path)
    img = photos.load_image(path)
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (255, 255, 255)
    assert_fmnist_like(photos.to_fmnist(path).image)
    assert_fmnist_like(photos.to_fmnist(rgba).image)  # an HxWx4 array too
    la = Image.fromarray(rgba).convert("LA")
    assert photos.load_image(la).mode == "L" and photos.load_image(la).getpixel((5, 5)) == 255


def test_sixteen_bit_png(tmp_path):
    gray = np.asarray(white_photo().convert("L"), np.uint16) * 257
    path = tmp_path / "scan16.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    img = photos.load_image(path)
    assert img.mode == "L" and img.getpixel((5, 5)) == 253
    assert_fmnist_like(photos.to_fmnist(path).image)
    assert_fmnist_like(photos.to_fmnist(gray).image)  # a uint16 array


@pytest.mark.parametrize("fmt,suffix,mode", [("PNG", ".png", "P"), ("JPEG", ".jpg", "CMYK"), ("WEBP", ".webp", "RGB"),
                                             ("BMP", ".bmp", "RGB"), ("TIFF", ".tiff", "RGB"), ("PNG", ".png", "1")])
def test_formats_and_modes(tmp_path, fmt, suffix, mode):
    img = white_photo()
    img = img.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else img.convert(mode)
    path = tmp_path / f"photo{suffix}"
    img.save(path, fmt)
    assert Image.open(path).mode == mode
    assert photos.load_image(path).mode in ("RGB", "L")
    assert_fmnist_like(photos.to_fmnist(path).image)


def test_gif_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    first, second = white_photo(), Image.new("RGB", (W, H), (253, 253, 253))
    first.save(path, save_all=True, append_images=[second], duration=100)
    assert Image.open(path).n_frames == 2
    assert photos.load_image(path).convert("L").getpixel((150, 250)) < 100  # the item: frame 0
    assert_fmnist_like(photos.to_fmnist(path).image)


def test_bytes_arrays_and_pil_sources():
    assert_fmnist_like(photos.to_fmnist(png_bytes(white_photo(), "JPEG")).image)
    a = np.asarray(white_photo())
    for arr in (a, a.astype(np.float32) / 255, a[..., 0], a[..., :1]):
        assert_fmnist_like(photos.to_fmnist(arr).image)
    assert photos.load_image(a[..., 0]).mode == "L"
    with pytest.raises(PhotoError, match="shaped"):
        photos.load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(PhotoError, match="NaN"):
        photos.load_image(np.full((4, 4), np.nan))


def fmnist_like_image() -> np.ndarray:
    a = np.zeros((28, 28), np.uint8)
    a[2:26, 8:20] = np.arange(24, dtype=np.uint8)[:, None] * 9 + 30  # light item on black
    return a


def test_fmnist_image_passes_through_byte_identical(tmp_path):
    a = fmnist_like_image()
    assert photos.is_fmnist_like(a) and photos.is_fmnist_like(Image.fromarray(a))
    path = tmp_path / "already.png"
    Image.fromarray(a).save(path)
    for src in (a, path, Image.fromarray(a), path.read_bytes()):
        c = photos.to_fmnist(src)
        assert c.method == "passthrough" and c.image.dtype == np.uint8 and c.image.tobytes() == a.tobytes()
    # not Fashion-MNIST-like: a dark item on white, a colour photo, another size
    assert not photos.is_fmnist_like(255 - a)
    assert not photos.is_fmnist_like(np.zeros((28, 28, 3), np.uint8) + [255, 0, 0])
    assert not photos.is_fmnist_like(np.zeros((32, 32), np.uint8))
    assert photos.to_fmnist(255 - a).method == "auto"


# ----------------------------------------------------------------------------------- bad inputs

def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a size it never holds (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("case,content,match", [
    ("notes.jpg", b"this is not an image\n" * 10, "not an image"),
    ("empty.png", b"", "empty file"),
    ("bomb.png", huge_png_header(100_000, 100_000), "pixel limit"),
    ("giant.png", huge_png_header(9_000, 9_000), "9000x9000 pixels is over"),  # under Pillow's own limit, over ours
], ids=["text", "empty", "bomb", "giant"])
def test_bad_files_name_the_file(tmp_path, case, content, match):
    path = tmp_path / case
    path.write_bytes(content)
    for call in (photos.load_image, photos.to_fmnist):
        with pytest.raises(PhotoError, match=match) as e:
            call(path)
        assert case in str(e.value) and "\n" not in str(e.value)


def test_truncated_jpeg(tmp_path):
    data = png_bytes(shirt_photo(), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PhotoError, match="truncated") as e:
        photos.to_fmnist(path)
    assert "cut.jpg" in str(e.value)


def test_pillow_bomb_error_and_small_limit(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    white_photo().save(path)
    monkeypatch.setattr(image_files, "MAX_PIXELS", 10_000)
    with pytest.raises(PhotoError, match="photo.png.*pixel limit"):
        photos.load_image(path)
    with pytest.raises(PhotoError, match="pixel limit"):
        photos.load_image(np.zeros((200, 200), np.uint8))
    monkeypatch.setattr(image_files, "MAX_PIXELS", 10**12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # Pillow's own check fires first
    with pytest.raises(PhotoError, match="photo.png.*decompression bomb"):
        photos.load_image(path)


def test_missing_path_folder_and_unknown_method(tmp_path):
    with pytest.raises(PhotoError, match="nope.jpg: no such file"):
        photos.to_fmnist(tmp_path / "nope.jpg")
    with pytest.raises(PhotoError, match="folder"):
        photos.load_image(tmp_path)
    with pytest.raises(ConfigError, match="'magic'.*auto, naive, fmnist, border, grabcut"):
        photos.to_fmnist(white_photo(), "magic")
    with pytest.raises(ConfigError):
        photos.convert_many([white_photo()], "magic")


def test_convert_many_keeps_going(tmp_path):
    good = tmp_path / "good.png"
    white_photo().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    stack, results, problems = photos.convert_many([good, bad, tmp_path / "gone.png", white_photo(), b""],
                                                   progress=False)
    assert stack.shape == (2, 28, 28) and stack.dtype == np.uint8
    assert [r is None for r in results] == [False, True, True, False, True]
    assert [name for name, _ in problems] == [str(bad), str(tmp_path / "gone.png"), "#4 (bytes)"]
    assert problems[0][1].startswith("not an image") and "empty file" in problems[2][1]
    assert all("\n" not in msg and not msg.startswith(str(tmp_path)) for _, msg in problems)
    empty, results, problems = photos.convert_many([])
    assert empty.shape == (0, 28, 28) and results == [] and problems == []


def test_without_opencv(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(PhotoError, match=r"needs OpenCV: pip install 'fashionbench\[photo\]'"):
        photos.to_fmnist(white_photo(), "grabcut")
    c = photos.to_fmnist(white_photo(), "auto")  # the best a base install has
    assert c.method == "border"
    assert_fmnist_like(c.image)


# ---------------------------------------------------------------------------------- find_images

def test_find_images(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for name in ["a/2.JPG", "a/1.png", "a/deep/3.webp", "a/readme.txt", "odd.dat"]:
        (tmp_path / name).write_bytes(b"x")
    files, problems = photos.find_images([tmp_path / "a"])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a/1.png", "a/2.JPG", "a/deep/3.webp"]
    assert problems == []
    files, problems = photos.find_images([str(tmp_path / "a" / "*.png"), tmp_path / "odd.dat", tmp_path / "empty",
                                          tmp_path / "missing.jpg", str(tmp_path / "none" / "*.jpg")])
    assert [p.name for p in files] == ["1.png", "odd.dat"]  # a named file is kept whatever its extension
    assert [p for p, _ in problems] == [str(tmp_path / "empty"), str(tmp_path / "missing.jpg"),
                                        str(tmp_path / "none" / "*.jpg")]
    assert "no images" in problems[0][1] and "no such" in problems[1][1] and "matches no" in problems[2][1]
    files, _ = photos.find_images([str(tmp_path / "**"), tmp_path / "a" / "1.png"])  # recursive glob, no duplicates
    assert sorted(p.name for p in files) == ["1.png", "2.JPG", "3.webp"]
    assert photos.find_images(str(tmp_path / "a" / "1.png"))[0] == [tmp_path / "a" / "1.png"]


def test_a_recursive_glob_does_not_follow_symlinked_folders(tmp_path):
    (tmp_path / "d").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "d" / "a.png")
    (tmp_path / "d" / "up").symlink_to(tmp_path)  # a loop: glob.glob's '**' would walk it for ever
    (tmp_path / "d" / "self").symlink_to(tmp_path / "d")
    files, problems = photos.find_images([str(tmp_path / "**" / "*.png")])
    assert [p.name for p in files] == ["a.png"] and problems == []
