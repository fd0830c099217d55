"""Real photo -> 28x28 preprocessing: accuracy of a checkpoint on the real-photo development sets.

For each folder (clothing-validation, catalogue-dev, footwear-dev; labels.csv: path,source_class,
fmnist_label, an empty label = none of the ten classes) every photo is converted with each method;
top-1 / top-2 accuracy over the labelled photos and milliseconds per photo (load + convert) are printed.

    .venv/bin/python benchmarks/photo_preprocessing.py --checkpoint runs/base60/best.pt
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

FOLDERS = ("clothing-validation", "catalogue-dev", "footwear-dev")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/base60/best.pt")
    ap.add_argument("--methods", default="all", help="comma-separated, or 'all' (default)")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "realphotos"),
                    help="folder holding the three photo sets (default ../shared/realphotos)")
    ap.add_argument("--folders", default=",".join(FOLDERS))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch

    from fashionbench.data import photos
    from fashionbench.evaluate.photos import photo_metrics, read_labels
    from fashionbench.inference import Predictor

    torch.set_num_threads(args.threads)
    methods = list(photos.METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    for m in methods:
        photos.check_method(m)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    print(f"checkpoint {args.checkpoint}  tta {predictor.tta}  threads {args.threads}")
    print(f"{'folder':20s} {'method':10s} {'n':>4s} {'top-1':>6s} {'top-2':>6s} {'ms/photo':>8s}  used")
    for folder in args.folders.split(","):
        base = Path(args.root) / folder
        rows = read_labels(base / "labels.csv")
        paths = [r.path for r in rows]
        labels = np.array([-1 if r.label is None else r.label for r in rows])
        for method in methods:
            start = time.perf_counter()
            stack, results, problems = photos.convert_many(paths, method)
            ms = (time.perf_counter() - start) * 1000 / max(1, len(paths))
            y = labels[np.array([r is not None for r in results])]
            m = photo_metrics(predictor.predict_logits(stack), y, predictor.class_names)
            lab, top1, top2 = y >= 0, 100 * m["top1_accuracy"], 100 * m["top2_accuracy"]
            used = sorted({r.method for r in results if r is not None})
            print(f"{folder:20s} {method:10s} {int(lab.sum()):4d} {top1:6.1f} {top2:6.1f} {ms:8.1f}  {','.join(used)}"
                  + (f"  ({len(problems)} failed: {problems[0][1]})" if problems else ""), flush=True)


if __name__ == "__main__":
    main()
