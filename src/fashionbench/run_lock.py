"""Claiming a run folder: an exclusive lock file taken before any data loads (so two runs never
mix their files in one folder), --overwrite clearing exactly what a run writes, --resume
checking there is something to resume from; a study's folder removed again when it fails
before writing anything."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, ConfigError
from .runs import CONFIG, LAST, LOCK, METRICS, RUN_OUTPUTS
from .utils import remove_stale_temporaries

log = logging.getLogger("fashionbench.runs")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunFolder:
    """A claimed run folder. Release with `release()` (or use as a context manager)."""

    path: Path
    lock: Path | None = None
    created: tuple[Path, ...] = ()  # the folders the claim made, deepest first: unused ones are removed again

    def release(self) -> None:
        if self.lock is not None:
            self.lock.unlink(missing_ok=True)
            self.lock = None
            remove_empty(self.created)  # only when the run wrote nothing (e.g. the data failed)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def missing_folders(path: Path) -> tuple[Path, ...]:
    """The folders of `path` that do not exist yet, deepest first: what mkdir(parents=True) makes."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    return tuple(missing)


def remove_empty(folders) -> None:
    """Remove each folder that is empty, in the order given (deepest first)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _take_lock(run_dir: Path) -> Path:
    lock = run_dir / LOCK
    me = f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_text, host, *when = lock.read_text().split()
                pid = int(pid_text)
            except (OSError, ValueError):
                pid, host, when = -1, "", []
            if host == socket.gethostname() and pid > 0 and not _pid_alive(pid):
                log.warning("taking over %s: the run that held it (process %d) is gone", run_dir, pid)
                lock.unlink(missing_ok=True)
                continue
            if pid < 0 and time.time() - lock.stat().st_mtime < 5:  # being written right now
                time.sleep(0.2)
                continue
            who = f"process {pid} on {host}" if pid > 0 else "another process"
            raise ConfigError(f"run folder {run_dir} is in use by {who} (since {' '.join(when) or '?'}); wait "
                              f"for it to finish or pass another --out (delete {lock} if that process is gone)") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return lock
    raise ConfigError(f"could not lock run folder {run_dir}; delete {lock} if no run uses it")


def describe_contents(run_dir: Path) -> str:
    """What an occupied folder holds, and the way out for each case."""
    if (run_dir / METRICS).is_file():
        return (f"run folder {run_dir} already holds a finished run; pass another --out, or --overwrite to "
                "replace it")
    if (run_dir / LAST).is_file():
        return (f"run folder {run_dir} holds an unfinished run; continue it with `fashionbench train --resume "
                f"{run_dir}`, pass another --out, or --overwrite to start it again")
    if (run_dir / CONFIG).is_file():
        return (f"run folder {run_dir} holds a run that stopped before its first checkpoint, so it cannot be "
                "resumed; pass --overwrite to start it again, or another --out")
    return f"folder {run_dir} already holds other files; pass another --out (--overwrite clears only run files)"


def claim_run_dir(run_dir: str | Path, *, overwrite: bool = False, resume: bool = False) -> RunFolder:
    """Lock `run_dir` for this run before any data loads, and check what it holds.

    A new run needs an empty folder (or --overwrite, which clears the run's files and only
    those); a resumed one needs its last.pt. Stale temporaries of crashed writes are removed."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a folder; pass a folder path for the run")
    created = missing_folders(run_dir)
    for attempt in range(3):
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            break
        except FileNotFoundError:  # a sibling run that failed removed a parent it made meanwhile: make it again
            if attempt == 2:
                raise ConfigError(f"cannot create run folder {run_dir} (its parent keeps disappearing); "
                                  "pass another --out") from None
        except OSError as e:
            raise ConfigError(f"cannot create run folder {run_dir} ({e.strerror}); pass another --out") from None
    lock = _take_lock(run_dir)
    folder = RunFolder(run_dir, lock, created)
    try:
        remove_stale_temporaries(run_dir, max_age_s=0)  # we hold the lock: no write of ours is in flight
        if resume:
            if not (run_dir / LAST).is_file():
                raise CheckpointError(f"{run_dir} has no {LAST} to resume from (the run stopped before its first "
                                      "epoch ended); start it again with the same options and --overwrite")
        elif overwrite:
            clear_run_outputs(run_dir)
        elif any(p.name != LOCK for p in run_dir.iterdir()):
            raise ConfigError(describe_contents(run_dir))
    except BaseException:
        folder.release()
        raise
    return folder


@contextlib.contextmanager
def study_folder(path: str | Path) -> Iterator[Path]:
    """The folder of a study whose runs are folders below it (cross-validation, boosting, ablation):
    made by its first run, and removed again when the study fails before anything was written."""
    path = Path(path)
    created = missing_folders(path)
    try:
        yield path
    except BaseException:
        if created:  # everything below is this study's: remove the folders its runs left empty
            remove_empty(sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + list(created))
        raise


def clear_run_outputs(run_dir: Path) -> list[str]:
    """Delete what a training run writes (report, figures and artifacts included), nothing else."""
    removed = []
    for name in RUN_OUTPUTS:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        else:
            continue
        removed.append(name)
    return removed
