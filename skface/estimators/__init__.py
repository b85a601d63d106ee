"""scikit-learn estimators over PyTorch models (skorch inside)."""

from ._dbn import DBNReconstructor
from ._embedding import CenterLossEmbedder
from ._keypoints import KeypointRegressor
from ._sdae import ConvSDAEFeatures, SDAEClassifier, SDAERegressor

__all__ = [
    "CenterLossEmbedder",
    "ConvSDAEFeatures",
    "DBNReconstructor",
    "KeypointRegressor",
    "SDAEClassifier",
    "SDAERegressor",
]
