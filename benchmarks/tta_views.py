"""Test accuracy of trained runs under other sets of test-time augmentation views, and what each costs.

The recipes average 10 views: the image and its mirror, each as is and moved by one pixel in the
four axis directions, black coming in (half the weight on the two unshifted views, as airbench does;
airbench's own 6 views mirror two diagonal shifts, which moves the mirror's shifts to the other
diagonal, and pad by reflection). Here every view's test logits are computed once per run, through
the run's own Predictor (its precision, layout and folded BatchNorms), and combined into each set;
the cost of a set is its number of views, since every view is one forward pass over the test set.

    python benchmarks/tta_views.py runs/default runs/fast-30s-s1 [--threads 2]

A set's accuracy is the mean over the runs given; the `flip+translate` row equals each run's own
test accuracy with TTA (the recipes' setting), which the script checks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import fashionbench
from fashionbench.data.sources import dataset_args, load_dataset
from fashionbench.forward import predict_logits, shift_images
from fashionbench.utils import machine_description

AXES = ((1, 0), (-1, 0), (0, 1), (0, -1))
DIAGONAL = ((1, 1), (-1, -1))
OTHER_DIAGONAL = ((1, -1), (-1, 1))
# name -> (the image's shifts, the mirror's shifts or None for no mirror); the shifted views, where there are
# any, share half the weight and the unshifted ones the other half
VIEW_SETS = {
    "none (1 view)": ((), None),
    "flip (2)": ((), ()),
    "flip+translate: flip x 4 axis shifts (10, the recipes')": (AXES, AXES),
    "2 diagonal shifts, the mirror's on the other diagonal (6, airbench's shifts)": (DIAGONAL, OTHER_DIAGONAL),
    "flip x 2 diagonal shifts (6)": (DIAGONAL, DIAGONAL),
    "flip x the other 2 diagonal shifts (6)": (OTHER_DIAGONAL, OTHER_DIAGONAL),
    "flip x 2 horizontal shifts (6)": (AXES[:2], AXES[:2]),
    "flip x 2 vertical shifts (6)": (AXES[2:], AXES[2:]),
    "flip x 4 axis + 4 diagonal shifts (18)": (AXES + DIAGONAL + OTHER_DIAGONAL,) * 2,
}
RECIPES_SET = "flip+translate: flip x 4 axis shifts (10, the recipes')"


def view_logits(predictor, images: torch.Tensor) -> tuple[dict, float]:
    """{(mirrored, (dx, dy)): test logits} for every view any set uses, and the median seconds of one view."""
    model = predictor.forward_model()
    out, seconds = {}, []
    for mirrored in (False, True):
        base = images.flip(2) if mirrored else images
        for d in ((0, 0),) + AXES + DIAGONAL + OTHER_DIAGONAL:
            t0 = time.perf_counter()
            out[mirrored, d] = predict_logits(model, shift_images(base, *d), normalizer=predictor.normalizer,
                                              precision=predictor.precision, channels_last=predictor.channels_last,
                                              batch_size=predictor.batch_size)
            seconds.append(time.perf_counter() - t0)
    return out, statistics.median(seconds)


def combine(logits: dict, shifts: tuple, mirror_shifts: tuple | None) -> torch.Tensor:
    """The views' logits averaged in `tta_forward`'s order and weighting."""
    mean = lambda keys: sum(logits[k] for k in keys) / len(keys)
    per_base = {False: shifts} if mirror_shifts is None else {False: shifts, True: mirror_shifts}
    unshifted = mean([(m, (0, 0)) for m in per_base])
    shifted = [(m, d) for m, ds in per_base.items() for d in ds]
    return 0.5 * unshifted + 0.5 * mean(shifted) if shifted else unshifted


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders or checkpoints")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    acc = {name: [] for name in VIEW_SETS}
    view_seconds = []
    for run in args.runs:
        p = fashionbench.load(run)
        ds = load_dataset(*dataset_args(p.info.get("config") or {}, None, None))
        logits, seconds = view_logits(p, ds.test_images.to(p.device))
        view_seconds.append(seconds)
        for name, sets in VIEW_SETS.items():
            acc[name].append((combine(logits, *sets).argmax(1) == ds.test_labels).float().mean().item())
        own = (p.predict_logits(ds.test_images).argmax(1) == ds.test_labels).float().mean().item() \
            if p.tta == ["flip", "translate"] else None
        if own is not None and own != acc[RECIPES_SET][-1]:
            print(f"{run}: the recipes' set gives {100 * acc[RECIPES_SET][-1]:.2f}% here but the Predictor "
                  f"{100 * own:.2f}%", file=sys.stderr)
            return 1
        print(f"{run}: " + ", ".join(f"{100 * a[-1]:.2f}" for a in acc.values()), flush=True)
    print(f"\n{machine_description()}; one view over the test set: a median "
          f"{statistics.median(view_seconds):.2f} s\n")
    print("| views | forward passes | test % per run | mean |")
    print("|---|---|---|---|")
    for name, (shifts, mirror_shifts) in VIEW_SETS.items():
        passes = 1 + len(shifts) + (0 if mirror_shifts is None else 1 + len(mirror_shifts))
        runs = " / ".join(f"{100 * a:.2f}" for a in acc[name])
        print(f"| {name} | {passes} | {runs} | {100 * statistics.mean(acc[name]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
