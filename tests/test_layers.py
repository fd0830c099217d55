"""The import direction of shared/DESIGN.md: cli -> serve/experiments -> train/evaluate/inference -> models/data.

Checked on the source, at module level and inside functions alike, so a lazy import cannot hide a loop."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fashionbench"

# What each part may not import (besides itself): lower layers never reach up.
FORBIDDEN = {
    "data": {"models", "train", "evaluate", "experiments", "cli", "inference", "api", "checkpoint", "runs", "serve",
             "onnx_file"},
    "models": {"train", "evaluate", "experiments", "cli", "inference", "api", "runs", "serve", "onnx_file"},
    "checkpoint": {"train", "evaluate", "experiments", "cli", "inference", "api", "serve", "onnx_file"},
    "runs": {"data", "models", "train", "evaluate", "experiments", "cli", "inference", "api", "checkpoint", "serve",
             "onnx_file", "run_lock"},
    "run_lock": {"data", "models", "train", "evaluate", "experiments", "cli", "inference", "api", "checkpoint",
                 "serve", "onnx_file"},
    "onnx_file": {"data", "models", "train", "evaluate", "experiments", "cli", "inference", "api", "checkpoint",
                  "runs", "serve"},
    "inference": {"train", "evaluate", "experiments", "cli", "api", "serve"},
    "evaluate": {"train", "experiments", "cli", "api", "serve"},
    "train": {"experiments", "cli", "api", "serve"},
    "experiments": {"cli", "api", "serve"},
    "serve": {"cli", "api", "experiments"},
    "api": {"cli"},
}


def imported_parts(path: Path) -> set[str]:
    """Top-level fashionbench parts a module imports (relative and absolute imports)."""
    rel = path.relative_to(SRC).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # `from .. import x`: x is a part itself
                    out.update(a.name for a in node.names)
                else:
                    out.add(target[0])
            elif node.module and node.module.startswith("fashionbench."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("fashionbench."))
    return out


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path):
    part = path.relative_to(SRC).with_suffix("").parts[0]
    bad = imported_parts(path) & FORBIDDEN.get(part, set())
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}, against the layering in shared/DESIGN.md"


def test_no_issue_numbers_in_code():
    import re

    hits = [f"{p.relative_to(SRC)}:{i}" for p in MODULES for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"\bissue\s*#?\d+", line, re.IGNORECASE)]
    assert not hits, hits
