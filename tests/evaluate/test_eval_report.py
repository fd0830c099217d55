"""The report a training run writes, `fashionbench report`, and its bad-input errors."""

import json
import re
import shutil

import numpy as np
import pytest
import torch

from fashionbench.cli import main
from fashionbench.evaluate.report import rebuild_report

FIGURES = {"batch_loss", "epoch_curves", "learning_rate", "time_accuracy", "confusion", "per_class", "reliability",
           "top_losses", "sprite", "tsne"}


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the trained run, free to break."""
    dst = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, dst)
    return dst


def test_training_writes_report_figures_artifacts_and_metrics(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    for key in ("top2_accuracy", "test_accuracy_ci95", "per_class", "confusion_matrix_normalized", "most_confused",
                "top_losses", "ece", "reliability", "tsne_seconds", "report_seconds", "macro_f1"):
        assert key in m, key
    assert m["test_accuracy_ci95"][0] <= m["test_accuracy"] <= m["test_accuracy_ci95"][1]
    assert 0 < m["test_accuracy"] < 1, "the synthetic task should leave mistakes to show"
    assert m["top_losses"] and all(r["true"] != r["predicted"] for r in m["top_losses"])
    assert {p.stem for p in (tiny_run / "figures").glob("*.png")} == FIGURES
    art = np.load(tiny_run / "artifacts.npz")
    assert art["embeddings"].shape == (200, 128)  # all 200 test images, 128 inputs to the last Linear
    assert art["tsne"].shape == (200, 2)
    assert art["sprite_images"].shape == (100, 28, 28)
    assert len(art["top_images"]) == min(25, round((1 - m["test_accuracy"]) * 200))


def test_report_is_self_contained(tiny_run):
    page = (tiny_run / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == len(FIGURES) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(https?:)?//', page) and "<script" not in page and "<link" not in page
    for table in ("summary", "per-class", "most-confused", "top-losses", "history", "config"):
        assert f'id="{table}"' in page
    assert "T-shirt/top" in page and "Ankle boot" in page


def test_report_command_rebuilds(run, capsys):
    (run / "report.html").unlink()
    shutil.rmtree(run / "figures")
    assert main(["report", str(run)]) == 0
    assert "report:" in capsys.readouterr().out
    assert (run / "report.html").stat().st_size > 10_000
    assert len(list((run / "figures").glob("*.png"))) == len(FIGURES)


def test_report_recomputes_missing_artifacts(run, eval_dataset, monkeypatch):
    import fashionbench.data.sources as sources

    monkeypatch.setattr(sources, "load_dataset", lambda *a, **k: eval_dataset)
    before = np.load(run / "artifacts.npz")["tsne"]
    (run / "artifacts.npz").unlink()
    rebuild_report(run, device="cpu")
    after = np.load(run / "artifacts.npz")
    assert np.allclose(after["tsne"], before, atol=1e-3)  # same checkpoint, same seed: same picture


def _fails_cleanly(run, capsys, *words):
    report = (run / "report.html").read_bytes()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert (run / "report.html").read_bytes() == report  # nothing overwritten
    return err


@pytest.mark.parametrize("name", ["metrics.json", "config.json", "history.csv", "batches.csv", "predictions.npz"])
def test_missing_file(run, capsys, name):
    (run / name).unlink()
    _fails_cleanly(run, capsys, name, "lacks")


@pytest.mark.parametrize("name,content", [("metrics.json", b"{not json"), ("predictions.npz", b"garbage"),
                                          ("history.csv", b"epoch,train_loss,train_accuracy\n1,abc,0.5\n"),
                                          ("config.json", b"[1, 2]")])
def test_corrupt_file(run, capsys, name, content):
    (run / name).write_bytes(content)
    _fails_cleanly(run, capsys, name, "corrupt")


def test_truncated_predictions(run, capsys):
    data = (run / "predictions.npz").read_bytes()
    (run / "predictions.npz").write_bytes(data[: len(data) // 2])
    _fails_cleanly(run, capsys, "predictions.npz")


def test_checkpoint_of_another_model(run, capsys):
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(run / name, weights_only=True)
        ckpt["model"] = "cnn_002"
        torch.save(ckpt, run / name)
    _fails_cleanly(run, capsys, "cnn_002", "another run")


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err


def test_report_failure_never_loses_the_run(tmp_path, eval_dataset, train_tiny_run, monkeypatch, caplog):
    import fashionbench.evaluate.report as report

    def boom(data):
        raise RuntimeError("figure bug")

    monkeypatch.setattr(report, "write_report", boom)
    m = train_tiny_run(tmp_path / "r", eval_dataset, epochs=1)
    assert "top2_accuracy" in m and (tmp_path / "r" / "metrics.json").is_file()
    assert not (tmp_path / "r" / "report.html").exists()
    assert "fashionbench report" in caplog.text
