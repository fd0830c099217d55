"""`fashionbench report RUN` and `fashionbench compare RUN...`, registered by cli.build_parser()."""

from __future__ import annotations

import argparse
import time


def cmd_report(args: argparse.Namespace) -> int:
    from .report import rebuild_report

    t0 = time.perf_counter()
    path = rebuild_report(args.run, recompute=args.recompute, data_dir=args.data_dir, dataset_name=args.dataset,
                          device=args.device)
    print(f"report: {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import write_comparison

    html_path, md_path, md = write_comparison(args.runs, args.out, overwrite=args.overwrite)
    print(md)
    print(f"comparison: {html_path} and {md_path}")
    return 0


def add_parsers(sub) -> None:
    r = sub.add_parser("report", help="rebuild report.html (and figures/) of a run folder")
    r.add_argument("run", help="run folder written by `fashionbench train`")
    r.add_argument("--recompute", action="store_true", help="redo embeddings, t-SNE and example images from the "
                   "checkpoint and the dataset (done anyway when artifacts.npz is missing)")
    r.add_argument("--dataset", choices=["fashion-mnist", "mnist-format"], default=None,
                   help="dataset for --recompute (default: the run's)")
    r.add_argument("--data-dir", default=None, help="data folder for --recompute (default: the run's)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    r.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare runs: accuracy with intervals, seeds grouped, McNemar vs best; "
                       "writes compare.html and compare.md")
    c.add_argument("runs", nargs="*", metavar="RUN", help="run folders, or folders holding run folders")
    c.add_argument("--out", default=".", help="folder for compare.html and compare.md (default: current folder)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing compare.html / compare.md")
    c.set_defaults(func=cmd_compare)
