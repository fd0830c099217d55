"""--track from the command line: train and sweep log to a real local MLflow store, read back with MLflow's client."""

from __future__ import annotations

import pytest

from fashionbench.cli import main

mlflow = pytest.importorskip("mlflow")


def _runs(uri):
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("fashionbench")
    return client, client.search_runs([exp.experiment_id])


def test_train_track_mlflow(idx_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlruns.db'}"
    assert main(["train", "--model", "mlp_002", "--epochs", "2", "--dataset", "mnist-format", "--data-dir",
                 str(idx_folder), "--device", "cpu", "--out", str(tmp_path / "r"), "--track", "mlflow",
                 "--tracking-uri", uri]) == 0
    client, found = _runs(uri)
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED" and run.data.params["epochs"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    assert "test_accuracy" in run.data.metrics


def test_sweep_trials_are_nested_runs(idx_folder, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("[lr]\nlow = 0.001\nhigh = 0.01\nlog = true\n")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert main(["sweep", "--space", str(space), "--trials", "2", "--model", "mlp_002", "--epochs", "1", "--dataset",
                 "mnist-format", "--data-dir", str(idx_folder), "--device", "cpu", "--out", str(tmp_path / "sw"),
                 "--track", "mlflow", "--tracking-uri", uri]) == 0
    _, found = _runs(uri)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert "best_val_accuracy" in parents[0].data.metrics


def test_track_without_the_package_is_one_line(idx_folder, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)
    rc = main(["train", "--model", "mlp_002", "--epochs", "1", "--dataset", "mnist-format", "--data-dir",
               str(idx_folder), "--out", str(tmp_path / "r"), "--track", "mlflow"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'fashionbench[track]'" in err and not (tmp_path / "r").exists()
