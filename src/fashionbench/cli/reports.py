"""report, compare."""

from __future__ import annotations

import argparse
import time

from . import options


def cmd_report(args: argparse.Namespace) -> int:
    from .. import api

    t0 = time.perf_counter()
    path = api.report(args.run, recompute=args.recompute, dataset=args.dataset, data_dir=args.data_dir,
                      device=args.device, precision=args.precision, threads=args.threads)
    print(f"report: {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .. import api

    out = api.compare(args.runs, args.out, overwrite=args.overwrite)
    print(out["markdown"])
    print(f"comparison: {out['html']} and {out['markdown_path']}")
    return 0


def add_parsers(sub) -> None:
    r = sub.add_parser("report", help="rebuild report.html (and figures/) of a run folder")
    r.add_argument("run", help="run folder written by `fashionbench train`")
    r.add_argument("--recompute", action="store_true", help="redo embeddings, t-SNE and example images from the "
                   "checkpoint and the dataset (done anyway when artifacts.npz is missing)")
    r.add_argument("--dataset", choices=["fashion-mnist", "mnist-format"], default=None,
                   help="dataset for --recompute (default: the run's)")
    r.add_argument("--data-dir", default=None, help="data folder for --recompute (default: the run's)")
    r.add_argument("--device", choices=options.DEVICES, default="auto")
    r.add_argument("--precision", choices=options.PRECISIONS, default=None,
                   help="for --recompute (default: what the run used)")
    r.add_argument("--threads", type=int, help="CPU threads for torch (default one per core)")
    r.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare runs: accuracy with intervals, seeds grouped, McNemar vs best; "
                       "writes compare.html and compare.md")
    c.add_argument("runs", nargs="*", metavar="RUN", help="run folders, or folders holding run folders")
    c.add_argument("--out", default=".", help="folder for compare.html and compare.md (default: current folder)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing compare.html / compare.md")
    c.set_defaults(func=cmd_compare)
