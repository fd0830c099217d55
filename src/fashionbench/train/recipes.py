"""Named recipes: a model plus the hyperparameters that make it train well.

The fast recipes follow airbench (Nesterov SGD, 64x lr on biases, linear warmup then linear
decay, label smoothing 0.2, lookahead EMA, flip/shift TTA) with what measured better on
Fashion-MNIST on a 2-core CPU (BENCHMARKS.md): a lower lr than airbench's (0.8 per 1024
images with a mean-reduced loss, i.e. airbench lr ~6 instead of 11.5), flip as the only
training augmentation (translate and random erasing cost accuracy even at 24 epochs), and a
96-wide last group (as accurate as 128 at 3x3 maps, 15% faster). The stem decides the
speed/accuracy trade: the 2x2 stride-2 stem (28 -> 14) is 2.4x faster per step, the
stride-1 stem (28 -> 27, groups at 27 -> 13 -> 6 -> 3) about 0.9 points more accurate for the
same epochs; the one-minute recipe takes the fast stem, the longer ones the accurate one. For
schedules of 5-7 epochs, batch 512 (twice the steps) beats 1024 for the same time, and Muon on the
conv filters (`train/muon.py`) reaches in 5-6 epochs what SGD reaches in 7-12: `fast-30s` and
`fast-90s` use it (filter lr 0.06 and momentum 0.85, measured best here; airbench's 0.24 and 0.6
lost half a point) and, like airbench's Muon run, no warmup (+0.2 points on both); so does `fast-8m`,
`fast-15m`'s wider network in 13 epochs instead of 22. `photo` trains that wider network too: with
the photo augmentations the 32/64/96 network lost 1.3 points on Fashion-MNIST and recognised fewer
real photos on every development folder (BENCHMARKS.md, "A wider network for photos").
`fast-30s` and `fast-60s` mirror with airbench's alternating flip instead of a random one (each
image seen both ways every two epochs): +0.1 to +0.2 points on the stride-2 network, so `fast-30s`
trains 4 epochs where it took 5; `fast-90s`'s stride-1 network gained nothing from it in 6 epochs.
On the stride-1 stem the first group's 27x27 maps are the step's costliest part: `fast-90s` makes
that group 24 wide instead of 32: the same accuracy in 0.86x the time on the AVX2-only EPYC
(16 wide lost 0.36 points). `fast-90s` also leaves 35% of the images, drawn among the well-learned
ones, out of its four middle epochs (`--skip-easy`, InfoBatch): 0.1-0.2 points for 0.75-0.8x the time;
`fast-8m` out of its ten middle ones, the same accuracy in 0.7x the time; the SGD recipes and the
4-epoch `fast-30s` lost 0.3-0.5 points to it.
"""

from __future__ import annotations

from ..errors import ConfigError

STRIDE_2 = {"whiten_stride": 2, "pools": [True, True, False]}  # 28 -> 14 -> 7 -> 3
STRIDE_1 = {"whiten_stride": 1, "pools": [True, True, True]}  # 28 -> 27 -> 13 -> 6 -> 3
ALTERNATING = ("alternating-flip",)


def _fast(epochs: int, widths: list[int], stem: dict, *, lr: float = 0.8, augment=("flip",), batch_size: int = 1024,
          model_args: dict | None = None, **extra) -> dict:
    return {
        "model": "fastnet",
        "model_args": {"widths": widths, **stem, **(model_args or {})},
        "epochs": epochs, "batch_size": batch_size, "optimizer": "sgd", "lr": lr * batch_size / 1024,
        "momentum": 0.85, "nesterov": True, "weight_decay": 1.33e-3 * 1024 / batch_size, "bias_lr_scale": 64.0,
        "schedule": "linear", "warmup_epochs": round(0.23 * epochs, 3), "final_lr_factor": 0.07,
        "label_smoothing": 0.2, "augment": list(augment), "normalize": "standardize", "val_fraction": 0.0,
        "drop_last": True, "lookahead": True, "tta": ["flip", "translate"], "eval_batch_size": 2000, **extra,
    }


