"""Save and load fitted estimators without pickle: a JSON spec plus safetensors weights."""

import hashlib
import importlib
import inspect
import json
import os
import re
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from ._registry import ESTIMATORS
from ._version import __version__
from ._warnings import warn_at_caller
from .backbones import _BUILTIN as _BUILTIN_BACKBONES
from .backbones import ENTRY_POINT_GROUP as _BACKBONE_GROUP
from .models import fetch_model, list_models

__all__ = ["FORMAT_VERSION", "ModelFormatError", "describe", "load", "save"]

# The format tag in the file's header, and its version: a file of a higher
# version than this skface reads is refused with a message to upgrade.
# Version 2 records each tensor's dtype, shape and sha256; version 1 files
# (without them) still load, with a warning that damage cannot be detected.
_FORMAT = "skface-model"
FORMAT_VERSION = 2

# The classes a model file may name, per role: each exactly as ``module:Name``,
# the module that defines the class (``cls.__module__``) and its plain name.
# Nothing else is ever imported from a file, and a name here is imported only
# where its role is expected; after the import the object must be a class
# defined in that module and a subclass of the role's base (``_ROLE_BASES``).
# These are the paths every estimator's saved file contains (listed by saving
# each estimator of tests/test_common.py fitted): ``save`` refuses to write any
# other, so every file it writes loads.
_ALLOWED = {
    # Every estimator class skface exports (skface._registry), and scikit-learn's
    # FrozenEstimator around one and Pipeline of them (a registered model is an
    # aligner followed by its network).
    "estimator": frozenset(
        {f"{entry.module}:{entry.name}" for entry in ESTIMATORS}
        | {"sklearn.frozen._frozen:FrozenEstimator", "sklearn.pipeline:Pipeline"}
    ),
    # The skorch nets inside estimators: skface's FaceNet and its subclasses,
    # and skorch's own net classes.
    "net": frozenset({
        "skface.estimators._base:FaceNet",
        "skface.estimators._dbn:_RBMNet",
        "skface.estimators._embedding:_EmbedderNet",
        "skface.estimators._keypoints:_KeypointNet",
        "skface.estimators._sdae:_DenoisingNet",
        "skface.estimators._sdae_heads:_AugmentNet",
        "skorch.net:NeuralNet",
        "skorch.classifier:NeuralNetClassifier",
        "skorch.classifier:NeuralNetBinaryClassifier",
        "skorch.regressor:NeuralNetRegressor",
    }),
    # A net's ``module``; registered backbones are added (``_allowed``).
    "module": frozenset({
        "skface.estimators._dbn:_DeepAutoencoder",
        "skface.estimators._embedding:_EmbeddingModule",
        "skface.nn.conv_dae:ConvDAEStack",
        "skface.nn.rbm:RBM",
        "skface.nn.trunk:TrunkHead",
        "skface.nn.trunk:TrunkKeypointHead",
    }),
    "criterion": frozenset({
        "torch.nn.modules.loss:CrossEntropyLoss",
        "torch.nn.modules.loss:HuberLoss",
        "torch.nn.modules.loss:L1Loss",
        "torch.nn.modules.loss:MSELoss",
        "skface.nn.losses:MaskedMSELoss",
        "skface.nn.losses:SoftmaxCenterLoss",
    }),
    "optimizer": frozenset({
        "torch.optim.adam:Adam",
        "torch.optim.adamw:AdamW",
        "torch.optim.sgd:SGD",
    }),
    "dataset": frozenset({"skorch.dataset:Dataset"}),
    "iterator": frozenset({
        "skface.estimators._base:TensorBatches",
        "torch.utils.data.dataloader:DataLoader",
    }),
    # Callbacks are training-time objects and never saved: a file naming one
    # is refused whatever it names.
    "callback": frozenset(),
    "namedtuple": frozenset({"skface._validation:ImageLayout"}),
    # Registered backbones only (``_allowed``): the skface.backbones entry points.
    "backbone": frozenset(),
}

# The base class each role's class must derive from, as (module, name).
_ROLE_BASES = {
    "estimator": ("sklearn.base", "BaseEstimator"),
    "net": ("skorch.net", "NeuralNet"),
    "module": ("torch.nn", "Module"),
    "criterion": ("torch.nn", "Module"),
    "optimizer": ("torch.optim", "Optimizer"),
    "dataset": ("torch.utils.data", "Dataset"),
    "iterator": ("collections.abc", "Iterable"),
    "callback": ("skorch.callbacks", "Callback"),
    "namedtuple": ("builtins", "tuple"),
    "backbone": ("torch.nn", "Module"),
}

# Where a class may stand as a value, and in which role: a net's parameters
# and an estimator's. A class anywhere else in a file is refused.
_NET_CLASS_FIELDS = {
    "module": "module",
    "criterion": "criterion",
    "optimizer": "optimizer",
    "dataset": "dataset",
    "iterator_train": "iterator",
    "iterator_valid": "iterator",
    "module__backbone": "backbone",
    "callbacks": "callback",
}
_ESTIMATOR_CLASS_FIELDS = {"backbone": "backbone", "callbacks": "callback"}

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_CLASS_PATH = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}")

