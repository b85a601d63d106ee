"""LocalContrastNormalizer: per-image local contrast normalisation as a scikit-learn transformer."""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

from .._params import check_number
from .._validation import ImageInputMixin, restore_layout

__all__ = ["LocalContrastNormalizer"]


class LocalContrastNormalizer(OneToOneFeatureMixin, TransformerMixin, ImageInputMixin,
                              BaseEstimator):
    """Normalise the local contrast of each face image (subtractive and divisive).

    Each pixel has the Gaussian-weighted mean of its neighbourhood (per
    channel) subtracted and is divided by the neighbourhood's weighted
    standard deviation (over the channels together), floored at the image's
    mean local standard deviation (Pinto, Cox and DiCarlo, 2008; Jarrett et
    al., 2009). Brightness, colour casts and smooth lighting gradients go;
    edges and skin texture (wrinkles, stubble) remain, at a common contrast.

    Put it in front of :class:`~skface.estimators.ConvSDAEFeatures` when the
    features feed linear heads: a denoising autoencoder on raw pixels spends
    its capacity on the smooth, high-variance part of faces (lighting,
    hair and skin tone), which says little about age or gender. On UTKFace
    at 48x48 RGB (one fold, the same encoder and heads) it took frozen
    features + LogisticRegression from 0.870 to 0.890 gender accuracy and
    + Ridge from 9.92 to 8.68 years of age MAE (``bench/RESULTS.md``). The
    colour and brightness it removes still carry signal: a
    :class:`~sklearn.pipeline.FeatureUnion` with an encoder of the raw
    pixels keeps both views.

    Every image is normalised by its own statistics, so the transform does
    not depend on the batch, and ``fit`` learns nothing but the image shape.

    Parameters
    ----------
    sigma : float, default=2.0
        Neighbourhood size: standard deviation of the Gaussian window, in
        pixels of the images given (2 suits 48-64 px faces); > 0 and
        finite. Any value works with any image size: a window wider than
        the image is folded onto it (the weight past an edge goes to the
        edge pixel, as replicated edges would give it), so time and memory
        grow with the image, not with sigma. A sigma far beyond the image
        size makes the local mean that of the image's corners: no longer
        local contrast normalisation.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X``: needed to fit on
        flat rows, as the window is 2-D (``(1, -1)`` reads each row as a
        1-pixel-high strip).

    Attributes
    ----------
    image_shape_ : tuple of int (H, W, C)
        Shape of the images seen in ``fit``.
    n_features_in_ : int
        ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a DataFrame with string column names.

    See Also
    --------
    skface.nn.contrast.local_contrast_normalize : the same on tensors.

    References
    ----------
    N. Pinto, D. D. Cox and J. J. DiCarlo, "Why is real-world visual object
    recognition hard?", PLoS Computational Biology 4(1), 2008.
    K. Jarrett, K. Kavukcuoglu, M. Ranzato and Y. LeCun, "What is the best
    multi-stage architecture for object recognition?", ICCV 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.preprocessing import LocalContrastNormalizer
    >>> faces = np.random.RandomState(0).rand(4, 48, 48, 3).astype(np.float32)
    >>> LocalContrastNormalizer(sigma=2.0).fit_transform(faces).shape
    (4, 48, 48, 3)
    """

    # Each image is normalised by its own statistics: gain and offset cancel, so
    # no input scale is wrong for it.
    _input_scale_matters = False

    def __init__(self, sigma=2.0, *, image_shape=None):
        self.sigma = sigma
        self.image_shape = image_shape

    def fit(self, X, y=None):
        """Check the parameters and record the image shape.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images (see :func:`skface._validation.check_images`).
        y : None
            Ignored.

        Returns
        -------
        self : LocalContrastNormalizer
        """
        check_number("sigma", self.sigma, low=0, low_inclusive=False, high=np.inf)
        self._validate_images(X, reset=True)
        return self

    def transform(self, X):
        """Contrast-normalised images.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of the fitted shape.

        Returns
        -------
        normalized : ndarray of the same shape as ``X``
            Zero local mean, about unit local standard deviation; float64
            for float64 input, else float32.
        """
        import torch

        from ..nn.contrast import local_contrast_normalize

        check_number("sigma", self.sigma, low=0, low_inclusive=False, high=np.inf)
        images, layout = self._validate_images(X, reset=False)
        out = np.empty_like(images)
        # Batches bound the temporary buffers (a few times the batch's size). float64
        # arithmetic: float32 convolutions round differently with the batch size, and
        # an image's result must not depend on what it was transformed with.
        for start in range(0, len(images), 1024):
            batch = torch.from_numpy(images[start : start + 1024].astype(np.float64))
            out[start : start + 1024] = local_contrast_normalize(batch, self.sigma).numpy()
        return restore_layout(out, layout)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
