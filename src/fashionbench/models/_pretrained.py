"""Starting weights for the transfer-learning models: torchvision's ImageNet weights or a local file.

Models never import training code, so a fashionbench checkpoint is recognized here by its
format marker alone.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError

log = logging.getLogger("fashionbench.models")

CHECKPOINT_FORMAT = "fashionbench-checkpoint"


class GrayToImageNet(nn.Module):
    """(B, 1, h, w) images in [0, 1] -> (B, 3, size, size) resized and ImageNet-normalized.

    Mean/std come from the weights' own transforms(). We resize the whole image to the crop
    size (no resize-256-then-center-crop: that would cut the edges off the garment)."""

    def __init__(self, size: int, mean, std):
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                          antialias=False)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def imagenet_mean_std(weights_enum) -> tuple[list[float], list[float]]:
    t = weights_enum.transforms()
    return list(t.mean), list(t.std)


def download_imagenet(weights_enum, model_name: str) -> dict:
    """torchvision's weights API: downloads once into torchvision's cache (TORCH_HOME)."""
    try:
        return weights_enum.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # URLError, HTTPError, hash mismatch, timeouts...
        raise ConfigError(
            f"could not get the ImageNet weights {weights_enum} for {model_name} ({type(e).__name__}: "
            f"{str(e)[:120]}). On a machine with internet run once: python -c \"import torchvision; "
            f"torchvision.models.{type(weights_enum).__name__}.{weights_enum.name}.get_state_dict()\" and copy "
            f"the .pth file from ~/.cache/torch/hub/checkpoints here, then pass it with --weights FILE") from None


def read_weights_file(path: str | Path, model_name: str) -> dict:
    """A torchvision-format state_dict, or the state_dict inside a fashionbench checkpoint."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"weights file {path} is a folder; pass the .pth file (or a run's best.pt) inside it")
    if not path.is_file():
        raise ConfigError(f"weights file {path} not found; pass an existing torchvision state_dict (.pth) or a "
                          f"fashionbench checkpoint (best.pt) for {model_name}, or use --pretrained imagenet "
                          "on a machine with internet")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise ConfigError(f"weights file {path} cannot be read (permission denied); check its permissions") from None
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError,
            IndexError) as e:
        why = "not a PyTorch file" if isinstance(e, (KeyError, IndexError, pickle.UnpicklingError)) else \
            (str(e).splitlines() or [type(e).__name__])[0][:100]
        raise ConfigError(f"weights file {path} could not be read ({why}); it is "
                          f"truncated or not a PyTorch file: pass a torchvision state_dict or a fashionbench "
                          f"checkpoint for {model_name}") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if obj.get("model") != model_name:
            raise ConfigError(f"weights file {path} is a fashionbench checkpoint of {obj.get('model')!r}, not "
                              f"{model_name!r}; pass a checkpoint of {model_name} or use --model {obj.get('model')}")
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"weights file {path} holds no state_dict; pass a torchvision state_dict (.pth) or a "
                          f"fashionbench checkpoint for {model_name}")
    return obj


def check_weights_option(weights: dict) -> None:
    """Check `--weights MODEL=FILE` pairs up front: each MODEL takes starting weights and each FILE
    holds them (a command that trains many models refuses a bad pair before the first one trains)."""
    from .registry import model_info, models_taking

    for model, path in weights.items():
        model_info(model)  # an unknown name says so, with the close matches
        if model not in models_taking("weights"):
            raise ConfigError(f"--weights {model}={path}: {model} takes no starting weights; the models that do: "
                              f"{', '.join(models_taking('weights'))}")
        read_weights_file(path, model)


def load_backbone(model: nn.Module, state_dict: dict, head_prefixes: tuple[str, ...], source: str,
                  model_name: str) -> None:
    """Load everything but a head of another shape (e.g. ImageNet's 1000 classes); strict otherwise."""
    own = model.state_dict()
    sd = {}
    skipped = []
    for k, v in state_dict.items():
        if k.startswith(head_prefixes) and k in own and own[k].shape != v.shape:
            skipped.append(k)
            continue
        sd[k] = v
    missing = [k for k in own if k not in sd and k not in skipped]
    unexpected = [k for k in sd if k not in own]
    bad_shape = [k for k in sd if k in own and own[k].shape != sd[k].shape]
    if missing or unexpected or bad_shape:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{'...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", bad_shape)) if keys)
        raise ConfigError(f"weights from {source} do not fit {model_name} ({detail}); pass the torchvision "
                          f"state_dict of the same architecture or a fashionbench checkpoint of {model_name}")
    model.load_state_dict(sd, strict=False)
    if skipped:
        log.info("%s: loaded %s, new %d-key head (%s)", model_name, source, len(skipped), ", ".join(skipped))


def init_weights(model: nn.Module, imagenet, model_name: str, head_prefixes: tuple[str, ...],
                 pretrained: str | None, weights: str | None) -> None:
    """`imagenet`: a torchvision weights enum (downloaded once) or a function returning a local ImageNet state_dict."""
    if pretrained and weights:
        raise ConfigError("--pretrained and --weights both name starting weights; pass one")
    if pretrained not in (None, "imagenet"):
        raise ConfigError(f"pretrained must be 'imagenet' or None, got {pretrained!r}")
    if pretrained == "imagenet":
        local = callable(imagenet)
        state = imagenet() if local else download_imagenet(imagenet, model_name)
        source = f"the ImageNet weights of {model_name}" if local else str(imagenet)
        load_backbone(model, state, head_prefixes, source, model_name)
    elif weights:
        load_backbone(model, read_weights_file(weights, model_name), head_prefixes, str(weights), model_name)
