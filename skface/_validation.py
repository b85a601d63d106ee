"""Image input validation: the one path from user arrays to float32 NCHW."""

import mmap
import os
import warnings
from typing import NamedTuple

import numpy as np
import sklearn
from sklearn.utils.validation import check_is_fitted, validate_data

from ._warnings import warn_at_caller

__all__ = [
    "ImageInputMixin",
    "ImageLayout",
    "RawImages",
    "check_fitted_shape",
    "check_images",
    "check_targets",
    "restore_layout",
]

_ALLOWED_CHANNELS = (1, 3)

# Input scales (ImageInputMixin): the largest value still read as [0, 1]
# (interpolation overshoot and brightness changes of [0, 1] images stay below it)
# and the smallest read as 0-255 pixels (a face whose brightest pixel is below it
# is all but black). Between the two, as with negative values, the range tells
# nothing about the scale: "other", never warned about. The gap also keeps
# feature-like data (scikit-learn's toy data in [0, 3]) out of the warning.
_UNIT_MAX = 2.0
_BYTE_MIN = 32.0

# What each input scale is, in words, and what the model sees from it: uint8 is
# divided by 255, so it is on the same scale as floats in [0, 1].
_SCALE_WORDS = {
    "uint8": "uint8 pixels (divided by 255 into [0, 1])",
    "unit": f"values in [0, 1] (at most {_UNIT_MAX:g})",
    "0-255": f"values above {_BYTE_MIN:g} (0-255 pixels, taken as they are)",
}
_SCALE_SEEN = {"uint8": "unit", "unit": "unit", "0-255": "0-255"}

# scikit-learn's frames (set_output wrappers, pipelines) call skface on the user's
# behalf: a warning about the input points past them too.
_SKLEARN_DIR = os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep


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


# numpy 1.25 moved it to numpy.exceptions (and 2.0 removed the old name).
_RAGGED_WARNING = getattr(getattr(np, "exceptions", np), "VisibleDeprecationWarning",
                          DeprecationWarning)


