"""Every script in ``examples/`` runs with ``--quick`` on the real data and writes its figures.

The examples are discovered by glob, so a new ``examples/*.py`` is covered
without touching this file; files starting with ``_`` are not examples but
modules they import (``examples/_common.py``: the shared options, tables and
figure saving) and are skipped. Each runs in a subprocess, as a user would run
it, with ``--quick --out <tmp>`` and ``SKFACE_EXAMPLES_QUICK=1``,
``OMP_NUM_THREADS=1``; the figures it must write are the names in its
module-level ``FIGURES`` tuple (read without importing the script), and
every one must be a non-empty PNG. Quick mode is sized for CI: each example
takes well under a minute on one CPU thread, so this file is not marked
``slow``. The runtime of each example is printed (``pytest -s``) and
recorded as the ``runtime_s`` property (``--junitxml``).
"""

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A quick example that needs more than this is no longer quick: far above the
# ~15-40 s they take on one shared CPU core, to stay clear of machine noise.
RUN_TIMEOUT_S = 300


def _figures(path):
    """The ``FIGURES`` tuple a script declares at module level, or None."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "FIGURES" for target in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    return None


def _env(**extra):
    env = dict(os.environ)  # keeps the session's isolated SKFACE_CACHE (conftest)
    env.update(MPLBACKEND="Agg", PYTHONHASHSEED="0", **extra)
    return env


def test_examples_found():
    assert len(EXAMPLES) >= 6, EXAMPLES
    assert {p.name for p in EXAMPLES} >= {
        "dbn_reconstruction.py", "age_gender.py", "age_gender_gridsearch.py", "keypoints.py",
        "lfw_verification.py", "identification_svc.py",
    }
    # The shared helper module is imported by the examples, not run as one.
    assert (EXAMPLES_DIR / "_common.py").is_file()
    assert not any(p.name.startswith("_") for p in EXAMPLES), EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_documents_usage_and_common_options(path):
    """Module docstring with the full and quick commands; --quick, --data-home, --out; FIGURES."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{path.name} has no module docstring"
    assert f"python examples/{path.name}" in doc
    assert "--quick" in doc and "SKFACE_EXAMPLES_QUICK=1" in doc
    figures = _figures(path)
    assert figures and all(name.endswith(".png") for name in figures), (
        f"{path.name} must declare FIGURES = ('name.png', ...) at module level"
    )
    # --help needs no data and stops before torch is imported.
    proc = subprocess.run([sys.executable, str(path), "--help"], env=_env(),
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--quick", "--data-home", "--out"):
        assert option in proc.stdout, f"{path.name} --help lacks {option}"


@pytest.mark.realdata
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_quick_and_writes_figures(path, shared_data, tmp_path, record_property):
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"  # nothing may be written outside --out
    cwd.mkdir()
    env = _env(SKFACE_EXAMPLES_QUICK="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               SKFACE_DATA=str(shared_data))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(path), "--quick", "--out", str(out)],
        cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    elapsed = time.perf_counter() - start
    record_property("runtime_s", round(elapsed, 1))
    print(f"\n{path.name} --quick: {elapsed:.1f} s\n{proc.stdout}")
    assert proc.returncode == 0, (
        f"{path.name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    assert "| " in proc.stdout, f"{path.name} printed no results table"
    for name in _figures(path):
        figure = out / name
        assert figure.is_file(), f"{path.name} did not write {name}: {sorted(out.glob('*'))}"
        data = figure.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, f"{name} is not a real PNG"
    assert not any(cwd.iterdir()), f"{path.name} wrote outside --out: {list(cwd.iterdir())}"
