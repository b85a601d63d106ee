"""JitterAugmented: an estimator fitted on its images plus randomly moved and zoomed copies."""

import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted

from .._params import check_choice, check_number
from .._validation import _check_image_shape, _flat_error, _flat_shape

__all__ = ["JitterAugmented", "jitter_images"]

_AUGMENT = ("head", "all")
_CHUNK = 1024  # images resampled at once: bounds the float32 working copy


def _fitted_has(name):
    """``available_if`` check: the wrapped (fitted, else given) estimator has ``name``."""

    def check(self):
        return hasattr(getattr(self, "estimator_", self.estimator), name)

    return check


def jitter_images(images, *, shift=0.06, scale=0.08, rotation=6.0, image_shape=None,
                  random_state=None):
    """Copies of images, each moved, zoomed and turned by its own small random similarity.

    Parameters
    ----------
    images : ndarray of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Any numeric dtype; flat rows need ``image_shape``.
    shift : float, default=0.06
        Largest shift, as a fraction of the side, on each axis.
    scale : float, default=0.08
        Largest log zoom (0.08: up to about 8 % larger or smaller).
    rotation : float, default=6.0
        Largest turn, in degrees.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    jittered : ndarray of the shape and dtype of ``images``
        Resampled bilinearly about each image's centre, the edges extended
        by their border pixels; integer images are rounded and clipped to
        their dtype's range.
    """
    import torch

    from ..nn.augment import random_similarity

    images = np.asarray(images)
    if images.dtype.kind not in "uif" or images.ndim not in (2, 3, 4):
        raise ValueError(
            "jitter_images needs an array of images of shape (n, H, W), (n, H, W, C) or "
            f"(n, H*W*C) with numbers, got shape {images.shape} of dtype {images.dtype}."
        )
    shape = images.shape
    if images.ndim == 2:
        one = _flat_shape(shape[1], _check_image_shape(image_shape), None, spatial=True,
                          error=lambda: _flat_error("jitter_images", shape))
        nhwc = images.reshape(len(images), *one)
    else:
        nhwc = images if images.ndim == 4 else images[..., None]
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    generator = torch.Generator().manual_seed(int(seed))
    out = np.empty_like(nhwc)
    for start in range(0, len(nhwc), _CHUNK):
        block = torch.from_numpy(np.ascontiguousarray(nhwc[start : start + _CHUNK],
                                                      dtype=np.float32)).permute(0, 3, 1, 2)
        moved = random_similarity(block, shift=shift, scale=scale, rotation=rotation,
                                  generator=generator).permute(0, 2, 3, 1).numpy()
        if out.dtype.kind in "ui":
            info = np.iinfo(out.dtype)
            moved = np.clip(np.rint(moved), info.min, info.max)
        out[start : start + _CHUNK] = moved
    return out.reshape(shape)


