"""Boosting: which patterns nets 2 and 3 see, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np

from fashionbench.experiments.boosting import _ensure_min, boost, format_boost, select_net2, select_net3
from fashionbench.train.config import TrainConfig


def test_net2_is_half_wrong_half_right():
    rng = np.random.default_rng(0)
    correct = np.ones(100, bool)
    correct[[3, 10, 50, 77]] = False
    pos = select_net2(correct, rng)
    assert len(pos) == 8
    assert set(np.flatnonzero(~correct)) <= set(pos)  # every error is used
    assert (~correct[pos]).sum() == 4 and correct[pos].sum() == 4
    assert np.all(np.diff(pos) > 0)


def test_net2_subsamples_errors_when_they_dominate():
    rng = np.random.default_rng(0)
    correct = np.zeros(50, bool)
    correct[:5] = True
    pos = select_net2(correct, rng)
    assert correct[pos].sum() == 5 and (~correct[pos]).sum() == 5


def test_net2_all_right_uses_everything():
    assert len(select_net2(np.ones(7, bool), np.random.default_rng(0))) == 7


def test_net3_is_disagreements():
    p1 = np.array([0, 1, 2, 3, 4])
    p2 = np.array([0, 2, 2, 1, 4])
    assert select_net3(p1, p2).tolist() == [1, 3]


def test_ensure_min_tops_up():
    pos, extra = _ensure_min(np.array([4]), 10, 5, np.random.default_rng(0))
    assert extra == 4 and len(pos) == 5 and 4 in pos and len(set(pos)) == 5
    pos, extra = _ensure_min(np.arange(6), 10, 5, np.random.default_rng(0))
    assert extra == 0 and len(pos) == 6


def test_boost_end_to_end(tiny_dataset, tmp_path):
    cfg = TrainConfig(model="mlp_002", epochs=2, batch_size=32, lr=2e-3, val_fraction=0.1, device="cpu",
                      precision="fp32")
    res = boost(cfg, tmp_path / "boost", dataset=tiny_dataset)
    assert [n["net"] for n in res["nets"]] == [1, 2, 3]
    assert res["nets"][0]["train_patterns"] == 540
    assert res["nets"][1]["train_patterns"] <= 540
    assert 0 <= res["ensemble_test_accuracy"] <= 1
    saved = json.loads((tmp_path / "boost" / "boost.json").read_text())
    assert saved["ensemble_test_accuracy"] == res["ensemble_test_accuracy"]
    for k in (1, 2, 3):
        assert (tmp_path / "boost" / f"net{k}" / "metrics.json").is_file()
    assert "ensemble" in format_boost(res)
