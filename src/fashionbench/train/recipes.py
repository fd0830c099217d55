"""Named recipes: a model plus the hyperparameters that make it train well.

The fast recipes follow airbench (Nesterov SGD with a large lr, 64x lr on biases, linear
warmup then linear decay, label smoothing, lookahead EMA, flip + translate, flip/shift TTA),
translated to mean-reduced losses: lr = airbench_lr * batch / (1024 * (1 + 1 / (1 - momentum))).
"""

from __future__ import annotations

from ..errors import ConfigError


def _fast(epochs: float, widths: list[int], batch_size: int = 1024, **extra) -> dict:
    return {
        "model": "fastnet", "model_args": {"widths": widths}, "epochs": epochs, "batch_size": batch_size,
        "optimizer": "sgd", "lr": 1.5 * batch_size / 1024, "momentum": 0.85, "nesterov": True,
        "weight_decay": 1.33e-3 * 1024 / batch_size, "bias_lr_scale": 64.0, "schedule": "linear",
        "warmup_epochs": round(0.23 * epochs, 3), "final_lr_factor": 0.07, "label_smoothing": 0.2,
        "augment": ["flip", "translate"], "normalize": "standardize", "val_fraction": 0.0, "drop_last": True,
        "lookahead": True, "tta": ["flip", "translate"], "eval_batch_size": 2000, **extra,
    }


RECIPES: dict[str, dict] = {
    "fast-60s": {
        "description": "default: FastNet 32/64/128, 5 epochs; >= 93% in about a minute on a 2-core CPU",
        "config": _fast(5, [32, 64, 128]),
    },
    "fast-3m": {
        "description": "FastNet 64/128/256, 8 epochs; >= 94% in about three minutes on a 2-core CPU",
        "config": _fast(8, [64, 128, 256]),
    },
    "fast-15m": {
        "description": "FastNet 96/192/384, 20 epochs; >= 95% in about fifteen minutes on a 2-core CPU",
        "config": _fast(20, [96, 192, 384]),
    },
    "long": {
        "description": "FastNet 128/256/512 depth 3, 80 epochs: for a GPU or an overnight CPU run",
        "config": _fast(80, [128, 256, 512], model_args={"widths": [128, 256, 512], "depth": 3}),
    },
    "paper-002-cnn": {
        "description": "study 002's CNN as published: Adam 1e-3, batch 64, 10 epochs, min-max scaling",
        "config": {"model": "cnn_002", "optimizer": "adam", "lr": 1e-3, "batch_size": 64, "epochs": 10,
                   "normalize": "minmax"},
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
