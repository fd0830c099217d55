"""What a sweep leaves behind: best_config.json, the trials table (CSV and Markdown), the plots page
and sweep.json, and the summary the command prints."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from ..evaluate.compare import markdown_table
from ..runs import csv_text
from ..utils import atomic_write_json, atomic_write_text
from .sweep_space import Param, trial_config

BEST_CONFIG = "best_config.json"
TRIALS_CSV, TRIALS_MD, PLOTS = "trials.csv", "trials.md", "plots.html"
SUMMARY = "sweep.json"


def _rows(study, params: list[Param]) -> list[dict]:
    rows = []
    for t in study.trials:
        row = {"trial": t.number, "state": t.state.name, "val_accuracy": t.value,
               "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("train_seconds")}
        row.update({p.name: t.params.get(p.name) for p in params})
        rows.append(row)
    return rows


def _cell(v) -> str:
    return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def write_outputs(study, params: list[Param], base: Mapping, out_dir: Path, trials: int) -> dict:
    """best_config.json (what `train --config` takes), trials.csv / trials.md, plots.html, sweep.json."""
    rows = _rows(study, params)
    columns = ["trial", "state", "val_accuracy", "epochs", "seconds", *[p.name for p in params]]
    atomic_write_text(out_dir / TRIALS_CSV, csv_text(rows, columns))
    ranked = sorted((r for r in rows if r["state"] == "COMPLETE" and r["val_accuracy"] is not None),
                    key=lambda r: -r["val_accuracy"])
    ordered = ranked + [r for r in rows if r not in ranked]
    atomic_write_text(out_dir / TRIALS_MD, f"# Sweep {study.study_name}: trials by validation accuracy\n\n"
                           + markdown_table(columns, [[_cell(r.get(c)) for c in columns] for r in ordered]) + "\n")
    summary: dict = {"study": study.study_name, "trials": len(rows), "asked": trials,
                     "states": {s: sum(r["state"] == s for r in rows) for s in sorted({r["state"] for r in rows})},
                     "space": [p.describe() for p in params], "out": str(out_dir), "best": None}
    if ranked:
        best = study.best_trial
        cfg = trial_config(base, params, best.params)
        atomic_write_json(out_dir / BEST_CONFIG, cfg.to_dict())
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                           "config": str(out_dir / BEST_CONFIG), "run_dir": best.user_attrs.get("run_dir")}
    write_plots(study, out_dir / PLOTS)
    atomic_write_json(out_dir / SUMMARY, summary)
    return summary


def write_plots(study, path: Path) -> None:
    """Optuna's optimization history, parameter importances and parallel coordinates, on one HTML page
    (matplotlib figures as embedded PNGs: the page works offline)."""
    import base64
    import html
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    parts = []
    for title, fn, needs in (("Optimization history", ovm.plot_optimization_history, 1),
                             ("Parameter importances", ovm.plot_param_importances, 2),
                             ("Parallel coordinates", ovm.plot_parallel_coordinate, 2),
                             ("Intermediate values (validation accuracy per epoch)", ovm.plot_intermediate_values, 1)):
        if len(complete) < needs:
            parts.append(f"<h2>{title}</h2><p>needs at least {needs} complete trial(s)</p>")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = fn(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            parts.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,"
                         f"{base64.b64encode(buf.getvalue()).decode()}'>")
        except Exception as e:  # a plot that cannot be drawn (e.g. a constant objective) must not lose the sweep
            parts.append(f"<h2>{title}</h2><p>not drawn: {html.escape(str(e)[:200])}</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {html.escape(study.study_name)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}img{max-width:100%}</style></head><body>"
            f"<h1>Sweep {html.escape(study.study_name)}</h1><p>{len(study.trials)} trials, "
            f"{len(complete)} complete</p>{''.join(parts)}</body></html>")
    atomic_write_text(path, page)


def format_sweep(summary: dict) -> str:
    states = ", ".join(f"{n} {s.lower()}" for s, n in summary["states"].items())
    lines = [f"study {summary['study']}: {summary['trials']} trials ({states}); asked for {summary['asked']} finished"]
    best = summary.get("best")
    if best:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        lines.append(f"best: trial {best['trial']}, validation accuracy {100 * best['value']:.2f}% ({values})")
        lines.append(f"train it: fashionbench train --config {best['config']}")
    else:
        lines.append("no trial has completed yet")
    out = summary["out"]
    lines.append(f"trials: {out}/{TRIALS_MD} and {TRIALS_CSV}; plots: {out}/{PLOTS}")
    return "\n".join(lines)


__all__ = ["BEST_CONFIG", "PLOTS", "SUMMARY", "TRIALS_CSV", "TRIALS_MD", "format_sweep", "write_outputs"]
