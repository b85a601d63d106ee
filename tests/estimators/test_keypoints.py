"""Tests for KeypointRegressor, keypoint_rmse, plot_keypoints and a Kaggle-format run end to end."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator

from skface.datasets import fetch_facial_keypoints, write_keypoints_submission
from skface.datasets._keypoints import FEATURE_NAMES
from skface.estimators import ConvSDAEFeatures, KeypointRegressor
from skface.metrics import keypoint_rmse
from skface.nn.keypoints import IBUG_68_FLIP_PAIRS, KAGGLE_15_FLIP_PAIRS

from ._callbacks import RecordRates


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models gain nothing from threads, and on a shared CPU extra threads
    # oversubscribe the cores. Module scope: results depend on the thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _render(points, height, width, sigma, rng):
    """Noisy (n, height, width) images with a Gaussian blob on each (x, y) point."""
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    images = 0.15 * rng.rand(len(points), height, width)
    for start in range(0, len(points), 128):
        p = points[start : start + 128]
        dx = xs[None, None, None, :] - p[:, :, 0, None, None]
        dy = ys[None, None, :, None] - p[:, :, 1, None, None]
        images[start : start + 128] += np.exp(-(dx**2 + dy**2) / (2 * sigma**2)).sum(axis=1)
    return np.clip(images, 0, 1).astype(np.float32)


def _blob_faces(n, size=24, layout=None, shift=4.0, seed=0, channels=None):
    """Noisy images with a Gaussian blob on each keypoint; the layout moves as a whole.

    Returns images (n, size, size[, channels]) float32 and keypoints (n, K, 2)
    in pixels (pixel centres at +0.5), the layout shifted by up to ``shift``.
    """
    rng = np.random.RandomState(seed)
    if layout is None:
        layout = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.72]])
    points = layout * size + rng.uniform(-shift, shift, size=(n, 1, 2))
    images = _render(points, size, size, size / 24.0, rng)
    if channels:
        images = np.repeat(images[..., None], channels, axis=3)
    return images, points


def _regressor(**params):
    defaults = dict(
        layer_channels=(8, 16), convs_per_layer=1, pooling="flatten", dropout=0.0,
        input_size=24, flip_pairs=None, rotation=0.0, scale=0.0, shift=0.0, max_epochs=30,
        lr=1e-2, batch_size=16, random_state=0,
    )
    return KeypointRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def blobs():
    return _blob_faces(96)


@pytest.fixture(scope="module")
def fitted(blobs):
    X, points = blobs
    return _regressor().fit(X[:64], points[:64])


# -- learning and coordinates ----------------------------------------------------------


def test_keypoint_regressor_blobs_beats_mean_shape(fitted, blobs):
    X, points = blobs
    baseline = keypoint_rmse(points[64:], np.broadcast_to(points[:64].mean(0), points[64:].shape))
    rmse = -fitted.score(X[64:], points[64:])
    assert rmse < 0.5 * baseline, (rmse, baseline)


def test_keypoint_regressor_predict_other_size_returns_its_pixels(fitted, blobs):
    X, points = blobs
    # The test faces drawn again at 36 rows by 48 columns: keypoints scale by 1.5 and 2.
    scale = np.array([2.0, 1.5])
    rng = np.random.RandomState(7)
    big = _render(points[64:] * scale, 36, 48, 1.0 * scale.mean(), rng)
    pred = fitted.predict(big)
    small = keypoint_rmse(points[64:], fitted.predict(X[64:]))
    assert keypoint_rmse(points[64:] * scale, pred) < 2 * small + 0.5
    # Read in the 24x24 frame instead, the same predictions would be far off.
    assert keypoint_rmse(points[64:], pred) > 4 * small


def test_keypoint_regressor_untrained_predicts_mean_shape_in_any_size_exactly(blobs):
    X, points = blobs
    reg = _regressor(max_epochs=0).fit(X[:32], points[:32])
    relative = points[:32].mean(axis=0) / 24.0
    np.testing.assert_allclose(reg.mean_shape_, relative, rtol=1e-6)
    other = np.random.RandomState(1).rand(3, 30, 50)
    pred = reg.predict(other)
    np.testing.assert_allclose(pred, np.broadcast_to(relative * [50, 30], pred.shape),
                               rtol=1e-5)


def test_keypoint_regressor_flat_targets_flat_predictions(blobs):
    X, points = blobs
    reg = _regressor(max_epochs=1).fit(X[:32], points[:32].reshape(32, -1))
    pred = reg.predict(X[:5])
    assert pred.shape == (5, 6) and pred.dtype == np.float64
    # Flat columns are x0, y0, x1, y1, ...: the same values as the (n, K, 2) form.
    np.testing.assert_allclose(pred.reshape(5, 3, 2), _regressor(max_epochs=1).fit(
        X[:32], points[:32]).predict(X[:5]), rtol=1e-5, atol=1e-4)


def test_keypoint_regressor_points_targets_points_predictions(fitted, blobs):
    assert fitted.predict(blobs[0][:4]).shape == (4, 3, 2)
    assert fitted.n_keypoints_ == 3


def test_keypoint_regressor_odd_flat_columns_same_width_predictions(blobs):
    X, points = blobs
    y = points[:32].reshape(32, -1)[:, :5]  # the last y left out
    reg = _regressor(max_epochs=1).fit(X[:32], y)
    assert reg.predict(X[:3]).shape == (3, 5)


def test_keypoint_regressor_colour_input_grey_model(blobs):
    X, points = _blob_faces(32, channels=3)
    reg = _regressor(max_epochs=1, color=False).fit(X, points)
    assert reg.n_channels_ == 1
    assert reg.predict(X[:2]).shape == (2, 3, 2)
    # A colour model takes grey images too (repeated on three channels).
    reg = _regressor(max_epochs=1).fit(X, points)
    assert reg.n_channels_ == 3 and reg.predict(X[:2, ..., 0]).shape == (2, 3, 2)


def test_keypoint_regressor_flat_rows_other_width_raise_valueerror(fitted, blobs):
    with pytest.raises(ValueError, match="features"):
        fitted.predict(blobs[0][:2].reshape(2, -1)[:, :100])


def test_keypoint_regressor_score_is_negative_rmse_in_pixels(fitted, blobs):
    X, points = blobs
    expected = keypoint_rmse(points[64:], fitted.predict(X[64:]))
    assert fitted.score(X[64:], points[64:]) == pytest.approx(-expected)


def test_keypoint_regressor_same_seed_same_predictions(blobs):
    X, points = blobs
    a = _regressor(max_epochs=2, rotation=10.0, shift=0.05).fit(X[:32], points[:32])
    b = _regressor(max_epochs=2, rotation=10.0, shift=0.05).fit(X[:32], points[:32])
    np.testing.assert_array_equal(a.predict(X[:8]), b.predict(X[:8]))


def test_keypoint_regressor_pickle_roundtrip_same_predictions(fitted, blobs):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(blobs[0][:8]), fitted.predict(blobs[0][:8]))


def test_keypoint_regressor_history_every_batch_loss_last_batch_of_one_skipped(blobs):
    X, points = blobs
    reg = _regressor(max_epochs=2).fit(X[:33], points[:33])  # batches of 16, 16 and 1
    batches = reg.net_.history[-1, "batches"]
    assert [b["train_batch_size"] for b in batches] == [16, 16]
    assert all(isinstance(b["train_loss"], float) for b in batches)
    assert reg.net_.history[-1, "train_batch_count"] == 2


def test_keypoint_regressor_lone_batch_of_one_image_trains(blobs):
    X, points = blobs
    reg = _regressor(max_epochs=2).fit(X[:1], points[:1])
    assert [b["train_batch_size"] for b in reg.net_.history[-1, "batches"]] == [1]


def test_keypoint_regressor_one_cycle_rate_and_momentum_per_batch(blobs):
    rates = RecordRates()
    X, points = blobs
    reg = _regressor(max_epochs=3, lr=1e-2, callbacks=[("rates", rates)])
    reg.fit(X[:32], points[:32])
    lrs, beta1 = np.array(dict(reg.net_.callbacks_)["rates"].seen).T
    assert len(lrs) == 6  # 3 epochs of 2 batches
    # OneCycleLR's defaults: from lr / 25 up to lr and down to lr / 2.5e5, with
    # Adam's beta1 cycled from 0.95 down to 0.85 and back.
    assert lrs[0] == pytest.approx(1e-2 / 25)
    assert lrs[-1] == pytest.approx(1e-2 / 2.5e5)
    assert beta1[0] == pytest.approx(0.95) and beta1[-1] == pytest.approx(0.95)
    assert beta1.min() < 0.95
    # The torch scheduler (it holds the optimizer) is dropped after the fit.
    assert dict(reg.net_.callbacks_)["lr_scheduler"].lr_scheduler_ is None


# -- missing keypoints and augmentation settings -----------------------------------------


def test_keypoint_regressor_never_observed_keypoint_warns_centre(blobs):
    X, points = blobs
    y = points[:32].copy()
    y[:, 1] = np.nan
    with pytest.warns(UserWarning, match="never observed"):
        reg = _regressor(max_epochs=0).fit(X[:32], y)
    np.testing.assert_allclose(reg.predict(X[:1])[0, 1], [12.0, 12.0])


@pytest.mark.parametrize("k, expected", [(15, KAGGLE_15_FLIP_PAIRS), (68, IBUG_68_FLIP_PAIRS),
                                         (4, None)])
def test_keypoint_regressor_auto_flip_pairs_by_layout(k, expected):
    rng = np.random.RandomState(0)
    reg = _regressor(flip_pairs="auto", max_epochs=0).fit(
        rng.rand(4, 24, 24), rng.uniform(2, 22, size=(4, k, 2)))
    assert reg.flip_pairs_ == expected


def test_keypoint_regressor_user_flip_pairs_used_in_training(blobs):
    X, points = blobs
    reg = _regressor(flip_pairs=[(0, 1)], max_epochs=1).fit(X[:32], points[:32])
    assert reg.flip_pairs_ == ((0, 1),)
    assert reg.net_.flip_perm == [1, 0, 2]


def test_keypoint_regressor_defaults_augment_documented_amounts():
    reg = KeypointRegressor()
    assert (reg.flip_pairs, reg.rotation, reg.scale, reg.shift) == ("auto", 10.0, 0.1, 0.05)


@pytest.mark.parametrize(
    "y, match",
    [
        (np.zeros(8), "1-D"),
        (np.zeros((8, 3, 3)), "shape"),
        (np.zeros((7, 3, 2)), "images"),
        (np.full((8, 3, 2), np.inf), "infinity"),
        (np.full((8, 3, 2), np.nan), "NaN only"),
    ],
)
def test_keypoint_regressor_bad_targets_raise_valueerror(y, match):
    with pytest.raises(ValueError, match=match):
        _regressor(max_epochs=0).fit(np.zeros((8, 24, 24)), y)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(pooling="max"), "pooling"),
        (dict(flip_pairs="kaggle"), "flip_pairs"),
        (dict(flip_pairs=[(0, 0, 1)]), "flip_pairs"),
        (dict(rotation=-1.0), "rotation"),
        (dict(shift=0.5), "shift"),
        (dict(pretrain="rbm"), "pretrain"),
        (dict(input_size=(0, 4)), "input_size"),
    ],
)
def test_keypoint_regressor_bad_params_raise_valueerror(params, match, blobs):
    with pytest.raises(ValueError, match=match):
        _regressor(max_epochs=0, **params).fit(blobs[0][:4], blobs[1][:4])


# -- pretraining ----------------------------------------------------------------------------


def _encoder(**params):
    return ConvSDAEFeatures(**{**dict(layer_channels=(8, 16), pretrain_epochs=1,
                                      batch_size=16, random_state=0), **params})


def _trunk_convs(trunk):
    return [m.weight.detach().clone() for m in trunk.modules()
            if isinstance(m, torch.nn.Conv2d)]


def test_keypoint_regressor_pretrain_sdae_trunk_starts_from_encoder_layers(blobs):
    X, points = blobs
    reg = _regressor(pretrain="sdae", pretrain_epochs=1, max_epochs=0).fit(X[:32], points[:32])
    assert isinstance(reg.encoder_, ConvSDAEFeatures)
    assert reg.encoder_.layer_channels == (8, 16)
    stack = reg.encoder_.net_.module_
    ours, theirs = _trunk_convs(reg.net_.module_.trunk), _trunk_convs(stack.trunk())
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    # A copy: training the regressor never moves the encoder's weights.
    assert reg.net_.module_.trunk[1][0].weight is not stack.layers[0].encoder[0].weight


def test_keypoint_regressor_fitted_encoder_left_unchanged(blobs):
    X, points = blobs
    encoder = _encoder().fit(X[:32])
    before = _trunk_convs(encoder.net_.module_.trunk())
    reg = _regressor(encoder=FrozenEstimator(encoder), max_epochs=2).fit(X[:32], points[:32])
    assert reg.encoder_ is encoder
    for a, b in zip(before, _trunk_convs(encoder.net_.module_.trunk())):
        torch.testing.assert_close(a, b)
    # Fine-tuning did move the regressor's copy.
    assert not torch.equal(before[0], _trunk_convs(reg.net_.module_.trunk)[0])


def test_keypoint_regressor_unfitted_encoder_cloned_and_fitted(blobs):
    X, points = blobs
    encoder = _encoder()
    reg = _regressor(encoder=encoder, max_epochs=1).fit(X[:32], points[:32])
    assert not hasattr(encoder, "net_") and hasattr(reg.encoder_, "net_")
    assert reg.encoder_.input_size_ == (24, 24)


def test_keypoint_regressor_encoder_channel_mismatch_raises_valueerror(blobs):
    X, points = blobs
    encoder = _encoder().fit(np.repeat(X[:16, ..., None], 3, axis=3))
    with pytest.raises(ValueError, match="channel"):
        _regressor(encoder=encoder, max_epochs=0).fit(X[:16], points[:16])


def test_keypoint_regressor_pretrain_and_encoder_raise_valueerror(blobs):
    with pytest.raises(ValueError, match="either"):
        _regressor(pretrain="sdae", encoder=_encoder()).fit(blobs[0][:4], blobs[1][:4])


def test_keypoint_regressor_clone_keeps_frozen_encoder_weights(blobs):
    X, points = blobs
    encoder = _encoder().fit(X[:32])
    reg = clone(_regressor(encoder=FrozenEstimator(encoder), max_epochs=0))
    reg.fit(X[:32], points[:32])
    assert reg.encoder_ is encoder


# -- Kaggle format, end to end ----------------------------------------------------------------


def _kaggle_faces(n, seed, shift=8.0):
    """96x96 faces with a blob on each of Kaggle's 15 keypoints, the layout shifted."""
    layout = np.array([
        [0.32, 0.38], [0.68, 0.38], [0.38, 0.38], [0.25, 0.38], [0.62, 0.38], [0.75, 0.38],
        [0.40, 0.28], [0.22, 0.29], [0.60, 0.28], [0.78, 0.29], [0.50, 0.55], [0.36, 0.74],
        [0.64, 0.74], [0.50, 0.70], [0.50, 0.80],
    ])
    # Image left is the face's right: Kaggle's "left" points have the larger x.
    layout[:, 0] = 1 - layout[:, 0]
    return _blob_faces(n, size=96, layout=layout, shift=shift, seed=seed)


