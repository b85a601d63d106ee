"""The images a detector or aligner reads: equal-size arrays, lists of arrays of any sizes, or files."""

import os
from typing import NamedTuple

import numpy as np

from .._validation import check_not_empty
from .._warnings import warn_at_caller

__all__ = ["ImageList", "read_image_list"]


class ImageList(NamedTuple):
    """A batch of images of any sizes, as the caller gave it.

    Attributes
    ----------
    images : list of ndarray of shape (H_i, W_i, C)
        uint8 as given when every image is uint8 (or a file), else float32,
        on the caller's own scale (``scale``); C is 1 or 3 for all.
    scale : float
        The value of white: 255.0 for uint8 pixels, files and floats above
        2, 65535.0 for 16-bit pixels (uint16, or wider integers with values
        above 255), 32767.0 for int16, else 1.0.
    kind : {"grey", "channels_last", "flat", "list"}
        How outputs are laid out: ``(n, S, S)``, ``(n, S, S, C)``, flat rows
        ``(n, S*S*C)``, or ``(n, S, S, C)`` for lists and files.
    dtype : numpy dtype
        Dtype for output images: uint8 for uint8 pixels and files, else float32.
    names : list of str
        Names of the images for messages: the file names, else ``image <i>``.
    """

    images: list
    scale: float
    kind: str
    dtype: np.dtype
    names: list

    @property
    def channels(self):
        return self.images[0].shape[2]

    def as_uint8(self, i):
        """Image ``i`` as uint8 RGB (H, W, 3), what the detectors read."""
        image = self.images[i]
        if image.dtype != np.uint8:
            if self.scale != 255.0:
                image = image * (255.0 / self.scale)
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return image


def _is_path(item):
    return isinstance(item, (str, os.PathLike))


# Pillow's modes of 16- and 32-bit integer pixels. Its convert("RGB") clips them at 255
# (a 16-bit photo turns white): they are scaled by their own range instead.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _wide_to_rgb8(pixels, where):
    """16-bit grey pixels (H, W) as uint8 RGB (H, W, 3): scaled by 255/65535, not clipped."""
    pixels = np.asarray(pixels)
    lost = int(np.count_nonzero((pixels < 0) | (pixels > 65535)))
    if lost:
        warn_at_caller(
            f"{where} has {lost} pixel value(s) outside 0..65535, the range of 16-bit images; "
            "they were clipped. Scale the image to 16 bits (or to floats in [0, 1]) first."
        )
    grey = np.rint(np.clip(pixels, 0, 65535) * (255.0 / 65535.0)).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _read_file(path, name):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in _WIDE_MODES:
                return _wide_to_rgb8(np.asarray(im), f"{name}: {os.fspath(path)!r}")
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{name}: image file {os.fspath(path)!r} does not exist.") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(
            f"{name}: cannot decode {os.fspath(path)!r} as an image ({exc}); pass JPEG, PNG "
            "or another format Pillow reads."
        ) from exc


