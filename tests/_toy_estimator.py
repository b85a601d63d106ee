"""A toy estimator that tests/test_registry.py registers, as a new estimator would be."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class ToyScaler(TransformerMixin, BaseEstimator):
    """Multiplies its input by ``factor``.

    Parameters
    ----------
    factor : float, default=2.0
    """

    def __init__(self, factor=2.0):
        self.factor = factor

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) * self.factor
