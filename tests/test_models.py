"""Tests for skface.models: trained models registered by a third-party distribution."""

import functools
import hashlib
import http.server
import subprocess
import sys
import textwrap
import threading
import uuid

import numpy as np
import pytest

import skface
from skface import _plugins, cli, models
from skface.datasets import ChecksumError

MODEL_BYTES = b"not really a model, but any bytes do for fetch_model\n" * 50


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serve a folder on 127.0.0.1, counting requests (``base_url``, ``root``, ``requests``)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_CountingHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.root = root
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of this test's own: the suite-wide one would carry models between tests."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SKFACE_CACHE", str(folder))
    return folder


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a tiny distribution declaring ``[skface.models]`` entry points.

    ``install(code, {"name": "attribute"})`` writes a module holding ``code``
    and a ``<dist>.dist-info`` folder whose entry_points.txt names its
    attributes, on ``sys.path``; the plugin cache is cleared before and after.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def _install(code, entries):
        # A fresh module name each time: an earlier test's module may sit in sys.modules.
        module = f"skface_test_models_{uuid.uuid4().hex[:8]}"
        (site / f"{module}.py").write_text(textwrap.dedent(code))
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        lines = "".join(f"{name} = {value if ':' in value else f'{module}:{value}'}\n"
                        for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[skface.models]\n{lines}")
        monkeypatch.delitem(sys.modules, module, raising=False)
        _plugins.clear_cache()
        return module

    yield _install
    _plugins.clear_cache()


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _publish(server, name, data):
    (server.root / name).write_bytes(data)
    return f"{server.base_url}/{name}"


def _source_code(url, sha256, description="A tiny test model", extra=""):
    return f"""
        from skface.models import ModelSource

        TINY = ModelSource(url={url!r}, sha256={sha256!r}, description={description!r})
        {extra}
    """


@pytest.mark.network
def test_list_models_third_party_distribution_listed_without_download(install, server, cache):
    url = _publish(server, "tiny.skface", MODEL_BYTES)
    install(_source_code(url, _sha256(MODEL_BYTES), extra=f"""
        def as_dict():
            return {{"url": {url!r}, "sha256": {_sha256(MODEL_BYTES)!r},
                     "description": "From a dict", "filename": "other.skface"}}
    """), {"tiny": "TINY", "tiny_dict": "as_dict"})
    assert {"tiny", "tiny_dict"} <= set(models.list_models())
    info = models.get_model_info("tiny")
    assert (info.url, info.sha256, info.description, info.filename) == (
        url, _sha256(MODEL_BYTES), "A tiny test model", "tiny.skface")
    assert models.get_model_info("tiny_dict").filename == "other.skface"
    assert server.requests == []  # listing and describing download nothing
    assert not cache.exists()


@pytest.mark.network
def test_fetch_model_first_call_downloads_second_served_from_cache(install, server, cache):
    url = _publish(server, "tiny.skface", MODEL_BYTES)
    install(_source_code(url, _sha256(MODEL_BYTES)), {"tiny": "TINY"})
    path = models.fetch_model("tiny")
    assert path == cache / "models" / "tiny" / "tiny.skface"
    assert path.read_bytes() == MODEL_BYTES
    assert server.requests == ["/tiny.skface"]
    assert models.fetch_model("tiny") == path
    assert server.requests == ["/tiny.skface"]  # no second request


@pytest.mark.network
def test_fetch_model_tampered_file_raises_checksum_error_and_leaves_nothing(
    install, server, cache
):
    url = _publish(server, "tiny.skface", MODEL_BYTES + b"tampered")
    install(_source_code(url, _sha256(MODEL_BYTES)), {"tiny": "TINY"})
    with pytest.raises(ChecksumError, match="tiny.skface.*does not match"):
        models.fetch_model("tiny")
    assert server.requests == ["/tiny.skface"]
    assert [p for p in cache.rglob("*") if p.is_file()] == []


@pytest.mark.network
def test_fetch_model_mirror_set_downloads_from_mirror(install, server, cache, monkeypatch):
    _publish(server, "tiny.skface", MODEL_BYTES)
    install(_source_code("https://example.invalid/models/tiny.skface", _sha256(MODEL_BYTES)),
            {"tiny": "TINY"})
    monkeypatch.setenv("SKFACE_MIRROR", server.base_url + "/")
    assert models.fetch_model("tiny").read_bytes() == MODEL_BYTES
    assert server.requests == ["/tiny.skface"]


def test_fetch_model_local_path_verified_and_used_in_place(install, tmp_path, cache):
    local = tmp_path / "local.skface"
    local.write_bytes(MODEL_BYTES)
    install(f"""
        from skface.models import ModelSource

        LOCAL = ModelSource(path={str(local)!r}, sha256={_sha256(MODEL_BYTES)!r})
    """, {"local": "LOCAL"})
    assert models.fetch_model("local") == local
    local.write_bytes(MODEL_BYTES + b"changed")
    with pytest.raises(ChecksumError, match="local.*pinned"):
        models.fetch_model("local")
    assert local.exists()  # the user's file is reported, never deleted
    local.unlink()
    with pytest.raises(FileNotFoundError, match="not a file"):
        models.fetch_model("local")
    assert not cache.exists()


def test_fetch_model_unknown_name_lists_known_ones(install, cache):
    install(_source_code("https://example.invalid/a.skface", "0" * 64), {"alpha": "TINY"})
    with pytest.raises(models.UnknownModelError,
                       match=r"Unknown model 'nope'\. Available models: .*alpha.*skface\.models"):
        models.fetch_model("nope")
    # Both families of "not there", for skface.load's "a file or a name".
    assert issubclass(models.UnknownModelError, ValueError)
    assert issubclass(models.UnknownModelError, FileNotFoundError)


def test_list_models_broken_plugins_warn_naming_themselves(install, cache):
    module = install(_source_code("https://example.invalid/good.skface", "1" * 64, extra="""
        def raises():
            raise RuntimeError("boom")

        def not_a_source():
            return 42

        def bad_sha():
            return {"url": "https://example.invalid/x.skface", "sha256": "short"}
    """), {
        "good": "TINY",
        "missing_module": "skface_no_such_module_here:THING",
        "raises": "raises",
        "not_a_source": "not_a_source",
        "bad_sha": "bad_sha",
    })
    with pytest.warns(RuntimeWarning) as record:
        names = models.list_models()
    # skface's own models stay listed beside a third party's.
    assert names == sorted(["good", *models._BUILTIN])
    messages = [str(w.message) for w in record]
    assert any("model plugin 'missing_module'" in m and "failed to load" in m for m in messages)
    assert any("'raises'" in m and f"{module}:raises" in m and "boom" in m for m in messages)
    assert any("'not_a_source'" in m and "ModelSource" in m for m in messages)
    assert any("'bad_sha'" in m and "sha256" in m for m in messages)
    with pytest.raises(models.UnknownModelError, match="Available models: .*good"):
        models.get_model_info("raises")


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"sha256": "a" * 64}, "exactly one of url, path and build"),
        ({"sha256": "a" * 64, "url": "https://x/a", "path": "/a"}, "exactly one of url, path and build"),
        ({"sha256": "a" * 63, "url": "https://x/a.skface"}, "64 hex digits"),
        ({"sha256": "a" * 64, "url": "/local/a.skface"}, "http"),
        ({"sha256": "a" * 64, "url": "https://x/"}, "filename"),
        ({"sha256": "a" * 64, "url": "https://x/a", "filename": "../a"}, "filename"),
    ],
)
def test_model_source_invalid_fields_raise(fields, match):
    with pytest.raises(ValueError, match=match):
        models.ModelSource(**fields)


