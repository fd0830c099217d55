"""Run a seed table and write paper_vs_ours.md / .csv.

A table (experiments/tables/NAME.json) lists rows: the run (kind train, boost, cv), its settings
as the paper gives them plus our choices for what it leaves unstated (`config`), and the
paper's numbers. Kind `epochs` tables (study 004) are one long run read every N epochs;
kind `ablation` tables (study 001) also get the noise-aware delta table.
"""

from __future__ import annotations

import json
import logging
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.sources import Dataset, load_dataset
from ..errors import ConfigError, FashionbenchError
from ..models._pretrained import check_weights_option
from ..track import log_group_result, tracked_group
from ..train.config import TrainConfig
from ..train.recipes import recipe_config
from ..utils import atomic_write_json, atomic_write_text, machine_description
from .ablation import delta_rows
from .epochs import VALIDATION_NOTE, test_as_validation
from .parallel import check_jobs, run_jobs
from .table_report import format_csv, format_markdown

log = logging.getLogger("fashionbench.reproduce")

TABLES_DIR = Path(__file__).parent / "tables"


@dataclass
class Shrink:
    """Scale a table down for a quick check; the output says so."""

    epochs_scale: float = 1.0
    data_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.epochs_scale <= 1 or not 0 < self.data_scale <= 1:
            raise ConfigError("--epochs-scale and --data-scale must be in (0, 1]")

    @property
    def shrunk(self) -> bool:
        return self.epochs_scale < 1 or self.data_scale < 1

    def epochs(self, n: int) -> int:
        return max(1, round(n * self.epochs_scale))

    def describe(self) -> str:
        if not self.shrunk:
            return "full table (as the paper describes it)"
        return (f"SHRUNK for a quick check: epochs x{self.epochs_scale:g}, training data x{self.data_scale:g}; "
                "these numbers are NOT comparable with the paper's")


def list_tables() -> list[dict]:
    out = []
    for path in sorted(TABLES_DIR.glob("*.json")):
        t = json.loads(path.read_text())
        out.append({"name": t["name"], "study": t["study"], "title": t["title"], "rows": len(t["rows"]),
                    "kinds": sorted({r.get("kind", t.get("kind", "train")) for r in t["rows"]})})
    return out


def load_table(name: str) -> dict:
    path = TABLES_DIR / f"{name}.json"
    if not path.is_file():
        names = ", ".join(t["name"] for t in list_tables())
        raise ConfigError(f"unknown table {name!r}; choose one of {names} (`fashionbench reproduce --list`)")
    return json.loads(path.read_text())


def row_config(row: dict, shrink: Shrink, overrides: dict | None = None) -> TrainConfig:
    """A row's TrainConfig: its `recipe` (if it names one), then its `config`, then the command line's overrides."""
    base = recipe_config(row["recipe"]) if row.get("recipe") else {}
    cfg = {**base, "model": row["model"], **row.get("config", {}), **(overrides or {})}
    epochs = cfg.get("epochs", TrainConfig.epochs)
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"table row {row.get('id')!r}: epochs must be a positive integer, got {epochs!r}")
    cfg["epochs"] = shrink.epochs(epochs)
    if cfg.get("warmup_epochs"):  # the warmup shrinks with the run it belongs to
        cfg["warmup_epochs"] = round(cfg["warmup_epochs"] * cfg["epochs"] / epochs, 3)
    cfg["data_fraction"] = cfg.get("data_fraction", 1.0) * shrink.data_scale
    if shrink.data_scale < 1:  # a shrunk subset may hold fewer images than one of the recipe's batches
        cfg["drop_last"] = False
    return TrainConfig.from_dict(cfg)


def paper_value(paper: dict) -> tuple[float | None, bool]:
    """(primary paper number, whether it is only approximate)."""
    if paper.get("test_accuracy") is not None:
        return paper["test_accuracy"], False
    if paper.get("test_accuracy_approx") is not None:
        return paper["test_accuracy_approx"], True
    return None, False


