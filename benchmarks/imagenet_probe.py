"""A linear head on EfficientNet-Lite0's ImageNet features, fitted on Fashion-MNIST, tried on real photos.

The zero-shot prior (`models/imagenet_prior.py`) can only say what ImageNet's categories say (no
shirt). This asks whether a head that learns the ten classes from ImageNet features can: logistic
regression on the 1280-d pooled features of --train-images Fashion-MNIST training images, rendered
as the photos' domain would show them (dark item on white, 3 channels, bicubic to 224 px, one
white pixel of margin), then applied to each development photo's features seen three ways:
the colour square around the item (what the prior sees), the same in gray, and the photo's 28x28
conversion rendered like the training images. Printed per folder: top-1 over the labelled photos
of each view alone, and of the photo ensemble + prior (what `predict --imagenet-prior` does)
with the head's log-probabilities added at weight 0.5, with the AUROC of 1 - max probability.

    .venv/bin/python benchmarks/imagenet_probe.py --checkpoint runs/photo-s0/best.pt \
        --checkpoint runs/photo-s1/best.pt [--train-images 12000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

FOLDERS = ("clothing-validation", "catalogue-dev", "footwear-dev")
VIEWS = ("colour", "gray", "conversion")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", help="a photo net's checkpoint; repeat for an ensemble")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "realphotos"))
    ap.add_argument("--train-images", type=int, default=12000, help="Fashion-MNIST training images for the head")
    ap.add_argument("--C", type=float, default=0.01, help="inverse L2 strength of the logistic regression")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    args.checkpoint = args.checkpoint or ["runs/photo-s0/best.pt"]
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from fashionbench.data.photos import convert_many, load_image
    from fashionbench.data.sources import load_dataset
    from fashionbench.evaluate.photos import read_labels
    from fashionbench.forward import ensemble_logits
    from fashionbench.inference import Predictor
    from fashionbench.models.efficientnet_lite import MEAN, STD
    from fashionbench.models.imagenet_prior import IMAGE_SIZE, ImageNetPrior, imagenet_preprocess, item_view

    torch.set_num_threads(args.threads)
    prior = ImageNetPrior(device="cpu")
    predictors = [Predictor.from_checkpoint(c, device="cpu") for c in args.checkpoint]

    @torch.no_grad()
    def features(x: torch.Tensor) -> np.ndarray:
        out = [np.zeros((0, 1280), np.float32)]
        for i in range(0, len(x), 128):
            with torch.autocast("cpu", torch.bfloat16):
                out.append(prior.model.features(x[i:i + 128].contiguous(memory_format=torch.channels_last)).float().numpy())
        return np.concatenate(out)

    def render(u8: torch.Tensor) -> torch.Tensor:  # (N, 28, 28) light on black -> the photo domain's polarity
        x = F.pad(255.0 - u8.float()[:, None], (1, 1, 1, 1), value=255.0)
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=False).clamp(0, 255)
        return ((x - MEAN) / STD).expand(-1, 3, -1, -1)

    ds = load_dataset()
    idx = torch.randperm(len(ds.train_labels), generator=torch.Generator().manual_seed(0))[:args.train_images]
    start = time.perf_counter()
    f_train = np.concatenate([features(render(ds.train_images[idx[i:i + 1000]])) for i in range(0, len(idx), 1000)])
    f_test = np.concatenate([features(render(ds.test_images[i:i + 1000])) for i in range(0, len(ds.test_labels), 1000)])
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
    head = LogisticRegression(C=args.C, max_iter=2000).fit((f_train - mu) / sd, ds.train_labels[idx].numpy())
    test_acc = (head.predict((f_test - mu) / sd) == ds.test_labels.numpy()).mean()
    print(f"head: {len(idx)} training images, C {args.C}, Fashion-MNIST test {100 * test_acc:.2f}%, "
          f"{time.perf_counter() - start:.0f} s (features + fit)")
    print(f"{'folder':20s} top-1 %: " + " ".join(f"{v:>10s}" for v in VIEWS)
          + f" {'ens+prior':>10s} " + " ".join(f"{'+' + v:>11s}" for v in VIEWS) + "   (AUROC after /)")
    for folder in FOLDERS:
        rows = read_labels(Path(args.root) / folder / "labels.csv")
        paths = [r.path for r in rows]
        y = np.array([-1 if r.label is None else r.label for r in rows])
        lab = y >= 0
        batch, converted, _ = convert_many(paths, predictors[0].photo_method)
        photos = [load_image(p) for p in paths]
        boxes = [c.box for c in converted]
        views = [item_view(im, b) for im, b in zip(photos, boxes)]
        head_logp = {
            "colour": torch.stack([imagenet_preprocess(v) for v in views]),
            "gray": torch.stack([imagenet_preprocess(v.convert("L")) for v in views]),
            "conversion": render(torch.from_numpy(batch)),
        }
        head_logp = {k: head.predict_log_proba((features(x) - mu) / sd) for k, x in head_logp.items()}
        net = torch.log_softmax(ensemble_logits([p.predict_logits(batch) / p.temperature for p in predictors]), 1)
        base = net.double().numpy() + prior(photos, boxes)

        def score(logp: np.ndarray, y: np.ndarray = y, lab: np.ndarray = lab) -> str:
            logp = torch.log_softmax(torch.as_tensor(logp), 1).numpy()
            top1 = 100 * (logp.argmax(1)[lab] == y[lab]).mean()
            return f"{top1:5.1f}/{roc_auc_score(~lab, -logp.max(1)):.3f}"

        alone = " ".join(f"{100 * (head_logp[v].argmax(1)[lab] == y[lab]).mean():10.1f}" for v in VIEWS)
        print(f"{folder:20s}          {alone} {score(base):>10s} "
              + " ".join(f"{score(base + 0.5 * head_logp[v]):>11s}" for v in VIEWS))


if __name__ == "__main__":
    main()