def _as_array(X):
    """Dense numeric ndarray from an array-like, with errors that say what to do."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            "Sparse data was passed for X, but dense image data is required. "
            "Use X.toarray() to convert to a dense numpy array."
        )
    given = X
    try:
        with warnings.catch_warnings():
            # numpy < 1.24 warns about a ragged list and makes an object array of it.
            warnings.simplefilter("ignore", _RAGGED_WARNING)
            X = np.asarray(X)
    except ValueError as exc:
        # numpy's "inhomogeneous shape" for a list of images of different sizes.
        mixed = _mixed_sizes(given)
        if mixed is None:
            raise
        raise ValueError(mixed) from exc
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported: images must hold real pixel values.")
    if X.dtype.kind == "O":
        mixed = _mixed_sizes(given)  # numpy < 1.24 made an object array of them
        if mixed is not None:
            raise ValueError(mixed)
        # Let numpy raise its own TypeError for values that are not numbers.
        X = X.astype(np.float64)
    elif X.dtype.kind not in "biuf":
        raise ValueError(
            f"X has dtype {X.dtype}; images must be numeric (uint8 in [0, 255] or floats)."
        )
    return X


def _mixed_sizes(X):
    """The error message for a sequence of images of different shapes, or None."""
    if isinstance(X, np.ndarray) or not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
        return None
    first = None
    for i in range(len(X)):
        try:
            shape = np.shape(X[i])
        except ValueError:  # an image that is itself ragged: numpy's message stands
            return None
        if first is None:
            first = shape
        elif shape != first:
            return (
                f"X holds images of different sizes: image 0 has shape {first} and image "
                f"{i} has shape {shape}. skface reads a batch of images of one size (and "
                "one number of channels). Align the faces onto one template first "
                "(skface.align.FaceAligner, which takes a list of images of any size, as "
                "the first step of a Pipeline), or resize them to one size (e.g. "
                "skimage.transform.resize) and stack them with np.stack."
            )
    return None


def _check_image_shape(image_shape):
    """(H, W) or (H, W, C) from an ``image_shape`` parameter (H or W may be -1), or None."""
    if image_shape is None:
        return None
    shape = tuple(int(s) for s in np.atleast_1d(image_shape))
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if (
        len(shape) not in (2, 3)
        or len(unknown) > 1
        or 2 in unknown
        or min(s for i, s in enumerate(shape) if i not in unknown) < 1
    ):
        raise ValueError(
            f"image_shape must be (height, width) or (height, width, channels) with "
            f"positive sizes, one of height and width may be -1 (inferred from the row "
            f"length, as in numpy.reshape); got {image_shape!r}."
        )
    if len(shape) == 3 and shape[2] not in _ALLOWED_CHANNELS:
        raise ValueError(
            f"image_shape {shape} has {shape[2]} channels; skface images have 1 (grey) "
            "or 3 (RGB) channels."
        )
    return shape


def _flat_error(name, X_shape):
    return ValueError(
        f"{name} reads images in two dimensions, but X is flat (shape {X_shape}) and "
        "image_shape is not set: each row would be read as a 1-pixel-high strip. Pass "
        "the images as (n_samples, height, width) or (n_samples, height, width, "
        "channels) arrays (a fetcher's .images, not its .data), or set image_shape="
        "(height, width) or (height, width, channels) to the shape the rows were "
        "flattened from (e.g. image_shape=(62, 47) for fetch_lfw_people's .data). "
        "image_shape=(1, -1) reads each row as a strip on purpose."
    )


def _matches(image_shape, shape):
    """Whether ``shape`` (H, W, C) agrees with ``image_shape`` (-1 matching any size)."""
    return all(want in (-1, got) for want, got in zip(image_shape, shape))


def _flat_shape(n_features, image_shape, fitted_shape, *, spatial=False, error=None):
    """Image shape (H, W, C) for flat rows of ``n_features`` values."""
    if image_shape is None:
        if fitted_shape is not None:
            if int(np.prod(fitted_shape)) == n_features:
                return tuple(fitted_shape)
        elif spatial:
            raise error()
        # Without a declared shape a row is a 1-pixel-high grey strip: enough for
        # fully connected models, which never look at the 2-D arrangement. Rows of
        # another length than the fitted images fail check_fitted_shape next.
        return (1, n_features, 1)
    if -1 in image_shape:
        height, width = image_shape[:2]
        channels = image_shape[2] if len(image_shape) == 3 else 1
        known = (width if height == -1 else height) * channels
        size, rest = divmod(n_features, known)
        if rest:
            raise ValueError(
                f"X has {n_features} features per row, which is not a whole number of "
                f"{'rows' if height == -1 else 'columns'} of {known} values "
                f"(image_shape={image_shape}). Pass the image_shape the rows were "
                "flattened from, as (height, width[, channels])."
            )
        return (size, width, channels) if height == -1 else (height, size, channels)
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


def check_images(X, *, image_shape=None, fitted_shape=None, spatial=False, estimator=None):
    """Validate a batch of images and convert it to float32 ``(n, C, H, W)``.

    Parameters
    ----------
    X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Grey images, channels-last images with C in {1, 3}, or flattened
        channels-last images. uint8 values in [0, 255] are divided by 255;
        other numbers (floats, other integer types) are taken as they are.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows; one of H and W may be -1,
        inferred from the row length as in :func:`numpy.reshape` (grey
        images unless C is given): ``(1, -1)`` reads each row as a
        1-pixel-high strip. For 3-D and 4-D input it must agree with the
        images (-1 agrees with any size).
    fitted_shape : tuple of int (H, W, C), default=None
        Shape of the images an estimator was fitted on: images of another
        size raise a ValueError, and flat rows without ``image_shape`` are
        read in this shape.
    spatial : bool, default=False
        Whether the caller reads the 2-D arrangement of the pixels
        (convolutions, blurs, crops). Flat rows then need ``image_shape``
        or ``fitted_shape``: without either they raise a ValueError, where
        otherwise they are read as 1-pixel-high grey strips (all a fully
        connected model needs).
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
        complex values, a flat width that does not match ``image_shape``,
        flat rows without a shape when ``spatial``, or images of another
        size than ``fitted_shape``.
    TypeError
        Sparse input, or values that are not numbers.
    """
    images, layout, _ = _check_images(
        X, image_shape=image_shape, fitted_shape=fitted_shape, spatial=spatial,
        estimator=estimator,
    )
    return images, layout


class _Scale(NamedTuple):
    """The scale of a batch: its kind (see ``ImageInputMixin``) and largest raw value.

    ``high`` is None for uint8 images left unconverted (:class:`RawImages`),
    whose kind is known from the dtype: the largest value is then read from
    ``raw``, a pass over the data, only when a warning depends on it.
    """

    kind: str
    high: float
    raw: object = None

    def largest(self):
        return float(self.raw.max()) if self.high is None else self.high


def check_not_empty(X, name):
    """Raise scikit-learn's messages for an array with no images or no pixels."""
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


