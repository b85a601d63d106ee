"""scikit-learn estimators over PyTorch models (skorch inside)."""

from ._dbn import DBNReconstructor

__all__ = ["DBNReconstructor"]
