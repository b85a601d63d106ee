"""skface's import graph, read from the source: circles and imports that run up a layer (JSON out).

Every ``import`` and ``from ... import`` in every module counts, those inside
functions too: an import moved into a function to dodge a circle is still a
circle in the design. ``python bench/imports.py`` prints one JSON object;
``tests/test_layers.py`` asserts it is clean.
"""

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "skface"

# From the bottom up; a module may import only from its own layer or one below.
# (The package's __init__ files re-export their modules' names and sit at their
# package's layer; skface/__init__.py, lazy, and __main__ sit on top.)
LAYERS = [
    ["skface._warnings", "skface._params", "skface.nn", "skface.metrics"],
    ["skface._version", "skface._registry", "skface._validation", "skface._plugins",
     "skface._device", "skface._atomic", "skface._command"],
    ["skface.datasets", "skface.preprocessing", "skface.backbones", "skface.plotting"],
    ["skface.models"],
    # Model files name classes by checked strings, so _persist never imports the
    # estimators; parallel's embedding jobs load model files, the estimators'
    # fits use parallel's thread rule and data-parallel glue.
    ["skface._persist"],
    # The face-api weights (download, checks, decoding): below the detectors and
    # estimators built on them, above the safetensors writer they use.
    ["skface.pretrained._tfjs", "skface.pretrained._faceapi"],
    ["skface.parallel"],
    ["skface.estimators"],
    ["skface.align"],
    # Registered pretrained models: converted weights, estimators and aligners together.
    ["skface.pretrained"],
    ["skface.train", "skface.demo"],
    ["skface.cli"],
    ["skface", "skface.__main__"],
]


def modules(root=ROOT):
    """``{dotted name: path}`` of every module under ``root`` (a package's is its __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods):
    """``{module: set of skface modules it imports}``, static, functions included."""
    edges = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            # The deepest module named: "from . import x" imports skface.pkg.x.
            for candidate in candidates:
                if candidate in mods and candidate != name:
                    found.add(candidate)
        edges[name] = found
    return edges


def circles(edges):
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(groups)


def layer_of(module, layers=LAYERS):
    """The index of the layer ``module`` belongs to (its longest listed prefix)."""
    best, level = -1, None
    for i, members in enumerate(layers):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best:
                best, level = len(member), i
    return level


def upward(edges, layers=LAYERS):
    """``[(importer, imported)]`` where the imported module sits in a higher layer."""
    out = []
    for importer, targets in sorted(edges.items()):
        for target in sorted(targets):
            if layer_of(target, layers) > layer_of(importer, layers):
                out.append((importer, target))
    return out


def report():
    mods = modules()
    edges = imports(mods)
    return {
        "bench": "imports",
        "modules": len(mods),
        "imports": sum(len(v) for v in edges.values()),
        "unlayered": sorted(m for m in mods if layer_of(m) is None),
        "circles": circles(edges),
        "upward": [f"{a} -> {b}" for a, b in upward(edges)],
        "layers": [" ".join(layer) for layer in LAYERS],
    }


if __name__ == "__main__":
    print(json.dumps(report(), indent=1))
