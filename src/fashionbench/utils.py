"""Small shared helpers: atomic writes, seeding, device and precision choice."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("fashionbench")

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the same folder; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


STALE_TEMP_SECONDS = 3600.0


def remove_stale_temporaries(folder: Path, max_age_s: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete atomic-write leftovers (`.NAME.XXXX.tmp`) older than `max_age_s` in `folder`.

    A crash between writing a temp file and renaming it leaves one behind. Younger temps are
    kept: a concurrent download may be writing one right now. Returns the paths removed.
    """
    removed = []
    cutoff = time.time() - max_age_s
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except OSError as e:  # gone already (another cleaner) or not ours to delete: leave it
            log.debug("left %s in place: %s", tmp, e)
    for tmp in removed:
        log.info("removed stale temporary file %s", tmp)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def seed_everything(seed: int) -> None:
    """One seed drives Python's random, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    return info


# the widest matrix / vector extension decides how fast a conv net trains (and whether bf16 pays)
_CPU_FEATURES = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"), ("avx2", "AVX2"))


def machine_description() -> str:
    """CPU model, family/model numbers, widest vector unit and torch threads, e.g. 'x86_64 AMD EPYC
    (family 25, model 17, AVX2), 2 threads': timings differ between the machines a project runs on
    (one marketing name covers CPUs 1.7x apart), so every result says where it was measured."""
    info = _cpuinfo()
    cpu = info.get("model name") or platform.processor() or ""
    flags = set(info.get("flags", "").split())
    detail = [f"family {info['cpu family']}, model {info['model']}"] if "cpu family" in info and "model" in info else []
    detail += [label for flag, label in _CPU_FEATURES if flag in flags][:1]
    text = f"{platform.machine()} {cpu}".strip() + (f" ({', '.join(detail)})" if detail else "")
    return text + f", {torch.get_num_threads()} threads"


def resolve_device(name: str = "auto") -> torch.device:
    from .errors import ConfigError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; choose one of auto, cpu, cuda, mps")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix units (AMX-BF16 or AVX512-BF16)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return "amx_bf16" in flags or "avx512_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """True where the device computes bf16 in hardware (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_fast_bf16()


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' picks bf16 where the hardware runs it natively, else fp32."""
    from .errors import ConfigError

    if name not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {name!r}; choose one of auto, fp32, bf16")
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


# glibc's trim threshold while freed memory is kept: the largest C int (mallopt takes an int)
KEEP_FREED_TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> None:
    """Have glibc keep freed memory for reuse instead of handing it back to the kernel (process-wide,
    idempotent; what MALLOC_MMAP_MAX_=0 and a large MALLOC_TRIM_THRESHOLD_ do from a process's start).

    PyTorch's CPU allocator does not cache: every activation over glibc's mmap threshold is a fresh
    mapping whose pages fault in zeroed on every step, 16 M page faults and a quarter of the CPU time
    in the kernel for one `fast-8m` epoch (BENCHMARKS.md). The process keeps its peak memory
    instead, as with jemalloc or tcmalloc. Called by `train_run` and by every CPU `Predictor` (batch-1024
    inference ran at half speed without it). No-op where the C library is not glibc."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]  # an int: 1 << 34 would wrap to 0, "trim always"
    m_trim_threshold, m_mmap_max = -1, -4
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, KEEP_FREED_TRIM_THRESHOLD)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads (None keeps torch's choice, one per core)."""
    from .errors import ConfigError

    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--threads must be a whole number of at least 1, got {threads!r}")
    torch.set_num_threads(threads)
