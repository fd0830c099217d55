"""One-change-at-a-time ablation (study 001) with a noise-aware table of deltas.

A baseline config and a list of variations (each a few config changes) are run, each over
`seeds` seeds; then one run combines the variations that helped. Every cell is a mean over
seeds, and a difference counts as real only when it exceeds twice the standard error of the
difference, estimated from the pooled seed-to-seed spread of all cells.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .. import runs
from ..data.sources import Dataset, load_dataset
from ..errors import ConfigError
from ..track import log_group_result, tracked_group
from ..train.config import TrainConfig, validate
from ..utils import atomic_write_json
from .parallel import check_jobs, run_jobs, train_metrics

log = logging.getLogger("fashionbench.ablate")

COMBINE_RULES = ("positive", "significant")


@dataclass
class Variation:
    name: str
    change: dict = field(default_factory=dict)

    def apply(self, base: TrainConfig) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(self.change) - fields
        if unknown:
            raise ConfigError(f"variation {self.name!r} changes unknown config keys {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(fields))}")
        return base.replace(**self.change)


def parse_variation(text: str) -> Variation:
    """'NAME:key=value,key=value' (values parsed as JSON where possible), e.g. 'sgd:optimizer=sgd,lr=0.001'."""
    if ":" not in text:
        raise ConfigError(f"--vary expects NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    name, rest = text.split(":", 1)
    if not name.strip():
        raise ConfigError(f"--vary {text!r} has no name; write NAME:KEY=VALUE, e.g. sgd:optimizer=sgd")
    change = {}
    for pair in filter(None, rest.split(",")):
        if "=" not in pair:
            raise ConfigError(f"--vary {text!r}: {pair!r} is not KEY=VALUE")
        k, v = pair.split("=", 1)
        k = k.strip().replace("-", "_")
        try:
            value = json.loads(v)
        except json.JSONDecodeError:
            value = v
        if k == "augment" and isinstance(value, str):
            value = [] if value == "none" else value.split("+")
        change[k] = value
    if not change:
        raise ConfigError(f"--vary {text!r} changes nothing")
    return Variation(name.strip(), change)


def load_spec(path: str | Path) -> tuple[dict, list[Variation]]:
    """A JSON file {"baseline": {config...}, "variations": [{"name": ..., "change": {...}}]}."""
    shape = "expected JSON with 'baseline' and 'variations': [{'name': ..., 'change': {...}}]"
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"ablation spec {path}: cannot read it ({e}); {shape}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("variations"), list):
        raise ConfigError(f"ablation spec {path}: no 'variations' list; {shape}")
    base = spec.get("baseline", {})
    if not isinstance(base, dict):
        raise ConfigError(f"ablation spec {path}: 'baseline' must be an object of config fields; {shape}")
    variations = []
    for i, v in enumerate(spec["variations"], 1):
        if not (isinstance(v, dict) and isinstance(v.get("name"), str) and v["name"].strip()
                and isinstance(v.get("change"), dict)):
            raise ConfigError(f"ablation spec {path}: variation {i} needs a 'name' and a 'change' object; {shape}")
        variations.append(Variation(v["name"].strip(), v["change"]))
    return base, variations


def pooled_std(cells: dict[str, list[float]]) -> float | None:
    """Seed-to-seed standard deviation pooled over every cell with at least two seeds."""
    num = sum((len(v) - 1) * statistics.variance(v) for v in cells.values() if len(v) > 1)
    dof = sum(len(v) - 1 for v in cells.values() if len(v) > 1)
    return math.sqrt(num / dof) if dof else None


def delta_rows(cells: dict[str, list[float]], baseline: str = "baseline", k: float = 2.0) -> list[dict]:
    """Mean, std, delta vs baseline, the noise threshold (k standard errors) and a verdict per cell."""
    if baseline not in cells:
        raise ConfigError(f"no {baseline!r} cell to compare with")
    s = pooled_std(cells)
    base = cells[baseline]
    base_mean = statistics.fmean(base)
    rows = []
    for name, accs in cells.items():
        mean = statistics.fmean(accs)
        row = {"name": name, "n": len(accs), "mean": mean,
               "std": statistics.stdev(accs) if len(accs) > 1 else None,
               "delta": None if name == baseline else mean - base_mean, "threshold": None, "verdict": "baseline"}
        if name != baseline:
            if s is None:
                row["verdict"] = "noise unknown (use --seeds 2 or more)"
            else:
                row["threshold"] = k * s * math.sqrt(1 / len(accs) + 1 / len(base))
                if abs(row["delta"]) <= row["threshold"]:
                    row["verdict"] = "within noise"
                else:
                    row["verdict"] = "better" if row["delta"] > 0 else "worse"
        rows.append(row)
    return rows


def helpful(rows: list[dict], rule: str = "positive") -> list[str]:
    if rule not in COMBINE_RULES:
        raise ConfigError(f"--combine-rule must be one of {', '.join(COMBINE_RULES)}, got {rule!r}")
    if rule == "significant":
        return [r["name"] for r in rows if r["verdict"] == "better"]
    return [r["name"] for r in rows if r["delta"] is not None and r["delta"] > 0]


def combine_changes(variations: list[Variation], names: list[str], rows: list[dict]) -> dict:
    """Merge the changes of the helpful variations; on a key two of them set, the larger gain wins."""
    gain = {r["name"]: r["delta"] or 0.0 for r in rows}
    merged: dict = {}
    for v in sorted((v for v in variations if v.name in names), key=lambda v: gain[v.name]):
        for key, value in v.change.items():
            merged[key] = value
    return merged


def run_cells(base: TrainConfig, variations: list[Variation], run_dir: Path, *, seeds: int = 1,
              dataset: Dataset | None = None, overwrite: bool = False, train_fn=None,
              include_baseline: bool = True, jobs: int = 1, tracking=None) -> dict[str, dict]:
    """Train the baseline (unless include_baseline is False) and each variation over `seeds` seeds,
    `jobs` runs at a time.

    train_fn(cfg, run_dir, dataset=, overwrite=, tracking=) -> metrics; a module-level function
    when jobs > 1. Returns {name: {accs, seconds, change}}."""
    train_fn = train_fn or train_metrics
    ds = dataset or load_dataset(base.dataset, base.data_dir)
    cells = [Variation("baseline", {})] * include_baseline + list(variations)
    tasks, owners = [], []
    for v in cells:
        cfg = v.apply(base)
        validate(cfg)
        for i in range(seeds):
            tasks.append({"cfg": cfg.replace(seed=base.seed + i),
                          "run_dir": run_dir / v.name / f"seed{base.seed + i}", "overwrite": overwrite,
                          "tracking": tracking})
            owners.append((v, base.seed + i))
    metrics = run_jobs(train_fn, tasks, jobs=jobs, dataset=ds, desc="ablation runs")
    out: dict[str, dict] = {v.name: {"accs": [], "seconds": [], "change": v.change} for v in cells}
    for (v, seed), m in zip(owners, metrics, strict=True):
        out[v.name]["accs"].append(m["test_accuracy"])
        out[v.name]["seconds"].append(m["train_seconds"])
        log.info("%s seed %d: test accuracy %.4f", v.name, seed, m["test_accuracy"])
    return out


def ablate(base: TrainConfig, variations: list[Variation], run_dir: str | Path, *, seeds: int = 1,
           dataset: Dataset | None = None, combine: bool = True, combine_rule: str = "positive",
           overwrite: bool = False, train_fn=None, jobs: int = 1, tracking=None) -> dict:
    """Baseline + each variation, then (if any helped) one run combining them; writes ablation.json.

    `jobs` trains that many runs at a time (one thread each); `tracking` nests every run under
    one tracked run for the whole ablation."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    check_jobs(jobs)
    names = [v.name for v in variations]
    if len(set(names)) != len(names) or "baseline" in names or "combined" in names:
        raise ConfigError("variation names must be unique and not 'baseline' or 'combined'")
    for v in variations:  # reject a bad variation before hours of training, not after
        validate(v.apply(base))
    run_dir = Path(run_dir)
    ds = dataset or load_dataset(base.dataset, base.data_dir)
    common = {"seeds": seeds, "dataset": ds, "overwrite": overwrite, "train_fn": train_fn, "jobs": jobs}
    params = {**base.to_dict(), "seeds": seeds, "variations": {v.name: v.change for v in variations}}
    with tracked_group(tracking, f"ablate {base.recipe or base.model}", params, root=run_dir) as group:
        cells = run_cells(base, variations, run_dir, tracking=group, **common)
        rows = delta_rows({k: v["accs"] for k, v in cells.items()})
        helped = helpful(rows, combine_rule)
        combined_change = combine_changes(variations, helped, rows) if helped else {}
        if combine and len(helped) >= 1 and combined_change:
            more = run_cells(base, [Variation("combined", combined_change)], run_dir, include_baseline=False,
                             tracking=group, **common)
            cells["combined"] = more["combined"]
            rows = delta_rows({k: v["accs"] for k, v in cells.items()})
        result = {"baseline": base.to_dict(), "seeds": seeds, "combine_rule": combine_rule, "helped": helped,
                  "combined_change": combined_change, "cells": cells, "rows": rows, "jobs": jobs}
        atomic_write_json(run_dir / runs.ABLATION_SUMMARY, result)
        log_group_result(group, {f"{r['name']}_mean": r["mean"] for r in rows}, [run_dir / runs.ABLATION_SUMMARY])
    return result


