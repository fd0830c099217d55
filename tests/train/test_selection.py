
import pytest
import torch

from fashionbench.errors import ConfigError
from fashionbench.train import engine
from fashionbench.train.config import validate
from fashionbench.train.optim import build_loss
from fashionbench.train.run import train_run
from fashionbench.train.selection import EasySkipper, epoch_images, full_epoch, run_steps

from .test_engine import METRICS_ONLY, cfg, interrupted_then_resumed


def test_the_first_epoch_and_the_last_eighth_see_every_image():
    assert [full_epoch(e, 6) for e in range(6)] == [True, False, False, False, False, True]
    assert [full_epoch(e, 16) for e in range(16)] == [True] + [False] * 13 + [True, True]
    assert [epoch_images(1000, e, 4, 0.35) for e in range(4)] == [1000, 650, 650, 1000]
    assert [epoch_images(1000, e, 4, 0.0) for e in range(4)] == [1000] * 4
    # the schedule spans the steps really taken: 2 x 2 + 2 x 1 batches of 512 here
    assert run_steps(1000, 4, 512, 0.35, drop_last=True) == 1 + 1 + 1 + 1
    assert run_steps(1000, 4, 300, 0.35, drop_last=True) == 3 + 2 + 2 + 3
    assert run_steps(1000, 4, 300, 0.35, drop_last=False) == 4 + 3 + 3 + 4
    assert run_steps(1000, 4, 300, 0.0, drop_last=False) == 4 * 4


def test_a_middle_epoch_keeps_the_hardest_and_weights_the_drawn_easy_images_up():
    n = 1000
    s = EasySkipper(n, epochs=6, skip=0.35, keep_hard=0.3)
    s.record(torch.arange(n), torch.linspace(0, 1, n).flip(0))  # image i has the (i+1)-th highest loss
    assert s.plan(0, torch.Generator().manual_seed(0)) is None and s.plan(5, torch.Generator()) is None
    idx, w = s.plan(1, torch.Generator().manual_seed(0))
    assert len(idx) == 650 and len(set(idx.tolist())) == 650
    assert set(range(300)) <= set(idx.tolist())  # the 300 highest losses are always kept
    drawn = idx[idx >= 300]
    assert len(drawn) == 350 and torch.allclose(w[drawn], torch.full((350,), 700 / 350))
    assert torch.equal(w[:300], torch.ones(300))
    assert w[idx].sum().item() == pytest.approx(n)  # the kept images stand for the whole set
    again, _ = s.plan(1, torch.Generator().manual_seed(0))
    other, _ = s.plan(1, torch.Generator().manual_seed(1))
    assert torch.equal(idx, again) and not torch.equal(idx, other)


def test_losses_merge_across_ranks_and_resume():
    a, b = EasySkipper(6, 4, 0.5, 0.0), EasySkipper(6, 4, 0.5, 0.0)
    a.losses[5] = b.losses[5] = 9.0  # known to both from an earlier epoch in which image 5 was seen
    a.record(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 3.0]))  # rank 0's slices of this epoch
    b.record(torch.tensor([3, 4]), torch.tensor([4.0, 5.0]))  # rank 1's
    own = {id(s): torch.stack([s.losses * s.fresh.float(), s.fresh.float()]) for s in (a, b)}
    total = sum(own.values())

    for s in (a, b):
        def all_reduce_sum(t, s=s):  # what each rank sends is its own record; it gets back the sum
            assert torch.equal(t, own[id(s)])
            return total.clone()

        s.share(all_reduce_sum, torch.device("cpu"))
    assert a.losses.tolist() == b.losses.tolist() == [1, 2, 3, 4, 5, 9]
    assert not a.fresh.any() and not b.fresh.any()
    c = EasySkipper(6, 4, 0.5, 0.0)
    c.load_state_dict(b.state_dict())
    assert torch.equal(c.losses, b.losses)
    with pytest.raises(ValueError, match="losses for 6 images, this run trains on 7"):
        EasySkipper(7, 4, 0.5, 0.0).load_state_dict(b.state_dict())


@pytest.mark.parametrize("loss", ["ce", "nll", "mse", "mae"])
def test_the_per_image_loss_averages_to_the_batch_loss(loss):
    logits, y = torch.randn(16, 10), torch.randint(10, (16,))
    smoothing = 0.2 if loss == "ce" else 0.0
    per = build_loss(loss, smoothing, per_image=True)(logits, y)
    assert per.shape == (16,)
    assert per.mean().item() == pytest.approx(build_loss(loss, smoothing)(logits, y).item(), rel=1e-6)


def test_skip_easy_trains_fewer_images_in_the_middle_epochs_and_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    c = cfg(model="cnn_002", epochs=4, optimizer="sgd", lr=0.05, schedule="linear", final_lr_factor=0.1,
            lookahead=True, lookahead_every=2, augment=["flip"], skip_easy=0.4, keep_hard=0.2, label_smoothing=0.2)
    losses_seen = []
    original = engine.train_one_epoch

    def recording(model, images, labels, **kw):
        out = original(model, images, labels, **kw)
        losses_seen.append(kw["skipper"].losses.clone())
        return out

    monkeypatch.setattr(engine, "train_one_epoch", recording)
    full = train_run(c, tmp_path / "full", dataset=tiny_dataset, outputs=METRICS_ONLY).metrics
    history = (tmp_path / "full" / "history.csv").read_text().splitlines()
    column = history[0].split(",").index("images")
    assert [int(row.split(",")[column]) for row in history[1:]] == [540, 324, 324, 540]
    assert (losses_seen[0] > 0).all()  # the first epoch records every image's loss
    batches = (tmp_path / "full" / "batches.csv").read_text().splitlines()
    assert len(batches) == 1 + 9 + 6 + 6 + 9
    lr_column = batches[0].split(",").index("lr")
    # the linear schedule spans the shortened run: its last step is at the final factor's end
    last_lr = float(batches[-1].split(",")[lr_column])
    assert last_lr == pytest.approx(0.05 * (0.1 + 0.9 / 30), rel=1e-6)
    assert full["test_accuracy"] > 0.5
    resumed = interrupted_then_resumed(c, tmp_path / "cut", tiny_dataset, monkeypatch, after_epoch=2)
    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert torch.equal(a["skipper"]["losses"], b["skipper"]["losses"])


def test_without_skip_easy_runs_carry_nothing_of_it(tiny_dataset, tmp_path):
    c = cfg(model="cnn_002", epochs=2, optimizer="sgd", lr=0.05, schedule="linear")
    train_run(c, tmp_path / "a", dataset=tiny_dataset, outputs=METRICS_ONLY)
    assert "images" not in (tmp_path / "a" / "history.csv").read_text().splitlines()[0]
    assert torch.load(tmp_path / "a" / "last.pt", weights_only=True)["skipper"] is None


@pytest.mark.parametrize("changes, message", [
    ({"skip_easy": 1.0}, r"--skip-easy must be a share in \[0, 1\), got 1.0"),
    ({"skip_easy": 0.5, "keep_hard": 0.5}, "add up to 1 or more, leaving no well-learned images"),
    ({"keep_hard": -0.1}, r"--keep-hard must be a share in \[0, 1\)"),
    ({"skip_easy": 0.3, "schedule": "step"}, "use --schedule linear, cosine or onecycle, or drop --skip-easy"),
])
def test_bad_skip_easy_settings_name_the_fix(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(cfg(**changes))
