"""Save and load fitted estimators without pickle: a JSON spec plus safetensors weights."""

import importlib
import json
import os
import uuid
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "ModelFormatError", "load", "save"]

# The format tag in the file's header, and its version: a file of a higher
# version than this skface reads is refused with a message to upgrade.
_FORMAT = "skface-model"
FORMAT_VERSION = 1

# Classes a file may name outside skface, by module prefix: the torch parts of a
# net's spec (losses, optimizers) and skorch's own classes. A file can thus name
# only code that ships with skface's dependencies or is registered as a plugin.
_TRUSTED_PREFIXES = ("skface.", "torch.nn.", "torch.optim.", "skorch.")
_TRUSTED_CLASSES = {"sklearn.frozen._frozen:FrozenEstimator"}
# Entry-point groups whose registered objects a file may name.
_PLUGIN_GROUPS = ("skface.backbones", "skface.models")


class ModelFormatError(ValueError):
    """A file is not an skface model, is damaged, or needs a newer skface."""


# -- saving ------------------------------------------------------------------------------


def save(estimator, path):
    """Write a fitted (or unfitted) skface estimator to one file, without pickle.

    The file is a `safetensors <https://huggingface.co/docs/safetensors>`_
    file: its header holds a JSON description of the estimator (class,
    constructor parameters, fitted metadata such as ``classes_`` and
    ``image_shape_``, each torch part as a module class path with keyword
    arguments, the skface and torch versions) and its tensors are the
    state dicts and numeric fitted arrays. :func:`load` reads it back on
    any device.

    Parameters
    ----------
    estimator : skface estimator
        Any estimator of :mod:`skface.estimators` or
        :mod:`skface.preprocessing`, fitted or not; estimators nested in its
        parameters (an SDAE head's ``encoder``) are saved with it.
    path : path-like
        Destination file; the suffix ``.skface`` is customary.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    TypeError
        If the estimator holds something that cannot be written without
        pickle (the message names the attribute).

    Notes
    -----
    ``callbacks`` are training-time objects and are not saved: a loaded
    estimator has ``callbacks=None`` (a warning says so when there were
    any). Optimizer states are not saved either: a loaded model predicts
    exactly as the saved one, and further training starts a fresh
    optimizer.
    """
    import torch

    import skface

    encoder = _Encoder()
    spec = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "skface_version": skface.__version__,
        "torch_version": torch.__version__,
        "estimator": encoder.estimator(estimator, "estimator"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(encoder.tensors, path, {"skface": json.dumps(spec)})
    return path


def write_safetensors(tensors, path, metadata):
    """Write a safetensors file atomically.

    Written under a temporary name in the same folder and renamed once
    complete: a failed or interrupted write, or two at once, never leaves a
    truncated file where a good one was.

    Parameters
    ----------
    tensors : dict of str to Tensor
    path : path-like
    metadata : dict of str to str
    """
    import safetensors.torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def _class_path(cls):
    return f"{cls.__module__}:{cls.__qualname__}"


class _Encoder:
    """JSON-able description of values; tensors and numeric arrays go to ``tensors``."""

    def __init__(self):
        self.tensors = {}

    def _tensor(self, tensor, key):
        if key in self.tensors:
            raise ValueError(f"Duplicate tensor name {key!r} while saving.")
        self.tensors[key] = tensor.detach().to("cpu", copy=True).contiguous()
        return key

    def estimator(self, est, key):
        from sklearn.utils.validation import check_is_fitted
        from sklearn.exceptions import NotFittedError

        cls_path = _class_path(type(est))
        if not (type(est).__module__.startswith("skface.") or cls_path in _TRUSTED_CLASSES):
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
            out["params"][name] = self.value(value, f"{key}.{name}")
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
        params = {}
        for name, value in net.get_params(deep=False).items():
            if name.startswith("_") or name == "callbacks" or name.startswith("callbacks__"):
                continue  # skorch's bookkeeping, and training-time callbacks
            params[name] = self.value(value, f"{key}.{name}")
        out = {"class": _class_path(type(net)), "params": params, "state": {}}
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

    def value(self, value, key):
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
            return {"__class__": _class_path(value)}
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
            if not cls.__module__.startswith("skface."):
                raise TypeError(f"{key}: cannot save a {cls.__name__} without pickle.")
            return {"__namedtuple__": _class_path(cls),
                    "fields": {f: self.value(getattr(value, f), f"{key}.{f}")
                               for f in value._fields}}
        if isinstance(value, tuple):
            return {"__tuple__": [self.value(v, f"{key}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.value(v, f"{key}[{i}]") for i, v in enumerate(value)]
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

    Nothing is unpickled and no code is imported but skface's own, its
    dependencies' torch parts, and registered plugins: a class path in the
    file outside those is refused.

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
        If the file is not an skface model, is damaged, names code it may
        not, or was written by a newer skface than this one reads.
    FileNotFoundError
        If ``path`` is neither a file nor a registered model name.
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
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}: the model description is damaged ({exc}).") from None
    _check_version(spec, path)
    decoder = _Decoder(tensors, device, path)
    with torch.no_grad():
        return decoder.estimator(spec["estimator"])


def _resolve_path(path):
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    name = str(path)
    if candidate.exists():
        raise ModelFormatError(f"{path} is not a file; skface models are single files.")
    if os.sep in name or "/" in name or name.endswith((".skface", ".safetensors")):
        raise FileNotFoundError(f"No model file at {path}.")
    from . import models

    return models.fetch_model(name)


def _check_version(spec, path):
    import skface

    if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
        raise ModelFormatError(f"{path} is not an skface model file (unknown format).")
    version = spec.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} was written by skface {spec.get('skface_version', '?')} in model "
            f"format {version!r}; this skface ({skface.__version__}) reads formats up to "
            f"{FORMAT_VERSION}. Upgrade skface (pip install -U skface) to load it."
        )


def _trusted_plugin_paths():
    paths = set()
    for group in _PLUGIN_GROUPS:
        for ep in entry_points(group=group):
            paths.add(ep.value.replace(" ", ""))
    from .backbones import _BUILTIN

    paths.update(_BUILTIN.values())
    return paths


def resolve_class(path, where="file"):
    """The class a saved ``"module:qualname"`` names, if it is one a file may name.

    Raises
    ------
    ModelFormatError
        For a path outside skface, the torch parts of its dependencies and
        registered plugins: loading must not become a way to run code.
    """
    if not isinstance(path, str) or ":" not in path:
        raise ModelFormatError(f"{where}: malformed class path {path!r}.")
    module_name, qualname = path.split(":", 1)
    trusted = (
        module_name.startswith(_TRUSTED_PREFIXES)
        or module_name in ("torch.nn", "torch.optim", "skorch", "skface")
        or path in _TRUSTED_CLASSES
    )
    if not trusted and path not in _trusted_plugin_paths():
        raise ModelFormatError(
            f"{where} names {path!r}, which is neither skface's, torch's nor skorch's "
            "and is not a registered skface plugin; refusing to import it."
        )
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ModelFormatError(
            f"{where} names {path!r}, which this installation does not have "
            f"({type(exc).__name__}: {exc}). It may need a newer skface or a plugin."
        ) from None
    if not isinstance(obj, type) and not callable(obj):
        raise ModelFormatError(f"{where}: {path!r} is not a class.")
    return obj


class _Decoder:
    def __init__(self, tensors, device, path):
        self.tensors = tensors
        self.device = device
        self.path = path

    def _tensor(self, key):
        try:
            return self.tensors[key]
        except KeyError:
            raise ModelFormatError(f"{self.path}: tensor {key!r} is missing.") from None

    def estimator(self, spec):
        cls = resolve_class(spec["class"], str(self.path))
        params = {k: self.value(v) for k, v in spec["params"].items()}
        # A file written before a parameter existed means that parameter's old
        # behaviour, not its current default.
        for name, value in getattr(cls, "_legacy_params", {}).items():
            params.setdefault(name, value)
        est = cls(**params)
        fitted = spec.get("fitted")
        if fitted is not None:
            for name, value in fitted.items():
                setattr(est, name, self.value(value))
            if "device_" in fitted:
                est.device_ = self.device
        return est

    def net(self, spec):
        from skorch.history import History

        cls = resolve_class(spec["class"], str(self.path))
        params = {k: self.value(v) for k, v in spec["params"].items()}
        params["device"] = self.device
        net = cls(**params)
        if spec["state"]:
            net.initialize()
            for name, state in spec["state"].items():
                module = getattr(net, name + "_")
                module.load_state_dict({k: self._tensor(v) for k, v in state.items()})
            net.history_ = History(self.value(spec.get("history", [])))
        return net

    def value(self, value):
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__tuple__" in value:
            return tuple(self.value(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: self.value(v) for k, v in value["__dict__"].items()}
        if "__npscalar__" in value:
            return np.dtype(value["__npscalar__"]).type(value["value"])
        if "__dtype__" in value:
            return np.dtype(value["__dtype__"])
        if "__class__" in value:
            return resolve_class(value["__class__"], str(self.path))
        if "__tensor__" in value:
            return self._tensor(value["__tensor__"]).clone()
        if "__ndarray__" in value:
            array = self._tensor(value["__ndarray__"]).numpy().copy()
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
            return self.net(value["__net__"])
        if "__estimator__" in value:
            return self.estimator(value["__estimator__"])
        if "__history__" in value:
            from skorch.history import History

            return History(self.value(value["__history__"]))
        if "__namedtuple__" in value:
            cls = resolve_class(value["__namedtuple__"], str(self.path))
            return cls(**{k: self.value(v) for k, v in value["fields"].items()})
        raise ModelFormatError(f"{self.path}: unknown value tag in {sorted(value)}.")
