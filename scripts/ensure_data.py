"""`make run`'s first step: make sure Fashion-MNIST is on this machine (see fashionbench/data/ensure.py).

Loads ensure.py by file path rather than importing it: the package import pulls in torch
(seconds), and when a copy is already present this step should cost milliseconds.
"""

import importlib.util
import sys
from pathlib import Path

path = Path(__file__).resolve().parents[1] / "src" / "fashionbench" / "data" / "ensure.py"
spec = importlib.util.spec_from_file_location("fashionbench_ensure", path)
ensure = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ensure)
sys.exit(ensure.main())
