"""Downloads against a local HTTP server: fallback, checksums, interrupted transfers."""

from __future__ import annotations

import collections
import gzip
import hashlib
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from dlscratch.data import DataNotFoundError, load_mnist, locate_dataset
from dlscratch.data import download as dl
from dlscratch.data.download import Checksum, ChecksumError, DownloadError, download_file

NAME = "train-labels-idx1-ubyte.gz"


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_set() -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Gzipped IDX bytes of a 20/10-image dataset, and its arrays."""
    rng = np.random.default_rng(42)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(10)[::-1]).astype(np.uint8),
    }
    files = {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}
    return files, arrays


def raw_md5(gz: bytes) -> str:
    return hashlib.md5(gzip.decompress(gz)).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """Routes: /good/, /missing/ (404), /bad/ (wrong content), /notgz/, /cut/ (always half),
    /cut-once/ (half on the first request per file), /slow/ (sleeps first)."""

    def do_GET(self):  # noqa: N802 (http.server API)
        mirror = self.server.mirror
        _, kind, name = self.path.split("/", 2)
        mirror.hits[(kind, name)] += 1
        body = mirror.files.get(name)
        if kind == "missing" or body is None:
            self.send_error(404, "Not Found")
            return
        if kind == "bad":
            body = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
        elif kind == "notgz":
            body = b"<html>not the file</html>"
        elif kind == "slow":
            time.sleep(0.6)
        cut = kind == "cut" or (kind == "cut-once" and mirror.hits[(kind, name)] == 1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Mirror:
    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.hits: collections.Counter = collections.Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.mirror = self
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{kind}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tiny():
    return tiny_set()


@pytest.fixture
def mirror(tiny):
    server = Mirror(tiny[0])
    yield server
    server.close()


@pytest.fixture
def refused_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/"


def fetch(mirror_urls, dest, checksum=None, **kwargs):
    options = {"timeout": 2.0, "retries": 0, "backoff": 0.0, "progress": False, **kwargs}
    return download_file(NAME, dest, mirror_urls, checksum=checksum, **options)


def test_download_verifies_and_writes_the_file(tmp_path, mirror, tiny):
    checksum = Checksum(raw=raw_md5(tiny[0][NAME]))
    path = fetch([mirror.url("good")], tmp_path, checksum)
    assert path == tmp_path / NAME
    assert path.read_bytes() == tiny[0][NAME]
    assert [p.name for p in tmp_path.iterdir()] == [NAME]


def test_falls_back_past_refused_and_404_mirrors(tmp_path, mirror, tiny, refused_url):
    checksum = Checksum(raw=raw_md5(tiny[0][NAME]))
    urls = [refused_url, mirror.url("missing"), mirror.url("good")]
    path = fetch(urls, tmp_path, checksum, retries=1)
    assert path.read_bytes() == tiny[0][NAME]
    assert mirror.hits[("missing", NAME)] == 1  # a 404 is not retried
    assert mirror.hits[("good", NAME)] == 1


def test_every_mirror_failing_lists_each_failure(tmp_path, mirror, refused_url):
    with pytest.raises(DownloadError) as info:
        fetch([refused_url, mirror.url("missing")], tmp_path, retries=1)
    message = str(info.value)
    assert refused_url + NAME in message and "unreachable" in message
    assert message.count(refused_url + NAME) == 1 and "(2 attempts)" in message
    assert "HTTP 404" in message
    assert len(info.value.failures) == 3  # refused twice (one retry), 404 once
    assert not list(tmp_path.iterdir())


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path, mirror, tiny):
    checksum = Checksum(raw=raw_md5(tiny[0][NAME]))
    with pytest.raises(ChecksumError, match="MD5 of decompressed data is .*, expected"):
        fetch([mirror.url("bad")], tmp_path, checksum, retries=3)
    assert mirror.hits[("bad", NAME)] == 1  # wrong content is not retried
    assert not list(tmp_path.iterdir())


def test_bad_mirror_then_good_mirror(tmp_path, mirror, tiny):
    checksum = Checksum(raw=raw_md5(tiny[0][NAME]))
    path = fetch([mirror.url("bad"), mirror.url("good")], tmp_path, checksum)
    assert path.read_bytes() == tiny[0][NAME]


def test_non_gzip_content_is_rejected(tmp_path, mirror):
    with pytest.raises(ChecksumError, match="not a valid gzip file"):
        fetch([mirror.url("notgz")], tmp_path)
    assert not list(tmp_path.iterdir())


def test_compressed_md5_is_checked_when_no_raw_md5_is_known(tmp_path, mirror, tiny):
    good = hashlib.md5(tiny[0][NAME]).hexdigest()
    assert fetch([mirror.url("good")], tmp_path, Checksum(gz=good)).is_file()
    (tmp_path / NAME).unlink()
    with pytest.raises(ChecksumError, match=f"MD5 is {good}, expected {'f' * 32}"):
        fetch([mirror.url("good")], tmp_path, Checksum(gz="f" * 32))
    assert not list(tmp_path.iterdir())


def test_interrupted_download_leaves_no_file(tmp_path, mirror):
    with pytest.raises(DownloadError, match="connection closed early"):
        fetch([mirror.url("cut")], tmp_path, retries=1)
    assert mirror.hits[("cut", NAME)] == 2
    assert not list(tmp_path.iterdir())


def test_interrupted_download_is_retried(tmp_path, mirror, tiny):
    path = fetch(
        [mirror.url("cut-once")], tmp_path, Checksum(raw=raw_md5(tiny[0][NAME])), retries=1
    )
    assert path.read_bytes() == tiny[0][NAME]
    assert mirror.hits[("cut-once", NAME)] == 2
    assert [p.name for p in tmp_path.iterdir()] == [NAME]


def test_timeout_is_reported(tmp_path, mirror):
    with pytest.raises(DownloadError, match="timed out"):
        fetch([mirror.url("slow")], tmp_path, timeout=0.2)
    assert not list(tmp_path.iterdir())


def test_download_dataset_fetches_only_missing_files(tmp_path, mirror, tiny):
    (tmp_path / NAME).write_bytes(tiny[0][NAME])
    dl.download_dataset(
        "mnist", tmp_path, mirrors=[mirror.url("good")], checksums={}, retries=0, progress=False
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(tiny[0])
    assert mirror.hits[("good", NAME)] == 0
    assert mirror.hits[("good", "t10k-images-idx3-ubyte.gz")] == 1


@pytest.fixture
def download_env(monkeypatch, tmp_path, mirror, tiny):
    """load_mnist set up to download the tiny set from the local mirror into tmp cache."""
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLSCRATCH_DATA", raising=False)
    monkeypatch.delenv("DLSCRATCH_OFFLINE", raising=False)
    monkeypatch.setitem(dl.MIRRORS, "mnist", [mirror.url("missing"), mirror.url("good")])
    monkeypatch.setitem(
        dl.CHECKSUMS, "mnist", {name: Checksum(raw=raw_md5(b)) for name, b in tiny[0].items()}
    )


def test_load_mnist_downloads_into_the_cache(download_env, tmp_path, tiny, mirror):
    (x, t), (x_test, t_test) = load_mnist(normalize=False, flatten=False)
    arrays = tiny[1]
    np.testing.assert_array_equal(x[:, 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(t_test, arrays["t10k-labels-idx1-ubyte.gz"])
    folder = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(tiny[0])
    assert locate_dataset().found_in == "cache"
    load_mnist()
    assert mirror.hits[("good", NAME)] == 1  # not downloaded again


def test_load_mnist_download_failure_lists_places_and_mirrors(
    download_env, monkeypatch, tmp_path, mirror
):
    monkeypatch.setitem(dl.MIRRORS, "mnist", [mirror.url("missing")])
    with pytest.raises(DataNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert "HTTP 404" in message and mirror.url("missing") in message
    assert str(tmp_path / "cache" / "mnist") in message
    assert "data_dir=" in message
    assert not (tmp_path / "cache" / "mnist").exists()  # no empty folder left behind


def test_load_mnist_with_bad_mirror_content_raises_checksum_error(
    download_env, monkeypatch, mirror
):
    monkeypatch.setitem(dl.MIRRORS, "mnist", [mirror.url("bad")])
    with pytest.raises(ChecksumError):
        load_mnist()


def test_offline_env_var_blocks_downloads(download_env, monkeypatch, mirror):
    monkeypatch.setenv("DLSCRATCH_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="disabled by DLSCRATCH_OFFLINE"):
        load_mnist()
    assert not mirror.hits
