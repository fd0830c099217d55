"""Failures that used to be silent or end in a traceback: each gets one clear line and exit 2."""

import argparse
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fashionbench import run_lock, runs
from fashionbench.cli import main

TINY = ["--model", "mlp_002", "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--threads", "1"]


def data_args(folder):
    return ["--dataset", "mnist-format", "--data-dir", str(folder)]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("fashionbench: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


@pytest.mark.parametrize("flags, expected", [
    (["--step-epochs", "0", "--schedule", "step"], "--step-epochs must be at least 1"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--weight-decay", "-0.1"], "--weight-decay must be 0 or more"),
    (["--momentum", "-1"], "--momentum must be in [0, 1)"),
    (["--gamma", "0"], "--gamma must be in (0, 1]"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--data-fraction", "1.5"], "--data-fraction must be in (0, 1]"),
    (["--tta", "bogus"], "unknown --tta view 'bogus'"),
    (["--model", "fastnet", "--model-arg", "widths=[0,0,0]"], "model 'fastnet' cannot be built with"),
    (["--model", "mlp_002", "--model-arg", "dropout=7"], "cannot be built"),
    (["--model", "cnn_002", "--model-arg", "init=\"bogus\""], "init"),
    (["--model-arg", "num_classes=3"], "--model-arg num_classes is set from the data"),
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--weights", "w.pt"], "--weights gives ImageNet starting weights to a transfer-learning model; mlp_002"),
    (["--model", "fastnet", "--resize-min", "14", "--resize-end", "0"], "--resize-min needs --resize-end after"),
    (["--filter-lr", "0.1"], "--filter-lr has no effect without --optimizer muon"),
    (["--teacher-weight", "0.3"], "--teacher-weight has no effect without --teacher"),
    (["--keep-hard", "0.3"], "--keep-hard has no effect without --skip-easy SHARE"),
    (["--skip-easy", "0.5", "--keep-hard", "0.6"], "add up to 1 or more, leaving no well-learned images"),
    (["--skip-easy", "-0.1"], "--skip-easy must be a share in [0, 1)"),
    (["--photos-repeat", "3"], "--photos-repeat has no effect without --photos"),
    (["--tracking-uri", "sqlite:///x.db"], "--tracking-uri has no effect without --track"),
])
def test_bad_train_options_one_line(flags, expected, idx_folder, tmp_path, capsys):
    args = ["train", *TINY, *data_args(idx_folder), "--out", str(tmp_path / "run"), *flags]
    assert main(args) == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("study", [["cv", "--folds", "2"], ["boost"], ["ablate", "--vary", "lr:lr=0.05"]])
def test_a_study_that_fails_in_its_first_run_leaves_no_folder(study, idx_folder, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nshirt.jpg,Shirt\n")  # the wrong header: the first run's data fails
    out = tmp_path / "study"
    assert main([*study, *TINY, *data_args(idx_folder), "--photos", str(labels), "--out", str(out)]) == 2
    assert "fmnist_label" in one_error_line(capsys)
    assert not out.exists()


def test_a_failed_study_keeps_a_folder_that_was_there(idx_folder, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nshirt.jpg,Shirt\n")
    out = tmp_path / "study"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        assert main(["cv", "--folds", "2", *TINY, *data_args(idx_folder), "--photos", str(labels),
                     "--out", str(out), *extra]) == 2
        one_error_line(capsys)
        assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()  # an empty folder that was there stays too
    assert main(["cv", "--folds", "2", *TINY, *data_args(idx_folder), "--photos", str(labels), "--out", str(out)]) == 2
    assert out.is_dir()


def test_config_file_must_be_an_object(idx_folder, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text("[1, 2]")
    assert main(["train", *TINY, *data_args(idx_folder), "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "expected a JSON object" in one_error_line(capsys)


def test_out_naming_a_file(idx_folder, tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("keep me")
    assert main(["train", *TINY, *data_args(idx_folder), "--out", str(f)]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)
    assert f.read_text() == "keep me"


@pytest.fixture
def trained(idx_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, *data_args(idx_folder), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_evaluate_bad_inputs(trained, idx_folder, tmp_path, capsys):
    assert main(["evaluate", str(trained), "--batch-size", "0", *data_args(idx_folder)]) == 2
    assert "--batch-size must be at least 1" in one_error_line(capsys)
    assert main(["evaluate", str(trained), "--tta", "bogus", *data_args(idx_folder)]) == 2
    assert "unknown --tta view" in one_error_line(capsys)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert main(["evaluate", str(empty), *data_args(idx_folder)]) == 2
    assert "is empty (0 bytes)" in one_error_line(capsys)
    assert main(["evaluate", str(trained), "--threads", "1", "--precision", "fp32", *data_args(idx_folder)]) == 0


def test_resume_with_another_models_last_pt(trained, idx_folder, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", *TINY, "--model", "cnn_002", "--epochs", "2", *data_args(idx_folder), "--out",
                 str(other)]) == 0
    (other / "metrics.json").unlink()
    (other / "last.pt").write_bytes((trained / "last.pt").read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(other)]) == 2
    assert "comes from another run" in one_error_line(capsys)


def test_run_that_never_saved_a_checkpoint_has_a_way_out(idx_folder, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    stale = out / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", *TINY, *data_args(idx_folder), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "--overwrite" in line and "cannot be resumed" in line
    assert main(["train", "--resume", str(out)]) == 2
    assert "start it again with the same options and --overwrite" in one_error_line(capsys)
    assert main(["train", *TINY, *data_args(idx_folder), "--out", str(out), "--overwrite"]) == 0
    assert not stale.exists() and (out / "metrics.json").is_file()
    assert not list(out.glob(".*.tmp")) and not (out / runs.LOCK).exists()


def test_overwrite_clears_the_old_run_and_only_it(trained, idx_folder, capsys):
    assert (trained / "report.html").is_file() and (trained / "figures").is_dir()
    (trained / "notes.txt").write_text("mine")
    # the overwriting run diverges at once: nothing of the old run may be left beside it
    assert main(["train", *TINY, "--optimizer", "sgd", "--lr", "1e6", *data_args(idx_folder), "--out", str(trained),
                 "--overwrite"]) == 2
    assert "training diverged" in one_error_line(capsys)
    left = {p.name for p in trained.iterdir()}
    assert left == {"config.json", "notes.txt"}, left
    assert main(["report", str(trained)]) == 2
    assert "lacks metrics.json" in one_error_line(capsys)


def test_diverging_run_keeps_its_last_good_checkpoint(idx_folder, tmp_path):
    """A real run whose loss becomes NaN in epoch 2: it stops there, exit 2, last.pt of epoch 1 stays."""
    from fashionbench.data.sources import load_dataset
    from fashionbench.train.callbacks import Callback
    from fashionbench.train.config import TrainConfig
    from fashionbench.train.run import TrainingError, train_run

    class Poison(Callback):  # after epoch 1 is saved, one infinite weight: the next loss is NaN
        def on_epoch_end(self, state, row):
            with torch.no_grad():
                next(self.model.parameters()).view(-1)[0] = float("inf")

    cfg = TrainConfig(model="mlp_002", epochs=4, batch_size=64, device="cpu")
    with pytest.raises(TrainingError, match=r"diverged.*epoch 2.*last good checkpoint \(epoch 1\)"):
        train_run(cfg, tmp_path / "run", dataset=load_dataset("mnist-format", idx_folder), callbacks=[Poison()])
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_diverging_lr_stops_within_a_few_steps(idx_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "5", "--optimizer", "sgd", "--lr", "1e6", *data_args(idx_folder),
                 "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "training diverged" in line and "lower --lr" in line
    assert not (out / "metrics.json").exists()
    batches = (out / "batches.csv").read_text().splitlines() if (out / "batches.csv").exists() else []
    assert len(batches) <= 10  # caught in the first epoch (10 batches of 64), not trained on NaN to the end


def test_full_disk_is_one_line_and_the_run_can_start_again(idx_folder, tmp_path, capsys, monkeypatch):
    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runs, "atomic_torch_save", full)
    out = tmp_path / "run"
    assert main(["train", *TINY, *data_args(idx_folder), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "disk is full" in line and "--overwrite" in line
    monkeypatch.undo()
    assert main(["train", *TINY, *data_args(idx_folder), "--out", str(out), "--overwrite"]) == 0


def test_recipe_with_fewer_epochs_scales_its_warmup(idx_folder, tmp_path, capsys):
    from fashionbench.train.config import resolve_config

    cfg = resolve_config(recipe="fast-60s", overrides={"epochs": 2})
    assert 0 < cfg.warmup_epochs < 2 and cfg.warmup_epochs == pytest.approx(0.46, abs=0.01)
    assert resolve_config(recipe="fast-60s", overrides={"epochs": 2, "warmup_epochs": 1.0}).warmup_epochs == 1.0


def test_flag_given_at_its_default_value_wins_over_a_spec(idx_folder, tmp_path, capsys):
    """`ablate --spec` with a baseline lr of 0.01 and `--lr 0.001` (the default): the flag wins."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"baseline": {"model": "mlp_002", "lr": 0.01, "epochs": 1},
                                "variations": [{"name": "b32", "change": {"batch_size": 32}}]}))
    out = tmp_path / "abl"
    assert main(["ablate", "--spec", str(spec), "--lr", "0.001", "--no-combine", "--device", "cpu", "--threads", "1",
                 *data_args(idx_folder), "--out", str(out)]) == 0
    cfgs = [json.loads(p.read_text()) for p in out.glob("*/seed0/config.json")]
    assert len(cfgs) == 2 and {c["lr"] for c in cfgs} == {0.001}


def test_help_promises_only_what_exists(capsys):
    from fashionbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"export", "serve", "predict", "train"} <= set(sub.choices)
    for name, p in sub.choices.items():  # every command the help lists has a handler
        assert callable(p.get_default("func")), name


def _train_cmd(idx_folder, out, seed):
    exe = os.path.join(os.path.dirname(sys.executable), "fashionbench")
    return [exe, "train", "--model", "mlp_002", "--epochs", "3", "--batch-size", "32", "--threads", "1",
            "--device", "cpu", "--seed", str(seed), *data_args(idx_folder), "--out", str(out)]


def test_two_runs_on_one_folder_one_wins_the_other_says_so(idx_folder, tmp_path):
    out = tmp_path / "shared"
    procs = [subprocess.Popen(_train_cmd(idx_folder, out, seed), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    winner = [i for i, r in enumerate(results) if r[0] == 0][0]
    loser = results[1 - winner]
    assert "Traceback" not in loser[2] and ("in use by process" in loser[2] or "already holds" in loser[2]), loser[2]
    seed = (1, 2)[winner]
    assert json.loads((out / "config.json").read_text())["seed"] == seed
    assert json.loads((out / "metrics.json").read_text())["seed"] == seed
    assert not (out / runs.LOCK).exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (out / runs.LOCK).write_text(f"{dead.stdout.strip()} {socket.gethostname()} {time.strftime('%Y-%m-%d')}\n")
    with run_lock.claim_run_dir(out) as folder:
        assert folder.lock.read_text().split()[0] == str(os.getpid())
    assert not (out / runs.LOCK).exists()


@pytest.mark.parametrize("content, expected", [
    ({"augment": 5}, "augment must be"),
    ({"tta": 5}, "tta must be"),
    ({"model_args": [1]}, "model_args must be an object"),
])
def test_config_values_of_the_wrong_type(content, expected, idx_folder, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(content))
    assert main(["train", *TINY, *data_args(idx_folder), "--config", str(cfg), "--model-arg", "dropout=0.1",
                 "--out", str(tmp_path / "r")]) == 2
    assert expected in one_error_line(capsys)


@pytest.mark.parametrize("spec", [[], {"baseline": [1], "variations": []},
                                  {"variations": [{"name": "x", "change": [1]}]}])
def test_bad_ablation_spec(spec, idx_folder, tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert main(["ablate", "--spec", str(path), *data_args(idx_folder), "--out", str(tmp_path / "a")]) == 2
    assert "ablation spec" in one_error_line(capsys)


def test_resume_of_a_finished_run_changes_nothing(trained, capsys):
    before = json.loads((trained / "metrics.json").read_text())
    assert main(["train", "--resume", str(trained)]) == 0  # idempotent: re-tests the same weights
    after = json.loads((trained / "metrics.json").read_text())
    assert after["test_accuracy"] == before["test_accuracy"] and after["epochs"] == before["epochs"]


def test_a_recipe_boolean_can_be_turned_off(idx_folder, tmp_path):
    from fashionbench.cli import build_parser
    from fashionbench.cli.options import config_kwargs
    from fashionbench.train.config import resolve_config

    args = build_parser().parse_args(["train", "--recipe", "fast-60s", "--no-drop-last", "--no-lookahead"])
    kw = config_kwargs(args)
    cfg = resolve_config(recipe=kw.pop("recipe"), config=kw.pop("config"), overrides=kw)
    assert cfg.drop_last is False and cfg.lookahead is False and cfg.nesterov is True


def test_run_folder_loads_the_weights_its_metrics_came_from(trained):
    from fashionbench.checkpoint import read_checkpoint

    # without --restore-best the test metrics come from last.pt, and so does loading the folder
    assert read_checkpoint(trained)["path"].endswith("last.pt")


def test_api_run_on_other_data_records_it(idx_folder, tmp_path):
    import fashionbench as fb

    ds = fb.datasets.load("mnist-format", idx_folder)
    run = fb.train("mlp_002", epochs=1, device="cpu", data=ds, out=tmp_path / "r", report=False)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["dataset"] == "mnist-format" and saved["data_dir"] == str(idx_folder)
    assert fb.evaluate(tmp_path / "r", device="cpu")["test_accuracy"] == pytest.approx(run.test_accuracy)


def test_predictor_edge_inputs(trained):
    import numpy as np

    import fashionbench as fb
    from fashionbench.errors import ConfigError, PhotoError

    clf = fb.load(trained, device="cpu")
    assert clf.predict_proba(np.zeros((0, 28, 28), np.uint8)).shape == (0, 10)
    with pytest.raises(ConfigError, match="NaN"):
        clf.predict(np.full((1, 28, 28), np.nan, np.float32))
    with pytest.raises(PhotoError, match="a.jpg: no such file"):  # a string is a photo's path
        clf.predict("a.jpg")


def test_constant_embeddings_skip_tsne_instead_of_crashing():
    import numpy as np

    from fashionbench.data.normalize import Normalization
    from fashionbench.evaluate.report import collect_artifacts
    from fashionbench.inference import Predictor

    class Dead(torch.nn.Module):  # every image gets the same features
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.head(torch.ones(len(x), 4))

    images = torch.randint(0, 255, (60, 28, 28), dtype=torch.uint8)
    labels = np.arange(60) % 10
    art = collect_artifacts(Predictor.from_model(Dead(), Normalization(), [str(i) for i in range(10)], device="cpu"),
                            images, labels, np.zeros((60, 10), np.float32), images, labels)
    assert "tsne" not in art and "sprite_images" in art


@pytest.mark.parametrize("history", ["epoch,train_loss,train_accuracy,elapsed\n1,0.5,\xff,1.0\n",
                                     "garbage,,\n1,2,3\n", "epoch,train_loss,train_accuracy,elapsed\nabc,1,0.5,1\n",
                                     "epoch,train_loss,train_accuracy,elapsed\n1,0.5\n"])
def test_epochs_table_of_a_damaged_history_is_one_line(trained, history, capsys):
    (trained / "history.csv").write_bytes(history.encode("latin-1"))
    assert main(["epochs-table", str(trained)]) == 2
    assert "history.csv is corrupt" in one_error_line(capsys)


def test_epochs_table_json_is_valid_json_without_a_validation_split(idx_folder, tmp_path, capsys):
    out = tmp_path / "noval"
    assert main(["train", *TINY, *data_args(idx_folder), "--val-fraction", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["epochs-table", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert rows[-1]["epoch"] == 1 and rows[-1]["val_accuracy"] is None


def test_unreadable_ablation_spec_and_nameless_variation(idx_folder, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_bytes(b"\xff\xfe{")
    assert main(["ablate", "--spec", str(spec), *data_args(idx_folder), "--out", str(tmp_path / "a")]) == 2
    assert "ablation spec" in one_error_line(capsys)
    assert main(["ablate", *TINY, "--vary", ":lr=0.1", *data_args(idx_folder), "--out", str(tmp_path / "b")]) == 2
    assert "has no name" in one_error_line(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("pair, expected", [("resnet18_tl=missing.pth", "weights file missing.pth not found"),
                                            ("fastnet=w.pth", "fastnet takes no starting weights"),
                                            ("nosuch=w.pth", "unknown model 'nosuch'")])
def test_reproduce_checks_its_weights_before_any_row(pair, expected, idx_folder, tmp_path, capsys):
    assert main(["reproduce", "000-table3", "--weights", pair, "--data-dir", str(idx_folder),
                 "--out", str(tmp_path / "rp")]) == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "rp").exists()


def test_os_errors_name_the_path_and_what_is_wrong():
    from fashionbench.cli import _os_error_line

    denied = _os_error_line(PermissionError(errno.EACCES, "Permission denied", "ph/labels.csv"))
    assert denied == "Permission denied: ph/labels.csv; check the path and its permissions"
    assert "is a file where a folder is needed" in _os_error_line(FileExistsError(errno.EEXIST, "File exists", "x.csv"))
    assert "is a folder where a file is needed" in _os_error_line(IsADirectoryError(errno.EISDIR, "Is a dir", "d"))
    assert "the disk is full writing a.pt" in _os_error_line(OSError(errno.ENOSPC, "No space left", "a.pt"))


def test_unreadable_checkpoint_says_permission_not_truncated(trained, monkeypatch):
    from fashionbench.checkpoint import load_checkpoint
    from fashionbench.errors import CheckpointError

    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(trained / "best.pt"))

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(CheckpointError, match="cannot be read \\(permission denied\\)"):
        load_checkpoint(trained / "best.pt")


def test_data_dir_naming_a_file_and_a_relative_data_dir(idx_folder, tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "train.csv"
    a_file.write_text("x")
    assert main(["train", *TINY, *data_args(a_file), "--out", str(tmp_path / "r")]) == 2
    assert "is a file; --data-dir names the folder" in one_error_line(capsys)
    monkeypatch.chdir(idx_folder.parent)
    assert main(["train", *TINY, *data_args("idx"), "--out", str(tmp_path / "rel")]) == 0
    saved = json.loads((tmp_path / "rel" / "config.json").read_text())
    assert saved["data_dir"] == str(idx_folder.resolve())  # evaluate and report find it from any folder
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "rel"), "--threads", "1"]) == 0


def test_an_unused_claim_or_failed_study_removes_the_parent_folders_it_made(tmp_path):
    """--out a/b/run made a and b too: none of them may be left behind empty, and nothing that was there before."""
    (tmp_path / "kept").mkdir()
    with run_lock.claim_run_dir(tmp_path / "kept" / "a" / "b" / "run"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())

    with pytest.raises(RuntimeError), run_lock.study_folder(tmp_path / "kept" / "s" / "cv") as study:
        with run_lock.claim_run_dir(study / "fold1"):
            raise RuntimeError("the data failed")
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())

    with run_lock.claim_run_dir(tmp_path / "kept" / "c" / "run") as folder:
        (folder.path / "config.json").write_text("{}")  # the run wrote something: all of it stays
    assert (tmp_path / "kept" / "c" / "run" / "config.json").is_file()


def test_a_parent_removed_by_a_failing_sibling_is_made_again(tmp_path, monkeypatch):
    """Parallel runs share parents: one that fails may remove a parent between another's mkdir steps."""
    real_mkdir, calls = Path.mkdir, []

    def racing_mkdir(self, *args, **kw):
        calls.append(self)
        if len(calls) == 1:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_mkdir(self, *args, **kw)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    with run_lock.claim_run_dir(tmp_path / "cv" / "fold2") as folder:
        assert folder.path.is_dir()
    assert len(calls) >= 2
