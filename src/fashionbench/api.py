"""The public Python API: what `import fashionbench` offers a notebook, and what the CLI calls.

    import fashionbench as fb
    run = fb.train(recipe="fast-60s", epochs=4)          # a RunResult: model, metrics, state
    clf = fb.load(run.run_dir)                           # a Predictor
    clf.predict(fb.datasets.load().test_images[:8])      # top-3 classes with probabilities

Every function takes explicit arguments and returns a value; printing is the CLI's business.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .data.sources import Dataset, dataset_args, load_dataset
from .errors import ConfigError
from .inference import Predictor
from .run_lock import study_folder
from .train.config import TrainConfig, resolve_config
from .train.run import OUTPUTS, default_run_dir, load_run_config, train_run
from .train.testing import RunResult
from .utils import set_threads


def make_config(model: str | None = None, *, recipe: str | None = None, config: str | Path | Mapping | None = None,
           **overrides) -> TrainConfig:
    """A checked TrainConfig: defaults < recipe < config file (or dict) < keyword overrides."""
    if model is not None:
        overrides["model"] = model
    return resolve_config(recipe=recipe, config=config, overrides=overrides)


def train(model: str | None = None, *, recipe: str | None = None, config: str | Path | Mapping | None = None,
          out: str | Path | None = None, save: bool = True, overwrite: bool = False, data: Dataset | None = None,
          report: bool = True, callbacks: Sequence = (), track=None, tracking_uri: str | None = None, dist=None,
          **overrides) -> RunResult:
    """Train a model and return its RunResult (the trained model, metrics, state, test logits).

    `model`/`recipe`/`config` and keyword overrides (any TrainConfig field: epochs=3, lr=0.1,
    augment="flip", model_args={...}) make the config; `out` is the run folder (default
    runs/<recipe or model>-s<seed>-<time>; `save=False` writes nothing); `data` passes an
    already loaded Dataset; `report=False` skips the HTML report and its t-SNE; `track`
    ("mlflow", "tensorboard" or a `track.TrackingSpec`) logs the run there too; `dist` (a
    `train.distributed.Distributed`) makes this process one rank of a torchrun job."""
    cfg = make_config(model, recipe=recipe, config=config, **overrides)
    run_dir = None if not save else Path(out) if out is not None else default_run_dir(cfg)
    if dist is not None and run_dir is not None:  # every rank uses rank 0's folder name (its clock)
        run_dir = dist.broadcast_object(run_dir)
    outputs = OUTPUTS if report else tuple(o for o in OUTPUTS if o != "report")
    return train_run(cfg, run_dir, dataset=data, overwrite=overwrite, callbacks=callbacks, outputs=outputs, dist=dist,
                     tracking=tracking(track, tracking_uri))


def resume(run_dir: str | Path, *, device: str | None = None, threads: int | None = None,
           data: Dataset | None = None, callbacks: Sequence = (), track=None, tracking_uri: str | None = None,
           dist=None) -> RunResult:
    """Continue an interrupted run from its last.pt, with its own saved config. The threads are this
    call's (default: the model's own choice, as for a new run), not those an earlier start was given:
    a run started with --threads 1 beside another job resumes alone at full speed."""
    cfg = load_run_config(run_dir) if dist is None else dist.on_writer(lambda: load_run_config(run_dir))
    changes = {"threads": threads} | ({"device": device} if device is not None else {})
    return train_run(cfg.replace(**changes), run_dir, dataset=data, resume=True, callbacks=callbacks, dist=dist,
                     tracking=tracking(track, tracking_uri))


def tracking(track, uri: str | None = None, experiment: str | None = None):
    """A `track.TrackingSpec` from "mlflow" / "tensorboard" (checked: the package is installed), or None."""
    if track is None or track == "none":
        return None
    from .track import TrackingSpec, tracking_spec

    return track if isinstance(track, TrackingSpec) else tracking_spec(track, uri, experiment)


def _checkpoints(value) -> list:
    """One checkpoint (a path or a checkpoint dict) or a sequence of them -> a non-empty list."""
    paths = [value] if isinstance(value, (str, Path, dict)) else list(value)
    if not paths:
        raise ConfigError("no checkpoint given; pass at least one checkpoint file or run folder")
    return paths


def load(path: str | Path | Sequence[str | Path], *, device: str = "auto", precision: str = "auto",
         tta: Sequence[str] | str | None = None, batch_size: int = 1000, photo_method: str = "auto",
         imagenet_weight: float = 0.0, threads: int | None = None) -> Predictor:
    """A Predictor from a checkpoint (best.pt / last.pt) or a run folder. It takes Fashion-MNIST
    arrays and photos alike: `fashionbench.load(ckpt).predict(["a.jpg", pil_image])`;
    `imagenet_weight=1` combines it with EfficientNet-Lite0's zero-shot ImageNet prior on photos;
    `threads` sets torch's CPU threads for its forward (default: the model's own choice, else torch's).
    A list of several: their ensemble (`Predictor.ensemble`, the mean of their logits / temperature)."""
    return Predictor.from_checkpoints(_checkpoints(path), device=device, precision=precision, tta=tta,
                                      batch_size=batch_size, photo_method=photo_method,
                                      imagenet_weight=imagenet_weight, threads=threads)


def predict_photos(checkpoint: str | Path | Predictor, paths: Sequence[str | Path], *, k: int = 3,
                   photo_method: str = "auto", device: str = "auto", precision: str = "auto",
                   tta: Sequence[str] | str | None = None, batch_size: int = 256, threads: int | None = None,
                   keep_steps: bool = False, progress: bool = False, imagenet_weight: float = 0.0):
    """Photos (files, folders searched recursively, globs) -> PhotoPredictions: per photo the top-k
    classes with calibrated probabilities and the unknown-item flag; unreadable files in `problems`."""
    from .evaluate.photos import predict_files

    set_threads(threads)
    predictor = checkpoint if isinstance(checkpoint, Predictor) else load(
        checkpoint, device=device, precision=precision, tta=tta, batch_size=batch_size, photo_method=photo_method,
        imagenet_weight=imagenet_weight, threads=threads)
    return predict_files(predictor, paths, keep_steps=keep_steps, progress=progress, k=k)


def evaluate_photos(checkpoint: str | Path | Predictor, labels_csv: str | Path, *, out: str | Path | None = None,
                    photo_method: str = "auto", device: str = "auto", precision: str = "auto",
                    tta: Sequence[str] | str | None = None, batch_size: int = 256, threads: int | None = None,
                    progress: bool = False, imagenet_weight: float = 0.0, keep_steps: bool = False):
    """A folder's labels.csv (path, fmnist_label; empty = none of the classes) -> PhotoEvaluation
    (top-1/top-2, per-class accuracy, confusion matrix, unknown-item AUROC); with `out`, also
    report.html and metrics.json there."""
    from .evaluate.photos import evaluate_photos as run
    from .evaluate.photos import write_photo_report

    set_threads(threads)
    predictor = checkpoint if isinstance(checkpoint, Predictor) else load(
        checkpoint, device=device, precision=precision, tta=tta, batch_size=batch_size, photo_method=photo_method,
        imagenet_weight=imagenet_weight, threads=threads)
    ev = run(predictor, labels_csv, progress=progress, keep_steps=keep_steps)
    if out is not None:
        ev.report = write_photo_report(ev, out)
    return ev


def evaluate(checkpoint: str | Path | Sequence[str | Path], *, data: Dataset | None = None, dataset: str | None = None,
             data_dir: str | None = None, device: str = "auto", precision: str = "auto",
             tta: Sequence[str] | str | None = None, batch_size: int = 1000, threads: int | None = None,
             expect_model: str | None = None) -> dict:
    """Test-set metrics of a checkpoint: accuracy, loss, per-class accuracy (plus its model and path).

    Several checkpoints (a list): their ensemble (`Predictor.ensemble`: the mean of their logits /
    temperature, each member with its own TTA); its metrics, with each member's under "members"."""
    from .evaluate.metrics import classification_metrics
    from .forward import ensemble_logits
    from .inference import check_same_classes

    set_threads(threads)
    predictors = [Predictor.from_checkpoint(p, device=device, precision=precision, tta=tta, batch_size=batch_size,
                                            expect_model=expect_model, threads=threads) for p in _checkpoints(checkpoint)]
    check_same_classes(predictors)
    first = predictors[0]
    cfg = first.info.get("config") or {}
    ds = data or load_dataset(*dataset_args(cfg, dataset, data_dir))
    labels = ds.test_labels.numpy()
    members = []
    for p in predictors:
        if ds.num_classes != p.num_classes:
            raise ConfigError(f"{p.info['path']} has {p.num_classes} classes but the dataset has "
                              f"{ds.num_classes}; evaluate it on the dataset it was trained on")
        logits = p.predict_logits(ds.test_images)
        members.append(({"checkpoint": p.info["path"], "model": p.info["model"], "epoch": p.info.get("epoch"),
                         "tta": p.tta, "images": len(labels), **classification_metrics(logits, labels, first.class_names)},
                        logits / p.temperature))
    if len(members) == 1:
        return members[0][0]
    combined = ensemble_logits([z for _, z in members])  # what Predictor.ensemble computes, members computed once
    return {"checkpoint": [m["checkpoint"] for m, _ in members], "model": "ensemble", "epoch": None,
            "tta": first.tta, "images": len(labels), "combine": "mean of logits / temperature",
            **classification_metrics(combined, labels, first.class_names), "members": [m for m, _ in members]}


