"""Face preprocessing: LFW crops sized for embedding networks, local contrast normalisation."""

from .._registry import estimator_class as _estimator_class
from .._registry import estimator_names as _estimator_names
from ._crop import LFW_FACE_BOX, lfw_crop

# The estimator classes are those skface._registry lists for this package.
for _name in _estimator_names(__name__):
    globals()[_name] = _estimator_class(_name)
del _name

__all__ = sorted([*_estimator_names(__name__), "LFW_FACE_BOX", "lfw_crop"])
