"""fastai-style interpretation of a classifier's test predictions, t-SNE and sample sprites.

`Interpretation` works from logits and labels alone; the embeddings it plots come from
`Predictor.embeddings` (the input of the model's last nn.Linear).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Interpretation:
    probs: np.ndarray  # (N, K) softmax probabilities
    labels: np.ndarray  # (N,) true classes
    class_names: list[str]

    @classmethod
    def from_logits(cls, logits, labels, class_names: list[str]) -> Interpretation:
        probs = torch.softmax(torch.as_tensor(logits).float(), 1).numpy()
        return cls(probs, np.asarray(labels).astype(np.int64), list(class_names))

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def losses(self) -> np.ndarray:
        """Per-item cross-entropy."""
        p = self.probs[np.arange(len(self.labels)), self.labels]
        return -np.log(np.clip(p, 1e-12, None))

    def topk_accuracy(self, k: int) -> float:
        if not len(self.labels):
            return float("nan")
        k = min(k, self.probs.shape[1])
        top = np.argsort(-self.probs, axis=1)[:, :k]
        return float((top == self.labels[:, None]).any(1).mean())

    def confusion(self) -> np.ndarray:
        k = len(self.class_names)
        return np.bincount(self.labels * k + self.preds, minlength=k * k).reshape(k, k)

    def confusion_normalized(self) -> np.ndarray:
        """Rows sum to 1: the share of each true class predicted as each class."""
        cm = self.confusion().astype(float)
        rows = cm.sum(1, keepdims=True)
        return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)

    def most_confused(self, n: int = 10, min_count: int = 1) -> list[dict]:
        """Off-diagonal (true, predicted) pairs, most frequent first."""
        cm = self.confusion()
        norm = self.confusion_normalized()
        pairs = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] >= min_count]
        pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
        return [{"true": self.class_names[i], "predicted": self.class_names[j], "count": c,
                 "rate": float(norm[i, j])} for c, i, j in pairs[:n]]

    def top_losses(self, n: int = 25, misclassified_only: bool = True) -> np.ndarray:
        """Indices of the items with the highest loss (misclassified ones only by default)."""
        order = np.argsort(-self.losses, kind="stable")
        if misclassified_only:
            order = order[self.preds[order] != self.labels[order]]
        return order[:n]


def tsne_2d(features: np.ndarray, seed: int = 0, pca_dims: int = 50, max_iter: int = 500) -> np.ndarray:
    """2-D t-SNE (PCA init; PCA to `pca_dims` first when the features are wider).

    Runs on one OpenMP thread: torch and scikit-learn bring separate OpenMP runtimes, and after
    torch has run, a multi-threaded t-SNE in the same process was 5-7x slower (measured, 2 cores).
    500 iterations (250 of them early exaggeration) are enough for a picture; 2,000 points take
    about 7 s on this busy 2-core machine."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n < 5:
        return np.zeros((n, 2), np.float32)
    with threadpool_limits(1):
        if x.shape[1] > pca_dims and n > pca_dims:
            x = PCA(pca_dims, random_state=seed).fit_transform(x)
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        tsne = TSNE(2, init="pca", perplexity=perplexity, learning_rate="auto", random_state=seed,
                    max_iter=max(250, max_iter))
        return tsne.fit_transform(x).astype(np.float32)


def sprite_indices(labels, per_class: int = 10, seed: int = 0) -> np.ndarray:
    """`per_class` random items of each class, grouped by class (fewer where a class has fewer)."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(y.max()) + 1 if len(y) else 0):
        idx = np.flatnonzero(y == k)
        out.append(np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False)))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)
