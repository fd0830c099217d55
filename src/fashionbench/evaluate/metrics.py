"""Classification metrics computed from logits and labels."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import confusion_matrix


def classification_metrics(logits: torch.Tensor | np.ndarray, labels, class_names: list[str]) -> dict:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    logits = torch.as_tensor(logits).float()
    y = np.asarray(labels)
    pred = logits.argmax(1).numpy()
    k = len(class_names)
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    support = cm.sum(1)
    per_class = np.divide(np.diag(cm), support, out=np.zeros(k), where=support > 0)
    return {
        "test_accuracy": float((pred == y).mean()),
        "test_loss": float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).item()),
        "per_class_accuracy": {name: float(a) for name, a in zip(class_names, per_class)},
        "confusion_matrix": cm.tolist(),
    }


def detailed_metrics(logits: torch.Tensor | np.ndarray, labels, class_names: list[str], *, seed: int = 0,
                     top_pairs: int = 10, temperature: float | None = None) -> dict:
    """What classification_metrics lacks: top-2, per-class precision/recall/F1, the row-normalized
    confusion matrix, most-confused pairs, a bootstrap 95% interval and calibration (ECE of the raw
    softmax, and with a fitted `temperature` the ECE of softmax(logits / temperature))."""
    from sklearn.metrics import precision_recall_fscore_support

    from .interpret import Interpretation
    from .stats import BOOTSTRAP_RESAMPLES, ECE_BINS, bootstrap_accuracy_ci, calibration

    interp = Interpretation.from_logits(logits, labels, class_names)
    y, pred = interp.labels, interp.preds
    k = len(class_names)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    cal = calibration(interp.probs, y)
    lo, hi = bootstrap_accuracy_ci(pred == y, seed=seed)
    return {
        "top2_accuracy": interp.topk_accuracy(2),
        "test_accuracy_ci95": [lo, hi],
        "ci_method": f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples of the test set",
        "macro_f1": float(f.mean()) if k else float("nan"),
        "per_class": {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, name in enumerate(class_names)},
        "confusion_matrix_normalized": np.round(interp.confusion_normalized(), 4).tolist(),
        "most_confused": interp.most_confused(top_pairs),
        "ece": cal["ece"],
        "ece_bins": ECE_BINS,
        "reliability": cal["bins"],
        **({"ece_calibrated": calibration(torch.softmax(torch.as_tensor(logits).float() / temperature, 1).numpy(),
                                          y)["ece"]} if temperature else {}),
    }
