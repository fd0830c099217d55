"""train, evaluate, models, recipes, data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from . import options


def cmd_train(args: argparse.Namespace) -> int:
    from .. import api
    from ..train.distributed import init_from_environment, shutdown

    if args.resume:
        given = [n for n in options.given_flags(args) if n not in ("device", "threads")]
        if given or args.config or args.out or args.overwrite:
            names = [f"--{g.replace('_', '-')}" for g in given] + [f for f, v in (
                ("--config", args.config), ("--out", args.out), ("--overwrite", args.overwrite)) if v]
            raise ConfigError("--resume continues a run with its own saved config; drop the other options "
                              f"({', '.join(names)}); --device and --threads may change")
    tracking = api.tracking(args.track, args.tracking_uri)  # a missing package fails before any training
    dist = init_from_environment(args.device or "auto")  # under torchrun: this process is one rank
    finished = False
    try:
        if args.resume:
            result = api.resume(args.resume, device=args.device, threads=args.threads, track=tracking, dist=dist)
        else:
            options.check_flags_apply(options.given_flags(args), api.make_config(**options.config_kwargs(args)),
                                      args)
            result = api.train(out=args.out, overwrite=args.overwrite, track=tracking, dist=dist,
                               **options.config_kwargs(args))
        finished = True
        if dist is None or dist.is_writer:  # printed before the ranks leave: it depends on no other rank
            _print_trained(result)
    finally:
        shutdown(dist, together=finished)
    return 0


def _print_trained(result) -> None:
    m = result.metrics
    ranks = f", {m['distributed']['world_size']} processes" if m.get("distributed") else ""
    print(f"model {m['model']}: test accuracy {100 * m['test_accuracy']:.2f}% after {m['epochs']} epochs, "
          f"{m['train_seconds']:.1f} s training ({m['device']}, {m['precision']}"
          f"{'+channels_last' if m.get('channels_last') else ''}{ranks})")
    print(f"run folder: {result.run_dir}")
    report = result.run_dir / "report.html"
    if report.is_file():
        print(f"report: {report}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .. import api

    m = api.evaluate(args.checkpoint, dataset=args.dataset, data_dir=args.data_dir, device=args.device,
                     precision=args.precision, tta=args.tta, batch_size=args.batch_size, threads=args.threads,
                     expect_model=args.model)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    for member in m.get("members", []):
        print(f"{member['checkpoint']}: model {member['model']}, epoch {member['epoch']}, "
              f"TTA {'+'.join(member['tta']) or 'none'}, test accuracy {100 * member['test_accuracy']:.2f}%")
    if "members" in m:
        print(f"ensemble of {len(m['members'])} ({m['combine']}):")
    else:
        print(f"{m['checkpoint']}: model {m['model']}, epoch {m['epoch']}, TTA {'+'.join(m['tta']) or 'none'}")
    print(f"test accuracy: {100 * m['test_accuracy']:.2f}%  (loss {m['test_loss']:.4f}, {m['images']} images)")
    for name, acc in m["per_class_accuracy"].items():
        print(f"  {name:<12} {100 * acc:6.2f}%")
    return 0


def cmd_models(args: argparse.Namespace) -> int:

    from ..models.registry import count_params, create_model, list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        rows.append((name, count_params(create_model(name)), info.source, info.description))
    if args.json:
        print(json.dumps([dict(zip(("name", "params", "source", "description"), r)) for r in rows], indent=2))
        return 0
    print(f"{'model':<18} {'params':>12}  {'source':<14} description")
    for name, params, source, desc in rows:
        print(f"{name:<18} {params:>12,}  {source:<14} {desc}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from .. import api

    for name, description in api.list_recipes().items():
        print(f"{name:<14} {description}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:

    from ..data import sources

    if args.data_cmd == "download":
        dest = sources.download(Path(args.dest) if args.dest else None)
        print(f"Fashion-MNIST verified in {dest}")
        return 0
    if args.data_cmd == "check":
        results = sources.check_local_copies(args.data_dir)
        for path, problem in results:
            print(f"ok   {path}" if problem is None else f"BAD  {problem}")
        bad = sum(problem is not None for _, problem in results)
        print(f"{len(results) - bad} of {len(results)} files verified")
        return 1 if bad else 0
    ds = sources.load_dataset(args.dataset or "fashion-mnist", args.data_dir, allow_download=False)
    import numpy as np

    print(f"dataset: {ds.name}")
    print(f"source: {ds.source}")
    print(f"checksums: {'verified (SHA-256 of decompressed content)' if ds.verified else 'skipped'}")
    for split in ("train", "test"):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        counts = np.bincount(labels.numpy(), minlength=ds.num_classes)
        print(f"{split}: {len(images)} images {tuple(images.shape[1:])}, pixel mean "
              f"{images.float().mean().item() / 255:.4f}")
        print("  " + ", ".join(f"{n}: {c}" for n, c in zip(ds.class_names, counts)))
    return 0


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train a model and write a run folder")
    options.add_train_args(t)
    options.add_track_args(t)
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint (or an ensemble of several) on the test set")
    e.add_argument("checkpoint", nargs="+", help="best.pt / last.pt or a run folder; several: their ensemble "
                   "(the mean of their logits / temperature)")
    e.add_argument("--model", help="fail unless the checkpoint holds this model")
    options.add_data_args(e)
    options.add_runtime_args(e, defaults=True)
    e.add_argument("--tta", default=None, help="none, flip, translate or flip+translate "
                   "(default: what the run was trained with)")
    e.add_argument("--batch-size", type=int, default=1000)
    e.add_argument("--json", action="store_true", help="print metrics as JSON")
    e.set_defaults(func=cmd_evaluate)

    m = sub.add_parser("models", help="list registered models with parameter counts")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    r = sub.add_parser("recipes", help="list named training recipes")
    r.set_defaults(func=cmd_recipes)

    d = sub.add_parser("data", help="dataset: info, check, download")
    dsub = d.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    di = dsub.add_parser("info", help="where the data was found, sizes and class counts")
    options.add_data_args(di)
    dc = dsub.add_parser("check", help="verify the checksums of every local copy")
    dc.add_argument("--data-dir", default=None)
    dd = dsub.add_parser("download", help="download and verify into the user cache")
    dd.add_argument("--dest", help="folder to download into (default: the user cache)")
    d.set_defaults(func=cmd_data)
