import json
import math

import pytest
import torch

from fashionbench.checkpoint import load_checkpoint
from fashionbench.errors import CheckpointError, ConfigError
from fashionbench.models.fast import FastNet
from fashionbench.train.config import validate
from fashionbench.train.engine import progressive_sizes
from fashionbench.train.optim import build_loss, build_optimizer, build_scheduler, lr_factor
from fashionbench.train.run import train_run
from training import METRICS_ONLY, cfg, interrupted_then_resumed


def test_engine_learns_small_problem(tiny_dataset, tmp_path):
    m = train_run(cfg(), tmp_path / "run", dataset=tiny_dataset).metrics
    assert m["test_accuracy"] > 0.9
    for name in ("config.json", "history.csv", "batches.csv", "metrics.json", "best.pt", "last.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds")
    assert len(history) == 4
    batches = (tmp_path / "run" / "batches.csv").read_text().splitlines()
    assert len(batches) == 1 + 3 * math.ceil(540 / 64)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["params"] == 567_434 and saved["train_size"] == 540 and saved["val_size"] == 60
    assert len(saved["confusion_matrix"]) == 10 and set(saved["per_class_accuracy"]) == set(tiny_dataset.class_names)


def test_same_seed_same_result(tiny_dataset, tmp_path):
    c = cfg(model="cnn_002", epochs=1, augment=["flip", "translate"])
    a = train_run(c, tmp_path / "a", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    b = train_run(c, tmp_path / "b", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    assert a["test_accuracy"] == b["test_accuracy"] and a["test_loss"] == b["test_loss"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_equals_uninterrupted(tmp_path, monkeypatch, precision):
    from conftest import make_dataset

    # five steps an epoch are enough to replay; bf16 is emulated (slow) on CPUs without bf16 units
    dataset = make_dataset(n_train=320, n_test=100)
    c = cfg(model="cnn_002", epochs=3, schedule="cosine", augment=["flip", "translate", "random-erasing"],
            optimizer="sgd", lr=0.05, nesterov=True, precision=precision, lookahead=True, lookahead_every=2,
            bias_lr_scale=4.0)
    full = train_run(c, tmp_path / "full", dataset=dataset, outputs=METRICS_ONLY).metrics
    resumed = interrupted_then_resumed(c, tmp_path / "cut", dataset, monkeypatch, after_epoch=2)

    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda text: [line.rsplit(",", 2)[0] for line in text.splitlines()]  # drop timing columns
    assert strip((tmp_path / "full" / "history.csv").read_text()) == strip((tmp_path / "cut" / "history.csv").read_text())


def test_muon_trains_and_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    # the filters' momentum buffers live in the optimizer state: a resumed run must replay them
    c = cfg(model="fastnet", model_args={"widths": [16, 16, 16]}, epochs=3, optimizer="muon", lr=0.1,
            nesterov=True, momentum=0.85, schedule="linear", warmup_epochs=1, bias_lr_scale=8.0,
            lookahead=True, lookahead_every=2, precision="fp32")
    full = train_run(c, tmp_path / "full", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    resumed = interrupted_then_resumed(c, tmp_path / "cut", tiny_dataset, monkeypatch, after_epoch=2)
    assert resumed["test_loss"] == full["test_loss"]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    losses = [float(line.split(",")[1]) for line in (tmp_path / "full" / "history.csv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]


def test_alternating_flip_feeds_each_epoch_the_mirrored_set_and_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    from fashionbench.train import engine

    c = cfg(model="cnn_002", epochs=3, optimizer="sgd", lr=0.05, augment=["alternating-flip", "translate"])
    sets = []
    original = engine.train_one_epoch

    def recording(model, images, labels, **kw):
        sets.append(images)
        return original(model, images, labels, **kw)

    monkeypatch.setattr(engine, "train_one_epoch", recording)
    full = train_run(c, tmp_path / "full", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    # each image is mirrored in one of two epochs in a row: epoch 2 sees epoch 1's set mirrored
    assert len(sets) == 3 and torch.equal(sets[0], sets[1].flip(-1)) and torch.equal(sets[0], sets[2])
    resumed = interrupted_then_resumed(c, tmp_path / "cut", tiny_dataset, monkeypatch, after_epoch=1)
    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]


def test_early_stopping_stops_and_restores_best(tiny_dataset, tmp_path):
    # A learning rate this small cannot move validation accuracy: no improvement after epoch 1.
    c = cfg(epochs=10, lr=1e-12, early_stopping=2, monitor="val_accuracy", restore_best=True)
    m = train_run(c, tmp_path / "es", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    assert m["epochs"] == 3 and m["stopped_early"] and m["best_epoch"] == 1
    assert m["evaluated_weights"] == "best"
    # Resuming a run that stopped early does not train on.
    assert train_run(c, tmp_path / "es", dataset=tiny_dataset, resume=True, outputs=METRICS_ONLY).metrics["epochs"] == 3


def test_data_fraction_and_validation_sizes(tiny_dataset, tmp_path):
    m = train_run(cfg(epochs=1, data_fraction=0.5, val_fraction=0.2), tmp_path / "f", dataset=tiny_dataset).metrics
    assert m["train_size"] == 240 and m["val_size"] == 60


def test_existing_run_folder_is_not_overwritten(tiny_dataset, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds"):
        train_run(cfg(epochs=1), tmp_path / "r", dataset=tiny_dataset)
    assert (tmp_path / "r" / "keep.txt").read_text() == "mine"


def test_checkpoint_carries_everything(tiny_dataset, tmp_path):
    train_run(cfg(epochs=1, normalize="per-pixel"), tmp_path / "r", dataset=tiny_dataset)
    model, ckpt = load_checkpoint(tmp_path / "r" / "best.pt")
    assert ckpt["model"] == "mlp_002" and ckpt["class_names"][9] == "Ankle boot"
    assert ckpt["normalization"]["kind"] == "per-pixel" and len(ckpt["normalization"]["mean"]) == 784
    assert ckpt["config"]["epochs"] == 1
    with pytest.raises(CheckpointError, match="holds model 'mlp_002', not 'cnn_002'"):
        load_checkpoint(tmp_path / "r" / "best.pt", expect_model="cnn_002")


def test_corrupt_and_foreign_checkpoints(tmp_path):
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fashionbench checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_weights_of_another_model_rejected(tiny_dataset, tmp_path):
    train_run(cfg(epochs=1), tmp_path / "r", dataset=tiny_dataset)
    ckpt = torch.load(tmp_path / "r" / "best.pt", weights_only=True)
    ckpt["model"] = "cnn_002"
    torch.save(ckpt, tmp_path / "swapped.pt")
    with pytest.raises(CheckpointError, match="do not fit model 'cnn_002'"):
        load_checkpoint(tmp_path / "swapped.pt")


@pytest.mark.parametrize("kw,match", [
    (dict(val_fraction=0, early_stopping=3), "needs a validation split"),
    (dict(loss="mse", label_smoothing=0.1), "label-smoothing works with --loss ce"),
    (dict(optimizer="adam", nesterov=True), "nesterov needs --optimizer sgd"),
    (dict(val_fraction=0, schedule="plateau"), "plateau"),
    (dict(optimizer="lion"), "unknown optimizer"),
    (dict(tta=["rotate"]), "unknown --tta"),
    (dict(freeze="features"), "starting weights"),
    (dict(resize_min=4, resize_end=2), "--resize-min must be a whole number of pixels, at least 8"),
    (dict(resize_min=16.5, resize_end=2), "--resize-min must be a whole number"),
    (dict(resize_min=16, resize_end=5), r"--resize-end must be an epoch between 0 and --epochs \(3\)"),
    (dict(resize_min=16, resize_start=2, resize_end=1), "--resize-start .* must not come after --resize-end"),
    (dict(resize_min=16), "--resize-min needs --resize-end"),
])
def test_impossible_configs(kw, match):
    with pytest.raises(ConfigError, match=match):
        validate(cfg(**kw))


@pytest.mark.parametrize("name", ["ce", "nll", "mse", "mae"])
def test_losses_prefer_the_right_answer(name):
    loss = build_loss(name)
    y = torch.tensor([0, 1, 2])
    good = torch.eye(10)[:3] * 10
    bad = torch.eye(10)[[3, 4, 5]] * 10
    assert loss(good, y) < loss(bad, y)
    logits = torch.zeros(3, 10, requires_grad=True)
    loss(logits, y).backward()
    assert logits.grad.abs().sum() > 0


def test_schedule_shapes():
    assert lr_factor("constant", 50, 100) == 1.0
    assert lr_factor("cosine", 0, 100) == pytest.approx(1.0)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("linear", 100, 100) == pytest.approx(0.0)
    assert lr_factor("linear", 4, 100, warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor("step", 25, 100, steps_per_epoch=5, step_epochs=2, gamma=0.1) == pytest.approx(0.01)


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle", "linear"])
def test_every_per_batch_schedule_runs(schedule):
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = build_optimizer(p, "sgd", 0.1)
    sched, per_batch = build_scheduler(opt, schedule, epochs=2, steps_per_epoch=5, warmup_epochs=0.5)
    lrs = []
    for _ in range(10):
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert per_batch and all(lr >= 0 for lr in lrs)
    if schedule in ("cosine", "onecycle", "linear"):
        assert lrs[-1] < max(lrs)


def test_progressive_sizes_ramp():
    assert progressive_sizes(10, 28, None, 0, 5) is None and progressive_sizes(10, 28, 28, 0, 5) is None
    assert progressive_sizes(6, 28, 16, 0, 4) == [16, 20, 22, 26, 28, 28]
    assert progressive_sizes(6, 28, 16, 2, 4) == [16, 16, 16, 22, 28, 28]  # held, then linear, in steps of 2
    assert progressive_sizes(4, 28, 12, 2, 2) == [12, 12, 28, 28]  # a ramp of no length: a step at epoch 2
    assert progressive_sizes(3, 28, 17, 3, 3) == [18, 18, 18]  # sides in steps of 2


def test_progressive_resizing_trains_on_smaller_images_and_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    c = cfg(model="fastnet", model_args={"widths": [8, 16, 16], "whiten_stride": 2, "pools": [True, True, False]},
            epochs=3, optimizer="sgd", lr=0.05, augment=["flip"], resize_min=16, resize_end=2)
    seen: list[int] = []
    original_forward = FastNet.forward

    def recording_forward(self, x):
        if self.training:
            seen.append(x.shape[-1])
        return original_forward(self, x)

    monkeypatch.setattr(FastNet, "forward", recording_forward)
    full = train_run(c, tmp_path / "full", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    steps = math.ceil(540 / 64)
    # training sees 16, 22, then 28 px; the probe, calibration and test see the images as they are
    assert [seen.count(s) for s in (16, 22, 28)] == [steps, steps, steps]
    history = (tmp_path / "full" / "history.csv").read_text().splitlines()
    assert history[0].endswith(",lr,image_size,seconds,elapsed")
    assert [row.split(",")[-3] for row in history[1:]] == ["16", "22", "28"]
    resumed = interrupted_then_resumed(c, tmp_path / "cut", tiny_dataset, monkeypatch, after_epoch=1)
    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]


def test_progressive_resizing_refuses_a_model_that_needs_full_size_images(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="model mlp_002 does not take 16x16 images .*drop --resize-min"):
        train_run(cfg(resize_min=16, resize_end=2), tmp_path / "r", dataset=tiny_dataset)
    assert not (tmp_path / "r").exists()  # refused before training: no half-made run folder is left
