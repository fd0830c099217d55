"""What tracking and a second process cost: fast-60s trained plainly, with --track mlflow, with --track
tensorboard, and as `torchrun --nproc-per-node 2` (2 processes x 1 thread against 1 x 2 threads), in
rounds that take turns (a slow spell of a shared machine falls on all alike); then the time of one
gradient all-reduce (gloo, 2 processes on this machine) for the parameter counts that matter.

    .venv/bin/python benchmarks/scale_out.py --rounds 1

Prints a Markdown table (training seconds and test accuracy per variant, median over rounds) and
the all-reduce figures, with the CPU. Run it alone: two 2-thread jobs on 2 cores slow each other 8x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fashionbench.serve.local import free_port


def train(out: Path, extra: list[str], seed: int, torchrun: bool) -> dict:
    args = ["-m", "fashionbench", "train", "--recipe", "fast-60s", "--seed", str(seed), "--out", str(out), *extra]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    else:
        cmd, env = [sys.executable, *args], dict(os.environ)
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return json.loads((out / "metrics.json").read_text())


def _allreduce_worker(rank: int, port: int, sizes: list[int], reps: int, q) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    out = {}
    for n in sizes:
        t = torch.randn(n)
        for _ in range(3):
            dist.all_reduce(t)
        times = []
        for _ in range(reps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - t0)
        out[n] = statistics.median(times)
    if rank == 0:
        q.put(out)
    dist.destroy_process_group()


def allreduce_times(sizes: list[int], reps: int = 30) -> dict:
    import torch.multiprocessing as mp

    port = free_port()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_allreduce_worker, args=(r, port, sizes, reps, q)) for r in range(2)]
    for p in procs:
        p.start()
    result = q.get(timeout=300)
    for p in procs:
        p.join()
    return result


def main() -> None:
    from fashionbench.models.registry import count_params, create_model
    from fashionbench.train.recipes import recipe_config
    from fashionbench.utils import machine_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the four variants (seed = round)")
    ap.add_argument("--skip-training", action="store_true", help="only the all-reduce figures")
    a = ap.parse_args()
    variants = {"1 process x 2 threads": ([], False),
                "1 x 2, --track mlflow": (["--track", "mlflow"], False),
                "1 x 2, --track tensorboard": (["--track", "tensorboard"], False),
                "torchrun: 2 processes x 1 thread": ([], True)}
    results: dict[str, list[dict]] = {k: [] for k in variants}
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the default MLflow store (sqlite:///mlruns.db) lands here
        for r in range(0 if a.skip_training else a.rounds):
            for k, (name, (extra, torchrun)) in enumerate(variants.items()):
                results[name].append(train(Path(tmp) / f"variant{k}-round{r}", extra, r, torchrun))
                print(f"round {r + 1}: {name}: {results[name][-1]['train_seconds']:.1f} s", file=sys.stderr)
        os.chdir(home)
    print(f"CPU: {machine_description()}\n")
    if not a.skip_training:
        base = statistics.median(m["train_seconds"] for m in results["1 process x 2 threads"])
        print("| variant | training s (median) | vs plain | test accuracy |")
        print("|---|---|---|---|")
        for name, ms in results.items():
            sec = statistics.median(m["train_seconds"] for m in ms)
            acc = ", ".join(f"{100 * m['test_accuracy']:.2f}%" for m in ms)
            print(f"| {name} | {sec:.1f} | {sec / base:.3f}x | {acc} |")
    fast = count_params(create_model("fastnet", **recipe_config("fast-60s").get("model_args", {})))
    sizes = [fast, 1_150_000, 3_383_818]
    times = allreduce_times(sizes)
    print("\n| parameters all-reduced (fp32, gloo, 2 local processes) | median ms |")
    print("|---|---|")
    for n in sizes:
        print(f"| {n:,} | {1000 * times[n]:.2f} |")


if __name__ == "__main__":
    main()
