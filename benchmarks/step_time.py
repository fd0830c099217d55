"""Seconds per training step of FastNet (batch 1024, forward + backward + SGD) under the
systems choices of the fast recipes, interleaved in one invocation so they share the noise:

  * bf16 autocast + channels_last vs fp32 NCHW
  * 2x2 stride-2 whitening stem (28 -> 14) vs stride-1 (28 -> 27)
  * process-wide settings, each in a child process: glibc keeping freed memory
    (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_ 2 GiB; what train sets) vs its default, 1 torch thread vs 2, and
    OpenMP's passive wait policy (threads sleep between parallel regions) vs the default spin

    python benchmarks/step_time.py --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from _synthetic import interleaved_medians, placed, train_step
from fashionbench.models import create_model
from fashionbench.train.recipes import recipe_config
from fashionbench.utils import KEEP_FREED_TRIM_THRESHOLD, machine_description

RECIPE = recipe_config("fast-60s")["model_args"]
NETS = {
    "stride-2 stem": RECIPE,
    "stride-1 stem": {**RECIPE, "whiten_stride": 1, "pools": [True, True, True]},
}
# what utils.keep_freed_memory sets, here from the child process's start
KEEP_FREED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(KEEP_FREED_TRIM_THRESHOLD)}
# child process settings: (environment, torch threads or None for the default)
CHILDREN = {
    "glibc default malloc": ({}, None),
    "glibc keeps freed memory (what train does)": (KEEP_FREED, None),
    "1 torch thread": ({}, 1),
    "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
}


def make_step(model_args: dict, precision: str):
    torch.manual_seed(0)
    model, x = placed(create_model("fastnet", **model_args), 1024, precision)
    y = torch.randint(0, 10, (1024,))
    return train_step(model, x, y, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.85, nesterov=True),
                      precision)


def measure(cases: dict, steps: int) -> dict:
    fns = {name: make_step(*args) for name, args in cases.items()}
    for fn in fns.values():
        fn(), fn()  # warm-up
    return interleaved_medians(fns, steps)  # interleaved: every case sees the same background load


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--child", help=argparse.SUPPRESS)  # child mode: a CHILDREN name
    args = ap.parse_args(argv)
    if args.child:
        _, threads = CHILDREN[args.child]
        if threads:
            torch.set_num_threads(threads)
        print(measure({"x": (NETS["stride-2 stem"], "bf16")}, args.steps)["x"])
        return 0
    cases = {f"{net}, {p}": (a, p) for net, a in NETS.items() for p in ("bf16", "fp32")}
    res = measure(cases, args.steps)
    print(f"command: python benchmarks/step_time.py {' '.join(argv if argv is not None else sys.argv[1:])}; "
          f"torch {torch.__version__}, {machine_description()}, {time.strftime('%Y-%m-%d')}\n")
    print(f"| FastNet {json.dumps(RECIPE)}, batch 1024 | s/step (median) | s/epoch (58 steps) |")
    print("|---|---|---|")
    for name, s in res.items():
        print(f"| {name} | {s:.3f} | {58 * s:.1f} |")
    child = {}
    for name, (env, _) in CHILDREN.items():
        out = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True, env={**os.environ, **env})
        child[name] = float(out.stdout.strip())
        print(f"| stride-2 stem, bf16, {name} (separate process) | {child[name]:.3f} | {58 * child[name]:.1f} |")
    r, base = res, child["glibc default malloc"]
    print(f"\nbf16+channels_last speed-up: stride-2 {r['stride-2 stem, fp32'] / r['stride-2 stem, bf16']:.2f}x, "
          f"stride-1 {r['stride-1 stem, fp32'] / r['stride-1 stem, bf16']:.2f}x; stride-2 stem vs stride-1 (bf16): "
          f"{r['stride-1 stem, bf16'] / r['stride-2 stem, bf16']:.2f}x; keeping freed memory vs default malloc: "
          f"{base / child['glibc keeps freed memory (what train does)']:.2f}x; 2 threads vs 1: "
          f"{child['1 torch thread'] / base:.2f}x; spin vs passive wait: "
          f"{child['OMP_WAIT_POLICY=PASSIVE'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
