"""Named recipes: a model plus the hyperparameters that make it train well."""

from __future__ import annotations

from ..errors import ConfigError

RECIPES: dict[str, dict] = {
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
