"""The report's figures as PNG bytes (matplotlib's object API: no pyplot state, no display needed).

Every figure has a title, axis labels and class names rather than numbers.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure

DPI = 100
CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"]


def _color(i: int) -> str:
    return CLASS_COLORS[i % len(CLASS_COLORS)]


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _finite(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def smooth(values, window: int) -> np.ndarray:
    """Centred moving average (shrinking at the ends): no lag, unlike an exponential average."""
    v = np.asarray(values, float)
    h = max(0, window // 2)
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(len(v))
    lo, hi = np.maximum(0, i - h), np.minimum(len(v), i + h + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def batch_loss(steps, losses) -> bytes:
    """Raw per-batch training loss with an exponentially smoothed line over it."""
    steps, losses = np.asarray(steps, float), np.asarray(losses, float)
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    ax.scatter(steps, losses, s=7 if len(losses) < 2000 else 3, alpha=0.45 if len(losses) < 2000 else 0.2,
               color="#555555", label="batch loss", linewidths=0)
    if len(losses):
        window = max(5, len(losses) // 40)
        ax.plot(steps, smooth(losses, window), color="#d62728", lw=2, label=f"moving average ({window} batches)")
        hi = np.nanpercentile(losses, 99)
        ax.set_ylim(0, hi * 1.05 if math.isfinite(hi) and hi > 0 else None)
    ax.set_title("Training loss per batch")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return to_png(fig)


def epoch_curves(history: list[dict]) -> bytes:
    """Train and validation loss (left) and accuracy (right) per epoch."""
    ep = _finite([r["epoch"] for r in history])
    fig = Figure(figsize=(10, 3.8))
    for j, (key, label) in enumerate((("loss", "loss"), ("accuracy", "accuracy (%)"))):
        ax = fig.add_subplot(1, 2, j + 1)
        scale = 100 if key == "accuracy" else 1
        for split, color in (("train", "#1f77b4"), ("val", "#ff7f0e")):
            y = _finite([r.get(f"{split}_{key}") for r in history]) * scale
            if np.isfinite(y).any():
                ax.plot(ep, y, "o-", color=color, label="train" if split == "train" else "validation")
        ax.set_title(f"{'Loss' if key == 'loss' else 'Accuracy'} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        if len(ep):
            ax.set_xticks(_epoch_ticks(ep))
    return to_png(fig)


def _epoch_ticks(ep: np.ndarray) -> np.ndarray:
    n = int(np.nanmax(ep))
    step = max(1, math.ceil(n / 12))
    return np.arange(1, n + 1, step)


def learning_rate(steps, lrs) -> bytes:
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    lrs = np.asarray(lrs, float)
    ax.plot(np.asarray(steps, float), lrs, color="#2ca02c", lw=2)
    if len(lrs) and np.isfinite(lrs).any() and np.nanmax(lrs) > 0:
        ax.set_ylim(0, 1.1 * np.nanmax(lrs))
    ax.set_title("Learning rate schedule")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    return to_png(fig)


def confusion_matrix(cm, class_names: list[str], normalized: bool = True) -> bytes:
    """Heatmap of the row-normalized confusion matrix, each cell annotated with its count."""
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(class_names)
    size = max(5.0, 0.62 * k + 2.5)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    im = ax.imshow(norm if normalized else cm, cmap="Blues", vmin=0, vmax=1 if normalized else None)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("share of the true class" if normalized else "count")
    ax.set_xticks(range(k), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=class_names)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (colour: row share, numbers: counts)")
    return to_png(fig)


def image_grid(images, titles: list[str], title: str, cols: int = 5, title_colors: list[str] | None = None) -> bytes:
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        fig = Figure(figsize=(6, 1.5))
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified test images", ha="center", va="center", fontsize=12)
        ax.set_title(title)
        return to_png(fig)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.0 * cols, 2.85 * rows + 0.6))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[i], fontsize=8.5, color=(title_colors or ["black"] * n)[i])
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return to_png(fig)


def top_losses(images, true_names: list[str], pred_names: list[str], pred_probs, true_probs) -> bytes:
    titles = [f"true: {t}\npred: {p} ({pp:.2f})\np(true) = {tp:.2f}"
              for t, p, pp, tp in zip(true_names, pred_names, pred_probs, true_probs)]
    return image_grid(images, titles, "Misclassified test images with the highest loss")


def mosaic(images, rows: int, cols: int, gap: int = 2) -> np.ndarray:
    """Images (n, h, w) laid out row-major on a white canvas; 0 is white for the gray_r colormap."""
    images = np.asarray(images)
    h, w = images.shape[1:3] if len(images) else (28, 28)
    canvas = np.zeros((rows * (h + gap) - gap, cols * (w + gap) - gap), dtype=np.float32)
    for i, img in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        canvas[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = img
    return canvas


def sprite(images, labels, class_names: list[str]) -> bytes:
    """One row of sample training images per class, the class name on the left (one imshow: fast)."""
    images, labels = np.asarray(images), np.asarray(labels)
    k = len(class_names)
    per = max([int((labels == c).sum()) for c in range(k)] + [1])
    h, w = images.shape[1:3] if len(images) else (28, 28)
    gap = 3
    ordered = np.zeros((k * per, h, w), np.float32)
    for c in range(k):
        imgs = images[labels == c][:per]
        ordered[c * per: c * per + len(imgs)] = imgs
    canvas = mosaic(ordered, k, per, gap)
    fig = Figure(figsize=(0.75 * per + 1.8, 0.75 * k + 0.7))
    ax = fig.add_subplot()
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([c * (h + gap) + h / 2 for c in range(k)], labels=class_names, fontsize=10)
    ax.set_xticks([])
    ax.tick_params(left=False)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(f"Sample training images per class ({per} each)", fontsize=13)
    return to_png(fig)


def tsne(coords, labels, class_names: list[str]) -> bytes:
    coords, labels = np.asarray(coords), np.asarray(labels)
    fig = Figure(figsize=(8, 6.5))
    ax = fig.add_subplot()
    for c, name in enumerate(class_names):
        m = labels == c
        if m.any():
            ax.scatter(coords[m, 0], coords[m, 1], s=6, alpha=0.7, color=_color(c), label=name, linewidths=0)
    ax.set_title(f"t-SNE of penultimate-layer embeddings ({len(coords)} test images)")
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.legend(title="true class", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, frameon=False)
    return to_png(fig)


def reliability(bins: list[dict], ece: float) -> bytes:
    """Accuracy per confidence bin against the diagonal, with the share of items per bin below."""
    fig = Figure(figsize=(6, 6.2))
    ax = fig.add_axes((0.12, 0.34, 0.83, 0.58))
    ax2 = fig.add_axes((0.12, 0.08, 0.83, 0.17), sharex=ax)
    lo = np.array([b["lo"] for b in bins])
    width = np.array([b["hi"] - b["lo"] for b in bins])
    acc = _finite([b["accuracy"] for b in bins])
    conf = _finite([b["confidence"] for b in bins])
    counts = np.array([b["count"] for b in bins], float)
    ax.bar(lo, np.nan_to_num(acc), width=width, align="edge", color="#1f77b4", edgecolor="white",
           label="accuracy in bin")
    gap_lo = np.nan_to_num(np.minimum(acc, conf))
    ax.bar(lo, np.nan_to_num(np.abs(conf - acc)), bottom=gap_lo, width=width, align="edge", fill=False,
           hatch="///", edgecolor="#d62728", linewidth=0.8, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {100 * ece:.2f}%)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)
    total = counts.sum() or 1
    ax2.bar(lo, 100 * counts / total, width=width, align="edge", color="#7f7f7f", edgecolor="white")
    ax2.set_xlabel("confidence (top-1 softmax probability)")
    ax2.set_ylabel("% of items")
    return to_png(fig)


def time_accuracy(history: list[dict], test_accuracy: float | None = None) -> bytes:
    """Accuracy against elapsed training time, each point labelled with its epoch."""
    t = _finite([r.get("elapsed") for r in history])
    ep = [int(r["epoch"]) for r in history]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for split, color, name in (("train", "#1f77b4", "train"), ("val", "#ff7f0e", "validation")):
        y = _finite([r.get(f"{split}_accuracy") for r in history]) * 100
        if np.isfinite(y).any():
            ax.plot(t, y, "o-", color=color, label=f"{name} accuracy")
            if split == "val" or not np.isfinite(_finite([r.get("val_accuracy") for r in history])).any():
                step = max(1, math.ceil(len(ep) / 15))
                for i in range(0, len(ep), step):
                    if np.isfinite(y[i]):
                        ax.annotate(f"ep {ep[i]}", (t[i], y[i]), textcoords="offset points", xytext=(0, 7),
                                    ha="center", fontsize=8)
    if test_accuracy is not None and len(t):
        ax.axhline(100 * test_accuracy, color="#2ca02c", ls="--", label=f"final test {100 * test_accuracy:.2f}%")
    ax.set_title("Accuracy versus training time (labels: epochs)")
    ax.set_xlabel("elapsed training time (s)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return to_png(fig)


def per_class_scores(per_class: dict) -> bytes:
    names = list(per_class)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(7, 0.8 * len(names) + 2), 4))
    ax = fig.add_subplot()
    for j, (key, color) in enumerate((("precision", "#1f77b4"), ("recall", "#ff7f0e"), ("f1", "#2ca02c"))):
        ax.bar(x + (j - 1) * 0.27, [100 * per_class[n][key] for n in names], width=0.27, color=color,
               label=key if key != "f1" else "F1")
    ax.set_xticks(x, labels=names, rotation=30, ha="right")
    ax.set_ylabel("score (%)")
    lows = [100 * min(per_class[n][k] for k in ("precision", "recall", "f1")) for n in names]
    ax.set_ylim(max(0, min(lows + [100]) - 10) if lows else 0, 100)
    ax.set_title("Per-class precision, recall and F1 on the test set")
    ax.set_xlabel("class")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", ncols=3)
    return to_png(fig)


def compare_bars(labels: list[str], means, errors, points: list[list[float]], best_index: int | None = None,
                 error_label: str = "error bars: std over seeds or bootstrap 95% interval") -> bytes:
    """Horizontal bars of test accuracy per configuration, error bars, one dot per seed run."""
    n = len(labels)
    means = np.asarray(means, float) * 100
    err = np.asarray(errors, float) * 100  # shape (2, n): below, above
    fig = Figure(figsize=(8.5, 0.55 * n + 1.8))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    colors = ["#2ca02c" if i == best_index else "#1f77b4" for i in range(n)]
    ax.barh(y, means, color=colors, alpha=0.85, xerr=err, capsize=4, ecolor="black")
    for i, pts in enumerate(points):
        if len(pts) > 1:
            ax.scatter(np.asarray(pts) * 100, [y[i]] * len(pts), color="black", s=12, zorder=3)
    for i in range(n):
        ax.text(means[i] + err[1, i] + 0.05, y[i], f" {means[i]:.2f}%", va="center", fontsize=9)
    ax.set_yticks(y, labels=labels)
    lo = np.nanmin(means - err[0]) if n else 0
    hi = np.nanmax(means + err[1]) if n else 100
    span = max(hi - lo, 1.0)
    ax.set_xlim(max(0, lo - 0.3 * span), min(100, hi + 0.35 * span) if hi + 0.35 * span > hi else hi + 1)
    ax.set_xlabel(f"test accuracy (%); {error_label}")
    ax.set_title("Test accuracy by configuration (green: best run)")
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig)
