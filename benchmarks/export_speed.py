"""Size, test accuracy and speed of a model in PyTorch (eager fp32 and bf16) and ONNX Runtime (fp32, int8).

For each checkpoint: exports model.onnx and model-int8.onnx (no TTA: one view, as a phone runs it)
with `fashionbench.serve.export.export_onnx`, then measures on `--threads` CPU threads:
test accuracy on the 10,000 test images, batch-1 latency (median and p99 over `--runs` calls
after a warm-up, one fixed image) and batch-1024 throughput (median of `--batches` timed
batches). The four backends of a model are timed in interleaved rounds (`--rounds`), so a slow
spell of a shared machine falls on all of them alike. Prints a Markdown table per model, with the CPU.

    .venv/bin/python benchmarks/export_speed.py runs/default runs/light --threads 1
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def interleaved(fns: list, calls: int, rounds: int, warmup: int) -> list[list[float]]:
    """Per function, the seconds of `calls` calls, timed in `rounds` rounds that take turns."""
    for fn in fns:
        timed(fn, warmup)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for t, fn in zip(times, fns):
            t += timed(fn, max(1, calls // rounds))
    return times


def median_p99_ms(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times) * 1e3, times[int(0.99 * (len(times) - 1))] * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="run folders or best.pt / last.pt files")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3000, help="batch-1 calls timed per backend")
    ap.add_argument("--batches", type=int, default=7, help="batch-1024 batches timed per backend")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    ap.add_argument("--out", help="folder for the .onnx files (default: a temporary one)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    from fashionbench.data.sources import dataset_args, load_dataset
    from fashionbench.inference import Predictor
    from fashionbench.models import count_params
    from fashionbench.onnx_file import INPUT, OUTPUT, open_session
    from fashionbench.serve.export import export_onnx
    from fashionbench.utils import machine_description

    torch.set_num_threads(args.threads)
    print(f"# export speed: {machine_description()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    out_root = Path(args.out or tempfile.mkdtemp(prefix="fashionbench-export-"))
    for ckpt in args.checkpoints:
        ref = Predictor.from_checkpoint(ckpt, device="cpu", precision="fp32", tta="none")
        ds = load_dataset(*dataset_args(ref.info.get("config") or {}))
        folder = out_root / Path(ckpt).resolve().name
        fp32 = export_onnx(ckpt, folder / "model.onnx", data=ds, overwrite=True)
        int8 = export_onnx(ckpt, folder / "model-int8.onnx", int8=True, data=ds, overwrite=True)
        buf = io.BytesIO()
        torch.save(ref.model.state_dict(), buf)
        ckpt_bytes = buf.tell()
        one = ds.test_images[:1]
        batch = ds.test_images[:1024]
        rows, one_fns, bulk_fns = [], [], []
        for precision in ("fp32", "bf16"):
            p = Predictor.from_checkpoint(ckpt, device="cpu", precision=precision, tta="none", batch_size=1024)
            x1 = p.normalizer(one.unsqueeze(1).float() / 255)
            xb = p.normalizer(batch.unsqueeze(1).float() / 255)
            if p.channels_last:
                x1, xb = x1.contiguous(memory_format=torch.channels_last), xb.contiguous(memory_format=torch.channels_last)
            model = p.forward_model()  # what predictions run: the BatchNorms folded

            def run(x, model=model, precision=precision):
                with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                    return model(x)

            acc = (p.predict_logits(ds.test_images).argmax(1) == ds.test_labels).float().mean().item()
            rows.append((f"PyTorch eager {precision}", ckpt_bytes, acc))
            one_fns.append(lambda x1=x1, run=run: run(x1))
            bulk_fns.append(lambda xb=xb, run=run: run(xb))
        for name, res in (("ONNX Runtime fp32", fp32), ("ONNX Runtime int8", int8)):
            s = open_session(res.path, args.threads)
            x1 = one.unsqueeze(1).float().div(255).numpy()
            xb = batch.unsqueeze(1).float().div(255).numpy()
            rows.append((name, res.size_bytes, res.checks[-1].accuracy))
            one_fns.append(lambda s=s, x1=x1: s.run([OUTPUT], {INPUT: x1}))
            bulk_fns.append(lambda s=s, xb=xb: s.run([OUTPUT], {INPUT: xb}))
        one_times = interleaved(one_fns, args.runs, args.rounds, warmup=200)
        bulk_times = interleaved(bulk_fns, args.batches, min(args.rounds, args.batches), warmup=1)
        rows = [(*row, *median_p99_ms(t1), len(batch) / statistics.median(tb))
                for row, t1, tb in zip(rows, one_times, bulk_times)]
        cfg = ref.info.get("config") or {}
        print(f"\n## {ckpt}: {ref.info['model']} ({cfg.get('recipe') or 'no recipe'}), "
              f"{count_params(ref.model):,} parameters, {args.threads} thread(s)\n")
        print("| backend | file size | test accuracy (1 view) | batch-1 median | batch-1 p99 | batch-1024 images/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, size, acc, med, p99, tput in rows:
            print(f"| {name} | {size / 1024:.1f} KiB ({size:,} B) | {100 * acc:.2f}% | {med:.3f} ms | {p99:.3f} ms "
                  f"| {tput:,.0f} |")
        print(f"\nint8 vs fp32 ONNX: {100 * (int8.checks[-1].accuracy - fp32.checks[0].accuracy):+.2f} points, "
              f"top-1 agreement {100 * int8.checks[-1].agreement:.2f}%; PyTorch file = state_dict via torch.save")


if __name__ == "__main__":
    main()
