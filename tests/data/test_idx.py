import gzip
from pathlib import Path

import numpy as np
import pytest

from fashionbench.data.idx import encode_idx, parse_idx, read_idx, write_idx
from fashionbench.data.sources import load_dataset
from fashionbench.errors import DataError


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip_images_and_labels(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / name, images)
    write_idx(tmp_path / ("l" + name), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)
    np.testing.assert_array_equal(read_idx(tmp_path / ("l" + name)), labels)
    assert not list(tmp_path.glob(".*tmp")), "atomic write left a temp file"


def test_truncated_gzip(tmp_path):
    data = gzip.compress(encode_idx(np.zeros((50, 28, 28), np.uint8)))
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "t.gz")


def test_corrupt_gzip(tmp_path):
    data = bytearray(gzip.compress(encode_idx(np.arange(1000, dtype=np.uint8).reshape(1000)[:784].reshape(1, 28, 28))))
    data[20:40] = b"\xff" * 20
    (tmp_path / "c.gz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="c.gz"):
        read_idx(tmp_path / "c.gz")


def test_wrong_magic(tmp_path):
    (tmp_path / "m").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 100)
    with pytest.raises(DataError, match="wrong magic number"):
        read_idx(tmp_path / "m")


def test_data_shorter_than_header_promises(tmp_path):
    raw = encode_idx(np.zeros((3, 28, 28), np.uint8))
    (tmp_path / "s").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="header promises"):
        read_idx(tmp_path / "s")


def test_image_label_count_mismatch(idx_folder):
    write_idx(idx_folder / "train-labels-idx1-ubyte.gz", np.zeros(599, np.uint8))
    with pytest.raises(DataError, match="600 images but 599 labels"):
        load_dataset("mnist-format", idx_folder)


def test_mnist_format_folder_with_class_names(idx_folder):
    (idx_folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    ds = load_dataset("mnist-format", idx_folder)
    assert ds.class_names[3] == "c3" and not ds.verified
    assert ds.train_images.shape == (600, 28, 28) and ds.train_images.dtype.is_floating_point is False
    assert ds.test_labels.shape == (200,)


def test_mnist_format_defaults_class_names(idx_folder):
    ds = load_dataset("mnist-format", idx_folder)
    assert ds.class_names == [str(i) for i in range(10)]


def test_checksum_mismatch_names_file_and_fix(idx_folder):
    # Right format, wrong content: refused as Fashion-MNIST, with the way out named.
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: checksum mismatch.*mnist-format"):
        load_dataset("fashion-mnist", idx_folder)


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os
    import stat

    write_idx(tmp_path / "p.idx", np.zeros(3, np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "p.idx").stat().st_mode) == 0o666 & ~umask


def test_unreadable_file_names_it_and_the_fix(idx_folder, monkeypatch):
    # Tests run as root, where chmod 000 still reads: make the read itself fail instead.
    victim = idx_folder / "train-labels-idx1-ubyte.gz"
    real_read = Path.read_bytes

    def read_bytes(self):
        if self == victim:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: permission denied; make the file readable"):
        load_dataset("mnist-format", idx_folder)


def test_folder_in_place_of_a_file(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"images is a folder, not a data file"):
        read_idx(tmp_path / "images")


def test_other_read_error_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(DataError, match=r"x.gz: cannot be read \(Input/output error\)"):
        read_idx(tmp_path / "x.gz")


def test_header_dimensions_whose_product_wraps_around_int64(tmp_path):
    # 2**22 * 2**21 * 2**21 = 2**64: a 64-bit product wraps to 0 and would match an empty body.
    dims = (2**22, 2**21, 2**21)
    data = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in dims)
    with pytest.raises(DataError, match="header promises 18446744073709551616"):
        parse_idx(data, "forged")
