"""cv, boost, ablate, reproduce, epochs-table: the seed studies' protocols."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from . import options


def cmd_cv(args: argparse.Namespace) -> int:
    from .. import api
    from ..experiments.crossval import format_cv

    result = api.cross_validate(args.folds, out=args.out, overwrite=args.overwrite, jobs=args.jobs,
                                **options.tracking_kwargs(args), **options.config_kwargs(args))
    print(format_cv(result))
    print(f"run folder: {result['out']}")
    return 0


def cmd_boost(args: argparse.Namespace) -> int:
    from .. import api
    from ..experiments.boosting import format_boost

    result = api.boost(combine=args.combine, out=args.out, overwrite=args.overwrite, **options.tracking_kwargs(args),
                       **options.config_kwargs(args))
    print(format_boost(result))
    print(f"run folder: {result['out']}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .. import api
    from ..experiments.ablation import format_ablation

    result = api.ablate(args.vary or [], spec=args.spec, seeds=args.seeds, combine=not args.no_combine,
                        combine_rule=args.combine_rule, out=args.out, overwrite=args.overwrite, jobs=args.jobs,
                        **options.tracking_kwargs(args), **options.config_kwargs(args))
    print(format_ablation(result))
    print(f"run folder: {result['out']}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .. import api
    from ..experiments.runner import format_list
    from ..experiments.table_report import format_console

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
    if args.rows is not None and not args.rows.strip(","):
        raise ConfigError("--rows is empty; name rows of the table (fashionbench reproduce --list shows them) "
                          "or leave it out for all")
    report = api.reproduce(args.name, seeds=args.seeds, rows=args.rows.split(",") if args.rows else None,
                           epochs_scale=args.epochs_scale, data_scale=args.data_scale, weights=weights, out=args.out,
                           data_dir=args.data_dir, device=args.device, precision=args.precision, threads=args.threads,
                           jobs=args.jobs, **options.tracking_kwargs(args))
    print(format_console(report))
    print(f"wrote {report['out']}/paper_vs_ours.md and {report['out']}/paper_vs_ours.csv")
    return 0 if all(r["status"] != "failed" for r in report["rows"]) else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from .. import api
    from ..experiments.sweep import format_sweep

    summary = api.sweep(args.space, args.trials, storage=args.storage, study=args.study, jobs=args.jobs,
                        pruner=args.pruner, out=args.out, **options.tracking_kwargs(args), **options.config_kwargs(args))
    print(format_sweep(summary))
    return 0


def cmd_epochs_table(args: argparse.Namespace) -> int:

    from ..experiments.epochs import epochs_table, format_epochs_table, json_rows, read_history, val_label

    rows = epochs_table(read_history(args.run_dir), args.every)
    if args.json:
        print(json.dumps(json_rows(rows), indent=2, allow_nan=False))
    else:
        print(format_epochs_table(rows, val_label(args.run_dir)))
    return 0


def add_parsers(sub) -> None:
    c = sub.add_parser("cv", help="stratified k-fold cross-validation of a model (study 003)")
    options.add_train_args(c)
    c.add_argument("--folds", type=int, default=3, help="number of folds (default 3)")
    options.add_jobs_arg(c)
    options.add_track_args(c)
    c.set_defaults(func=cmd_cv)

    b = sub.add_parser("boost", help="three boosted nets, outputs added (study 000, Drucker et al.)")
    options.add_train_args(b)
    b.add_argument("--combine", choices=["softmax", "logits"], default="softmax",
                   help="add softmax probabilities (default, as the authors' code) or raw logits")
    options.add_track_args(b)
    b.set_defaults(func=cmd_boost)

    a = sub.add_parser("ablate", help="baseline + one-change-at-a-time variations + their combination (study 001)")
    options.add_train_args(a)
    a.add_argument("--vary", action="append", metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="a variation of the baseline, e.g. sgd:optimizer=sgd,lr=0.001 (repeatable)")
    a.add_argument("--spec", help="JSON file {baseline: {...}, variations: [{name, change}]}; flags given "
                   "override its baseline")
    a.add_argument("--seeds", type=int, default=1, help="seeds per cell; 2+ lets the table tell noise from effect")
    a.add_argument("--combine-rule", choices=["positive", "significant"], default="positive",
                   help="which variations count as helpful for the combined run")
    a.add_argument("--no-combine", action="store_true", help="skip the combined run")
    options.add_jobs_arg(a)
    options.add_track_args(a)
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
    options.add_runtime_args(r)
    r.add_argument("--out", help="output folder (default runs/reproduce/NAME-<time>)")
    options.add_jobs_arg(r)
    options.add_track_args(r)
    r.set_defaults(func=cmd_reproduce)

    w = sub.add_parser("sweep", help="tune TrainConfig fields with Optuna on the validation split (resumable)")
    w.add_argument("--space", required=True, metavar="SPACE.toml", help="one table per searched field: "
                   "[lr] low = 0.01, high = 0.5, log = true; [batch_size] choices = [128, 256]")
    w.add_argument("--trials", type=int, required=True, help="finished trials the study should hold; the same "
                   "command again continues an interrupted study")
    w.add_argument("--storage", metavar="URL", help="default: Optuna's journal file in the sweep folder (several "
                   "processes on one machine); postgresql://user@host/db for workers on several machines")
    w.add_argument("--study", help="study name (default <recipe or model>-<space file name>)")
    w.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median",
                   help="stop weak trials early on their per-epoch validation accuracy (default median)")
    options.add_jobs_arg(w)
    options.add_train_args(w)
    options.add_track_args(w)
    w.set_defaults(func=cmd_sweep)

    e = sub.add_parser("epochs-table", help="accuracy and time every N epochs from a run's history (study 004)")
    e.add_argument("run_dir", help="a run folder (holds history.csv)")
    e.add_argument("--every", type=int, default=10, help="one row every N epochs (default 10)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_epochs_table)
