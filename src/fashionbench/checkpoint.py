"""Checkpoints that carry their own config: model name and args, class names, normalization."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .data.normalize import Normalization
from .errors import CheckpointError, FashionbenchError
from .models.registry import create_model
from .runs import BEST, LAST, checkpoint_for, read_config

FORMAT = "fashionbench-checkpoint"
VERSION = 1


def make_checkpoint(*, model_name: str, model_args: dict, state_dict: dict, class_names: list[str],
                    normalization: Normalization, config: dict, epoch: int, **extra) -> dict:
    return {
        "format": FORMAT, "version": VERSION, "model": model_name, "model_args": dict(model_args),
        "class_names": list(class_names), "normalization": normalization.to_dict(), "config": config,
        "epoch": epoch, "state_dict": state_dict, **extra,
    }


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict with a clear error for anything that is not one of ours."""
    path = Path(path)
    if path.is_dir():  # the weights the run's test metrics came from (last.pt unless it restored the best)
        found = checkpoint_for(path, "best" if read_config(path).get("restore_best") else "last")
        if found is None:
            raise CheckpointError(f"{path} holds no {BEST} or {LAST}; pass a checkpoint file or a run folder")
        path = found
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass a .pt file written by `fashionbench train`")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the write that made it was cut short; train again or "
                              "pass another file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError,
            AttributeError, KeyError, IndexError, TypeError) as e:
        if isinstance(e, PermissionError):
            raise CheckpointError(f"{path} cannot be read (permission denied); check its permissions") from None
        why = "not a PyTorch checkpoint" if "Weights only load failed" in str(e) else \
            "not a PyTorch file" if isinstance(e, (KeyError, IndexError, pickle.UnpicklingError)) else \
            (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise CheckpointError(f"{path} could not be read as a checkpoint ({why}); it is truncated or not a "
                              "fashionbench checkpoint: train again or pass another file") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a fashionbench checkpoint (no '{FORMAT}' marker); "
                              "pass a best.pt or last.pt written by `fashionbench train`")
    if not isinstance(ckpt.get("version", 0), int) or ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer fashionbench (format {ckpt['version']}); upgrade")
    ckpt["path"] = str(path)
    return ckpt


def build_from_checkpoint(ckpt: dict, expect_model: str | None = None) -> nn.Module:
    """Recreate the model a checkpoint describes and load its weights."""
    name = ckpt["model"]
    if expect_model is not None and expect_model != name:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')} holds model {name!r}, not {expect_model!r}; "
                              f"use --model {name} or a checkpoint of {expect_model}")
    # Starting-weight options are not replayed: the checkpoint's own weights replace them.
    args = {k: v for k, v in ckpt.get("model_args", {}).items() if k not in ("pretrained", "weights")}
    try:
        model = create_model(name, num_classes=len(ckpt["class_names"]), **args)
    except FashionbenchError as e:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: {e}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        first = str(e).split("\n\t")[1:3] or [str(e)]
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: its weights do not fit model {name!r} "
                              f"({'; '.join(first)[:200]}); the file was edited or comes from another model") from None
    return model


def load_checkpoint(path: str | Path, expect_model: str | None = None) -> tuple[nn.Module, dict]:
    ckpt = read_checkpoint(path)
    return build_from_checkpoint(ckpt, expect_model), ckpt