# Each value tag the encoder writes, with the exact keys of its object.
_TAGS = {
    "__tuple__": {"__tuple__"},
    "__dict__": {"__dict__"},
    "__npscalar__": {"__npscalar__", "value"},
    "__dtype__": {"__dtype__"},
    "__class__": {"__class__"},
    "__tensor__": {"__tensor__"},
    "__ndarray__": {"__ndarray__", "dtype"},
    "__ndarray_list__": {"__ndarray_list__", "dtype", "shape"},
    "__net__": {"__net__"},
    "__estimator__": {"__estimator__"},
    "__history__": {"__history__"},
    "__namedtuple__": {"__namedtuple__", "fields"},
}
_SPEC_KEYS = {"format", "format_version", "skface_version", "torch_version", "estimator",
              "tensors", "info"}
# Deeper than any estimator's description: a header nested deeper is refused
# rather than walked (a recursion error).
_MAX_DEPTH = 64


class ModelFormatError(ValueError):
    """A file is not an skface model, is damaged, or needs a newer skface."""


def _class_role(owner, field):
    """The role a class standing at ``field`` of a net's or estimator's parameters has, or None."""
    if owner == "net":
        return "callback" if field.startswith("callbacks__") else _NET_CLASS_FIELDS.get(field)
    return _ESTIMATOR_CLASS_FIELDS.get(field)


def _plugin_paths(group):
    """The entry-point values of ``group``, read from package metadata (nothing imported)."""
    return {ep.value.replace(" ", "") for ep in entry_points(group=group)}


def _allow_list():
    """The class paths a file may name, per role; plugins' entry points read once per call."""
    backbones = frozenset(_plugin_paths(_BACKBONE_GROUP) | set(_BUILTIN_BACKBONES.values()))
    return dict(_ALLOWED, backbone=backbones, module=_ALLOWED["module"] | backbones)


def _allowed(role):
    """The class paths a file may name in ``role``."""
    return _allow_list()[role]


def _class_path(cls):
    return f"{cls.__module__}:{cls.__qualname__}"


def _dtype_name(tensor):
    return str(tensor.dtype).removeprefix("torch.")


def _digest(tensor):
    """sha256 of a CPU tensor's bytes, as stored in the file."""
    import torch

    flat = tensor.detach().contiguous().reshape(-1)
    if flat.numel() == 0:  # an empty tensor's stride cannot be viewed as bytes
        return hashlib.sha256(b"").hexdigest()
    return hashlib.sha256(flat.view(torch.uint8).numpy()).hexdigest()


# -- saving ------------------------------------------------------------------------------


def save(estimator, path, *, info=None):
    """Write a fitted (or unfitted) skface estimator to one file, without pickle.

    The file is a `safetensors <https://huggingface.co/docs/safetensors>`_
    file: its header holds a JSON description of the estimator (class,
    constructor parameters, fitted metadata such as ``classes_`` and
    ``image_shape_``, each torch part as a module class path with keyword
    arguments, each tensor's dtype, shape and sha256, the skface and torch
    versions) and its tensors are the state dicts and numeric fitted
    arrays. :func:`load` reads it back on any device.

    Parameters
    ----------
    estimator : skface estimator
        Any estimator of :mod:`skface.estimators`, :mod:`skface.preprocessing`
        or :mod:`skface.align`, fitted or not; estimators nested in its
        parameters (an SDAE head's ``encoder``) are saved with it.
    path : path-like
        Destination file; the suffix ``.skface`` is customary. An existing
        file is replaced only once the new one is complete; a symbolic link
        is followed (its target is replaced, the link kept).
    info : dict of str to str, int, float or bool, default=None
        Free notes kept in the header and shown by :func:`describe` and
        ``skface info`` (what the model was trained on, say); never read by
        :func:`load`.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    TypeError
        If the estimator holds something that cannot be written without
        pickle, or a class that a model file may not name (the message
        names the attribute).
    skface._atomic.WriteError
        If the file cannot be written (a full disk, say): one line naming
        the path; whatever was at ``path`` before is unchanged.

    Notes
    -----
    ``callbacks`` are training-time objects and are not saved: a loaded
    estimator has ``callbacks=None`` (a warning says so when there were
    any). Optimizer states are not saved either: a loaded model predicts
    exactly as the saved one, and further training starts a fresh
    optimizer.
    """
    import torch

    encoder = _Encoder()
    spec = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "skface_version": __version__,
        "torch_version": torch.__version__,
        "estimator": encoder.estimator(estimator, "estimator"),
    }
    spec["tensors"] = {
        key: {"dtype": _dtype_name(t), "shape": list(t.shape), "sha256": _digest(t)}
        for key, t in encoder.tensors.items()
    }
    if info:
        spec["info"] = _check_info(info)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(encoder.tensors, path, {"skface": json.dumps(spec)})
    return path