def test_model_source_sha256_prefix_and_case_normalised():
    source = models.ModelSource(url="https://x.org/m/a.skface?dl=1", sha256="sha256:" + "AB" * 32)
    assert source.sha256 == "ab" * 32
    assert source.filename == "a.skface"
    assert source() is source  # an entry point may name the instance itself


def test_import_skface_models_loads_neither_torch_nor_pooch():
    code = ("import sys, skface.models as m; m.list_models(); "
            "bad = [k for k in ('torch', 'pooch') if k in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.network
def test_cli_models_lists_source_sha256_cached_and_description(install, server, cache, capsys):
    url = _publish(server, "tiny.skface", MODEL_BYTES)
    install(_source_code(url, _sha256(MODEL_BYTES)), {"tiny": "TINY"})
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("tiny "))
    assert url in row and _sha256(MODEL_BYTES)[:12] in row and "A tiny test model" in row
    assert row.split()[3] == "no"
    models.fetch_model("tiny")
    cli.main(["models"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny "))
    assert row.split()[3] == "yes"


def _fitted_dbn():
    from skface.estimators import DBNReconstructor

    faces = np.random.RandomState(0).rand(20, 8, 8)
    dbn = DBNReconstructor(hidden_layer_sizes=(6, 2), pretrain_epochs=1, finetune_epochs=1,
                           random_state=0, device="cpu")
    return dbn.fit(faces), faces




@pytest.mark.network
def test_load_registered_name_downloads_and_gives_fitted_estimator(install, server, cache):
    dbn, faces = _fitted_dbn()
    saved = dbn.save(server.root / "dbn.skface")
    data = saved.read_bytes() if saved is not None else (server.root / "dbn.skface").read_bytes()
    install(_source_code(f"{server.base_url}/dbn.skface", _sha256(data)), {"tiny_dbn": "TINY"})
    loaded = skface.load("tiny_dbn", device="cpu")
    np.testing.assert_allclose(loaded.transform(faces), dbn.transform(faces), rtol=1e-5)
    assert server.requests == ["/dbn.skface"]
    skface.load("tiny_dbn", device="cpu")
    assert server.requests == ["/dbn.skface"]  # the second load is served from the cache


@pytest.mark.network
def test_load_registered_name_tampered_raises_checksum_error(install, server, cache):
    dbn, _ = _fitted_dbn()
    path = server.root / "dbn.skface"
    dbn.save(path)
    pinned = _sha256(path.read_bytes())
    path.write_bytes(path.read_bytes()[:-8])  # truncated on the server
    install(_source_code(f"{server.base_url}/dbn.skface", pinned), {"tiny_dbn": "TINY"})
    with pytest.raises(ChecksumError):
        skface.load("tiny_dbn")
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_load_unknown_name_lists_registered_models(install, cache):
    install(_source_code("https://example.invalid/a.skface", "0" * 64), {"alpha": "TINY"})
    with pytest.raises((ValueError, FileNotFoundError), match="alpha"):
        skface.load("no_such_model")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"url": "https://example.invalid/a.skface"}, "both url and known_hash"),
        ({"known_hash": "sha256:" + "0" * 64}, "both url and known_hash"),
        ({"url": "https://example.invalid/a.skface", "known_hash": "md5:" + "0" * 32}, "sha256"),
    ],
)
def test_download_unregistered_file_needs_url_and_sha256_pin(tmp_path, kwargs, match):
    from skface.datasets._download import download

    with pytest.raises(ValueError, match=match):
        download("a.skface", tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
