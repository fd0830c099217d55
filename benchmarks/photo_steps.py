"""Real-photo accuracy one step at a time: naive gray-invert-resize, the Fashion-MNIST pipeline,
foreground extraction, the photo recipe, then TTA and an ensemble; top-1 / top-2 / unknown-item
AUROC on each development folder, Fashion-MNIST test accuracy beside it.

    python benchmarks/photo_steps.py --base runs/base60/best.pt --photo runs/photo-s0/best.pt \
        [--photo runs/photo-s1/best.pt] --threads 2

Each folder's photos are converted once per method and reused by every row. A second unknown-item
check scores noise images and drawn digits against Fashion-MNIST test images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fashionbench.data.photos import convert_many
from fashionbench.evaluate.photos import photo_metrics, read_labels
from fashionbench.forward import unknown_scores
from fashionbench.inference import Predictor
from fashionbench.utils import machine_description, set_threads

FOLDERS = ("clothing-validation", "catalogue-dev", "footwear-dev")


def fmnist_accuracy(ckpt: str) -> float | None:
    m = Path(ckpt).parent / "metrics.json"
    return json.loads(m.read_text())["test_accuracy"] if m.is_file() else None


def digits_and_noise(n: int = 500, seed: int = 0) -> np.ndarray:
    """Out-of-distribution 28x28 images: uniform noise, smoothed noise and digits drawn light on black."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n // 3, 28, 28), dtype=np.uint8)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.random((n // 3, 1, 28, 28), np.float32)), 5, 1, 2)[:, 0]
    smooth = (255 * (smooth - smooth.amin((1, 2), keepdim=True)) / (smooth.amax((1, 2), keepdim=True) -
                                                                     smooth.amin((1, 2), keepdim=True))).byte().numpy()
    font = ImageFont.load_default(size=22)
    digits = []
    for i in range(n - 2 * (n // 3)):
        img = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(img).text((6 + rng.integers(-2, 3), 1 + rng.integers(-2, 3)), str(i % 10), fill=255, font=font)
        digits.append(np.asarray(img))
    return np.concatenate([noise, smooth, np.stack(digits)])


def second_check(predictor: Predictor, test_images: torch.Tensor) -> dict:
    from sklearn.metrics import roc_auc_score

    ood = digits_and_noise()
    ind = test_images[:2000]
    z_in, z_out = predictor.predict_logits(ind), predictor.predict_logits(ood)
    s_in, s_out = unknown_scores(z_in, predictor.temperature), unknown_scores(z_out, predictor.temperature)
    y = np.r_[np.zeros(len(ind)), np.ones(len(ood))]
    return {k: float(roc_auc_score(y, np.r_[s_in[k], s_out[k]])) for k in s_in}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="a checkpoint trained without photo augmentations")
    ap.add_argument("--photo", action="append", default=[], help="photo-recipe checkpoint(s); two or more make "
                    "the ensemble row")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "realphotos"))
    ap.add_argument("--method", default="auto", help="the foreground-extraction method of the later rows")
    ap.add_argument("--imagenet-weight", type=float, default=1.0, help="weight of the ImageNet prior row (0: no row)")
    ap.add_argument("--transfer", action="append", default=[], help="checkpoint(s) of an ImageNet transfer model "
                    "(efficientnet_lite0_tl) fine-tuned on Fashion-MNIST: a row alone, and a row added to the photo "
                    "ensemble (with the prior when --imagenet-weight)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    set_threads(args.threads)
    root = Path(args.root)

    def load(ckpt, tta=(), imagenet_weight=0.0):
        return Predictor.from_checkpoint(ckpt, device="cpu", tta=tta, imagenet_weight=imagenet_weight)

    rows = [("naive gray-invert-resize", [load(args.base)], "naive", args.base),
            ("+ Fashion-MNIST pipeline (trim, fit, sharpen, centre, negate)", [load(args.base)], "fmnist", args.base),
            (f"+ foreground extraction ({args.method})", [load(args.base)], args.method, args.base)]
    if args.photo:
        rows.append(("+ photo recipe", [load(args.photo[0])], args.method, args.photo[0]))
        rows.append(("+ TTA (flip + translate)", [load(args.photo[0], ("flip", "translate"))], args.method,
                     args.photo[0]))
        if len(args.photo) > 1:
            rows.append((f"+ ensemble of {len(args.photo)} seeds (mean logits / T)",
                         [load(p, ("flip", "translate")) for p in args.photo], args.method, ",".join(args.photo)))
        if args.imagenet_weight:
            on = f" on the {len(args.photo)}-seed ensemble" if len(args.photo) > 1 else ""
            rows.append((f"+ ImageNet prior{on} (EfficientNet-Lite0 zero-shot, w={args.imagenet_weight:g})",
                         [load(p, ("flip", "translate"), args.imagenet_weight) for p in args.photo], args.method,
                         ",".join(args.photo)))

    for ckpt in args.transfer:
        rows.append((f"transfer model alone ({Path(ckpt).parent.name}, flip TTA)", [load(ckpt, ("flip",))],
                     args.method, ckpt))
    if args.transfer and args.photo:
        w = args.imagenet_weight
        members = [load(p, ("flip", "translate"), w) for p in args.photo] + [load(t, ("flip",), w) for t in args.transfer]
        rows.append((f"photo ensemble + transfer model{f' + ImageNet prior (w={w:g})' if w else ''}", members,
                     args.method, ",".join(args.photo + args.transfer)))

    converted: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, float, list, list]] = {}
    for folder in FOLDERS:
        labelled = read_labels(root / folder / "labels.csv")
        for method in dict.fromkeys(r[2] for r in rows):
            t0 = time.perf_counter()
            batch, conv, problems = convert_many([r.path for r in labelled], method)
            labels = np.array([-1 if r.label is None else r.label for r, c in zip(labelled, conv) if c is not None])
            paths = [r.path for r, c in zip(labelled, conv) if c is not None]
            boxes = [c.box for c in conv if c is not None]
            converted[folder, method] = (batch, labels, 1000 * (time.perf_counter() - t0) / max(1, len(labelled)),
                                         paths, boxes)
            if problems:
                print(f"{folder}/{method}: {len(problems)} unreadable: {problems[:3]}", file=sys.stderr)

    from fashionbench.datasets import load as load_dataset

    test_images = load_dataset(download=False).test_images
    out = []
    print(f"# {machine_description()}, {time.strftime('%Y-%m-%d')}")
    print("| step | " + " | ".join(f"{f} top-1 / top-2 / AUROC" for f in FOLDERS) + " | FMNIST test | digits+noise AUROC |")
    print("|---|" + "---|" * (len(FOLDERS) + 2))
    for name, predictors, method, ckpt in rows:
        cells, rec = [], {"step": name, "method": method, "checkpoints": ckpt}
        t = predictors[0].temperature
        # as predict --ensemble: the members' logits / T averaged, the ImageNet prior computed once
        model = predictors[0] if len(predictors) == 1 else Predictor.ensemble(predictors)
        for folder in FOLDERS:
            batch, labels, ms, paths, boxes = converted[folder, method]
            logits = model.predict_logits(batch, photos=paths, boxes=boxes) / model.temperature
            m = photo_metrics(logits, labels, predictors[0].class_names)  # logits already divided by T
            rec[folder] = {"top1": m["top1_accuracy"], "top2": m["top2_accuracy"], "auroc": m["unknown_auroc"],
                           "ms_per_photo": ms}
            cells.append(f"{100 * m['top1_accuracy']:.1f} / {100 * m['top2_accuracy']:.1f} / "
                         f"{m['unknown_auroc']['msp']:.3f}")
        acc = fmnist_accuracy(predictors[0].info["path"])
        rec["fmnist_test_accuracy"], rec["temperature"] = acc, t
        rec["second_check_auroc"] = second_check(predictors[0], test_images)
        acc_text = "?" if acc is None else f"{100 * acc:.2f}%"
        print(f"| {name} | " + " | ".join(cells) + f" | {acc_text} | {rec['second_check_auroc']['msp']:.3f} |")
        out.append(rec)
    for folder in FOLDERS:
        print(f"conversion {folder}: " + ", ".join(f"{m} {converted[folder, m][2]:.0f} ms/photo"
                                                  for m in dict.fromkeys(r[2] for r in rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