def _check_info(info, where="info"):
    """``info`` as a flat dict of str to plain values, else ``TypeError`` (saving) naming the key."""
    if not isinstance(info, dict):
        raise TypeError(f"{where} must be a dict of str to plain values, got "
                        f"{type(info).__name__}.")
    for key, value in info.items():
        if not isinstance(key, str) or not (
            value is None or isinstance(value, (str, bool, int, float))
        ):
            raise TypeError(f"{where}[{key!r}] must be a str, number, bool or None; got "
                            f"{type(value).__name__}.")
    return dict(info)


# Constructor parameters that say what input a model takes, shown by describe().
_INPUT_PARAMS = ("image_shape", "input_size", "size", "n_channels", "channels", "color")


def describe(path):
    """What a model file holds, from its header alone: nothing is imported or built.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save`.

    Returns
    -------
    info : dict
        ``file``, ``bytes``, ``class`` (``"module:Name"``, as written),
        ``fitted``, ``input`` (the fitted ``image_shape_`` (height, width,
        channels) and those constructor parameters that set the input size or
        channels and are not None, as saved), ``n_tensors``, ``n_values`` (weights and arrays),
        ``format_version``, ``skface_version``, ``torch_version``, and
        ``info``, the notes given to :func:`save` (``{}`` when none).

    Raises
    ------
    ModelFormatError
        If the file is not an skface model file, or its header is damaged.
    FileNotFoundError
        If there is no file at ``path``.
    """
    import safetensors

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            shapes = [f.get_slice(key).get_shape() for key in f.keys()]
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFormatError(f"{path} is not an skface model file ({type(exc).__name__}: "
                               f"{exc}).") from None
    try:
        spec = json.loads(metadata["skface"])
    except (KeyError, json.JSONDecodeError):
        raise ModelFormatError(f"{path} is a safetensors file but not an skface model (no "
                               "readable 'skface' header).") from None
    _check_version(spec, path)
    estimator = spec.get("estimator")
    if not isinstance(estimator, dict) or not isinstance(estimator.get("class"), str):
        raise ModelFormatError(f"{path}: estimator: the model description is damaged.")
    params = estimator.get("params") if isinstance(estimator.get("params"), dict) else {}
    fitted = estimator.get("fitted") if isinstance(estimator.get("fitted"), dict) else None
    shown = {name: _plain(params[name]) for name in _INPUT_PARAMS
             if params.get(name) is not None}
    if fitted is not None and "image_shape_" in fitted:
        shown["image_shape_"] = _plain(fitted["image_shape_"])
    notes = spec.get("info", {})
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "class": estimator["class"],
        "fitted": fitted is not None,
        "input": shown,
        "n_tensors": len(shapes),
        "n_values": int(sum(int(np.prod(shape)) for shape in shapes)),
        "format_version": spec.get("format_version"),
        "skface_version": spec.get("skface_version"),
        "torch_version": spec.get("torch_version"),
        "info": notes if isinstance(notes, dict) else {},
    }


def _plain(value):
    """A saved JSON value with the encoder's tuple tag taken off, for display."""
    if isinstance(value, dict) and set(value) == {"__tuple__"}:
        return [_plain(v) for v in value["__tuple__"]] if isinstance(value["__tuple__"], list) \
            else value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_safetensors(tensors, path, metadata, *, what="model file"):
    """Write a safetensors file atomically.

    Written under a per-process temporary name in the same folder, flushed
    and renamed once complete (:func:`skface._atomic.atomic_path`): a failed
    or interrupted write, or two at once, never leaves a truncated file
    where a good one was.

    Parameters
    ----------
    tensors : dict of str to Tensor
    path : path-like
    metadata : dict of str to str
    what : str, default="model file"
        What the file is, for the error message.

    Raises
    ------
    skface._atomic.WriteError
        The file could not be written (a full disk, a file-size limit, a
        folder without write permission): one line naming ``path``.
    """
    import safetensors.torch

    with atomic_path(path, what=what) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)


def read_safetensors(path):
    """The metadata and tensors of a safetensors file, the tensors copied.

    Copies: older safetensors releases return views of the mapped file,
    which would break (a bus error) if the file were replaced later.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    metadata : dict of str to str
    tensors : dict of str to Tensor
        On the CPU.

    Raises
    ------
    ValueError
        The file is not a readable safetensors file; the message is
        safetensors' own error, ``"<type>: <message>"``.
    """
    import safetensors

    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key).clone() for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    return metadata, tensors


