"""What estimators built on a ConvSDAEFeatures encoder receive: its exported trunk as data."""

from typing import NamedTuple

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

__all__ = ["Trunk", "is_fitted"]


class Trunk(NamedTuple):
    """A trained encoder trunk as data: what heads built on an encoder need.

    Returned by :meth:`ConvSDAEFeatures.export_trunk`; a head builds
    ``module(**kwargs)`` and loads ``state_dict`` into it, so it never
    reaches into the encoder's nets.

    Attributes
    ----------
    module : type
        :class:`skface.nn.trunk.ConvTrunk`.
    kwargs : dict
        Its keyword arguments (channels, kernel size, convolutions per layer).
    state_dict : dict of str to Tensor
        The trained weights and standardisation, copied to the CPU.
    feature_layers : tuple of int
        Layers (0 = bottom) whose codes make the encoder's features.
    pooling : str
        How codes become features.
    test_flip : bool
        Whether features are averaged with the mirror image's.
    input_size : tuple of int (height, width)
        Size images are resized to before the trunk.
    n_channels : int
        Channels images are converted to (1 or 3).
    n_features : int
        Width of the encoder's features.
    """

    module: type
    kwargs: dict
    state_dict: dict
    feature_layers: tuple
    pooling: str
    test_flip: bool
    input_size: tuple
    n_channels: int
    n_features: int


def is_fitted(estimator):
    """Whether ``estimator`` is fitted, by scikit-learn's public check."""
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True
