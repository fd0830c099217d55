"""CLI subcommands of issue 3: cv, boost, ablate, reproduce, epochs-table (registered by cli.build_parser)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import ConfigError


def _cli():
    from .. import cli  # imported lazily: cli imports this module

    return cli


def _out_dir(args, default_name: str) -> Path:
    return Path(args.out) if args.out else Path("runs") / f"{default_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_cv(args: argparse.Namespace) -> int:
    from ..train.crossval import cross_validate, format_cv

    cfg = _cli().config_from_args(args)
    out = _out_dir(args, f"cv-{cfg.model}")
    result = cross_validate(cfg, out, args.folds, overwrite=args.overwrite)
    print(format_cv(result))
    print(f"run folder: {out}")
    return 0


def cmd_boost(args: argparse.Namespace) -> int:
    from ..train.boosting import boost, format_boost

    cfg = _cli().config_from_args(args)
    out = _out_dir(args, f"boost-{cfg.model}")
    result = boost(cfg, out, combine=args.combine, overwrite=args.overwrite)
    print(format_boost(result))
    print(f"run folder: {out}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from ..train.ablation import ablate, format_ablation, load_spec, parse_variation
    from ..train.config import TrainConfig

    cfg = _cli().config_from_args(args)
    variations = [parse_variation(v) for v in args.vary or []]
    if args.spec:
        base_values, spec_vars = load_spec(args.spec)
        # the spec's baseline, then explicit flags on top
        flags = {k: v for k, v in cfg.to_dict().items() if v != getattr(TrainConfig(), k)}
        cfg = TrainConfig.from_dict({**base_values, **flags})
        variations = spec_vars + variations
    if not variations:
        raise ConfigError("ablate needs variations: --vary NAME:KEY=VALUE[,KEY=VALUE] (repeatable) or --spec FILE")
    out = _out_dir(args, f"ablate-{cfg.model}")
    result = ablate(cfg, variations, out, seeds=args.seeds, combine=not args.no_combine,
                    combine_rule=args.combine_rule, overwrite=args.overwrite)
    print(format_ablation(result))
    print(f"run folder: {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .runner import Shrink, format_console, format_list, run_table

    if args.list or not args.name:
        print(format_list())
        if not args.list:
            print("\nrun one with `fashionbench reproduce NAME` (add --epochs-scale 0.1 for a quick check)")
        return 0
    weights = {}
    for pair in args.weights or []:
        if "=" not in pair:
            raise ConfigError(f"--weights expects MODEL=FILE (e.g. resnet18_tl=resnet18.pth), got {pair!r}")
        k, v = pair.split("=", 1)
        weights[k] = v
    overrides = {}
    if args.device:
        overrides["device"] = args.device
    if args.precision:
        overrides["precision"] = args.precision
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        overrides["threads"] = args.threads
    out = Path(args.out) if args.out else Path("runs") / "reproduce" / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = args.rows.split(",") if args.rows else None
    report = run_table(args.name, out, seeds=args.seeds, shrink=Shrink(args.epochs_scale, args.data_scale),
                       rows=rows, weights=weights, overrides=overrides, data_dir=args.data_dir)
    print(format_console(report))
    print(f"wrote {out / 'paper_vs_ours.md'} and {out / 'paper_vs_ours.csv'}")
    return 0 if all(r["status"] != "failed" for r in report["rows"]) else 1


def cmd_epochs_table(args: argparse.Namespace) -> int:
    from .epochs import epochs_table, format_epochs_table, read_history, val_label

    rows = epochs_table(read_history(args.run_dir), args.every)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_epochs_table(rows, val_label(args.run_dir)))
    return 0


def add_parsers(sub) -> None:
    cli = _cli()
    c = sub.add_parser("cv", help="stratified k-fold cross-validation of a model (study 003)")
    cli._add_train_args(c)
    c.add_argument("--folds", type=int, default=3, help="number of folds (default 3)")
    c.set_defaults(func=cmd_cv)

    b = sub.add_parser("boost", help="three boosted nets, outputs added (study 000, Drucker et al.)")
    cli._add_train_args(b)
    b.add_argument("--combine", choices=["softmax", "logits"], default="softmax",
                   help="add softmax probabilities (default, as the authors' code) or raw logits")
    b.set_defaults(func=cmd_boost)

    a = sub.add_parser("ablate", help="baseline + one-change-at-a-time variations + their combination (study 001)")
    cli._add_train_args(a)
    a.add_argument("--vary", action="append", metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="a variation of the baseline, e.g. sgd:optimizer=sgd,lr=0.001 (repeatable)")
    a.add_argument("--spec", help="JSON file {baseline: {...}, variations: [{name, change}]}")
    a.add_argument("--seeds", type=int, default=1, help="seeds per cell; 2+ lets the table tell noise from effect")
    a.add_argument("--combine-rule", choices=["positive", "significant"], default="positive",
                   help="which variations count as helpful for the combined run")
    a.add_argument("--no-combine", action="store_true", help="skip the combined run")
    a.set_defaults(func=cmd_ablate)

    r = sub.add_parser("reproduce", help="run a seed study's table and print paper vs ours")
    r.add_argument("name", nargs="?", help="table name (see --list)")
    r.add_argument("--list", action="store_true", help="list the tables")
    r.add_argument("--seeds", type=int, default=1, help="seeds per row (mean +- std)")
    r.add_argument("--rows", help="comma-separated row ids to run (default all)")
    r.add_argument("--epochs-scale", type=float, default=1.0, help="shrink every run's epochs by this factor")
    r.add_argument("--data-scale", type=float, default=1.0, help="shrink the training data by this factor")
    r.add_argument("--weights", action="append", metavar="MODEL=FILE",
                   help="local starting weights for rows that need ImageNet weights (e.g. resnet18_tl=r18.pth)")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    r.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    r.add_argument("--threads", type=int,
                   help="CPU threads for torch (default one per core; 1 lets two jobs share a 2-core machine)")
    r.add_argument("--out", help="output folder (default runs/reproduce/NAME-<time>)")
    r.set_defaults(func=cmd_reproduce)

    e = sub.add_parser("epochs-table", help="accuracy and time every N epochs from a run's history (study 004)")
    e.add_argument("run_dir", help="a run folder (holds history.csv)")
    e.add_argument("--every", type=int, default=10, help="one row every N epochs (default 10)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_epochs_table)
