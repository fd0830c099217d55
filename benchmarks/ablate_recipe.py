"""Ablation of the default recipe: take one ingredient away at a time, measure test accuracy
and time (training + TTA) on this machine, all in one invocation.

    python benchmarks/ablate_recipe.py --recipe fast-60s --seeds 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from fashionbench.data.sources import load_dataset
from fashionbench.train.config import resolve_config
from fashionbench.train.run import train_run
from fashionbench.utils import machine_description

# name -> (what is taken away, config changes)
VARIANTS = {
    "recipe": ("nothing (the full recipe)", {}),
    "no-whitening": ("patch whitening (first layer starts random and trains)",
                     {"model_args": {"whiten_init": False}}),
    "trained-whitening": ("fixed whitening filters (they train from the whitening init)",
                          {"model_args": {"train_whiten_weight": True}}),
    "no-lookahead": ("lookahead EMA of the weights", {"lookahead": False}),
    "no-label-smoothing": ("label smoothing 0.2", {"label_smoothing": 0.0}),
    "no-bias-lr-scale": ("64x lr on biases", {"bias_lr_scale": 1.0}),
    "no-translate": ("translate augmentation", {"augment": ["flip"]}),
    "no-augment": ("all augmentation", {"augment": []}),
    "random-flip": ("the alternating flip (a random flip instead)",
                    lambda cfg: {"augment": ["flip" if a == "alternating-flip" else a for a in cfg.augment]}),
    "alternating-flip": ("the random flip (the alternating flip instead)",
                         lambda cfg: {"augment": ["alternating-flip" if a == "flip" else a for a in cfg.augment]}),
    "tta-flip-only": ("the 1-pixel-shift TTA views", {"tta": ["flip"]}),
    "no-tta": ("all test-time augmentation", {"tta": []}),
    "fp32": ("bf16 autocast (fp32 instead)", {"precision": "fp32"}),
    "cosine": ("linear decay (cosine instead)", {"schedule": "cosine"}),
    # progressive resizing; the ramp's end scales with the recipe's epochs
    "progressive-16": ("full-size images throughout (16 px growing to 28 over the first 70% of the epochs)",
                       lambda cfg: {"resize_min": 16, "resize_end": round(0.7 * cfg.epochs)}),
    "progressive-20": ("full-size images throughout (20 px growing to 28 over the first half of the epochs)",
                       lambda cfg: {"resize_min": 20, "resize_end": round(0.5 * cfg.epochs)}),
    "progressive-16-late": ("full-size images throughout (16 px for about the first half of the epochs, growing to "
                            "28 by about three quarters of them)",
                            lambda cfg: {"resize_min": 16, "resize_start": round(0.375 * cfg.epochs),
                                         "resize_end": round(0.75 * cfg.epochs)}),
    # the first conv group's width: on the stride-1 stem its 27x27 maps are the step's costliest part
    **{f"first-width-{w}": (f"the first group's width ({w} instead)",
                            lambda cfg, w=w: {"model_args": {"widths": [w, *cfg.model_args["widths"][1:]]}})
       for w in (16, 24, 32, 48, 64)},
    # leaving well-learned images out of the middle epochs (InfoBatch), and taking the skipping away
    **{f"skip-easy-{k:g}": (f"every image in every epoch (skipping {k:g} of them, the well-learned, in the middle "
                            "epochs)", {"skip_easy": k}) for k in (0.25, 0.35, 0.5)},
    "no-skip-easy": ("skipping well-learned images in the middle epochs", {"skip_easy": 0.0}),
    # shorter schedules (resolve_config scales the warmup with the epochs, as `train --epochs` does)
    **{f"epochs-{e}": (f"the recipe's epochs ({e} instead)", {"epochs": e}) for e in (5, 6, 7, 8, 9, 10)},
    # more steps per epoch; lr and weight decay scaled with the batch as the recipes scale them
    **{f"batch-{b}": (f"the recipe's batch size ({b} instead)", lambda cfg, b=b: _batch(cfg, b)) for b in (256, 512)},
    # Muon on the conv filters (SGD keeps the head and the vectors); defaults filter lr 0.06, momentum 0.85
    "muon": ("SGD on the conv filters (Muon instead)", {"optimizer": "muon"}),
    "sgd": ("Muon on the conv filters (SGD instead, the recipe's momentum and weight decay)", {"optimizer": "sgd"}),
    "muon-airbench": ("SGD on the conv filters (Muon at airbench's filter lr 0.24 and momentum 0.6)",
                      {"optimizer": "muon", "filter_lr": 0.24, "filter_momentum": 0.6}),
    **{f"muon-lr{lr:g}": (f"SGD on the conv filters (Muon, filter lr {lr:g})", {"optimizer": "muon", "filter_lr": lr})
       for lr in (0.04, 0.09, 0.12)},
    "muon-no-warmup": ("SGD on the conv filters and the warmup (Muon, linear decay from the first step)",
                       {"optimizer": "muon", "warmup_epochs": 0.0}),
    "muon-no-lookahead": ("SGD on the conv filters and the lookahead EMA (Muon without it, as airbench has it)",
                          {"optimizer": "muon", "lookahead": False}),
}


def _batch(cfg, batch_size: int) -> dict:
    f = batch_size / cfg.batch_size
    return {"batch_size": batch_size, "lr": cfg.lr * f, "weight_decay": cfg.weight_decay / f}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="fast-60s")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="default: all")
    ap.add_argument("--epochs", type=int, help="every variant with this many epochs (the warmup keeps its share)")
    args = ap.parse_args(argv)
    ds = load_dataset(allow_download=False)
    base = resolve_config(recipe=args.recipe, overrides={"epochs": args.epochs})
    print(f"machine: {machine_description()}, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"command: python benchmarks/ablate_recipe.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    print(f"| variant of {args.recipe} | taken away | test accuracy % | train s | TTA s | total s |")
    print("|---|---|---|---|---|---|")
    for name in args.variants or list(VARIANTS):
        what, changes = VARIANTS[name]
        changes = changes(base) if callable(changes) else changes
        cfg = resolve_config(recipe=args.recipe, overrides={"epochs": args.epochs, **changes})
        accs, train_s, tta_s = [], [], []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                m = train_run(cfg.replace(seed=seed, device="cpu"), Path(tmp) / "run", dataset=ds).metrics
            accs.append(100 * m["test_accuracy"])
            train_s.append(m["train_seconds"])
            tta_s.append(m["test_seconds"])
        sd = f" +- {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        print(f"| {name} | {what} | {statistics.mean(accs):.2f}{sd} | {statistics.median(train_s):.1f} | "
              f"{statistics.median(tta_s):.1f} | {statistics.median(train_s) + statistics.median(tta_s):.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
