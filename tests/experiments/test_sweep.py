"""Sweeps: the space file's checks, a tiny study in process, 3 workers on one journal file, a killed
worker, and PostgreSQL storage with a server the test starts itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import fashionbench as fb
from fashionbench.errors import ConfigError
from fashionbench.experiments.sweep import _pruning_callback, load_space, open_storage, parse_space

optuna = pytest.importorskip("optuna")

SPACE = """
[lr]
low = 0.0003
high = 0.01
log = true

[batch_size]
choices = [32, 64]
"""


@pytest.mark.parametrize("space, problem", [
    ({"lr_max": {"low": 0.1, "high": 1}}, "unknown field 'lr_max'"),
    ({"lr": {"low": 0.5, "high": 0.1}}, "empty range"),
    ({"lr": {"low": "a", "high": 0.1}}, "needs numbers low and high"),
    ({"lr": {"low": 0, "high": 0.1, "log": True}}, "low must be above 0"),
    ({"epochs": {"low": 1.5, "high": 4}}, "whole number"),
    ({"batch_size": {"choices": []}}, "non-empty list"),
    ({"augment": {"low": 0, "high": 1}}, "not a number field"),
    ({"lr": {"low": 0.1, "high": 1, "lgo": True}}, "unknown key(s) lgo"),
    ({}, "names no field"),
])
def test_a_bad_space_gets_one_clear_line(space, problem):
    with pytest.raises(ConfigError) as e:
        parse_space(space)
    assert problem in str(e.value) and "\n" not in str(e.value)


def test_space_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[lr\nlow = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_space(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_space(tmp_path / "missing.toml")
    ok = tmp_path / "ok.toml"
    ok.write_text(SPACE + '\n["model_args.hidden"]\nchoices = [[16], [32, 16]]\n')
    names = [p.name for p in load_space(ok)]
    assert names == ["lr", "batch_size", "model_args.hidden"]


def test_bounds_that_make_an_invalid_config_fail_before_any_trial(tmp_path, tiny_dataset):
    with pytest.raises(ConfigError, match="label_smoothing = 1.5 makes an invalid config"):
        fb.sweep({"label_smoothing": {"low": 0.0, "high": 1.5}}, 2, "mlp_002", epochs=1, data=tiny_dataset,
                 out=tmp_path / "s")
    with pytest.raises(ConfigError, match="validation split"):
        fb.sweep({"lr": {"low": 0.001, "high": 0.01}}, 2, "mlp_002", epochs=1, val_fraction=0.0, data=tiny_dataset,
                 out=tmp_path / "s2")


def test_a_tiny_study_writes_its_outputs_and_continues(tmp_path, tiny_dataset):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    out = tmp_path / "sweep"
    s = fb.sweep(space, 3, "mlp_002", epochs=2, device="cpu", data=tiny_dataset, out=out)
    assert s["trials"] == 3 and s["states"] == {"COMPLETE": 3}
    best = json.loads((out / "best_config.json").read_text())
    cfg = fb.make_config(config=out / "best_config.json")  # what `train --config` takes
    assert cfg.lr == pytest.approx(s["best"]["params"]["lr"]) and best["epochs"] == 2
    assert cfg.batch_size in (32, 64)
    assert (out / "trials.csv").read_text().count("\n") == 4
    page = (out / "plots.html").read_text()
    assert page.count("data:image/png;base64,") >= 3  # history, importances, parallel coordinates
    for k in range(3):  # each trial's run folder, with validation (not test) accuracy in the table
        assert (out / "trials" / f"trial-{k:04d}" / "metrics.json").is_file()
    assert "test_accuracy" not in (out / "trials.md").read_text()

    again = fb.sweep(space, 3, "mlp_002", epochs=2, device="cpu", data=tiny_dataset, out=out)
    assert again["trials"] == 3  # already finished: nothing more to run
    more = fb.sweep(space, 5, "mlp_002", epochs=2, device="cpu", data=tiny_dataset, out=out)
    assert more["trials"] == 5 and more["states"] == {"COMPLETE": 5}


def test_the_pruning_callback_reports_each_epoch_and_prunes():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    class State:
        epoch = 1

    trial, state = FakeTrial(), State()
    cb = _pruning_callback(trial)
    cb.on_epoch_end(state, {"val_accuracy": 0.5})
    state.epoch = 2
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(state, {"val_accuracy": 0.6})
    assert trial.reports == [(1, 0.5), (2, 0.6)]


def _sweep_cmd(idx_folder, out, *extra):
    return [sys.executable, "-m", "fashionbench", "sweep", "--space", str(out.parent / "space.toml"),
            "--model", "mlp_002", "--dataset", "mnist-format", "--data-dir", str(idx_folder), "--device", "cpu",
            "--out", str(out), *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _trials(out, storage=None):
    study = optuna.load_study(study_name=out.name, storage=open_storage(storage, out))
    return study.get_trials(deepcopy=False)


@pytest.mark.slow  # real worker processes: tens of seconds
def test_three_workers_share_one_journal_file(idx_folder, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "three"
    r = subprocess.run(_sweep_cmd(idx_folder, out, "--trials", "6", "--jobs", "3", "--epochs", "2", "--study",
                                  "three"), capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = _trials(out)
    assert sorted(t.number for t in trials) == list(range(6))  # unique numbers, none lost
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) > 1  # the work really was shared
    assert "6 trials" in r.stdout


@pytest.mark.slow  # real worker processes: tens of seconds
def test_a_killed_worker_leaves_the_study_usable(idx_folder, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "killed"
    cmd = _sweep_cmd(idx_folder, out, "--trials", "2", "--epochs", "40", "--study", "killed")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until a trial has trained an epoch or two
            if (out / "journal.log").is_file() and any(
                    t.state.name == "RUNNING" and t.intermediate_values for t in _trials(out)):
                break
            time.sleep(0.3)
        else:
            pytest.fail("no trial started")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    assert any(t.state.name == "RUNNING" for t in _trials(out))
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    states = [t.state.name for t in _trials(out)]
    assert states[0] == "FAIL" and states.count("COMPLETE") + states.count("PRUNED") == 2


@pytest.mark.slow  # real worker processes: tens of seconds
def test_sweep_on_postgresql(idx_folder, tmp_path, postgres_url):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "pg"
    cmd = _sweep_cmd(idx_folder, out, "--trials", "4", "--jobs", "2", "--epochs", "1", "--study", "pg",
                     "--storage", postgres_url)
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = _trials(out, postgres_url)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert not (out / "journal.log").exists()  # the database holds the study
    r2 = subprocess.run(_sweep_cmd(idx_folder, out, "--trials", "5", "--epochs", "1", "--study", "pg", "--storage",
                                   postgres_url), capture_output=True, text=True, env=_env(), timeout=300)
    assert r2.returncode == 0 and len(_trials(out, postgres_url)) == 5


def test_an_unreachable_database_is_one_line(idx_folder, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    r = subprocess.run(_sweep_cmd(idx_folder, tmp_path / "x", "--trials", "1", "--storage",
                                  "postgresql://nobody@127.0.0.1:1/none"), capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("fashionbench: error: --storage postgresql://")