def _write_training_csv(folder, images, points):
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(points.reshape(len(points), -1), columns=list(FEATURE_NAMES))
    pixels = np.round(images * 255).astype(int).reshape(len(images), -1)
    frame["Image"] = [" ".join(map(str, row)) for row in pixels]
    frame.to_csv(folder / "training.csv", index=False)  # NaN -> empty field, as Kaggle's


def _kaggle_training_set():
    """Like Kaggle's: few complete rows, most rows missing keypoints.

    The 12 complete rows all show the layout unshifted; the 148 incomplete
    rows carry every shift, each missing about half its keypoints (always
    in x, y pairs). A model that drops incomplete rows sees no shift at all
    and can only predict the unshifted layout.
    """
    complete, complete_points = _kaggle_faces(12, seed=1, shift=0.0)
    partial, partial_points = _kaggle_faces(148, seed=2)
    rng = np.random.RandomState(3)
    missing = rng.rand(148, 15) < 0.5
    missing[np.arange(148), rng.randint(0, 15, 148)] = True  # every row incomplete
    missing[np.arange(148), rng.randint(0, 15, 148)] = False  # with something observed
    partial_points = partial_points.copy()
    partial_points[missing] = np.nan
    images = np.concatenate([complete, partial])
    return images, np.concatenate([complete_points, partial_points])