def _check_images(X, *, image_shape, fitted_shape, spatial, estimator, raw=False):
    """:func:`check_images`, plus the batch's :class:`_Scale`.

    With ``raw``, uint8 images and memory-mapped arrays come back as
    :class:`RawImages` (the caller's array, unconverted) instead of float32.
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
    check_not_empty(X, name)

    if X.ndim == 2:
        kind = "flat"
        shape = _flat_shape(X.shape[1], image_shape, fitted_shape, spatial=spatial,
                            error=lambda: _flat_error(name, X.shape))
    else:
        kind = "grey" if X.ndim == 3 else "channels_last"
        shape = X.shape[1:] if X.ndim == 4 else X.shape[1:] + (1,)
        if shape[2] not in _ALLOWED_CHANNELS:
            raise ValueError(
                f"X of shape {X.shape} is read as (n_samples, height, width, channels) "
                f"but has {shape[2]} channels; skface images have 1 or 3 channels, last. "
                "For channels-first (n, C, H, W) arrays use X.transpose(0, 2, 3, 1)."
            )
        if image_shape is not None and not _matches(image_shape, shape):
            raise ValueError(
                f"X holds images of shape {shape[:2] if kind == 'grey' else shape} but "
                f"image_shape={image_shape}; drop image_shape or make it match."
            )

    if fitted_shape is not None:
        check_fitted_shape(shape, fitted_shape, estimator=name)

    out_dtype = np.dtype(np.float64 if X.dtype == np.float64 else np.float32)
    layout = ImageLayout(kind, tuple(int(s) for s in shape), out_dtype)
    if raw and (X.dtype == np.uint8 or _mapping(X) is not None):
        images = RawImages(X, layout.shape)
        if X.dtype == np.uint8:
            # No pass over the data: NaN cannot occur and the scale is the dtype's.
            return images, layout, _Scale("uint8", None, images)
        low, high = images.min_max()  # in chunks, the NaN check included
        return images, layout, _scale_of(low, high)
    if X.dtype == np.uint8:
        images = X.astype(np.float32)
        images /= 255.0
        scale = _Scale("uint8", float(X.max()))
    else:
        images = X.astype(np.float32, copy=False)
        # Two reductions give the scale and, as NaN and infinity reach them, the
        # finiteness check: no boolean array of the batch's size.
        low, high = float(images.min()), float(images.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise _not_finite(int(_count_not_finite(images)), len(images))
        scale = _scale_of(low, high)
    return _to_nchw(images, shape), layout, scale


def _not_finite(bad, n):
    return ValueError(
        f"Input X contains NaN or infinity in {bad} of {n} image(s); "
        "remove or impute those values first."
    )


def _count_not_finite(images):
    return (~np.isfinite(images.reshape(len(images), -1))).any(axis=1).sum()


def _scale_of(low, high):
    if low < 0:
        return _Scale("other", high)
    if high <= _UNIT_MAX:
        return _Scale("unit", high)
    return _Scale("0-255" if high > _BYTE_MIN else "other", high)


def _to_nchw(images, shape):
    """float32 rows of images of ``shape`` (H, W, C) as C-contiguous (n, C, H, W).

    With the strides a new array of that shape has, whatever the caller's
    layout (see :func:`_standard_strides`).
    """
    height, width, channels = shape
    images = images.reshape(len(images), height, width, channels)
    # NHWC -> NCHW; a free view for grey images.
    return _standard_strides(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _standard_strides(array):
    """A C-contiguous ``array`` with the strides a new array of its shape has (a view).

    numpy (as torch) calls an array C-contiguous whatever the strides of its
    length-1 axes, and ``torch.from_numpy`` keeps them. The grey ``(n, 1, H,
    W)`` view of a contiguous ``(n, H, W)`` array has a channel stride of one
    pixel, the strides of a channels-last tensor, and torch's convolutions
    follow them: the same pixels given as a contiguous array, a strided view
    or a channels-last ``(n, H, W, 1)`` array were summed in different orders
    (transforms differing by 9e-8, fits by 1e-6 and more). Every image batch
    leaves validation with these strides.

    Parameters
    ----------
    array : ndarray
        C-contiguous.

    Returns
    -------
    array : ndarray
        The same memory, shape and values.
    """
    if not array.flags.c_contiguous:
        raise ValueError("_standard_strides needs a C-contiguous array")
    # Reshaping a contiguous array computes every stride from the shape.
    return array.reshape(-1).reshape(array.shape)


def _mapping(array):
    """The ``np.memmap`` an array views (its own or a base's), or None for in-memory data."""
    while array is not None:
        if isinstance(array, np.memmap) and getattr(array, "_mmap", None) is not None:
            return array
        if isinstance(array, mmap.mmap):
            return array
        array = getattr(array, "base", None)
    return None


# Rows read per block when RawImages passes over all the data (checks, statistics,
# hashes): about 64 MB at a time, whatever the size of the set.
_BLOCK_BYTES = 64 << 20


class RawImages:
    """Validated images left as the caller gave them, converted batch by batch.

    What :func:`check_images` returns, float32 ``(n, C, H, W)`` (uint8
    divided by 255), without making it whole: estimators read batches of
    rows (``images[index]``, or :meth:`read` for the unconverted values) so
    that uint8 sets stay 4x smaller than as floats, and memory-mapped ones
    stay on disk. Rows of a file-backed ``np.memmap`` (or ``np.load(...,
    mmap_mode="r")``) are read with ``os.preadv`` from the file, not through
    the mapping: pages touched through a mapping count in the process's
    resident memory until the kernel reclaims them, so a pass over a set
    larger than RAM would look like (and compete with) a process that holds
    it all. The caller's array is never written to or copied whole.

    Parameters
    ----------
    array : ndarray of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Validated images, uint8 or another numeric dtype.
    image_shape : tuple of int (H, W, C)

    Attributes
    ----------
    shape : tuple of int (n, C, H, W)
        The shape of the converted images.
    dtype : numpy dtype
        The dtype of ``array``.
    scale : float
        What the values are multiplied by: 1/255 for uint8, else 1.
    """

    def __init__(self, array, image_shape):
        self.array = array
        self.image_shape = tuple(int(s) for s in image_shape)
        height, width, channels = self.image_shape
        self.shape = (len(array), channels, height, width)
        self.dtype = array.dtype
        self.scale = 1 / 255 if array.dtype == np.uint8 else 1.0
        self._file = _file_rows(array, int(np.prod(self.image_shape)) * array.dtype.itemsize)

    def __len__(self):
        return self.shape[0]

    @property
    def ndim(self):
        return 4

    @property
    def nbytes(self):
        """Bytes of the caller's data (not of its float32 conversion)."""
        return len(self) * int(np.prod(self.image_shape)) * self.dtype.itemsize

    @property
    def streamed(self):
        """Whether the rows live in a memory-mapped file rather than in memory."""
        return _mapping(self.array) is not None

    def nhwc(self):
        """The caller's images as ``(n, H, W, C)``, unconverted (a view where numpy can)."""
        return self.array.reshape(len(self), *self.image_shape)

    def read(self, index, out=None):
        """Rows ``index`` unconverted, as ``(len(index), H, W, C)`` in the caller's dtype.

        Parameters
        ----------
        index : slice or array-like of int
            Rows, in the order wanted (any order; repeats allowed).
        out : ndarray of shape (len(index), H, W, C), default=None
            C-contiguous buffer to read into (a pinned one, for CUDA).

        Returns
        -------
        rows : ndarray
            ``out`` when given, else a new array.
        """
        rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        rows = rows.astype(np.int64, copy=False).reshape(-1)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} images")
        rows = np.where(rows < 0, rows + len(self), rows)
        if out is None:
            out = np.empty((len(rows), *self.image_shape), self.dtype)
        if self._file is None:
            # In memory: numpy's gather (for a mapping that cannot be read as a
            # file, through the mapping).
            np.take(self.array, rows, axis=0, out=out.reshape(len(rows), *self.array.shape[1:]))
        else:
            self._file.read(rows, out)
        return out

    def blocks(self, max_bytes=None):
        """(start, rows) over all the images, unconverted, about ``max_bytes`` at a time."""
        max_bytes = _BLOCK_BYTES if max_bytes is None else max_bytes
        step = max(1, max_bytes // max(1, self.nbytes // max(1, len(self))))
        for start in range(0, len(self), step):
            yield start, self.read(slice(start, start + step))

    def __getitem__(self, index):
        """Rows ``index`` converted: float32 ``(n, C, H, W)`` as :func:`check_images` gives."""
        rows = self.read(index)
        images = rows.astype(np.float32)
        if self.dtype == np.uint8:
            images /= 255.0
        return _to_nchw(images, self.image_shape)

    def __array__(self, dtype=None, copy=None):
        """All the images converted (the whole set in memory: for small sets only)."""
        images = self[slice(None)]
        return images if dtype is None else images.astype(dtype, copy=False)

    def max(self):
        """Largest unconverted value, read block by block."""
        return max(float(rows.max()) for _, rows in self.blocks())

    def min_max(self):
        """Smallest and largest unconverted value; a ValueError for NaN or infinity."""
        low, high, bad = np.inf, -np.inf, 0
        for _, rows in self.blocks():
            block_low, block_high = float(rows.min()), float(rows.max())
            if not (np.isfinite(block_low) and np.isfinite(block_high)):
                bad += int(_count_not_finite(rows))
            low, high = min(low, block_low), max(high, block_high)
        if bad:
            raise _not_finite(bad, len(self))
        return low, high


class _FileRows:
    """Rows of a memory-mapped array read from its file with ``os.preadv``.

    ``first`` is the file position of row 0 and ``stride`` the distance
    between rows; each row is ``row_bytes`` contiguous bytes.
    """

    def __init__(self, filename, first, stride, row_bytes):
        self.filename, self.first, self.stride, self.row_bytes = filename, first, stride, row_bytes

    def read(self, rows, out):
        if not out.flags.c_contiguous or out.nbytes != len(rows) * self.row_bytes:
            raise ValueError("out must be a C-contiguous buffer of len(rows) rows")
        buffer = memoryview(out.reshape(-1).view(np.uint8))
        size = self.row_bytes
        fd = os.open(self.filename, os.O_RDONLY)
        try:
            i = 0
            while i < len(rows):
                # One call per run of consecutive rows (all of a slice; after a
                # shuffle, mostly single rows).
                j = i + 1
                if self.stride == size:
                    while j < len(rows) and rows[j] == rows[j - 1] + 1:
                        j += 1
                want = (j - i) * size
                got = os.preadv(fd, [buffer[i * size : j * size]],
                                self.first + int(rows[i]) * self.stride)
                if got != want:
                    raise OSError(
                        f"{self.filename} ended while reading image {int(rows[i])}: the "
                        "file is shorter than the memory-mapped array (truncated since?)."
                    )
                i = j
        finally:
            os.close(fd)


def _file_rows(array, row_bytes):
    """A :class:`_FileRows` for an array viewing a file mapping, or None.

    None for in-memory arrays, for mappings without a file name, for
    copy-on-write mappings (their pages may differ from the file), and for
    rows that are not contiguous: those are read through the mapping.
    """
    memmap = _mapping(array)
    if not isinstance(memmap, np.memmap) or not hasattr(os, "preadv"):
        return None
    if memmap.filename is None or memmap.mode == "c" or len(array) == 0:
        return None
    row = array[0]
    if not row.flags.c_contiguous or array.strides[0] < row_bytes:
        return None
    # np.memmap maps from the offset rounded down to the allocation granularity.
    start = memmap.offset - memmap.offset % mmap.ALLOCATIONGRANULARITY
    base = np.frombuffer(memmap._mmap, np.uint8).ctypes.data
    first = start + (array.ctypes.data - base)
    return _FileRows(memmap.filename, first, array.strides[0], row_bytes)


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


def _warn_at_caller(message, category=UserWarning):
    """``warnings.warn`` pointing at the first frame outside skface and scikit-learn."""
    warn_at_caller(message, category, internal=(_SKLEARN_DIR,))


def _scale_advice(fitted, now):
    """What to do when images on the ``now`` scale reach a model fitted on ``fitted``."""
    if fitted == "uint8":
        return "Pass the images as uint8, as in fit, or divide them by 255 (X / 255.0)."
    if fitted == "unit":
        return "Divide the images by 255 (X / 255.0), as in fit, or pass them as uint8."
    if now == "uint8":
        return (
            "Pass the pixels as floats (X.astype(np.float32)), as in fit: uint8 input is "
            "divided by 255."
        )
    return "Multiply the images by 255 (as floats, not uint8), as in fit."


def _is_spatial(estimator):
    """Whether ``estimator``'s model reads the 2-D arrangement of the pixels."""
    return bool(getattr(estimator, "_spatial_input", True))


class ImageInputMixin:
    """Image input for estimators with an ``image_shape`` parameter.

    ``fit`` records the image shape (and ``n_features_in_``, and
    ``feature_names_in_`` for DataFrames) and the input scale
    (``input_scale_``); later calls must pass images of that shape, in any
    of the layouts :func:`check_images` reads, and are warned when their
    scale differs.

    Flat input: a model that reads the 2-D arrangement of the pixels
    (``_spatial_input``: every skface image estimator except the fully
    connected :class:`~skface.estimators.DBNReconstructor`) needs
    ``image_shape`` to fit on flat ``(n, H*W*C)`` rows, and raises a
    ValueError without it, whatever the row length (a fetcher's ``.data``,
    e.g. LFW's 62x47 = 2914 values, would otherwise be read as 1x2914
    strips). ``image_shape=(1, -1)`` reads rows as strips on purpose. After
    fit, flat rows of the fitted size are read in the fitted shape. A fully
    connected model reads flat rows without ``image_shape`` as strips.

    Input scale: ``input_scale_`` is one of

    - ``"uint8"``: uint8 pixels, divided by 255 into [0, 1];
    - ``"unit"``: other dtypes, values in [0, 2] (floats in [0, 1], with
      room for interpolation overshoot and brightness changes);
    - ``"0-255"``: other dtypes, non-negative, largest value above 32
      (floats or ints in [0, 255], taken as they are);
    - ``"other"``: anything else, whose scale the range does not tell:
      negative values (centred or standardised data), or a largest value
      between 2 and 32.

    ``transform``/``predict`` warn (UserWarning) when a batch's scale is
    not what the model saw in fit: uint8 or [0, 1] at fit and 0-255 now,
    or 0-255 at fit and [0, 1] or uint8 now. uint8 and [0, 1] floats are
    the same scale (uint8 is divided by 255), and an "other" batch or fit,
    or an all-zero batch, is never warned about,
    nor is any input of a model whose output does not depend on the scale
    (``_input_scale_matters = False``). The cost is one min and one max per
    call, which also check finiteness.

    Attributes
    ----------
    _spatial_input : bool, class attribute, default=True
        Whether the model reads the 2-D arrangement of the pixels
        (DBNReconstructor, fully connected, sets False).
    _input_scale_matters : bool, class attribute, default=True
        Whether the output depends on the input's scale: False turns the
        scale warning off.
    """

    _spatial_input = True
    _input_scale_matters = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def _image_shape_param(self):
        """The ``image_shape`` that reads flat rows (a hook: heads fall back on their encoder's)."""
        return self.image_shape

    def _validate_images(self, X, *, reset, any_size=False, raw=False):
        """Images as float32 (n, C, H, W) and the caller's layout.

        With ``raw``, uint8 images and memory-mapped arrays come back as
        :class:`RawImages`, unconverted (for estimators that read them in
        batches).

        With ``reset`` the image shape, ``n_features_in_`` (and
        ``feature_names_in_`` for DataFrames) and ``input_scale_`` are
        recorded; otherwise the images must match the shape, and a batch on
        another scale than in fit is warned about. With ``any_size`` (and
        not ``reset``) 3-D and 4-D images of any size pass; flat rows are
        still read in the fitted shape.
        """
        if not reset:
            check_is_fitted(self)
        image_shape, fitted_shape = self._image_shape_param(), None if reset else self.image_shape_
        if any_size and not reset and np.ndim(X) != 2:
            # Images that carry their own size: neither shape applies to them.
            image_shape = fitted_shape = None
        images, layout, scale = _check_images(
            X, image_shape=image_shape, fitted_shape=fitted_shape,
            spatial=_is_spatial(self), estimator=self, raw=raw,
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
            self.input_scale_ = scale.kind
        else:
            self._check_input_scale(scale)
        return images, layout

    def _check_input_scale(self, scale):
        """Warn when a batch's scale differs from the one seen in fit."""
        if not self._input_scale_matters:
            return
        # Models fitted before input_scale_ existed have none to compare with.
        fitted = getattr(self, "input_scale_", None)
        seen, now = _SCALE_SEEN.get(fitted), _SCALE_SEEN.get(scale.kind)
        if seen is None or now is None or seen == now:
            return
        high = scale.largest()
        if high == 0:
            return
        _warn_at_caller(
            f"{type(self).__name__} was fitted on {_SCALE_WORDS[fitted]}, but X holds "
            f"{_SCALE_WORDS[scale.kind]} (largest value {high:.4g}): the model sees "
            f"them on a scale about 255 times {'larger' if now == '0-255' else 'smaller'} "
            f"than in training, and its output is meaningless. "
            f"{_scale_advice(fitted, scale.kind)}"
        )
