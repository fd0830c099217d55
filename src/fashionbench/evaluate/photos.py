"""Real photos through a trained model: what it saw (panels, contact sheets), and for a folder with
labels.csv its accuracy, confusion matrix, unknown-item AUROC and an HTML report in the style of the
run report, with the worst mistakes shown as photo + 28x28 + top-3."""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data.photos import Converted, convert_many, to_fmnist
from ..errors import PhotoError
from ..forward import unknown_scores
from ..inference import Predictor
from ..runs import fmt_pct
from ..utils import atomic_write_bytes, atomic_write_text

LABEL_COLUMNS = ("path", "fmnist_label")
PANEL_HEIGHT = 168  # pixels: every image of a panel is scaled to this height
SHEET_COLS = 8


# ----------------------------------------------------------------------------- what the model saw

def _rgb(a: np.ndarray) -> Image.Image:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0, 1) * 255 if a.dtype == bool or a.max(initial=0) <= 1 else
             np.clip(a, 0, 255)).astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


def _fit_height(img: Image.Image, h: int) -> Image.Image:
    w = max(1, round(img.width * h / img.height))
    nearest = img.width <= 32  # keep the 28x28 pixels visible
    return img.resize((w, h), Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS)


def panel(conv: Converted, caption: str = "", height: int = PANEL_HEIGHT) -> Image.Image:
    """The conversion's steps side by side (photo ... 28x28), with a caption line under them."""
    steps = conv.steps or [("28x28", conv.image)]
    if steps[-1][0] != "28x28":
        steps = [*steps, ("28x28", conv.image)]
    tiles = [_fit_height(_rgb(a), height) for _, a in steps]
    gap, text_h = 6, 30
    width = sum(t.width for t in tiles) + gap * (len(tiles) + 1)
    out = Image.new("RGB", (width, height + text_h + 2 * gap), "white")
    draw = ImageDraw.Draw(out)
    x = gap
    for (name, _), tile in zip(steps, tiles):
        out.paste(tile, (x, gap))
        draw.text((x, height + gap + 2), name, fill=(90, 100, 117))
        x += tile.width + gap
    if caption:
        draw.text((gap, height + gap + 15), caption[:160], fill=(20, 20, 20))
    return out


def contact_sheet(images: list[np.ndarray], captions: list[str], cols: int = SHEET_COLS, scale: int = 4) -> Image.Image:
    """A grid of 28x28 model inputs (scaled up) with one caption each."""
    n = max(1, len(images))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    cell, text_h, gap = 28 * scale, 26, 6
    out = Image.new("RGB", (cols * (cell + gap) + gap, rows * (cell + text_h + gap) + gap), "white")
    draw = ImageDraw.Draw(out)
    for i, (img, cap) in enumerate(zip(images, captions)):
        r, c = divmod(i, cols)
        x, y = gap + c * (cell + gap), gap + r * (cell + text_h + gap)
        out.paste(_rgb(img).resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        for j, line in enumerate(cap.split("\n")[:2]):
            draw.text((x, y + cell + 1 + 12 * j), line[:22], fill=(20, 20, 20))
    return out


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


SHEET = "_contact_sheet.png"  # the underscore keeps it apart from the photos' panel names


def show_names(names: list[str]) -> list[str]:
    """A distinct PNG file name per photo: its path flattened (suffix kept, so a.jpg and a.png
    differ), cut from the left, numbered on a clash."""
    out, used = [], set()
    for name in names:
        flat = str(name).replace("\\", "/").strip("/").replace("/", "__")
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in flat)[-150:].lstrip("_") or "photo"
        candidate, n = stem, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate.lower())
        out.append(f"{candidate}.png")
    return out


def write_show(show_dir: str | Path, names: list[str], converted: list[Converted], records: list[dict]) -> Path:
    """Per photo a PNG (the conversion's steps beside the 28x28 the model saw) and _contact_sheet.png."""
    show_dir = Path(show_dir)
    captions = []
    for name, file, conv, rec in zip(names, show_names(names), converted, records):
        caption = f"{rec['label']} {100 * rec['probability']:.0f}%" + (" (unknown?)" if rec["unknown"] else "")
        captions.append(f"{Path(name).name}\n{caption}")
        atomic_write_bytes(show_dir / file, png_bytes(panel(conv, f"{name}: {caption}")))
    sheet = show_dir / SHEET
    atomic_write_bytes(sheet, png_bytes(contact_sheet([c.image for c in converted], captions)))
    return sheet


