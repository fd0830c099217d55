"""Command-line interface: `fashionbench train | evaluate | models | data ...`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, FashionbenchError
from .evaluate import commands as report_commands

log = logging.getLogger("fashionbench")


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _model_args(pairs: list[str] | None) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--model-arg expects KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist-format"], default=None,
                   help="fashion-mnist (verified checksums) or any folder of MNIST-format IDX files")
    p.add_argument("--data-dir", default=None, help="folder with the four IDX files (.gz or raw); "
                   "default: FASHIONBENCH_DATA, the user cache, the Debian package, then a download")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registered model name (see `fashionbench models`)")
    g.add_argument("--recipe", help="named recipe that sets model and hyperparameters (see `fashionbench recipes`)")
    g.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="model constructor argument")
    g.add_argument("--pretrained", choices=["imagenet"], help="start from torchvision's ImageNet weights "
                   "(downloaded once into torchvision's cache)")
    g.add_argument("--weights", metavar="FILE", help="start from a local weights file (no internet needed)")
    g.add_argument("--freeze", choices=["features"], help="train only the classifier head")
    g = p.add_argument_group("optimization")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"])
    g.add_argument("--lr", type=float, help="(peak) learning rate")
    g.add_argument("--momentum", type=float, help="momentum for sgd/rmsprop")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum (sgd)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--loss", choices=["ce", "nll", "mse", "mae"], help="ce: cross-entropy; nll: log-softmax + "
                   "NLL; mse/mae: softmax vs one-hot")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--schedule", choices=["constant", "step", "cosine", "onecycle", "linear", "plateau"])
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--final-lr-factor", type=float, help="cosine/linear schedules end at lr times this")
    g.add_argument("--bias-lr-scale", type=float, help="lr multiplier for biases and norm parameters")
    g.add_argument("--lookahead", action="store_true", default=None, help="lookahead EMA of the weights")
    g.add_argument("--drop-last", action="store_true", default=None, help="drop the last partial batch")
    g.add_argument("--step-epochs", type=int, help="step schedule: epochs between decays")
    g.add_argument("--gamma", type=float, help="step/plateau schedule: decay factor")
    g = p.add_argument_group("data")
    _add_data_args(g)
    g.add_argument("--augment", help="none or a '+'-joined list: flip, translate, random-resized-crop, rotation, "
                   "random-erasing")
    g.add_argument("--normalize", choices=["standardize", "minmax", "per-pixel"])
    g.add_argument("--val-fraction", type=float, help="stratified validation holdout (default 0.1)")
    g.add_argument("--data-fraction", type=float, help="train on a stratified fraction of the training set")
    g = p.add_argument_group("early stopping and evaluation")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without "
                   "improvement of --monitor")
    g.add_argument("--monitor", choices=["val_loss", "val_accuracy", "train_loss", "train_accuracy"])
    g.add_argument("--restore-best", action="store_true", default=None, help="evaluate the best epoch's weights")
    g.add_argument("--tta", help="test-time augmentation views: none, flip, translate, flip+translate")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    g.add_argument("--threads", type=int, help="CPU threads for torch (default: one per core)")
    g.add_argument("--config", help="JSON file of config values (flags override it)")
    g.add_argument("--out", help="run folder (default runs/<model>-s<seed>-<time>)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace the files of an existing --out folder")


TRAIN_FIELDS = ("model", "recipe", "epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov",
                "weight_decay", "loss", "label_smoothing", "schedule", "warmup_epochs", "step_epochs", "gamma",
                "augment", "normalize", "val_fraction", "data_fraction", "early_stopping", "monitor",
                "restore_best", "tta", "seed", "device", "precision", "dataset", "data_dir", "pretrained", "weights",
                "freeze", "final_lr_factor", "bias_lr_scale", "lookahead", "drop_last", "threads")


def config_from_args(args: argparse.Namespace):
    """Defaults <- recipe <- --config file <- explicit flags."""
    from .train.config import TrainConfig
    from .train.recipes import recipe_config

    values: dict = {}
    if args.recipe:
        values.update(recipe_config(args.recipe))
    if args.config:
        try:
            values.update(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"--config {args.config}: cannot read it as JSON ({e})") from None
    for name in TRAIN_FIELDS:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    if args.model and args.recipe and args.model != recipe_config(args.recipe).get("model"):
        values.setdefault("model_args", {})
        values["model_args"] = {}  # a recipe's model arguments belong to the recipe's model
    if args.model_arg:
        values["model_args"] = {**values.get("model_args", {}), **_model_args(args.model_arg)}
    for key in ("augment", "tta"):
        if isinstance(values.get(key), str):
            values[key] = [] if values[key] == "none" else values[key].replace(",", "+").split("+")
    return TrainConfig.from_dict(values)


def cmd_train(args: argparse.Namespace) -> int:
    from .train.run import default_run_dir, load_run_config, train_model

    if args.resume:
        given = [n for n in TRAIN_FIELDS if getattr(args, n, None) is not None and n not in ("device",)]
        if given or args.config or args.model_arg or args.out:
            raise ConfigError("--resume continues a run with its own saved config; drop the other options "
                              f"({', '.join('--' + g.replace('_', '-') for g in given) or '--out/--config'})")
        run_dir = Path(args.resume)
        cfg = load_run_config(run_dir)
        if args.device:
            cfg = cfg.replace(device=args.device)
        metrics = train_model(cfg, run_dir, resume=True)
    else:
        cfg = config_from_args(args)
        run_dir = Path(args.out) if args.out else default_run_dir(cfg)
        metrics = train_model(cfg, run_dir, overwrite=args.overwrite)
    print(f"model {metrics['model']}: test accuracy {100 * metrics['test_accuracy']:.2f}% "
          f"after {metrics['epochs']} epochs, {metrics['train_seconds']:.1f} s training "
          f"({metrics['device']}, {metrics['precision']})")
    print(f"run folder: {run_dir}")
    report = run_dir / "report.html"
    if report.is_file():
        print(f"report: {report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data.sources import load_dataset
    from .evaluate.metrics import classification_metrics
    from .models.registry import place_model
    from .train.checkpoint import load_checkpoint
    from .train.engine import predict
    from .data.normalize import Normalization
    from .utils import resolve_device, resolve_precision

    model, ckpt = load_checkpoint(args.checkpoint, expect_model=args.model)
    cfg = ckpt.get("config", {})
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    ds = load_dataset(args.dataset or cfg.get("dataset", "fashion-mnist"), args.data_dir or cfg.get("data_dir"))
    if ds.num_classes != len(ckpt["class_names"]):
        raise ConfigError(f"the checkpoint has {len(ckpt['class_names'])} classes but the dataset has "
                          f"{ds.num_classes}; evaluate it on the dataset it was trained on")
    model, cl = place_model(model, device)
    tta = cfg.get("tta", []) if args.tta is None else ([] if args.tta == "none" else args.tta.split("+"))
    logits = predict(model, ds.test_images.to(device), normalizer=Normalization.from_dict(ckpt["normalization"]),
                     batch_size=args.batch_size, precision=precision, channels_last=cl, tta=tta)
    m = classification_metrics(logits, ds.test_labels.numpy(), ckpt["class_names"])
    if args.json:
        print(json.dumps({"checkpoint": ckpt["path"], "model": ckpt["model"], **m}, indent=2))
        return 0
    print(f"{ckpt['path']}: model {ckpt['model']}, epoch {ckpt.get('epoch')}")
    print(f"test accuracy: {100 * m['test_accuracy']:.2f}%  (loss {m['test_loss']:.4f}, "
          f"{len(ds.test_labels)} images)")
    for name, acc in m["per_class_accuracy"].items():
        print(f"  {name:<12} {100 * acc:6.2f}%")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models.registry import count_params, create_model, list_models, model_info

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
    from .train.recipes import RECIPES

    for name, r in RECIPES.items():
        print(f"{name:<14} {r['description']}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data import sources

    if args.data_cmd == "download":
        dest = sources.download(Path(args.dest) if args.dest else None)
        print(f"Fashion-MNIST verified in {dest}")
        return 0
    if args.data_cmd == "check":
        return _data_check(args)
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


def _data_check(args: argparse.Namespace) -> int:
    from .data import sources

    folders = []
    explicit = args.data_dir or __import__("os").environ.get("FASHIONBENCH_DATA")
    if explicit:
        folders.append(Path(explicit))
    folders += [sources.cache_dir(), sources.SYSTEM_DIR]
    bad = found = 0
    for folder in folders:
        for stem in sources.SHA256:
            path = sources.find_file(folder, stem)
            if path is None:
                continue
            found += 1
            try:
                sources.load_verified(path, stem)
                print(f"ok   {path}")
            except FashionbenchError as e:
                bad += 1
                print(f"BAD  {e}")
    if not found:
        raise FashionbenchError("no Fashion-MNIST files found to check. " + sources.OFFLINE_HELP)
    print(f"{found - bad} of {found} files verified")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionbench", description="Train, compare, explain and serve "
                                "Fashion-MNIST classifiers.")
    p.add_argument("--version", action="version", version=f"fashionbench {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model and write a run folder")
    _add_train_args(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint on the test set")
    e.add_argument("checkpoint", help="best.pt / last.pt or a run folder")
    e.add_argument("--model", help="fail unless the checkpoint holds this model")
    _add_data_args(e)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
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
    _add_data_args(di)
    dc = dsub.add_parser("check", help="verify the checksums of every local copy")
    dc.add_argument("--data-dir", default=None)
    dd = dsub.add_parser("download", help="download and verify into the user cache")
    dd.add_argument("--dest", help="folder to download into (default: the user cache)")
    d.set_defaults(func=cmd_data)
    from .experiments import commands as experiment_commands

    experiment_commands.add_parsers(sub)  # cv, boost, ablate, reproduce, epochs-table (issue 3)
    report_commands.add_parsers(sub)  # report, compare
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except FashionbenchError as e:
        print(f"fashionbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("fashionbench: interrupted; a run can be continued with `fashionbench train --resume RUN_DIR`",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
