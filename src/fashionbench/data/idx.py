"""Reader and writer for the IDX format used by MNIST and Fashion-MNIST (optionally gzipped)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils import atomic_write_bytes

# Third byte of the magic number names the element type; we only need unsigned bytes.
_UBYTE = 0x08


def read_bytes(path: str | Path) -> bytes:
    """Return the decompressed content of `path` (.gz or raw), with clear errors for bad gzip."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a data file; put the IDX file itself there") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable (chmod a+r {path}) "
                        "or copy the data to a folder you can read") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); check the file and the disk, "
                        "or get the file again") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(
                f"{path}: the gzip file is truncated or corrupt ({e}); delete it and get the file again"
            ) from None
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking magic number and size."""
    if len(data) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(data)} bytes); get the file again")
    zero1, zero2, dtype, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or dtype != _UBYTE or ndim not in (1, 3):
        raise DataError(
            f"{name}: wrong magic number 0x{data[:4].hex()} (expected 0x00000801 for labels or "
            "0x00000803 for images); this is not an MNIST-format IDX file"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: header is truncated; get the file again")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # Python ints: a forged 0xFFFFFFFF^3 header cannot overflow
    if len(data) - header != expected:
        raise DataError(
            f"{name}: holds {len(data) - header} data bytes but its header promises {expected} "
            f"(shape {shape}); the file is truncated or corrupt, get it again"
        )
    try:
        return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    except ValueError:  # e.g. (2**32-1, 2**32-1, 0): zero bytes, but more elements per axis than NumPy allows
        raise DataError(f"{name}: header shape {shape} is impossible; the file is corrupt, get it again") from None


def read_idx(path: str | Path) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim not in (1, 3):
        raise ValueError("IDX arrays here are 1-D labels or 3-D images")
    header = bytes([0, 0, _UBYTE, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` atomically; gzip when the name ends in .gz (or `compress` says so)."""
    path = Path(path)
    data = encode_idx(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
