"""The documentation builds with Sphinx, offline and without a single warning.

One build (``python -m sphinx -W --keep-going -b html docs <tmp>``) is shared
by the tests of this module; it takes about 20 s on one CPU thread. The
output goes to a temporary folder, never into ``docs/``.
"""

import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from skface._registry import estimator_names

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_TIMEOUT_S = 300

ESTIMATORS = estimator_names("skface.estimators")
# Public modules whose every documented name must have an entry in the API
# reference. UPPER_CASE constants are documented only when they carry a
# ``#:`` doc comment, so they are not required here.
API_MODULES = [
    "skface.align",
    "skface.backbones",
    "skface.datasets",
    "skface.demo",
    "skface.estimators",
    "skface.metrics",
    "skface.nn",
    "skface.nn.augment",
    "skface.nn.contrast",
    "skface.nn.conv_dae",
    "skface.nn.faceapi_age_gender",
    "skface.nn.faceapi_landmarks",
    "skface.nn.faceapi_resnet",
    "skface.nn.faceapi_tiny_detector",
    "skface.nn.heads",
    "skface.nn.keypoints",
    "skface.nn.losses",
    "skface.nn.mtcnn",
    "skface.nn.nn4_small2",
    "skface.nn.small_cnn",
    "skface.nn.trunk",
    "skface.models",
    "skface.parallel",
    "skface.train",
    "skface.plotting",
    "skface.preprocessing",
]


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    cmd = [
        sys.executable, "-m", "sphinx",
        "-W", "--keep-going",         # every warning fails the build, all of them reported
        "-b", "html",
        "-d", str(out / "doctrees"),  # nothing is written under docs/
        str(DOCS), str(out / "html"),
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"sphinx-build took more than {BUILD_TIMEOUT_S} s: {exc}")
    assert proc.returncode == 0, (
        f"sphinx-build failed (exit {proc.returncode}); warnings are errors.\n"
        f"--- stderr ---\n{proc.stderr[-8000:]}\n--- stdout (tail) ---\n{proc.stdout[-2000:]}"
    )
    return out / "html"


def _text(path):
    """Visible text of an HTML page, whitespace collapsed, typographic quotes made plain."""
    raw = re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8"))
    text = html.unescape(raw)
    for fancy, plain in {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                         "\u2013": "--", "\u2014": "---", "\u2026": "..."}.items():
        text = text.replace(fancy, plain)
    return " ".join(text.split())


def test_docs_build_without_warnings(html_dir):
    for page in [
        "index.html",
        "plugins.html",
        "user_guide/estimators/index.html",
        "user_guide/estimators/dbn.html",
        "user_guide/estimators/sdae.html",
        "user_guide/estimators/keypoints.html",
        "user_guide/estimators/embedding.html",
        "user_guide/datasets/index.html",
        "api/index.html",
        "api/datasets.html",
        "api/metrics.html",
        "api/plotting.html",
        "api/backbones.html",
        "api/nn.html",
        "genindex.html",
        "search.html",
    ]:
        assert (html_dir / page).is_file(), f"{page} was not built"
    page = html_dir / "api" / "skface.estimators.CenterLossEmbedder.html"
    assert page.is_file()
    content = page.read_text(encoding="utf-8")
    assert 'id="skface.estimators.CenterLossEmbedder"' in content
    assert 'id="skface.estimators.CenterLossEmbedder.transform"' in content
    # numpydoc rendered the sections (not left as raw "Parameters\n----------").
    assert "----------" not in _text(page)
    assert "lambda_center" in _text(page)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_estimator_has_an_api_page(html_dir, name):
    page = html_dir / "api" / f"skface.estimators.{name}.html"
    assert page.is_file(), f"add docs/api/skface.estimators.{name}.rst"
    assert f'id="skface.estimators.{name}"' in page.read_text(encoding="utf-8")


def test_public_api_is_documented(html_dir):
    anchors = set()
    for page in html_dir.rglob("*.html"):
        anchors.update(re.findall(r'id="(skface\.[\w.]+)"', page.read_text(encoding="utf-8")))
    missing = []
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name.isupper() and "_" in name:  # constants: see API_MODULES
                continue
            if f"{module_name}.{name}" not in anchors:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names without an entry in docs/api/: {missing}"


def _builtin_datasets():
    """Names and fetchers of the datasets skface itself declares (plugins left out)."""
    from skface.datasets import get_fetcher, list_datasets

    return {
        name: get_fetcher(name)
        for name in list_datasets()
        if getattr(get_fetcher(name), "__module__", "").startswith("skface.")
    }


def test_every_builtin_dataset_has_a_page_with_its_citation(html_dir):
    datasets = _builtin_datasets()
    assert len(datasets) >= 10
    for name, fetcher in datasets.items():
        page = html_dir / "user_guide" / "datasets" / f"{name}.html"
        assert page.is_file(), f"add docs/user_guide/datasets/{name}.rst"
        text = _text(page)
        citation = " ".join(fetcher.dataset_info.citation.split())
        assert citation in text, f"{name}: the page does not quote the fetcher's citation"
        assert "Terms of use" in text
        assert fetcher.__name__ in text
