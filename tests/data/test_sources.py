"""The download path against a real HTTP server on 127.0.0.1 serving small files."""

import functools
import gzip
import hashlib
import http.server
import threading

import pytest

from fashionbench.data import sources
from fashionbench.errors import DataError
from conftest import write_idx_folder


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
