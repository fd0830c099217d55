"""The paper-vs-ours table of a reproduced study: one row's cells, and the table as Markdown, CSV
and console text. `run_table` (runner.py) builds the report these read."""

from __future__ import annotations

import csv
import io
import statistics


def summary(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _pct(x: float | None, approx: bool = False) -> str:
    if x is None:
        return "-"
    return f"{'~' if approx else ''}{100 * x:.2f}"


def _ours_text(r: dict) -> str:
    mean, std = summary(r["ours"])
    if mean is None:
        return r["status"]
    text = f"{100 * mean:.2f}"
    if std is not None:
        text += f" +- {100 * std:.2f}"
    return text + f" (n={len(r['ours'])})"


def row_cells(r: dict) -> dict:
    mean, _ = summary(r["ours"])
    secs, _ = summary(r["seconds"])
    delta = None if mean is None or r["paper"] is None else mean - r["paper"]
    note = r.get("message", "")
    if r.get("verdict"):
        note = (f"vs baseline {100 * r['delta_vs_baseline']:+.2f} ({r['verdict']})" if r.get("delta_vs_baseline")
                is not None else r["verdict"]) + (f"; {note}" if note else "")
    if r["kind"] == "epochs":
        tmean, _ = summary(r.get("ours_train", []))
        note = (f"train {_pct(tmean)} (paper {_pct(r['paper_train'])}); paper time {r['paper_time']} (units not stated)"
                + (f"; gain {100 * r['gain']:+.2f}" if r.get("gain") is not None else ""))
    return {"row": r["id"], "label": r["label"], "model": r["model"], "kind": r["kind"],
            "paper": _pct(r["paper"], r.get("paper_approx", False)), "ours": _ours_text(r),
            "delta_pp": "" if delta is None else f"{100 * delta:+.2f}", "epochs": r["epochs"] or "",
            "train_s_per_seed": "" if secs is None else f"{secs:.1f}", "status": r["status"], "notes": note,
            "command": r["command"]}


def format_markdown(report: dict) -> str:
    lines = [f"# {report['table']}: {report['title']} (study {report['study']})", "",
             f"- source: {report['source']}", f"- {report['shrink']}",
             f"- seeds: {report['seeds']} (--seeds; a row may ask for more, n= gives each row's count); accuracies in %, "
             "ours as mean +- std over seeds",
             f"- command: `{report['command']}`", f"- machine: {report['machine']}; started {report['started']}", ""]
    if report["shrunk"]:
        lines += [f"**{report['shrink']}**", ""]
    lines += ["| row | model | paper | ours | delta (pp) | epochs | train s/seed | status | notes |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        c = row_cells(r)
        notes = c["notes"].replace("|", "/").replace("\n", " ")
        lines.append(f"| {c['row']} | {c['model']} | {c['paper']} | {c['ours']} | {c['delta_pp']} | {c['epochs']} | "
                     f"{c['train_s_per_seed']} | {c['status']} | {notes[:300]} |")
    if report.get("notes"):
        lines += ["", f"Notes: {report['notes']}"]
    return "\n".join(lines) + "\n"


def format_csv(report: dict) -> str:
    buf = io.StringIO()
    cols = ["table", "row", "label", "model", "kind", "paper", "ours", "delta_pp", "epochs", "train_s_per_seed",
            "status", "notes", "command", "shrunk"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in report["rows"]:
        w.writerow({"table": report["table"], "shrunk": report["shrunk"], **row_cells(r)})
    return buf.getvalue()


def format_console(report: dict) -> str:
    out = [f"{report['table']}: {report['title']}", report["shrink"]]
    out.append(f"{'row':<22} {'paper':>7} {'ours':>22} {'delta':>7} {'s/seed':>8}  status")
    for r in report["rows"]:
        c = row_cells(r)
        out.append(f"{c['row']:<22} {c['paper']:>7} {c['ours']:>22} {c['delta_pp']:>7} {c['train_s_per_seed']:>8}  "
                   f"{c['status']}{(' - ' + c['notes'][:110]) if c['notes'] else ''}")
    return "\n".join(out)
