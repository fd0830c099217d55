"""Does `torch.compile` pay for a training step on this CPU, whole-model or piece by piece?

For each recipe, three setups as `train` builds them (`setup_run`: network, optimizer, the probe's
precision and memory format) on one batch of real training images:

  * eager: the network as `train` runs it;
  * whole: `model.compile()` (inductor), the whole network one graph;
  * per group: each conv group (conv, pool, BatchNorm, GELU, conv, BatchNorm, GELU) compiled on its
    own, the stem and head eager: smaller graphs, where inductor fuses the memory-bound operators
    around oneDNN's convolutions.

The first steps (compilation included) are timed apart; then the three are timed round by round,
so they share the noise.

    python benchmarks/compile_step.py --recipes fast-30s fast-90s --rounds 8
"""

from __future__ import annotations

import argparse
import sys
import time

from _synthetic import first_batch_step, interleaved_medians, setup_layout
from fashionbench.train.recipes import recipe_train_config
from fashionbench.train.run import setup_run
from fashionbench.utils import machine_description


def compile_whole(model) -> None:
    model.compile()


def compile_groups(model) -> None:
    for group in model.groups:
        group.compile()


WAYS = {"eager": None, "whole": compile_whole, "per group": compile_groups}


def compare(recipe: str, rounds: int) -> tuple[str, dict[str, float], dict[str, float]]:
    cfg = recipe_train_config(recipe)
    steps, first = {}, {}
    for name, way in WAYS.items():
        s = setup_run(cfg)  # its own network and optimizer, the same seed
        if way is not None:
            way(s.model)
        steps[name], _ = first_batch_step(s)
        t = time.perf_counter()
        for _ in range(2):  # compilation (forward and backward graphs), then oneDNN's kernels
            steps[name]()
        first[name] = time.perf_counter() - t
    return setup_layout(s), first, interleaved_medians(steps, rounds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["fast-30s", "fast-90s"])
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args(argv)
    print(f"machine: {machine_description()}")
    print(f"command: python benchmarks/compile_step.py {' '.join(sys.argv[1:])}\n")
    print("| recipe | layout | way | first 2 steps s (compilation) | ms per step, median | x eager |")
    print("|---|---|---|---|---|---|")
    for recipe in args.recipes:
        layout, first, med = compare(recipe, args.rounds)
        for name in WAYS:
            print(f"| `{recipe}` | {layout} | {name} | {first[name]:.1f} | {1000 * med[name]:.0f} | "
                  f"{med[name] / med['eager']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
