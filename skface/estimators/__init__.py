"""scikit-learn estimators over PyTorch models (skorch inside)."""

from ._dbn import DBNReconstructor
from ._embedding import CenterLossEmbedder

__all__ = ["CenterLossEmbedder", "DBNReconstructor"]
