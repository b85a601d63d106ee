"""scikit-learn estimators over PyTorch models (skorch inside)."""

from ._dbn import DBNReconstructor
from ._embedding import CenterLossEmbedder
from ._encoder import Trunk
from ._jitter import JitterAugmented, jitter_images
from ._keypoints import KeypointRegressor
from ._sdae import ConvSDAEFeatures
from ._sdae_heads import SDAEClassifier, SDAERegressor

__all__ = [
    "CenterLossEmbedder",
    "ConvSDAEFeatures",
    "DBNReconstructor",
    "JitterAugmented",
    "KeypointRegressor",
    "SDAEClassifier",
    "SDAERegressor",
    "Trunk",
    "jitter_images",
]
