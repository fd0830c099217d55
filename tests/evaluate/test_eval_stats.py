"""Statistics, metrics and interpretation on hand-made numbers."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, chi2

from fashionbench.data.normalize import Normalization
from fashionbench.evaluate.interpret import Interpretation, sprite_indices, tsne_2d
from fashionbench.evaluate.metrics import classification_metrics, detailed_metrics
from fashionbench.evaluate.stats import bootstrap_accuracy_ci, calibration, mcnemar, mean_std, stratified_sample
from fashionbench.forward import last_linear
from fashionbench.inference import Predictor
from fashionbench.models.registry import create_model


def test_bootstrap_interval_brackets_accuracy_with_binomial_width():
    correct = np.r_[np.ones(9000, bool), np.zeros(1000, bool)]
    lo, hi = bootstrap_accuracy_ci(correct, seed=1)
    assert lo < 0.9 < hi
    half = 1.96 * math.sqrt(0.9 * 0.1 / 10000)
    assert abs((hi - lo) / 2 - half) < 0.0015
    assert bootstrap_accuracy_ci(correct, seed=1) == (lo, hi)  # seeded
    assert all(math.isnan(v) for v in bootstrap_accuracy_ci([]))


def test_mcnemar_exact_and_chi_square():
    a = np.r_[np.ones(100, bool), np.ones(1, bool), np.zeros(9, bool)]  # A right on 1 item B misses ...
    b = np.r_[np.ones(100, bool), np.zeros(1, bool), np.ones(9, bool)]  # ... B right on 9 items A misses
    t = mcnemar(a, b)
    assert (t.b, t.c, t.method) == (1, 9, "exact")
    assert t.p_value == pytest.approx(2 * binom.cdf(1, 10, 0.5))
    a = np.r_[np.ones(30, bool), np.zeros(10, bool)]
    t = mcnemar(a, ~a)
    assert (t.b, t.c, t.method) == (30, 10, "chi2-cc")
    assert t.statistic == pytest.approx(19 ** 2 / 40)
    assert t.p_value == pytest.approx(chi2.sf(19 ** 2 / 40, 1))
    assert mcnemar(a, a).p_value == 1.0
    with pytest.raises(ValueError):
        mcnemar(a, a[:-1])


def test_mean_std_and_calibration():
    assert mean_std([0.9, 0.92, 0.94]) == pytest.approx((0.92, 0.02))
    assert mean_std([0.9]) == (0.9, 0.0)
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.4], [0.6, 0.4]])
    cal = calibration(probs, [0, 1, 0, 1], bins=10)
    # two items at confidence 1.0 all right, two at 0.6 half right: ECE = 0.5 * |0.5 - 0.6|
    assert cal["ece"] == pytest.approx(0.05)
    assert sum(b["count"] for b in cal["bins"]) == 4


def test_stratified_sample_and_sprite_indices():
    y = np.repeat(np.arange(10), 100)
    idx = stratified_sample(y, 200, seed=0)
    assert len(idx) == 200 and (np.bincount(y[idx]) == 20).all()
    assert (stratified_sample(y, 5000) == np.arange(1000)).all()
    sp = sprite_indices(y, 3, seed=0)
    assert len(sp) == 30 and (np.bincount(y[sp]) == 3).all()


def test_interpretation_and_detailed_metrics():
    names = ["a", "b", "c"]
    logits = torch.tensor([[5.0, 1, 0], [0, 5, 1], [0, 1, 5], [1, 5, 0], [4, 3, 0], [0, 0, 5]])
    labels = np.array([0, 1, 2, 0, 1, 1])
    it = Interpretation.from_logits(logits, labels, names)
    assert it.confusion().tolist() == [[1, 1, 0], [1, 1, 1], [0, 0, 1]]
    assert it.topk_accuracy(1) == pytest.approx(0.5)
    assert it.topk_accuracy(2) == pytest.approx(5 / 6)
    assert it.most_confused(2)[0]["count"] == 1
    top = it.top_losses(10)
    assert set(top) == {3, 4, 5} and top[0] == 5  # item 5: true b, logit 0 vs 5
    m = detailed_metrics(logits, labels, names)
    assert m["top2_accuracy"] == pytest.approx(5 / 6)
    assert m["per_class"]["c"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert np.allclose(np.sum(m["confusion_matrix_normalized"], 1), 1, atol=1e-3)  # rounded to 4 places
    lo, hi = m["test_accuracy_ci95"]
    assert lo <= 0.5 <= hi
    assert 0 <= m["ece"] <= 1
    base = classification_metrics(logits, labels, names)  # the foundation's keys still work
    assert set(base) == {"test_accuracy", "test_loss", "per_class_accuracy", "confusion_matrix"}


@pytest.mark.parametrize("name", ["mlp_002", "cnn_002"])
def test_penultimate_embeddings_hook_on_last_linear(name):
    model = create_model(name)
    x = torch.randint(0, 255, (7, 28, 28), dtype=torch.uint8)
    emb = Predictor.from_model(model, Normalization(), [str(i) for i in range(10)], device="cpu",
                               batch_size=3).embeddings(x)
    head = last_linear(model)
    assert emb.shape == (7, head.in_features)
    assert not any(h for h in head._forward_pre_hooks.values())  # hook removed


def test_tsne_small():
    x = np.random.default_rng(0).normal(size=(40, 60)).astype(np.float32)
    assert tsne_2d(x).shape == (40, 2)
    assert tsne_2d(x[:3]).shape == (3, 2)