def _kaggle_regressor(**params):
    return _regressor(layer_channels=(8, 16, 32), input_size=48, max_epochs=30, lr=5e-3,
                      **params)


@pytest.fixture(scope="module")
def kaggle_fit(tmp_path_factory):
    images, points = _kaggle_training_set()
    home = tmp_path_factory.mktemp("kaggle_home")
    _write_training_csv(home / "kaggle_facial_keypoints", images, points)
    train = fetch_facial_keypoints(data_home=home)
    reg = _kaggle_regressor().fit(train.images, train.target)
    return train, reg


def test_kaggle_training_csv_incomplete_rows_loaded_with_nan(kaggle_fit):
    train, _ = kaggle_fit
    assert train.target.shape == (160, 30)
    complete = ~np.isnan(train.target).any(axis=1)
    assert complete.sum() == 12


def test_kaggle_training_csv_incomplete_rows_teach_every_keypoint(kaggle_fit):
    train, reg = kaggle_fit
    test_images, test_points = _kaggle_faces(40, seed=4)
    mean_shape = np.nanmean(train.keypoints, axis=0)
    baseline = keypoint_rmse(test_points, np.broadcast_to(mean_shape, test_points.shape),
                             per_keypoint=True)
    pred = reg.predict(test_images)
    assert pred.shape == (40, 30)  # flat, as the target was given
    per_keypoint = keypoint_rmse(test_points, pred, per_keypoint=True)
    # Every keypoint follows the shift, which only the incomplete rows show.
    assert (per_keypoint < 0.5 * baseline).all(), (per_keypoint, baseline)


