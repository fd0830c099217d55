"""--jobs: independent trainings in spawned processes give what one process gives, in task order."""

from __future__ import annotations

import json

import pytest

from fashionbench.cli import main
from fashionbench.errors import ConfigError
from fashionbench.experiments.ablation import Variation, ablate
from fashionbench.experiments.crossval import cross_validate
from fashionbench.experiments.parallel import check_jobs, job_threads, run_jobs, train_metrics
from fashionbench.experiments.runner import Shrink, run_table
from fashionbench.train.config import TrainConfig

CPU = {"device": "cpu", "precision": "fp32"}


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"model": "mlp_002", "epochs": 1, "batch_size": 64, "lr": 1e-3, **CPU, **kw})


def test_check_jobs():
    assert check_jobs(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="--jobs must be a whole number"):
            check_jobs(bad)


def test_job_threads_one_each_unless_asked():
    assert job_threads(_cfg()).threads == 1
    assert job_threads(_cfg(threads=2)).threads == 2


def test_a_single_job_runs_here_with_the_callers_threads(tiny_dataset, tmp_path):
    (m,) = run_jobs(train_metrics, [{"cfg": _cfg(), "run_dir": tmp_path / "one"}], jobs=2, dataset=tiny_dataset)
    assert json.loads((tmp_path / "one" / "config.json").read_text())["threads"] is None and "test_accuracy" in m


@pytest.mark.slow  # worker processes start in about 5 s each: tens of seconds
def test_cross_validation_in_two_processes_matches_one(tiny_dataset, tmp_path):
    """The same folds, seeds and thread count give the same weights, so the same accuracies, bit for bit."""
    cfg = _cfg(threads=1)
    one = cross_validate(cfg, tmp_path / "one", 3, dataset=tiny_dataset)
    two = cross_validate(cfg, tmp_path / "two", 3, dataset=tiny_dataset, jobs=2)
    assert [f["val_accuracy"] for f in two["folds"]] == [f["val_accuracy"] for f in one["folds"]]
    assert [f["test_accuracy"] for f in two["folds"]] == [f["test_accuracy"] for f in one["folds"]]
    assert two["jobs"] == 2 and all((tmp_path / "two" / f"fold{k}" / "metrics.json").is_file() for k in (1, 2, 3))


@pytest.mark.slow  # worker processes start in about 5 s each: tens of seconds
def test_ablation_cells_in_parallel_keep_their_order(tiny_dataset, tmp_path):
    res = ablate(_cfg(), [Variation("lr", {"lr": 3e-3}), Variation("bs", {"batch_size": 32})], tmp_path, seeds=2,
                 dataset=tiny_dataset, combine=False, jobs=2)
    assert list(res["cells"]) == ["baseline", "lr", "bs"] and all(len(c["accs"]) == 2 for c in res["cells"].values())
    for name, seed in [("lr", 1), ("bs", 0)]:  # each cell's accuracy is the one its own run folder holds
        metrics = json.loads((tmp_path / name / f"seed{seed}" / "metrics.json").read_text())
        assert res["cells"][name]["accs"][seed] == metrics["test_accuracy"]
        assert json.loads((tmp_path / name / f"seed{seed}" / "config.json").read_text())["threads"] == 1


@pytest.mark.slow  # worker processes start in about 5 s each: tens of seconds
def test_a_jobs_error_arrives_as_its_own_error(tiny_dataset, tmp_path):
    tasks = [{"cfg": _cfg(), "run_dir": tmp_path / "ok"}, {"cfg": _cfg(model="no_such_model"), "run_dir": tmp_path / "x"}]
    with pytest.raises(ConfigError, match="no_such_model"):
        run_jobs(train_metrics, tasks, jobs=2, dataset=tiny_dataset)


def test_reproduce_seeds_as_jobs(tiny_dataset, tmp_path):
    rep = run_table("002-models", tmp_path, seeds=2, rows=["mlp_002"], shrink=Shrink(0.02, 0.5), dataset=tiny_dataset,
                    overrides=CPU, jobs=2)
    row = rep["rows"][0]
    assert row["status"] == "ok" and len(row["ours"]) == 2 and "--jobs 2" in rep["command"]
    for seed, acc in zip((0, 1), row["ours"], strict=True):
        assert json.loads((tmp_path / "mlp_002" / f"seed{seed}" / "metrics.json").read_text())["test_accuracy"] == acc


def test_cli_bad_jobs_is_one_line(idx_folder, tmp_path, capsys):
    rc = main(["cv", "--model", "mlp_002", "--epochs", "1", "--dataset", "mnist-format", "--data-dir", str(idx_folder),
               "--out", str(tmp_path / "cv"), "--jobs", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--jobs must be a whole number of at least 1" in err and "Traceback" not in err