def _study_dir(out: str | Path | None, name: str) -> Path:
    return Path(out) if out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cross_validate(folds: int = 3, model: str | None = None, *, recipe: str | None = None, config=None,
                   out: str | Path | None = None, overwrite: bool = False, data: Dataset | None = None,
                   jobs: int = 1, track=None, tracking_uri: str | None = None, **overrides) -> dict:
    """Stratified k-fold cross-validation (study 003); one run folder per fold, cv.json beside them.

    `jobs` trains that many folds at a time in separate processes (one thread each); `track`
    logs each fold as a run nested under one for the cross-validation."""
    from .experiments.crossval import cross_validate as run

    cfg = make_config(model, recipe=recipe, config=config, **overrides)
    spec = tracking(track, tracking_uri)
    with study_folder(_study_dir(out, f"cv-{cfg.model}")) as out:
        return {**run(cfg, out, folds, dataset=data, overwrite=overwrite, jobs=jobs, tracking=spec), "out": str(out)}


def boost(model: str | None = None, *, recipe: str | None = None, config=None, combine: str = "softmax",
          out: str | Path | None = None, overwrite: bool = False, data: Dataset | None = None, track=None,
          tracking_uri: str | None = None, **overrides) -> dict:
    """Three boosted nets whose outputs are added (study 000, Drucker et al. 1993)."""
    from .experiments.boosting import boost as run

    cfg = make_config(model, recipe=recipe, config=config, **overrides)
    spec = tracking(track, tracking_uri)
    with study_folder(_study_dir(out, f"boost-{cfg.model}")) as out:
        return {**run(cfg, out, dataset=data, combine=combine, overwrite=overwrite, tracking=spec), "out": str(out)}


