"""Image input validation: the one path from user arrays to float32 NCHW."""

from typing import NamedTuple

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "ImageInputMixin",
    "ImageLayout",
    "check_fitted_shape",
    "check_images",
    "check_targets",
    "restore_layout",
]

_ALLOWED_CHANNELS = (1, 3)


class ImageLayout(NamedTuple):
    """How the caller laid out a batch of images, to give outputs back alike.

    Attributes
    ----------
    kind : {"grey", "channels_last", "flat"}
        ``(n, H, W)``, ``(n, H, W, C)`` or ``(n, H*W*C)`` input.
    shape : tuple of int (height, width, channels)
        Size of one image.
    dtype : numpy dtype
        Float dtype for outputs: float64 when the input was float64, else float32.
    """

    kind: str
    shape: tuple
    dtype: np.dtype

    @property
    def n_features(self):
        """Number of values in one image, ``H * W * C``."""
        return int(np.prod(self.shape))


def _name(estimator):
    if estimator is None:
        return "this estimator"
    return estimator if isinstance(estimator, str) else type(estimator).__name__


def _as_array(X):
    """Dense numeric ndarray from an array-like, with errors that say what to do."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            "Sparse data was passed for X, but dense image data is required. "
            "Use X.toarray() to convert to a dense numpy array."
        )
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported: images must hold real pixel values.")
    if X.dtype.kind == "O":
        # Let numpy raise its own TypeError for values that are not numbers.
        X = X.astype(np.float64)
    elif X.dtype.kind not in "biuf":
        raise ValueError(
            f"X has dtype {X.dtype}; images must be numeric (uint8 in [0, 255] or floats)."
        )
    return X


def _check_image_shape(image_shape):
    """(H, W, C) from an ``image_shape`` parameter, or None."""
    if image_shape is None:
        return None
    shape = tuple(int(s) for s in np.atleast_1d(image_shape))
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (height, width) or (height, width, channels) with "
            f"positive sizes, got {image_shape!r}."
        )
    if len(shape) == 3 and shape[2] not in _ALLOWED_CHANNELS:
        raise ValueError(
            f"image_shape {shape} has {shape[2]} channels; skface images have 1 (grey) "
            "or 3 (RGB) channels."
        )
    return shape


def _flat_shape(n_features, image_shape, fitted_shape):
    """Image shape (H, W, C) for flat rows of ``n_features`` values."""
    if image_shape is None:
        if fitted_shape is not None and int(np.prod(fitted_shape)) == n_features:
            return tuple(fitted_shape)
        # Without a declared shape a row is a 1-pixel-high grey strip: enough for
        # fully connected models, which never look at the 2-D arrangement.
        return (1, n_features, 1)
    if len(image_shape) == 2:
        height, width = image_shape
        channels, rest = divmod(n_features, height * width)
        if rest or channels not in _ALLOWED_CHANNELS:
            raise ValueError(
                f"X has {n_features} features per row, which is not {height}x{width} "
                f"pixels with 1 or 3 channels (image_shape={image_shape}). Pass the "
                "image_shape the rows were flattened from, as (height, width[, channels])."
            )
        return (height, width, channels)
    if int(np.prod(image_shape)) != n_features:
        raise ValueError(
            f"X has {n_features} features per row but image_shape={image_shape} "
            f"needs {int(np.prod(image_shape))}. Pass the image_shape the rows were "
            "flattened from, as (height, width[, channels])."
        )
    return image_shape


def check_images(X, *, image_shape=None, fitted_shape=None, estimator=None):
    """Validate a batch of images and convert it to float32 ``(n, C, H, W)``.

    Parameters
    ----------
    X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Grey images, channels-last images with C in {1, 3}, or flattened
        channels-last images. uint8 values in [0, 255] are divided by 255;
        other numbers (floats, other integer types) are taken as they are.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows. Without it (and without
        ``fitted_shape``) a flat row is read as a 1-pixel-high grey strip.
        For 3-D and 4-D input it must agree with the images.
    fitted_shape : tuple of int (H, W, C), default=None
        Shape of the images an estimator was fitted on: images of another
        size raise a ValueError, and flat rows without ``image_shape`` are
        read in this shape.
    estimator : estimator instance or str, default=None
        Named in error messages.

    Returns
    -------
    images : ndarray of shape (n, C, H, W), float32
        C-contiguous; a new array unless ``X`` already was one.
    layout : ImageLayout
        The caller's layout, for :func:`restore_layout`.

    Raises
    ------
    ValueError
        Empty input, wrong number of dimensions or channels, NaN or infinity,
        complex values, a flat width that does not match ``image_shape``, or
        images of another size than ``fitted_shape``.
    TypeError
        Sparse input, or values that are not numbers.
    """
    name = _name(estimator)
    X = _as_array(X)
    image_shape = _check_image_shape(image_shape)

    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} expects images as (n_samples, height, width), (n_samples, height, "
            f"width, channels) or flat (n_samples, height*width*channels); got an array "
            f"with {X.ndim} dimension(s) of shape {X.shape}. Reshape your data: for a "
            "single image use X[np.newaxis], for one flat image X.reshape(1, -1)."
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
            f"required by {name}: X holds no images."
        )
    if X.size == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
            f"required by {name}: the images have no pixels."
        )

    if X.ndim == 2:
        kind = "flat"
        shape = _flat_shape(X.shape[1], image_shape, fitted_shape)
    else:
        kind = "grey" if X.ndim == 3 else "channels_last"
        shape = X.shape[1:] if X.ndim == 4 else X.shape[1:] + (1,)
        if shape[2] not in _ALLOWED_CHANNELS:
            raise ValueError(
                f"X of shape {X.shape} is read as (n_samples, height, width, channels) "
                f"but has {shape[2]} channels; skface images have 1 or 3 channels, last. "
                "For channels-first (n, C, H, W) arrays use X.transpose(0, 2, 3, 1)."
            )
        if image_shape is not None and image_shape != shape[: len(image_shape)]:
            raise ValueError(
                f"X holds images of shape {shape[:2] if kind == 'grey' else shape} but "
                f"image_shape={image_shape}; drop image_shape or make it match."
            )

    if fitted_shape is not None:
        check_fitted_shape(shape, fitted_shape, estimator=name)

    out_dtype = np.dtype(np.float64 if X.dtype == np.float64 else np.float32)
    if X.dtype == np.uint8:
        images = X.astype(np.float32)
        images /= 255.0
    else:
        images = X.astype(np.float32, copy=False)
    if not np.isfinite(images).all():
        bad = int((~np.isfinite(images.reshape(len(images), -1))).any(axis=1).sum())
        raise ValueError(
            f"Input X contains NaN or infinity in {bad} of {len(images)} image(s); "
            "remove or impute those values first."
        )

    height, width, channels = shape
    images = images.reshape(len(images), height, width, channels)
    # NHWC -> NCHW; a free view for grey images.
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images, ImageLayout(kind, tuple(int(s) for s in shape), out_dtype)


def check_fitted_shape(shape, fitted_shape, *, estimator=None):
    """Raise a ValueError when images differ in size from those seen in fit.

    Parameters
    ----------
    shape, fitted_shape : tuple of int (H, W, C)
        Size of the new images and of the fitted ones.
    estimator : estimator instance or str, default=None
        Named in the error message.
    """
    shape, fitted_shape = tuple(shape), tuple(fitted_shape)
    if shape == fitted_shape:
        return
    name = _name(estimator)
    n_features, n_fitted = int(np.prod(shape)), int(np.prod(fitted_shape))
    # The first sentence is scikit-learn's wording, which its common tests expect.
    raise ValueError(
        f"X has {n_features} features, but {name} is expecting {n_fitted} features as "
        f"input. It was fitted on images of shape (height, width, channels) = "
        f"{fitted_shape} and got {shape}; resize or crop the images to the fitted size "
        "(e.g. with skimage.transform.resize) or refit."
    )


def check_targets(y, n_samples, *, estimator=None):
    """Check that ``y`` has one entry per image and return it as an ndarray.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Targets.
    n_samples : int
        Number of images in X.
    estimator : estimator instance or str, default=None
        Named in error messages.

    Returns
    -------
    y : ndarray
    """
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != n_samples:
        got = "a scalar" if y.ndim == 0 else f"{len(y)} entries"
        raise ValueError(
            f"y has {got} but X has {n_samples} images; {_name(estimator)} needs one "
            "target per image, in the same order."
        )
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity; remove those images or targets.")
    return y


def restore_layout(images, layout):
    """Give ``(n, C, H, W)`` images back in the caller's layout.

    Parameters
    ----------
    images : ndarray of shape (n, C, H, W)
        Images in skface's internal layout.
    layout : ImageLayout
        From :func:`check_images`.

    Returns
    -------
    images : ndarray of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        In ``layout.dtype``.
    """
    images = np.asarray(images).transpose(0, 2, 3, 1)
    n = len(images)
    if layout.kind == "grey":
        images = images.reshape(n, *layout.shape[:2])
    elif layout.kind == "flat":
        images = images.reshape(n, -1)
    return np.ascontiguousarray(images, dtype=layout.dtype)


class ImageInputMixin:
    """Image input for estimators with an ``image_shape`` parameter.

    ``fit`` records the image shape (and ``n_features_in_``, and
    ``feature_names_in_`` for DataFrames); later calls must pass images of
    that shape, in any of the layouts :func:`check_images` reads.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def _validate_images(self, X, *, reset):
        """Images as float32 (n, C, H, W) and the caller's layout.

        With ``reset`` the image shape, ``n_features_in_`` (and
        ``feature_names_in_`` for DataFrames) are recorded; otherwise the
        images must match them.
        """
        if not reset:
            check_is_fitted(self)
        fitted_shape = None if reset else self.image_shape_
        images, layout = check_images(
            X, image_shape=self.image_shape, fitted_shape=fitted_shape, estimator=self
        )
        if layout.kind == "flat":
            # Feature names and n_features_in_ the scikit-learn way, for DataFrames.
            validate_data(self, X, reset=reset, skip_check_array=True)
        elif reset:
            self.__dict__.pop("feature_names_in_", None)
        if reset:
            self.image_layout_ = layout
            self.image_shape_ = layout.shape
            self.n_features_in_ = layout.n_features
        return images, layout
