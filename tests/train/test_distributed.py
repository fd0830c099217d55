"""Distributed training: real torchrun with 2 CPU processes (gloo) on tiny data, and the one-process seam."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fashionbench as fb
from fashionbench.serve.local import free_port
from fashionbench.train.distributed import Distributed

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def _torchrun(args, tmp_path, nproc=2, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "fashionbench", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_shard_splits_a_batch_into_disjoint_parts():
    idx = torch.arange(10)
    parts = [Distributed(r, 3).shard(idx) for r in range(3)]
    assert torch.equal(torch.cat(parts), idx) and [len(p) for p in parts] == [4, 3, 3]


@pytest.mark.slow  # real worker processes: tens of seconds
def test_two_processes_train_one_model(idx_folder, tmp_path):
    """2 ranks: one run folder written once by rank 0, both ranks' weights identical after training,
    the epoch metrics summed over both shards, and --resume continues the distributed run."""
    out = tmp_path / "ddp"
    common = ["--model", "fastnet", "--model-arg", "widths=[8,16,16]", "--epochs", "2", "--batch-size", "64",
              "--dataset", "mnist-format", "--data-dir", str(idx_folder), "--device", "cpu", "--precision", "fp32",
              "--tta", "none", "--lr", "0.05"]
    r = _torchrun(["train", *common, "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test accuracy") == 1 and r.stdout.count("run folder:") == 1  # rank 0 alone prints
    m = json.loads((out / "metrics.json").read_text())
    assert m["distributed"] == {"world_size": 2, "backend": "gloo", "weights_identical": True}
    assert m["epochs"] == 2 and m["test_accuracy"] > 0.3
    hist = (out / "history.csv").read_text().splitlines()
    assert len(hist) == 3  # header + one row per epoch: written once, not once per rank
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "idx"]  # rank 1 wrote no folder of its own

    # an interrupted run continues: rewind last.pt's state by training 1 epoch, then resume to 2
    out1 = tmp_path / "ddp1"
    cfg = json.loads((out / "config.json").read_text())
    r1 = _torchrun(["train", *common, "--epochs", "1", "--out", str(out1)], tmp_path)
    assert r1.returncode == 0, r1.stderr[-3000:]
    cfg1 = json.loads((out1 / "config.json").read_text())
    cfg1["epochs"] = cfg["epochs"]
    (out1 / "config.json").write_text(json.dumps(cfg1))
    (out1 / "metrics.json").unlink()
    r2 = _torchrun(["train", "--resume", str(out1)], tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    m2 = json.loads((out1 / "metrics.json").read_text())
    assert m2["epochs"] == 2 and m2["distributed"]["weights_identical"]


@pytest.mark.slow  # real worker processes: tens of seconds
def test_two_processes_skip_the_same_easy_images(idx_folder, tmp_path):
    """--skip-easy draws each middle epoch's images from the per-image losses: the ranks merge what their
    slices recorded, so both draw the same images and their weights stay identical."""
    out = tmp_path / "ddp-skip"
    r = _torchrun(["train", "--model", "fastnet", "--model-arg", "widths=[8,16,16]", "--epochs", "3", "--batch-size",
                   "64", "--dataset", "mnist-format", "--data-dir", str(idx_folder), "--device", "cpu", "--precision",
                   "fp32", "--tta", "none", "--lr", "0.05", "--schedule", "linear", "--skip-easy", "0.5",
                   "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["distributed"]["weights_identical"] and m["epochs"] == 3
    hist = (out / "history.csv").read_text().splitlines()
    column = hist[0].split(",").index("images")
    assert [int(row.split(",")[column]) for row in hist[1:]] == [540, 270, 540]  # each rank trains half of these
    losses = torch.load(out / "last.pt", weights_only=True)["skipper"]["losses"]
    assert losses.shape == (540,) and (losses > 0).all()  # every image's loss, from both ranks' slices


def test_a_folder_in_use_fails_on_every_rank_with_one_line(idx_folder, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "config.json").write_text("{}")
    r = _torchrun(["train", "--model", "mlp_002", "--epochs", "1", "--dataset", "mnist-format", "--data-dir",
                   str(idx_folder), "--device", "cpu", "--out", str(out)], tmp_path, timeout=120)
    assert r.returncode != 0  # torchrun's own launcher prints its summary; our processes print one line each
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fashionbench: error")]
    # rank 1 may be stopped by torchrun before it prints, once rank 0 has exited
    assert "fashionbench: error (rank 0):" in [ln[:29] for ln in lines] and all("--overwrite" in ln for ln in lines)
    assert 'fashionbench/train' not in r.stderr  # no traceback from our code


def test_distributed_seam_single_process(tiny_dataset, tmp_path):
    """A world of one (gloo): DDP wraps the model, checkpoints hold the bare model's keys, callbacks see
    it, and the metrics say the ranks agree."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from fashionbench.train.callbacks import Callback
    from fashionbench.train.run import train_run

    _one_process_group()
    try:
        seen = []

        class Look(Callback):
            def on_epoch_end(self, state, row):
                seen.append(type(self.model).__name__)

        cfg = fb.make_config("cnn_002", epochs=1, batch_size=64, device="cpu")
        run = train_run(cfg, tmp_path / "ddp", dataset=tiny_dataset, dist=Distributed(0, 1), callbacks=[Look()],
                        outputs=("predictions", "metrics"))
        ckpt = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
        assert not any(k.startswith("module.") for k in ckpt["state_dict"])
        assert seen and "DistributedDataParallel" not in seen
        assert not isinstance(run.model, DistributedDataParallel)
        assert run.metrics["distributed"]["weights_identical"]
    finally:
        dist.destroy_process_group()


