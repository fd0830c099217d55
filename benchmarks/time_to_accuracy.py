"""Time to 90/92/93/94/95% test accuracy: a fashionbench recipe vs the tutorial peer.

The peer is study 002's CNN in a standard PyTorch tutorial loop: DataLoader over a
TensorDataset (no workers), Adam 1e-3, batch 64, fp32, [0, 1] inputs. Both are tested on
the 10,000 test images after every epoch; the clock counts training only, plus, for our
recipe, the test-time augmentation of the epoch that reached the mark (TTA is part of the
recipe's prediction). Both run in the same invocation, one after the other, so the ratio
compares like with like on a shared, noisy machine.

    python benchmarks/time_to_accuracy.py --recipe fast-60s --seeds 0 1 2 --peer-epochs 10
    python benchmarks/time_to_accuracy.py --recipe fast-60s fast-3m --final-only --peer-seeds

Several recipes share one table; `--final-only` tests our recipes only after their last
epoch (saves the per-epoch TTA passes; the one-cycle schedule crosses its marks at the end
anyway); `--peer-seeds` with no value leaves the peer out. `--members K` makes each seed an
ensemble of K runs of the recipe (seeds K*seed .. K*seed+K-1, trained one after the other, as
`fashionbench evaluate RUN1 RUN2 ...` combines them: the mean of their logits / temperature, with
TTA): its time is the members' train + TTA summed, its accuracy the ensemble's after the
last member (implies --final-only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fashionbench.data.normalize import Normalization
from fashionbench.data.sources import load_dataset
from fashionbench.forward import ensemble_logits, inference_model, predict_logits
from fashionbench.layout import PROBE_BATCH, choose_layout
from fashionbench.models import create_model
from fashionbench.models.ensemble import combine_outputs
from fashionbench.train.callbacks import Callback
from fashionbench.train.recipes import recipe_train_config
from fashionbench.train.run import train_run
from fashionbench.utils import machine_description

THRESHOLDS = (0.90, 0.92, 0.93, 0.94, 0.95)


class TestEveryEpoch(Callback):
    """Test accuracy (with the recipe's TTA) after each epoch, timed apart from training."""

    def __init__(self, ds, normalizer: Normalization, cfg, only_epoch: int | None = None):
        self.ds, self.normalizer, self.cfg, self.tta = ds, normalizer, cfg, cfg.tta
        self.only_epoch = only_epoch
        self.points: list[dict] = []
        self.logits = None  # the last tested epoch's
        self.layout = None

    def on_epoch_end(self, state, row) -> None:
        if self.only_epoch is not None and state.epoch != self.only_epoch:
            return
        if self.layout is None:  # the layout the run trains with: the same question, answered from the cache
            sample = torch.zeros(min(self.cfg.batch_size, PROBE_BATCH), 1, 28, 28)
            self.layout = choose_layout(self.model, sample, torch.device("cpu"), precision=self.cfg.precision)
        t0 = time.perf_counter()
        logits = predict_logits(inference_model(self.model), self.ds.test_images, normalizer=self.normalizer,
                                precision=self.layout.precision, channels_last=self.layout.channels_last, tta=self.tta)
        acc = (logits.argmax(1) == self.ds.test_labels).float().mean().item()
        self.logits = logits
        self.points.append({"epoch": state.epoch, "train_seconds": state.train_seconds,
                            "tta_seconds": time.perf_counter() - t0, "accuracy": acc})
        self.model.train()


def run_recipe(recipe: str, seed: int, ds, final_only: bool = False) -> tuple[list[dict], torch.Tensor]:
    """(points per tested epoch, the last tested epoch's test logits divided by the run's temperature)."""
    cfg = recipe_train_config(recipe).replace(seed=seed, device="cpu")
    normalizer = Normalization.fit(cfg.normalize, ds.train_images)  # val_fraction 0: the whole training set
    cb = TestEveryEpoch(ds, normalizer, cfg, only_epoch=cfg.epochs if final_only else None)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_run(cfg, Path(tmp) / "run", dataset=ds, callbacks=[cb])
    points = [{**p, "seconds": p["train_seconds"] + p["tta_seconds"]} for p in cb.points]
    return points, cb.logits / result.temperature


def run_ensemble(recipe: str, seed: int, ds, members: int) -> list[dict]:
    """One point: K members trained one after the other, combined as `fashionbench evaluate` does."""
    outputs, seconds, each = [], 0.0, []
    for j in range(members):
        pts, logits = run_recipe(recipe, members * seed + j, ds, final_only=True)
        outputs.append(logits)
        seconds += pts[-1]["seconds"]
        each.append({**pts[-1], "seed": members * seed + j})
        print(f"    member seed {members * seed + j}: {100 * pts[-1]['accuracy']:.2f}%, {pts[-1]['seconds']:.1f} s",
              flush=True)
    acc = (ensemble_logits(outputs).argmax(1) == ds.test_labels).float().mean().item()
    mean_p = (combine_outputs(outputs, "softmax").argmax(1) == ds.test_labels).float().mean().item()
    print(f"    ensemble {100 * acc:.2f}% (averaging the probabilities instead: {100 * mean_p:.2f}%)", flush=True)
    return [{"epoch": pts[-1]["epoch"], "seconds": seconds, "train_seconds": seconds, "tta_seconds": 0.0,
             "accuracy": acc, "members": each}]


def run_peer(seed: int, ds, epochs: int) -> list[dict]:
    """The tutorial loop, as a typical user writes it."""
    torch.manual_seed(seed)
    model = create_model("cnn_002")
    x = ds.train_images.unsqueeze(1).float() / 255
    loader = DataLoader(TensorDataset(x, ds.train_labels), batch_size=64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = ds.test_images.unsqueeze(1).float() / 255
    points, elapsed = [], 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        elapsed += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            acc = (torch.cat([model(xt[i:i + 1000]) for i in range(0, len(xt), 1000)]).argmax(1)
                   == ds.test_labels).float().mean().item()
        points.append({"epoch": epoch, "seconds": elapsed, "accuracy": acc})
        print(f"  peer seed {seed} epoch {epoch}: {100 * acc:.2f}% at {elapsed:.0f} s", flush=True)
    return points


def time_to(points: list[dict], threshold: float) -> float | None:
    for p in points:
        if p["accuracy"] >= threshold:
            return p["seconds"]
    return None


def median_or_none(values: list[float | None]) -> float | None:
    """Median over seeds; None unless every seed reached the mark."""
    return None if not values or any(v is None for v in values) else statistics.median(values)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", nargs="+", default=["fast-60s"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--final-only", action="store_true", help="test our recipes after their last epoch only")
    ap.add_argument("--peer-epochs", type=int, default=10)
    ap.add_argument("--peer-seeds", type=int, nargs="*", help="default: the same seeds; none: no peer")
    ap.add_argument("--members", type=int, default=1, help="each seed an ensemble of this many runs")
    ap.add_argument("--json", help="write all points here")
    args = ap.parse_args(argv)
    if args.members < 1:
        ap.error("--members must be at least 1")
    ds = load_dataset(allow_download=False)
    ours: dict[str, dict[int, list[dict]]] = {}
    for recipe in args.recipe:
        ours[recipe] = {}
        for seed in args.seeds:
            if args.members > 1:
                ours[recipe][seed] = pts = run_ensemble(recipe, seed, ds, args.members)
                print(f"  {recipe} x {args.members} seed {seed}: {100 * pts[-1]['accuracy']:.2f}% after "
                      f"{pts[-1]['seconds']:.1f} s", flush=True)
                continue
            ours[recipe][seed] = pts = run_recipe(recipe, seed, ds, args.final_only)[0]
            last = pts[-1]
            print(f"  {recipe} seed {seed}: {100 * last['accuracy']:.2f}% after {last['seconds']:.1f} s "
                  f"(train {last['train_seconds']:.1f} s + TTA {last['tta_seconds']:.1f} s)", flush=True)
    peer_seeds = args.peer_seeds if args.peer_seeds is not None else args.seeds
    peer = {s: run_peer(s, ds, args.peer_epochs) for s in peer_seeds}

    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"\nmachine: {machine_description()}, torch {torch.__version__}; "
          f"date {time.strftime('%Y-%m-%d')}")
    print(f"command: python benchmarks/time_to_accuracy.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    for recipe, runs in ours.items():
        final = [pts[-1]["accuracy"] for pts in runs.values()]
        name = f"{recipe} x {args.members} members" if args.members > 1 else recipe
        print(f"{name}: final test accuracy {100 * statistics.mean(final):.2f} +- {100 * sd(final):.2f}% "
              f"(seeds {args.seeds}: {', '.join(f'{100 * a:.2f}' for a in final)}), "
              f"{statistics.median(p[-1]['seconds'] for p in runs.values()):.1f} s median train + TTA")
    if peer:
        peer_final = [pts[-1]["accuracy"] for pts in peer.values()]
        peer_end = statistics.median(p[-1]["seconds"] for p in peer.values())
        print(f"peer ({args.peer_epochs} epochs, seeds {peer_seeds}): final {100 * statistics.mean(peer_final):.2f} "
              f"+- {100 * sd(peer_final):.2f}%, {peer_end:.1f} s")
    fmt = lambda v: "not reached" if v is None else f"{v:.1f}"
    head = [f"{r} (median s)" for r in ours] + (["tutorial peer (median s)"] + [f"{r} speed-up" for r in ours]
                                                 if peer else [])
    print("\n| test accuracy | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    # (accuracy, row label, the peer's median time to it)
    marks = [(th, f"{100 * th:.0f}%", median_or_none([time_to(p, th) for p in peer.values()]) if peer else None)
             for th in THRESHOLDS]
    if peer:
        # the speed-up goal's mark, the peer's own final accuracy (mean over its seeds): the peer reaches it
        # when it ends (a seed that ends below the mean never "crosses" it)
        mark = statistics.mean(peer_final)
        marks.append((mark, f"{100 * mark:.2f}% (the peer's final)", peer_end))
    for th, label, b in marks:
        ts = {r: median_or_none([time_to(p, th) for p in runs.values()]) for r, runs in ours.items()}
        cells = [fmt(t) for t in ts.values()]
        if peer:
            cells.append(fmt(b))
            for a in ts.values():
                cells.append("-" if a is None else f"{b / a:.1f}x" if b is not None else f"> {peer_end / a:.1f}x")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"ours": ours, "peer": peer}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
