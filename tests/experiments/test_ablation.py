"""Ablation: delta table, noise verdicts, combination of what helped."""

from __future__ import annotations

import pytest

from fashionbench.errors import ConfigError
from fashionbench.experiments.ablation import (
    Variation,
    ablate,
    combine_changes,
    delta_rows,
    format_ablation,
    parse_variation,
    pooled_std,
)
from fashionbench.train.config import TrainConfig


def test_parse_variation():
    v = parse_variation("sgd:optimizer=sgd,lr=0.001")
    assert v.name == "sgd" and v.change == {"optimizer": "sgd", "lr": 0.001}
    assert parse_variation("aug:augment=flip+translate").change == {"augment": ["flip", "translate"]}
    with pytest.raises(ConfigError):
        parse_variation("nothing")


def test_pooled_std_and_verdicts():
    cells = {"baseline": [0.90, 0.91, 0.92], "big": [0.95, 0.96, 0.97], "small": [0.905, 0.915, 0.925],
             "bad": [0.80, 0.81, 0.82]}
    assert pooled_std(cells) == pytest.approx(0.01)
    rows = {r["name"]: r for r in delta_rows(cells)}
    assert rows["baseline"]["verdict"] == "baseline"
    assert rows["big"]["verdict"] == "better" and rows["big"]["delta"] == pytest.approx(0.05)
    assert rows["small"]["verdict"] == "within noise"
    assert rows["bad"]["verdict"] == "worse"
    assert rows["big"]["threshold"] == pytest.approx(2 * 0.01 * (2 / 3) ** 0.5)


def test_single_seed_has_unknown_noise():
    rows = delta_rows({"baseline": [0.9], "x": [0.95]})
    assert rows[1]["verdict"].startswith("noise unknown")


def test_combine_changes_larger_gain_wins():
    vs = [Variation("e10", {"epochs": 10}), Variation("e20", {"epochs": 20}), Variation("adamw", {"optimizer": "adamw"})]
    rows = [{"name": "e10", "delta": 0.004}, {"name": "e20", "delta": 0.001}, {"name": "adamw", "delta": 0.002}]
    assert combine_changes(vs, ["e10", "e20", "adamw"], rows) == {"epochs": 10, "optimizer": "adamw"}


def test_ablate_with_fake_training(tmp_path, tiny_dataset):
    """Cells, seeds and the combined run, with a deterministic fake trainer."""
    calls = []

    def fake_train(cfg, run_dir, dataset=None, overwrite=False, tracking=None):
        calls.append((cfg.optimizer, cfg.epochs, cfg.seed))
        acc = 0.90 + (0.05 if cfg.optimizer == "adamw" else 0) - (0.05 if cfg.epochs == 1 else 0) + 0.001 * cfg.seed
        return {"test_accuracy": acc, "train_seconds": 1.0}

    base = TrainConfig(model="mlp_002", epochs=2)
    res = ablate(base, [Variation("adamw", {"optimizer": "adamw"}), Variation("short", {"epochs": 1})],
                 tmp_path, seeds=3, dataset=tiny_dataset, train_fn=fake_train)
    assert len(calls) == 3 * 4  # baseline, 2 variations, combined
    assert res["helped"] == ["adamw"] and res["combined_change"] == {"optimizer": "adamw"}
    rows = {r["name"]: r for r in res["rows"]}
    assert rows["adamw"]["verdict"] == "better" and rows["short"]["verdict"] == "worse"
    assert rows["combined"]["delta"] == pytest.approx(0.05)
    text = format_ablation(res)
    assert "combined" in text and "better" in text and "worse" in text
    assert (tmp_path / "ablation.json").is_file()


def test_ablate_tiny_real_training(tmp_path, tiny_dataset):
    base = TrainConfig(model="mlp_002", epochs=1, batch_size=64, lr=1e-3, device="cpu", precision="fp32")
    res = ablate(base, [Variation("lr", {"lr": 3e-3})], tmp_path, seeds=2, dataset=tiny_dataset)
    assert {r["name"] for r in res["rows"]} >= {"baseline", "lr"}
    assert all(r["n"] == 2 for r in res["rows"])


def test_bad_variation_key(tmp_path, tiny_dataset):
    with pytest.raises(ConfigError, match="unknown config keys"):
        ablate(TrainConfig(), [Variation("x", {"nope": 1})], tmp_path, dataset=tiny_dataset)
