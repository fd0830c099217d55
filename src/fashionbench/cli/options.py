"""Options shared by several commands, and turning parsed flags into API arguments.

Every train-like option defaults to None, so "given on the command line" is told apart from
"left at its default" by presence, not by value."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError

DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "fp32", "bf16"]


def add_data_args(p) -> None:
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist-format"], default=None,
                   help="fashion-mnist (verified checksums) or any folder of MNIST-format IDX files")
    p.add_argument("--data-dir", default=None, help="folder with the four IDX files (.gz or raw); "
                   "default: FASHIONBENCH_DATA, the user cache, the Debian package, then a download")


def add_runtime_args(p, *, defaults: bool = False) -> None:
    """--device, --precision, --threads: the same meaning on every command that runs a model."""
    p.add_argument("--device", choices=DEVICES, default="auto" if defaults else None,
                   help="auto picks cuda, then mps, then cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="auto" if defaults else None,
                   help="auto: bf16 where the hardware runs it natively, else fp32")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default one per core, one for models "
                   "computed in NumPy; 1 lets two jobs share a 2-core machine)")


def add_track_args(p) -> None:
    """--track, --tracking-uri: the same meaning on every command that trains."""
    g = p.add_argument_group("tracking")
    g.add_argument("--track", choices=["mlflow", "tensorboard"], help="also log the runs to MLflow (default store "
                   "sqlite:///mlruns.db) or TensorBoard (event files in each run folder); needs fashionbench[track]")
    g.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else "
                   "sqlite:///mlruns.db) or TensorBoard log folder")


def add_jobs_arg(p) -> None:
    p.add_argument("--jobs", type=int, default=1, metavar="K", help="train K of the independent runs at a time, in "
                   "separate processes with one thread each (two 2-thread jobs on 2 cores slow each other 8x)")


def add_train_args(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "muon"],
                   help="muon: Muon on the conv filters, SGD (--lr, --momentum) on the rest")
    g.add_argument("--lr", type=float, help="(peak) learning rate")
    g.add_argument("--momentum", type=float, help="momentum for sgd/rmsprop")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum (sgd, muon)")
    g.add_argument("--filter-lr", type=float, help="muon: the conv filters' learning rate (default 0.06)")
    g.add_argument("--filter-momentum", type=float, help="muon: the conv filters' momentum (default 0.85)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--loss", choices=["ce", "nll", "mse", "mae"], help="ce: cross-entropy; nll: log-softmax + "
                   "NLL; mse/mae: softmax vs one-hot")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--schedule", choices=["constant", "step", "cosine", "onecycle", "linear", "plateau"])
    g.add_argument("--warmup-epochs", type=float, help="linear warmup (a recipe's scales with --epochs)")
    g.add_argument("--final-lr-factor", type=float, help="cosine/linear schedules end at lr times this")
    g.add_argument("--bias-lr-scale", type=float, help="lr multiplier for biases and norm parameters")
    g.add_argument("--backbone-lr-scale", type=float, help="lr multiplier for all but the classifier head "
                   "(fine-tuning a pretrained network, e.g. 0.1)")
    g.add_argument("--lookahead", action=argparse.BooleanOptionalAction, default=None,
                   help="lookahead EMA of the weights")
    g.add_argument("--drop-last", action=argparse.BooleanOptionalAction, default=None,
                   help="drop the last partial batch")
    g.add_argument("--step-epochs", type=int, help="step schedule: epochs between decays")
    g.add_argument("--gamma", type=float, help="step/plateau schedule: decay factor in (0, 1]")
    g = p.add_argument_group("data")
    add_data_args(g)
    g.add_argument("--augment", help="none or a '+'-joined list: flip (random) or alternating-flip (each image "
                   "mirrored every other epoch), translate, random-resized-crop, rotation, random-erasing, photo")
    g.add_argument("--resize-min", type=int, metavar="PIXELS", help="progressive resizing: train the first epochs "
                   "on PIXELS x PIXELS images, growing to full size between --resize-start and --resize-end")
    g.add_argument("--resize-start", type=float, metavar="EPOCH", help="epoch at which the images start to grow "
                   "(default 0)")
    g.add_argument("--resize-end", type=float, metavar="EPOCH", help="epoch from which the images are full size")
    g.add_argument("--skip-easy", type=float, metavar="SHARE", help="leave this share of the training images "
                   "out of each middle epoch, drawn among the well-learned ones (lowest last loss), whose losses "
                   "count more to make up (InfoBatch); the first epoch and the last eighth see every image")
    g.add_argument("--keep-hard", type=float, metavar="SHARE", help="with --skip-easy: the share of images with "
                   "the highest loss that every epoch trains on (default 0.3)")
    g.add_argument("--normalize", choices=["standardize", "minmax", "per-pixel"])
    g.add_argument("--val-fraction", type=float, help="stratified validation holdout (default 0.1)")
    g.add_argument("--data-fraction", type=float, help="train on a stratified fraction of the training set")
    g.add_argument("--photos", action="append", metavar="LABELS_CSV", help="add your own labelled photos to the "
                   "training set (labels.csv: path,fmnist_label; repeatable)")
    g.add_argument("--photos-repeat", type=int, help="times each of those photos is seen per epoch (default 10)")
    g.add_argument("--teacher", metavar="CHECKPOINT", help="distill: mix this model's calibrated probabilities "
                   "(flip TTA) into the training targets")
    g.add_argument("--teacher-weight", type=float, help="share of the teacher's probabilities in each target "
                   "(default 0.5)")
    g.add_argument("--prune-from", metavar="CHECKPOINT", help="start from this trained FastNet's strongest "
                   "channels (L1 structured pruning down to this model's widths), then fine-tune")
    g = p.add_argument_group("early stopping and evaluation")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without "
                   "improvement of --monitor")
    g.add_argument("--monitor", choices=["val_loss", "val_accuracy", "train_loss", "train_accuracy"])
    g.add_argument("--restore-best", action=argparse.BooleanOptionalAction, default=None,
                   help="evaluate the best epoch's weights")
    g.add_argument("--tta", help="test-time augmentation views: none, flip, translate, flip+translate")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int)
    add_runtime_args(g)
    g.add_argument("--config", help="JSON file of config values (a run's config.json works; flags override it)")
    g.add_argument("--out", help="run folder (default runs/<model>-s<seed>-<time>)")
    g.add_argument("--overwrite", action="store_true", help="replace the run files of an existing --out folder")


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def model_args(pairs: list[str] | None) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--model-arg expects KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def given_flags(args: argparse.Namespace) -> dict:
    """The TrainConfig options given on the command line (model arguments as `model_args`)."""
    from ..train.config import field_names

    flags = {name: getattr(args, name) for name in field_names() if getattr(args, name, None) is not None}
    flags.pop("model_args", None)
    if getattr(args, "model_arg", None):
        flags["model_args"] = model_args(args.model_arg)
    return flags


def check_flags_apply(given: dict, cfg, args: argparse.Namespace) -> None:
    """Flags that only mean something beside another one are refused alone, not silently ignored."""
    from ..errors import ConfigError

    needs = [("teacher_weight", cfg.teacher, "--teacher RUN"), ("photos_repeat", cfg.photos, "--photos LABELS_CSV"),
             ("filter_lr", cfg.optimizer == "muon", "--optimizer muon"),
             ("filter_momentum", cfg.optimizer == "muon", "--optimizer muon"),
             ("keep_hard", cfg.skip_easy > 0, "--skip-easy SHARE")]
    for name, ok, other in needs:
        if name in given and not ok:
            raise ConfigError(f"--{name.replace('_', '-')} has no effect without {other}; add it or drop the flag")
    if getattr(args, "tracking_uri", None) and not getattr(args, "track", None):
        raise ConfigError("--tracking-uri has no effect without --track mlflow|tensorboard; add it or drop the flag")


def config_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for the API's training functions: recipe, config file and given flags."""
    flags = given_flags(args)
    return {"recipe": flags.pop("recipe", None), "config": args.config, **flags}


def tracking_kwargs(args: argparse.Namespace) -> dict:
    return {"track": getattr(args, "track", None), "tracking_uri": getattr(args, "tracking_uri", None)}
