"""scikit-learn estimators over PyTorch models (skorch inside)."""

from .._registry import estimator_class as _estimator_class
from .._registry import estimator_names as _estimator_names
from ._encoder import Trunk
from ._jitter import jitter_images

# The estimator classes are those skface._registry lists for this package.
for _name in _estimator_names(__name__):
    globals()[_name] = _estimator_class(_name)
del _name

__all__ = sorted([*_estimator_names(__name__), "Trunk", "jitter_images"])


def __getattr__(name):
    # An estimator registered after this package was imported (a test's toy one).
    if name in _estimator_names(__name__):
        return _estimator_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
