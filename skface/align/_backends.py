"""Detector backends: the ``skface.detectors`` entry-point group, the built-in cascade and MTCNN."""

import functools

import numpy as np

from .._plugins import get_plugin, load_group

__all__ = ["DetectorBackend", "ENTRY_POINT_GROUP", "get_detector", "list_detectors"]

ENTRY_POINT_GROUP = "skface.detectors"

# The built-ins as pyproject.toml declares them; used only when the installed
# metadata lacks them (an editable install older than the entry-point table).
_BUILTIN = {
    "cascade": "skface.align._backends:CascadeBackend",
    "mtcnn": "skface.align._backends:MTCNNBackend",
    "tiny_face": "skface.align._tiny_face:TinyFaceBackend",
}


class DetectorBackend:
    """What a :class:`FaceDetector` backend provides; subclassing it is optional.

    A backend is registered under the ``skface.detectors`` entry-point
    group as a class (or factory) called with no arguments; the object it
    returns needs a ``detect`` method and may set ``landmarks``::

        [project.entry-points."skface.detectors"]
        my_detector = "my_package:MyDetector"

    Then ``FaceDetector("my_detector")`` uses it.

    Attributes
    ----------
    landmarks : bool, default=False
        Whether ``detect`` gives the 5 points (eye centres, nose tip, mouth
        corners) that :class:`FaceAligner` ``landmarks="auto"`` aligns on;
        without them it aligns on the box.
    """

    landmarks = False

    def detect(self, images, *, min_face_size, thresholds, device):
        """The faces in each image.

        Parameters
        ----------
        images : list of ndarray of shape (H_i, W_i, 3), uint8
            RGB images, sizes may differ.
        min_face_size : int
            Smallest face side looked for, in pixels.
        thresholds : tuple of 3 float
            :class:`FaceDetector`'s ``thresholds`` (MTCNN's per-stage face
            probabilities); other backends may ignore them.
        device : str
            The resolved torch device ("cpu", "cuda:0"); a CPU-only backend
            ignores it.

        Returns
        -------
        detections : list of tuple (boxes, scores, landmarks)
            One per image: ``boxes`` (k, 4) x0, y0, x1, y1 in pixels;
            ``scores`` (k,) face probabilities (NaN where the backend has
            none); ``landmarks`` (k, 5, 2) (x, y) of the left eye, right
            eye, nose tip, left and right mouth corners, or None.
        """
        raise NotImplementedError(f"{type(self).__name__}.detect is not implemented.")


class CascadeBackend(DetectorBackend):
    """scikit-image's LBP frontal-face cascade, bundled with scikit-image: boxes only, CPU."""

    landmarks = False

    def detect(self, images, *, min_face_size, thresholds=None, device=None):
        from ._cascade import detect_cascade

        return detect_cascade(images, min_face_size=min_face_size)


class MTCNNBackend(DetectorBackend):
    """MTCNN with facenet-pytorch 2.5.3's weights (fetched once, pinned): boxes, scores, 5 points."""

    landmarks = True

    def detect(self, images, *, min_face_size, thresholds, device):
        # torch loads with the first MTCNN detection, not with skface.align.
        from ..parallel import fit_threads
        from ._mtcnn import detect_mtcnn

        # The thread rule of fits (skface.parallel.fit_threads) for the networks too.
        with fit_threads():
            return detect_mtcnn(images, weights=_mtcnn_nets(device), device=device,
                                min_face_size=min_face_size, thresholds=thresholds)


@functools.lru_cache(maxsize=4)
def _mtcnn_nets(device):
    """MTCNN's three nets on ``device``, read from the cache once per process."""
    from ..datasets import DownloadError
    from ._mtcnn import fetch_mtcnn_weights, load_mtcnn_nets

    try:
        weights = fetch_mtcnn_weights()
    except DownloadError as exc:
        # MTCNN is the default detector: say what works offline.
        raise DownloadError(
            f"{exc} FaceDetector('cascade') (scikit-image's bundled cascade) needs no download."
        ) from exc
    return load_mtcnn_nets(weights, device=device)


def list_detectors():
    """Names of every registered detector backend, sorted.

    Returns
    -------
    names : list of str
    """
    return sorted(load_group(ENTRY_POINT_GROUP, kind="detector", builtins=_BUILTIN))


def get_detector(name):
    """A new backend object of the detector registered under ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    backend : object with a ``detect`` method (see :class:`DetectorBackend`)

    Raises
    ------
    ValueError
        If no detector of that name is registered (the message lists the
        available ones), or ``name`` is not a string.
    TypeError
        If the registered factory does not make an object with ``detect``.
    """
    if not isinstance(name, str):
        raise ValueError(
            f"backend must be a detector name ({', '.join(list_detectors())}), got "
            f"{type(name).__name__}."
        )
    factory = get_plugin(ENTRY_POINT_GROUP, name, kind="detector", builtins=_BUILTIN)
    backend = factory()
    if not callable(getattr(backend, "detect", None)):
        raise TypeError(
            f"skface detector plugin {name!r} ({_where(factory)}) made a "
            f"{type(backend).__name__} with no detect method; a backend needs "
            "detect(images, *, min_face_size, thresholds, device) (see "
            "skface.align.DetectorBackend)."
        )
    return backend


def check_detections(raw, images, name):
    """A backend's output as per-image (boxes, scores, landmarks) float32 arrays, checked."""
    try:
        raw = list(raw)
    except TypeError:
        raw = None
    if raw is None or len(raw) != len(images):
        raise ValueError(
            f"skface detector {name!r} returned {'no list' if raw is None else len(raw)} "
            f"detection(s) for {len(images)} image(s); detect must give one "
            "(boxes, scores, landmarks) per image."
        )
    out = []
    for i, det in enumerate(raw):
        try:
            boxes, scores, landmarks = det
            boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
            scores = np.asarray(scores, dtype=np.float32).reshape(len(boxes))
            if landmarks is not None:
                landmarks = np.asarray(landmarks, dtype=np.float32).reshape(len(boxes), 5, 2)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"skface detector {name!r} gave image {i} a malformed detection ({exc}); "
                "each is (boxes (k, 4), scores (k,), landmarks (k, 5, 2) or None)."
            ) from None
        out.append((boxes, scores, landmarks))
    return out


def _where(factory):
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', factory)}"