def ablate(variations: Sequence[str] = (), model: str | None = None, *, spec: str | Path | None = None,
           recipe: str | None = None, config=None, seeds: int = 1, combine: bool = True,
           combine_rule: str = "positive", out: str | Path | None = None, overwrite: bool = False,
           data: Dataset | None = None, jobs: int = 1, track=None, tracking_uri: str | None = None,
           **overrides) -> dict:
    """Baseline + one-change-at-a-time variations ('NAME:key=value,...' or a spec file) + their combination.

    `jobs` trains that many runs at a time in separate processes (one thread each)."""
    from .experiments.ablation import ablate as run
    from .experiments.ablation import load_spec, parse_variation

    base, spec_vars = load_spec(spec) if spec else ({}, [])
    if model is not None:
        overrides["model"] = model
    cfg = resolve_config(recipe=recipe, base=base, config=config, overrides=overrides)
    vs = spec_vars + [parse_variation(v) if isinstance(v, str) else v for v in variations]
    if not vs:
        raise ConfigError("ablate needs variations: --vary NAME:KEY=VALUE[,KEY=VALUE] (repeatable) or --spec FILE")
    spec = tracking(track, tracking_uri)
    with study_folder(_study_dir(out, f"ablate-{cfg.model}")) as out:
        return {**run(cfg, vs, out, seeds=seeds, dataset=data, combine=combine, combine_rule=combine_rule,
                      overwrite=overwrite, jobs=jobs, tracking=spec), "out": str(out)}