class _Encoder:
    """JSON-able description of values; tensors and numeric arrays go to ``tensors``."""

    def __init__(self):
        self.tensors = {}
        self.allowed = _allow_list()

    def _tensor(self, tensor, key):
        if key in self.tensors:
            raise ValueError(f"Duplicate tensor name {key!r} while saving.")
        self.tensors[key] = tensor.detach().to("cpu", copy=True).contiguous()
        return key

    def estimator(self, est, key):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        cls_path = _class_path(type(est))
        if cls_path not in _ALLOWED["estimator"]:
            raise TypeError(
                f"{key}: {type(est).__name__} is not an skface estimator; save() writes "
                "skface estimators (use joblib or skops for scikit-learn ones)."
            )
        params = est.get_params(deep=False)
        out = {"class": cls_path, "params": {}, "fitted": None}
        for name, value in params.items():
            if name == "callbacks" and value:
                from ._validation import _warn_at_caller

                _warn_at_caller(
                    f"{key}: callbacks are training-time objects and are not saved; the "
                    "loaded estimator has callbacks=None."
                )
                value = None
            out["params"][name] = self.value(value, f"{key}.{name}",
                                             _class_role("estimator", name))
        try:
            check_is_fitted(est)
        except NotFittedError:
            return out
        out["fitted"] = {
            name: self.value(value, f"{key}.{name}")
            for name, value in sorted(vars(est).items())
            if name not in params and name != "_metadata_request"
        }
        return out

    def net(self, net, key):
        cls_path = _class_path(type(net))
        if cls_path not in _ALLOWED["net"]:
            raise TypeError(f"{key}: cannot save a {type(net).__name__} net; a model file may "
                            "hold only skface's and skorch's own net classes.")
        params = {}
        for name, value in net.get_params(deep=False).items():
            if name.startswith("_") or name == "callbacks" or name.startswith("callbacks__"):
                continue  # skorch's bookkeeping, and training-time callbacks
            params[name] = self.value(value, f"{key}.{name}", _class_role("net", name))
        out = {"class": cls_path, "params": params, "state": {}}
        if getattr(net, "initialized_", False):
            for name in ("module", "criterion"):
                module = getattr(net, name + "_", None)
                if module is None:
                    continue
                out["state"][name] = {
                    k: self._tensor(v, f"{key}/{name}_/{k}")
                    for k, v in module.state_dict().items()
                }
            out["history"] = self.value(list(net.history), f"{key}.history")
        return out

    def value(self, value, key, role=None):
        import torch
        from sklearn.base import BaseEstimator
        from skorch import NeuralNet
        from skorch.history import History

        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return {"__npscalar__": value.dtype.str, "value": value.item()}
        if isinstance(value, np.dtype):
            return {"__dtype__": value.str}
        if isinstance(value, type):
            path = _class_path(value)
            if role is None or path not in self.allowed[role]:
                where = f"as a {role}" if role else "in this field"
                raise TypeError(
                    f"{key}: cannot save the class {path} {where}: a model file may name "
                    "only skface's own classes, the torch parts its estimators use and "
                    "registered backbones (skface.backbones entry points). Pass a "
                    "registered backbone by its name."
                )
            return {"__class__": path}
        if isinstance(value, torch.Tensor):
            return {"__tensor__": self._tensor(value, key)}
        if isinstance(value, np.ndarray):
            return self._array(value, key)
        if isinstance(value, NeuralNet):
            return {"__net__": self.net(value, key)}
        if isinstance(value, BaseEstimator):
            return {"__estimator__": self.estimator(value, key)}
        if isinstance(value, History):
            return {"__history__": [self.value(v, f"{key}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            cls = type(value)
            if _class_path(cls) not in _ALLOWED["namedtuple"]:
                raise TypeError(f"{key}: cannot save a {cls.__name__} without pickle.")
            return {"__namedtuple__": _class_path(cls),
                    "fields": {f: self.value(getattr(value, f), f"{key}.{f}")
                               for f in value._fields}}
        if isinstance(value, tuple):
            return {"__tuple__": [self.value(v, f"{key}[{i}]", role)
                                  for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.value(v, f"{key}[{i}]", role) for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{key}: cannot save a dict with non-string keys.")
            return {"__dict__": {k: self.value(v, f"{key}.{k}") for k, v in value.items()}}
        raise TypeError(
            f"{key}: cannot save a {type(value).__module__}.{type(value).__name__} without "
            "pickle. Pass plain values (numbers, strings, tuples, classes) as parameters."
        )

    def _array(self, array, key):
        import torch

        if array.dtype.kind in "biuf" and array.dtype.byteorder in "=|<":
            try:
                tensor = torch.from_numpy(np.ascontiguousarray(array))
            except TypeError:  # a dtype torch lacks (uint32, say): kept as text
                pass
            else:
                return {"__ndarray__": self._tensor(tensor, key), "dtype": array.dtype.str}
        values = array.tolist()
        if array.dtype.kind == "O" and not all(
            isinstance(v, (str, int, float, bool)) or v is None for v in array.ravel()
        ):
            raise TypeError(f"{key}: cannot save an object array of non-plain values.")
        return {"__ndarray_list__": values, "dtype": array.dtype.str, "shape": list(array.shape)}


# -- loading -----------------------------------------------------------------------------


def load(path, *, device="auto"):
    """Read an estimator written by :func:`save` (or a registered model's name).

    Nothing is unpickled, no function named by the file is called, and the
    only code imported is the module of a class on skface's allow-list for
    the role it stands in (see :doc:`/user_guide/persistence`). The header
    is checked as a whole, and each tensor against the dtype, shape and
    sha256 recorded when it was saved, before anything is built.

    Parameters
    ----------
    path : path-like or str
        A model file, or the name of a model registered under the
        ``skface.models`` entry points (see :func:`skface.models.list_models`),
        which is downloaded (pinned by sha256) and cached.
    device : str, default="auto"
        Where the weights go: "auto" (CUDA when available), "cpu", "cuda"...
        A model fitted on CUDA loads on a CPU-only machine.

    Returns
    -------
    estimator : skface estimator
        Fitted when the saved one was; ``device_`` is ``device``.

    Raises
    ------
    ModelFormatError
        For any file that is not an skface model, is damaged, names a class
        it may not (or in a role it may not), or was written by a newer
        skface than this one reads; the message names the file and the
        field or tensor at fault.
    FileNotFoundError
        If ``path`` is neither a file nor a registered model name.
    ValueError
        If ``device`` asks for CUDA on a machine without it.
    """
    import torch

    from ._device import resolve_device

    path = _resolve_path(path)
    device = resolve_device(device)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r}, but this machine has no CUDA device; load with "
            "device='cpu' (or 'auto', which picks CUDA only when there is one)."
        )
    try:
        metadata, tensors = read_safetensors(path)
    except ValueError as exc:
        raise ModelFormatError(
            f"{path} is not an skface model file (skface models are safetensors files "
            f"written by estimator.save; pickles are never loaded): {exc}"
        ) from None
    if "skface" not in metadata:
        raise ModelFormatError(
            f"{path} is a safetensors file but not an skface model (no 'skface' header); "
            "write models with estimator.save(path)."
        )
    try:
        spec = json.loads(metadata["skface"])
    except (ValueError, RecursionError) as exc:
        raise ModelFormatError(f"{path}: the model description is damaged ({exc}).") from None
    _check_version(spec, path)
    allowed = _allow_list()
    _Schema(path, tensors, allowed).spec(spec)
    if spec["format_version"] < 2:
        warn_at_caller(
            f"{path} was written in model format {spec['format_version']}, which records no "
            "checksums: damage to its weights cannot be detected. Save it again "
            "(skface.load(path).save(path)) to add them."
        )
    decoder = _Decoder(tensors, device, path, allowed)
    try:
        with torch.no_grad():
            return decoder.estimator(spec["estimator"], "estimator")
    except ModelFormatError:
        raise
    except Exception as exc:  # what a field-level check did not foresee: still this file's fault
        raise ModelFormatError(
            f"{path}: the estimator cannot be built from this file "
            f"({type(exc).__name__}: {exc})."
        ) from exc


def _resolve_path(path):
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    name = str(path)
    if candidate.exists():
        raise ModelFormatError(f"{path} is not a file; skface models are single files.")
    if os.sep in name or "/" in name or name.endswith((".skface", ".safetensors")):
        raise FileNotFoundError(f"No model file at {path}.")
    # A name with a file suffix ("dbn.skfce", a typo) that no model is
    # registered under is a missing file, not an unknown model name.
    if Path(name).suffix and name not in list_models():
        raise FileNotFoundError(
            f"No model file at {path} (in {Path.cwd()}), and no model is registered "
            f"under that name. Check the file name; registered models: "
            f"{', '.join(list_models()) or '(none)'}."
        )
    return fetch_model(name)


def _check_version(spec, path):
    if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
        raise ModelFormatError(f"{path} is not an skface model file (unknown format).")
    version = spec.get("format_version")
    if type(version) is not int or version < 1 or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} was written by skface {spec.get('skface_version', '?')} in model "
            f"format {version!r}; this skface ({__version__}) reads formats 1 to "
            f"{FORMAT_VERSION}. Upgrade skface (pip install -U skface) to load it."
        )


class _Schema:
    """Checks a whole header, and the tensors against it, before anything is built.

    Every object has exactly the keys the encoder writes, every class path
    is on the allow-list of the role its field has, every tensor referenced
    is in the file (and every tensor in the file is referenced), and, in
    format 2, each tensor has the dtype, shape and sha256 recorded for it.
    Nothing is imported here.
    """

    def __init__(self, path, tensors, allowed):
        self.path = path
        self.tensors = tensors
        self.allowed = allowed
        self.used = {}

    def fail(self, where, message):
        raise ModelFormatError(f"{self.path}: {where}: {message}")

    def _object(self, node, where, required, optional=()):
        if not isinstance(node, dict):
            self.fail(where, f"expected a JSON object, got {_json_type(node)}.")
        missing = sorted(set(required) - node.keys())
        extra = sorted(node.keys() - set(required) - set(optional))
        if missing:
            self.fail(where, f"missing {', '.join(missing)}.")
        if extra:
            self.fail(where, f"unexpected {', '.join(map(repr, extra))}.")
        return node

    def _names(self, node, where):
        if not isinstance(node, dict):
            self.fail(where, f"expected a JSON object, got {_json_type(node)}.")
        for name in node:
            if not name.isidentifier() or (name.startswith("__") and name.endswith("__")):
                self.fail(where, f"{name!r} is not a parameter or attribute name.")
        return node

    def class_path(self, value, role, where):
        """A class path on ``role``'s allow-list; checked as text, nothing imported."""
        if not isinstance(value, str) or not _CLASS_PATH.fullmatch(value):
            self.fail(where, f"{value!r} is not a class path 'module:Name' (a plain name, "
                             "no attribute chain); refusing to import it.")
        if value not in self.allowed[role]:
            self.fail(where, f"{value!r} is not a class a model file may name as {_a(role)}; "
                             "refusing to import it (see the allow-list in the "
                             "persistence guide).")

    def tensor_ref(self, key, where):
        if not isinstance(key, str):
            self.fail(where, f"expected a tensor name, got {_json_type(key)}.")
        if key not in self.tensors:
            self.fail(where, f"tensor {key!r} is missing from the file.")
        if key in self.used:
            self.fail(where, f"tensor {key!r} is used twice (also by {self.used[key]}).")
        self.used[key] = where

    def spec(self, spec):
        self._object(spec, "header", {"format", "format_version", "estimator"},
                     _SPEC_KEYS - {"format", "format_version", "estimator"})
        for name in ("skface_version", "torch_version"):
            if name in spec and not isinstance(spec[name], str):
                self.fail(name, f"expected a string, got {_json_type(spec[name])}.")
        if "info" in spec:
            try:
                _check_info(spec["info"])
            except TypeError as exc:
                self.fail("info", str(exc))
        self.estimator(spec["estimator"], "estimator", 0)
        extra = sorted(self.tensors.keys() - self.used.keys())
        if extra:
            self.fail("tensors", f"tensor {extra[0]!r} is in the file but not in the model "
                                 "description (the file was changed after saving).")
        if spec["format_version"] >= 2:
            self.records(spec.get("tensors"))

    def records(self, records):
        if not isinstance(records, dict):
            self.fail("tensors", f"expected a JSON object, got {_json_type(records)}.")
        for key in sorted(records.keys() - self.tensors.keys()):
            self.fail(f"tensors.{key}", f"tensor {key!r} is missing from the file.")
        for key, tensor in self.tensors.items():
            where = f"tensors.{key}"
            if key not in records:
                self.fail(where, f"tensor {key!r} has no dtype, shape and sha256 record.")
            record = self._object(records[key], where, {"dtype", "shape", "sha256"})
            if record["dtype"] != _dtype_name(tensor):
                self.fail(where, f"tensor {key!r} was saved as {record['dtype']!r} but the file "
                                 f"holds {_dtype_name(tensor)!r}; the file was changed after "
                                 "saving.")
            if record["shape"] != list(tensor.shape):
                self.fail(where, f"tensor {key!r} was saved with shape {record['shape']} but the "
                                 f"file holds {list(tensor.shape)}; the file was changed after "
                                 "saving.")
            if record["sha256"] != _digest(tensor):
                self.fail(where, f"tensor {key!r} is damaged: its bytes do not match the sha256 "
                                 "recorded when it was saved. Save or download the model "
                                 "again.")

    def estimator(self, node, where, depth):
        node = self._object(node, where, {"class", "params"}, {"fitted"})
        self.class_path(node["class"], "estimator", where + ".class")
        for name, value in self._names(node["params"], where + ".params").items():
            self.value(value, f"{where}.params.{name}", depth + 1,
                       _class_role("estimator", name))
        fitted = node.get("fitted")
        if fitted is not None:
            for name, value in self._names(fitted, where + ".fitted").items():
                if name in node["params"]:
                    self.fail(f"{where}.fitted.{name}", "a parameter cannot be a fitted "
                                                        "attribute too.")
                self.value(value, f"{where}.fitted.{name}", depth + 1)

    def net(self, node, where, depth):
        node = self._object(node, where, {"class", "params", "state"}, {"history"})
        self.class_path(node["class"], "net", where + ".class")
        for name, value in self._names(node["params"], where + ".params").items():
            self.value(value, f"{where}.params.{name}", depth + 1, _class_role("net", name))
        state = node["state"]
        if not isinstance(state, dict):
            self.fail(where + ".state", f"expected a JSON object, got {_json_type(state)}.")
        for name, tensors in state.items():
            if name not in ("module", "criterion"):
                self.fail(f"{where}.state", f"unexpected {name!r} (a net's state is its "
                                            "'module' and 'criterion').")
            if not isinstance(tensors, dict):
                self.fail(f"{where}.state.{name}",
                          f"expected a JSON object, got {_json_type(tensors)}.")
            for k, key in tensors.items():
                self.tensor_ref(key, f"{where}.state.{name}.{k}")
        if "history" in node:
            if not isinstance(node["history"], list):
                self.fail(where + ".history", f"expected a list, got "
                                              f"{_json_type(node['history'])}.")
            self.value(node["history"], where + ".history", depth + 1)

    def value(self, value, where, depth, role=None):
        if depth > _MAX_DEPTH:
            self.fail(where, f"nested deeper than {_MAX_DEPTH} levels.")
        if value is None or isinstance(value, (bool, int, float, str)):
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.value(v, f"{where}[{i}]", depth + 1, role)
            return
        if not isinstance(value, dict):
            self.fail(where, f"unexpected {_json_type(value)}.")
        tags = [k for k in value if k in _TAGS]
        if len(tags) != 1 or value.keys() != _TAGS[tags[0]]:
            self.fail(where, f"unknown value tag {sorted(value)} (a saved value is plain JSON "
                             "or one of skface's tagged values).")
        tag = tags[0]
        body = value[tag]
        if tag in ("__tuple__", "__history__"):
            if not isinstance(body, list):
                self.fail(where, f"{tag} expects a list, got {_json_type(body)}.")
            self.value(body, where, depth + 1, role if tag == "__tuple__" else None)
        elif tag == "__dict__":
            if not isinstance(body, dict):
                self.fail(where, f"__dict__ expects a JSON object, got {_json_type(body)}.")
            for k, v in body.items():
                self.value(v, f"{where}.{k}", depth + 1)
        elif tag == "__class__":
            if role is None:
                self.fail(where, f"a class ({body!r}) cannot stand here; refusing to import it "
                                 "(a model file names classes only as a net's module, "
                                 "criterion, optimizer, dataset and iterators, and as a "
                                 "backbone).")
            self.class_path(body, role, where)
        elif tag == "__namedtuple__":
            self.class_path(body, "namedtuple", where)
            fields = self._names(value["fields"], where + ".fields")
            for k, v in fields.items():
                self.value(v, f"{where}.{k}", depth + 1)
        elif tag == "__net__":
            self.net(body, where, depth + 1)
        elif tag == "__estimator__":
            self.estimator(body, where, depth + 1)
        elif tag == "__tensor__":
            self.tensor_ref(body, where)
        elif tag == "__ndarray__":
            self.tensor_ref(body, where)
            self.dtype(value["dtype"], where, kinds="biuf")
        elif tag == "__ndarray_list__":
            self.dtype(value["dtype"], where)
            shape = value["shape"]
            if not (isinstance(shape, list) and len(shape) <= 32
                    and all(type(n) is int and n >= 0 for n in shape)):
                self.fail(where, f"impossible array shape {shape!r}.")
            self.plain(body, where, depth + 1)
        elif tag == "__npscalar__":
            self.dtype(body, where, kinds="biufcmMSU")
            if not (value["value"] is None or isinstance(value["value"], (bool, int, float, str))):
                self.fail(where, f"a numpy scalar's value must be plain, got "
                                 f"{_json_type(value['value'])}.")
        elif tag == "__dtype__":
            self.dtype(body, where)

    def dtype(self, text, where, kinds=None):
        try:
            dtype = np.dtype(text) if isinstance(text, str) else None
        except (TypeError, ValueError, SyntaxError):
            dtype = None
        if dtype is None or (kinds is not None and dtype.kind not in kinds):
            self.fail(where, f"{text!r} is not a dtype a model file holds here.")

    def plain(self, values, where, depth):
        if depth > _MAX_DEPTH:
            self.fail(where, f"nested deeper than {_MAX_DEPTH} levels.")
        if isinstance(values, list):
            for v in values:
                self.plain(v, where, depth + 1)
        elif not (values is None or isinstance(values, (bool, int, float, str))):
            self.fail(where, f"an array holds only plain values, got {_json_type(values)}.")


def _a(role):
    return ("an " if role[0] in "aeiou" else "a ") + role


def _json_type(value):
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _resolve(path, role, where, allowed=None):
    """Import the class ``path`` names for ``role``; the path is on the allow-list already.

    Raises
    ------
    ModelFormatError
        If the path is not on ``role``'s allow-list (checked again, before
        any import), the module or name is missing, or the object is not a
        class defined in that module and derived from the role's base.
    """
    allowed = _allow_list() if allowed is None else allowed
    if not isinstance(path, str) or not _CLASS_PATH.fullmatch(path) or path not in allowed[role]:
        raise ModelFormatError(f"{where}: {path!r} is not a class a model file may name as "
                               f"{_a(role)}; refusing to import it.")
    module_name, name = path.split(":")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ModelFormatError(
            f"{where} names {path!r}, which this installation does not have "
            f"({type(exc).__name__}: {exc}). It may need a newer skface or a plugin."
        ) from None
    base_module, base_name = _ROLE_BASES[role]
    base = getattr(importlib.import_module(base_module), base_name)
    if not isinstance(obj, type):
        raise ModelFormatError(f"{where}: {path!r} is not a class; a model file names only "
                               "classes.")
    if obj.__module__ != module_name or obj.__qualname__ != name:
        raise ModelFormatError(f"{where}: {path!r} is {_class_path(obj)}, imported into "
                               f"{module_name}; a model file names a class by the module "
                               "that defines it.")
    if not issubclass(obj, base) or (role == "namedtuple" and not hasattr(obj, "_fields")):
        raise ModelFormatError(f"{where}: {path!r} is not {_a(role)} (not a subclass of "
                               f"{base_module}.{base_name}).")
    return obj


class _Decoder:
    """Builds an estimator from a header that :class:`_Schema` has passed."""

    def __init__(self, tensors, device, path, allowed):
        self.tensors = tensors
        self.device = device
        self.path = path
        self.allowed = allowed

    def fail(self, where, message, exc=None):
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        raise ModelFormatError(f"{self.path}: {where}: {message}{detail}") from exc

    def resolve(self, path, role, where):
        return _resolve(path, role, f"{self.path}: {where}", self.allowed)

    def build(self, cls, params, where):
        """``cls(**params)``: a class from the allow-list, with plain values from the file."""
        try:
            return cls(**params)
        except ModelFormatError:
            raise
        except Exception as exc:
            self.fail(where, f"{_class_path(cls)} cannot be built from the saved parameters", exc)

    def estimator(self, spec, where):
        cls = self.resolve(spec["class"], "estimator", where + ".class")
        params = {k: self.value(v, f"{where}.params.{k}", _class_role("estimator", k))
                  for k, v in spec["params"].items()}
        # A file written before a parameter existed means that parameter's old
        # behaviour, not its current default.
        for name, value in getattr(cls, "_legacy_params", {}).items():
            params.setdefault(name, value)
        est = self.build(cls, params, where)
        fitted = spec.get("fitted")
        if fitted is not None:
            for name, value in fitted.items():
                # Data only: a fitted attribute may not hide a method or property.
                static = inspect.getattr_static(cls, name, None)
                if callable(static) or hasattr(static, "__get__"):
                    self.fail(f"{where}.fitted.{name}", f"{cls.__name__}.{name} is not a "
                                                        "fitted attribute.")
                setattr(est, name, self.value(value, f"{where}.fitted.{name}"))
            if "device_" in fitted:
                est.device_ = self.device
        return est

    def net(self, spec, where):
        import torch
        from skorch.history import History

        cls = self.resolve(spec["class"], "net", where + ".class")
        params = {k: self.value(v, f"{where}.params.{k}", _class_role("net", k))
                  for k, v in spec["params"].items()}
        params["device"] = self.device
        net = self.build(cls, params, where)
        if spec["state"]:
            try:
                net.initialize()
            except Exception as exc:
                self.fail(where, f"{_class_path(cls)} cannot be initialised from the saved "
                                 "parameters", exc)
            for name, state in spec["state"].items():
                module = getattr(net, name + "_", None)
                if not isinstance(module, torch.nn.Module):
                    self.fail(f"{where}.state.{name}", f"the net has no {name}_ module.")
                self.load_state(module, state, f"{where}.state.{name}")
            net.history_ = History(self.value(spec.get("history", []), where + ".history"))
        return net

    def load_state(self, module, state, where):
        expected = module.state_dict()
        for k in sorted(expected.keys() - state.keys()):
            self.fail(f"{where}.{k}", f"the file has no tensor for {k!r}.")
        for k in sorted(state.keys() - expected.keys()):
            self.fail(f"{where}.{k}", f"{k!r} is not a tensor of {type(module).__name__}.")
        loaded = {}
        for k, key in state.items():
            tensor, want = self.tensors[key], expected[k]
            if tensor.shape != want.shape or tensor.dtype != want.dtype:
                self.fail(f"{where}.{k}", f"tensor {key!r} is {_dtype_name(tensor)} of shape "
                                          f"{list(tensor.shape)}, but the model built from the "
                                          f"file needs {_dtype_name(want)} of shape "
                                          f"{list(want.shape)}.")
            loaded[k] = tensor
        try:
            module.load_state_dict(loaded)
        except Exception as exc:
            self.fail(where, "the weights do not fit the model", exc)

    def value(self, value, where, role=None):
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]", role) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        try:
            if "__tuple__" in value:
                return tuple(self.value(v, f"{where}[{i}]", role)
                             for i, v in enumerate(value["__tuple__"]))
            if "__dict__" in value:
                return {k: self.value(v, f"{where}.{k}") for k, v in value["__dict__"].items()}
            if "__npscalar__" in value:
                return np.dtype(value["__npscalar__"]).type(value["value"])
            if "__dtype__" in value:
                return np.dtype(value["__dtype__"])
            if "__class__" in value:
                return self.resolve(value["__class__"], role, where)
            if "__tensor__" in value:
                return self.tensors[value["__tensor__"]].clone()
            if "__ndarray__" in value:
                array = self.tensors[value["__ndarray__"]].numpy().copy()
                return array.astype(np.dtype(value["dtype"]), copy=False)
            if "__ndarray_list__" in value:
                dtype, values = np.dtype(value["dtype"]), value["__ndarray_list__"]
                if dtype.kind == "O" and len(value["shape"]) == 1:
                    # Filled in place: np.array would nest values that are sequences.
                    array = np.empty(len(values), dtype=object)
                    array[:] = values
                    return array
                return np.array(values, dtype=dtype).reshape(value["shape"])
            if "__net__" in value:
                return self.net(value["__net__"], where)
            if "__estimator__" in value:
                return self.estimator(value["__estimator__"], where)
            if "__history__" in value:
                from skorch.history import History

                return History(self.value(value["__history__"], where))
            if "__namedtuple__" in value:
                cls = self.resolve(value["__namedtuple__"], "namedtuple", where)
                fields = {k: self.value(v, f"{where}.{k}") for k, v in value["fields"].items()}
                return self.build(cls, fields, where)
        except ModelFormatError:
            raise
        except Exception as exc:
            self.fail(where, "the saved value cannot be read", exc)
        self.fail(where, f"unknown value tag in {sorted(value)}.")
