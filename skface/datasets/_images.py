"""Decode image files into one preallocated array (crop, resize, grey or colour)."""

import os
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._common import check_size


_PROGRESS_MIN = 2000  # images

# What a dataset folder's listing counts as an image. Anything else (Thumbs.db,
# desktop.ini, a README) and every hidden name (.DS_Store, macOS's ._x.jpg
# resource forks) is not a sample, in every fetcher alike.
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm", ".bmp", ".gif", ".tif", ".tiff", ".webp",
)


def is_image_name(name):
    """Whether a file name in a dataset folder is an image: not hidden, an image extension."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder):
    """Sorted names of the image files directly in ``folder`` (see :func:`is_image_name`)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if is_image_name(e.name) and e.is_file())


def _decode_error(path, dataset, exc):
    """An ``OSError`` naming the file, the dataset and what to do, for any decode failure."""
    if isinstance(exc, FileNotFoundError):
        what = "is missing"
        todo = "The image folder is incomplete: re-download or re-extract the dataset."
    else:
        what = f"cannot be decoded ({type(exc).__name__}: {exc})"
        todo = (
            "The file is damaged or truncated: re-download or re-extract the dataset "
            "(or restore this file from a good copy), or remove the file."
        )
    return OSError(f"{dataset or 'skface'}: image {path} {what}. {todo}")


# What PIL raises on a damaged file: truncated data and unknown formats (OSError),
# bad headers (SyntaxError, ValueError, struct.error), early ends (EOFError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)


def image_sizes(paths, *, dataset=None, n_threads=4):
    """(height, width) of each image, from the headers only.

    Parameters
    ----------
    paths : sequence of path-like
        Image files.
    dataset : str, default=None
        Dataset name for error messages.
    n_threads : int, default=4
        Reading threads.

    Returns
    -------
    sizes : ndarray of shape (n, 2), int64
    """
    from PIL import Image

    def size(path):
        try:
            with Image.open(path) as img:
                width, height = img.size  # PIL's order
        except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
            raise _decode_error(path, dataset, exc) from exc
        return height, width

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return np.array(list(pool.map(size, paths)), dtype=np.int64).reshape(-1, 2)


# Pillow's modes of 16- and 32-bit integer pixels. Its convert("RGB") clips them at 255
# (a 16-bit photo turns white): they are read on the 16-bit range instead, as the
# detectors read them (skface.align._images).
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_WHITE_16 = 65535.0


def _wide_to_unit(img):
    """A 16-bit grey PIL image as a mode "F" image of values in [0, 1] (white 65535)."""
    from PIL import Image

    pixels = np.asarray(img, dtype=np.float32)
    return Image.fromarray(np.clip(pixels, 0, _WHITE_16) / _WHITE_16, mode="F")


def read_images(paths, *, box=None, size=None, color=False, n_threads=4, dataset=None):
    """Decode images into a float32 array with values in [0, 1].

    Decoding follows scikit-learn's LFW loader exactly (crop, then PIL's
    default resize, then divide by 255, grey = mean of R, G, B) so arrays
    agree with ``sklearn.datasets.fetch_lfw_people`` on the same files.
    16-bit grey files (PNG, TIFF; Pillow's modes ``"I;16"`` and ``"I"``)
    are divided by 65535 instead, after clipping to 0..65535, and cropped
    and resized as floats: Pillow's RGB conversion would clip them at 255,
    turning them white. In colour their grey is repeated over R, G and B.

    Parameters
    ----------
    paths : sequence of path-like
        Image files; all must decode to the same size after ``box``/``size``.
    box : tuple of int (left, upper, right, lower), default=None
        Crop rectangle in pixels of the source image; None keeps it whole.
    size : int or tuple of int (height, width) or None, default=None
        Output size, rows first like the returned arrays (and every size in
        skface); an int means a square. None keeps the cropped size.
    color : bool, default=False
        RGB output when True, else grey.
    n_threads : int, default=4
        Decoding threads (PIL releases the GIL while decoding).
    dataset : str, default=None
        Dataset name, for error messages.

    Returns
    -------
    images : ndarray of shape (n, height, width) or (n, height, width, 3), float32

    Raises
    ------
    OSError
        If a file is missing, truncated or not an image; the message names
        the file and the dataset and says what to do.
    ValueError
        If the images decode to different shapes and no ``size`` is given.
    """
    from PIL import Image

    paths = list(paths)
    if not paths:
        raise ValueError("No image files to read.")
    size = check_size(size)
    # PIL speaks (width, height): the one conversion from skface's (height, width).
    pil_size = None if size is None else (size[1], size[0])

    def load(path):
        # The one place every fetcher's images are decoded: a damaged file fails
        # here, with its name, whichever dataset it belongs to.
        try:
            with Image.open(path) as img:
                wide = img.mode in _WIDE_MODES
                if wide:
                    img = _wide_to_unit(img)
                elif img.mode != "RGB":
                    img = img.convert("RGB")
                if box is not None:
                    img = img.crop(box)
                if pil_size is not None and img.size != pil_size:
                    img = img.resize(pil_size)
                face = np.array(img, dtype=np.float32)
        except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
            raise _decode_error(path, dataset, exc) from exc
        if wide:
            return np.repeat(face[:, :, None], 3, axis=2) if color else face
        face /= 255.0
        return face if color else face.mean(axis=2)

    first = load(paths[0])
    out = np.empty((len(paths),) + first.shape, dtype=np.float32)
    out[0] = first

    def fill(i):
        face = load(paths[i])
        if face.shape != first.shape:
            raise ValueError(
                f"{dataset or 'skface'}: {paths[i]} decodes to shape {face.shape}, unlike "
                f"{paths[0]} ({first.shape}); pass a size to resize every image alike."
            )
        out[i] = face

    # Each thread writes straight into `out`: no list of per-image arrays, so
    # peak memory stays at the size of the result.
    from tqdm.auto import tqdm

    # A bar only for long decodes, and only on a terminal (disable=None): the
    # first load of a large dataset takes tens of seconds, later ones hit the cache.
    with ThreadPoolExecutor(max_workers=n_threads) as pool, tqdm(
        total=len(paths), initial=1, unit="img", desc="decoding images", leave=False,
        disable=None if len(paths) >= _PROGRESS_MIN else True,
    ) as bar:
        for _ in pool.map(fill, range(1, len(paths))):
            bar.update()
    return out
