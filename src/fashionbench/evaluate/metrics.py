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