RECIPES: dict[str, dict] = {
    "fast-30s": {
        "description": "fast-60s's network, Muon on the conv filters, batch 512, alternating flip, 4 epochs: "
                       "about 93.1% in 0.4x fast-60s's time (under 30 s on the faster 2-core CPUs)",
        "config": _fast(4, [32, 64, 96], STRIDE_2, batch_size=512, optimizer="muon", warmup_epochs=0.0,
                        augment=ALTERNATING),
    },
    "fast-60s": {
        "description": "default: FastNet 32/64/96, stride-2 stem, alternating flip, 11 epochs; over 93% in under a "
                       "minute on a 2-core CPU",
        "config": _fast(11, [32, 64, 96], STRIDE_2, augment=ALTERNATING),
    },
    "fast-3m": {
        "description": "FastNet 32/64/96, stride-1 stem, 12 epochs; over 94% in under three minutes on a 2-core CPU",
        "config": _fast(12, [32, 64, 96], STRIDE_1),
    },
    "fast-90s": {
        "description": "fast-3m's network with a 24-wide first group, Muon on the conv filters, batch 512, "
                       "6 epochs, 35% of the well-learned images skipped in the middle four: about 94.2% in "
                       "about 0.4x fast-3m's time (under 90 s on the faster 2-core CPUs)",
        "config": _fast(6, [24, 64, 96], STRIDE_1, batch_size=512, optimizer="muon", warmup_epochs=0.0,
                        skip_easy=0.35),
    },
    "fast-8m": {
        "description": "fast-15m's network, Muon on the conv filters, batch 512, 13 epochs, 35% of the "
                       "well-learned images skipped in the middle ten: about 95.1%, in 0.7x the 7 minutes that "
                       "every image takes on the faster 2-core CPUs",
        "config": _fast(13, [64, 128, 256], STRIDE_1, batch_size=512, optimizer="muon", warmup_epochs=0.0,
                        skip_easy=0.35),
    },
    "fast-15m": {
        "description": "FastNet 64/128/256, stride-1 stem, 22 epochs; about fifteen minutes on a 2-core CPU",
        "config": _fast(22, [64, 128, 256], STRIDE_1),
    },
    "long": {
        "description": "FastNet 128/256/512 depth 3, stride-1 stem, 100 epochs, flip + random erasing: "
                       "a GPU or an overnight CPU run",
        "config": _fast(100, [128, 256, 512], STRIDE_1, augment=("flip", "random-erasing"), model_args={"depth": 3}),
    },
    "photo": {
        "description": "for real photos: fast-8m's network and optimizer, 16 epochs with the photo augmentations "
                       "(flip+photo), 5% held out to fit the softmax temperature; about 94.2% on Fashion-MNIST",
        # the SGD half (BatchNorm, head) keeps lr 0.8 and weight decay 1.33e-3 at batch 512, as measured
        "config": _fast(16, [64, 128, 256], STRIDE_1, lr=1.6, augment=("flip", "photo"), batch_size=512,
                        optimizer="muon", warmup_epochs=0.0, weight_decay=1.33e-3, val_fraction=0.05),
    },
    "light": {
        "description": "for phones: fastnet_light (85 k parameters, ReLU), 24 epochs, one view at test time; "
                       "--prune-from a fast-60s run and --teacher a fast-3m run: about 93.0%, int8 ONNX under 100 KB",
        "config": {**_fast(24, [24, 40, 60], STRIDE_2), "model": "fastnet_light", "model_args": {"act": "relu"},
                   "tta": []},
    },
    "paper-002-cnn": {
        "description": "study 002's CNN as published: Keras init, Adam 1e-3, batch 64, 10 epochs, min-max scaling",
        "config": {"model": "cnn_002", "model_args": {"init": "keras"}, "optimizer": "adam", "lr": 1e-3,
                   "batch_size": 64, "epochs": 10, "normalize": "minmax"},
    },
}


def recipe_config(name: str) -> dict:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)} "
                          "(`fashionbench recipes` lists them)")
    return {"recipe": name, **RECIPES[name]["config"]}


def recipe_train_config(name: str):
    from .config import TrainConfig

    return TrainConfig.from_dict(recipe_config(name))
