"""Continuing an interrupted run: its saved config, and last.pt / best.pt loaded into a fresh setup."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .. import runs
from ..checkpoint import read_checkpoint
from ..errors import CheckpointError, ConfigError
from .config import TrainConfig
from .distributed import Distributed
from .engine import TrainState

if TYPE_CHECKING:
    from .run import RunSetup

log = logging.getLogger("fashionbench.train")


def _resume_files(run_dir: Path) -> tuple[dict, dict | None]:
    path = run_dir / runs.LAST
    last = read_checkpoint(path)
    if "train_state" not in last:
        raise CheckpointError(f"{path} holds no resume state; start a new run instead")
    best = read_checkpoint(run_dir / runs.BEST)["state_dict"] if (run_dir / runs.BEST).is_file() else None
    return last, best


def restore(s: RunSetup, run_dir: Path, dist: Distributed | None = None) -> None:
    """Load the resume state of `run_dir/last.pt` into the setup (model, optimizer, schedule, state).

    In a distributed run rank 0 reads the files and sends them to the others, so only its
    machine needs the run folder."""
    path = run_dir / runs.LAST
    if dist is None:
        last, best = _resume_files(run_dir)
    else:
        last, best = dist.on_writer(lambda: _resume_files(run_dir))
    if last.get("model") != s.cfg.model or dict(last.get("model_args", {})) != dict(s.cfg.model_args):
        raise CheckpointError(f"{path} holds model {last.get('model')!r} {last.get('model_args')} but the run's "
                              f"config.json trains {s.cfg.model!r} {s.cfg.model_args}: the checkpoint comes from "
                              "another run; restore this run's last.pt or start it again with --overwrite")
    try:
        s.model.load_state_dict(last["state_dict"])
        s.optimizer.load_state_dict(last["optimizer"])
        if last.get("scheduler") is not None:
            s.scheduler.load_state_dict(last["scheduler"])
        if s.lookahead is not None:
            s.lookahead.load_state_dict(last["lookahead"])
        if s.skipper is not None:
            s.skipper.load_state_dict(last["skipper"])
        s.state = TrainState.from_dict(last["train_state"])  # a run that stopped early stays stopped
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} does not fit this run's model or optimizer "
                              f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}); it comes from "
                              "another run: start again with --overwrite") from None
    if best is not None:
        s.state.best_state = best
    log.info("resuming %s after epoch %d of %d", run_dir, s.state.epoch, s.cfg.epochs)


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run folder was trained with (what `--resume` continues)."""
    run_dir = Path(run_dir)
    if not (run_dir / runs.CONFIG).is_file():
        raise CheckpointError(f"{run_dir} is not a run folder (no {runs.CONFIG}); pass the folder `train` wrote")
    values = runs.read_json(run_dir / runs.CONFIG)
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as e:
        raise CheckpointError(f"{run_dir / runs.CONFIG} is corrupt ({e}); the run cannot be resumed, start a new "
                              "one") from None
