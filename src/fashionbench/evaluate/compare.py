"""Compare runs: one table (HTML with a bar chart, and Markdown) with accuracy intervals, mean +- std
over seeds for runs of the same config, and McNemar's test of every run against the best one."""

from __future__ import annotations

import html
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError
from ..runs import METRICS, RunData, is_run_dir, load_run
from ..utils import atomic_write_text
from . import plots
from .html import html_page, html_table, img_tag
from .stats import bootstrap_accuracy_ci, mcnemar, mean_std

log = logging.getLogger("fashionbench.evaluate")

# Config keys that do not define "the same experiment": runs differing only here are grouped.
NON_GROUPING = ("seed", "device", "data_dir")
ALPHA = 0.05


@dataclass
class RunRow:
    data: RunData
    correct: np.ndarray
    ci: tuple[float, float]
    group: str = ""
    test: dict | None = None  # McNemar against the best run
    note: str = ""

    @property
    def acc(self) -> float:
        return float(self.data.metrics["test_accuracy"])


@dataclass
class Group:
    key: str
    label: str
    runs: list[RunRow] = field(default_factory=list)

    @property
    def accs(self) -> list[float]:
        return [r.acc for r in self.runs]


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders as given, and the run folders directly inside any folder of runs."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise CheckpointError(f"{p} not found; pass run folders written by `fashionbench train` or a folder "
                                  "holding them")
        if p.is_dir() and is_run_dir(p):
            out.append(p)
        elif p.is_dir():
            inner = sorted(q for q in p.iterdir() if q.is_dir() and is_run_dir(q))
            unfinished = [q for q in inner if not (q / METRICS).is_file()]
            if unfinished and len(unfinished) < len(inner):  # still training or crashed: leave them out
                log.warning("skipping %d unfinished run(s) without metrics.json in %s: %s", len(unfinished), p,
                            ", ".join(q.name for q in unfinished))
                inner = [q for q in inner if q not in unfinished]
            if not inner:
                raise CheckpointError(f"{p} is neither a run folder nor a folder of runs (no config.json or "
                                      "metrics.json in it or its subfolders)")
            out += inner
        else:
            raise CheckpointError(f"{p} is a file; pass run folders or a folder of runs")
    seen, unique = set(), []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(p)
    if not unique:
        raise ConfigError("no runs to compare: pass one or more run folders (or a folder of runs), e.g. "
                          "`fashionbench compare runs/`")
    return unique


def _group_key(cfg: dict, metrics: dict) -> str:
    base = {k: v for k, v in cfg.items() if k not in NON_GROUPING}
    if not base:  # hand-made run without config: the model is all we know
        base = {"model": metrics.get("model")}
    return json.dumps(base, sort_keys=True, default=str)


def _labels(groups: list[Group]) -> None:
    """Name each group by recipe or model, plus the options that tell same-named groups apart."""
    by_name: dict[str, list[Group]] = {}
    for g in groups:
        cfg = json.loads(g.key)
        by_name.setdefault(cfg.get("recipe") or cfg.get("model") or "?", []).append(g)
    for name, gs in by_name.items():
        if len(gs) == 1:
            gs[0].label = name
            continue
        cfgs = [json.loads(g.key) for g in gs]
        keys = sorted({k for c in cfgs for k in c if any(c.get(k) != o.get(k) for o in cfgs)})
        for g, c in zip(gs, cfgs):
            diff = ", ".join(f"{k}={_short(c.get(k))}" for k in keys)
            g.label = f"{name} ({diff})" if diff else name


def _short(v) -> str:
    if isinstance(v, list):
        return "+".join(map(str, v)) or "none"
    return str(v)


@dataclass
class Comparison:
    groups: list[Group]
    runs: list[RunRow]
    best: RunRow

    def group_of(self, run: RunRow) -> Group:
        return next(g for g in self.groups if run in g.runs)


def compare_runs(paths: list[str | Path]) -> Comparison:
    dirs = expand_runs(paths)
    rows = []
    for d in dirs:
        data = load_run(d, full=False)
        correct = data.logits.argmax(1) == data.labels
        rows.append(RunRow(data, correct, bootstrap_accuracy_ci(correct, seed=0)))
    groups: dict[str, Group] = {}
    for r in rows:
        key = _group_key(r.data.config, r.data.metrics)
        groups.setdefault(key, Group(key, "")).runs.append(r)
    glist = sorted(groups.values(), key=lambda g: -mean_std(g.accs)[0])
    _labels(glist)
    for g in glist:
        g.runs.sort(key=lambda r: (-r.acc, str(r.data.run_dir)))
        for r in g.runs:
            r.group = g.label
    best = max(rows, key=lambda r: r.acc)
    for r in rows:
        if r is best:
            continue
        if len(r.data.labels) != len(best.data.labels) or not np.array_equal(r.data.labels, best.data.labels):
            r.note = "other test set"
            continue
        r.test = mcnemar(best.correct, r.correct).to_dict()
    return Comparison(glist, rows, best)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _sig_text(c: Comparison, runs: list[RunRow]) -> str:
    parts = []
    if any(r is c.best for r in runs):
        parts.append("best run")
    ps = [r.test["p_value"] for r in runs if r.test]
    if ps:
        star = " *" if max(ps) < ALPHA else ""
        if len(set(map(_p, ps))) == 1:
            parts.append(("p < 0.001" if ps[0] < 0.001 else f"p = {_p(ps[0])}") + star)
        else:
            parts.append(f"p = {_p(min(ps))} to {_p(max(ps))}{star}")
    if any(r.note for r in runs):
        parts.append("n/a (other test set)")
    return "; ".join(parts) or "n/a"


