"""Model registry in the style of timm: @register_model, create_model(name, **kw), list_models()."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class ModelInfo:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    paper_params: int | None = None  # parameter count a paper states, checked by the tests
    source: str = ""  # which study or recipe it comes from
    defaults: dict = field(default_factory=dict)
    # torch threads it trains fastest with on a CPU when none are asked for (None: one per core).
    # NumPy models want 1: torch's idle OpenMP workers spin against NumPy's BLAS threads.
    cpu_threads: int | None = None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str | None = None, *, paper_params: int | None = None, source: str = "",
                   cpu_threads: int | None = None):
    """Register a factory `fn(num_classes=10, **kw) -> nn.Module` under a lowercase name."""

    def deco(fn: Callable[..., nn.Module]):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} registered twice")
        params = inspect.signature(fn).parameters
        defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[key] = ModelInfo(key, fn, doc, paper_params, source, defaults, cpu_threads)
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the package registers every family.
    from . import _families  # noqa: F401


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def models_taking(argument: str) -> list[str]:
    """The registered models whose constructor takes `argument` (e.g. "weights": the transfer models)."""
    return [name for name in list_models() if argument in _REGISTRY[name].defaults]


def model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model {name!r}.{hint} Run `fashionbench models` to list them all.")
    return _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    info = model_info(name)
    unknown = set(kwargs) - set(inspect.signature(info.factory).parameters)
    if unknown:
        raise ConfigError(f"model {name!r} takes no argument {', '.join(sorted(unknown))}; "
                          f"it takes {', '.join(info.defaults) or 'none'}")
    try:
        return info.factory(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, RuntimeError, ZeroDivisionError) as e:
        # a bad value reaches torch deep inside the constructor; name the arguments instead
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "num_classes") or "defaults"
        raise ConfigError(f"model {name!r} cannot be built with {given} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:160] if str(e) else 'invalid value'}); check --model-arg "
                          f"values (defaults: {info.defaults})") from None


@torch.no_grad()
def check_forward(model: nn.Module, name: str, num_classes: int, args: dict) -> None:
    """Run two blank 28x28 images through a freshly built model: a bad constructor argument
    (zero widths, a wrong depth) fails here, in one line, instead of in the first training step."""
    was_training = model.training
    model.eval()
    try:
        out = model(torch.zeros(2, 1, 28, 28))
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "defaults"
        raise ConfigError(f"model {name!r} cannot be built with {given}: a 28x28 image does not go through it "
                          f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}); check --model-arg "
                          "values") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (2, num_classes):
        raise ConfigError(f"model {name!r} gives outputs of shape {tuple(out.shape)[1:]} for {num_classes} classes; "
                          "check --model-arg values")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def channels_last_for(model: nn.Module, asked: bool | None = None) -> bool:
    """Whether `model` runs channels_last: only if it has convolutions (the other nets have no memory
    format to choose), and then as `asked`, or yes where `asked` is None."""
    return uses_conv(model) and (asked is None or asked)


def place_model(model: nn.Module, device, channels_last: bool | None = None) -> tuple[nn.Module, bool]:
    """Move to `device`, channels_last if asked (by default for conv nets: faster with bf16 autocast).
    Returns (model, channels_last)."""
    model = model.to(device)
    channels_last = channels_last_for(model, channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, channels_last
