"""FaceAligner: detected faces warped so that eyes, nose and mouth sit at fixed template positions."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from .._params import check_choice, check_number
from .._warnings import warn_at_caller
from ._backends import get_detector
from ._detector import FaceDetector, _check_fit_input
from ._images import read_image_list, restore_images
from ._templates import TEMPLATES, align_indices, template_points

__all__ = ["FaceAligner", "NoFaceError", "similarity_matrix"]

_NO_FACE = ("center", "raise")

# The shared 68-point keypoint set frames each face with its image side about
# 2.4 times the side of the points' box (median 2.3 wide, 2.5 high), the box's
# centre 5 % of that side below the image's centre: a KeypointRegressor trained
# on it sees faces framed so, and the aligner frames its crops the same way.
_KEYPOINT_FRAME = 2.4
_KEYPOINT_DROP = 0.05


class NoFaceError(ValueError):
    """No face was found in some images and ``no_face="raise"``."""


def similarity_matrix(src, dst):
    """The least-squares similarity (rotation, uniform scale, shift) taking ``src`` to ``dst``.

    Umeyama's (1991) closed form, without reflection.

    Parameters
    ----------
    src, dst : ndarray of shape (k, 2)
        Corresponding (x, y) points, k >= 2.

    Returns
    -------
    matrix : ndarray of shape (3, 3)
        Homogeneous: ``matrix @ [x, y, 1]`` is the mapped point.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_src, dst - mu_dst
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    variance = (s**2).sum() / len(src)
    scale = np.trace(np.diag(sigma) @ sign) / variance if variance > 0 else 1.0
    matrix = np.eye(3)
    matrix[:2, :2] = scale * rotation
    matrix[:2, 2] = mu_dst - scale * rotation @ mu_src
    return matrix