def _one_process_group():
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)


@pytest.fixture
def no_group_left():
    """A test that fails halfway leaves no process group behind for the next one."""
    import torch.distributed as dist

    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_ranks_that_finished_leave_together(monkeypatch, caplog, no_group_left):
    """A rank whose work ended well waits for the others before it tears the group down; when
    the barrier fails (another rank died), it says so in one line and still leaves."""
    import torch.distributed as dist

    from fashionbench.train.distributed import shutdown

    waited = []
    _one_process_group()
    monkeypatch.setattr(dist, "barrier", lambda: waited.append(True))
    shutdown(Distributed(0, 2), together=True)
    assert waited == [True] and not dist.is_initialized()

    _one_process_group()
    shutdown(Distributed(0, 2), together=False)  # a rank that failed does not wait
    assert waited == [True] and not dist.is_initialized()

    def lost_peer():
        raise RuntimeError("Connection closed by peer [127.0.0.1]:1234\nmore")

    _one_process_group()
    monkeypatch.setattr(dist, "barrier", lost_peer)
    shutdown(Distributed(0, 2), together=True)
    assert not dist.is_initialized()
    assert "leaving without the other ranks (Connection closed by peer [127.0.0.1]:1234)" in caplog.text


@pytest.mark.parametrize("fails", [False, True])
def test_train_command_leaves_together_only_when_it_finished(monkeypatch, tmp_path, capsys, fails):
    """Under torchrun, `train` waits for the other ranks only after its run ended well, and rank 0
    prints its result before that; a rank that failed says so in one line and leaves at once."""
    from types import SimpleNamespace

    import fashionbench.api as api
    import fashionbench.train.distributed as distributed
    from fashionbench.cli import main
    from fashionbench.errors import ConfigError

    left = []
    monkeypatch.setattr(distributed, "init_from_environment", lambda device: Distributed(0, 2))
    monkeypatch.setattr(distributed, "shutdown", lambda ctx, together=False: left.append(
        (together, capsys.readouterr().out)))

    def train(**kw):
        if fails:
            raise ConfigError("a bad run")
        return SimpleNamespace(run_dir=tmp_path, metrics={
            "model": "mlp_002", "test_accuracy": 0.5, "epochs": 1, "train_seconds": 1.0, "device": "cpu",
            "precision": "fp32", "distributed": {"world_size": 2}})

    monkeypatch.setattr(api, "train", train)
    code = main(["train", "--model", "mlp_002", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "r")])
    assert code == (2 if fails else 0) and len(left) == 1
    together, printed_before = left[0]
    assert together is not fails
    assert ("test accuracy 50.00%" in printed_before) is not fails
    if fails:
        assert "fashionbench: error" in capsys.readouterr().err


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed with torch")
def test_torchrun_entry_point_exists():
    assert Path(TORCHRUN).exists()