def _imagenet_cached(model: str) -> bool:
    from torchvision.models import ResNet18_Weights, VGG16_BN_Weights

    w = {"resnet18_tl": ResNet18_Weights.IMAGENET1K_V1, "vgg16_bn_tl": VGG16_BN_Weights.IMAGENET1K_V1}.get(model)
    return w is not None and (Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name).is_file()


def _command(name: str, row_id: str | None, seeds: int, shrink: Shrink, overrides: dict | None = None,
             jobs: int = 1) -> str:
    parts = ["fashionbench reproduce", name]
    if row_id:
        parts.append(f"--rows {row_id}")
    if seeds != 1:
        parts.append(f"--seeds {seeds}")
    if shrink.epochs_scale < 1:
        parts.append(f"--epochs-scale {shrink.epochs_scale:g}")
    if shrink.data_scale < 1:
        parts.append(f"--data-scale {shrink.data_scale:g}")
    for key in ("device", "precision", "threads"):  # the command-line overrides, so the line reruns the same thing
        if (overrides or {}).get(key) is not None:
            parts.append(f"--{key} {overrides[key]}")
    if jobs != 1:
        parts.append(f"--jobs {jobs}")
    return " ".join(parts)


def _run_one(kind: str, row: dict, cfg: TrainConfig, run_dir: Path, *, dataset: Dataset, tracking=None) -> dict:
    """One seed of a row (a picklable job): accuracy, seconds, epochs, details; or {"error": message}."""
    from ..train.run import train_run
    from .boosting import boost
    from .crossval import cross_validate

    t0 = time.perf_counter()
    try:
        if kind == "train":
            m = train_run(cfg, run_dir, dataset=dataset, tracking=tracking).metrics
            one = {"accuracy": m["test_accuracy"], "seconds": m["train_seconds"], "epochs": m["epochs"]}
        elif kind == "boost":
            r = boost(cfg, run_dir, dataset=dataset, tracking=tracking)
            one = {"accuracy": r["ensemble_test_accuracy"], "seconds": r["train_seconds"], "epochs": cfg.epochs,
                   "detail": {"nets": [n["test_accuracy"] for n in r["nets"]]}}
        elif kind == "cv":
            r = cross_validate(cfg, run_dir, row.get("folds", 3), dataset=dataset, tracking=tracking)
            one = {"accuracy": r["test_accuracy"], "seconds": r["train_seconds"], "epochs": cfg.epochs,
                   "detail": {"val_mean": r["val_mean"], "val_std": r["val_std"], "chosen_fold": r["chosen_fold"]}}
        else:
            raise ConfigError(f"table row {row['id']!r} has unknown kind {kind!r}")
    except FashionbenchError as e:  # the row fails (or is skipped); the table goes on
        return {"error": str(e)}
    one["detail"] = {**one.get("detail", {}), "wall_seconds": round(time.perf_counter() - t0, 2)}
    return one


