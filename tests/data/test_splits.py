import re

import numpy as np
import pytest

from fashionbench.data.splits import split_training_set, stratified_holdout, stratified_kfold, stratified_subset
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
    for _, va in folds:
        counts = np.bincount(LABELS[va], minlength=10)
        assert counts.min() >= 33 and counts.max() <= 34


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_bad_fraction(bad):
    with pytest.raises(ConfigError, match="data-fraction"):
        stratified_subset(LABELS, bad, 0)


FULL = np.repeat(np.arange(10), 6000)  # Fashion-MNIST's training labels, in shape
RARE = np.r_[np.repeat(np.arange(9), 5000), [9, 9]]  # class 9 has two images


def suggested(message: str) -> float:
    return float(re.search(r"(?:at least|at most) ([0-9.e-]+)", message).group(1))


def test_tiny_data_fraction_names_the_smallest_that_works():
    with pytest.raises(ConfigError) as e:
        stratified_subset(FULL, 0.0001, seed=0)
    assert str(e.value) == ("--data-fraction 0.0001 keeps 6 of 60000 images, fewer than the 10 classes; "
                            "use at least 0.00017")
    assert np.unique(FULL[stratified_subset(FULL, 0.00017, seed=0)]).size == 10


def test_data_fraction_that_drops_fewer_images_than_classes():
    with pytest.raises(ConfigError, match="--data-fraction 0.9999 leaves out 6 of 60000 images.*at most 0.99983"):
        stratified_subset(FULL, 0.9999, seed=0)
    stratified_subset(FULL, 0.99983, seed=0)


def test_tiny_and_huge_val_fraction():
    with pytest.raises(ConfigError, match=r"--val-fraction 0.0001 holds out 6 of 60000 images, fewer than the 10 "
                                          r"classes; use at least 0.00016, or 0"):
        stratified_holdout(FULL, 0.0001, seed=0)
    with pytest.raises(ConfigError, match="--val-fraction 0.9999 leaves 6 of 60000 images for training.*at most"):
        stratified_holdout(FULL, 0.9999, seed=0)
    assert len(stratified_holdout(FULL, 0.00016, seed=0)[1]) == 10


@pytest.mark.parametrize("n_per_class", [2, 3, 7, 13, 101, 997])
@pytest.mark.parametrize("k", [2, 10, 47])
def test_every_suggested_fraction_works(n_per_class, k):
    y = np.repeat(np.arange(k), n_per_class)
    for split, bad in ((stratified_subset, 1e-6), (stratified_subset, 1 - 1e-6), (stratified_holdout, 1e-6),
                       (stratified_holdout, 1 - 1e-6)):
        with pytest.raises(ConfigError) as e:
            split(y, bad, seed=0)
        good = suggested(str(e.value)) if "at " in str(e.value) else None
        if good is not None and good < 1:
            parts = split(y, good, seed=0)
            train = parts[0] if isinstance(parts, tuple) else parts
            assert np.unique(y[train]).size == k


def test_too_few_images_for_any_split():
    with pytest.raises(ConfigError, match="10 images are too few.*use --val-fraction 0"):
        stratified_holdout(np.arange(10), 0.5, seed=0)
    with pytest.raises(ConfigError, match="use --data-fraction 1"):
        stratified_subset(np.arange(10), 0.5, seed=0)


def test_a_class_left_without_training_images_is_refused():
    with pytest.raises(ConfigError, match=r"--data-fraction 0.01 leaves 1 class\(es\) without a training image "
                                          r"\(class 9: 2 images\)"):
        stratified_subset(RARE, 0.01, seed=0)
    with pytest.raises(ConfigError, match=r"--val-fraction 0.9 leaves 1 class\(es\) without a training image"):
        stratified_holdout(RARE, 0.9, seed=0)


def test_a_class_of_one_image_cannot_be_stratified():
    y = np.r_[np.repeat(np.arange(9), 50), [9]]
    with pytest.raises(ConfigError, match="class 9 has only 1 image; use --val-fraction 0"):
        stratified_holdout(y, 0.1, seed=0)
    with pytest.raises(ConfigError, match="class 9 has only 1 image"):
        stratified_kfold(y, 2, seed=0)


def test_more_folds_than_the_smallest_class():
    y = np.r_[np.repeat(np.arange(9), 50), [9, 9, 9]]  # sklearn only warns here
    with pytest.raises(ConfigError, match="--folds 5 is more than the 3 images of class 9.*use --folds 3 or fewer"):
        stratified_kfold(y, 5, seed=0)
    with pytest.raises(ConfigError, match="use --folds 3 or fewer"):  # here sklearn raises ValueError
        stratified_kfold(np.repeat(np.arange(10), 3), 5, seed=0)
    assert len(stratified_kfold(y, 3, seed=0)) == 3


@pytest.mark.parametrize("split", [
    lambda s: stratified_subset(LABELS, 0.5, s),
    lambda s: stratified_subset(LABELS, 1.0, s),
    lambda s: stratified_holdout(LABELS, 0.1, s),
    lambda s: stratified_kfold(LABELS, 3, s),
    lambda s: split_training_set(LABELS, 0.5, 0.1, s),
])
def test_negative_seed_is_a_config_error(split):
    with pytest.raises(ConfigError, match="--seed must be >= 0, got -1"):
        split(-1)


def test_seeds_beyond_32_bits_work():
    assert np.array_equal(stratified_holdout(LABELS, 0.1, 2**32 + 5)[1], stratified_holdout(LABELS, 0.1, 5)[1])
    with pytest.raises(ConfigError, match="whole number"):
        stratified_subset(LABELS, 0.5, 1.5)


def test_split_training_set_passes_the_clear_errors_on():
    with pytest.raises(ConfigError, match="--data-fraction 0.0001 keeps 6 of 60000"):
        split_training_set(FULL, 0.0001, 0.1, seed=0)
    with pytest.raises(ConfigError, match="--val-fraction 0.001 holds out 6 of 6000 images"):
        split_training_set(FULL, 0.1, 0.001, seed=0)