def reproduce(name: str, *, seeds: int = 1, rows: Sequence[str] | None = None, epochs_scale: float = 1.0,
              data_scale: float = 1.0, weights: Mapping[str, str] | None = None, out: str | Path | None = None,
              data_dir: str | None = None, data: Dataset | None = None, device: str | None = None,
              precision: str | None = None, threads: int | None = None, jobs: int = 1, track=None,
              tracking_uri: str | None = None) -> dict:
    """Run a seed study's table; writes paper_vs_ours.{md,csv,json} and returns the report.

    `jobs` trains that many of its runs (rows and seeds) at a time, one thread each."""
    from .experiments.runner import Shrink, run_table

    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    overrides = {k: v for k, v in {"device": device, "precision": precision, "threads": threads}.items()
                 if v is not None}
    out = Path(out) if out else Path("runs") / "reproduce" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    report = run_table(name, out, seeds=seeds, shrink=Shrink(epochs_scale, data_scale), rows=list(rows or []) or None,
                       weights=dict(weights or {}), overrides=overrides, data_dir=data_dir, dataset=data, jobs=jobs,
                       tracking=tracking(track, tracking_uri))
    return {**report, "out": str(out)}


def sweep(space, trials: int, model: str | None = None, *, recipe: str | None = None, config=None,
          out: str | Path | None = None, storage: str | None = None, study: str | None = None, jobs: int = 1,
          pruner: str = "median", track=None, tracking_uri: str | None = None, data: Dataset | None = None,
          **overrides) -> dict:
    """An Optuna study over `space` (a TOML file, or a dict {field: {low, high, log} | {choices}}) on the
    validation accuracy; resumable: the same call continues it until `trials` trials have finished.

    The sweep folder (default runs/sweeps/<study>) holds the trials' run folders, the journal
    file (unless `storage` names a database), best_config.json, trials.csv/.md and plots.html."""
    from .experiments.sweep import load_space, parse_space
    from .experiments.sweep import sweep as run

    params = load_space(space) if isinstance(space, (str, Path)) else parse_space(space)
    if model is not None:
        overrides["model"] = model
    base = {"recipe": recipe, "config": config, "overrides": {k: v for k, v in overrides.items() if v is not None}}
    stem = Path(space).stem if isinstance(space, (str, Path)) else "space"
    name = study or f"{recipe or overrides.get('model') or 'sweep'}-{stem}"
    out = Path(out) if out else Path("runs") / "sweeps" / name
    threads = overrides.get("threads")
    return run(base, params, out, trials=trials, storage=storage, study_name=name, jobs=jobs, pruner=pruner,
               seed=int(overrides.get("seed") or 0), tracking=tracking(track, tracking_uri),
               dataset=data, threads=threads)


def report(run_dir: str | Path, *, recompute: bool = False, dataset: str | None = None, data_dir: str | None = None,
           device: str = "auto", precision: str | None = None, threads: int | None = None) -> Path:
    """Rebuild report.html (and figures/) of a run folder; returns the report's path."""
    from .evaluate.report import rebuild_report

    set_threads(threads)
    return rebuild_report(run_dir, recompute=recompute, data_dir=data_dir, dataset_name=dataset, device=device,
                          precision=precision)


def compare(run_dirs: Sequence[str | Path], out: str | Path = ".", *, overwrite: bool = False) -> dict:
    """Compare runs; writes compare.html and compare.md into `out`; returns their paths and the Markdown."""
    from .evaluate.compare import write_comparison

    html_path, md_path, md = write_comparison(list(run_dirs), out, overwrite=overwrite)
    return {"html": html_path, "markdown_path": md_path, "markdown": md}


def list_models() -> list[str]:
    from .models.registry import list_models as names

    return names()


def list_recipes() -> dict[str, str]:
    from .train.recipes import RECIPES

    return {name: r["description"] for name, r in RECIPES.items()}
