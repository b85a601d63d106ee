"""Sphinx configuration for the skface documentation.

Build (warnings are errors; the build needs no network access)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Document this checkout's skface, installed or not.
sys.path.insert(0, str(ROOT))
# autodoc imports torch and matplotlib: no display, and no thread pool to share.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import skface  # noqa: E402
from skface._registry import estimator_names  # noqa: E402

project = "skface"
author = "the skface developers"
copyright = "skface developers, BSD-3-Clause"
release = skface.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
# No intersphinx: the build must work offline. References to numpy,
# scikit-learn, torch or skorch objects render as plain literals.

exclude_patterns = ["_build"]
templates_path = []
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
today_fmt = "%Y-%m-%d"

# -- autodoc / autosummary / numpydoc ------------------------------------------
# Autosummary tables only (no stub generation into the source tree): every
# object is documented by an explicit autodoc directive in docs/api/.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
autoclass_content = "class"
# numpydoc renders the Parameters / Returns sections; members are listed by
# autodoc, so numpydoc must not add its own (toctree'd) member tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- HTML ------------------------------------------------------------------------
html_theme = "alabaster"  # built into Sphinx: no extra dependency
html_title = f"skface {release}"
html_static_path = []
html_theme_options = {
    "description": "Deep face models as scikit-learn estimators",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_show_sourcelink = False


# -- the estimators' pages, from skface's one list of them -------------------------
_PAGE = """{name}
{rule}

.. currentmodule:: skface.estimators

.. autoclass:: {name}
   :members:
"""


def write_estimator_pages(api_dir, names):
    """Write ``api_dir/estimators_list.rst`` and a page per estimator of ``names``.

    The estimators are those :mod:`skface._registry` lists for
    ``skface.estimators``: a new estimator gets its summary row and its page
    without editing the docs. Files are rewritten only when they change, so
    that Sphinx rebuilds nothing it need not. Returns the paths written or kept.
    """
    files = {
        api_dir / "estimators_list.rst": "".join([
            # Its own currentmodule: an included file does not see the includer's.
            ".. currentmodule:: skface.estimators\n\n",
            ".. autosummary::\n\n", *(f"   {n}\n" for n in names),
            "\n.. toctree::\n   :maxdepth: 1\n\n",
            *(f"   skface.estimators.{n}\n" for n in names),
        ]),
        **{api_dir / f"skface.estimators.{n}.rst": _PAGE.format(name=n, rule="=" * len(n))
           for n in names},
    }
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for stale in set(api_dir.glob("skface.estimators.*.rst")) - set(files):
        stale.unlink()  # an estimator no longer registered
    return sorted(files)


def _write_estimator_pages(app):
    write_estimator_pages(Path(app.srcdir) / "api", estimator_names("skface.estimators"))


# -- hooks -----------------------------------------------------------------------
def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated metadata-routing setters.

    ``set_fit_request`` and friends are created on every estimator class by
    scikit-learn; their docstrings point into scikit-learn's own docs.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("builder-inited", _write_estimator_pages)
    app.connect("autodoc-skip-member", _skip_member)