@dataclass
class PhotoPredictions:
    """Photos (files, folders, globs) through a predictor; unreadable ones listed in `problems`."""

    names: list[str]
    records: list[dict]  # Predictor.predict's per-photo record
    converted: list[Converted]
    problems: list[tuple[str, str]]
    seconds: float = 0.0


def predict_files(predictor: Predictor, paths, *, keep_steps: bool = False, progress: bool = False,
                  k: int = 3) -> PhotoPredictions:
    """Find the images under `paths`, convert them in one pass and predict them in batches."""
    from ..data.photos import find_images

    t0 = time.perf_counter()
    files, problems = find_images(paths)
    if not files:
        where = "; ".join(f"{p}: {why}" for p, why in problems) or ", ".join(map(str, paths))
        raise PhotoError(f"no images found ({where}); pass image files or folders holding "
                         ".jpg/.png/.webp/.bmp/.tif/.gif files")
    batch, converted, bad = convert_many(files, predictor.photo_method, keep_steps=keep_steps, progress=progress)
    ok = [(str(f), c) for f, c in zip(files, converted) if c is not None]
    records = predictor.describe(predictor.predict_logits(batch, photos=[f for f, _ in ok],
                                                          boxes=[c.box for _, c in ok]), k) if len(batch) else []
    return PhotoPredictions([n for n, _ in ok], records, [c for _, c in ok], problems + bad,
                            time.perf_counter() - t0)


# ----------------------------------------------------------------------------- labelled folders

@dataclass
class LabelledPhoto:
    name: str  # as written in labels.csv
    path: Path
    label: int | None  # None: none of the classes


def read_labels(csv_path: str | Path, num_classes: int = 10) -> list[LabelledPhoto]:
    """labels.csv (`path`, `fmnist_label`; an empty label marks a photo of none of the classes);
    paths are relative to the CSV's folder."""
    csv_path = Path(csv_path)
    if csv_path.is_dir():
        raise PhotoError(f"{csv_path} is a folder; pass its labels file, e.g. {csv_path / 'labels.csv'} "
                         "(columns path,fmnist_label)")
    if not csv_path.is_file():
        raise PhotoError(f"{csv_path}: labels file not found; pass a CSV with columns path,fmnist_label")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PhotoError(f"{csv_path}: not a text CSV file; it needs columns path,fmnist_label") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PhotoError(f"{csv_path}: missing column(s) {', '.join(missing)}; the header must name path,fmnist_label "
                         f"(found {','.join(reader.fieldnames or []) or 'no header'})")
    out, seen = [], {}
    try:
        for row in reader:
            line = reader.line_num
            name, raw = (row.get("path") or "").strip(), (row.get("fmnist_label") or "").strip()
            if not name:
                raise PhotoError(f"{csv_path} line {line}: empty path; every row names a photo")
            label = None
            if raw:
                label = int(raw) if raw.isdigit() else -1
                if not 0 <= label < num_classes:
                    raise PhotoError(f"{csv_path} line {line}: label {raw!r} is not a class index 0-"
                                     f"{num_classes - 1}; leave it empty for a photo of none of the classes")
            path = csv_path.parent / name
            if path in seen:
                raise PhotoError(f"{csv_path} line {line}: {name} is listed again (first on line {seen[path]}); "
                                 "keep one row per photo")
            seen[path] = line
            out.append(LabelledPhoto(name, path, label))
    except csv.Error as e:
        raise PhotoError(f"{csv_path} line {reader.line_num}: not a valid CSV ({e}); check its quotes") from None
    if not out:
        raise PhotoError(f"{csv_path}: no rows; add one line per photo (path,fmnist_label)")
    return out


