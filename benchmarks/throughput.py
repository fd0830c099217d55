"""Training throughput (images/s) of every registered model, fp32 vs bf16, and inference
throughput of the default recipe's model at batch 1 and batch 1024.

Each measurement runs warm-up steps, then timed steps until `--seconds` pass (at least
`--min-steps`), and reports the median of per-step rates. fp32 runs NCHW (the PyTorch
default); bf16 runs autocast + channels_last for conv nets (what fashionbench does).

    python benchmarks/throughput.py --seconds 3
    python benchmarks/throughput.py --models efficientnet_lite0_tl --input-sizes 32 48 64 96 --inference
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from _synthetic import placed, train_step
from fashionbench.models import create_model, list_models, model_info
from fashionbench.models.registry import count_params
from fashionbench.train.recipes import recipe_train_config
from fashionbench.utils import machine_description

# Transfer-learning models upsample to 224 px inside forward: far heavier per image.
BATCH = {"vgg16_bn_tl": 8, "resnet18_tl": 16, "resnet50_28px": 64, "efficientnet_lite0_tl": 64}


def rate(step, batch: int, seconds: float, min_steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    rates, start = [], time.perf_counter()
    while len(rates) < min_steps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        rates.append(batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def train_rate(name: str, precision: str, seconds: float, min_steps: int, model_args: dict | None = None) -> float:
    torch.manual_seed(0)
    batch = BATCH.get(name, 128)
    model, x = placed(create_model(name, **(model_args or {})), batch, precision)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    model.train()
    return rate(train_step(model, x, y, opt, precision), batch, seconds, min_steps)


def infer_rate(name: str, model_args: dict, batch: int, precision: str, seconds: float, min_steps: int) -> float:
    model, x = placed(create_model(name, **model_args).eval(), batch, precision)

    @torch.no_grad()
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            model(x)

    return rate(step, batch, seconds, min_steps)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--min-steps", type=int, default=3)
    ap.add_argument("--models", nargs="*", help="default: every registered model")
    ap.add_argument("--input-sizes", nargs="*", type=int, help="for models with an input_size argument (the "
                    "transfer models): one row per size instead of the model's default")
    ap.add_argument("--inference", action="store_true", help="also batch-256 inference img/s per row")
    args = ap.parse_args(argv)
    print(f"machine: {machine_description()}, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"command: python benchmarks/throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    extra = " inference fp32 / bf16 img/s (batch 256) |" if args.inference else ""
    print(f"| model | params | batch | train fp32 img/s | train bf16 img/s | bf16 speed-up |{extra}")
    print("|---|---|---|---|---|---|" + ("---|" if extra else ""))
    for name in args.models or list_models():
        sized = args.input_sizes and "input_size" in model_info(name).defaults
        for model_args in ([{"input_size": n} for n in args.input_sizes] if sized else [{}]):
            fp32 = train_rate(name, "fp32", args.seconds, args.min_steps, model_args)
            bf16 = train_rate(name, "bf16", args.seconds, args.min_steps, model_args)
            label = name + (f" @ {model_args['input_size']} px" if model_args else "")
            row = (f"| {label} | {count_params(create_model(name, **model_args)):,} | {BATCH.get(name, 128)} | "
                   f"{fp32:,.0f} | {bf16:,.0f} | {bf16 / fp32:.2f}x |")
            if args.inference:
                inf = [infer_rate(name, model_args, 256, p, args.seconds, args.min_steps) for p in ("fp32", "bf16")]
                row += f" {inf[0]:,.0f} / {inf[1]:,.0f} |"
            print(row, flush=True)
    cfg = recipe_train_config("fast-60s")
    print(f"\ninference, default model ({cfg.model} {cfg.model_args}), one view (no TTA):\n")
    print("| batch | fp32 img/s | bf16 img/s |")
    print("|---|---|---|")
    for batch in (1, 1024):
        r = [infer_rate(cfg.model, cfg.model_args, batch, p, args.seconds, args.min_steps) for p in ("fp32", "bf16")]
        print(f"| {batch} | {r[0]:,.0f} | {r[1]:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
