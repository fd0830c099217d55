"""The run report: extra metrics, model artifacts, PNG figures and a self-contained report.html.

`write_run_outputs` is called by the run's report step right after the test evaluation (it has the model
in memory); `rebuild_report` redoes the figures and the HTML from the files of a run folder.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..checkpoint import read_checkpoint
from ..data.splits import split_training_set
from ..errors import CheckpointError
from ..forward import last_linear
from ..inference import Predictor
from ..runs import RunData, fmt_pct, load_run
from ..utils import atomic_write_bytes, atomic_write_text
from . import plots
from .html import escape as _e
from .html import html_cards, html_page, html_table, img_tag
from .interpret import Interpretation, sprite_indices, tsne_2d
from .metrics import detailed_metrics
from .stats import stratified_sample

log = logging.getLogger("fashionbench.evaluate")

TSNE_POINTS = 2000
TOP_LOSSES = 25
SPRITE_PER_CLASS = 10


# ----------------------------------------------------------------------------- artifacts

def collect_artifacts(predictor: Predictor, test_images: torch.Tensor, labels: np.ndarray, logits,
                      train_images: torch.Tensor, train_labels, *, seed: int = 0,
                      tsne_points: int = TSNE_POINTS) -> dict:
    """What the report needs from the model and the data, as arrays for artifacts.npz."""
    interp = Interpretation.from_logits(logits, labels, [str(i) for i in range(np.asarray(logits).shape[1])])
    out: dict = {}
    top = interp.top_losses(TOP_LOSSES)
    out["top_index"] = top.astype(np.int64)
    out["top_images"] = test_images[torch.as_tensor(top)].cpu().numpy().astype(np.uint8) if len(top) else \
        np.zeros((0, *test_images.shape[1:]), np.uint8)
    out["top_labels"] = interp.labels[top]
    out["top_preds"] = interp.preds[top]
    out["top_pred_prob"] = interp.probs[top, interp.preds[top]].astype(np.float32)
    out["top_true_prob"] = interp.probs[top, interp.labels[top]].astype(np.float32)

    tl = np.asarray(train_labels)
    sp = sprite_indices(tl, SPRITE_PER_CLASS, seed)
    out["sprite_images"] = train_images[torch.as_tensor(sp)].cpu().numpy().astype(np.uint8)
    out["sprite_labels"] = tl[sp].astype(np.int64)

    t0 = time.perf_counter()
    idx = stratified_sample(labels, tsne_points, seed)
    emb = predictor.embeddings(test_images[torch.as_tensor(idx)])
    out["embed_seconds"] = np.float64(time.perf_counter() - t0)
    if emb is not None and not (np.isfinite(emb).all() and float(emb.std(0).max(initial=0)) > 1e-6):
        log.warning("no t-SNE: the embeddings are constant or not finite (the model did not train)")
        emb = None
    if emb is not None:
        head = last_linear(predictor.model)
        layer = next(n for n, m in predictor.model.named_modules() if m is head)
        t0 = time.perf_counter()
        out["tsne"] = tsne_2d(emb, seed)
        out["tsne_seconds"] = np.float64(time.perf_counter() - t0)
        out["tsne_index"] = idx.astype(np.int64)
        out["tsne_labels"] = np.asarray(labels)[idx].astype(np.int64)
        out["embeddings"] = emb.astype(np.float16)
        out["embedding_layer"] = np.array(f"input of {layer} ({type(head).__name__}, {emb.shape[1]} features)")
    return out


def write_run_outputs(run_dir: str | Path, *, predictor: Predictor, dataset, logits, train_idx=None,
                      metrics: dict | None = None) -> dict:
    """After the test evaluation: returns the extra metrics for metrics.json and writes
    artifacts.npz, figures/*.png and report.html into the run folder.

    The metrics are computed first and always returned; a failure in the artifacts or the report
    is logged, never loses the trained run (`fashionbench report RUN` can rebuild it)."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    metrics = dict(metrics or {})
    seed = int(metrics.get("seed", 0) or 0)
    labels = dataset.test_labels.numpy()
    logits_np = torch.as_tensor(logits).float().numpy()
    extra = detailed_metrics(logits_np, labels, dataset.class_names, seed=seed, temperature=metrics.get("temperature"))
    interp = Interpretation.from_logits(logits_np, labels, dataset.class_names)
    extra["top_losses"] = _top_loss_rows(interp, 10)
    try:
        train_idx = np.arange(len(dataset.train_labels)) if train_idx is None else np.asarray(train_idx)
        art = collect_artifacts(predictor, dataset.test_images, labels, logits_np,
                                dataset.train_images[torch.as_tensor(train_idx)],
                                dataset.train_labels.numpy()[train_idx], seed=seed)
        runs.write_artifacts(run_dir, art)
        if "tsne_seconds" in art:
            extra["tsne_seconds"] = round(float(art["tsne_seconds"]), 3)
            extra["embedding_layer"] = str(art["embedding_layer"])
        extra["report_seconds"] = round(time.perf_counter() - t_start, 3)  # artifacts; rendering adds ~1 s
        data = RunData(run_dir, runs.read_config(run_dir), {**metrics, **extra},
                       history=runs.try_csv(run_dir / runs.HISTORY), batches=runs.try_csv(run_dir / runs.BATCHES),
                       logits=logits_np, labels=labels, artifacts=art)
        write_report(data)
    except Exception as e:  # the trained model and its metrics matter more than the pictures
        if runs.is_disk_full(e):
            raise
        log.warning("the report could not be written (%s: %s); rebuild it with `fashionbench report %s`",
                    type(e).__name__, e, run_dir)
        log.debug("report failure", exc_info=True)
    return extra


def _top_loss_rows(interp: Interpretation, n: int) -> list[dict]:
    rows = []
    losses = interp.losses
    for i in interp.top_losses(n):
        rows.append({"index": int(i), "true": interp.class_names[interp.labels[i]],
                     "predicted": interp.class_names[interp.preds[i]],
                     "prob_predicted": round(float(interp.probs[i, interp.preds[i]]), 4),
                     "prob_true": round(float(interp.probs[i, interp.labels[i]]), 4),
                     "loss": round(float(losses[i]), 4)})
    return rows


# ----------------------------------------------------------------------------- rebuild from files

def recompute_artifacts(data: RunData, *, data_dir: str | None = None, dataset_name: str | None = None,
                        device: str = "auto", precision: str | None = None, ckpt: dict | None = None) -> dict:
    """Reload the evaluated checkpoint (`ckpt` when the caller has checked it already) and the
    dataset to redo embeddings, t-SNE, top losses, sprite."""
    from ..data.sources import dataset_args, load_dataset

    ckpt = ckpt or check_checkpoint(data)
    cfg = data.config
    predictor = Predictor.from_checkpoint(ckpt, device=device, precision=precision or data.metrics.get(
        "precision", "auto"), tta=(), expect_model=data.metrics["model"])
    ds = load_dataset(*dataset_args(cfg, dataset_name, data_dir))
    if len(ds.test_labels) != len(data.labels) or not np.array_equal(ds.test_labels.numpy(), data.labels):
        raise CheckpointError(f"the test set of {ds.source or ds.name} differs from the one {data.run_dir} was "
                              "evaluated on; pass the --data-dir the run was trained with")
    split = split_training_set(ds.train_labels, cfg.get("data_fraction", 1.0), cfg.get("val_fraction", 0.1),
                               int(cfg.get("seed", 0)))
    return collect_artifacts(predictor, ds.test_images, data.labels, data.logits,
                             ds.train_images[torch.as_tensor(split.train_idx)],
                             ds.train_labels.numpy()[split.train_idx], seed=int(data.metrics.get("seed", 0) or 0))


def check_checkpoint(data: RunData) -> dict:
    """The checkpoint the test metrics came from, read and checked against the run's model and classes."""
    path = runs.checkpoint_for(data.run_dir, data.metrics.get("evaluated_weights", "best"))
    if path is None:
        raise CheckpointError(f"{data.run_dir} lacks {runs.BEST} and {runs.LAST}; the report needs the trained "
                              "weights to redo the embeddings: train the run again")
    ckpt = read_checkpoint(path)
    if ckpt.get("model") != data.metrics["model"]:
        raise CheckpointError(f"{path} holds model {ckpt.get('model')!r} but the run trained "
                              f"{data.metrics['model']!r}: the file comes from another run; restore this run's "
                              "checkpoint or train it again")
    names = data.metrics.get("class_names")
    if names and list(ckpt.get("class_names", [])) != list(names):
        raise CheckpointError(f"{path} was trained on other classes than the run ({ckpt.get('class_names')}); "
                              "it comes from another run")
    return ckpt


def rebuild_report(run_dir: str | Path, *, recompute: bool = False, data_dir: str | None = None,
                   dataset_name: str | None = None, device: str = "auto", precision: str | None = None) -> Path:
    """Redo the figures and report.html from the run folder's files.

    artifacts.npz is reused when present; otherwise (or with recompute) it is rebuilt from the
    evaluated checkpoint and the dataset. Every input is read and checked before anything is written."""
    t0 = time.perf_counter()
    data = load_run(run_dir, full=True)
    ckpt = check_checkpoint(data)
    extra = detailed_metrics(data.logits, data.labels, data.class_names, seed=int(data.metrics.get("seed", 0) or 0),
                             temperature=data.metrics.get("temperature"))
    data.metrics = {**data.metrics, **extra}
    interp = Interpretation.from_logits(data.logits, data.labels, data.class_names)
    data.metrics["top_losses"] = _top_loss_rows(interp, 10)
    new_artifacts = None
    if recompute or data.artifacts is None:
        new_artifacts = recompute_artifacts(data, data_dir=data_dir, dataset_name=dataset_name, device=device,
                                            precision=precision, ckpt=ckpt)
        data.artifacts = new_artifacts
    html_text, figures = render(data)
    log.debug("report of %s rebuilt in %.1f s", data.run_dir, time.perf_counter() - t0)
    if new_artifacts is not None:
        runs.write_artifacts(data.run_dir, new_artifacts)
    return _write(data.run_dir, html_text, figures)


# ----------------------------------------------------------------------------- figures and HTML

FIGURES = [  # file stem, section, caption
    ("batch_loss", "Training", "Training loss per batch: raw points and a centred moving average."),
    ("epoch_curves", "Training", "Train and validation loss and accuracy per epoch."),
    ("learning_rate", "Training", "Learning rate per optimizer step."),
    ("time_accuracy", "Training", "Accuracy against elapsed training time; points are labelled with their epoch."),
    ("confusion", "Test set", "Confusion matrix: colour is the share of the true class, numbers are counts."),
    ("per_class", "Test set", "Per-class precision, recall and F1."),
    ("reliability", "Test set", "Reliability diagram: accuracy per confidence bin against perfect calibration."),
    ("top_losses", "Examples", "Misclassified test images with the highest loss (probability of the prediction "
     "in brackets)."),
    ("sprite", "Examples", "Sample training images of each class."),
    ("tsne", "Embeddings", "t-SNE of the penultimate-layer embeddings of test images, coloured by true class."),
]


def build_figures(data: RunData) -> dict[str, bytes]:
    m, names = data.metrics, data.class_names
    figs: dict[str, bytes] = {}
    if data.batches:
        steps = [r.get("step") for r in data.batches]
        figs["batch_loss"] = plots.batch_loss(steps, [r.get("loss") for r in data.batches])
        figs["learning_rate"] = plots.learning_rate(steps, [r.get("lr") for r in data.batches])
    if data.history:
        figs["epoch_curves"] = plots.epoch_curves(data.history)
        figs["time_accuracy"] = plots.time_accuracy(data.history, m.get("test_accuracy"))
    interp = Interpretation.from_logits(data.logits, data.labels, names)
    figs["confusion"] = plots.confusion_matrix(interp.confusion(), names)
    if m.get("per_class"):
        figs["per_class"] = plots.per_class_scores(m["per_class"])
    if m.get("reliability"):
        figs["reliability"] = plots.reliability(m["reliability"], m["ece"])
    art = data.artifacts or {}
    if "top_images" in art:
        figs["top_losses"] = plots.top_losses(art["top_images"], [names[i] for i in art["top_labels"]],
                                              [names[i] for i in art["top_preds"]], art["top_pred_prob"],
                                              art["top_true_prob"])
    if "sprite_images" in art:
        figs["sprite"] = plots.sprite(art["sprite_images"], art["sprite_labels"], names)
    if "tsne" in art:
        figs["tsne"] = plots.tsne(art["tsne"], art["tsne_labels"], names)
    return figs


def _num(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"
    return str(x)


def render(data: RunData) -> tuple[str, dict[str, bytes]]:
    """(report.html text, {figure stem: PNG bytes})."""
    figures = build_figures(data)
    m, names = data.metrics, data.class_names
    ci = m.get("test_accuracy_ci95") or [None, None]
    title = f"{m.get('recipe') or m['model']}: {fmt_pct(m['test_accuracy'])} test accuracy"
    cards = [
        (fmt_pct(m["test_accuracy"]), f"test accuracy (95% CI {fmt_pct(ci[0])} to {fmt_pct(ci[1])})"),
        (fmt_pct(m.get("top2_accuracy")), "top-2 accuracy"),
        (fmt_pct(m.get("macro_f1")), "macro F1"),
        (fmt_pct(m.get("ece")), "expected calibration error"),
        (f"{m.get('params', 0):,}", "parameters"),
        (f"{m.get('epochs', '?')}", "epochs"),
        (f"{m.get('train_seconds', float('nan')):.1f} s", f"training time ({m.get('device', '?')}, "
                                                         f"{m.get('precision', '?')})"),
    ]
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="sub">Run folder <code>{_e(data.run_dir.name)}</code> &middot; model <code>{_e(m["model"])}'
             f'</code> &middot; dataset {_e(m.get("dataset", "?"))} &middot; seed {_e(m.get("seed", "?"))} &middot; '
             f'report written {_e(time.strftime("%Y-%m-%d %H:%M"))}</p>',
             html_cards(cards)]

    summary = [["test accuracy", fmt_pct(m["test_accuracy"])],
               ["95% interval (bootstrap)", f"{fmt_pct(ci[0])} to {fmt_pct(ci[1])}"],
               ["top-2 accuracy", fmt_pct(m.get("top2_accuracy"))],
               ["test loss (cross-entropy)", _num(m.get("test_loss"))],
               ["macro F1", fmt_pct(m.get("macro_f1"))],
               ["expected calibration error", f"{fmt_pct(m.get('ece'))} ({m.get('ece_bins', '?')} bins)"],
               ["after temperature scaling", f"{fmt_pct(m.get('ece_calibrated'))} (T = {m['temperature']:.3g}, fitted on "
                                             f"the {m.get('temperature_fitted_on') or 'validation split'})"
                if m.get("temperature") else "not fitted"],
               ["validation accuracy (last epoch)", fmt_pct(m.get("val_accuracy"))],
               ["evaluated weights", f"{m.get('evaluated_weights', '?')} (best epoch {m.get('best_epoch', '?')})"],
               ["test-time augmentation", ", ".join(m.get("tta") or []) or "none"],
               ["training / test time", f"{m.get('train_seconds', '?')} s / {m.get('test_seconds', '?')} s"],
               ["train / validation / test images", f"{m.get('train_size', '?')} / {m.get('val_size', '?')} / "
                                                    f"{len(data.labels)}"]]
    parts.append("<h2>Metrics</h2>" + html_table(["metric", "value"], summary, "summary"))
    parts.append(f'<p class="note">{_e(m.get("ci_method", ""))}. ECE: weighted mean gap between confidence and '
                 'accuracy over equal-width confidence bins.</p>')

    per_class = m.get("per_class") or {}
    pc_acc = m.get("per_class_accuracy") or {}
    rows = [[n, fmt_pct(per_class.get(n, {}).get("precision")), fmt_pct(per_class.get(n, {}).get("recall")),
             fmt_pct(per_class.get(n, {}).get("f1")), per_class.get(n, {}).get("support", ""),
             fmt_pct(pc_acc.get(n))] for n in names]
    parts.append('<h2>Per class</h2>' + html_table(["class", "precision", "recall", "F1", "support", "accuracy"],
                                                   rows, "per-class"))
    mc = m.get("most_confused") or []
    tl = m.get("top_losses") or []
    parts.append('<div class="two"><div><h3>Most confused pairs</h3>' + html_table(
        ["true class", "predicted as", "count", "share of true class"],
        [[r["true"], r["predicted"], r["count"], fmt_pct(r["rate"], 1)] for r in mc], "most-confused") +
        '</div><div><h3>Highest-loss mistakes</h3>' + html_table(
        ["test index", "true", "predicted", "p(pred)", "loss"],
        [[r["index"], r["true"], r["predicted"], f"{r['prob_predicted']:.3f}", f"{r['loss']:.2f}"] for r in tl],
        "top-losses") + "</div></div>")

    section = None
    for stem, sec, caption in FIGURES:
        if stem not in figures:
            continue
        if sec != section:
            parts.append(f"<h2>{_e(sec)}</h2>")
            section = sec
        cap = caption
        if stem == "tsne" and m.get("embedding_layer"):
            cap += f" Embedding: {m['embedding_layer']}."
            if m.get("tsne_seconds") is not None:
                cap += f" t-SNE took {m['tsne_seconds']:.1f} s."
        parts.append(f"<figure>{img_tag(figures[stem], caption)}<figcaption>{_e(cap)}</figcaption></figure>")
    if "tsne" not in figures:
        parts.append('<p class="note">No t-SNE: the model has no nn.Linear head or artifacts.npz is missing '
                     '(run <code>fashionbench report RUN --recompute</code>).</p>')

    hist_cols = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "elapsed"]
    hrows = [[_num(r.get(c)) if "accuracy" not in c else fmt_pct(r.get(c)) for c in hist_cols] for r in data.history]
    parts.append("<h2>History</h2>" + html_table(hist_cols, hrows, "history"))
    cfg_rows = [[k, json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else v]
                for k, v in sorted(data.config.items())]
    parts.append("<h2>Configuration</h2>" + html_table(["option", "value"], cfg_rows, "config"))
    env = [[k, m.get(k)] for k in ("device", "precision", "machine", "torch_version", "fashionbench_version",
                                   "data_source") if m.get(k) is not None]
    if m.get("report_seconds") is not None:
        env.append(["report generation after training", f"{m['report_seconds']} s (t-SNE {m.get('tsne_seconds', '?')} s)"])
    parts.append("<h2>Environment</h2>" + html_table(["item", "value"], env, "environment"))
    return html_page(title, "".join(parts)), figures


def _write(run_dir: Path, html_text: str, figures: dict[str, bytes]) -> Path:
    for stem, png in figures.items():
        atomic_write_bytes(run_dir / runs.FIGURES / f"{stem}.png", png)
    atomic_write_text(run_dir / runs.REPORT, html_text)
    return run_dir / runs.REPORT


def write_report(data: RunData) -> Path:
    html_text, figures = render(data)
    return _write(data.run_dir, html_text, figures)
