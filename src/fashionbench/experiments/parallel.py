"""Independent trainings as parallel jobs: K spawned processes, one torch thread each.

Two 2-thread trainings on a 2-core machine slow each other about 8x, while two 1-thread ones
finish in about the time of one: cross-validation folds, ablation cells and a table's seeds
are independent, so `--jobs K` runs K of them at a time. The dataset travels to each worker
once (not with every task), each worker's own progress bars are off (the parent shows one
bar over the runs), and results come back in the order of the tasks.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

from tqdm import tqdm as std_tqdm
from tqdm.auto import tqdm

from ..errors import ConfigError

_DATASET = None  # the worker's copy of the dataset, set once by _init_worker


def check_jobs(jobs) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    return jobs


def train_metrics(cfg, run_dir, *, dataset, split=None, overwrite: bool = False, tracking=None) -> dict:
    """One training run (a picklable job): its metrics record."""
    from ..train.run import train_run

    return train_run(cfg, run_dir, dataset=dataset, split=split, overwrite=overwrite, tracking=tracking).metrics


def _init_worker(dataset) -> None:
    global _DATASET
    import torch

    # Ctrl-C is the parent's: it stops the pool, so no worker prints its own traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock is a multiprocessing semaphore that a stopped worker would leak
    std_tqdm.set_lock(threading.RLock())
    torch.set_num_threads(1)
    _DATASET = dataset


def _call(job: tuple[Callable, dict]):
    fn, kwargs = job
    return fn(dataset=_DATASET, **kwargs)


@contextlib.contextmanager
def _quiet_children() -> Iterator[None]:
    """Workers spawned inside this block start with tqdm's bars off (they read TQDM_DISABLE at import)."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


@contextlib.contextmanager
def spawn_pool(processes: int, dataset=None, *, bars: bool = False) -> Iterator:
    """A pool of spawned workers (fork would copy torch's thread pools) with one torch thread each,
    `dataset` as their copy of the data and Ctrl-C left to the parent; their own tqdm bars off
    unless `bars`. Terminated and joined on every path, so an interrupted pool leaves no process
    or semaphore behind."""
    ctx = multiprocessing.get_context("spawn")
    with contextlib.nullcontext() if bars else _quiet_children():
        pool = ctx.Pool(processes, initializer=_init_worker, initargs=(dataset,))
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def run_jobs(fn: Callable, tasks: Sequence[dict], *, jobs: int, dataset, desc: str = "runs") -> list:
    """[fn(dataset=dataset, **task) for task in tasks], `jobs` at a time.

    jobs=1 (or a single task) runs them here, one after the other, with the caller's threads.
    Otherwise each task's `cfg` trains with one thread unless it names its own, `fn` must be a
    module-level function and the tasks picklable; a task's error (a FashionbenchError
    with its one-line message) is raised here once the pool has stopped."""
    check_jobs(jobs)
    if jobs == 1 or len(tasks) <= 1:
        return [fn(dataset=dataset, **t) for t in tasks]
    tasks = [{**t, "cfg": job_threads(t["cfg"])} if "cfg" in t else t for t in tasks]
    with spawn_pool(min(jobs, len(tasks)), dataset) as pool:
        return list(tqdm(pool.imap(_call, [(fn, dict(t)) for t in tasks]), total=len(tasks), desc=desc, unit="run"))


def job_threads(cfg):
    """The config a pooled job trains with (and records): one thread, unless threads were asked for."""
    return cfg if cfg.threads is not None else cfg.replace(threads=1)


__all__ = ["check_jobs", "job_threads", "run_jobs", "spawn_pool", "train_metrics"]
