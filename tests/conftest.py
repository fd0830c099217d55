"""Shared fixtures: tiny synthetic MNIST-format data that a model can learn in a second."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from fashionbench import FASHION_CLASSES
from fashionbench.data.idx import write_idx
from fashionbench.data.sources import PARTS, Dataset
from fashionbench.errors import DataError
from fashionbench.layout import PROBE_ENV
from fashionbench.serve.local import free_port

# --precision auto's timed layout probe would make a test's precision depend on machine noise (and
# write to the user's cache); tests/test_layout.py turns it on where it is the subject. Set in the
# environment so that commands the tests start inherit it.
os.environ.setdefault(PROBE_ENV, "0")

# Under pytest-xdist (`make test` runs two workers) each worker computes on one thread, and so do the
# commands it starts: two 2-thread torch processes on 2 cores spin against each other (about 8x slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS


def synthetic_arrays(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright 8x8 square at its own spot on a noisy background (balanced labels)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + 9 * (k // 4), 2 + 6 * (k % 4)
        images[i, r:r + 8, c:c + 8] = rng.integers(180, 256)
    return images, labels.astype(np.uint8)


def make_dataset(n_train: int = 600, n_test: int = 200, seed: int = 0) -> Dataset:
    tx, ty = synthetic_arrays(n_train, seed)
    vx, vy = synthetic_arrays(n_test, seed + 1)
    return Dataset(torch.from_numpy(tx), torch.from_numpy(ty.astype(np.int64)),
                   torch.from_numpy(vx), torch.from_numpy(vy.astype(np.int64)),
                   class_names=list(FASHION_CLASSES), name="synthetic", source="test fixture")


def write_idx_folder(folder, n_train: int = 600, n_test: int = 200, seed: int = 0, gz: bool = True):
    """Write the four MNIST-format files of a synthetic dataset; return their paths by part."""
    tx, ty = synthetic_arrays(n_train, seed)
    vx, vy = synthetic_arrays(n_test, seed + 1)
    arrays = {"train_images": tx, "train_labels": ty, "test_images": vx, "test_labels": vy}
    paths = {}
    for part, stem in PARTS.items():
        paths[part] = folder / (stem + (".gz" if gz else ""))
        write_idx(paths[part], arrays[part])
    return paths


@pytest.fixture
def tiny_dataset() -> Dataset:
    return make_dataset()


@pytest.fixture
def idx_folder(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx_folder(folder)
    return folder


@pytest.fixture(scope="session")
def real_dataset():
    """The real Fashion-MNIST when this machine has it (CI installs Debian's package)."""
    from fashionbench.data.sources import load_dataset

    try:
        return load_dataset("fashion-mnist", allow_download=False)
    except DataError as e:
        pytest.skip(f"real Fashion-MNIST not available here ({e}); .ci/run installs it")


def _postgres_binaries() -> tuple[str, str] | None:
    import glob
    import shutil

    for folder in [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        initdb, pg_ctl = shutil.which("initdb", path=folder), shutil.which("pg_ctl", path=folder)
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return None


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server in a temporary folder on 127.0.0.1 and a free port, for this test session.

    As root, initdb refuses to run, so the server runs as the `postgres` user (Debian's package makes it)."""
    import os
    import pwd
    import subprocess

    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'fashionbench[postgres]')")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
    initdb, pg_ctl = binaries
    import shutil
    import tempfile
    from pathlib import Path

    # not under pytest's tmp folders: those are private to root, and the server may run as postgres
    folder = Path(tempfile.mkdtemp(prefix="fashionbench-postgres-"))
    data = folder / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user for the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
    r = run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    if r.returncode:
        pytest.fail(f"initdb failed: {r.stderr[-500:]}")
    r = run(pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
            f"-k {folder} -h 127.0.0.1 -p {port} -c fsync=off", "start")
    if r.returncode:
        pytest.fail(f"pg_ctl start failed: {r.stderr[-500:]} {(folder / 'server.log').read_text()[-500:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
