"""FaceDetector: face boxes and 5 landmarks per image, by a registered backend (MTCNN, the cascade)."""

import numbers
import os
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._params import check_choice, check_number
from ._backends import check_detections, get_detector
from ._images import read_image_list
from ._templates import FIVE_POINTS

__all__ = ["Detections", "FaceDetector"]

_SELECT = ("largest", "score", "center")


class Detections(NamedTuple):
    """The faces found in one image.

    Attributes
    ----------
    boxes : ndarray of shape (k, 4)
        x0, y0, x1, y1 in pixels of the image, float32, in ``select`` order.
    scores : ndarray of shape (k,)
        Face probability (MTCNN's O-Net); NaN for the cascade, which gives none.
    landmarks : ndarray of shape (k, 5, 2) or None
        (x, y) of the left eye, right eye, nose tip, left and right mouth
        corners (left and right as seen in the image); None for the cascade.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray


def _order(det, select, shape):
    boxes, scores, landmarks = det
    if len(boxes) == 0:
        return Detections(boxes, scores, landmarks)
    if select == "score" and not np.isnan(scores).all():
        key = -scores
    elif select == "center":
        height, width = shape
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        key = np.hypot(centres[:, 0] - (width - 1) / 2, centres[:, 1] - (height - 1) / 2)
    else:  # largest (and "score" for the cascade, which has no scores)
        key = -(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(key, kind="stable")
    return Detections(boxes[order], scores[order], None if landmarks is None else landmarks[order])


def _check_fit_input(X, image_shape, name):
    """Validate arrays given to a fit that learns nothing (files are left unread)."""
    if X is None:
        return
    if isinstance(X, (list, tuple)) and any(isinstance(x, (str, os.PathLike)) for x in X):
        return
    read_image_list(X, image_shape=image_shape, estimator=name)


class FaceDetector(TransformerMixin, BaseEstimator):
    """Faces in images: a box (and, with MTCNN, 5 landmarks) for each.

    Backends are plugins of the ``skface.detectors`` entry-point group
    (see :class:`DetectorBackend` and :func:`list_detectors`); three are
    built in:

    - ``"cascade"``: scikit-image's LBP frontal-face cascade, bundled with
      scikit-image (nothing to download); boxes only, CPU.
    - ``"mtcnn"``: the three-stage MTCNN of Zhang et al. (2016) with the
      pretrained P-, R- and O-Net weights of facenet-pytorch 2.5.3 (MIT
      licence), fetched once into the cache from the package index, pinned
      by sha256 (see :func:`skface.align.fetch_mtcnn_weights`); boxes,
      scores and 5 landmarks, batched on the GPU when ``device`` is one.
    - ``"tiny_face"``: face-api's Tiny Face Detector (a separable Tiny YOLO
      v2, MIT licence, weights from the ``@vladmandic/face-api`` 1.7.15 npm
      tarball, pinned by sha256 and converted once); boxes and scores only.
      It finds 64 % of the 770 YouTube Faces test frames (MTCNN 100 %), so
      it is not the default.

    The detector learns nothing: ``fit`` only checks the parameters, and a
    fitted detector can be cloned, pickled and saved like any estimator.

    Parameters
    ----------
    backend : str, default="mtcnn"
        A registered detector name: "mtcnn" (its weights are downloaded at
        the first detection, about 2 MB, pinned by sha256), "cascade" (no
        download: the choice offline), or a third party's (see
        :func:`list_detectors`). MTCNN is the default because it finds
        more faces: all 770 YouTube Faces test frames against the
        cascade's 73 % (``bench/RESULTS.md``).
    min_face_size : int, default=20
        Smallest face searched, in pixels of the image.
    select : {"largest", "score", "center"}, default="largest"
        Which face is each image's first (the one ``transform`` reports and
        :class:`FaceAligner` aligns): the largest box, the highest score
        (MTCNN; the cascade falls back on the largest), or the box nearest
        the image's centre.
    thresholds : tuple of 3 floats, default=(0.6, 0.7, 0.7)
        MTCNN's face-probability thresholds for its P-, R- and O-Net stages.
    device : str, default="auto"
        Torch device for MTCNN; "auto" picks CUDA when available.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows.

    Attributes
    ----------
    backend_ : str
    device_ : str
        The torch device MTCNN runs on.

    Examples
    --------
    >>> from skimage import data
    >>> from skface.align import FaceDetector
    >>> detector = FaceDetector().fit([data.astronaut()])
    >>> [faces] = detector.detect([data.astronaut()])
    >>> len(faces.boxes)
    1
    """

    def __init__(self, backend="mtcnn", *, min_face_size=20, select="largest",
                 thresholds=(0.6, 0.7, 0.7), device="auto", image_shape=None):
        self.backend = backend
        self.min_face_size = min_face_size
        self.select = select
        self.thresholds = thresholds
        self.device = device
        self.image_shape = image_shape

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _check_params(self):
        backend = get_detector(self.backend)
        check_choice("select", self.select, _SELECT)
        check_number("min_face_size", self.min_face_size, numbers.Integral, low=1)
        try:
            thresholds = tuple(float(t) for t in self.thresholds)
        except (TypeError, ValueError):
            thresholds = ()
        if len(thresholds) != 3 or not all(0 <= t < 1 for t in thresholds):
            raise ValueError(
                f"thresholds must be 3 probabilities in [0, 1), one per MTCNN stage, got "
                f"{self.thresholds!r}."
            )
        from .._device import resolve_device

        return backend, resolve_device(self.device), thresholds

    def fit(self, X=None, y=None):
        """Check the parameters; the detector learns nothing from ``X``.

        Parameters
        ----------
        X : array-like, list or None, default=None
            Checked when given (as :meth:`transform` reads it); nothing is
            learnt from it. Lists of files are not read here.
        y : ignored

        Returns
        -------
        self : FaceDetector
        """
        _, self.device_, _ = self._check_params()
        self.backend_ = self.backend
        _check_fit_input(X, self.image_shape, "FaceDetector")
        return self

    def detect(self, X):
        """Every face found in each image.

        Parameters
        ----------
        X : array-like of shape (n, H, W[, C]) or (n, H*W*C), or list
            Equal-size images, or a list of images of any sizes or of image
            file paths (see :class:`FaceAligner`).

        Returns
        -------
        detections : list of Detections
            One per image, faces in ``select`` order (empty arrays when none).
        """
        batch = read_image_list(X, image_shape=self.image_shape, estimator="FaceDetector")
        return self._detect_batch(batch)

    def _detect_batch(self, batch):
        backend, device, thresholds = self._check_params()
        images = [batch.as_uint8(i) for i in range(len(batch.images))]
        raw = backend.detect(images, min_face_size=self.min_face_size, thresholds=thresholds,
                             device=device)
        raw = check_detections(raw, images, self.backend)
        return [_order(det, self.select, image.shape[:2]) for det, image in zip(raw, images)]

    def transform(self, X):
        """Each image's first face (see ``select``) as one row.

        Parameters
        ----------
        X : array-like or list
            As for :meth:`detect`.

        Returns
        -------
        faces : ndarray of shape (n, 16)
            ``n_faces``, the box ``x0, y0, x1, y1``, ``score`` and the 5
            landmarks (``left_eye_x, left_eye_y, ...``), float64; NaN where
            no face was found (``n_faces`` 0) or the backend gives no score
            or landmarks. See :meth:`get_feature_names_out`.
        """
        detections = self.detect(X)
        out = np.full((len(detections), 16), np.nan)
        for row, det in zip(out, detections):
            row[0] = len(det.boxes)
            if len(det.boxes):
                row[1:5] = det.boxes[0]
                row[5] = det.scores[0]
                if det.landmarks is not None:
                    row[6:] = det.landmarks[0].ravel()
        return out

    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s 16 columns.

        Returns
        -------
        names : ndarray of str of shape (16,)
        """
        points = [f"{p}_{axis}" for p in FIVE_POINTS for axis in "xy"]
        return np.array(["n_faces", "x0", "y0", "x1", "y1", "score", *points], dtype=object)
