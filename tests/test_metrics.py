"""Tests for skface.metrics (pair scores, 10-fold verification, ROC) and plotting.plot_roc."""

import numpy as np
import pytest

from skface.metrics import (
    best_threshold,
    keypoint_rmse,
    pair_scores,
    verification_accuracy,
    verification_roc,
    verification_roc_auc,
)

# Every metric that takes (y_true, scores): each must refuse the same bad inputs alike.
PAIR_METRICS = [best_threshold, verification_accuracy, verification_roc, verification_roc_auc]


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


def test_pair_scores_nan_or_inf_embeddings_raise_naming_the_pair():
    a, b = np.ones((3, 2)), np.ones((3, 2))
    for bad in (np.nan, np.inf):
        a_bad = a.copy()
        a_bad[1, 0] = bad
        with pytest.raises(ValueError, match=r"first embeddings of 1 pair.*at pair 1"):
            pair_scores(a_bad, b)
        with pytest.raises(ValueError, match=r"second embeddings .*NaN or infinity"):
            pair_scores(b, a_bad, metric="euclidean")


def test_pair_scores_empty_or_not_numbers_raise():
    with pytest.raises(ValueError, match="No embeddings to compare"):
        pair_scores(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="No embeddings to compare"):
        pair_scores(np.zeros((2, 0)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match="embeddings_b must be an array of numbers"):
        pair_scores(np.zeros((1, 2)), [["a", "b"]])


@pytest.mark.parametrize("metric", PAIR_METRICS, ids=lambda f: f.__name__)
def test_pair_metrics_empty_inputs_raise_value_error(metric):
    # best_threshold([], []) used to fail with an IndexError deep inside.
    with pytest.raises(ValueError, match="empty: pass at least one pair"):
        metric([], [])


@pytest.mark.parametrize("metric", PAIR_METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "y_true, scores, match",
    [([1, 0, 1, 0], [0.1, 0.2, 0.3], "same length"),
     ([1, 0, 1, 0], [0.1, np.nan, 0.3, 0.4], r"NaN or infinity \(1 of 4, first at pair 1\)"),
     ([1, 0, 1, 0], [0.1, 0.2, -np.inf, 0.4], "NaN or infinity"),
     ([1, 0, 2, 0], [0.1, 0.2, 0.3, 0.4], r"y_true must be 1 .* got also \[2\]"),
     ([1, 0, 0.5, 0], [0.1, 0.2, 0.3, 0.4], r"got also \[0.5\]"),
     ([1, 0, np.nan, 0], [0.1, 0.2, 0.3, 0.4], r"got also \[nan\]"),
     (["1", "0", "1", "0"], [0.1, 0.2, 0.3, 0.4], "as ints or bools; got dtype <U1"),
     ([1, 0, 1, 0], ["a", "b", "c", "d"], "scores must be an array of numbers")],
)
def test_pair_metrics_bad_inputs_raise_saying_what(metric, y_true, scores, match):
    with pytest.raises(ValueError, match=match):
        metric(np.array(y_true), scores)


@pytest.mark.parametrize("metric", PAIR_METRICS, ids=lambda f: f.__name__)
def test_pair_metrics_bool_labels_same_as_ints(metric):
    y = np.array([1, 0, 1, 0] * 5)
    scores = np.linspace(0, 1, 20)
    as_bool, as_int = metric(y.astype(bool), scores), metric(y, scores)
    if isinstance(as_int, dict):  # verification_accuracy's Bunch
        as_bool, as_int = as_bool.fold_accuracies, as_int.fold_accuracies
    for got, expected in zip(np.atleast_1d(as_bool), np.atleast_1d(as_int)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("metric", [verification_roc, verification_roc_auc],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("label, kind", [(1, "same-person"), (0, "different-people")])
def test_verification_roc_one_kind_of_pair_raises(metric, label, kind):
    # Used to give NaN (an UndefinedMetricWarning at best): a curve needs both kinds.
    with pytest.raises(ValueError, match=f"only {kind} .* pairs: a ROC curve needs both"):
        metric([label] * 4, [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("threshold", [np.nan, np.inf, -np.inf])
def test_verification_accuracy_nan_or_inf_threshold_raises(threshold):
    # A NaN threshold called every pair "different": accuracy 0.5, silently.
    y, scores = np.array([1, 1, 0, 0] * 5), np.array([0.9, 0.8, 0.1, 0.3] * 5)
    with pytest.raises(ValueError, match="threshold must be finite"):
        verification_accuracy(y, scores, threshold=threshold, n_folds=5)


@pytest.mark.parametrize("threshold", ["0.5", True, [0.5, 0.6], None.__class__])
def test_verification_accuracy_threshold_not_a_number_raises(threshold):
    y, scores = np.array([1, 1, 0, 0] * 5), np.array([0.9, 0.8, 0.1, 0.3] * 5)
    with pytest.raises(ValueError, match="threshold must be a real number or None"):
        verification_accuracy(y, scores, threshold=threshold, n_folds=5)


def test_verification_accuracy_numpy_threshold_accepted():
    y, scores = np.array([1, 1, 0, 0] * 5), np.array([0.9, 0.8, 0.1, 0.3] * 5)
    for threshold in (np.float32(0.5), np.array(0.5), 1):
        result = verification_accuracy(y, scores, threshold=threshold, n_folds=5)
        assert (result.thresholds == float(threshold)).all()
        assert result.accuracy == (1.0 if threshold == 0.5 else 0.5)


@pytest.mark.parametrize("n_folds", [0, 1, 2.5, True, "10", 21])
def test_verification_accuracy_bad_n_folds_raises(n_folds):
    y, scores = np.array([1, 1, 0, 0] * 5), np.array([0.9, 0.8, 0.1, 0.3] * 5)
    with pytest.raises(ValueError, match=r"n_folds must be an integer from 2 to .*\(20\)"):
        verification_accuracy(y, scores, n_folds=n_folds)


def test_verification_accuracy_nan_or_single_folds_raise():
    y, scores = np.array([1, 1, 0, 0] * 5), np.array([0.9, 0.8, 0.1, 0.3] * 5)
    folds = np.repeat(np.arange(5.0), 4)
    folds[3] = np.nan  # used to give a fold of no pairs and a NaN accuracy
    with pytest.raises(ValueError, match="folds contain NaN"):
        verification_accuracy(y, scores, folds=folds)
    with pytest.raises(ValueError, match="at least 2 folds, got 1"):
        verification_accuracy(y, scores, folds=np.zeros(20))
    with pytest.raises(ValueError, match=r"folds must have shape \(20,\)"):
        verification_accuracy(y, scores, folds=np.zeros(19))


@pytest.mark.parametrize(
    "weight, match",
    [([np.nan, 1.0], r"finite and non-negative; got nan for image 0"),
     ([1.0, -1.0], r"got -1.0 for image 1"),
     ([np.inf, 1.0], r"got inf for image 0"),
     ([0.0, 0.0], "zero for every image"),
     ([1.0], r"shape \(2,\)"),
     (["a", "b"], "sample_weight must be an array of numbers")],
)
def test_keypoint_rmse_bad_sample_weight_raises(weight, match):
    # NaN weights gave a NaN RMSE, negative ones any number (1.0 here), all-zero ones a
    # message about missing keypoints.
    true, pred = np.zeros((2, 2, 2)), np.ones((2, 2, 2))
    with pytest.raises(ValueError, match=match):
        keypoint_rmse(true, pred, sample_weight=weight)


def test_keypoint_rmse_zero_weight_leaves_image_out():
    true, pred = np.zeros((2, 1, 2)), np.array([[[1.0, 1.0]], [[5.0, 5.0]]])
    assert keypoint_rmse(true, pred, sample_weight=[1.0, 0.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(0, 4), (0, 2, 2), (3, 0), (3, 0, 2)])
def test_keypoint_rmse_empty_inputs_raise(shape):
    with pytest.raises(ValueError, match="y_true is empty"):
        keypoint_rmse(np.zeros(shape), np.zeros(shape))


def test_keypoint_rmse_bad_values_or_shapes_raise():
    true, pred = np.zeros((2, 2, 2)), np.ones((2, 2, 2))
    with pytest.raises(ValueError, match="y_pred contains NaN or infinity"):
        keypoint_rmse(true, np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="y_true contains infinity"):
        keypoint_rmse(np.full((2, 2, 2), np.inf), pred)
    with pytest.raises(ValueError, match="same keypoints of the same images"):
        keypoint_rmse(true, np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="no observed keypoint"):
        keypoint_rmse(np.full((2, 2, 2), np.nan), pred)
    with pytest.raises(ValueError, match="y_pred must be an array of numbers"):
        keypoint_rmse(true, [[["a", "b"]] * 2] * 2)


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


def test_box_iou_known_overlaps_broadcast_and_missing_boxes():
    from skface.metrics import box_iou

    a = np.array([0.0, 0.0, 2.0, 2.0])
    boxes = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0],
                      [np.nan] * 4])
    np.testing.assert_allclose(box_iou(boxes, a), [1.0, 2.0 / 6.0, 0.0, 0.0])
    assert box_iou(a, a).shape == ()


@pytest.mark.parametrize("shape_a, shape_b, which", [((2, 3), (2, 4), "boxes_a"),
                                                     ((4,), (5, 5), "boxes_b"),
                                                     ((), (4,), "boxes_a")])
def test_box_iou_not_four_columns_raises_value_error_naming_the_input(shape_a, shape_b, which):
    # 3-column boxes gave numpy's IndexError.
    from skface.metrics import box_iou

    with pytest.raises(ValueError, match=rf"box_iou: {which} has shape .*x0, y0, x1, y1"):
        box_iou(np.zeros(shape_a), np.zeros(shape_b))
