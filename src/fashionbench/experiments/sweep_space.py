"""A sweep's search space: TOML tables of TrainConfig fields (ranges or choices), checked before any
trial, and the config a trial's sampled values make."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..train.config import TrainConfig, field_names, resolve_config, validate

_NOT_SWEPT = {"recipe", "dataset", "data_dir", "device", "threads", "photos", "teacher", "prune_from", "weights"}


@dataclass(frozen=True)
class Param:
    """One searched field: `choices`, or a `low`..`high` range (int or float, optionally log, step)."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None
    integer: bool = False

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]{' log' if self.log else ''}" + (
            f" step {self.step:g}" if self.step else "")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_space(data: Mapping, where: str = "the space") -> list[Param]:
    """`{field: {low, high[, log, step]} | {choices: [...]}}`; `model_args.NAME` searches a model argument."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{where} names no field to search; add a table per TrainConfig field, e.g. "
                          "[lr] low = 0.01, high = 0.5, log = true")
    fields = field_names() - _NOT_SWEPT - {"model_args"}
    defaults = TrainConfig()
    params = []
    for name, spec in data.items():
        is_arg = name.startswith("model_args.") and len(name) > len("model_args.")
        if not is_arg and name not in fields:
            close = sorted(f for f in fields if f.startswith(name[:3]))
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{where}: unknown field {name!r}{hint}; search TrainConfig fields (see `fashionbench "
                              "train --help`) or model_args.NAME")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: {name} must be a table with low/high or choices, got {spec!r}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise ConfigError(f"{where}: {name} has unknown key(s) {', '.join(sorted(unknown))}; use low, high, log, "
                              "step or choices")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: {name}.choices must be a non-empty list, got {choices!r}")
            if set(spec) != {"choices"}:
                raise ConfigError(f"{where}: {name} has both choices and a range; keep one")
            ok = (str, int, float, bool, type(None))
            if not all(isinstance(c, ok) for c in choices):  # Optuna stores plain values only
                choices = [c if isinstance(c, ok) else _json(c) for c in choices]
            params.append(Param(name, choices=tuple(choices)))
            continue
        low, high = spec.get("low"), spec.get("high")
        if not (_number(low) and _number(high)):
            raise ConfigError(f"{where}: {name} needs numbers low and high (or choices), got low={low!r} high={high!r}")
        if not low < high:
            raise ConfigError(f"{where}: {name} has an empty range (low {low} is not below high {high})")
        log_scale = spec.get("log", False)
        if not isinstance(log_scale, bool):
            raise ConfigError(f"{where}: {name}.log must be true or false, got {log_scale!r}")
        if log_scale and low <= 0:
            raise ConfigError(f"{where}: {name} is on a log scale, so low must be above 0, got {low}")
        step = spec.get("step")
        if step is not None and not (_number(step) and step > 0):
            raise ConfigError(f"{where}: {name}.step must be a positive number, got {step!r}")
        if step is not None and log_scale:
            raise ConfigError(f"{where}: {name} cannot have both log and step (Optuna samples one or the other)")
        current = None if is_arg else getattr(defaults, name)
        if isinstance(current, bool) or isinstance(current, (str, list, dict)):
            raise ConfigError(f"{where}: {name} is not a number field; search it with choices = [...]")
        integer = isinstance(current, int) or (is_arg and all(isinstance(v, int) for v in (low, high)))
        if integer and not all(isinstance(v, int) for v in (low, high, step or 1)):
            raise ConfigError(f"{where}: {name} is a whole number; give whole low/high/step, got {low!r}..{high!r}")
        params.append(Param(name, float(low) if not integer else low, float(high) if not integer else high,
                            log_scale, step, integer=integer))
    return params


def _json(value) -> str:
    import json

    return json.dumps(value)


def load_space(path: str | Path) -> list[Param]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--space {path}: no such file; write a TOML file with one table per searched field") \
            from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--space {path}: not valid TOML ({e})") from None
    return parse_space(data, f"--space {path}")


def trial_overrides(values: Mapping) -> dict:
    """A trial's sampled values as TrainConfig overrides (model_args.NAME gathered into model_args)."""
    out: dict = {}
    for name, value in values.items():
        if name.startswith("model_args."):
            out.setdefault("model_args", {})[name[len("model_args."):]] = _decode(value)
        else:
            out[name] = _decode(value)
    return out


def _decode(value):
    """Choices that are not plain values (lists, tables) travel through Optuna as JSON text."""
    import json

    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def trial_config(base: Mapping, params: list[Param], values: Mapping) -> TrainConfig:
    """defaults < recipe < config file < the command's flags < the trial's values."""
    overrides = {**base.get("overrides", {})}
    sampled = trial_overrides(values)
    if "model_args" in sampled:
        sampled["model_args"] = {**overrides.get("model_args", {}), **sampled["model_args"]}
    overrides.update(sampled)
    cfg = resolve_config(recipe=base.get("recipe"), config=base.get("config"), overrides=overrides)
    validate(cfg)
    return cfg


def check_base(base: Mapping, params: list[Param]) -> TrainConfig:
    """Fail before any trial: the space's bounds must make valid configs, and there must be a validation split."""
    cfg = resolve_config(recipe=base.get("recipe"), config=base.get("config"), overrides=base.get("overrides", {}))
    validate(cfg)
    if cfg.val_fraction <= 0:
        raise ConfigError("a sweep tunes on the validation split, never the test set; set --val-fraction > 0 "
                          "(e.g. 0.1)")
    for p in params:
        for value in (p.choices if p.choices is not None else (p.low, p.high)):
            try:
                trial_config(base, params, {p.name: value})
            except ConfigError as e:
                raise ConfigError(f"the space's {p.name} = {value!r} makes an invalid config: {e}") from None
    return cfg


__all__ = ["Param", "check_base", "load_space", "parse_space", "trial_config", "trial_overrides"]
