"""Face metrics: verification (pair scores, 10-fold accuracy, ROC AUC) and keypoint RMSE."""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import Bunch

__all__ = [
    "best_threshold",
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
    """
    a = np.asarray(embeddings_a, dtype=np.float64)
    if embeddings_b is None:
        if a.ndim != 3 or a.shape[1] != 2:
            raise ValueError(
                "Without embeddings_b, embeddings_a must have shape (n_pairs, 2, "
                f"n_features); got {a.shape}."
            )
        a, b = a[:, 0], a[:, 1]
    else:
        b = np.asarray(embeddings_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"The two sides of the pairs must be 2-D arrays of the same shape; got {a.shape} "
            f"and {b.shape}."
        )
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)
    if metric == "euclidean":
        return -np.linalg.norm(a - b, axis=1)
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")


def _check_pairs(y_true, scores):
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 1 or y_true.shape != scores.shape:
        raise ValueError(
            f"y_true and scores must be 1-D of the same length; got {y_true.shape} and "
            f"{scores.shape}."
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity.")
    labels = set(np.unique(y_true).tolist())
    if not labels <= {0, 1}:
        raise ValueError(
            f"y_true must be 1 (same person) or 0 (different people); got {sorted(labels)}."
        )
    return y_true.astype(bool), scores


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
        Used when ``folds`` is None.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``accuracy`` (mean of the per-fold accuracies; with a fixed
        threshold, the accuracy over all pairs), ``std`` (population standard
        deviation of the per-fold accuracies; divide by sqrt(n_folds) for
        the standard error LFW tables often quote), ``fold_accuracies``
        (n_folds,), ``thresholds`` (n_folds,) and ``folds`` (n_pairs,).

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
    if folds is None:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=False)
        folds = np.empty(len(scores), dtype=int)
        for k, (_, test) in enumerate(splitter.split(scores, same)):
            folds[test] = k
    else:
        folds = np.asarray(folds)
        if folds.shape != scores.shape:
            raise ValueError(f"folds must have shape {scores.shape}, got {folds.shape}.")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError("verification_accuracy needs at least 2 folds.")
    accuracies, thresholds = [], []
    for k in fold_ids:
        test = folds == k
        if threshold is None:
            t, _ = best_threshold(same[~test], scores[~test])
        else:
            t = float(threshold)
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
    """
    same, scores = _check_pairs(y_true, scores)
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
    """
    same, scores = _check_pairs(y_true, scores)
    return float(roc_auc_score(same, scores))


def _as_points(array, name, pairs):
    """(n, K, 2) points; with ``pairs=False``, (n, D, 1) coordinates (any flat D)."""
    array = np.asarray(array, dtype=np.float64)
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
        Weight of each image's squared errors.

    Returns
    -------
    rmse : float, or ndarray of shape (K,) with ``per_keypoint``
        NaN for a keypoint never observed.

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
    weight = np.ones(len(true)) if sample_weight is None else np.asarray(
        sample_weight, dtype=np.float64
    )
    if weight.shape != (len(true),):
        raise ValueError(
            f"sample_weight must have shape ({len(true)},), got {weight.shape}."
        )
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
