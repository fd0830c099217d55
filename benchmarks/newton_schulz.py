"""Milliseconds of Muon's Newton-Schulz iteration, fp32 against bf16, per filter shape and per
recipe (all the conv filters of its network, as one optimizer step orthogonalizes them), interleaved
in one invocation so they share the noise. `BF16_MIN_WORK` in train/muon.py comes from this table.

    python benchmarks/newton_schulz.py --repeats 41
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fashionbench.train import muon
from fashionbench.train.config import resolve_config
from fashionbench.train.run import build_model
from fashionbench.utils import machine_description

# out x in*3*3 of FastNet's filters at the recipes' widths
SHAPES = [(32, 288), (64, 288), (64, 576), (96, 864), (128, 576), (128, 1152), (256, 1152), (256, 2304),
          (512, 4608)]
RECIPES = ["fast-30s", "fast-90s", "fast-8m", "long"]
FORCE_ALL = 0  # min_work for "every matrix in the given dtype"


def median_ms(mats: list[torch.Tensor], dtype: torch.dtype, repeats: int, min_work: int = FORCE_ALL) -> float:
    muon.orthogonalize(mats, dtype=dtype, min_work=min_work)  # warm up the kernels
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        muon.orthogonalize(mats, dtype=dtype, min_work=min_work)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rule = muon.BF16_MIN_WORK
    gen = torch.Generator().manual_seed(0)

    print("| filter (out x in*k*k) | small^2 x large, M | fp32 ms | bf16 ms | bf16 / fp32 |")
    print("|---|---|---|---|---|")
    for shape in SHAPES:
        mats = [torch.randn(*shape, generator=gen)]
        f, b = median_ms(mats, torch.float32, args.repeats), median_ms(mats, torch.bfloat16, args.repeats)
        print(f"| {shape[0]} x {shape[1]} | {shape[0] ** 2 * shape[1] / 1e6:.1f} | {f:.3f} | {b:.3f} | {b / f:.2f} |")

    print("\n| recipe | filters | fp32 ms | all bf16 ms | the rule (bf16 from "
          f"{rule / 1e6:.0f} M) ms | rule / fp32 |")
    print("|---|---|---|---|---|---|")
    for name in RECIPES:
        model = build_model(resolve_config(recipe=name), 10)
        mats = [p.detach().reshape(len(p), -1).clone() for p in model.parameters() if p.ndim == 4]
        reps = max(5, args.repeats // (8 if name == "long" else 1))
        f, b = median_ms(mats, torch.float32, reps), median_ms(mats, torch.bfloat16, reps)
        r = median_ms(mats, torch.bfloat16, reps, min_work=rule)
        print(f"| `{name}` | {len(mats)} | {f:.1f} | {b:.1f} | {r:.1f} | {r / f:.2f} |")
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {machine_description()}, "
          f"{time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
