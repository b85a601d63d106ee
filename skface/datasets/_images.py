"""Decode image files into one preallocated array (crop, resize, grey or colour)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._common import check_size


_PROGRESS_MIN = 2000  # images


def read_images(paths, *, box=None, size=None, color=False, n_threads=4):
    """Decode images into a float32 array with values in [0, 1].

    Decoding follows scikit-learn's LFW loader exactly (crop, then PIL's
    default resize, then divide by 255, grey = mean of R, G, B) so arrays
    agree with ``sklearn.datasets.fetch_lfw_people`` on the same files.

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

    Returns
    -------
    images : ndarray of shape (n, height, width) or (n, height, width, 3), float32
    """
    from PIL import Image

    paths = list(paths)
    if not paths:
        raise ValueError("No image files to read.")
    size = check_size(size)
    # PIL speaks (width, height): the one conversion from skface's (height, width).
    pil_size = None if size is None else (size[1], size[0])

    def load(path):
        with Image.open(path) as img:
            img = img.convert("RGB") if img.mode != "RGB" else img
            if box is not None:
                img = img.crop(box)
            if pil_size is not None and img.size != pil_size:
                img = img.resize(pil_size)
            face = np.asarray(img, dtype=np.float32)
        face /= 255.0
        return face if color else face.mean(axis=2)

    first = load(paths[0])
    out = np.empty((len(paths),) + first.shape, dtype=np.float32)
    out[0] = first

    def fill(i):
        face = load(paths[i])
        if face.shape != first.shape:
            raise ValueError(
                f"{paths[i]} decodes to shape {face.shape}, unlike {paths[0]} "
                f"({first.shape}); pass a size to resize every image alike."
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
