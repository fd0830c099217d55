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


def _study_args(idx_folder, uri):
    return ["--model", "mlp_002", "--epochs", "1", "--dataset", "mnist-format", "--data-dir", str(idx_folder),
            "--device", "cpu", "--track", "mlflow", "--tracking-uri", uri]


def _family(found):
    """(the one parent run, {child run name: child run})."""
    (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, children


@pytest.mark.slow  # worker processes start in about 5 s each: tens of seconds
def test_cv_folds_in_two_processes_are_nested_runs(idx_folder, tmp_path):
    """Two worker processes log their folds into one SQLite store, each under the cross-validation's run."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert main(["cv", "--folds", "3", "--jobs", "2", "--out", str(tmp_path / "cv"), *_study_args(idx_folder, uri)]) == 0
    _, found = _runs(uri)
    parent, children = _family(found)
    assert parent.info.run_name.startswith("cv mlp_002") and parent.data.params["folds"] == "3"
    assert sorted(children) == ["fold1", "fold2", "fold3"]
    assert all(c.info.status == "FINISHED" and "test_accuracy" in c.data.metrics for c in children.values())
    assert {"val_mean", "val_std", "test_accuracy"} <= set(parent.data.metrics)
    assert parent.info.status == "FINISHED"


@pytest.mark.slow  # several studies' worth of tiny runs: tens of seconds
def test_ablate_and_boost_runs_are_named_by_their_folders(idx_folder, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert main(["ablate", "--vary", "fast:lr=0.003", "--no-combine", "--out", str(tmp_path / "ab"),
                 *_study_args(idx_folder, uri)]) == 0
    parent, children = _family(_runs(uri)[1])
    assert sorted(children) == ["baseline/seed0", "fast/seed0"] and "fast_mean" in parent.data.metrics
    uri2 = f"sqlite:///{tmp_path / 'boost.db'}"
    assert main(["boost", "--out", str(tmp_path / "b"), *_study_args(idx_folder, uri2)]) == 0
    parent, children = _family(_runs(uri2)[1])
    assert sorted(children) == ["net1", "net2", "net3"] and "ensemble_test_accuracy" in parent.data.metrics


@pytest.mark.slow  # several studies' worth of tiny runs: tens of seconds
def test_reproduce_nests_a_cv_row_two_levels_deep(tiny_dataset, tmp_path):
    from fashionbench import api

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    api.reproduce("003-cnn-cv", epochs_scale=0.1, out=tmp_path / "r", data=tiny_dataset, device="cpu",
                  precision="fp32", track="mlflow", tracking_uri=uri)
    _, found = _runs(uri)
    by_id = {r.info.run_id: r for r in found}
    (table,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    (cv,) = [r for r in found if r.data.tags.get("mlflow.parentRunId") == table.info.run_id]
    folds = [r for r in found if r.data.tags.get("mlflow.parentRunId") == cv.info.run_id]
    assert table.info.run_name == "reproduce 003-cnn-cv" and "cnn_003_cv3_accuracy" in table.data.metrics
    assert cv.info.run_name.startswith("cv ") and sorted(r.info.run_name for r in folds) == ["fold1", "fold2", "fold3"]
    assert len(by_id) == 5 and (tmp_path / "r" / "paper_vs_ours.md").is_file()


def test_reproduce_tensorboard_log_root_keeps_seeds_apart(tiny_dataset, tmp_path):
    pytest.importorskip("tensorboard")
    from fashionbench import api

    api.reproduce("002-models", rows=["mlp_002"], seeds=2, epochs_scale=0.05, out=tmp_path / "r", data=tiny_dataset,
                  device="cpu", precision="fp32", track="tensorboard", tracking_uri=str(tmp_path / "tb"))
    for seed in (0, 1):
        assert list((tmp_path / "tb" / "mlp_002" / f"seed{seed}").glob("events.out.tfevents.*"))