def test_kaggle_complete_rows_only_cannot_learn_the_shift(kaggle_fit):
    # The contrast that makes the test above meaningful: dropping the
    # incomplete rows (as a model without a masked loss must) fails it.
    train, _ = kaggle_fit
    complete = ~np.isnan(train.target).any(axis=1)
    reg = _kaggle_regressor().fit(train.images[complete], train.target[complete])
    test_images, test_points = _kaggle_faces(40, seed=4)
    mean_shape = np.nanmean(train.keypoints, axis=0)
    baseline = keypoint_rmse(test_points, np.broadcast_to(mean_shape, test_points.shape),
                             per_keypoint=True)
    per_keypoint = keypoint_rmse(test_points, reg.predict(test_images), per_keypoint=True)
    assert not (per_keypoint < 0.5 * baseline).all()


@pytest.mark.realdata
def test_write_keypoints_submission_shared_lookup_synthetic_test_faces(
    kaggle_fit, shared_data, tmp_path
):
    lookup_path = shared_data / "kaggle_facial_keypoints" / "IdLookupTable.csv"
    if not lookup_path.exists():
        pytest.skip("IdLookupTable.csv not in the shared data")
    _, reg = kaggle_fit
    lookup = pd.read_csv(lookup_path)
    n_test = int(lookup["ImageId"].max())
    images, points = _kaggle_faces(n_test, seed=5)
    pred = reg.predict(images)
    submission = write_keypoints_submission(pred, lookup_path, tmp_path / "submission.csv")
    written = pd.read_csv(tmp_path / "submission.csv")
    assert list(written.columns) == ["RowId", "Location"]
    assert len(written) == len(lookup) == 27124
    np.testing.assert_array_equal(written["RowId"], lookup["RowId"])
    # Each row is the prediction for its image and feature, clipped to the face.
    column = {name: i for i, name in enumerate(FEATURE_NAMES)}
    rows = lookup["ImageId"].to_numpy() - 1
    cols = lookup["FeatureName"].map(column).to_numpy()
    np.testing.assert_allclose(written["Location"], np.clip(pred[rows, cols], 0, 96), atol=1e-4)
    np.testing.assert_allclose(submission["Location"], written["Location"], atol=1e-4)
    # And the predictions are good ones for the faces they were made on.
    truth = points.reshape(n_test, -1)[rows, cols]
    assert np.sqrt(np.mean((written["Location"] - truth) ** 2)) < 2.5


