"""skface: deep face models as scikit-learn estimators, and face dataset fetchers."""

import importlib

from ._registry import estimator_class as _estimator_class
from ._registry import estimator_names as _estimator_names
from ._version import __version__

# Public name -> module that defines it; loaded on first use so that
# `import skface` stays light (no torch, PIL or pooch until needed). Every
# registered estimator class is exported here too (skface._registry).
_LAZY = {
    "datasets": None,
    "estimators": None,
    "align": None,
    "nn": None,
    "plotting": None,
    "backbones": None,
    "metrics": None,
    "preprocessing": None,
    "load": "skface._persist",
    "save": "skface._persist",
    "ModelFormatError": "skface._persist",
    "bf16_inference": "skface._device",
    "models": None,
    "parallel": None,
}

__all__ = ["__version__", *_LAZY, *_estimator_names()]


def __getattr__(name):
    if name in _estimator_names():
        return _estimator_class(name)
    if name not in _LAZY:
        raise AttributeError(f"module 'skface' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"skface.{name}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_estimator_names()))
