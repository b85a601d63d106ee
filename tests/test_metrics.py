"""Tests for skface.metrics (pair scores, 10-fold verification, ROC) and plotting.plot_roc."""

import numpy as np
import pytest

from skface.metrics import (
    best_threshold,
    pair_scores,
    verification_accuracy,
    verification_roc,
    verification_roc_auc,
)


def test_pair_scores_cosine_and_stacked_form_agree():
    rng = np.random.RandomState(0)
    a, b = rng.randn(5, 3), rng.randn(5, 3)
    expected = [x @ z / np.linalg.norm(x) / np.linalg.norm(z) for x, z in zip(a, b)]
    np.testing.assert_allclose(pair_scores(a, b), expected)
    np.testing.assert_allclose(pair_scores(np.stack([a, b], axis=1)), expected)


def test_pair_scores_euclidean_is_negated_distance():
    a, b = np.zeros((2, 2)), np.array([[3.0, 4.0], [0.0, 1.0]])
    np.testing.assert_allclose(pair_scores(a, b, metric="euclidean"), [-5.0, -1.0])


def test_pair_scores_bad_shapes_or_metric_raise():
    with pytest.raises(ValueError, match="n_pairs, 2"):
        pair_scores(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="same shape"):
        pair_scores(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="metric"):
        pair_scores(np.zeros((3, 4)), np.zeros((3, 4)), metric="l1")


def test_best_threshold_separable_scores_perfect():
    threshold, accuracy = best_threshold([1, 1, 0, 0], [0.9, 0.7, 0.2, 0.4])
    assert accuracy == 1.0 and 0.4 < threshold < 0.7


def _brute_force_best_accuracy(y, scores):
    thresholds = np.concatenate([[-np.inf], np.sort(scores), [np.inf]])
    return max(np.mean((scores >= t) == y) for t in thresholds)


def test_best_threshold_matches_brute_force():
    rng = np.random.RandomState(1)
    for _ in range(20):
        y = rng.randint(0, 2, 40)
        scores = np.round(rng.randn(40) + y, 1)  # ties included
        _, accuracy = best_threshold(y, scores)
        assert accuracy == pytest.approx(_brute_force_best_accuracy(y, scores))


def test_verification_accuracy_10_folds_known_answer():
    # 10 folds of 30 same + 30 different pairs; same pairs score in [0.6, 1], different
    # in [0, 0.4], except that fold k holds k % 3 same pairs at 0.05 that no threshold
    # can save: every fold's threshold falls in (0.4, 0.6) and fold k scores (60 - k%3)/60.
    rng = np.random.RandomState(0)
    y, scores, folds = [], [], []
    for k in range(10):
        same = rng.uniform(0.6, 1.0, 30)
        same[: k % 3] = 0.05
        y += [1] * 30 + [0] * 30
        scores += list(same) + list(rng.uniform(0.0, 0.4, 30))
        folds += [k] * 60
    result = verification_accuracy(np.array(y), np.array(scores), folds=np.array(folds))
    expected = np.array([(60 - k % 3) / 60 for k in range(10)])
    np.testing.assert_allclose(result.fold_accuracies, expected)
    assert result.accuracy == pytest.approx(expected.mean())
    assert result.std == pytest.approx(expected.std())
    assert ((result.thresholds > 0.4) & (result.thresholds < 0.6)).all()


def test_verification_accuracy_threshold_never_sees_its_own_fold():
    # Fold 0's pairs alone would put the threshold at 0.5; the other nine folds put it
    # at 0.15, so fold 0's two middling same pairs (0.3) pass and its different pairs
    # at 0.2 are miscalled.
    y = [1, 1, 0, 0] + [1, 0] * 18
    scores = [0.3, 0.3, 0.2, 0.2] + [0.2, 0.1] * 18
    folds = [0] * 4 + [k for k in range(1, 10) for _ in range(4)]
    result = verification_accuracy(np.array(y), np.array(scores), folds=np.array(folds))
    assert result.fold_accuracies[0] == 0.5
    assert result.thresholds[0] == pytest.approx(0.15)


def test_verification_accuracy_no_folds_stratified_in_order():
    y = np.array([1] * 500 + [0] * 500)  # pairsDevTest's layout: all same pairs first
    scores = np.where(y == 1, 0.8, 0.2)
    result = verification_accuracy(y, scores)
    assert result.accuracy == 1.0
    for k in range(10):
        assert y[result.folds == k].sum() == 50 and (result.folds == k).sum() == 100


def test_verification_accuracy_fixed_threshold_accuracy_over_all_pairs():
    rng = np.random.RandomState(2)
    y = rng.randint(0, 2, 200)
    scores = rng.rand(200) + 0.3 * y
    result = verification_accuracy(y, scores, threshold=0.6)
    assert result.accuracy == pytest.approx(np.mean((scores >= 0.6) == y))
    assert (result.thresholds == 0.6).all()


def test_verification_accuracy_bad_labels_raise():
    with pytest.raises(ValueError, match="y_true must be 1"):
        verification_accuracy(np.array([0, 2, 1, 0]), np.zeros(4), n_folds=2)


def test_verification_roc_auc_perfect_and_reversed():
    y = np.array([1, 1, 0, 0])
    assert verification_roc_auc(y, [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert verification_roc_auc(y, [0.1, 0.2, 0.9, 0.8]) == 0.0
    fpr, tpr, _ = verification_roc(y, [0.9, 0.8, 0.1, 0.2])
    assert fpr[0] == 0 and tpr[-1] == 1


def test_plot_roc_one_curve_per_entry_auc_in_legend():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skface.plotting import plot_roc

    y = np.array([1, 1, 0, 0, 1, 0])
    fig = plot_roc(y, {"model": [0.9, 0.8, 0.1, 0.2, 0.7, 0.3], "baseline": np.arange(6)})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[0] == "model (AUC = 1.000)" and texts[1].startswith("baseline")
    plt.close(fig)
