"""Make sure Fashion-MNIST is on this machine before `make run` trains.

Order: a local copy (FASHIONBENCH_DATA, the cache, Debian's folder), else a download into the
cache, else Debian's `dataset-fashion-mnist` through apt-get where this user may run it (root,
or password-less sudo), else the three-way message and exit 2.

The common case must cost milliseconds, so this module imports only the standard library and
checks that the files exist without hashing them (training verifies them, once). The
fashionbench package, and with it torch (seconds), is imported only when something has to be
fetched; scripts/ensure_data.py loads this file by path, skipping the package import.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

# Copies of fashionbench.data.sources' locations (importing it costs seconds);
# tests/data/test_ensure.py keeps them in step.
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
INSTALL_LINE = ("fashionbench: Fashion-MNIST not found and not downloadable; "
                "installing Debian's dataset-fashion-mnist with apt-get")

Action = Literal["use-local", "use-download", "apt-get", "sudo-apt-get", "give-up"]
Runner = Callable[[list[str]], int]  # runs a command, returns its exit status


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fashionbench" / "fashion-mnist"


def _complete(folder: Path) -> bool:
    return all((folder / s).is_file() or (folder / f"{s}.gz").is_file() for s in STEMS)


def local_copy_present() -> bool:
    """A complete folder named by FASHIONBENCH_DATA, else in the cache or Debian's folder."""
    explicit = os.environ.get("FASHIONBENCH_DATA")
    if explicit:  # the user's choice: no fallback (training would not use the others either)
        return _complete(Path(explicit).expanduser())
    return _complete(cache_dir()) or _complete(SYSTEM_DIR)


def plan(have_local: bool, download_ok: bool, is_root: bool, sudo_ok: bool, apt_available: bool) -> Action:
    """What to do, from what is known about this machine (pure: the decision table is tested)."""
    if have_local:
        return "use-local"
    if download_ok:
        return "use-download"
    if not apt_available:
        return "give-up"
    if is_root:
        return "apt-get"
    return "sudo-apt-get" if sudo_ok else "give-up"


def apt_commands(action: Action) -> tuple[list[str], list[str]]:
    """(install, update) commands for an apt action."""
    prefix = ["sudo", "-n"] if action == "sudo-apt-get" else []
    return [*prefix, "apt-get", "install", "-y", "-q", PACKAGE], [*prefix, "apt-get", "update", "-qq"]


def is_root() -> bool:
    return getattr(os, "geteuid", lambda: -1)() == 0


def apt_available() -> bool:
    return shutil.which("apt-get") is not None


def sudo_works() -> bool:
    """True when sudo runs without asking for a password (-n never prompts)."""
    if shutil.which("sudo") is None:
        return False
    try:
        probe = subprocess.run(["sudo", "-n", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _run(cmd: list[str]) -> int:
    return subprocess.run(cmd, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}).returncode


def install_with_apt(action: Action, run: Runner | None = None) -> None:
    """Install Debian's package. Package lists are refreshed only when the install fails without
    them (a fresh container has none): `apt-get update` takes tens of seconds and is otherwise
    not needed."""
    from fashionbench.data import sources  # absolute: this file may be loaded by path
    from fashionbench.errors import DataError

    run = run or _run
    print(INSTALL_LINE, flush=True)
    install, update = apt_commands(action)
    if run(install) != 0 and (run(update) != 0 or run(install) != 0):
        raise DataError(f"`{' '.join(install)}` failed (see apt-get's message above); fix that, or "
                        + sources.OFFLINE_HELP)
    if not sources.complete_folder(sources.SYSTEM_DIR):
        raise DataError(f"{PACKAGE} is installed but {sources.SYSTEM_DIR} lacks the four files; reinstall it with "
                        f"`sudo apt-get install --reinstall {PACKAGE}`, or " + sources.OFFLINE_HELP)


def ensure(run: Runner | None = None) -> Action:
    """Make a copy of Fashion-MNIST available; return what it took. `run` executes a command and
    returns its exit status (default: subprocess). Raises DataError (the message names the fix)
    when there is no way."""
    if local_copy_present():
        return "use-local"
    from fashionbench.data import sources  # absolute: this file may be loaded by path
    from fashionbench.errors import DataError

    if sources.find_local_copy() is not None:  # sources is the authority on locations
        return "use-local"
    try:
        sources.log.info("no local copy of Fashion-MNIST; trying a download into %s", sources.cache_dir())
        sources.download()
        download_ok, why = True, ""
    except DataError as e:
        download_ok, why = False, str(e)
    root = is_root()
    action = plan(False, download_ok, root, not root and sudo_works(), apt_available())
    if action in ("apt-get", "sudo-apt-get"):
        install_with_apt(action, run)
    elif action == "give-up":
        raise DataError(why)
    return action


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        ensure()
    except Exception as e:
        from fashionbench.errors import FashionbenchError  # imported by then: only the slow path raises it

        if not isinstance(e, FashionbenchError):
            raise
        print(f"fashionbench: error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
