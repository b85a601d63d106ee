"""Face metrics: verification (pair scores, 10-fold accuracy, ROC AUC) and keypoint RMSE."""

import numbers

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import Bunch

__all__ = [
    "best_threshold",
    "box_iou",
    "keypoint_rmse",
    "pair_scores",
    "verification_accuracy",
    "verification_roc",
    "verification_roc_auc",
]


def pair_scores(embeddings_a, embeddings_b=None, *, metric="cosine"):
    """Similarity of each pair of embeddings; higher means more likely the same person.

    Parameters
    ----------
    embeddings_a : array-like of shape (n_pairs, n_features) or (n_pairs, 2, n_features)
        First embedding of each pair, or both when ``embeddings_b`` is None.
    embeddings_b : array-like of shape (n_pairs, n_features), default=None
        Second embedding of each pair.
    metric : {"cosine", "euclidean"}, default="cosine"
        Cosine similarity, or the negated Euclidean distance.

    Returns
    -------
    scores : ndarray of shape (n_pairs,), float64

    Raises
    ------
    ValueError
        For an unknown ``metric``, embeddings that are not numbers, of
        different shapes, empty, or holding NaN or infinity.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")
    a = _as_float(embeddings_a, "embeddings_a")
    if embeddings_b is None:
        if a.ndim != 3 or a.shape[1] != 2:
            raise ValueError(
                "Without embeddings_b, embeddings_a must have shape (n_pairs, 2, "
                f"n_features); got {a.shape}."
            )
        a, b = a[:, 0], a[:, 1]
    else:
        b = _as_float(embeddings_b, "embeddings_b")
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"The two sides of the pairs must be 2-D arrays of the same shape; got {a.shape} "
            f"and {b.shape}."
        )
    if a.size == 0:
        raise ValueError(
            f"No embeddings to compare: got shape {a.shape}; pass at least one pair of "
            "embeddings with at least one feature each."
        )
    # A NaN embedding (a diverged model, an unreadable image) would score NaN and be
    # silently miscounted by every metric downstream: stop here, where it can be traced.
    for side, values in (("first", a), ("second", b)):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise ValueError(
                f"The {side} embeddings of {bad.sum()} pair(s) contain NaN or infinity "
                f"(first at pair {np.flatnonzero(bad)[0]}); check the model that made them."
            )
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)
    return -np.linalg.norm(a - b, axis=1)


def _as_float(values, name):
    """``values`` as a float64 array; a ValueError naming ``name`` when they are not numbers."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be an array of numbers; got {type(values).__name__} that numpy "
            f"cannot convert ({exc})."
        ) from None
    return array


def _check_pairs(y_true, scores, *, both_classes=False):
    """Validated ``(same, scores)``: a bool and a float64 array of one length.

    ``both_classes=True`` also requires same and different pairs (for a ROC).
    """
    y_true = np.asarray(y_true)
    scores = _as_float(scores, "scores")
    if y_true.ndim != 1 or y_true.shape != scores.shape:
        raise ValueError(
            f"y_true and scores must be 1-D of the same length; got {y_true.shape} and "
            f"{scores.shape}."
        )
    if len(scores) == 0:
        raise ValueError("y_true and scores are empty: pass at least one pair.")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"scores contain NaN or infinity ({bad.sum()} of {len(scores)}, first at pair "
            f"{np.flatnonzero(bad)[0]}); check the embeddings they were computed from."
        )
    # Checked by kind before comparing values: 0.5 or "1" must not pass as a label.
    if y_true.dtype.kind not in "biuf":
        raise ValueError(
            f"y_true must hold 1 (same person) and 0 (different people), as ints or bools; "
            f"got dtype {y_true.dtype}."
        )
    labels = set(np.unique(y_true).tolist())
    if not labels <= {0, 1}:
        shown = sorted(labels - {0, 1}, key=str)[:5]
        raise ValueError(
            f"y_true must be 1 (same person) or 0 (different people); got also {shown}."
        )
    same = y_true.astype(bool)
    if both_classes and (same.all() or not same.any()):
        kind = "same-person (1)" if same.all() else "different-people (0)"
        raise ValueError(
            f"y_true holds only {kind} pairs: a ROC curve needs both kinds. Score a set with "
            "both same and different pairs."
        )
    return same, scores