def _change_text(change: dict) -> str:
    return ", ".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in change.items()) or "-"


def format_ablation(result: dict) -> str:
    seeds = result["seeds"]
    lines = [f"ablation over {seeds} seed{'s' if seeds > 1 else ''} (mean test accuracy; a delta is real when it "
             "exceeds 2 standard errors of the difference, from the pooled seed-to-seed spread)",
             f"{'cell':<14} {'change':<34} {'accuracy':>16} {'delta':>8} {'noise':>7}  verdict"]
    for r in result["rows"]:
        cell = result["cells"][r["name"]]
        acc = f"{100 * r['mean']:.2f}" + (f" +- {100 * r['std']:.2f}" if r["std"] is not None else "")
        delta = "" if r["delta"] is None else f"{100 * r['delta']:+.2f}"
        noise = "" if r["threshold"] is None else f"{100 * r['threshold']:.2f}"
        lines.append(f"{r['name']:<14} {_change_text(cell['change'])[:34]:<34} {acc:>16} {delta:>8} {noise:>7}  "
                     f"{r['verdict']}")
    if result["helped"]:
        lines.append(f"helped ({result['combine_rule']}): {', '.join(result['helped'])}; combined change: "
                     f"{_change_text(result['combined_change'])}")
    else:
        lines.append("no variation helped; no combined run")
    return "\n".join(lines)
