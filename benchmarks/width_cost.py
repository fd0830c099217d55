"""What a training step costs for each set of conv-group widths, next to the FLOPs it does.

For each recipe: its network with the widths given (the recipe's own first), optimizer (Muon where
the recipe has it) and layout as `train` builds them (`setup_run`), one batch of the real training
images, and the median seconds of a forward + backward + optimizer step. The width sets are
interleaved round by round, so they share the machine's noise; the ratio to the recipe's own
widths is the figure to read. FLOPs are one image's forward (`torch.utils.flop_counter`).

    python benchmarks/width_cost.py --recipe fast-90s --widths 24,64,96 16,64,96 32,64,96 --rounds 5
"""

from __future__ import annotations

import argparse
import sys

from _synthetic import first_batch_step, flops, interleaved_medians, setup_layout
from fashionbench.train.recipes import recipe_train_config
from fashionbench.train.run import setup_run
from fashionbench.utils import machine_description


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths are comma-separated integers such as 24,64,96, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def width_costs(recipe: str, width_sets: list[tuple[int, ...]], rounds: int):
    """(layout, {widths: median s per step}, {widths: forward MFLOP per image}) for one recipe."""
    base = recipe_train_config(recipe)
    steps, mflop, layout = {}, {}, ""
    for widths in width_sets:
        s = setup_run(base.replace(model_args={**base.model_args, "widths": list(widths)}))
        steps[widths], x = first_batch_step(s)
        steps[widths]()  # warm-up: oneDNN builds its kernels for each shape
        mflop[widths] = flops(s.model.eval(), x[:1], False) / 1e6
        s.model.train()
        layout = setup_layout(s)
    return layout, interleaved_medians(steps, rounds), mflop


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fast-90s")
    ap.add_argument("--widths", type=_widths, nargs="+", default=[(24, 64, 96), (16, 64, 96), (32, 64, 96)],
                    help="width sets such as 24,64,96; the recipe's own are added first when missing")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    own = tuple(recipe_train_config(args.recipe).model_args["widths"])
    width_sets = [own, *[w for w in dict.fromkeys(args.widths) if w != own]]
    print(f"machine: {machine_description()}")
    print(f"command: python benchmarks/width_cost.py {' '.join(sys.argv[1:] if argv is None else argv)}\n")
    layout, med, mflop = width_costs(args.recipe, width_sets, args.rounds)
    print(f"`{args.recipe}`, {layout}\n")
    print("| widths | MFLOP per image forward | ms per step | x the recipe's |")
    print("|---|---|---|---|")
    for widths in width_sets:
        print(f"| {'/'.join(map(str, widths))}{' (the recipe)' if widths == own else ''} | {mflop[widths]:.1f} | "
              f"{1000 * med[widths]:.0f} | {med[widths] / med[own]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