def labelled_images(csv_paths, num_classes: int = 10, method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled photos of labels.csv files as training data: (N, 28, 28) uint8 and (N,) labels.
    Photos of none of the classes are left out; an unreadable photo stops with its name (training
    data is not skipped silently)."""
    rows = [r for f in csv_paths for r in read_labels(f, num_classes) if r.label is not None]
    if not rows:
        raise PhotoError(f"{', '.join(map(str, csv_paths))}: no labelled photos to train on")
    batch, _, problems = convert_many([r.path for r in rows], method)
    if problems:
        raise PhotoError(f"{len(problems)} training photo(s) could not be used (first: {problems[0][0]}: "
                         f"{problems[0][1]}); fix them or remove their rows from the labels file")
    return torch.as_tensor(batch), torch.tensor([r.label for r in rows])


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    if positive.all() or not positive.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))


def photo_metrics(logits, labels, class_names: list[str], temperature: float = 1.0) -> dict:
    """Top-1/top-2 over the labelled photos, per-class accuracy and the confusion matrix (rows:
    true class), and the AUROC of the unknown-item scores (photos without a label as positives)."""
    logits = torch.as_tensor(logits).float()
    y = np.asarray(labels)  # -1: none of the classes
    mapped = y >= 0
    k = len(class_names)
    order = torch.argsort(logits, 1, descending=True).numpy() if len(logits) else np.zeros((0, k), int)
    pred = order[:, 0] if len(order) else np.zeros(0, int)
    cm = np.zeros((k, k), int)
    for t, p in zip(y[mapped], pred[mapped]):
        cm[t, p] += 1
    support = cm.sum(1)
    scores = unknown_scores(logits, temperature)
    return {
        "photos": int(len(y)), "labelled": int(mapped.sum()), "unknown_items": int((~mapped).sum()),
        "top1_accuracy": float((pred[mapped] == y[mapped]).mean()) if mapped.any() else None,
        "top2_accuracy": float((order[mapped, :2] == y[mapped, None]).any(1).mean()) if mapped.any() else None,
        "per_class_accuracy": {class_names[i]: float(cm[i, i] / support[i]) for i in range(k) if support[i]},
        "support": {class_names[i]: int(support[i]) for i in range(k) if support[i]},
        "confusion_matrix": cm.tolist(),
        "unknown_auroc": {name: _auroc(s, ~mapped) for name, s in scores.items()},
        "temperature": temperature,
    }


@dataclass
class PhotoEvaluation:
    """A labelled folder run through a predictor: per-photo records and the metrics."""

    labels_csv: Path
    method: str
    class_names: list[str]
    names: list[str]
    labels: np.ndarray  # -1 for none of the classes
    logits: np.ndarray
    records: list[dict]
    converted: list[Converted]
    problems: list[tuple[str, str]]
    metrics: dict
    model: dict = field(default_factory=dict)
    seconds: float = 0.0
    report: Path | None = None  # report.html once written


def evaluate_photos(predictor: Predictor, labels_csv: str | Path, *, progress: bool = False,
                    keep_steps: bool = False) -> PhotoEvaluation:
    """Convert and predict every photo labels.csv names; unreadable ones are listed in `problems`.
    `keep_steps` keeps every conversion's intermediate images (for --show; ~0.7 MB a photo)."""
    t0 = time.perf_counter()
    rows = read_labels(labels_csv, predictor.num_classes)
    _, converted, problems = convert_many([r.path for r in rows], predictor.photo_method, keep_steps=keep_steps,
                                          progress=progress)
    kept = [(r, c) for r, c in zip(rows, converted) if c is not None]
    if not kept:
        raise PhotoError(f"{labels_csv}: none of its {len(rows)} photos could be read (first: {problems[0][0]}: "
                         f"{problems[0][1]})")
    images = np.stack([c.image for _, c in kept])
    logits = predictor.predict_logits(images, photos=[r.path for r, _ in kept], boxes=[c.box for _, c in kept])
    labels = np.array([-1 if r.label is None else r.label for r, _ in kept])
    return PhotoEvaluation(Path(labels_csv), predictor.photo_method, predictor.class_names, [r.name for r, _ in kept],
                           labels, logits.numpy(), predictor.describe(logits, 3), [c for _, c in kept], problems,
                           photo_metrics(logits, labels, predictor.class_names, predictor.temperature),
                           {k: predictor.info.get(k) for k in ("model", "path", "epoch")}
                           | {"tta": predictor.tta, "imagenet_weight": predictor.imagenet_weight},
                           time.perf_counter() - t0)


def summary_lines(ev: PhotoEvaluation) -> list[str]:
    m = ev.metrics
    au = m["unknown_auroc"]
    lines = [f"{ev.labels_csv.parent.name}: {m['labelled']} labelled photos, {m['unknown_items']} of none of the classes"
             + (f", {len(ev.problems)} unreadable" if ev.problems else ""),
             f"top-1 {fmt_pct(m['top1_accuracy'])}, top-2 {fmt_pct(m['top2_accuracy'])}; unknown-item AUROC "
             + (", ".join(f"{k} {v:.3f}" for k, v in au.items() if v is not None)
                or "n/a (it needs photos with and without a label)")]
    per = ", ".join(f"{k} {fmt_pct(v)}" for k, v in m["per_class_accuracy"].items())
    return lines + [f"per class: {per}"]


def write_photo_report(ev: PhotoEvaluation, out_dir: str | Path, worst: int = 12) -> Path:
    """report.html (and metrics.json) in `out_dir`, in the style of the run report."""
    import json

    from . import plots
    from .html import escape as _e
    from .html import html_cards, html_page, html_table, img_tag

    out_dir = Path(out_dir)
    m, names = ev.metrics, ev.class_names
    folder = ev.labels_csv.parent.name
    au = m["unknown_auroc"]
    title = f"{folder}: {fmt_pct(m['top1_accuracy'])} top-1 on real photos"
    cards = [(fmt_pct(m["top1_accuracy"]), "top-1 accuracy"), (fmt_pct(m["top2_accuracy"]), "top-2 accuracy"),
             (f"{au['msp']:.3f}" if au.get("msp") is not None else "n/a", "unknown-item AUROC (1 - max prob.)"),
             (f"{m['labelled']} / {m['unknown_items']}", "labelled / unknown photos"),
             (f"{ev.seconds:.1f} s", "conversion + inference")]
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="sub">Labels <code>{_e(ev.labels_csv)}</code> &middot; model <code>{_e(ev.model.get("model"))}'
             f'</code> from <code>{_e(ev.model.get("path"))}</code> &middot; photo conversion <code>{_e(ev.method)}</code>'
             f' &middot; TTA {_e("+".join(ev.model.get("tta") or []) or "none")} &middot; ImageNet prior weight '
             f'{_e(ev.model.get("imagenet_weight") or "off")} &middot; temperature '
             f'{m["temperature"]:.3g} &middot; written {_e(time.strftime("%Y-%m-%d %H:%M"))}</p>',
             html_cards(cards)]
    rows = [[n, m["support"][n], fmt_pct(a)] for n, a in m["per_class_accuracy"].items()]
    parts.append("<h2>Per class</h2>" + html_table(["class", "photos", "top-1 accuracy"], rows, "per-class"))
    present = [i for i, n in enumerate(names) if n in m["support"] or np.asarray(m["confusion_matrix"])[:, i].any()]
    cm = np.asarray(m["confusion_matrix"])[np.ix_(present, present)] if present else np.zeros((0, 0))
    if len(present):
        parts.append("<h2>Confusion matrix</h2><figure>" + img_tag(
            plots.confusion_matrix(cm, [names[i] for i in present]), "confusion matrix")
            + "<figcaption>Labelled photos; rows: true class, columns: predicted class (only classes that occur)."
              "</figcaption></figure>")
    au_rows = [[k, "n/a" if v is None else f"{v:.3f}"] for k, v in au.items()]
    parts.append("<h2>Unknown items</h2><p class=note>How well each score separates the photos labelled with no "
                 "class from the labelled ones (AUROC: 0.5 is chance, 1 is perfect). <code>predict</code> flags a "
                 "photo when 1 - its largest calibrated probability is above the threshold.</p>"
                 + html_table(["score", "AUROC"], au_rows, "unknown"))
    probs = torch.softmax(torch.as_tensor(ev.logits) / m["temperature"], 1).numpy()
    wrong = [i for i in range(len(ev.labels)) if ev.labels[i] >= 0 and ev.records[i]["index"] != ev.labels[i]]
    wrong.sort(key=lambda i: -probs[i].max())
    tiles = []
    for i in wrong[:worst]:
        conv = ev.converted[i] if ev.converted[i].steps else to_fmnist(ev.labels_csv.parent / ev.names[i], ev.method,
                                                                          keep_steps=True)
        top = ", ".join(f"{n} {100 * p:.0f}%" for n, p in ev.records[i]["top_k"])
        tiles.append(f"<figure>{img_tag(png_bytes(panel(conv)), ev.names[i])}<figcaption><b>"
                     f"{_e(names[ev.labels[i]])}</b> predicted as {_e(top)}<br><code>{_e(ev.names[i])}</code>"
                     "</figcaption></figure>")
    parts.append(f"<h2>Most confident mistakes</h2><p class=note>{len(wrong)} of {m['labelled']} labelled photos "
                 "are wrong; the ones the model was surest of, each as the photo, the conversion's steps and the "
                 "28x28 image the model saw.</p>" + ("".join(tiles) or "<p>None.</p>"))
    if ev.problems:
        parts.append("<h2>Unreadable photos</h2>" + html_table(["photo", "problem"], [list(p) for p in ev.problems],
                                                               "problems"))
    page = html_page(title, "".join(parts))
    atomic_write_text(out_dir / "metrics.json", json.dumps({**m, "labels_csv": str(ev.labels_csv), "method": ev.method,
                                                           "model": ev.model, "problems": ev.problems}, indent=2))
    report = out_dir / "report.html"
    atomic_write_text(report, page)
    return report
