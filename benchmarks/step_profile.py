"""Where a training step's time goes, and how close the loop runs to what this CPU can do.

For each recipe: the network's FLOPs per image (forward, and forward + backward as counted by
`torch.utils.flop_counter`), the whole run's FLOPs, the step's phases timed one by one (batch
gather + augmentation + normalisation, forward, loss, backward, optimizer, lookahead and schedule),
the achieved GFLOP/s, and the step's operators by kind (convolution, BatchNorm, pooling,
activation, linear, optimizer, data movement) from `torch.profiler`. The machine's peak is a
2048x2048 matmul in fp32 (and bf16 where the CPU runs it natively).

    python benchmarks/step_profile.py --recipes fast-60s fast-3m --steps 8

The recipe is built by `setup_run` on the real training data, so the model, optimizer, augmentation
and the precision / memory format (`--precision auto`, the layout probe) are those `train` uses.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from _synthetic import flops
from fashionbench.data.augment import build_augment
from fashionbench.train.engine import prepare
from fashionbench.train.recipes import recipe_train_config
from fashionbench.train.run import setup_run
from fashionbench.utils import autocast, cpu_has_fast_bf16, machine_description

# operator name -> kind, first match wins (self CPU time of aten ops)
KINDS = (
    ("convolution", r"conv|mkldnn_convolution"),
    ("BatchNorm", r"batch_norm"),
    ("pooling", r"pool"),
    ("activation", r"gelu|relu|threshold|silu|sigmoid"),
    ("linear / matmul", r"addmm|\bmm\b|matmul|linear|bmm"),
    ("optimizer (foreach)", r"_foreach|lerp"),
    ("data movement", r"copy|clone|contiguous|\bto\b|_to_copy|index|cat|stack|empty|zero|fill|resize|as_strided"),
    ("loss", r"log_softmax|nll|cross_entropy"),
)


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def kind(name: str) -> str:
    name = name.removeprefix("aten::")
    for label, pattern in KINDS:
        if re.search(pattern, name):
            return label
    return "other"


def profile_recipe(name: str, steps: int) -> dict:
    cfg = recipe_train_config(name)
    s = setup_run(cfg)
    model, opt, dev = s.train_model, s.optimizer, s.device
    images, labels = s.train
    augment, bs = build_augment(cfg.augment), cfg.batch_size
    gen = torch.Generator().manual_seed(0)
    one = prepare(images[:2], s.normalizer, s.channels_last)
    fwd = flops(model.eval(), one[:1], False)
    model.train()
    fb = flops(model, one[:1], True)

    def batch(i):
        idx = torch.randint(len(images), (bs,), generator=gen)
        return idx, images[idx], labels[idx]

    phases: dict[str, list[float]] = defaultdict(list)

    def step(i: int) -> None:
        t = time.perf_counter()
        idx, xb, yb = batch(i)
        x = prepare(xb, s.normalizer, s.channels_last, augment, gen)
        t1 = time.perf_counter()
        phases["batch gather + augment + normalise"].append(t1 - t)
        with autocast(dev, s.precision):
            logits = model(x)
        t2 = time.perf_counter()
        phases["forward"].append(t2 - t1)
        loss = s.loss_fn(logits, yb)
        loss.item()
        t3 = time.perf_counter()
        phases["loss"].append(t3 - t2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        phases["backward"].append(t4 - t3)
        opt.step()
        t5 = time.perf_counter()
        phases["optimizer step"].append(t5 - t4)
        if s.lookahead is not None:
            s.lookahead.after_step()
        s.scheduler.step() if s.scheduler is not None else None
        phases["lookahead + schedule"].append(time.perf_counter() - t5)

    for i in range(2):  # warm-up
        step(i)
    phases.clear()
    for i in range(steps):
        step(i)
    med = {k: statistics.median(v) for k, v in phases.items()}
    total = sum(med.values())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(2):
            step(i)
    by_kind: dict[str, float] = defaultdict(float)
    other: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        if ev.key.startswith("aten::"):
            by_kind[kind(ev.key)] += ev.self_cpu_time_total / 1e6 / 2
            if kind(ev.key) == "other":
                other[ev.key] += ev.self_cpu_time_total / 1e6 / 2
    steps_per_epoch = len(images) // bs
    run_flops = fb * bs * steps_per_epoch * cfg.epochs
    return {"recipe": name, "layout": f"{s.precision}{'+channels_last' if s.channels_last else ''}",
            "fwd_mflop": fwd / 1e6, "train_mflop": fb / 1e6, "run_tflop": run_flops / 1e12, "phases": med,
            "step_s": total, "gflops": fb * bs / total / 1e9, "kinds": dict(by_kind), "batch": bs,
            "other": sorted(other.items(), key=lambda kv: -kv[1])[:6],
            "steps": steps_per_epoch * cfg.epochs, "run_s_estimate": total * steps_per_epoch * cfg.epochs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["fast-60s", "fast-3m"])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per recipe (median)")
    args = ap.parse_args(argv)
    peaks = {"fp32": matmul_gflops(torch.float32)}
    if cpu_has_fast_bf16():
        peaks["bf16"] = matmul_gflops(torch.bfloat16)
    rows = [profile_recipe(r, args.steps) for r in args.recipes]
    print(f"command: python benchmarks/step_profile.py {' '.join(argv if argv is not None else sys.argv[1:])}; "
          f"torch {torch.__version__}, {machine_description()}, {time.strftime('%Y-%m-%d')}\n")
    print("2048x2048 matmul: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()) + "\n")
    print("| recipe | layout | MFLOP/image forward | MFLOP/image fwd+bwd | TFLOP per run | s/step (median) | "
          "achieved GFLOP/s | of matmul peak | run s at this rate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peak = peaks.get(r["layout"].split("+")[0], peaks["fp32"])
        print(f"| `{r['recipe']}` | {r['layout']} | {r['fwd_mflop']:.2f} | {r['train_mflop']:.2f} | {r['run_tflop']:.1f} | "
              f"{r['step_s']:.3f} | {r['gflops']:.0f} | {r['gflops'] / peak:.0%} | {r['run_s_estimate']:.0f} |")
    for r in rows:
        print(f"\n`{r['recipe']}`, batch {r['batch']}: phases (median s/step, share)\n")
        print("| phase | s | share |\n|---|---|---|")
        for k, v in r["phases"].items():
            print(f"| {k} | {v:.4f} | {v / r['step_s']:.0%} |")
        ops = sum(r["kinds"].values())
        print(f"\n`{r['recipe']}`: operators by kind (torch.profiler, self CPU time per step, {ops:.3f} s in all)\n")
        print("| kind | s | share |\n|---|---|---|")
        for k, v in sorted(r["kinds"].items(), key=lambda kv: -kv[1]):
            print(f"| {k} | {v:.4f} | {v / ops:.0%} |")
        print("\n'other', largest: " + ", ".join(f"{k.removeprefix('aten::')} {1000 * v:.1f} ms" for k, v in r["other"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
