"""Builders of tiny dataset folders in the real LFW layout, and broken servers."""

import http.server
import socket
import threading

import numpy as np
import pytest

@pytest.fixture(autouse=True)
def _fresh_warn_once():
    """Each test sees the once-per-process warnings (UTKFace's skipped files) anew."""
    from skface import _warnings

    saved = set(_warnings._shown)
    _warnings._shown.clear()
    yield
    _warnings._shown.clear()
    _warnings._shown.update(saved)


# Three people: Alice has 3 images, Bob 2, Carol 1.
LFW_PEOPLE = {"Alice_Smith": 3, "Bob_Jones": 2, "Carol_White": 1}


def write_jpeg(path, rng, size=(250, 250)):
    """A random RGB JPEG of ``size`` = (height, width), skface's order."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def build_lfw(root, variant_dir="lfw-deepfunneled"):
    """Write an LFW folder (images, View 1 and View 2 files, gender lists) under ``root``."""
    rng = np.random.default_rng(0)
    lfw = root / "lfw"
    for person, count in LFW_PEOPLE.items():
        for i in range(1, count + 1):
            write_jpeg(lfw / variant_dir / person / f"{person}_{i:04d}.jpg", rng)
    (lfw / "peopleDevTrain.txt").write_text("2\nAlice_Smith\t3\nCarol_White\t1\n")
    (lfw / "peopleDevTest.txt").write_text("1\nBob_Jones\t2\n")
    (lfw / "pairsDevTrain.txt").write_text(
        "1\nAlice_Smith\t1\t2\nAlice_Smith\t3\tCarol_White\t1\n"
    )
    (lfw / "pairsDevTest.txt").write_text("1\nBob_Jones\t1\t2\nBob_Jones\t1\tAlice_Smith\t2\n")
    # View 2: 10 folds of 1 matched + 1 mismatched pair.
    folds = ["10\t1"]
    for k in range(10):
        folds.append(f"Alice_Smith\t{1 + k % 2}\t3")
        folds.append(f"Bob_Jones\t{1 + k % 2}\tCarol_White\t1")
    (lfw / "pairs.txt").write_text("\n".join(folds) + "\n")
    gender = lfw / "gender"
    gender.mkdir()
    # Carol_White_0001 is in both lists (conflict); Bob_Jones_0002 in neither.
    (gender / "male_names.txt").write_text("Bob_Jones_0001.jpg\nCarol_White_0001.jpg\n")
    (gender / "female_names.txt").write_text(
        "Alice_Smith_0001.jpg\nAlice_Smith_0002.jpg\nAlice_Smith_0003.jpg\nCarol_White_0001.jpg\n"
    )
    return root


@pytest.fixture
def lfw_home(tmp_path):
    return build_lfw(tmp_path / "home")


class _TruncatingHandler(http.server.BaseHTTPRequestHandler):
    """Promises 100,000 bytes, sends 100, and hangs up: a transfer broken off."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def truncating_server():
    """Base URL of a server on 127.0.0.1 whose every answer breaks off early."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TruncatingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url():
    """``http://127.0.0.1:<port>`` with nothing listening on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
