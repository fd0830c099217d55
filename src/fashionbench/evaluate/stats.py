"""Honest uncertainty: bootstrap intervals, McNemar's test, mean +- std over seeds, calibration."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
ECE_BINS = 15


def bootstrap_accuracy_ci(correct, *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                          seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for the accuracy of a 0/1 correctness vector.

    Resampling n items with replacement and counting the correct ones is exactly a
    Binomial(n, accuracy) draw, so the resamples are drawn that way (same distribution as
    index resampling, a thousand times cheaper)."""
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    acc = rng.binomial(n, correct.mean(), size=resamples) / n
    alpha = (1 - level) / 2
    lo, hi = np.quantile(acc, [alpha, 1 - alpha])
    return (float(lo), float(hi))


@dataclass
class McNemar:
    """McNemar's test on paired predictions of the same test items.

    b: items A gets right and B gets wrong; c: the reverse. Exact two-sided binomial test
    when b + c < 25, else chi-square (1 dof) with continuity correction."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: str

    def to_dict(self) -> dict:
        return {"b": self.b, "c": self.c, "statistic": self.statistic, "p_value": self.p_value, "method": self.method}


def mcnemar(correct_a, correct_b, exact_below: int = 25) -> McNemar:
    from scipy.stats import binom, chi2

    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError(f"McNemar needs paired predictions, got {a.shape} and {b_.shape}")
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    n = b + c
    if n == 0:
        return McNemar(b, c, 0.0, 1.0, "exact")
    if n < exact_below:
        p = min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))
        return McNemar(b, c, float(min(b, c)), p, "exact")
    stat = (abs(b - c) - 1.0) ** 2 / n
    return McNemar(b, c, float(stat), float(chi2.sf(stat, 1)), "chi2-cc")


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(list(values), dtype=float)
    if len(v) == 0:
        return (math.nan, math.nan)
    return (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)


def calibration(probs: np.ndarray, labels, bins: int = ECE_BINS) -> dict:
    """Expected calibration error of the top-1 confidence and the reliability-diagram bins."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf = probs.max(1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(1) == y) if len(probs) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    ece = 0.0
    for i in range(bins):
        m = which == i
        count = int(m.sum())
        acc = float(correct[m].mean()) if count else None
        mean_conf = float(conf[m].mean()) if count else None
        if count:
            ece += count / len(conf) * abs(acc - mean_conf)
        rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": count,
                     "accuracy": acc, "confidence": mean_conf})
    return {"ece": float(ece) if len(conf) else math.nan, "bins": rows}


def stratified_sample(labels, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of about n items, the same share of every class (all items if n >= len)."""
    y = np.asarray(labels)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    out = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        take = max(1, round(n * len(idx) / len(y)))
        out.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


def fit_temperature(logits, labels) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(logits / T)
    (Guo et al., 2017), fitted on held-out data; T > 1 softens over-confident logits, T < 1
    sharpens under-confident ones (label smoothing makes them so)."""
    import torch

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if not len(z):
        return 1.0

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    # A 1-D convex problem in log T: golden-section search is exact enough and never diverges.
    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), 4)
