"""The layout probe: which precision and memory format run a model fastest here, cached."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from fashionbench import layout
from fashionbench.data.normalize import Normalization
from fashionbench.layout import Layout, candidates, choose_layout, probe


def conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.fixture
def probing(monkeypatch, tmp_path):
    monkeypatch.setenv(layout.PROBE_ENV, "1")
    monkeypatch.setenv("FASHIONBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / layout.CACHE_FILE


CPU = torch.device("cpu")


def test_candidates_follow_the_hardware_and_the_model(monkeypatch):
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: True)
    assert candidates(conv_net(), CPU) == [("fp32", True), ("fp32", False), ("bf16", True), ("bf16", False)]
    assert candidates(mlp(), CPU) == [("fp32", False), ("bf16", False)]
    assert candidates(conv_net(), CPU, "fp32") == [("fp32", True), ("fp32", False)]
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: False)  # emulated bf16 is never tried
    assert candidates(conv_net(), CPU) == [("fp32", True), ("fp32", False)]
    assert candidates(mlp(), CPU) == [("fp32", False)]


def test_probe_times_every_candidate_on_a_copy():
    torch.manual_seed(0)
    net = conv_net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    secs = probe(net, torch.randn(16, 1, 28, 28), CPU, [("fp32", True), ("fp32", False)], train=True, rounds=2)
    assert set(secs) == {("fp32", True), ("fp32", False)} and all(s > 0 for s in secs.values())
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # SGD steps and BN statistics on a copy
    assert not net.training and next(net.parameters()).is_contiguous()


def test_a_failing_candidate_is_left_out():
    class NoBf16(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("not in bf16")
            return self.fc(x.flatten(1))

    secs = probe(NoBf16(), torch.randn(4, 1, 28, 28), CPU, [("fp32", False), ("bf16", False)], train=False)
    assert list(secs) == [("fp32", False)]


def test_the_fastest_is_chosen_and_cached(probing, monkeypatch):
    calls = []

    def fake_probe(model, sample, device, cands, *, train):
        calls.append(train)
        return {("fp32", True): 0.020, ("fp32", False): 0.012}

    monkeypatch.setattr(layout, "probe", fake_probe)
    net, x = conv_net(), torch.randn(8, 1, 28, 28)
    first = choose_layout(net, x, CPU, train=True)
    assert (first.precision, first.channels_last, first.source) == ("fp32", False, "probe")
    assert first.seconds == {"fp32+channels_last": 0.02, "fp32+contiguous": 0.012}
    entry = next(iter(json.loads(probing.read_text()).values()))
    assert entry["precision"] == "fp32" and entry["channels_last"] is False and entry["task"] == "train"
    again = choose_layout(net, x, CPU, train=True)
    assert (again.precision, again.channels_last, again.source) == ("fp32", False, "cache") and calls == [True]
    choose_layout(net, x, CPU, train=False)  # inference is a separate question
    assert calls == [True, False]
    choose_layout(nn.Sequential(conv_net(), nn.ReLU()), x, CPU, train=True)  # so is another model
    assert len(calls) == 3 and len(json.loads(probing.read_text())) == 3


def test_a_damaged_cache_is_probed_again_and_rewritten(probing, monkeypatch):
    monkeypatch.setattr(layout, "probe", lambda *a, **k: {("fp32", True): 0.01, ("fp32", False): 0.02})
    probing.parent.mkdir(parents=True)
    probing.write_text("{not json")
    got = choose_layout(conv_net(), torch.randn(8, 1, 28, 28), CPU)
    assert got.source == "probe" and got.channels_last
    assert len(json.loads(probing.read_text())) == 1


def test_no_probe_when_there_is_no_choice_or_it_is_off(probing, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(layout, "probe", fail)
    # a CPU without native bf16, for the probe's candidates and for the rule (utils.resolve_precision)
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr("fashionbench.utils.cpu_has_fast_bf16", lambda: False)
    assert choose_layout(mlp(), torch.randn(4, 1, 28, 28), CPU) == Layout("fp32", False)
    monkeypatch.setenv(layout.PROBE_ENV, "0")
    assert choose_layout(conv_net(), torch.randn(4, 1, 28, 28), CPU) == Layout("fp32", True)  # the rule
    assert not probing.exists()


def test_training_and_inference_use_the_chosen_layout(tiny_dataset, monkeypatch):
    from fashionbench.inference import Predictor
    from fashionbench.train.config import TrainConfig
    from fashionbench.train.run import train_run

    monkeypatch.setenv(layout.PROBE_ENV, "1")
    seen = []

    def contiguous(model, sample, device, *, precision="auto", train=True, use_cache=True, channels_last=None):
        seen.append((train, tuple(sample.shape)))
        return Layout("fp32", False, "probe")

    monkeypatch.setattr(layout, "choose_layout", contiguous)
    monkeypatch.setattr("fashionbench.train.run.choose_layout", contiguous)
    monkeypatch.setattr("fashionbench.inference.choose_layout", contiguous)
    cfg = TrainConfig(model="cnn_003", epochs=1, batch_size=32, eval_batch_size=100)
    result = train_run(cfg, dataset=tiny_dataset)
    assert result.metrics["channels_last"] is False and result.metrics["precision"] == "fp32"
    assert all(p.is_contiguous() for p in result.model.parameters())
    assert seen[0] == (True, (32, 1, 28, 28))
    pred = Predictor.from_model(result.model, result.normalizer, tiny_dataset.class_names, device="cpu")
    # the batch, at most PROBE_BATCH, then one image: its precision can differ
    assert not pred.channels_last and seen[-2:] == [(False, (256, 1, 28, 28)), (False, (1, 1, 28, 28))]
    assert pred.single_image_precision is None  # the same answer: nothing to switch


def test_a_format_given_times_the_precisions_only(monkeypatch):
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: True)
    assert candidates(conv_net(), CPU, channels_last=True) == [("fp32", True), ("bf16", True)]
    assert candidates(mlp(), CPU, channels_last=True) == [("fp32", False), ("bf16", False)]
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: False)
    assert candidates(conv_net(), CPU, channels_last=False) == [("fp32", False)]


def test_a_format_given_is_kept_where_the_rule_decides(probing, monkeypatch):
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr("fashionbench.utils.cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(layout, "probe", lambda *a, **k: {})  # every candidate failed
    sample = torch.randn(4, 1, 28, 28)
    assert choose_layout(conv_net(), sample, CPU, channels_last=False) == Layout("bf16", False)
    assert choose_layout(conv_net(), sample, CPU) == Layout("bf16", True)
    monkeypatch.setenv(layout.PROBE_ENV, "0")
    assert choose_layout(conv_net(), sample, CPU, channels_last=False) == Layout("bf16", False)


def test_the_cache_tells_batch_sizes_apart(probing, monkeypatch):
    # bf16 wins at the batch, fp32 on one image (FastNet on Sapphire Rapids: 1.76 against 0.91 ms)
    monkeypatch.setattr(layout, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(layout, "probe", lambda model, sample, *a, **k: {
        ("fp32", False): 0.02, ("bf16", False): 0.01} if len(sample) > 1 else {("fp32", False): 0.001,
                                                                             ("bf16", False): 0.002})
    net = mlp()
    assert choose_layout(net, torch.randn(64, 1, 28, 28), CPU, train=False).precision == "bf16"
    one = choose_layout(net, torch.randn(1, 1, 28, 28), CPU, train=False)
    assert (one.precision, one.source) == ("fp32", "probe")
    assert choose_layout(net, torch.randn(64, 1, 28, 28), CPU, train=False).source == "cache"


def test_a_predictor_runs_one_image_in_the_precision_probed_for_one(tiny_dataset, monkeypatch):
    from fashionbench import forward
    from fashionbench.inference import Predictor

    monkeypatch.setenv(layout.PROBE_ENV, "1")

    def fake_choose(model, sample, device, *, precision="auto", train=True, use_cache=True, channels_last=None):
        return Layout("bf16" if len(sample) > 1 else "fp32", True if channels_last is None else channels_last, "probe")

    monkeypatch.setattr("fashionbench.inference.choose_layout", fake_choose)
    used = []
    real = forward.predict_logits

    def spy(*a, precision, **k):
        used.append(precision)
        return real(*a, precision=precision, **k)

    monkeypatch.setattr("fashionbench.inference.predict_logits", spy)
    torch.manual_seed(0)
    pred = Predictor.from_model(conv_net(), Normalization.identity(), tiny_dataset.class_names, device="cpu", batch_size=512)
    assert (pred.precision, pred.single_image_precision, pred.channels_last) == ("bf16", "fp32", True)
    assert "fp32 for one image" in repr(pred)
    x = tiny_dataset.test_images[:3]
    one = pred.predict_logits(x[:1])
    many = pred.predict_logits(x)
    assert used == ["fp32", "bf16"]
    # the same model either way: bf16 only rounds
    assert torch.allclose(one[0], many[0], atol=0.05 * float(many.abs().max()) + 1e-3)
    fixed = Predictor.from_model(conv_net(), Normalization.identity(), tiny_dataset.class_names, device="cpu", precision="fp32")
    assert fixed.single_image_precision is None  # an explicit precision is kept for every call
