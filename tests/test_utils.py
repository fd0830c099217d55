import platform

import torch

from fashionbench.utils import machine_description


def test_machine_description_names_architecture_and_threads():
    text = machine_description()
    assert text.startswith(platform.machine())
    assert text.endswith(f", {torch.get_num_threads()} threads")
    assert "  " not in text  # no gap where the CPU name is unknown
