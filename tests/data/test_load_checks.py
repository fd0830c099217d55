"""What load_dataset refuses before any training starts: wrong image size, labels outside the
classes, class-name files that disagree with the labels, empty files."""

import numpy as np
import pytest

from conftest import synthetic_arrays, write_idx_folder
from fashionbench.data import sources
from fashionbench.data.idx import read_bytes, write_idx
from fashionbench.errors import DataError


def write_folder(folder, train_images, train_labels, test_images, test_labels):
    arrays = {"train_images": train_images, "train_labels": train_labels,
              "test_images": test_images, "test_labels": test_labels}
    for part, stem in sources.PARTS.items():
        write_idx(folder / f"{stem}.gz", arrays[part])
    return folder


def trust(folder, monkeypatch):
    """Make `folder`'s files the official Fashion-MNIST as far as the checksums go."""
    digests = {stem: sources.sha256(read_bytes(sources.find_file(folder, stem))) for stem in sources.SHA256}
    monkeypatch.setattr(sources, "SHA256", digests)


def labels(n, top=9):
    return (np.arange(n) % (top + 1)).astype(np.uint8)


def images(n, size=28):
    return np.zeros((n, size, size), np.uint8)


def test_images_other_than_28x28_are_refused(tmp_path):
    write_folder(tmp_path, images(20, 32), labels(20), images(10, 32), labels(10))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: images are 32x32 but the models expect 28x28"):
        sources.load_dataset("mnist-format", tmp_path)


def test_train_and_test_of_different_sizes_are_refused(tmp_path):
    write_folder(tmp_path, images(20), labels(20), images(10, 32), labels(10))
    with pytest.raises(DataError, match=r"train images are 28x28 but test images are 32x32; both must be 28x28"):
        sources.load_dataset("mnist-format", tmp_path)


def test_fashion_mnist_label_outside_0_to_9(tmp_path, monkeypatch):
    write_folder(tmp_path, images(20), labels(20), images(11), labels(11, top=10))
    trust(tmp_path, monkeypatch)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: label 10 is outside Fashion-MNIST's classes 0..9"):
        sources.load_dataset("fashion-mnist", tmp_path)


def test_label_beyond_the_class_names_names_file_and_label(idx_folder):
    tx, ty = synthetic_arrays(600, 0)
    ty[5] = 11
    write_idx(idx_folder / "train-labels-idx1-ubyte.gz", ty)
    (idx_folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz has label 11 but .*classes.txt names only 10 "
                                        r"classes .*one class name per line, 12 lines"):
        sources.load_dataset("mnist-format", idx_folder)


def test_class_file_with_more_names_than_the_labels_use(idx_folder):
    (idx_folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(12)))
    with pytest.raises(DataError, match=r"classes.txt has 12 lines but the labels use 10 classes.*10 lines"):
        sources.load_dataset("mnist-format", idx_folder)


def test_class_file_that_matches_is_used(idx_folder):
    (idx_folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n\n")
    assert sources.load_dataset("mnist-format", idx_folder).class_names[-1] == "c9"


def test_unreadable_class_file(idx_folder):
    (idx_folder / "classes.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(DataError, match=r"classes.txt: cannot be read .*UTF-8"):
        sources.load_dataset("mnist-format", idx_folder)


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_dataset(tmp_path, split):
    write_idx_folder(tmp_path)
    write_idx(tmp_path / f"{sources.PARTS[split + '_images']}.gz", images(0))
    write_idx(tmp_path / f"{sources.PARTS[split + '_labels']}.gz", labels(0))
    with pytest.raises(DataError, match=rf"{sources.PARTS[split + '_images']}.gz: holds no images"):
        sources.load_dataset("mnist-format", tmp_path)


def test_fashion_mnist_with_trusted_synthetic_files_loads(tmp_path, monkeypatch):
    write_idx_folder(tmp_path)
    trust(tmp_path, monkeypatch)
    ds = sources.load_dataset("fashion-mnist", tmp_path)
    assert ds.verified and ds.num_classes == 10 and "(explicit)" in ds.source
