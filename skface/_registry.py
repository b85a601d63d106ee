"""The one list of the estimator classes skface exports; everything that lists them reads it."""

import importlib
from typing import NamedTuple

__all__ = ["ESTIMATORS", "EstimatorEntry", "estimator_class", "estimator_names"]


class EstimatorEntry(NamedTuple):
    """One estimator class skface exports.

    Attributes
    ----------
    name : str
        The class name, as exported.
    module : str
        The module that defines the class.
    package : str
        The public package that exports it (``from <package> import <name>``);
        the top-level ``skface`` exports it too.
    on_device : bool
        It has a ``device`` parameter (runs torch on the CPU or a GPU).
    """

    name: str
    module: str
    package: str
    on_device: bool


# Adding an estimator: its module, its tests, and one line here. The package
# exports (skface, skface.<package>), the scikit-learn checks' coverage test,
# bench/device_check.py, the API reference and the classes a model file may
# name all read this tuple.
ESTIMATORS = (
    EstimatorEntry("DBNReconstructor", "skface.estimators._dbn", "skface.estimators", True),
    EstimatorEntry("ConvSDAEFeatures", "skface.estimators._sdae", "skface.estimators", True),
    EstimatorEntry("SDAEClassifier", "skface.estimators._sdae_heads", "skface.estimators", True),
    EstimatorEntry("SDAERegressor", "skface.estimators._sdae_heads", "skface.estimators", True),
    EstimatorEntry("KeypointRegressor", "skface.estimators._keypoints", "skface.estimators",
                   True),
    EstimatorEntry("CenterLossEmbedder", "skface.estimators._embedding", "skface.estimators",
                   True),
    EstimatorEntry("JitterAugmented", "skface.estimators._jitter", "skface.estimators", False),
    EstimatorEntry("LocalContrastNormalizer", "skface.preprocessing._contrast",
                   "skface.preprocessing", False),
    EstimatorEntry("FaceDetector", "skface.align._detector", "skface.align", True),
    EstimatorEntry("FaceAligner", "skface.align._aligner", "skface.align", False),
)


def estimator_names(package=None, *, on_device=None):
    """Names of the registered estimators, in registry order.

    Parameters
    ----------
    package : str, default=None
        Only those exported by this package ("skface.estimators"...).
    on_device : bool, default=None
        Only torch estimators (True) or only the others (False).

    Returns
    -------
    names : list of str
    """
    return [
        e.name for e in ESTIMATORS
        if (package is None or e.package == package)
        and (on_device is None or e.on_device == on_device)
    ]


def estimator_class(name):
    """The registered estimator class called ``name`` (imports its module).

    Raises
    ------
    AttributeError
        If no registered estimator has that name (so that a package's
        ``__getattr__`` can defer to it).
    """
    for entry in ESTIMATORS:
        if entry.name == name:
            return getattr(importlib.import_module(entry.module), name)
    raise AttributeError(name)