def _acc_text(g: Group) -> str:
    if len(g.runs) == 1:
        r = g.runs[0]
        return f"{100 * r.acc:.2f} [{100 * r.ci[0]:.2f}, {100 * r.ci[1]:.2f}]"
    m, s = mean_std(g.accs)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def _fmt_seconds(values) -> str:
    m, s = mean_std(values)
    if math.isnan(m):
        return "n/a"
    return f"{m:.1f}" if len(values) == 1 else f"{m:.1f} ± {s:.1f}"


def group_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    headers = ["configuration", "model", "params", "epochs", "train time (s)",
               "test accuracy (%)", "runs", "vs best run (McNemar)"]
    rows = []
    for g in c.groups:
        m0 = g.runs[0].data.metrics
        epochs = sorted({r.data.metrics.get("epochs") for r in g.runs}, key=str)
        rows.append([g.label, m0["model"], f"{m0.get('params', 0):,}", "/".join(map(str, epochs)),
                     _fmt_seconds([r.data.metrics.get("train_seconds", math.nan) for r in g.runs]),
                     _acc_text(g), str(len(g.runs)), _sig_text(c, g.runs)])
    return headers, rows


def run_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    headers = ["run", "configuration", "seed", "test accuracy (%)", "95% CI (%)", "train time (s)",
               "discordant (best / this)", "McNemar p", "p < 0.05"]
    rows = []
    for g in c.groups:
        for r in g.runs:
            m = r.data.metrics
            if r is c.best:
                disc, p, sig = "", "", "best run"
            elif r.test:
                disc = f"{r.test['b']} / {r.test['c']}"
                p = f"{_p(r.test['p_value'])} ({'exact' if r.test['method'] == 'exact' else 'chi² cc'})"
                sig = "yes" if r.test["p_value"] < ALPHA else "no"
            else:
                disc, p, sig = "", "", r.note or "n/a"
            ts = m.get("train_seconds")
            rows.append([r.data.name, g.label, str(m.get("seed", r.data.config.get("seed", ""))),
                         f"{100 * r.acc:.2f}", f"{100 * r.ci[0]:.2f} to {100 * r.ci[1]:.2f}",
                         "n/a" if ts is None else f"{ts:.1f}", disc, p, sig])
    return headers, rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    numeric = ("params", "epochs", "train time (s)", "test accuracy (%)", "runs", "seed")
    align = ["---:" if h in numeric else "---" for h in headers]
    lines = ["| " + " | ".join(map(cell, headers)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


NOTES = ("Accuracy: one run shows its bootstrap 95% interval in brackets; several runs of the same "
         "configuration (different seeds) show mean ± standard deviation. McNemar's test compares each run's "
         "test predictions with the best run's (exact binomial when fewer than 25 items differ, else chi-square "
         "with continuity correction); * marks p < 0.05. Discordant: test items only the best run gets right / "
         "only this run gets right.")


def render_markdown(c: Comparison) -> str:
    gh, gr = group_table(c)
    rh, rr = run_table(c)
    return (f"## Comparison of {len(c.runs)} runs\n\n{markdown_table(gh, gr)}\n\n{NOTES}\n\n"
            f"### All runs\n\n{markdown_table(rh, rr)}\n")


def render_html(c: Comparison) -> str:
    gh, gr = group_table(c)
    rh, rr = run_table(c)
    means, errs, points = [], [[], []], []
    for g in c.groups:
        if len(g.runs) == 1:
            r = g.runs[0]
            means.append(r.acc)
            errs[0].append(max(0.0, r.acc - r.ci[0]))
            errs[1].append(max(0.0, r.ci[1] - r.acc))
        else:
            m, s = mean_std(g.accs)
            means.append(m)
            errs[0].append(s)
            errs[1].append(s)
        points.append(g.accs)
    best_group = next(i for i, g in enumerate(c.groups) if c.best in g.runs)
    chart = plots.compare_bars([g.label for g in c.groups], means, np.array(errs), points, best_group)
    e = html.escape
    title = f"fashionbench comparison of {len(c.runs)} runs"
    body = (f"<h1>{e(title)}</h1><p class=sub>Best run: <code>{e(c.best.data.name)}</code> "
            f"({e(c.best.group)}, {100 * c.best.acc:.2f}%) &middot; written {e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
            f"<figure>{img_tag(chart, 'test accuracy by configuration')}<figcaption>Bars: mean test accuracy; "
            "error bars: standard deviation over seeds, or the bootstrap 95% interval for a single run; dots: "
            "single seeds.</figcaption></figure>"
            f"<h2>By configuration</h2>{html_table(gh, gr, 'compare-groups')}<p class=note>{e(NOTES)}</p>"
            f"<h2>All runs</h2>{html_table(rh, rr, 'compare-runs')}")
    return html_page(title, body)


def write_comparison(paths: list[str | Path], out: str | Path = ".", overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write compare.html and compare.md into `out`; refuses to replace them unless overwrite."""
    out = Path(out)
    html_path, md_path = out / "compare.html", out / "compare.md"
    if not overwrite:
        existing = [str(p) for p in (html_path, md_path) if p.exists()]
        if existing:
            raise ConfigError(f"{' and '.join(existing)} already exist; pass --overwrite to replace them or "
                              "--out DIR to write elsewhere")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder")
    c = compare_runs(paths)
    md = render_markdown(c)
    page = render_html(c)
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, page)
    return html_path, md_path, md