# -- metric and plot ------------------------------------------------------------------------


def test_keypoint_rmse_nan_true_left_out_per_keypoint():
    true = np.array([[[0.0, 0.0], [np.nan, np.nan]], [[1.0, 1.0], [5.0, 5.0]]])
    pred = np.array([[[3.0, 4.0], [100.0, 100.0]], [[1.0, 1.0], [5.0, 7.0]]])
    assert keypoint_rmse(true, pred) == pytest.approx(np.sqrt((9 + 16 + 0 + 0 + 0 + 4) / 6))
    np.testing.assert_allclose(keypoint_rmse(true, pred, per_keypoint=True),
                               [np.sqrt(25 / 4), np.sqrt(4 / 2)])
    assert keypoint_rmse(true.reshape(2, -1), pred) == keypoint_rmse(true, pred)


def test_keypoint_rmse_sample_weight_zero_drops_image():
    true = np.array([[[0.0, 0.0]], [[0.0, 0.0]]])
    pred = np.array([[[3.0, 4.0]], [[1.0, 1.0]]])
    assert keypoint_rmse(true, pred, sample_weight=[0.0, 1.0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "true, pred, match",
    [
        (np.zeros((2, 3, 2)), np.zeros((2, 4, 2)), "same keypoints"),
        (np.zeros((2, 3, 2)), np.full((2, 3, 2), np.nan), "finite"),
        (np.full((2, 3, 2), np.nan), np.zeros((2, 3, 2)), "no observed"),
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), "shape"),
    ],
)
def test_keypoint_rmse_bad_input_raises_valueerror(true, pred, match):
    with pytest.raises(ValueError, match=match):
        keypoint_rmse(true, pred)


def test_plot_keypoints_draws_true_and_predicted_skips_missing(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, points = _blob_faces(5)
    pred = points + 1.0
    true = points.copy()
    true[0, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN points must not warn
        fig = plot_keypoints_module()(images, true, pred.reshape(5, -1), n_images=4, n_cols=2)
    try:
        axes = [ax for ax in fig.axes if ax.images]
        assert len(axes) == 4
        drawn = axes[0].collections
        assert len(drawn) == 2
        shown = np.asarray(drawn[0].get_offsets())
        assert np.isfinite(shown).all(axis=1).sum() == 2  # the missing point is not drawn
        np.testing.assert_allclose(np.asarray(drawn[1].get_offsets()), pred[0])
        # Pixel edges at whole numbers: the image spans [0, 24] both ways.
        assert list(axes[0].images[0].get_extent()) == [0, 24, 24, 0]
        fig.savefig(tmp_path / "keypoints.png")
        assert (tmp_path / "keypoints.png").stat().st_size > 0
    finally:
        plt.close(fig)


def plot_keypoints_module():
    from skface.plotting import plot_keypoints

    return plot_keypoints
