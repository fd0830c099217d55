"""The public Python API as a notebook user calls it, and the inference object under it."""

import json

import numpy as np
import pytest
import torch

import fashionbench as fb
from fashionbench.errors import ConfigError


@pytest.fixture
def data(idx_folder):
    return fb.datasets.load("mnist-format", idx_folder)


def test_train_returns_a_result_with_the_model(data, tmp_path):
    run = fb.train("mlp_002", epochs=2, batch_size=64, device="cpu", data=data, out=tmp_path / "run", report=False)
    assert isinstance(run, fb.RunResult)
    assert run.state.epoch == 2 and 0 <= run.test_accuracy <= 1
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(run.test_accuracy) and saved["metrics_version"] == 1
    assert not (tmp_path / "run" / "report.html").exists()  # report=False skips the report step
    # the model in the result is the trained one: it reproduces the test logits
    logits = run.predictor().predict_logits(data.test_images)
    assert torch.allclose(logits, run.test_logits, atol=1e-5)


def test_load_predicts_like_the_run_and_takes_arrays(data, tmp_path):
    run = fb.train("cnn_002", epochs=1, batch_size=64, device="cpu", data=data, out=tmp_path / "run", report=False,
                   tta="flip")
    clf = fb.load(tmp_path / "run")
    assert clf.tta == ["flip"] and clf.class_names == data.class_names
    saved = np.load(tmp_path / "run" / "predictions.npz")["logits"]
    assert np.allclose(clf.predict_logits(data.test_images).numpy(), saved, atol=1e-4)
    probs = clf.predict_proba(data.test_images[:5].numpy())  # NumPy in
    assert probs.shape == (5, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    one = clf.predict(data.test_images[0].numpy(), k=3)  # a single (28, 28) image
    assert len(one) == 1 and len(one[0]["top_k"]) == 3 and one[0]["label"] == one[0]["top_k"][0][0]
    floats = clf.predict_proba(data.test_images[:5].float().numpy() / 255)  # floats in [0, 1]
    assert np.allclose(floats, probs, atol=1e-4)
    with pytest.raises(ConfigError, match=r"28x28"):
        clf.predict(np.zeros((3, 32, 32), np.uint8))
    assert "cnn_002" in repr(clf) and "test accuracy" in repr(run)


def test_evaluate_matches_training(data, tmp_path):
    run = fb.train("mlp_002", epochs=1, device="cpu", data=data, out=tmp_path / "run", report=False)
    m = fb.evaluate(tmp_path / "run", data=data, device="cpu")
    assert m["test_accuracy"] == pytest.approx(run.test_accuracy) and m["model"] == "mlp_002"


def test_evaluate_several_checkpoints_is_their_ensemble(data, idx_folder, tmp_path, capsys):
    from fashionbench.cli import main

    runs = [fb.train("mlp_002", epochs=1, device="cpu", data=data, out=tmp_path / f"run{s}", report=False, seed=s)
            for s in (0, 1)]
    m = fb.evaluate([tmp_path / "run0", tmp_path / "run1"], data=data, device="cpu")
    assert m["model"] == "ensemble" and len(m["members"]) == 2
    for member, run in zip(m["members"], runs):
        assert member["test_accuracy"] == pytest.approx(run.test_accuracy)
    # the mean of the members' logits / temperature, computed here independently
    z = sum(r.predictor().predict_logits(data.test_images) / r.temperature for r in runs) / 2
    want = (z.argmax(1) == data.test_labels).float().mean().item()
    assert m["test_accuracy"] == pytest.approx(want)
    assert main(["evaluate", str(tmp_path / "run0"), str(tmp_path / "run1"), "--dataset", "mnist-format",
                 "--data-dir", str(idx_folder), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2" in out and f"{100 * want:.2f}%" in out
    with pytest.raises(ConfigError, match="at least one checkpoint"):
        fb.evaluate([], data=data)


def test_save_false_writes_nothing(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = fb.train("mlp_002", epochs=1, device="cpu", data=data, save=False)
    assert run.run_dir is None and not (tmp_path / "runs").exists()


def test_make_config_layers_and_api_listings():
    cfg = fb.make_config(recipe="fast-60s", epochs=3, config={"lr": 0.5}, seed=4)
    assert cfg.model == "fastnet" and cfg.epochs == 3 and cfg.lr == 0.5 and cfg.seed == 4 and cfg.recipe == "fast-60s"
    assert "fast-60s" in fb.list_recipes() and "fastnet" in fb.list_models()
    with pytest.raises(ConfigError, match="unknown config keys"):
        fb.make_config("mlp_002", learning_rate=0.1)


def test_study_protocols_from_python(data, tmp_path):
    cv = fb.cross_validate(2, "mlp_002", epochs=1, device="cpu", data=data, out=tmp_path / "cv")
    assert len(cv["folds"]) == 2 and (tmp_path / "cv" / "cv.json").is_file()
    ab = fb.ablate(["b32:batch_size=32"], "mlp_002", epochs=1, device="cpu", data=data, out=tmp_path / "ab",
                   combine=False)
    assert {r["name"] for r in ab["rows"]} == {"baseline", "b32"}
    path = fb.report(tmp_path / "cv" / "fold1")
    assert path.name == "report.html"
    out = fb.compare([tmp_path / "cv"], tmp_path / "cmp")
    assert "fold" in out["markdown"] or "mlp_002" in out["markdown"]


def test_train_and_evaluate_are_functions_and_packages():
    import inspect

    import fashionbench.evaluate.report as report_module
    import fashionbench.train.run as run_module

    assert callable(fb.train) and callable(fb.evaluate)
    assert run_module.train_run and report_module.rebuild_report
    assert "recipe" in inspect.signature(fb.train).parameters
    assert fb.train.__doc__.startswith("Train a model")