class JitterAugmented(MetaEstimatorMixin, BaseEstimator):
    """An estimator fitted on its images and randomly moved, zoomed and turned copies of them.

    The linear heads over :class:`ConvSDAEFeatures`' spatial codes learn
    where each part of the face sits in the training crops to the pixel:
    on UTKFace a 2-pixel vertical shift of 48x48 test faces costs the
    documented recipe 10 points of gender accuracy (0.90 to 0.80;
    ``bench/align.py --parts shift``). Faces
    from another camera, another crop, or a face aligner's landmarks are
    never framed exactly as the training set was; copies of the training
    images under small random similarities teach the head to ignore that.
    By default prediction is unchanged: ``predict``, ``transform`` and the
    rest pass the images to the fitted estimator as they are;
    ``test_copies`` averages them over lightly moved copies as well.

    Parameters
    ----------
    estimator : estimator
        Fitted on the augmented set (a clone); usually a Pipeline whose
        first step takes images, such as
        ``make_pipeline(ConvSDAEFeatures(), LogisticRegression())``.
    copies : int, default=2
        Jittered copies of each training image, added to the originals:
        the estimator sees ``(copies + 1) * n`` images (and that much
        memory for them).
    shift : float, default=0.06
        Largest shift of a copy, as a fraction of the image side, each axis.
    scale : float, default=0.08
        Largest log zoom of a copy (0.08: up to about 8 % larger or smaller).
    rotation : float, default=6.0
        Largest turn of a copy, in degrees.
    augment : {"head", "all"}, default="head"
        "head": for a Pipeline, the steps before the last are fitted on
        the original images only, and the last step on their output for
        the originals and the copies. The unsupervised encoders then cost
        what they cost without augmentation; the head, which is what learns
        the positions, sees every copy. "all" fits the whole estimator on
        the augmented set. An estimator that is not a Pipeline is always
        fitted on the augmented set.
    test_copies : int, default=0
        Copies of each image at prediction, moved within half the training
        limits: ``predict``, ``predict_proba``, ``decision_function`` and
        ``transform`` average over the image and these copies (drawn the
        same way at every call). 0 predicts on the images as given.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to move flat rows.
    random_state : int, RandomState instance or None, default=None
        Draws the copies' similarities.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator``.
    n_augmented_ : int
        Images the estimator (or its last step) was fitted on, originals
        included.
    test_seed_ : int
        Seed of the test copies' draws.
    classes_ : ndarray of shape (n_classes,)
        The fitted estimator's classes, for classifiers.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from skface.estimators import JitterAugmented
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((20, 8, 8)), np.arange(20) % 2
    >>> flat = FunctionTransformer(lambda images: images.reshape(len(images), -1))
    >>> model = JitterAugmented(make_pipeline(flat, LogisticRegression()), random_state=0)
    >>> model.fit(X, y).n_augmented_
    60
    """

    def __init__(self, estimator, *, copies=2, shift=0.06, scale=0.08, rotation=6.0,
                 augment="head", test_copies=0, image_shape=None, random_state=None):
        self.estimator = estimator
        self.copies = copies
        self.shift = shift
        self.scale = scale
        self.rotation = rotation
        self.augment = augment
        self.test_copies = test_copies
        self.image_shape = image_shape
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.transformer_tags = inner.transformer_tags
        tags.target_tags = inner.target_tags
        tags.input_tags = inner.input_tags
        tags.input_tags.sparse = False  # the copies are resampled as dense images
        return tags

    def _check_params(self):
        check_number("copies", self.copies, numbers.Integral, low=0)
        check_number("shift", self.shift, low=0, high=0.5, high_inclusive=True)
        check_number("scale", self.scale, low=0, high=1, high_inclusive=True)
        check_number("rotation", self.rotation, low=0, high=180, high_inclusive=True)
        check_choice("augment", self.augment, _AUGMENT)
        check_number("test_copies", self.test_copies, numbers.Integral, low=0)

    def _check_X(self, X):
        """``X`` as a numeric array of images; a TypeError for lists of files or ragged images."""
        if isinstance(X, (list, tuple)) and any(
            isinstance(item, (str, bytes, os.PathLike)) or np.ndim(item) not in (0, 1, 2, 3)
            or np.shape(item) != np.shape(X[0]) for item in X
        ):
            raise TypeError(
                "JitterAugmented moves image arrays; it got a list of files or of images of "
                "different sizes. Put it after a step that gives equal-size arrays, such as "
                "skface.align.FaceAligner: make_pipeline(FaceAligner(...), "
                "JitterAugmented(...))."
            )
        return check_array(X, allow_nd=True, dtype="numeric", ensure_all_finite=False,
                           estimator=self)

    def _copies(self, images, rng):
        """``copies`` jittered copies of the images, one after another (the originals left out)."""
        moved = [
            jitter_images(images, shift=self.shift, scale=self.scale, rotation=self.rotation,
                          image_shape=self.image_shape, random_state=rng)
            for _ in range(self.copies)
        ]
        return np.concatenate(moved) if moved else images[:0]

    def fit(self, X, y=None, **fit_params):
        """Fit a clone of the estimator on ``X`` and its jittered copies.

        Parameters
        ----------
        X : ndarray of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images.
        y : array-like of shape (n,) or (n, n_outputs), default=None
            Repeated for each copy.
        **fit_params : dict
            Passed to the estimator's ``fit`` (for ``augment="head"`` with a
            Pipeline, to the Pipeline's, in its ``step__param`` form); those
            with one entry per image (``sample_weight``) are repeated.

        Returns
        -------
        self : JitterAugmented
        """
        self._check_params()
        X = self._check_X(X)
        n = len(X)
        # np.asarray, not np.shape/np.ndim: array-likes that only offer __array__
        # (scikit-learn's checks pass one) refuse numpy's other functions.
        y_array = None if y is None else np.asarray(y)
        n_targets = len(y_array) if y_array is not None and y_array.ndim else None
        if n_targets is not None and n_targets != n:
            # Checked here: the estimator would see the augmented count, not the user's.
            raise ValueError(
                f"JitterAugmented: X has {n} images but y has {n_targets} entries; give one "
                "target per image."
            )
        repeat = self.copies + 1

        def repeated(value):
            if value is None or isinstance(value, str) or not (
                hasattr(value, "__len__") or hasattr(value, "__array__")
            ):
                return value
            value = np.asarray(value)
            return np.concatenate([value] * repeat) if len(value) == n else value

        y_all = repeated(y)
        params_all = {key: repeated(value) for key, value in fit_params.items()}
        estimator = clone(self.estimator)
        rng = check_random_state(self.random_state)
        if self.augment == "head" and isinstance(estimator, Pipeline) and len(estimator) > 1:
            front, head = estimator[:-1], estimator.steps[-1][1]
            head_name = estimator.steps[-1][0]
            front_params = {k: v for k, v in fit_params.items()
                            if not k.startswith(head_name + "__")}
            head_params = {k.split("__", 1)[1]: v for k, v in params_all.items()
                           if k.startswith(head_name + "__")}
            features = front.fit_transform(X, y, **front_params)
            moved = self._copies(X, rng)
            if len(moved):
                features = np.concatenate([np.asarray(features),
                                           np.asarray(front.transform(moved))])
            head.fit(features, y_all, **head_params)
        else:
            estimator.fit(np.concatenate([X, self._copies(X, rng)]), y_all, **params_all)
        self.estimator_ = estimator
        self.n_augmented_ = n * repeat
        # The test copies' draws, fixed at fit so that predictions repeat: the next
        # draw of the stream the training copies' seeds came from.
        self.test_seed_ = int(rng.randint(np.iinfo(np.int32).max))
        if hasattr(estimator, "classes_"):
            self.classes_ = estimator.classes_
        if hasattr(estimator, "n_features_in_"):
            self.n_features_in_ = estimator.n_features_in_
        return self

    def _views(self, method, X):
        """``method`` of the fitted estimator on ``X`` and its test copies, averaged."""
        check_is_fitted(self, "estimator_")
        call = getattr(self.estimator_, method)
        if not self.test_copies:
            return call(X)
        images = self._check_X(X)
        rng = check_random_state(self.test_seed_)
        total = np.asarray(call(images), dtype=np.float64)
        for _ in range(self.test_copies):
            view = jitter_images(images, shift=self.shift / 2, scale=self.scale / 2,
                                 rotation=self.rotation / 2, image_shape=self.image_shape,
                                 random_state=rng)
            total += call(view)
        return total / (self.test_copies + 1)

    @available_if(_fitted_has("predict"))
    def predict(self, X):
        """The fitted estimator's prediction, averaged over the test copies if any.

        With ``test_copies``, a classifier predicts the class of the highest
        mean probability (or mean decision value); a regressor the mean
        prediction.
        """
        check_is_fitted(self, "estimator_")
        if not self.test_copies:
            return self.estimator_.predict(X)
        if hasattr(self, "classes_"):
            method = "predict_proba" if hasattr(self.estimator_, "predict_proba") else (
                "decision_function")
            scores = self._views(method, X)
            if scores.ndim == 1:  # a binary decision function
                return self.classes_[(scores > 0).astype(int)]
            return self.classes_[scores.argmax(axis=1)]
        return self._views("predict", X)

    @available_if(_fitted_has("predict_proba"))
    def predict_proba(self, X):
        """The fitted estimator's ``predict_proba``, averaged over the test copies if any."""
        return self._views("predict_proba", X)

    @available_if(_fitted_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """The log of :meth:`predict_proba`."""
        check_is_fitted(self, "estimator_")
        if not self.test_copies:
            return self.estimator_.predict_log_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    @available_if(_fitted_has("decision_function"))
    def decision_function(self, X):
        """The fitted estimator's ``decision_function``, averaged over the test copies if any."""
        return self._views("decision_function", X)

    @available_if(_fitted_has("transform"))
    def transform(self, X):
        """The fitted estimator's ``transform``, averaged over the test copies if any."""
        return self._views("transform", X)

    @available_if(_fitted_has("transform"))
    def fit_transform(self, X, y=None, **fit_params):
        """Fit on ``X`` and its copies, then :meth:`transform` ``X`` (not the copies)."""
        return self.fit(X, y, **fit_params).transform(X)

    @available_if(_fitted_has("score"))
    def score(self, X, y, sample_weight=None):
        """Accuracy (classifiers) or R^2 (regressors) of :meth:`predict`.

        Without ``test_copies``, the fitted estimator's own ``score``.
        """
        check_is_fitted(self, "estimator_")
        if not self.test_copies:
            params = {} if sample_weight is None else {"sample_weight": sample_weight}
            return self.estimator_.score(X, y, **params)
        from sklearn.metrics import accuracy_score, r2_score

        metric = accuracy_score if hasattr(self, "classes_") else r2_score
        return metric(y, self.predict(X), sample_weight=sample_weight)
