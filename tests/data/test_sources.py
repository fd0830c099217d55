"""The download path against a real HTTP server on 127.0.0.1 serving small files."""

import functools
import gzip
import hashlib
import http.server
import logging
import os
import shutil
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import write_idx_folder
from fashionbench.data import sources
from fashionbench.data.idx import read_bytes, write_idx
from fashionbench.errors import DataError
from fashionbench.utils import remove_stale_temporaries


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Serve good files under /good/ and broken ones under /bad/; checksums point at the good ones."""
    good = tmp_path / "www" / "good"
    good.mkdir(parents=True)
    paths = write_idx_folder(good)
    bad = tmp_path / "www" / "bad"
    bad.mkdir()
    digests = {}
    for path in paths.values():
        data = path.read_bytes()
        digests[path.name[:-3]] = hashlib.sha256(gzip.decompress(data)).hexdigest()
        (bad / path.name).write_bytes(data[: len(data) // 2])  # truncated gzip
    monkeypatch.setattr(sources, "SHA256", digests)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("FASHIONBENCH_DATA", raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DIR", tmp_path / "no-system-copy")
    yield base, cache / "fashionbench" / "fashion-mnist"
    server.shutdown()


def test_download_verifies_and_caches(served):
    base, cache = served
    ds = sources.load_dataset(mirrors=(f"{base}/good/",))
    assert ds.verified and "(download)" in ds.source
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in sources.SHA256)
    # Second load comes from the cache, no server needed.
    assert "(cache)" in sources.load_dataset(mirrors=("http://127.0.0.1:9/",)).source


def test_corrupt_mirror_falls_back_to_next(served):
    base, cache = served
    ds = sources.load_dataset(mirrors=(f"{base}/bad/", f"{base}/good/"))
    assert len(ds.train_images) == 600


def test_all_mirrors_bad_leaves_nothing_in_cache(served):
    base, cache = served
    with pytest.raises(DataError, match="could not download") as e:
        sources.load_dataset(mirrors=(f"{base}/bad/", f"{base}/missing/"))
    assert "--data-dir" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)
    assert not any(p.is_file() for p in cache.rglob("*")), "a bad download reached the cache"


def test_offline_message_lists_three_ways(served):
    with pytest.raises(DataError) as e:
        sources.load_dataset(mirrors=("http://127.0.0.1:9/",))
    msg = str(e.value)
    assert "FASHIONBENCH_DATA" in msg and "dataset-fashion-mnist" in msg and "fashionbench data download" in msg


def test_no_download_allowed(served):
    with pytest.raises(DataError, match="not found on this machine"):
        sources.load_dataset(allow_download=False)


def test_bad_cached_file_is_replaced(served):
    base, cache = served
    sources.download(mirrors=(f"{base}/good/",))
    victim = cache / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(b"garbage")
    sources.download(mirrors=(f"{base}/good/",))
    sources.load_verified(victim, "t10k-labels-idx1-ubyte")


def test_explicit_folder_missing_file(tmp_path):
    write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        sources.load_dataset(data_dir=tmp_path)


@pytest.mark.realdata
def test_real_data_checksums_and_counts(real_dataset):
    assert real_dataset.verified
    assert real_dataset.train_images.shape == (60000, 28, 28)
    assert real_dataset.test_images.shape == (10000, 28, 28)
    assert real_dataset.train_labels.bincount().tolist() == [6000] * 10
    assert real_dataset.test_labels.bincount().tolist() == [1000] * 10


def trust(folder, monkeypatch):
    """Make `folder`'s files the official Fashion-MNIST as far as the checksums go."""
    digests = {stem: sources.sha256(read_bytes(sources.find_file(folder, stem))) for stem in sources.SHA256}
    monkeypatch.setattr(sources, "SHA256", digests)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """An isolated machine: empty cache and Debian folder, no FASHIONBENCH_DATA, and a `good`
    synthetic copy that the checksums accept."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FASHIONBENCH_DATA", raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DIR", tmp_path / "system")
    good = tmp_path / "good"
    good.mkdir()
    write_idx_folder(good)
    trust(good, monkeypatch)
    return SimpleNamespace(cache=sources.cache_dir(), system=tmp_path / "system", good=good)


def corrupt(folder, stem="train-labels-idx1-ubyte"):
    """Replace one file by valid IDX content that is not the trusted one; return its path."""
    path = folder / f"{stem}.gz"
    write_idx(path, np.zeros(600, np.uint8))
    return path


def test_corrupt_cache_falls_back_to_the_system_copy_with_a_warning(machine, caplog):
    shutil.copytree(machine.good, machine.cache)
    shutil.copytree(machine.good, machine.system)
    bad = corrupt(machine.cache)
    with caplog.at_level(logging.WARNING, logger="fashionbench.data"):
        ds = sources.load_dataset(allow_download=False)
    assert "(system)" in ds.source and ds.verified
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(bad) in warning and "fashionbench data download" in warning and "delete it" in warning


def test_corrupt_system_copy_falls_back_to_download(served, monkeypatch):
    base, cache = served
    system = sources.SYSTEM_DIR
    shutil.copytree(cache.parent.parent.parent / "www" / "good", system)
    corrupt(system, "t10k-images-idx3-ubyte")
    ds = sources.load_dataset(mirrors=(f"{base}/good/",))
    assert "(download)" in ds.source


def test_no_usable_copy_names_the_bad_files(machine):
    shutil.copytree(machine.good, machine.cache)
    bad = corrupt(machine.cache)
    with pytest.raises(DataError) as e:
        sources.load_dataset(allow_download=False)
    assert str(bad) in str(e.value) and "fashionbench data download" in str(e.value)
    with pytest.raises(DataError) as e:
        sources.load_dataset(mirrors=("http://127.0.0.1:9/",))
    assert str(bad) in str(e.value) and "could not download" in str(e.value)


def test_an_explicit_folder_does_not_fall_back(machine):
    shutil.copytree(machine.good, machine.system)
    folder = machine.good.parent / "mine"
    shutil.copytree(machine.good, folder)
    corrupt(folder)
    with pytest.raises(DataError, match="mine/train-labels-idx1-ubyte.gz: checksum mismatch"):
        sources.load_dataset(data_dir=folder)


def test_each_file_is_hashed_once_per_load(machine, monkeypatch):
    shutil.copytree(machine.good, machine.cache)
    calls = []
    real = sources.sha256
    monkeypatch.setattr(sources, "sha256", lambda data: calls.append(1) or real(data))
    assert "(cache)" in sources.load_dataset(allow_download=False).source
    assert len(calls) == 4


def test_find_local_copy_does_not_hash(machine, monkeypatch):
    shutil.copytree(machine.good, machine.system)
    monkeypatch.setattr(sources, "sha256", lambda data: pytest.fail("find_local_copy hashed a file"))
    assert sources.find_local_copy() == (machine.system, "system")
    assert sources.find_local_copy(machine.good) == (machine.good, "explicit")
    shutil.rmtree(machine.system)
    assert sources.find_local_copy() is None


def test_bad_raw_cached_file_is_set_aside(served):
    base, cache = served
    sources.download(mirrors=(f"{base}/good/",))
    raw = cache / "t10k-labels-idx1-ubyte"  # a raw file wins over the .gz: it must not shadow the new one
    raw.write_bytes(b"garbage")
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    sources.download(mirrors=(f"{base}/good/",))
    assert not raw.exists() and (cache / "t10k-labels-idx1-ubyte.bad").read_bytes() == b"garbage"
    assert "(cache)" in sources.load_dataset(allow_download=False).source


def make_temp(folder, name, age_s):
    path = folder / name
    path.write_bytes(b"partial")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_remove_stale_temporaries_keeps_fresh_ones_and_real_files(tmp_path):
    stale = make_temp(tmp_path, ".train-images-idx3-ubyte.gz.k2j3h4.tmp", 7200)
    fresh = make_temp(tmp_path, ".t10k-images-idx3-ubyte.gz.a8d7f6.tmp", 60)  # a download in progress
    old_data = make_temp(tmp_path, "train-images-idx3-ubyte.gz", 7200)
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists() and old_data.exists()
    assert remove_stale_temporaries(tmp_path, max_age_s=10) == [fresh]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_download_removes_stale_temporaries(served):
    base, cache = served
    cache.mkdir(parents=True)
    stale = make_temp(cache, ".train-labels-idx1-ubyte.gz.x1y2z3.tmp", 7200)
    sources.download(mirrors=(f"{base}/good/",))
    assert not stale.exists()


def test_loading_from_the_cache_removes_stale_temporaries(machine):
    shutil.copytree(machine.good, machine.cache)
    stale = make_temp(machine.cache, ".train-labels-idx1-ubyte.gz.x1y2z3.tmp", 7200)
    fresh = make_temp(machine.cache, ".train-images-idx3-ubyte.gz.q1w2e3.tmp", 5)
    sources.load_dataset(allow_download=False)
    assert not stale.exists() and fresh.exists()


def test_check_local_copies_checks_every_complete_copy(machine):
    shutil.copytree(machine.good, machine.cache)
    shutil.copytree(machine.good, machine.system)
    bad = corrupt(machine.cache)
    (machine.good / "t10k-labels-idx1-ubyte.gz").unlink()  # not a source: ignored
    results = sources.check_local_copies(None)
    assert len(results) == 8 and {p.parent for p, _ in results} == {machine.cache, machine.system}
    problems = {p: msg for p, msg in results if msg is not None}
    assert list(problems) == [bad] and "checksum mismatch" in problems[bad]


def test_check_local_copies_of_an_explicit_folder(machine):
    results = sources.check_local_copies(str(machine.good))
    assert [p.parent for p, _ in results] == [machine.good] * 4 and all(m is None for _, m in results)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_check_local_copies_refuses_a_missing_or_incomplete_folder(machine, monkeypatch, how):
    shutil.copytree(machine.good, machine.system)  # a good copy elsewhere must not hide the problem

    def check(folder):
        if how == "env":
            monkeypatch.setenv("FASHIONBENCH_DATA", str(folder))
            return sources.check_local_copies(None)
        return sources.check_local_copies(str(folder))

    option = "FASHIONBENCH_DATA" if how == "env" else "--data-dir"
    with pytest.raises(DataError, match=f"nowhere does not exist; check {option}"):
        check(machine.good.parent / "nowhere")
    (machine.good / "t10k-labels-idx1-ubyte.gz").unlink()
    (machine.good / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        check(machine.good)


def test_check_local_copies_with_no_copy_anywhere(machine):
    with pytest.raises(DataError, match="no copy of Fashion-MNIST found.*apt-get install dataset-fashion-mnist"):
        sources.check_local_copies(None)
