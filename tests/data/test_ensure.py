"""`make run`'s data step: the decision table, the apt-get runner (commands faked), the fast path."""

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_idx_folder
from fashionbench.data import ensure, sources
from fashionbench.errors import DataError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure_data.py"
INSTALL = ["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]
UPDATE = ["apt-get", "update", "-qq"]

# have_local, download_ok, is_root, sudo_ok, apt_available -> action, for every input not found locally
# and not downloadable (with a local copy or a download, nothing else matters).
STUCK = {
    (True, True, True): "apt-get",
    (True, False, True): "apt-get",
    (False, True, True): "sudo-apt-get",
    (False, False, True): "give-up",
    (True, True, False): "give-up",
    (True, False, False): "give-up",
    (False, True, False): "give-up",
    (False, False, False): "give-up",
}


@pytest.mark.parametrize("rest", list(itertools.product([False, True], repeat=3)))
@pytest.mark.parametrize("download_ok", [False, True])
def test_a_local_copy_or_a_download_is_enough(download_ok, rest):
    assert ensure.plan(True, download_ok, *rest) == "use-local"
    assert ensure.plan(False, True, *rest) == "use-download"


@pytest.mark.parametrize(("rest", "action"), list(STUCK.items()))
def test_apt_only_where_this_user_may_run_it(rest, action):
    assert ensure.plan(False, False, *rest) == action


def test_apt_commands():
    assert ensure.apt_commands("apt-get") == (INSTALL, UPDATE)
    assert ensure.apt_commands("sudo-apt-get") == (["sudo", "-n", *INSTALL], ["sudo", "-n", *UPDATE])


def test_locations_match_sources(monkeypatch, tmp_path):
    # ensure.py copies them to stay import-free; this keeps the copies honest.
    assert ensure.STEMS == tuple(sources.SHA256) == tuple(sources.PARTS.values())
    assert ensure.SYSTEM_DIR == sources.SYSTEM_DIR
    assert ensure.cache_dir() == sources.cache_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ensure.cache_dir() == sources.cache_dir()


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No copy anywhere and no download; fake commands that 'install' the package when asked."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FASHIONBENCH_DATA", raising=False)
    system = tmp_path / "system"
    monkeypatch.setattr(sources, "SYSTEM_DIR", system)
    monkeypatch.setattr(ensure, "SYSTEM_DIR", system)

    def no_download(*a, **k):
        raise DataError("could not download train-images-idx3-ubyte.gz: no network. " + sources.OFFLINE_HELP)

    monkeypatch.setattr(sources, "download", no_download)
    monkeypatch.setattr(ensure, "apt_available", lambda: True)
    monkeypatch.setattr(ensure, "is_root", lambda: True)
    monkeypatch.setattr(ensure, "sudo_works", lambda: pytest.fail("root needs no sudo"))

    class Apt:
        def __init__(self, codes=()):
            self.codes, self.commands = list(codes), []

        def __call__(self, cmd):
            self.commands.append(cmd)
            code = self.codes.pop(0) if self.codes else 0
            if code == 0 and "install" in cmd:
                system.mkdir(exist_ok=True)
                write_idx_folder(system)
            return code

    return Apt


def test_root_installs_the_debian_package(offline, capsys):
    apt = offline()
    assert ensure.ensure(run=apt) == "apt-get"
    assert apt.commands == [INSTALL]  # package lists present: no `apt-get update`
    assert capsys.readouterr().out.splitlines() == [ensure.INSTALL_LINE]


def test_package_lists_are_refreshed_only_when_the_install_fails(offline):
    apt = offline(codes=[100])
    assert ensure.ensure(run=apt) == "apt-get"
    assert apt.commands == [INSTALL, UPDATE, INSTALL]


def test_sudo_without_password(offline, monkeypatch):
    monkeypatch.setattr(ensure, "is_root", lambda: False)
    monkeypatch.setattr(ensure, "sudo_works", lambda: True)
    apt = offline()
    assert ensure.ensure(run=apt) == "sudo-apt-get"
    assert apt.commands == [["sudo", "-n", *INSTALL]]


def test_failed_install_is_one_clear_error(offline):
    apt = offline(codes=[100, 0, 100])
    with pytest.raises(DataError, match=r"`apt-get install -y -q dataset-fashion-mnist` failed.*FASHIONBENCH_DATA"):
        ensure.ensure(run=apt)


def test_package_without_the_files(offline):
    with pytest.raises(DataError, match="is installed but .*system lacks the four files"):
        ensure.ensure(run=lambda cmd: 0)


@pytest.mark.parametrize("why", ["no sudo", "no apt"])
def test_elsewhere_main_prints_the_three_ways_and_exits_2(offline, monkeypatch, capsys, why):
    if why == "no sudo":
        monkeypatch.setattr(ensure, "is_root", lambda: False)
        monkeypatch.setattr(ensure, "sudo_works", lambda: False)
    else:
        monkeypatch.setattr(ensure, "apt_available", lambda: False)
    monkeypatch.setattr(ensure, "_run", lambda cmd: pytest.fail(f"ran {cmd}"))
    assert ensure.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fashionbench: error: could not download")
    assert "apt-get install dataset-fashion-mnist" in err[0] and "--data-dir" in err[0]


def test_a_download_needs_no_install(offline, monkeypatch):
    monkeypatch.setattr(sources, "download", lambda *a, **k: sources.cache_dir())
    assert ensure.ensure(run=lambda cmd: pytest.fail(f"ran {cmd}")) == "use-download"


def test_a_local_copy_needs_neither_download_nor_hashing(offline, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "download", lambda *a, **k: pytest.fail("downloaded although a copy exists"))
    monkeypatch.setattr(sources, "sha256", lambda data: pytest.fail("hashed a file"))
    for folder in (ensure.cache_dir(), sources.SYSTEM_DIR):
        folder.mkdir(parents=True)
        write_idx_folder(folder)
        assert ensure.ensure(run=lambda cmd: pytest.fail(f"ran {cmd}")) == "use-local"
        for path in folder.iterdir():
            path.unlink()


def test_an_incomplete_explicit_folder_is_reported_not_installed_over(offline, monkeypatch, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_idx_folder(folder)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv("FASHIONBENCH_DATA", str(folder))
    assert ensure.main() == 2
    assert "lacks train-images-idx3-ubyte" in capsys.readouterr().err


def test_the_script_is_fast_when_a_copy_exists(idx_folder):
    # Loading ensure.py by path must not import the package (torch alone takes seconds).
    env = {**os.environ, "FASHIONBENCH_DATA": str(idx_folder)}
    probe = (f"import runpy, sys; sys.argv = [{str(SCRIPT)!r}]\n"
             f"try:\n    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
             "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'fashionbench' in sys.modules)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "False", "False"], out.stderr
    assert time.perf_counter() - start < 5  # about 0.1 s; generous for a loaded 2-core machine
