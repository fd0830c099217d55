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
from ..utils import atomic_path, remove_stale_temporaries
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
IMAGE_SHAPE = (28, 28)  # every model here is built for 28x28 inputs
CLASS_FILES = ("classes.txt", "class_names.txt")
# How to repair each implicit source when its copy fails verification.
REPAIR = {
    "cache": "`fashionbench data download` replaces the bad file, or delete it",
    "system": "`sudo apt-get install --reinstall dataset-fashion-mnist` repairs it",
}

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


def _not_a_folder(folder: Path, option: str) -> str:
    if folder.exists():
        return f"data folder {folder} is a file; {option} names the folder that holds the four IDX files"
    return f"data folder {folder} does not exist; check {option}"


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
    remove_stale_temporaries(dest_dir)
    mirrors = mirrors or mirrors_from_env()
    for stem in SHA256:
        existing = find_file(dest_dir, stem)
        if existing is not None:
            try:
                load_verified(existing, stem)
                continue
            except DataError:
                log.warning("replacing bad cached file %s", existing)
        dest = download_file(stem, dest_dir, mirrors)
        if existing is not None and existing != dest:
            # A bad raw file would shadow the new .gz (find_file prefers raw); keep it aside, not lost.
            existing.replace(existing.with_name(existing.name + ".bad"))
            log.warning("renamed the bad file %s to %s.bad", existing, existing.name)
    return dest_dir


def _explicit_folder(data_dir: str | Path | None) -> Path | None:
    """The folder the user named (--data-dir, else FASHIONBENCH_DATA), which must be complete."""
    option = "--data-dir" if data_dir else "FASHIONBENCH_DATA"
    explicit = data_dir or os.environ.get("FASHIONBENCH_DATA")
    if not explicit:
        return None
    folder = Path(explicit).expanduser()
    if not folder.is_dir():
        raise DataError(_not_a_folder(folder, option))
    missing = [s for s in SHA256 if find_file(folder, s) is None]
    if missing:
        raise DataError(f"{folder} (from {option}) lacks {', '.join(missing)} (.gz or raw); " + OFFLINE_HELP)
    return folder


def find_local_copy(data_dir: str | Path | None = None) -> tuple[Path, str] | None:
    """(folder, 'explicit' | 'cache' | 'system') of the first complete local copy, or None.

    Only checks that the four files exist (no hashing: cheap enough to run before every
    training); loading verifies them. An explicit folder that is missing or incomplete raises.
    """
    explicit = _explicit_folder(data_dir)
    if explicit:
        return explicit, "explicit"
    for folder, how in ((cache_dir(), "cache"), (SYSTEM_DIR, "system")):
        if complete_folder(folder):
            return folder, how
    return None


def _read_parts(folder: Path, verify: bool) -> dict[str, np.ndarray]:
    """The four arrays of `folder`, each file hashed (when `verify`) and parsed in one pass."""
    out = {}
    for part, stem in PARTS.items():
        path = find_file(folder, stem)
        if path is None:
            raise DataError(f"{folder} lacks {stem} (.gz or raw); " + OFFLINE_HELP)
        data = load_verified(path, stem) if verify else read_bytes(path)
        out[part] = parse_idx(data, str(path))
    return out


def _fashion_arrays(data_dir: str | Path | None, allow_download: bool,
                    mirrors: tuple[str, ...] | None) -> tuple[Path, str, dict[str, np.ndarray]]:
    """(folder, how it was found, verified arrays): the first source whose four files verify.

    An explicit folder is the user's choice, so its errors stand. The cache and Debian's copy
    are skipped with a warning when a file fails, and the next source is tried.
    """
    explicit = _explicit_folder(data_dir)
    if explicit:
        return explicit, "explicit", _read_parts(explicit, verify=True)
    remove_stale_temporaries(cache_dir())
    problems = []
    for folder, how in ((cache_dir(), "cache"), (SYSTEM_DIR, "system")):
        if complete_folder(folder) is None:
            continue
        try:
            return folder, how, _read_parts(folder, verify=True)
        except DataError as e:
            log.warning("%s. Skipping the %s copy in %s, trying the next source; %s", e, how, folder, REPAIR[how])
            problems.append(f"{e} ({REPAIR[how]})")
    bad = "the local copies are unusable: " + "; ".join(problems) + ". " if problems else ""
    if not allow_download:
        raise DataError((bad or "Fashion-MNIST was not found on this machine. ") + OFFLINE_HELP)
    log.info("no usable local Fashion-MNIST; downloading into %s", cache_dir())
    try:
        folder = download(cache_dir(), mirrors)
    except DataError as e:
        raise DataError(bad + str(e)) from None
    return folder, "download", _read_parts(folder, verify=True)


def locate(data_dir: str | Path | None = None, allow_download: bool = True,
           mirrors: tuple[str, ...] | None = None) -> tuple[Path, str]:
    """Folder holding verified Fashion-MNIST and how it was found ('explicit', 'cache', 'system',
    'download'). Hashes the files: load_dataset does this once itself, don't call both."""
    folder, how, _ = _fashion_arrays(data_dir, allow_download, mirrors)
    return folder, how


