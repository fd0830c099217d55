import platform

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
