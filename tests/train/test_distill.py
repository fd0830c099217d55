"""Distillation through the targets: teacher probabilities mixed with the labels, and a run trained on them."""

from __future__ import annotations

import pytest
import torch

from bands import band_dataset
from fashionbench.cli import main
from fashionbench.errors import ConfigError
from fashionbench.inference import Predictor
from fashionbench.train.config import TrainConfig, validate
from fashionbench.train.distill import teacher_targets
from fashionbench.train.run import setup_run, train_run


def _cfg(**kw) -> TrainConfig:
    base = dict(model="mlp_002", epochs=2, batch_size=32, device="cpu", precision="fp32", val_fraction=0.1, seed=0,
                optimizer="adam", lr=1e-3)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def eval_dataset():
    return band_dataset()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, eval_dataset):
    run_dir = tmp_path_factory.mktemp("distill") / "teacher"
    train_run(_cfg(epochs=3), run_dir, dataset=eval_dataset)
    return run_dir


def test_targets_mix_teacher_probabilities_and_labels(teacher, eval_dataset):
    x, y = eval_dataset.train_images[:40], eval_dataset.train_labels[:40]
    t = teacher_targets(str(teacher), x, y, 10, 0.3, torch.device("cpu"))
    assert t.shape == (40, 10) and torch.allclose(t.sum(1), torch.ones(40), atol=1e-5)
    p = Predictor.from_checkpoint(teacher, device="cpu", tta="flip")
    probs = torch.softmax(p.predict_logits(x) / p.temperature, 1)
    expected = 0.3 * probs + 0.7 * torch.nn.functional.one_hot(y, 10).float()
    assert torch.allclose(t, expected, atol=1e-5)
    assert (t.argmax(1) == y).all(), "with weight 0.3 the true label keeps the largest share"


def test_a_distilled_run_trains_on_soft_targets_and_keeps_hard_labels(teacher, eval_dataset, tmp_path):
    s = setup_run(_cfg(teacher=str(teacher), teacher_weight=0.5), dataset=eval_dataset)
    assert s.targets is not None and s.targets.shape == (len(s.train[1]), 10) and s.train[1].ndim == 1
    res = train_run(_cfg(teacher=str(teacher), teacher_weight=0.5, val_fraction=0.0), tmp_path / "student",
                    dataset=eval_dataset)
    assert res.test_accuracy > 0.3 and res.temperature > 0  # calibration still sees the hard labels
    assert res.config.teacher == str(teacher)


@pytest.mark.parametrize("kw, match", [
    (dict(teacher="t.pt", teacher_weight=0.0), "--teacher-weight must be in"),
    (dict(teacher="t.pt", teacher_weight=1.5), "--teacher-weight must be in"),
    (dict(teacher="t.pt", loss="mse"), "--teacher needs --loss ce"),
])
def test_bad_teacher_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        validate(_cfg(**kw))


def test_missing_teacher_is_one_line(tmp_path, capsys):
    assert main(["train", "--model", "mlp_002", "--teacher", str(tmp_path / "nope.pt"), "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "nope.pt" in err and "not found" in err and "Traceback" not in err
