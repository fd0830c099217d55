"""The precision and memory format a model runs fastest with on this machine.

`--precision auto` used to follow a rule (bf16 where the CPU has native bf16 units, channels_last
for every conv net). The rule is wrong for some models and machines: bf16 made `lenet5_bn` 2.7x
slower to train on Sapphire Rapids and FastNet slower at batch 1, and whether channels_last pays
in fp32 depends on the vector unit. So on a CPU, `choose_layout` times a few steps of the model
itself under each candidate (interleaved, median per step) and keeps the fastest. The answer is
cached per machine, torch version, model structure, input shape (batch size included: bf16 can
win at batch 256 and lose on one image) and task (train or inference) in
`layout.json` under the user cache folder, so the probe runs once.

FASHIONBENCH_LAYOUT_PROBE=0 turns the probe off (the rule above decides); the test suite does so,
to keep its runs independent of timing noise.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .models.registry import channels_last_for, uses_conv
from .utils import atomic_write_json, autocast, cpu_has_fast_bf16, machine_description, resolve_precision

log = logging.getLogger(__name__)

PROBE_ENV = "FASHIONBENCH_LAYOUT_PROBE"
CACHE_FILE = "layout.json"
PROBE_BATCH = 256  # images per probe step at most: enough to rank the candidates, a second or three in all
ROUNDS = 3
SLOW_STEP_S = 0.5  # a warm-up step slower than this (the 224-px transfer nets): one timed step per candidate


@dataclass(frozen=True)
class Layout:
    precision: str  # fp32 | bf16
    channels_last: bool
    source: str = "rule"  # rule (no choice to make, or the probe is off) | probe | cache
    seconds: dict | None = None  # candidate name -> median seconds per probe step

    @property
    def name(self) -> str:
        return f"{self.precision}+{'channels_last' if self.channels_last else 'contiguous'}"


def rule_layout(model: nn.Module, device: torch.device, precision: str = "auto",
                channels_last: bool | None = None) -> Layout:
    """The fixed rule: bf16 where the hardware runs it natively, channels_last for conv nets (or the
    memory format given)."""
    return Layout(resolve_precision(precision, device), channels_last_for(model, channels_last))


def candidates(model: nn.Module, device: torch.device, precision: str = "auto",
               channels_last: bool | None = None) -> list[tuple[str, bool]]:
    """(precision, channels_last) pairs worth timing here. Emulated bf16 (no native units) is never
    faster, so it is not tried; nets without convolutions have no memory format to choose.
    `channels_last` given: that memory format only (a model already placed in it)."""
    resolve_precision(precision, device)  # checks the name
    precisions = [precision] if precision != "auto" else ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])
    formats = [True, False] if channels_last is None and uses_conv(model) else [channels_last_for(model, channels_last)]
    return [(p, cl) for p in precisions for cl in formats]


def cache_dir() -> Path:
    root = os.environ.get("FASHIONBENCH_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / ("" if os.environ.get("FASHIONBENCH_CACHE_DIR") else "fashionbench")


def cache_key(model: nn.Module, sample_shape, task: str, cands) -> str:
    text = json.dumps([machine_description(), torch.__version__, task, list(sample_shape), str(model),
                       [list(c) for c in cands]])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # missing or damaged: probe again and rewrite it
        return {}


def _step_fn(model: nn.Module, x: torch.Tensor, device: torch.device, precision: str, train: bool):
    if train:
        model.train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        y = torch.zeros(len(x), dtype=torch.long, device=device)

        def step() -> None:
            with autocast(device, precision):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step() -> None:
            with torch.no_grad(), autocast(device, precision):
                model(x)
    return step


def probe(model: nn.Module, sample: torch.Tensor, device: torch.device, cands, *, train: bool,
          rounds: int = ROUNDS, steps: int = 2, clock=time.perf_counter) -> dict[tuple[str, bool], float]:
    """Median seconds per step of a copy of `model` under each candidate, the candidates interleaved
    in `rounds` rounds so they share the machine's noise. A candidate that fails is left out."""
    fns, slowest = {}, 0.0
    for prec, cl in cands:
        m = copy.deepcopy(model).to(device)
        x = sample.to(device)
        if cl:
            m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        try:
            fn = _step_fn(m, x, device, prec, train)
            t0 = clock()
            fn()  # warm-up: oneDNN builds its kernels for this shape
            slowest = max(slowest, clock() - t0)
        except Exception as e:  # an unsupported combination is simply not a candidate
            log.debug("layout %s/%s failed in the probe: %s", prec, cl, e)
            continue
        fns[(prec, cl)] = fn
    if slowest > SLOW_STEP_S:
        rounds, steps = 1, 1
    times: dict[tuple[str, bool], list[float]] = {c: [] for c in fns}
    for _ in range(rounds):
        for c, fn in fns.items():
            for _ in range(steps):
                t0 = clock()
                fn()
                times[c].append(clock() - t0)
    return {c: statistics.median(t) for c, t in times.items()}


def choose_layout(model: nn.Module, sample: torch.Tensor, device: torch.device, *, precision: str = "auto",
                  train: bool = True, use_cache: bool = True, channels_last: bool | None = None) -> Layout:
    """The fastest (precision, channels_last) for `model` on `device`. `sample` is a batch of real
    inputs (its first PROBE_BATCH images are used). On GPUs and MPS, and with the probe off, the rule
    decides; an explicit precision is kept and only the memory format is timed; an explicit
    `channels_last` is kept and only the precision is timed."""
    if device.type != "cpu" or os.environ.get(PROBE_ENV, "1") == "0":
        return rule_layout(model, device, precision, channels_last)
    cands = candidates(model, device, precision, channels_last)
    if len(cands) == 1:
        return Layout(*cands[0])
    sample = sample[:PROBE_BATCH]
    task = "train" if train else "inference"
    key = cache_key(model, sample.shape, task, cands)
    path = cache_dir() / CACHE_FILE
    cached = _read_cache(path).get(key) if use_cache else None
    if isinstance(cached, dict) and (cached.get("precision"), cached.get("channels_last")) in cands:
        return Layout(cached["precision"], bool(cached["channels_last"]), "cache", cached.get("seconds"))
    t0 = time.perf_counter()
    was_training = model.training
    secs = probe(model, sample, device, cands, train=train)
    model.train(was_training)
    if not secs:
        return rule_layout(model, device, precision, channels_last)
    best = min(secs, key=secs.get)
    named = {Layout(p, cl).name: round(s, 5) for (p, cl), s in secs.items()}
    layout = Layout(best[0], best[1], "probe", named)
    log.info("layout probe (%s, %.1f s): %s -> %s", task, time.perf_counter() - t0,
             ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in named.items()), layout.name)
    if use_cache:
        with contextlib.suppress(OSError):  # a read-only home only costs a probe next time
            path.parent.mkdir(parents=True, exist_ok=True)
            data = _read_cache(path)
            data[key] = {**asdict(layout), "source": "probe", "task": task, "machine": machine_description(),
                         "torch": torch.__version__, "model": type(model).__name__, "date": time.strftime("%Y-%m-%d")}
            atomic_write_json(path, data)
    return layout