def _check_threshold(threshold):
    """``threshold`` as a finite float; a NaN would call every pair "different"."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(
        threshold, (numbers.Real, np.ndarray)
    ):
        raise ValueError(
            f"threshold must be a real number or None, got {type(threshold).__name__} "
            f"{threshold!r}."
        )
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a single number, got {threshold!r}.") from None
    if not np.isfinite(value):
        raise ValueError(
            f"threshold must be finite, got {value}; pass a threshold from best_threshold, "
            "or None to choose one per fold."
        )
    return value


def _accuracy(same, scores, threshold):
    return float(np.mean((scores >= threshold) == same))


def best_threshold(y_true, scores):
    """The threshold that classifies a set of pairs most accurately.

    A pair is called "same" when ``score >= threshold``. Candidates are the
    midpoints between consecutive distinct scores and the two extremes;
    when several give the best accuracy, the middle one of them is chosen.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for pairs of the same person, 0 otherwise.
    scores : array-like of shape (n_pairs,)
        Similarities, e.g. from :func:`pair_scores`.

    Returns
    -------
    threshold : float
    accuracy : float
        Accuracy of ``threshold`` on these pairs (optimistic: chosen on them).

    Raises
    ------
    ValueError
        If there are no pairs, the lengths differ, a score is NaN or
        infinite, or a label is not 0 or 1 (nor a bool).
    """
    same, scores = _check_pairs(y_true, scores)
    values = np.unique(scores)
    candidates = np.concatenate(
        [[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]]
    )
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    # Correct calls at each candidate: positives at or above it, negatives below.
    correct = (len(pos) - np.searchsorted(pos, candidates, side="left")) + np.searchsorted(
        neg, candidates, side="left"
    )
    best = np.flatnonzero(correct == correct.max())
    index = best[len(best) // 2]
    return float(candidates[index]), float(correct[index] / len(scores))


def verification_accuracy(y_true, scores, *, threshold=None, folds=None, n_folds=10):
    """Face-verification accuracy by the LFW protocol: mean and std over folds.

    With ``threshold=None`` (the standard protocol, as for LFW View 2), each
    fold is classified with the threshold that is best on the other folds
    (:func:`best_threshold`), so no pair judges the threshold it is scored
    with. With a number, that fixed threshold is applied to every pair and
    the folds only give the spread.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for pairs of the same person, 0 otherwise.
    scores : array-like of shape (n_pairs,)
        Similarities, e.g. from :func:`pair_scores`.
    threshold : float, default=None
        A threshold chosen elsewhere, e.g. ``best_threshold`` on
        ``pairsDevTrain``. None chooses one per fold, by cross-validation.
    folds : array-like of shape (n_pairs,), default=None
        Fold index of each pair (``fetch_lfw_pairs(subset="10_folds").fold``).
        None splits the pairs into ``n_folds`` stratified folds in their
        order (no shuffling, so the result is deterministic).
    n_folds : int, default=10
        Used when ``folds`` is None; at least 2 and at most the number of pairs.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``accuracy`` (mean of the per-fold accuracies; with a fixed
        threshold, the accuracy over all pairs), ``std`` (population standard
        deviation of the per-fold accuracies; divide by sqrt(n_folds) for
        the standard error LFW tables often quote), ``fold_accuracies``
        (n_folds,), ``thresholds`` (n_folds,) and ``folds`` (n_pairs,).

    Raises
    ------
    ValueError
        For the inputs :func:`best_threshold` refuses, a NaN or infinite
        ``threshold``, ``folds`` of another length or with NaN, fewer than 2
        folds, or an ``n_folds`` that is not an integer from 2 to the
        number of pairs.

    Notes
    -----
    A threshold chosen on pairs of the people the model was trained on is
    not a fair stand-in for one chosen on unseen people: training people's
    pairs look more alike than new people's, so the threshold comes out too
    high and accuracy on unseen pairs suffers the better the model fits its
    training people. Report the cross-validated figure as the main number;
    a threshold from another pair set (``pairsDevTrain``) is only honest
    when that set's people were not trained on.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([1, 1, 0, 0] * 5)
    >>> scores = np.array([0.9, 0.8, 0.1, 0.3] * 5)
    >>> verification_accuracy(y, scores, n_folds=5).accuracy
    1.0
    """
    same, scores = _check_pairs(y_true, scores)
    if threshold is not None:
        threshold = _check_threshold(threshold)
    if folds is None:
        if (isinstance(n_folds, (bool, np.bool_)) or not isinstance(n_folds, numbers.Integral)
                or not 2 <= n_folds <= len(scores)):
            raise ValueError(
                f"n_folds must be an integer from 2 to the number of pairs ({len(scores)}), "
                f"got {n_folds!r}; or pass folds= with each pair's fold."
            )
        splitter = StratifiedKFold(n_splits=int(n_folds), shuffle=False)
        folds = np.empty(len(scores), dtype=int)
        for k, (_, test) in enumerate(splitter.split(scores, same)):
            folds[test] = k
    else:
        folds = np.asarray(folds)
        if folds.shape != scores.shape:
            raise ValueError(f"folds must have shape {scores.shape}, got {folds.shape}.")
        # NaN never equals itself: a NaN fold would be an empty test set, and NaN accuracy.
        if folds.dtype.kind == "f" and np.isnan(folds).any():
            raise ValueError("folds contain NaN; give every pair a fold index.")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError(
            f"verification_accuracy needs at least 2 folds, got {len(fold_ids)}: each fold's "
            "threshold is chosen on the others."
        )
    accuracies, thresholds = [], []
    for k in fold_ids:
        test = folds == k
        if threshold is None:
            t, _ = best_threshold(same[~test], scores[~test])
        else:
            t = threshold
        thresholds.append(t)
        accuracies.append(_accuracy(same[test], scores[test], t))
    accuracies = np.array(accuracies)
    mean = accuracies.mean() if threshold is None else _accuracy(same, scores, threshold)
    return Bunch(
        accuracy=float(mean),
        std=float(accuracies.std()),
        fold_accuracies=accuracies,
        thresholds=np.array(thresholds),
        folds=folds,
    )


def verification_roc(y_true, scores):
    """ROC curve of pair scores: false and true positive rates over thresholds.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
    scores : array-like of shape (n_pairs,)

    Returns
    -------
    fpr, tpr, thresholds : ndarray
        As :func:`sklearn.metrics.roc_curve`.

    Raises
    ------
    ValueError
        For the inputs :func:`best_threshold` refuses, and when the pairs
        are all of one kind (the curve needs both).
    """
    same, scores = _check_pairs(y_true, scores, both_classes=True)
    return roc_curve(same, scores)


def verification_roc_auc(y_true, scores):
    """Area under the ROC curve of pair scores (threshold-free).

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
    scores : array-like of shape (n_pairs,)

    Returns
    -------
    auc : float

    Raises
    ------
    ValueError
        As :func:`verification_roc`.
    """
    same, scores = _check_pairs(y_true, scores, both_classes=True)
    return float(roc_auc_score(same, scores))


def _as_points(array, name, pairs):
    """(n, K, 2) points; with ``pairs=False``, (n, D, 1) coordinates (any flat D)."""
    array = _as_float(array, name)
    if array.ndim in (2, 3) and (len(array) == 0 or array.shape[1] == 0):
        raise ValueError(
            f"{name} is empty (shape {array.shape}): pass at least one image with at least "
            "one keypoint."
        )
    if array.ndim == 2 and (array.shape[1] % 2 == 0 or not pairs):
        array = array.reshape(len(array), -1, 2 if array.shape[1] % 2 == 0 else 1)
    if array.ndim != 3 or array.shape[2] not in ((2,) if pairs else (1, 2)):
        raise ValueError(
            f"{name} must have shape (n, K, 2) or flat (n, 2K) as x0, y0, x1, y1, ...; "
            f"got {array.shape}."
        )
    return array if pairs else array.reshape(len(array), -1, 1)


def keypoint_rmse(y_true, y_pred, *, per_keypoint=False, sample_weight=None):
    """Root mean squared error of keypoint coordinates, leaving out missing keypoints.

    The mean runs over every observed coordinate (x and y alike), as in
    Kaggle's Facial Keypoints Detection scoring; a NaN in ``y_true`` marks a
    missing coordinate, which counts neither in the sum nor in the count.
    Errors are in the units of the coordinates: to compare images of
    different sizes in one unit (e.g. a 96x96 face), scale both arrays by
    ``96 / width`` in x and ``96 / height`` in y first.

    Parameters
    ----------
    y_true : array-like of shape (n, K, 2) or (n, 2K)
        True (x, y) of each keypoint, NaN where missing. Without
        ``per_keypoint``, any flat (n, D) coordinates.
    y_pred : array-like of the same number of keypoints, either shape
        Predictions; must be finite.
    per_keypoint : bool, default=False
        Return one RMSE per keypoint (over both of its coordinates) instead
        of a single number.
    sample_weight : array-like of shape (n,), default=None
        Weight of each image's squared errors: finite, non-negative, and
        not all zero.

    Returns
    -------
    rmse : float, or ndarray of shape (K,) with ``per_keypoint``
        NaN for a keypoint never observed.

    Raises
    ------
    ValueError
        If either array is empty or not numbers, the shapes differ, a
        prediction is NaN or infinite, ``y_true`` holds infinity, no
        keypoint is observed, or a weight is NaN, infinite or negative (or
        all are zero).

    Examples
    --------
    >>> import numpy as np
    >>> true = np.array([[[10.0, 10.0], [np.nan, np.nan]]])
    >>> pred = np.array([[[13.0, 14.0], [50.0, 50.0]]])
    >>> keypoint_rmse(true, pred)  # sqrt((9 + 16) / 2); the missing point does not count
    3.5355339059327378
    """
    true = _as_points(y_true, "y_true", per_keypoint)
    pred = _as_points(y_pred, "y_pred", per_keypoint)
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred must hold the same keypoints of the same images; got "
            f"{np.shape(y_true)} and {np.shape(y_pred)}."
        )
    if not np.isfinite(pred).all():
        raise ValueError("y_pred contains NaN or infinity; predictions must be finite.")
    if np.isinf(true).any():
        raise ValueError("y_true contains infinity; mark missing keypoints with NaN.")
    weight = np.ones(len(true)) if sample_weight is None else _as_float(
        sample_weight, "sample_weight"
    )
    if weight.shape != (len(true),):
        raise ValueError(
            f"sample_weight must have shape ({len(true)},), got {weight.shape}."
        )
    # A NaN weight makes the RMSE NaN, a negative one can make it any number at all.
    bad = ~np.isfinite(weight) | (weight < 0)
    if bad.any():
        raise ValueError(
            f"sample_weight must be finite and non-negative; got {weight[bad][0]} for image "
            f"{np.flatnonzero(bad)[0]} ({bad.sum()} bad in all)."
        )
    if not weight.any():
        raise ValueError("sample_weight is zero for every image: give some image a weight.")
    observed = ~np.isnan(true)
    squared = np.where(observed, (pred - np.nan_to_num(true)) ** 2, 0.0) * weight[:, None, None]
    counts = observed * weight[:, None, None]
    axes = (0, 2) if per_keypoint else None
    total, count = squared.sum(axis=axes), counts.sum(axis=axes)
    if not per_keypoint and count == 0:
        raise ValueError("y_true has no observed keypoint (all NaN): the RMSE is undefined.")
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.sqrt(total / count)
    return rmse if per_keypoint else float(rmse)


def box_iou(boxes_a, boxes_b):
    """Intersection over union of boxes, pair by pair (broadcast like NumPy arrays).

    Parameters
    ----------
    boxes_a, boxes_b : array-like of shape (..., 4)
        ``x0, y0, x1, y1`` of each box. A box with NaN coordinates (no box,
        as :class:`skface.align.FaceAligner` gives where no face was found)
        overlaps nothing.

    Returns
    -------
    iou : ndarray of shape (...)
        In [0, 1]; 0 for NaN or empty boxes.

    Raises
    ------
    ValueError
        If a last axis is not of length 4.
    """
    a = np.asarray(boxes_a, dtype=np.float64)
    b = np.asarray(boxes_b, dtype=np.float64)
    for which, boxes in (("boxes_a", a), ("boxes_b", b)):
        if boxes.ndim == 0 or boxes.shape[-1] != 4:
            raise ValueError(
                f"box_iou: {which} has shape {boxes.shape}; boxes are (..., 4) arrays of "
                "x0, y0, x1, y1 (one row per box)."
            )
    x0, y0 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x1, y1 = np.minimum(a[..., 2], b[..., 2]), np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(inter / (area_a + area_b - inter))
