"""What a training step costs at each image side, the saving progressive resizing can buy.

For each recipe: its network, optimizer (Muon where the recipe has it) and layout as `train` builds
them (`setup_run`, the probe's precision and memory format), one batch of the real training
images resized as `--resize-min` resizes them (`engine.prepare`), and the median seconds of a
forward + backward + optimizer step at each side. The sides are interleaved round by round, so
they share the machine's noise; the ratio to the full 28 px is the figure to read.

    python benchmarks/side_cost.py --recipes fast-90s fast-8m --rounds 5
"""

from __future__ import annotations

import argparse
import sys

from _synthetic import first_batch_step, interleaved_medians, setup_layout
from fashionbench.train.recipes import recipe_train_config
from fashionbench.train.run import setup_run
from fashionbench.utils import machine_description


def side_costs(recipe: str, sides: list[int], rounds: int) -> tuple[str, dict[int, float]]:
    cfg = recipe_train_config(recipe)
    s = setup_run(cfg)
    steps = {side: first_batch_step(s, size=side)[0] for side in sides}
    for step in steps.values():  # warm-up: oneDNN builds its kernels for each shape
        step()
    return setup_layout(s), interleaved_medians(steps, rounds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["fast-90s", "fast-8m"])
    ap.add_argument("--sides", type=int, nargs="+", default=[28, 24, 20, 16])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    full = max(args.sides)
    print(f"machine: {machine_description()}")
    print(f"command: python benchmarks/side_cost.py {' '.join(sys.argv[1:])}\n")
    print("| recipe | layout | " + " | ".join(f"{side} px: ms per step (x {full} px)" for side in args.sides) + " |")
    print("|---|---|" + "---|" * len(args.sides))
    for recipe in args.recipes:
        layout, med = side_costs(recipe, args.sides, args.rounds)
        cells = [f"{1000 * med[side]:.0f} ({med[side] / med[full]:.2f}x)" for side in args.sides]
        print(f"| `{recipe}` | {layout} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
