"""skface's imports run one way: no circles, nothing imported from a higher layer."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "imports.py"


def _graph_module():
    spec = importlib.util.spec_from_file_location("_skface_bench_imports", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


graph = _graph_module()


def test_import_graph_every_module_has_a_layer():
    assert graph.report()["unlayered"] == []


def test_import_graph_no_circles():
    assert graph.report()["circles"] == []


def test_import_graph_no_import_from_a_higher_layer():
    assert graph.report()["upward"] == []


def test_import_graph_finds_circle_and_upward_import_in_toy_package(tmp_path):
    # The walker itself: a function-level import still counts.
    pkg = tmp_path / "skface"
    (pkg / "nn").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nn" / "__init__.py").write_text("")
    (pkg / "nn" / "a.py").write_text("def f():\n    from ..cli import main\n")
    (pkg / "cli.py").write_text("from .nn import a\n")
    edges = graph.imports(graph.modules(pkg))
    assert edges["skface.nn.a"] == {"skface.cli"}
    assert graph.circles(edges) == [["skface.cli", "skface.nn.a"]]
    assert graph.upward(edges) == [("skface.nn.a", "skface.cli")]