def run_table(name: str, out_dir: str | Path, *, seeds: int = 1, shrink: Shrink | None = None,
              rows: list[str] | None = None, dataset: Dataset | None = None, weights: dict | None = None,
              overrides: dict | None = None, data_dir: str | None = None, jobs: int = 1, tracking=None) -> dict:
    """Run a table's rows over `seeds` seeds and write paper_vs_ours.{md,csv,json} into out_dir.

    weights: {model name: local weights file} for rows that need ImageNet weights. `jobs` trains
    that many of the table's runs (every row's seeds) at a time, one thread each; `tracking`
    nests every run under one tracked run for the table."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    check_jobs(jobs)
    shrink = shrink or Shrink()
    table = load_table(name)
    out_dir = Path(out_dir)
    all_ids = [r["id"] for r in table["rows"]]
    if rows:
        unknown = [r for r in rows if r not in all_ids]
        if unknown:
            raise ConfigError(f"table {name} has no row {', '.join(unknown)}; rows: {', '.join(all_ids)}")
    check_weights_option(weights or {})
    ds = dataset or load_dataset("fashion-mnist", data_dir)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    context = {"seeds": seeds, "shrink": shrink, "overrides": overrides, "jobs": jobs}
    params = {"table": name, "seeds": seeds, "rows": ",".join(rows or all_ids), "shrink": shrink.describe()}
    with tracked_group(tracking, f"reproduce {name}", params, root=out_dir) as group:
        if table.get("kind") == "epochs":
            results = _run_epochs_table(table, out_dir, rows, ds, group, **context)
        else:
            prepared = [_prepare_row(table, row, out_dir, weights or {}, group, **context)
                        for row in table["rows"] if not rows or row["id"] in rows]
            outcomes = iter(run_jobs(_run_one, [t for _, ts in prepared for t in ts], jobs=jobs, dataset=ds,
                                     desc=f"{name} runs"))
            results = [_record(table, res, tasks, [next(outcomes) for _ in tasks]) for res, tasks in prepared]
        if table.get("kind") == "ablation":
            cells = {r["id"]: r["ours"] for r in results if r["ours"]}
            if "baseline" in cells:
                verdicts = {d["name"]: d for d in delta_rows(cells)}
                for r in results:
                    d = verdicts.get(r["id"])
                    if d:
                        r["delta_vs_baseline"], r["noise_threshold"], r["verdict"] = (d["delta"], d["threshold"],
                                                                                      d["verdict"])
        report = {"table": name, "study": table["study"], "title": table["title"], "source": table["source"],
                  "notes": table.get("notes"), "seeds": seeds, "shrink": shrink.describe(), "shrunk": shrink.shrunk,
                  "command": _command(name, ",".join(rows) if rows else None, seeds, shrink, overrides, jobs),
                  "started": started, "machine": machine_description(), "jobs": jobs,
                  "dataset": ds.name, "rows": results}
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "paper_vs_ours.json", report)
        atomic_write_text(out_dir / "paper_vs_ours.md", format_markdown(report))
        atomic_write_text(out_dir / "paper_vs_ours.csv", format_csv(report))
        ours = {f"{r['id']}_accuracy": statistics.fmean(r["ours"]) for r in results if r["ours"]}
        log_group_result(group, ours, [out_dir / f"paper_vs_ours.{ext}" for ext in ("md", "csv", "json")])
    return report


def _prepare_row(table: dict, row: dict, out_dir: Path, weights: dict, tracking, *, seeds: int, shrink: Shrink,
                 overrides: dict | None, jobs: int) -> tuple[dict, list[dict]]:
    """A row's result record and its runs (one per seed) as jobs for _run_one; no jobs when its
    config is refused or its ImageNet weights cannot be had (the record says why)."""
    kind = row.get("kind", "train")
    paper, approx = paper_value(row["paper"])
    res = {"id": row["id"], "label": row["label"], "kind": kind, "model": row["model"], "paper": paper,
           "paper_approx": approx, "ours": [], "seconds": [], "epochs": None, "status": "ok", "message": "",
           "command": _command(table["name"], row["id"], seeds, shrink, overrides, jobs), "details": []}
    try:
        cfg = row_config(row, shrink, overrides)
        if row.get("needs") == "imagenet" and cfg.pretrained == "imagenet":
            if row["model"] in weights:
                cfg = cfg.replace(pretrained=None, weights=weights[row["model"]])
                res["message"] = f"started from local weights {weights[row['model']]}"
            elif not _imagenet_cached(row["model"]):
                old = socket.getdefaulttimeout()
                socket.setdefaulttimeout(20)
                try:  # fail fast (and skip the row) when the weights cannot be downloaded
                    from ..models.registry import create_model

                    create_model(row["model"], pretrained="imagenet", input_size=32)
                finally:
                    socket.setdefaulttimeout(old)
        row_seeds = row.get("seeds", 1)
        if not isinstance(row_seeds, int) or row_seeds < 1:
            raise ConfigError(f"table row {row['id']!r}: seeds must be a positive integer, got {row_seeds!r}")
    except FashionbenchError as e:
        _fail(table, res, str(e))
        return res, []
    seed_list = [cfg.seed + i for i in range(max(seeds, row_seeds))]  # a row may ask for more seeds than --seeds
    return res, [{"kind": kind, "row": row, "cfg": cfg.replace(seed=s),
                  "run_dir": out_dir / row["id"] / f"seed{s}", "tracking": tracking} for s in seed_list]


def _fail(table: dict, res: dict, message: str) -> None:
    row = next(r for r in table["rows"] if r["id"] == res["id"])
    res["status"] = "skipped" if row.get("needs") == "imagenet" else "failed"
    res["message"] = message
    log.warning("%s/%s %s: %s", table["name"], res["id"], res["status"], message)


def _record(table: dict, res: dict, tasks: list[dict], outcomes: list[dict]) -> dict:
    """Fill a row's record with its seeds' outcomes, in seed order."""
    for task, one in zip(tasks, outcomes, strict=True):
        if "error" in one:
            _fail(table, res, one["error"])
            continue
        res["ours"].append(one["accuracy"])
        res["seconds"].append(one["seconds"])
        res["epochs"] = one["epochs"]
        res["details"].append(one["detail"])
        log.info("%s/%s seed %d: %.4f (%.1f s)", table["name"], res["id"], task["cfg"].seed, one["accuracy"],
                 one["seconds"])
    return res


def _epochs_run(cfg: TrainConfig, run_dir: Path, *, dataset: Dataset, tracking=None) -> dict[int, dict]:
    """One seed of an epochs table (a picklable job): the test set as validation; its history by epoch."""
    from ..data.splits import stratified_subset
    from ..train.run import train_run
    from .epochs import read_history

    joined, split = test_as_validation(dataset, stratified_subset(dataset.train_labels, cfg.data_fraction, cfg.seed))
    train_run(cfg, run_dir, dataset=joined, split=split, overwrite=True, tracking=tracking)
    atomic_write_json(run_dir / VALIDATION_NOTE, {"validation": "test set"})
    return {int(h["epoch"]): h for h in read_history(run_dir)}


def _run_epochs_table(table: dict, out_dir: Path, rows: list[str] | None, ds: Dataset, tracking, *, seeds: int,
                      shrink: Shrink, overrides: dict | None, jobs: int) -> list[dict]:
    run = table["run"]
    cfg = row_config({"model": run["model"], "config": run["config"]}, shrink, overrides).replace(val_fraction=0.0)
    wanted = [r for r in table["rows"] if not rows or r["id"] in rows]
    # scaled row epochs; never beyond the (scaled) run length
    epoch_of = {r["id"]: min(cfg.epochs, max(1, round(r["epoch"] * shrink.epochs_scale))) for r in wanted}
    cfg = cfg.replace(epochs=max(epoch_of.values()))
    tasks = [{"cfg": cfg.replace(seed=cfg.seed + i), "run_dir": out_dir / "run" / f"seed{cfg.seed + i}",
              "tracking": tracking} for i in range(seeds)]
    histories = run_jobs(_epochs_run, tasks, jobs=jobs, dataset=ds, desc=f"{table['name']} runs")
    results = []
    prev_mean = None
    for r in wanted:
        e = epoch_of[r["id"]]
        test = [h[e]["val_accuracy"] for h in histories if e in h]
        train = [h[e]["train_accuracy"] for h in histories if e in h]
        elapsed = [h[e]["elapsed"] for h in histories if e in h]
        mean = statistics.fmean(test) if test else None
        results.append({"id": r["id"], "label": f"{r['label']}" + (f" (ran {e})" if e != r["epoch"] else ""),
                        "kind": "epochs", "model": run["model"], "paper": r["paper"]["test_accuracy"],
                        "paper_approx": False, "paper_train": r["paper"]["train_accuracy"],
                        "paper_time": r["paper"]["time_elapsed"], "ours": test, "ours_train": train,
                        "seconds": elapsed, "epochs": e,
                        "gain": None if prev_mean is None or mean is None else mean - prev_mean,
                        "status": "ok" if test else "failed", "message": "" if test else f"no epoch {e} in history",
                        "command": _command(table["name"], None, seeds, shrink, overrides, jobs), "details": []})
        prev_mean = mean
    return results


def format_list() -> str:
    lines = [f"{'table':<24} {'study':<6} {'rows':>4}  {'kinds':<14} title"]
    for t in list_tables():
        lines.append(f"{t['name']:<24} {t['study']:<6} {t['rows']:>4}  {','.join(t['kinds']):<14} {t['title']}")
    return "\n".join(lines)

