"""Find, download and verify Fashion-MNIST (or any MNIST-format IDX folder).

Order of sources: an explicit folder (`--data-dir` / FASHIONBENCH_DATA), the user cache,
the copy Debian's `dataset-fashion-mnist` installs, then a download into the cache.
Every file is checked against the SHA-256 of its *decompressed* content (repackagers
recompress, so .gz bytes differ) before it is used or cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import FASHION_CLASSES
from ..errors import DataError
from ..utils import atomic_path
from .idx import parse_idx, read_bytes

log = logging.getLogger("fashionbench.data")

PARTS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Official locations (zalandoresearch/fashion-mnist README), tried in order.
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("fashion-mnist", "mnist-format")

OFFLINE_HELP = (
    "Provide the data one of three ways: (1) pass --data-dir DIR or set FASHIONBENCH_DATA to a folder "
    "holding the four files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]); (2) on Debian or Ubuntu run "
    "`sudo apt-get install dataset-fashion-mnist`; (3) connect to the internet and run "
    "`fashionbench data download`."
)


@dataclass
class Dataset:
    """The whole dataset as in-memory tensors: images uint8 (N, 28, 28), labels int64 (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]
    name: str = "fashion-mnist"
    source: str = ""
    verified: bool = False
    files: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fashionbench" / "fashion-mnist"


def mirrors_from_env() -> tuple[str, ...]:
    env = os.environ.get("FASHIONBENCH_MIRRORS")
    return tuple(m.strip() for m in env.split(",") if m.strip()) if env else MIRRORS


def find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_verified(path: Path, stem: str) -> bytes:
    """Decompressed content of `path`, which must match the official checksum of `stem`."""
    data = read_bytes(path)
    digest = sha256(data)
    if digest != SHA256[stem]:
        raise DataError(
            f"{path}: checksum mismatch (SHA-256 of the decompressed content is {digest[:16]}..., "
            f"Fashion-MNIST's is {SHA256[stem][:16]}...). The file is corrupt or is not Fashion-MNIST: "
            "delete it and get it again, or use --dataset mnist-format for other MNIST-format data"
        )
    return data


def complete_folder(folder: Path) -> dict[str, Path] | None:
    found = {stem: find_file(folder, stem) for stem in SHA256}
    return found if all(found.values()) else None  # type: ignore[return-value]


def download_file(stem: str, dest_dir: Path, mirrors: tuple[str, ...], timeout: float = 30.0) -> Path:
    """Download `stem`.gz from the first mirror that serves a verified copy; atomic into dest_dir."""
    errors = []
    dest = dest_dir / f"{stem}.gz"
    for base in mirrors:
        url = base.rstrip("/") + f"/{stem}.gz"
        try:
            with atomic_path(dest) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=f"{stem}.gz", disable=None,
                              leave=False) as bar:
                        while chunk := resp.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                load_verified(tmp, stem)  # raises before the rename: nothing bad reaches the cache
            log.info("downloaded %s from %s", stem, base)
            return dest
        except (urllib.error.URLError, OSError, DataError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            errors.append(f"{url}: {reason}")
            log.warning("download failed: %s: %s", url, reason)
    raise DataError(f"could not download {stem}.gz: " + "; ".join(errors) + ". " + OFFLINE_HELP)


def download(dest_dir: Path | None = None, mirrors: tuple[str, ...] | None = None) -> Path:
    """Fill `dest_dir` (the cache by default) with the four verified files; skip ones already good."""
    dest_dir = dest_dir or cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    mirrors = mirrors or mirrors_from_env()
    for stem in SHA256:
        existing = find_file(dest_dir, stem)
        if existing is not None:
            try:
                load_verified(existing, stem)
                continue
            except DataError:
                log.warning("replacing bad cached file %s", existing)
        download_file(stem, dest_dir, mirrors)
    return dest_dir


def locate(data_dir: str | Path | None = None, allow_download: bool = True,
           mirrors: tuple[str, ...] | None = None) -> tuple[Path, str]:
    """Folder holding Fashion-MNIST and how it was found ('explicit', 'cache', 'system', 'download')."""
    explicit = data_dir or os.environ.get("FASHIONBENCH_DATA")
    if explicit:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise DataError(f"data folder {folder} does not exist; check --data-dir / FASHIONBENCH_DATA")
        if complete_folder(folder) is None:
            missing = [s for s in SHA256 if find_file(folder, s) is None]
            raise DataError(f"{folder} lacks {', '.join(missing)} (.gz or raw); " + OFFLINE_HELP)
        return folder, "explicit"
    if complete_folder(cache_dir()):
        return cache_dir(), "cache"
    if complete_folder(SYSTEM_DIR):
        return SYSTEM_DIR, "system"
    if not allow_download:
        raise DataError("Fashion-MNIST was not found on this machine. " + OFFLINE_HELP)
    log.info("Fashion-MNIST not found locally; downloading into %s", cache_dir())
    return download(cache_dir(), mirrors), "download"


def read_class_names(folder: Path, num_classes: int) -> list[str]:
    for name in ("classes.txt", "class_names.txt"):
        path = folder / name
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if len(names) < num_classes:
                raise DataError(f"{path} names {len(names)} classes but the labels use {num_classes}; "
                                "put one class name per line")
            return names
    return [str(i) for i in range(num_classes)]


def _arrays(folder: Path, verify: bool) -> dict[str, np.ndarray]:
    out = {}
    for part, stem in PARTS.items():
        path = find_file(folder, stem)
        if path is None:
            raise DataError(f"{folder} lacks {stem} (.gz or raw); " + OFFLINE_HELP)
        data = load_verified(path, stem) if verify else read_bytes(path)
        out[part] = parse_idx(data, str(path))
    for split in ("train", "test"):
        images, labels = out[f"{split}_images"], out[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{folder}: {split} images must be 3-D and labels 1-D IDX files; "
                            "check that the files are not swapped")
        if len(images) != len(labels):
            raise DataError(
                f"{folder}: {split} has {len(images)} images but {len(labels)} labels; "
                "the files do not belong together, get them again"
            )
    return out


def load_dataset(dataset: str = "fashion-mnist", data_dir: str | Path | None = None,
                 allow_download: bool = True, mirrors: tuple[str, ...] | None = None) -> Dataset:
    """Load the whole dataset into memory as uint8/int64 tensors."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "mnist-format":
        if not data_dir:
            raise DataError("--dataset mnist-format needs --data-dir DIR holding the four IDX files")
        folder, verify, how = Path(data_dir).expanduser(), False, "explicit"
        if not folder.is_dir():
            raise DataError(f"data folder {folder} does not exist; check --data-dir")
        log.warning("mnist-format dataset at %s: checksums skipped (only Fashion-MNIST has known ones)", folder)
    else:
        folder, how = locate(data_dir, allow_download, mirrors)
        verify = True
    arrays = _arrays(folder, verify)
    num_classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
    names = list(FASHION_CLASSES) if dataset == "fashion-mnist" else read_class_names(folder, num_classes)
    return Dataset(
        train_images=torch.from_numpy(arrays["train_images"].copy()),
        train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(arrays["test_images"].copy()),
        test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        class_names=names,
        name=dataset,
        source=f"{folder} ({how})",
        verified=verify,
        files={p: str(find_file(folder, s)) for p, s in PARTS.items()},
    )
