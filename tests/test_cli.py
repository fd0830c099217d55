import json
import os
import subprocess
import sys

import pytest

from fashionbench.cli import main


def run_cli(*args, env=None):
    """The installed console script in a subprocess: exit code and output as a user sees them."""
    exe = os.path.join(os.path.dirname(sys.executable), "fashionbench")
    return subprocess.run([exe, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_help_lists_subcommands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("train", "evaluate", "models", "data"):
        assert cmd in r.stdout


def test_models_lists_parameter_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r["params"] for r in json.loads(capsys.readouterr().out)}
    assert rows["mlp_002"] == 567_434 and rows["cnn_002"] == 423_338


def test_unknown_model_one_line_no_traceback():
    r = run_cli("train", "--model", "lenet6", "--dataset", "mnist-format", "--data-dir", "/nonexistent")
    assert r.returncode == 2
    assert "unknown model 'lenet6'" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_data_file_clear_error(idx_folder, tmp_path):
    path = idx_folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    r = run_cli("train", "--model", "mlp_002", "--dataset", "mnist-format", "--data-dir", str(idx_folder),
                "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "truncated or corrupt" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_offline_without_data(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "FASHIONBENCH_DATA": "", "FASHIONBENCH_MIRRORS": "http://127.0.0.1:9/"}
    r = run_cli("data", "info", env=env)  # data info never downloads
    if "(system)" in r.stdout:
        pytest.skip("this machine has the system copy; the offline path is covered in test_sources")
    assert r.returncode == 2 and "three ways" in r.stderr


def test_train_evaluate_resume_on_idx_folder(idx_folder, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "cnn_002", "--dataset", "mnist-format", "--data-dir", str(idx_folder),
            "--epochs", "2", "--batch-size", "64", "--augment", "flip+translate", "--schedule", "cosine",
            "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and str(out) in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["test_accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] == ["flip", "translate"] and config["schedule"] == "cosine"
    # The checkpoint alone is enough to evaluate.
    assert main(["evaluate", str(out / "best.pt"), "--dataset", "mnist-format", "--data-dir", str(idx_folder),
                 "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["model"] == "cnn_002" and "confusion_matrix" in ev
    # A second train into the same folder is refused; resuming a finished run changes nothing.
    assert main(args) == 2
    assert main(["train", "--resume", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert main(["train", "--resume", str(out), "--epochs", "5"]) == 2


def test_bad_option_combination_exit_code(idx_folder, tmp_path):
    r = run_cli("train", "--model", "mlp_002", "--val-fraction", "0", "--early-stopping", "2",
                "--dataset", "mnist-format", "--data-dir", str(idx_folder), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "--early-stopping needs a validation split" in r.stderr


@pytest.mark.realdata
@pytest.mark.slow
def test_cli_end_to_end_on_real_subset(real_dataset, tmp_path, capsys):
    # 10% of the real training set, 3 epochs of the study-002 MLP: at least 80% test accuracy.
    out = tmp_path / "real"
    assert main(["train", "--model", "mlp_002", "--data-fraction", "0.1", "--epochs", "3", "--batch-size", "64",
                 "--lr", "1e-3", "--device", "cpu", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.80, metrics["test_accuracy"]
    assert metrics["dataset"] == "fashion-mnist" and metrics["train_size"] == 5400


@pytest.mark.parametrize("command", [["train"], ["evaluate", "ckpt.pt"], ["cv"], ["boost"], ["ablate"],
                                     ["reproduce", "000-table1"], ["report", "run"]])
def test_runtime_options_mean_the_same_everywhere(command):
    from fashionbench.cli import build_parser

    args = build_parser().parse_args([*command, "--device", "cpu", "--precision", "fp32", "--threads", "1"])
    assert (args.device, args.precision, args.threads) == ("cpu", "fp32", 1)


def test_help_is_fast_it_imports_no_torch():
    probe = "import sys; from fashionbench.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_data_check_of_a_missing_or_incomplete_folder_fails(tmp_path, capsys):
    assert main(["data", "check", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    assert main(["data", "check", "--data-dir", str(tmp_path / "part")]) == 2
    assert "lacks" in capsys.readouterr().err
