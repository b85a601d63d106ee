"""Shared fixtures: seeds, an isolated cache, the shared real data, a local HTTP server."""

import functools
import hashlib
import http.server
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed_and_isolate(monkeypatch, tmp_path_factory):
    random.seed(0)
    np.random.seed(0)
    # Never read a user's mirror; cache decoded arrays in a per-session folder.
    monkeypatch.delenv("SKFACE_MIRROR", raising=False)
    monkeypatch.setenv("SKFACE_CACHE", str(tmp_path_factory.getbasetemp() / "skface_cache"))


@pytest.fixture(scope="session")
def shared_data():
    """The real face data (``../shared/data`` or ``$SKFACE_DATA``); skip when absent."""
    candidates = [os.environ.get("SKFACE_DATA"), SHARED_DATA]
    for cand in candidates:
        if cand and (Path(cand) / "README.md").exists():
            return Path(cand).resolve()
    pytest.skip("shared real face data not found (set SKFACE_DATA=../shared/data)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serve ``root`` on 127.0.0.1; yields ``(base_url, root)``."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(http_server, monkeypatch):
    """Serve files from a local mirror and pin the registry to their hashes.

    ``publish(path)`` copies a file the test built into the server's root and
    pins its registry entry (same file name) to that file's sha256, so the
    fetchers download it for real, checksum included.
    """
    from skface.datasets import _download

    base_url, root = http_server
    monkeypatch.setenv("SKFACE_MIRROR", base_url)
    registry = _download._registry()

    def publish(path, name=None, sha256=None):
        path = Path(path)
        name = name or path.name
        data = path.read_bytes()
        (root / name).write_bytes(data)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        url = registry.get(name, (None, f"https://example.invalid/{name}"))[1]
        monkeypatch.setitem(registry, name, (f"sha256:{digest}", url))
        return f"{base_url}/{name}"

    publish.root = root
    publish.base_url = base_url
    return publish


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests, restored after it.

    Their tiny tensors run many-fold slower under OpenMP oversubscription on
    shared, busy cores, and one thread gives the same sums in every process.
    """
    from skface.parallel import torch_threads

    with torch_threads(1):
        yield
