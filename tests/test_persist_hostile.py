"""Hostile and damaged model files: each refused with ModelFormatError, nothing it names run."""

import builtins
import copy
import importlib
import json
import os
import random
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import skface
import skface._persist as persist
from skface._persist import ModelFormatError
from skface.estimators import CenterLossEmbedder
from skface.nn.small_cnn import SmallConvNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

rng = np.random.RandomState(0)
X = rng.rand(32, 16, 16, 3).astype(np.float32)
LABELS = np.repeat(np.arange(4), 8)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, one_torch_thread):
    """A fitted model whose file holds a class in every role: estimator, net, module,
    criterion, optimizer, dataset, iterators, backbone (as a class) and a namedtuple."""
    est = CenterLossEmbedder(SmallConvNet, backbone_params={"width": 2}, embedding_dim=8,
                             max_epochs=1, batch_size=16, random_state=0).fit(X, LABELS)
    path = tmp_path_factory.mktemp("hostile") / "model.skface"
    est.save(path)
    return path, est.transform(X)


# -- raw file access ---------------------------------------------------------------------


def _read_raw(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _write_raw(path, header, body):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def _spec(path):
    header, _ = _read_raw(path)
    return json.loads(header["__metadata__"]["skface"])


def _with_spec(src, dst, spec):
    header, body = _read_raw(src)
    header["__metadata__"] = {"skface": json.dumps(spec)}
    _write_raw(dst, header, body)
    return dst


# -- where each role stands in a file ----------------------------------------------------


def _net(spec):
    return spec["estimator"]["fitted"]["net_"]["__net__"]


def _set_estimator(spec, bad):
    spec["estimator"] = {"class": bad, "params": {"argv": ["datasets"]}, "fitted": None}


def _set_net(spec, bad):
    _net(spec)["class"] = bad


def _net_param(name, wrap=lambda v: v):
    def setter(spec, bad):
        _net(spec)["params"][name] = wrap({"__class__": bad})
    return setter


def _estimator_param(name):
    def setter(spec, bad):
        spec["estimator"]["params"][name] = {"__class__": bad}
    return setter


def _set_namedtuple(spec, bad):
    spec["estimator"]["fitted"]["image_layout_"]["__namedtuple__"] = bad


ROLES = {
    "estimator": _set_estimator,
    "net": _set_net,
    "module": _net_param("module"),
    "optimizer": _net_param("optimizer"),
    "criterion": _net_param("criterion"),
    "dataset": _net_param("dataset"),
    "iterator": _net_param("iterator_train"),
    "callback": _net_param("callbacks", wrap=lambda v: [v]),
    "backbone": _estimator_param("backbone"),
    "net backbone": _net_param("module__backbone"),
    "__class__ param": _estimator_param("batch_size"),
    "namedtuple": _set_namedtuple,
}

# What a hostile file may name: functions, builtins, gadgets reached through an
# attribute chain, classes of the wrong role, a class imported into a module
# rather than defined there, a dotted qualname.
HOSTILE = [
    "skface.cli:main",
    "os:system",
    "subprocess:Popen",
    "builtins:eval",
    "skface._persist:os.system",
    "skface._persist:importlib.import_module",
    "torch.nn.functional:torch.load",
    "torch:save",
    "torch:load",
    "skface.cli:sys.exit",
    "skface.nn.rbm:cd_step",                       # a function in skface.nn
    "skface.nn.augment:random_flip",
    "torch.nn.modules.linear:Linear",              # a class on no list
    "skorch.callbacks.training:Checkpoint",        # a callback (never saved): writes files
    "skface.estimators:ConvSDAEFeatures",          # imported into skface.estimators
    "torch.optim:SGD",
    "torch.nn:MSELoss",
    "skface.nn:unroll",
    "skface.estimators._sdae:ConvSDAEFeatures.fit",  # dotted qualnames
    "torch.nn.modules.loss:MSELoss.forward",
    "skface.estimators._base:FaceNet.__init__",
    "hostile_probe:Probe",                         # a module that says when it is imported
    "hostile_probe:probe",
]


# The class each role legitimately takes in this model's file; any other class of
# the list is the wrong role there (an optimizer as an estimator, an estimator as
# a module...).
RIGHT = {
    "estimator": {"skface.estimators._sdae:ConvSDAEFeatures"},
    "net": {"skface.estimators._base:FaceNet"},
    "module": {"skface.nn.conv_dae:ConvDAEStack", "skface.nn.small_cnn:SmallConvNet"},
    "optimizer": {"torch.optim.sgd:SGD"},
    "criterion": {"torch.nn.modules.loss:MSELoss", "skface.nn.losses:SoftmaxCenterLoss"},
    "dataset": {"skorch.dataset:Dataset"},
    "iterator": {"skface.estimators._base:TensorBatches"},
    "backbone": {"skface.nn.small_cnn:SmallConvNet"},
    "net backbone": {"skface.nn.small_cnn:SmallConvNet"},
    "namedtuple": {"skface._validation:ImageLayout"},
}
CLASSES = sorted(set().union(*RIGHT.values()))


CASES = [(role, bad) for role in ROLES
         for bad in HOSTILE + [c for c in CLASSES if c not in RIGHT.get(role, ())]]


@pytest.fixture
def tripwires(monkeypatch, tmp_path):
    """Records every import through importlib and every call of the gadgets above."""
    import skface.cli
    import skface.nn.augment
    import skface.nn.rbm

    calls = []
    real_import = importlib.import_module

    def spy_import(name, *args, **kwargs):
        calls.append(("import", name))
        return real_import(name, *args, **kwargs)

    def tripwire(what):
        def called(*args, **kwargs):
            calls.append(("call", what))
            raise AssertionError(f"{what} was called by load")
        return called

    monkeypatch.setattr(importlib, "import_module", spy_import)
    for owner, name in [(os, "system"), (subprocess, "Popen"), (builtins, "eval"),
                        (torch, "save"), (torch, "load"), (sys, "exit"),
                        (skface.cli, "main"), (skface.nn.rbm, "cd_step"),
                        (skface.nn.augment, "random_flip")]:
        monkeypatch.setattr(owner, name, tripwire(f"{owner.__name__}.{name}"))
    # A module that records being imported, and a function that records being called.
    (tmp_path / "hostile_probe.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(tmp_path / "imported")!r}).write_text("imported")
        import torch
        class Probe(torch.nn.Module):
            pass
        def probe(*args, **kwargs):
            pathlib.Path({str(tmp_path / "called")!r}).write_text("called")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_probe", raising=False)
    yield calls
    assert "hostile_probe" not in sys.modules
    assert not (tmp_path / "imported").exists()
    assert not (tmp_path / "called").exists()


@pytest.mark.parametrize(("role", "bad"), CASES, ids=[f"{r}-{b}" for r, b in CASES])
def test_load_hostile_class_path_refused_before_any_import(model_file, tmp_path, tripwires,
                                                           role, bad):
    src, _ = model_file
    spec = _spec(src)
    ROLES[role](spec, bad)
    path = _with_spec(src, tmp_path / "evil.skface", spec)
    with pytest.raises(ModelFormatError) as info:
        persist.load(path, device="cpu")  # not skface.load: the package imports it lazily
    message = str(info.value)
    assert str(path) in message and repr(bad) in message
    assert "refusing to import" in message
    # Refused on the text alone: not one import through importlib, not one call.
    assert tripwires == []


def test_load_cli_main_file_fresh_process_never_imports_cli(model_file, tmp_path):
    src, _ = model_file
    spec = _spec(src)
    _set_estimator(spec, "skface.cli:main")
    path = _with_spec(src, tmp_path / "evil.skface", spec)
    code = textwrap.dedent(f"""
        import sys, skface
        try:
            skface.load({str(path)!r}, device="cpu")
        except skface.ModelFormatError as exc:
            print("refused:", exc)
        assert "skface.cli" not in sys.modules, "skface.cli was imported"
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused:") and "Data home" not in result.stdout


# -- what an allowed path must still be once imported ------------------------------------


def test_allow_list_every_entry_is_a_class_of_its_role_defined_there():
    for role in persist._ALLOWED:
        for path in persist._allowed(role):
            cls = persist._resolve(path, role, "test")
            assert isinstance(cls, type) and persist._class_path(cls) == path


@pytest.mark.parametrize(("entry", "match"), [
    ("hostile_probe:probe", "is not a class"),
    ("hostile_probe:Linear", "imported into hostile_probe"),
    ("hostile_probe:NotAModule", r"is not a backbone \(not a subclass of torch.nn.Module\)"),
])
def test_load_registered_backbone_checked_after_import_never_called(
        model_file, tmp_path, monkeypatch, entry, match):
    # A plugin's entry point is trusted to be imported, not to be anything: it
    # must still be a class, defined where it says, of the backbone role.
    (tmp_path / "hostile_probe.py").write_text(textwrap.dedent(f"""
        import pathlib
        from torch.nn import Linear
        class NotAModule:
            def __init__(self, *args, **kwargs):
                pathlib.Path({str(tmp_path / "called")!r}).write_text("called")
        def probe(*args, **kwargs):
            pathlib.Path({str(tmp_path / "called")!r}).write_text("called")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_probe", raising=False)
    real = persist._plugin_paths
    monkeypatch.setattr(persist, "_plugin_paths", lambda group: real(group) | {entry})
    src, _ = model_file
    spec = _spec(src)
    _estimator_param("backbone")(spec, entry)
    path = _with_spec(src, tmp_path / "plugin.skface", spec)
    with pytest.raises(ModelFormatError, match=match):
        skface.load(path, device="cpu")
    assert not (tmp_path / "called").exists()
    sys.modules.pop("hostile_probe", None)


def test_save_class_not_a_model_file_may_name_raises_at_save(tmp_path):
    class MyNet(SmallConvNet):
        pass

    est = CenterLossEmbedder(MyNet, backbone_params={"width": 2}, embedding_dim=8)
    with pytest.raises(TypeError, match=r"estimator\.backbone: cannot save the class"):
        est.save(tmp_path / "m.skface")
    assert not (tmp_path / "m.skface").exists()


# -- integrity ---------------------------------------------------------------------------


def _weight(header):
    return next(k for k, v in header.items()
                if k != "__metadata__" and v["dtype"] == "F32" and len(v["shape"]) == 2)


def test_load_flipped_bit_refused_naming_tensor(model_file, tmp_path):
    src, _ = model_file
    header, body = _read_raw(src)
    name = _weight(header)
    body = bytearray(body)
    body[header[name]["data_offsets"][0] + 3] ^= 0x40  # the top exponent bit of element 0
    path = tmp_path / "flip.skface"
    _write_raw(path, header, bytes(body))
    with pytest.raises(ModelFormatError, match=rf"{path}.*{name!r} is damaged"):
        skface.load(path, device="cpu")


def test_load_dtype_relabelled_refused_naming_tensor(model_file, tmp_path):
    src, _ = model_file
    header, body = _read_raw(src)
    name = _weight(header)
    header[name]["dtype"] = "I32"
    path = tmp_path / "relabel.skface"
    _write_raw(path, header, body)
    expected = rf"{path}.*{name!r} was saved as 'float32' but the file holds 'int32'"
    with pytest.raises(ModelFormatError, match=expected):
        skface.load(path, device="cpu")


def test_load_transposed_weight_refused_naming_tensor(model_file, tmp_path):
    src, _ = model_file
    header, body = _read_raw(src)
    name = next(k for k, v in header.items() if "/module_/" in k and len(v["shape"]) == 2
                and v["shape"][0] != v["shape"][1])
    header[name]["shape"] = header[name]["shape"][::-1]
    path = tmp_path / "transposed.skface"
    _write_raw(path, header, body)
    with pytest.raises(ModelFormatError, match=rf"{name!r} was saved with shape"):
        skface.load(path, device="cpu")
    # Its record rewritten to match as well: refused when the weights meet the model.
    spec = json.loads(header["__metadata__"]["skface"])
    spec["tensors"][name]["shape"] = header[name]["shape"]
    header["__metadata__"]["skface"] = json.dumps(spec)
    _write_raw(path, header, body)
    with pytest.raises(ModelFormatError, match=rf"{name!r} is float32 of shape .* needs float32"):
        skface.load(path, device="cpu")


def test_load_missing_and_extra_tensor_refused_naming_tensor(model_file, tmp_path):
    from safetensors.torch import save_file

    src, _ = model_file
    metadata, tensors = persist.read_safetensors(src)
    name = sorted(tensors)[-1]
    less = {k: v for k, v in tensors.items() if k != name}
    save_file(less, str(tmp_path / "less.skface"), metadata=metadata)
    with pytest.raises(ModelFormatError, match=rf"less\.skface.*{name!r} is missing"):
        skface.load(tmp_path / "less.skface", device="cpu")
    save_file(dict(tensors, extra=torch.zeros(3)), str(tmp_path / "more.skface"),
              metadata=metadata)
    with pytest.raises(ModelFormatError, match=r"more\.skface: tensors: tensor 'extra'"):
        skface.load(tmp_path / "more.skface", device="cpu")


# -- malformed headers -------------------------------------------------------------------


def _fitted(spec):
    return spec["estimator"]["fitted"]


def _deep(n):
    value = 1
    for _ in range(n):
        value = [value]
    return value


# mutation -> (what it does to the spec, the field the message must name)
MALFORMED = {
    "estimator as list": (lambda s: s.__setitem__("estimator", []), "estimator"),
    "params as list": (lambda s: s["estimator"].__setitem__("params", []), "estimator.params"),
    "fitted as list": (lambda s: s["estimator"].__setitem__("fitted", [1]), "estimator.fitted"),
    "params as string": (lambda s: s["estimator"].__setitem__("params", "x"),
                         "estimator.params"),
    "class as number": (lambda s: s["estimator"].__setitem__("class", 5), "estimator.class"),
    "estimator without class": (lambda s: s["estimator"].pop("class"), "estimator"),
    "net as list": (lambda s: _fitted(s).__setitem__("net_", {"__net__": []}),
                    "estimator.fitted.net_"),
    "net state as list": (lambda s: _net(s).__setitem__("state", []),
                          "estimator.fitted.net_.state"),
    "net state other part": (lambda s: _net(s)["state"].__setitem__("optimizer", {}),
                             "estimator.fitted.net_.state"),
    "history as dict": (lambda s: _net(s).__setitem__("history", {}),
                        "estimator.fitted.net_.history"),
    "unknown tag": (lambda s: _fitted(s).__setitem__("classes_", {"__pickle__": "gASV"}),
                    "estimator.fitted.classes_"),
    "two tags": (lambda s: _fitted(s).__setitem__("classes_", {"__tuple__": [],
                                                              "__dict__": {}}),
                 "estimator.fitted.classes_"),
    "tag with extra key": (lambda s: _fitted(s).__setitem__(
        "classes_", {"__tuple__": [], "call": "os:system"}), "estimator.fitted.classes_"),
    "negative array shape": (lambda s: _fitted(s).__setitem__(
        "classes_", {"__ndarray_list__": [1], "dtype": "<i8", "shape": [-1]}),
        "estimator.fitted.classes_"),
    "array shape not its size": (lambda s: _fitted(s).__setitem__(
        "extra_", {"__ndarray_list__": [1, 2, 3, 4], "dtype": "<i8", "shape": [3, 3]}),
        "estimator.fitted.extra_"),
    "array of objects": (lambda s: _fitted(s).__setitem__(
        "classes_", {"__ndarray_list__": [{"a": 1}], "dtype": "|O", "shape": [1]}),
        "estimator.fitted.classes_"),
    "bad dtype": (lambda s: _fitted(s).__setitem__("classes_", {"__dtype__": "not-a-dtype"}),
                  "estimator.fitted.classes_"),
    "tensor name as number": (lambda s: _fitted(s).__setitem__("centers_", {"__tensor__": 3}),
                              "estimator.fitted.centers_"),
    "tensor not in file": (lambda s: _fitted(s).__setitem__("centers_",
                                                            {"__tensor__": "nope"}),
                           "estimator.fitted.centers_"),
    "dunder attribute": (lambda s: _fitted(s).__setitem__("__class__", 1),
                         "estimator.fitted"),
    "attribute hiding a method": (lambda s: _fitted(s).__setitem__("transform", 1),
                                  "estimator.fitted.transform"),
    "attribute name not a name": (lambda s: _fitted(s).__setitem__("a b", 1),
                                  "estimator.fitted"),
    "unknown parameter": (lambda s: s["estimator"]["params"].__setitem__("evil", 1),
                          "estimator"),
    "parameter of wrong type": (lambda s: _net(s)["params"].__setitem__(
        "module__embedding_dim", "eight"), "estimator.fitted.net_"),
    "wrong criterion size": (lambda s: _net(s)["params"].__setitem__(
        "criterion__n_features", 3), "estimator.fitted.net_"),
    "deep nesting": (lambda s: s["estimator"]["params"].__setitem__("batch_size", _deep(500)),
                     "estimator.params.batch_size"),
    "format version as text": (lambda s: s.__setitem__("format_version", "2"), "format"),
    "format version as bool": (lambda s: s.__setitem__("format_version", True), "format"),
    "format version 0": (lambda s: s.__setitem__("format_version", 0), "format"),
    "tensor records as list": (lambda s: s.__setitem__("tensors", []), "tensors"),
    "tensor record incomplete": (lambda s: next(iter(s["tensors"].values())).pop("sha256"),
                                 "tensors."),
    "unknown top-level key": (lambda s: s.__setitem__("hook", "os:system"), "header"),
    "namedtuple fields as list": (lambda s: _fitted(s)["image_layout_"].__setitem__(
        "fields", []), "estimator.fitted.image_layout_"),
    "namedtuple unknown field": (lambda s: _fitted(s)["image_layout_"]["fields"].__setitem__(
        "evil", 1), "estimator.fitted.image_layout_"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_malformed_header_model_format_error_names_file_and_field(model_file, tmp_path,
                                                                       case):
    src, _ = model_file
    spec = _spec(src)
    mutate, field = MALFORMED[case]
    mutate(spec)
    path = _with_spec(src, tmp_path / "bad.skface", spec)
    with pytest.raises(ModelFormatError) as info:
        skface.load(path, device="cpu")
    assert str(info.value).startswith(f"{path}") and field in str(info.value), str(info.value)


def test_load_damaged_json_and_deep_json_model_format_error(model_file, tmp_path):
    src, _ = model_file
    header, body = _read_raw(src)
    for text in ("{not json", "[" * 100_000 + "]" * 100_000, "null", "[]"):
        header["__metadata__"]["skface"] = text
        _write_raw(tmp_path / "bad.skface", header, body)
        with pytest.raises(ModelFormatError, match="bad.skface"):
            skface.load(tmp_path / "bad.skface", device="cpu")


def test_load_impossible_shape_in_safetensors_header_model_format_error(model_file, tmp_path):
    src, _ = model_file
    header, body = _read_raw(src)
    name = _weight(header)
    header[name]["shape"] = [10 ** 6, 10 ** 6]
    _write_raw(tmp_path / "bad.skface", header, body)
    with pytest.raises(ModelFormatError, match="bad.skface is not an skface model file"):
        skface.load(tmp_path / "bad.skface", device="cpu")


def _random_json(r):
    return r.choice([None, True, -1, 2 ** 70, 1.5e308, "x", "skface.cli:main", [], {}, [[1]],
                     {"__class__": "os:system"}, {"__tuple__": [1]}, {"__dict__": {}}])


def _nodes(node, out, parent=None, key=None):
    out.append((parent, key))
    if isinstance(node, dict):
        for k, v in node.items():
            _nodes(v, out, node, k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _nodes(v, out, node, i)
    return out


def test_load_random_header_mutations_only_model_format_error(model_file, tmp_path):
    # 150 random single-node mutations of a real header: each file loads or is
    # refused with ModelFormatError naming it, never another exception.
    src, expected = model_file
    spec = _spec(src)
    nodes = [n for n in _nodes(spec, []) if n[0] is not None]
    r = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(150):
        mutated = copy.deepcopy(spec)
        parent, key = r.choice(_nodes(mutated, [])[1:])
        if isinstance(parent, dict) and r.random() < 0.2:
            del parent[key]
        else:
            parent[key] = _random_json(r)
        path = _with_spec(src, tmp_path / f"fuzz{i}.skface", mutated)
        try:
            skface.load(path, device="cpu")
            outcomes["loaded"] += 1
        except ModelFormatError as exc:
            assert str(path) in str(exc)
            outcomes["refused"] += 1
    assert len(nodes) > 100 and outcomes["refused"] > 100, outcomes


def test_load_unchanged_file_still_loads_identical(model_file):
    src, expected = model_file
    np.testing.assert_array_equal(skface.load(src, device="cpu").transform(X), expected)