def _box_frame(box, frame, drop):
    """Corners (top-left, bottom-right) of a square ``frame`` times a box's side, around it."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * frame
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - drop * side
    return np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2]])


def _corner_matrix(corners, size):
    """The scale-and-shift taking a square's corners to an ``size``-pixel crop's edges."""
    out = np.array([[0.0, 0.0], [size, size]])
    return similarity_matrix(np.array([corners[0], corners[1], [corners[0][0], corners[1][1]]]),
                             np.array([out[0], out[1], [out[0][0], out[1][1]]]))


def _warp(image, matrix, size):
    """``image`` (H, W, C) warped by ``matrix`` (image to crop) into ``size x size``.

    Shrinking smooths first (Gaussian, sigma (1/scale - 1) / 2, as
    scikit-image's antialiased ``rescale``), so small crops of large
    photos do not alias.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.transform import warp

    image = np.asarray(image, dtype=np.float32)  # uint8 images are kept as given until here
    scale = np.sqrt(abs(np.linalg.det(matrix[:2, :2])))
    # skface's coordinates put pixel (0, 0)'s centre at (0.5, 0.5); scikit-image's at 0.
    shift = np.eye(3)
    shift[:2, 2] = -0.5
    matrix = shift @ matrix @ np.linalg.inv(shift)
    if scale < 1:
        sigma = (1 / scale - 1) / 2
        image = gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest")
    return warp(image, np.linalg.inv(matrix), output_shape=(size, size), order=1,
                mode="edge", preserve_range=True).astype(np.float32)


def _apply(matrix, points):
    return points @ matrix[:2, :2].T + matrix[:2, 2]


class FaceAligner(TransformerMixin, BaseEstimator):
    """Aligned face crops: a detector's faces warped onto a fixed template.

    For each image the detector's first face (see
    :class:`FaceDetector`'s ``select``) is warped by a similarity (rotation,
    uniform scale, shift) that puts its landmarks where OpenFace's mean face
    has them, in a ``size x size`` crop: the eyes, nose and mouth of every
    crop land on the same pixels, whatever the framing, size and tilt of the
    face in the image.

    Landmarks come from, in order of accuracy:

    - a fitted 68-point :class:`~skface.estimators.KeypointRegressor`
      (``landmarks=model``), run on a crop around the detector's box framed
      as the shared keypoint set frames its faces, then again around its own
      first estimate; the brows, eyes, nose and mouth (points 17-67) are
      fitted;
    - the detector's 5 points (MTCNN's, ``FaceDetector("mtcnn")``, or any
      backend that gives them; ``landmarks="auto"``): eye centres, nose tip
      and mouth corners, against the same template's 5 points;
    - the box alone (``FaceDetector("cascade")``, or ``landmarks="box"``):
      the box is taken as the template's face box, a scale and shift
      without rotation.

    Parameters
    ----------
    detector : FaceDetector, default=None
        None uses ``FaceDetector()`` (MTCNN; ``FaceDetector("cascade")``
        needs no download). Cloned in fit.
    landmarks : "auto", "box" or KeypointRegressor, default="auto"
        "auto" uses the detector's landmarks where it gives them (MTCNN),
        else the box. A fitted 68-point KeypointRegressor (from ``fit`` or
        :func:`skface.load`) is used as given, not refitted; wrap it in
        :class:`sklearn.frozen.FrozenEstimator` so that ``clone`` (and so a
        grid search) keeps it fitted.
    size : int, default=96
        Side of the aligned crops, in pixels.
    padding : float, default=0.0
        Margin around the template's face box (jaw to brows), as a fraction
        of its side on each side: 0 crops as tightly as OpenFace does, and
        as UTKFace's released chips are framed (their median, measured
        through MTCNN's points, is -0.01); 0.25 keeps some hair and the ears.
    template : {"openface", "dlib"}, default="openface"
        The mean face the landmarks are warped onto (see
        :func:`template_points`): OpenFace's, or dlib's, whose face box
        spans brows to mouth (``size=150, padding=0.25`` gives dlib's face
        chips, which dlib's ResNet face descriptor was trained on). With a
        68-point model, dlib's template fits points 27-54 and 60-64, as dlib
        does.
    no_face : {"center", "raise"}, default="center"
        When the detector finds no face in an image: "center" crops the
        centre square instead, gives one warning per call saying how many
        of how many and naming the first few, and records which in
        ``not_found_`` (by ``fit_transform``) and :meth:`align`'s
        ``found``, so that a long fit in a Pipeline is not lost over a few
        faceless images; "raise" raises a :class:`NoFaceError` naming them (after detecting every
        image of the call: the detection is the expensive part, and the
        error names all of them at once).
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows.

    Attributes
    ----------
    detector_ : FaceDetector
        The fitted clone of ``detector``.
    landmarks_ : {"box", "detector", "regressor"}
        Where the landmarks come from.
    landmark_model_ : KeypointRegressor or None
        The regressor given (not a copy).
    not_found_ : list of str
        Set by :meth:`fit_transform` (what a Pipeline's ``fit`` calls): the
        names of its images where no face was found and the centre was
        cropped (file names, else ``"image <i>"``); empty when every image
        had a face. :meth:`transform` changes no attribute: its warning
        names the first few, and :meth:`align`'s ``found`` says which.

    Examples
    --------
    >>> from skimage import data
    >>> from skface.align import FaceAligner
    >>> crops = FaceAligner(size=64).fit_transform([data.astronaut()])
    >>> crops.shape
    (1, 64, 64, 3)
    """

    def __init__(self, detector=None, landmarks="auto", *, size=96, padding=0.0,
                 template="openface", no_face="center", image_shape=None):
        self.detector = detector
        self.landmarks = landmarks
        self.size = size
        self.padding = padding
        self.template = template
        self.no_face = no_face
        self.image_shape = image_shape

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _check_params(self):
        check_number("size", self.size, numbers.Integral, low=8)
        check_number("padding", self.padding, low=0, high=2, high_inclusive=True)
        check_choice("no_face", self.no_face, _NO_FACE)
        check_choice("template", self.template, TEMPLATES)
        detector = FaceDetector() if self.detector is None else self.detector
        if not isinstance(detector, FaceDetector):
            raise TypeError(
                f"detector must be a skface.align.FaceDetector or None, got "
                f"{type(detector).__name__}."
            )
        return detector

    def _resolve_landmarks(self, detector):
        if isinstance(self.landmarks, str):
            check_choice("landmarks", self.landmarks, ("auto", "box"))
            if self.landmarks == "auto" and getattr(get_detector(detector.backend), "landmarks", False):
                return "detector", None
            return "box", None
        from ..estimators import KeypointRegressor

        model = getattr(self.landmarks, "estimator", self.landmarks)  # FrozenEstimator
        if not isinstance(model, KeypointRegressor):
            raise TypeError(
                "landmarks must be 'auto', 'box' or a fitted KeypointRegressor (or one in "
                f"FrozenEstimator), got {type(self.landmarks).__name__}."
            )
        try:
            check_is_fitted(model)
        except Exception as exc:
            raise ValueError(
                "The KeypointRegressor given as landmarks is not fitted: fit it on 68-point "
                "keypoint data first (or load one with skface.load), and wrap it in "
                "sklearn.frozen.FrozenEstimator so that clone keeps it fitted."
            ) from exc
        if model.n_keypoints_ != 68:
            raise ValueError(
                f"The KeypointRegressor given as landmarks predicts {model.n_keypoints_} "
                "points; the aligner's template needs the 68-point iBUG layout."
            )
        return "regressor", model

    def fit(self, X=None, y=None):
        """Check the parameters and fit the detector; nothing is learnt from ``X``.

        Parameters
        ----------
        X : array-like, list or None, default=None
            Checked when given (as :meth:`transform` reads it); nothing is
            learnt from it. Lists of files are not read here.
        y : ignored

        Returns
        -------
        self : FaceAligner
        """
        detector = self._check_params()
        self.landmarks_, self.landmark_model_ = self._resolve_landmarks(detector)
        self.detector_ = clone(detector).fit()
        _check_fit_input(X, self.image_shape, "FaceAligner")
        return self

    def transform(self, X):
        """Aligned crops of each image's face.

        Parameters
        ----------
        X : array-like of shape (n, H, W[, C]) or (n, H*W*C), or list
            Equal-size images (uint8, or floats in [0, 1] or [0, 255]), or
            a list whose items are images of any sizes or image file paths.

        Returns
        -------
        crops : ndarray of shape (n, size, size, C)
            (n, size, size) for grey ``(n, H, W)`` input and flat rows
            ``(n, size*size*C)`` for flat input; uint8 for uint8 images and
            files, else float32 on the input's scale.
        """
        return self.align(X).images

    def fit_transform(self, X, y=None):
        """Fit, then the aligned crops of ``X``; ``not_found_`` names its faceless images.

        What a Pipeline's ``fit`` calls: the same crops as
        ``fit(X).transform(X)``, and the names of the images where no face
        was found are kept in ``not_found_``.

        Parameters
        ----------
        X : array-like or list
            As for :meth:`transform`.
        y : ignored

        Returns
        -------
        crops : ndarray
            As :meth:`transform` returns them.
        """
        self.fit(X)
        result = self._align(X, record="not_found_ names them all")
        self.not_found_ = [name for name, ok in zip(result.names, result.found) if not ok]
        del result["names"]
        return result.images

    def align(self, X):
        """Aligned crops with what was found: boxes, landmarks and which images had a face.

        Parameters
        ----------
        X : array-like or list
            As for :meth:`transform`.

        Returns
        -------
        result : Bunch
            ``images``: the crops, as :meth:`transform` returns them;
            ``found``: bool (n,), False where no face was found and the
            centre was cropped; ``boxes``: (n, 4) x0, y0, x1, y1 of each
            image's face, NaN where none; ``landmarks``: (n, K, 2) the
            points aligned on, in pixels of each image (K is 68, 5 or 2 box
            corners), NaN where none; ``matrices``: (n, 3, 3) each image's
            image-to-crop transform. Coordinates span [0, W] x [0, H] of
            each image (the top-left pixel's centre at (0.5, 0.5)), as
            skface's keypoints do. With a KeypointRegressor all 68 points
            are given, and points 17-67 aligned on.
        """
        result = self._align(X, record="align(X).found says which")
        del result["names"]
        return result

    def _align(self, X, record):
        check_is_fitted(self, "detector_")
        self._check_params()
        batch = read_image_list(X, image_shape=self.image_shape, estimator="FaceAligner")
        detections = self.detector_._detect_batch(batch)
        found = np.array([len(d.boxes) > 0 for d in detections])
        missing = [name for name, ok in zip(batch.names, found) if not ok]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            if self.no_face == "raise":
                raise NoFaceError(
                    f"FaceAligner found no face in {len(missing)} of {len(found)} image(s): "
                    f"{shown}. Leave no_face='center' (the default) to crop their centres "
                    "instead, or try FaceDetector(min_face_size=...) smaller, or another "
                    "backend."
                )
            warn_at_caller(
                f"FaceAligner found no face in {len(missing)} of {len(found)} image(s) "
                f"({shown}) and cropped their centres; {record}. Pass no_face='raise' to "
                "stop instead."
            )
        boxes = np.full((len(found), 4), np.nan)
        for i, det in enumerate(detections):
            if found[i]:
                boxes[i] = det.boxes[0]
        points, targets, use = self._landmarks(batch, detections, boxes, found)
        size = self.size
        crops = np.empty((len(found), size, size, batch.channels), dtype=np.float32)
        matrices = np.empty((len(found), 3, 3))
        for i, image in enumerate(batch.images):
            if found[i]:
                matrix = similarity_matrix(points[i][use], targets[use])
            else:
                height, width = image.shape[:2]
                side = min(height, width)
                top, left = (height - side) / 2, (width - side) / 2
                matrix = _corner_matrix(np.array([[left, top], [left + side, top + side]]), size)
            matrices[i] = matrix
            crops[i] = _warp(image, matrix, size)
        return Bunch(images=restore_images(crops, batch), found=found, boxes=boxes,
                     landmarks=points, matrices=matrices, names=batch.names)

    def _landmarks(self, batch, detections, boxes, found):
        """Each image's points (n, K, 2), NaN where no face, the template's (K, 2), and which to fit."""
        n = len(found)
        if self.landmarks_ == "detector":
            points = np.full((n, 5, 2), np.nan)
            for i, det in enumerate(detections):
                if found[i]:
                    points[i] = det.landmarks[0]
            return points, self._template(5), slice(None)
        if self.landmarks_ == "box":
            # The box as the template's face box (a square around it).
            points = np.full((n, 2, 2), np.nan)
            for i in np.flatnonzero(found):
                points[i] = _box_frame(boxes[i], 1.0, 0.0)
            tpl = self._template(68)
            return points, np.array([np.nanmin(tpl, axis=0), np.nanmax(tpl, axis=0)]), slice(None)
        points = np.full((n, 68, 2), np.nan)
        index = np.flatnonzero(found)
        if len(index):
            frames = [_box_frame(boxes[i], _KEYPOINT_FRAME, _KEYPOINT_DROP) for i in index]
            first = self._predict_points(batch, index, frames)
            # Reframe on the first estimate: detectors box faces differently from the
            # points' own box the regressor learnt its framing on.
            frames = [
                _box_frame((*p.min(axis=0), *p.max(axis=0)), _KEYPOINT_FRAME, _KEYPOINT_DROP)
                for p in first
            ]
            points[index] = self._predict_points(batch, index, frames)
        return points, self._template(68), align_indices(self.template)

    def _template(self, n_points):
        return template_points(n_points, self.size, self.padding, self.template)

    def _predict_points(self, batch, index, frames):
        """The regressor's 68 points of each framed face, in pixels of its image."""
        model = self.landmark_model_
        height, width = model.input_size_
        side = max(height, width)
        channels = model.image_shape_[2]
        crops, matrices = [], []
        for i, corners in zip(index, frames):
            matrix = _corner_matrix(corners, side)
            crop = _warp(batch.images[i], matrix, side) / batch.scale
            if crop.shape[2] != channels:
                crop = crop.mean(axis=2, keepdims=True) if channels == 1 else np.repeat(crop, 3, axis=2)
            crops.append(crop)
            matrices.append(matrix)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # crops on the [0, 1] scale
            predicted = model.predict(np.stack(crops)).reshape(len(index), -1, 2)
        return np.stack([_apply(np.linalg.inv(m), p) for m, p in zip(matrices, predicted)])

    def set_output(self, *, transform=None):
        """Accepted for Pipelines' ``set_output``; crops are images and stay arrays.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None

        Returns
        -------
        self : FaceAligner
        """
        self._output_config = transform
        return self