def _as_hwc(image, where, name):
    image = np.asarray(image)
    if image.dtype == object or not np.issubdtype(image.dtype, np.number):
        raise TypeError(f"{name}: {where} holds {image.dtype} values; images hold numbers.")
    if np.iscomplexobj(image):
        raise ValueError(
            f"Complex data not supported: {name} got complex numbers in {where}; images "
            "hold real pixel values."
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(
            f"{name}: {where} has shape {image.shape}; an image is (height, width) or "
            "(height, width, channels) with 1 or 3 channels, last."
        )
    if min(image.shape[:2]) == 0:
        raise ValueError(f"{name}: {where} has shape {image.shape}: no pixels.")
    return image


def _flat_rows(X, image_shape, name):
    if image_shape is None:
        raise ValueError(
            f"{name} got flat rows of shape {X.shape} and cannot tell their height and "
            "width: pass image_shape=(height, width) or (height, width, channels), or "
            "pass images as (n, height, width[, channels])."
        )
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = shape + (1,)
    try:
        if len(shape) != 3 or shape[2] not in (1, 3) or shape.count(-1) > 1:
            raise ValueError
        return X.reshape((len(X),) + shape)  # one of height and width may be -1
    except ValueError:
        raise ValueError(
            f"{name}: image_shape={tuple(image_shape)} does not fit rows of {X.shape[1]} "
            "values; height*width*channels must equal the row length (one of height "
            "and width may be -1), with 1 or 3 channels."
        ) from None


def read_image_list(X, *, image_shape=None, estimator="FaceAligner"):
    """Validate a batch of images of one or many sizes.

    Parameters
    ----------
    X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C), or list
        An array of equal-size images (flat rows need ``image_shape``), or a
        list whose items are arrays ``(H_i, W_i[, C])`` of any sizes or image
        file paths.
    image_shape : tuple of int, default=None
        (height, width) or (height, width, channels) of flat rows; one of
        height and width may be -1, inferred from the row length.
    estimator : str
        Named in error messages.

    Returns
    -------
    batch : ImageList
    """
    name = estimator
    if hasattr(X, "iloc"):  # a DataFrame of flat rows
        X = X.to_numpy()
    if hasattr(X, "toarray") or hasattr(X, "todense"):
        raise TypeError(
            f"{name} does not take sparse input: images are dense; pass X.toarray()."
        )
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(
            f"{name} got one path, {os.fspath(X)!r}; pass a list of paths (e.g. [path])."
        )
    if not isinstance(X, (list, tuple, np.ndarray)) and hasattr(X, "__array__"):
        X = np.asarray(X)
    if (isinstance(X, (list, tuple)) and X and not _is_path(X[0])
            and np.ndim(X[0]) == 1):
        X = np.asarray(X)  # a list of flat rows, as scikit-learn passes tables
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim >= 2:
        X = X.astype(np.float64)  # numbers in an object array; a TypeError names others
    if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
        if X.ndim not in (2, 3, 4):
            raise ValueError(
                f"{name} expects images as (n, height, width), (n, height, width, channels) "
                f"or flat (n, height*width*channels), or a list of images or files; got an "
                f"array of shape {X.shape}. Reshape your data: for one image use "
                "X[np.newaxis]."
            )
        check_not_empty(X, name)
        kind = {2: "flat", 3: "grey", 4: "channels_last"}[X.ndim]
        stack = _flat_rows(X, image_shape, name) if kind == "flat" else X
        items = list(stack)
        names = [f"image {i}" for i in range(len(items))]
    else:
        items = list(X)
        if not items:
            raise ValueError(f"{name}: X holds no images (an empty list).")
        kind = "list"
        names = [os.fspath(item) if _is_path(item) else f"image {i}"
                 for i, item in enumerate(items)]
        if any(_is_path(item) for item in items):
            items = [_read_file(item, name) if _is_path(item) else item for item in items]

    images = [_as_hwc(item, where, name) for item, where in zip(items, names)]
    channels = {image.shape[2] for image in images}
    if len(channels) > 1:
        raise ValueError(
            f"{name}: the images mix grey and colour ({sorted(channels)} channels); convert "
            "them to one (e.g. np.repeat(grey[..., None], 3, axis=2))."
        )
    uint8 = all(image.dtype == np.uint8 for image in images)
    white = _sixteen_bit_white(images, names, name)
    # uint8 stays as given (4x smaller than float32); warps convert one image at a time.
    images = [image if uint8 else image.astype(np.float32) for image in images]
    if not uint8:
        for image, where in zip(images, names):
            if not np.isfinite(image).all():
                raise ValueError(f"{name}: {where} contains NaN or infinity.")
    if white is not None:
        scale = white
    else:
        scale = 255.0 if uint8 or max(float(image.max()) for image in images) > 2.0 else 1.0
    dtype = np.dtype(np.uint8) if uint8 else np.dtype(np.float32)
    return ImageList(images, scale, kind, dtype, names)


def _white_of(image):
    """White for a 16-bit image (65535.0, or 32767.0 for int16), None for any other."""
    if image.dtype == np.uint16:
        return 65535.0
    if image.dtype == np.int16:
        return 32767.0
    # Wider integers (PIL's mode "I", np.array of ints) hold 8-bit values as often as
    # 16-bit ones: 16 bits only where a value needs them.
    if image.dtype.kind in "iu" and image.dtype.itemsize > 2 and image.max() > 255:
        return 65535.0
    return None


def _sixteen_bit_white(images, names, name):
    """The white of a batch of 16-bit images; None when none is; mixed batches raise."""
    whites = [_white_of(image) for image in images]
    found = {w for w in whites if w is not None}
    if not found:
        return None
    other = next((i for i, w in enumerate(whites) if w != max(found)), None)
    if len(found) > 1 or other is not None:
        first = next(i for i, w in enumerate(whites) if w is not None)
        raise ValueError(
            f"{name}: the images mix 16-bit pixels ({names[first]}, {images[first].dtype}) "
            f"with others ({names[other]}, {images[other].dtype}): one scale cannot read "
            "both. Convert them to one type first (e.g. all to floats in [0, 1])."
        )
    white = found.pop()
    for image, where in zip(images, names):
        lost = int(np.count_nonzero((image < 0) | (image > white)))
        if lost:
            warn_at_caller(
                f"{name}: {where} has {lost} pixel value(s) outside 0..{white:.0f}, the range "
                f"of its {image.dtype} pixels; they are read as black or white."
            )
    return white


def restore_images(crops, batch):
    """Aligned crops ``(n, S, S, C)`` float32 in the layout and dtype of ``batch``'s input."""
    if batch.dtype == np.uint8:
        crops = np.clip(np.rint(crops), 0, 255).astype(np.uint8)
    if batch.kind == "grey":
        return crops[..., 0]
    if batch.kind == "flat":
        return crops.reshape(len(crops), -1)
    return crops
