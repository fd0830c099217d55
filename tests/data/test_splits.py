import numpy as np
import pytest

from fashionbench.data.splits import stratified_holdout, stratified_kfold, stratified_subset
from fashionbench.errors import ConfigError

LABELS = np.repeat(np.arange(10), 100)


def test_holdout_is_stratified_and_disjoint():
    tr, va = stratified_holdout(LABELS, 0.1, seed=0)
    assert len(va) == 100 and len(tr) == 900
    assert not set(tr) & set(va)
    assert np.bincount(LABELS[va]).tolist() == [10] * 10


def test_holdout_depends_on_seed_only():
    a = stratified_holdout(LABELS, 0.2, seed=1)[1]
    assert np.array_equal(a, stratified_holdout(LABELS, 0.2, seed=1)[1])
    assert not np.array_equal(a, stratified_holdout(LABELS, 0.2, seed=2)[1])


def test_subset_fraction():
    keep = stratified_subset(LABELS, 0.1, seed=0)
    assert np.bincount(LABELS[keep]).tolist() == [10] * 10
    assert len(stratified_subset(LABELS, 1.0, 0)) == 1000


def test_kfold_covers_everything_once():
    folds = stratified_kfold(LABELS, 3, seed=0)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(1000))
    for tr, va in folds:
        counts = np.bincount(LABELS[va], minlength=10)
        assert counts.min() >= 33 and counts.max() <= 34


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_bad_fraction(bad):
    with pytest.raises(ConfigError, match="data-fraction"):
        stratified_subset(LABELS, bad, 0)
