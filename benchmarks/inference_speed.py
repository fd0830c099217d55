"""Inference speed of the default model through the Python API (`fashionbench.load(...).predict_logits`):
latency of one image (batch 1) and throughput at batch 1024, one view and with the recipe's TTA,
per precision / memory format and per thread count.

    python benchmarks/inference_speed.py [--checkpoint runs/default/best.pt] --seconds 2

Without a checkpoint a freshly built `fast-60s` network is timed (the weights do not change the
speed). `auto` is what `load` picks by default: the layout probe's choice for this machine, at the
batch and, where it differs, for one image. Predictions fold the BatchNorms into the convs;
`--fold-rounds N` then times that against the model with its BatchNorms kept, in N interleaved
rounds (the two share the machine's noise; the per-round ratio is the figure to read).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from fashionbench.data.normalize import Normalization
from fashionbench.inference import Predictor
from fashionbench.models.registry import create_model
from fashionbench.train.recipes import recipe_train_config
from fashionbench.utils import cpu_has_fast_bf16, machine_description


def timings(fn, seconds: float, min_calls: int = 5) -> list[float]:
    fn(), fn()
    out, start = [], time.perf_counter()
    while len(out) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fold_ab(args, x1, x1024, rounds: int) -> None:
    """The chosen layout with the BatchNorms folded (as predictions run) and kept, round by round."""
    kinds = {"folded": True, "BatchNorm kept": False}
    cases = {"batch 1, one view": (x1, (), 100), "batch 1024, one view": (x1024, (), 5),
             "batch 1024, flip+translate": (x1024, ("flip", "translate"), 2)}
    ps = {(k, c): predictor(args, "auto", None, tta) for k in kinds for c, (_, tta, _) in cases.items()}
    for (k, _), p in ps.items():
        p.fold_batchnorm = kinds[k]
    res = {key: [] for key in ps}
    for _ in range(rounds):
        for (k, c), p in ps.items():
            x, _, calls = cases[c]
            res[k, c].append(statistics.median(timings(lambda p=p, x=x: p.predict_logits(x), 0.0, calls)))
    print(f"\nBatchNorm folded vs kept, {rounds} interleaved rounds, {torch.get_num_threads()} threads:\n")
    print("| case | folded, median ms | BatchNorm kept, median ms | folded / kept, median of the rounds (range) |")
    print("|---|---|---|---|")
    for c in cases:
        a, b = res["folded", c], res["BatchNorm kept", c]
        r = [x / y for x, y in zip(a, b)]
        print(f"| {c} | {1000 * statistics.median(a):.2f} | {1000 * statistics.median(b):.2f} | "
              f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f}) |", flush=True)


def predictor(args, precision: str, channels_last: bool | None, tta) -> Predictor:
    if args.checkpoint:
        p = Predictor.from_checkpoint(args.checkpoint, device="cpu", precision=precision, tta=tta, batch_size=1024)
    else:
        cfg = recipe_train_config("fast-60s")
        model = create_model(cfg.model, **cfg.model_args)
        p = Predictor.from_model(model, Normalization("standardize", 0.286, 0.353), [str(i) for i in range(10)],
                                 device="cpu", precision=precision, tta=tta, batch_size=1024)
    if channels_last is not None and p.channels_last != channels_last:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        p.model = p.model.to(memory_format=fmt)
        p.channels_last = channels_last
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--fold-rounds", type=int, default=0,
                    help="then time BatchNorm folded vs kept in this many interleaved rounds (at the first --threads)")
    args = ap.parse_args(argv)
    layouts = [("auto", None), ("fp32", False), ("fp32", True)] + ([("bf16", True)] if cpu_has_fast_bf16() else [])
    x1, x1024 = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8), torch.randint(0, 256, (1024, 28, 28),
                                                                                      dtype=torch.uint8)
    print(f"command: python benchmarks/inference_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}; "
          f"torch {torch.__version__}, {machine_description()}, {time.strftime('%Y-%m-%d')}\n")
    print("| threads | layout | TTA | batch 1 latency, median ms (p90) | batch 1024 img/s |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for prec, cl in layouts:
            for tta in ((), ("flip", "translate")):
                p = predictor(args, prec, cl, tta)
                name = f"{p.precision}+{'channels_last' if p.channels_last else 'contiguous'}"
                if p.single_image_precision:  # the batch-1 column ran in this one
                    name += f" ({p.single_image_precision} for one image)"
                lat = timings(lambda p=p: p.predict_logits(x1), args.seconds, 20)
                thr = timings(lambda p=p: p.predict_logits(x1024), args.seconds)
                q = statistics.quantiles(lat, n=10)[-1]
                print(f"| {threads} | {'auto: ' if prec == 'auto' else ''}{name} | {'+'.join(tta) or 'none'} | "
                      f"{1000 * statistics.median(lat):.2f} ({1000 * q:.2f}) | {1024 / statistics.median(thr):,.0f} |",
                      flush=True)
    if args.fold_rounds:
        torch.set_num_threads(args.threads[0])
        fold_ab(args, x1, x1024, args.fold_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
