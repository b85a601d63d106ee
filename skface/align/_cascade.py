"""scikit-image's LBP frontal-face cascade as a detector backend (bundled: nothing to download)."""

import functools

import numpy as np

__all__ = ["detect_cascade"]


@functools.lru_cache(maxsize=1)
def _cascade():
    from skimage import data
    from skimage.feature import Cascade

    return Cascade(data.lbp_frontal_face_cascade_filename())


def detect_cascade(images, *, min_face_size=20, max_face_size=None, scale_factor=1.2):
    """Frontal faces by the LBP cascade bundled with scikit-image.

    Parameters
    ----------
    images : list of ndarray of shape (H_i, W_i, 3), uint8
    min_face_size, max_face_size : int
        Smallest and largest box side searched, in pixels (None: the image's
        shorter side).
    scale_factor : float, default=1.2
        Ratio of successive window sizes.

    Returns
    -------
    detections : list of (boxes, scores, landmarks)
        Per image: boxes float32 (k, 4) as x0, y0, x1, y1, largest first;
        scores all NaN (the cascade gives none); landmarks None.
    """
    from skimage.color import rgb2gray

    cascade = _cascade()
    out = []
    for image in images:
        grey = rgb2gray(image)
        largest = min(grey.shape) if max_face_size is None else max_face_size
        smallest = min(min_face_size, largest)
        found = cascade.detect_multi_scale(
            img=grey, scale_factor=scale_factor, step_ratio=1,
            min_size=(smallest, smallest), max_size=(largest, largest),
        )
        boxes = np.array(
            [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found],
            dtype=np.float32,
        ).reshape(-1, 4)
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        boxes = boxes[order]
        out.append((boxes, np.full(len(boxes), np.nan, dtype=np.float32), None))
    return out