def check_local_copies(data_dir: str | Path | None = None) -> list[tuple[Path, str | None]]:
    """Verify every local copy: (file, None if it matches the official checksum else the problem).

    With --data-dir / FASHIONBENCH_DATA only that folder is checked, and it must exist and hold
    the four files; otherwise every complete copy among the cache and Debian's folder is checked.
    Raises DataError when there is nothing to check.
    """
    explicit = _explicit_folder(data_dir)
    folders = [explicit] if explicit else [f for f in (cache_dir(), SYSTEM_DIR) if complete_folder(f)]
    if not folders:
        raise DataError(f"no copy of Fashion-MNIST found (looked in {cache_dir()} and {SYSTEM_DIR}). "
                        + OFFLINE_HELP)
    results: list[tuple[Path, str | None]] = []
    for folder in folders:
        for stem, path in complete_folder(folder).items():  # type: ignore[union-attr]
            try:
                load_verified(path, stem)
                results.append((path, None))
            except DataError as e:
                results.append((path, str(e)))
    return results


def _class_file(folder: Path) -> Path | None:
    return next((folder / n for n in CLASS_FILES if (folder / n).is_file()), None)


def read_class_names(folder: Path, num_classes: int, label_source: str = "the labels") -> list[str]:
    """Names from classes.txt (one per line), which must name exactly the `num_classes` the labels
    use (a longer file would silently build a model with extra outputs); else '0', '1', ..."""
    path = _class_file(folder)
    if path is None:
        return [str(i) for i in range(num_classes)]
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read ({e}); make it a readable UTF-8 text file, one class "
                        "name per line") from None
    fix = f"put one class name per line, {num_classes} lines"
    if len(names) < num_classes:
        raise DataError(f"{label_source} has label {num_classes - 1} but {path} names only {len(names)} "
                        f"classes (labels 0..{len(names) - 1}); {fix}")
    if len(names) > num_classes:
        raise DataError(f"{path} has {len(names)} lines but the labels use {num_classes} classes "
                        f"(0..{num_classes - 1}); {fix}")
    return names


def _check_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Shapes the rest of the code relies on: 3-D 28x28 images, 1-D labels, matching non-zero counts."""
    name = {part: find_file(folder, stem) or folder / stem for part, stem in PARTS.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{folder}: {split} images must be 3-D and labels 1-D IDX files; "
                            "check that the files are not swapped")
        if len(images) == 0:
            raise DataError(f"{name[f'{split}_images']}: holds no images; a dataset needs at least one "
                            "train and one test image, get the file again")
        if len(images) != len(labels):
            raise DataError(
                f"{folder}: {split} has {len(images)} images but {len(labels)} labels; "
                "the files do not belong together, get them again"
            )
    train, test = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train != test:
        raise DataError(f"{folder}: train images are {train[0]}x{train[1]} but test images are "
                        f"{test[0]}x{test[1]}; both must be 28x28 (MNIST format), resize them")
    if train != IMAGE_SHAPE:
        raise DataError(f"{name['train_images']}: images are {train[0]}x{train[1]} but the models expect "
                        "28x28 (MNIST format); resize the images to 28x28")


def _class_names(dataset: str, folder: Path, arrays: dict[str, np.ndarray]) -> list[str]:
    """Class names; every label must be one of them."""
    part = max(("train_labels", "test_labels"), key=lambda p: int(arrays[p].max()))
    top = int(arrays[part].max())
    label_file = str(find_file(folder, PARTS[part]))
    if dataset != "fashion-mnist":
        return read_class_names(folder, top + 1, label_file)
    if top >= len(FASHION_CLASSES):
        raise DataError(f"{label_file}: label {top} is outside Fashion-MNIST's classes 0..9; the file is "
                        "corrupt or not Fashion-MNIST, get it again or use --dataset mnist-format")
    return list(FASHION_CLASSES)


def dataset_args(saved: dict, dataset: str | None = None, data_dir: str | None = None) -> tuple[str, str | None]:
    """(dataset, data_dir) for reloading a run's data: the run's own unless told otherwise; another
    dataset than the run's does not inherit the run's folder."""
    saved_name = saved.get("dataset") or "fashion-mnist"
    name = dataset or saved_name
    if data_dir:
        return name, data_dir
    return name, saved.get("data_dir") if name == saved_name else None


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
            raise DataError(_not_a_folder(folder, "--data-dir"))
        log.warning("mnist-format dataset at %s: checksums skipped (only Fashion-MNIST has known ones)", folder)
        arrays = _read_parts(folder, verify=False)
    else:
        folder, how, arrays = _fashion_arrays(data_dir, allow_download, mirrors)
        verify = True
    _check_arrays(folder, arrays)
    names = _class_names(dataset, folder, arrays)
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
