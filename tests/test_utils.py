import platform
import subprocess
import sys

import pytest
import torch

from fashionbench.utils import machine_description


def test_machine_description_names_architecture_and_threads():
    text = machine_description()
    assert text.startswith(platform.machine())
    assert text.endswith(f", {torch.get_num_threads()} threads")
    assert "  " not in text  # no gap where the CPU name is unknown


def test_machine_description_tells_cpu_kinds_apart(monkeypatch):
    """Two CPUs sold under one name, 1.7x apart, differ in family/model and in their widest vector unit."""
    import fashionbench.utils as utils

    zen4 = {"model name": "AMD EPYC", "cpu family": "25", "model": "17", "flags": "fpu avx2 avx512f avx512_bf16"}
    monkeypatch.setattr(utils, "_cpuinfo", lambda: zen4)
    assert "AMD EPYC (family 25, model 17, AVX512-BF16), " in machine_description()
    monkeypatch.setattr(utils, "_cpuinfo", lambda: {**zen4, "model": "1", "flags": "fpu avx2"})
    assert "AMD EPYC (family 25, model 1, AVX2), " in machine_description()
    monkeypatch.setattr(utils, "_cpuinfo", lambda: {})  # no /proc/cpuinfo: no empty brackets
    assert "(" not in machine_description()


# In a child process, since the setting is process-wide. glibc's mallinfo2: hblks counts the chunks
# that are mappings of their own; fordblks is the free memory the heap holds, not given back.
_GLIBC_STATE = """
import ctypes, sys, torch
from fashionbench.utils import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    keep_freed_memory()
elif sys.argv[1] == "predictor":  # what inference does: a CPU Predictor sets it up
    from fashionbench.data.normalize import Normalization
    from fashionbench.inference import Predictor
    from fashionbench.models import create_model
    Predictor.from_model(create_model("mlp_002"), Normalization("standardize", 0.286, 0.353),
                         [str(i) for i in range(10)], device="cpu", precision="fp32")
before = libc.mallinfo2().hblks
x = torch.empty(512, 64, 27, 27, dtype=torch.bfloat16)  # 48 MB, a fast-8m activation
mapped, size, held = libc.mallinfo2().hblks - before, x.nbytes, libc.mallinfo2().fordblks
del x
print(mapped, libc.mallinfo2().fordblks - held, size)
"""


LIBC, LIBC_VERSION = platform.libc_ver()


@pytest.mark.skipif(LIBC != "glibc" or tuple(int(v) for v in LIBC_VERSION.split(".")[:2]) < (2, 33),
                    reason="keep_freed_memory tunes glibc's malloc; mallinfo2 is glibc 2.33 or later")
def test_keep_freed_memory_serves_large_buffers_from_the_heap_and_keeps_them():
    def state(mode: str) -> tuple[int, ...]:
        out = subprocess.run([sys.executable, "-c", _GLIBC_STATE, mode], capture_output=True, text=True,
                             check=True, timeout=120)
        return tuple(int(v) for v in out.stdout.split())

    mapped, kept, size = state("default")
    assert mapped >= 1 and kept < size  # a mapping of its own, returned to the kernel when freed
    mapped, kept, size = state("keep")
    assert mapped == 0 and kept >= size  # from the heap, and still there for the next step
    mapped, kept, size = state("predictor")
    assert mapped == 0 and kept >= size  # building a CPU Predictor sets it up too: inference gains as much
