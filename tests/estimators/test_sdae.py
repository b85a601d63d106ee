"""Tests for ConvSDAEFeatures, SDAEClassifier and SDAERegressor, and their figures."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skface.estimators import ConvSDAEFeatures, SDAEClassifier, SDAERegressor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models gain nothing from threads, and on a shared CPU extra threads
    # oversubscribe the cores and make every step several times slower. Module
    # scope: results depend on the thread count, so every fit here uses one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _faces(n=48, size=12, channels=3, seed=0):
    """Noisy images whose top or bottom half is brighter (the class), and a brightness.

    The class survives horizontal flips, as face attributes do; the brightness
    offset added to every pixel is the regression target.
    """
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n)
    offset = rng.rand(n).astype(np.float32) * 0.3
    images = rng.rand(n, size, size, channels).astype(np.float32) * 0.4
    images += offset[:, None, None, None]
    half = size // 2
    for i, label in enumerate(y):
        rows = slice(half, None) if label else slice(None, half)
        images[i, rows] += 0.3
    return images, y, 20 + 100 * offset


# The mechanics under test are those of the raw-pixel encoder: the settings these
# tests were written for, spelled out now that the defaults are the frozen recipe's.
RAW = dict(contrast=None, noise="mask", noise_level=0.3, feature_layers="top",
           test_flip=False, feature_scale=None)


def _encoder(**params):
    defaults = dict(layer_channels=(4, 8), pretrain_epochs=2, batch_size=16, random_state=0,
                    **RAW)
    return ConvSDAEFeatures(**{**defaults, **params})


@pytest.fixture(scope="module")
def faces():
    return _faces()


@pytest.fixture(scope="module")
def fitted(faces):
    return _encoder().fit(faces[0])


# -- ConvSDAEFeatures ------------------------------------------------------------------


def test_convsdaefeatures_same_random_state_same_features(faces, fitted):
    again = _encoder().fit(faces[0])
    np.testing.assert_array_equal(fitted.transform(faces[0]), again.transform(faces[0]))


def test_convsdaefeatures_other_random_state_other_features(faces, fitted):
    other = _encoder(random_state=1).fit(faces[0])
    assert not np.allclose(fitted.transform(faces[0]), other.transform(faces[0]))


@pytest.mark.parametrize(
    "pooling, width", [("flatten", 8 * 3 * 3), ("avgmax", 16), ("avg", 8), ("max", 8)]
)
def test_convsdaefeatures_pooling_sets_feature_width(faces, pooling, width):
    sdae = _encoder(pooling=pooling, pretrain_epochs=0).fit(faces[0])
    features = sdae.transform(faces[0])
    assert features.shape == (len(faces[0]), width)
    assert sdae.code_shape_ == (8, 3, 3)
    assert len(sdae.get_feature_names_out()) == width


@pytest.mark.parametrize(
    "feature_layers, pooling, width",
    [
        # 12 px: layer codes are 4x6x6 and 8x3x3; the lower one is pooled to 3x3.
        ("all", "flatten", (4 + 8) * 3 * 3),
        ((0,), "flatten", 4 * 6 * 6),
        ((0, -1), "flatten", (4 + 8) * 3 * 3),
        ("all", "avgmax", 2 * (4 + 8)),
        ([1], "avg", 8),
    ],
)
def test_convsdaefeatures_feature_layers_sets_feature_width(faces, feature_layers, pooling,
                                                            width):
    sdae = _encoder(feature_layers=feature_layers, pooling=pooling, pretrain_epochs=0)
    features = sdae.fit(faces[0]).transform(faces[0])
    assert features.shape == (len(faces[0]), width)
    assert len(sdae.get_feature_names_out()) == width


def test_convsdaefeatures_feature_layers_all_ends_with_top_code(faces, fitted):
    every = clone(fitted).set_params(feature_layers="all").fit(faces[0])
    top = fitted.transform(faces[0])
    # Same seed, same training: the top layer's block is the default features.
    np.testing.assert_array_equal(every.transform(faces[0])[:, -top.shape[1]:], top)
    assert not hasattr(every, "inverse_transform")
    # The top layer named by its index still decodes.
    assert hasattr(clone(fitted).set_params(feature_layers=[-1]), "inverse_transform")


def test_convsdaefeatures_test_flip_mirror_image_gets_same_features(faces, fitted):
    averaged = clone(fitted).set_params(test_flip=True, feature_layers="all").fit(faces[0])
    mirrored = faces[0][:, :, ::-1]  # (n, H, W, C): the width axis
    np.testing.assert_allclose(averaged.transform(mirrored), averaged.transform(faces[0]),
                               rtol=1e-6, atol=1e-6)


def test_convsdaefeatures_test_flip_is_mean_with_mirror_features(faces, fitted):
    # test_flip does not change training: the same seed gives the same weights.
    averaged = clone(fitted).set_params(test_flip=True).fit(faces[0])
    plain, mirrored = fitted.transform(faces[0]), fitted.transform(faces[0][:, :, ::-1])
    np.testing.assert_allclose(averaged.transform(faces[0]), (plain + mirrored) / 2,
                               rtol=1e-6, atol=1e-6)
    assert not np.allclose(plain, mirrored)  # the test images are not symmetric


def test_convsdaefeatures_test_flip_has_no_inverse_transform(fitted):
    averaged = clone(fitted).set_params(test_flip=True)
    assert not hasattr(averaged, "inverse_transform")
    with pytest.raises(AttributeError, match="inverse_transform") as error:
        averaged.inverse_transform(np.zeros((1, 72)))
    assert "test_flip=False" in str(error.value.__cause__)


def test_sdaeclassifier_multi_layer_encoder_fits_head_on_every_layer(faces):
    X, y, _ = faces
    clf = SDAEClassifier(_encoder(feature_layers="all", pretrain_epochs=1), max_epochs=1,
                         random_state=0).fit(X, y)
    assert clf.net_.module_.head.in_features == (4 + 8) * 3 * 3
    assert clf.predict(X).shape == (len(X),)


def test_sdaeregressor_test_flipd_encoder_mirror_image_same_prediction(faces):
    X, _, target = faces
    encoder = _encoder(feature_layers="all", test_flip=True, pretrain_epochs=1)
    reg = SDAERegressor(encoder, max_epochs=1, random_state=0).fit(X, target)
    assert reg.net_.module_.test_flip
    np.testing.assert_allclose(reg.predict(X[:, :, ::-1]), reg.predict(X), rtol=1e-5, atol=1e-4)


def test_convsdaefeatures_set_output_pandas_gives_named_frame(faces):
    pd = pytest.importorskip("pandas")
    sdae = _encoder(pretrain_epochs=1).set_output(transform="pandas")
    frame = sdae.fit_transform(faces[0])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [f"convsdaefeatures{i}" for i in range(72)]


@pytest.mark.parametrize(
    "layout, make",
    [
        ("grey", lambda x: x[..., 0]),
        ("channels_last", lambda x: x),
        ("flat", lambda x: x.reshape(len(x), -1)),
    ],
)
def test_convsdaefeatures_inverse_transform_fit_layout_comes_back(faces, layout, make):
    X = make(faces[0])
    kwargs = {"image_shape": (12, 12, 3)} if layout == "flat" else {}
    sdae = _encoder(**kwargs).fit(X)
    codes = sdae.transform(X)
    images = sdae.inverse_transform(codes)
    assert images.shape == X.shape
    assert images.dtype == np.float32
    assert sdae.inverse_transform(codes.astype(np.float64)).dtype == np.float64
    np.testing.assert_allclose(images, sdae.reconstruct(X), atol=1e-5)


def test_convsdaefeatures_pooled_has_no_inverse_transform(faces):
    pooled = _encoder(pooling="avgmax", pretrain_epochs=0).fit(faces[0])
    assert not hasattr(pooled, "inverse_transform")
    with pytest.raises(AttributeError, match="inverse_transform") as error:
        pooled.inverse_transform(np.zeros((1, 16)))
    assert "pooling='flatten'" in str(error.value.__cause__)


def test_convsdaefeatures_inverse_transform_wrong_width_raises(faces):
    sdae = _encoder(pretrain_epochs=0).fit(faces[0])
    with pytest.raises(ValueError, match="codes from transform"):
        sdae.inverse_transform(np.zeros((2, 5)))


def test_convsdaefeatures_input_size_grey_resizes_and_reconstructs_at_fit_size(faces):
    sdae = _encoder(input_size=(8, 6), color=False).fit(faces[0])
    assert sdae.input_size_ == (8, 6)
    assert sdae.n_channels_ == 1
    assert sdae.code_shape_ == (8, 2, 2)
    assert sdae.transform(faces[0]).shape == (48, 32)
    # Back at the caller's size and channels, grey repeated on RGB.
    recon = sdae.reconstruct(faces[0])
    assert recon.shape == faces[0].shape
    np.testing.assert_allclose(recon[..., 0], recon[..., 2])


def test_convsdaefeatures_pretraining_lowers_reconstruction_error(faces):
    X = faces[0]
    untrained = _encoder(pretrain_epochs=0, finetune_epochs=0).fit(X)
    trained = _encoder(pretrain_epochs=5, finetune_epochs=5, lr=1e-2).fit(X)

    def mse(model):
        return np.mean((model.reconstruct(X) - X) ** 2)

    assert mse(trained) < 0.7 * mse(untrained)
    assert len(trained.pretrain_histories_) == 2
    assert len(trained.pretrain_histories_[0]) == 5
    assert len(trained.net_.history) == 5


def test_convsdaefeatures_gaussian_noise_two_convs_fits(faces):
    sdae = _encoder(noise="gaussian", noise_level=0.5, convs_per_layer=2, pretrain_epochs=1)
    features = sdae.fit(faces[0]).transform(faces[0])
    assert features.shape == (48, 72) and np.isfinite(features).all()
    assert len(sdae.net_.module_.trunk()[1]) == 6  # two conv, BN, ReLU blocks


@pytest.mark.parametrize(
    "params, match",
    [
        ({"layer_channels": ()}, "layer_channels"),
        ({"layer_channels": (4, 0)}, "layer_channels"),
        ({"kernel_size": 4}, "odd"),
        ({"convs_per_layer": 0}, "convs_per_layer"),
        ({"noise": "salt"}, "noise"),
        ({"noise_level": 1.0}, "noise_level"),
        ({"pooling": "sum"}, "pooling"),
        ({"feature_layers": "middle"}, "feature_layers"),
        ({"feature_layers": (2,)}, "feature_layers"),
        ({"feature_layers": (0, -2)}, "feature_layers"),
        ({"feature_layers": ()}, "feature_layers"),
        ({"feature_layers": (0.5,)}, "feature_layers"),
        ({"test_flip": "yes"}, "test_flip"),
        ({"input_size": (8,)}, "input_size"),
        ({"color": "rgb"}, "color"),
        ({"pretrain_epochs": -1}, "pretrain_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0}, "lr"),
        ({"device": "tpu:x"}, "device"),
    ],
)
def test_convsdaefeatures_invalid_param_raises_in_fit(faces, params, match):
    sdae = _encoder(**params)  # no error before fit
    with pytest.raises(ValueError, match=match):
        sdae.fit(faces[0])


def test_convsdaefeatures_pickle_round_trip_same_features(faces, fitted):
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.transform(faces[0]), fitted.transform(faces[0]))


def test_convsdaefeatures_other_image_size_raises(fitted):
    with pytest.raises(ValueError, match="expecting"):
        fitted.transform(np.zeros((2, 10, 10, 3), np.float32))


def test_convsdaefeatures_trunk_reusable_as_sequential(fitted, faces):
    trunk = fitted.net_.module_.trunk()
    assert isinstance(trunk, torch.nn.Sequential)
    with torch.no_grad():
        maps = trunk(torch.from_numpy(faces[0].transpose(0, 3, 1, 2).copy()))
    assert maps.shape == (48, *fitted.code_shape_)


# -- SDAEClassifier / SDAERegressor ----------------------------------------------------


def test_fine_tune_flip_shift_is_augment_flip_shift_shift_then_mirror():
    from skface.estimators import _sdae_heads
    from skface.nn import augment, conv_dae

    assert _sdae_heads.flip_shift is augment.flip_shift is conv_dae.flip_shift
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = augment.flip_shift(x, flip=True, max_shift=2, generator=torch.Generator().manual_seed(0))
    # Recompute the draws: the flip coins first, then the (x, y) shifts.
    g = torch.Generator().manual_seed(0)
    mirrored = torch.rand(2, generator=g) < 0.5
    shifts = torch.randint(-2, 3, (2, 2), generator=g)
    for i in range(2):
        cols = (torch.arange(5) + shifts[i, 0]).clamp(0, 4)
        rows = (torch.arange(4) + shifts[i, 1]).clamp(0, 3)
        expected = x[i][:, rows][:, :, cols]
        if mirrored[i]:
            expected = expected.flip(2)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)


def _clf(encoder, **params):
    defaults = dict(max_epochs=8, lr=1e-2, batch_size=16, random_state=0)
    return SDAEClassifier(encoder, **{**defaults, **params})


def test_sdaeclassifier_fitted_encoder_copied_not_mutated(faces, fitted):
    X, y = faces[:2]
    before = {k: v.clone() for k, v in fitted.net_.module_.state_dict().items()}
    features = fitted.transform(X)
    clf = _clf(fitted).fit(X, y)
    after = fitted.net_.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    np.testing.assert_array_equal(fitted.transform(X), features)
    assert clf.encoder_ is fitted
    assert clf.net_.module_.trunk[1] is not fitted.net_.module_.layers[0].encoder


def test_sdaeclassifier_separable_images_high_training_accuracy(faces, fitted):
    X, y = faces[:2]
    clf = _clf(fitted).fit(X, y)
    assert clf.score(X, y) >= 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


def test_sdaeclassifier_string_labels_predicts_same_labels(faces, fitted):
    X, y = faces[:2]
    labels = np.array(["male", "female"])[y]
    clf = _clf(fitted, max_epochs=1).fit(X, labels)
    assert list(clf.classes_) == ["female", "male"]
    assert set(clf.predict(X)) <= {"female", "male"}


def test_sdaeclassifier_unfitted_encoder_fitted_on_x_param_untouched(faces):
    X, y = faces[:2]
    encoder = _encoder(pretrain_epochs=1, random_state=None)
    clf = _clf(encoder, max_epochs=1).fit(X, y)
    assert not hasattr(encoder, "net_")
    assert clf.encoder is encoder
    assert clf.encoder_ is not encoder
    assert isinstance(clf.encoder_.random_state, int)  # drawn from the classifier's seed
    assert len(clf.encoder_.pretrain_histories_[0]) == 1


def test_sdaeclassifier_without_pretraining_random_init_differs(faces, fitted):
    X, y = faces[:2]
    scratch = _clf(_encoder(pretrain_epochs=0), max_epochs=1).fit(X, y)
    pretrained = _clf(fitted, max_epochs=1).fit(X, y)
    assert not np.allclose(scratch.predict_proba(X), pretrained.predict_proba(X))


def test_sdaeclassifier_clone_keeps_params_frozen_keeps_weights(faces, fitted):
    X, y = faces[:2]
    cloned = clone(_clf(fitted))
    assert not hasattr(cloned.encoder, "net_")  # clone keeps parameters only
    frozen = clone(_clf(FrozenEstimator(fitted), max_epochs=0))
    assert frozen.encoder.estimator is fitted
    frozen.fit(X, y)
    assert frozen.encoder_ is fitted


def test_sdaeclassifier_same_random_state_same_predictions(faces, fitted):
    X, y = faces[:2]
    a = _clf(fitted, max_epochs=2).fit(X, y).predict_proba(X)
    b = _clf(fitted, max_epochs=2).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_sdaeclassifier_pickle_round_trip_same_predictions(faces, fitted):
    X, y = faces[:2]
    clf = _clf(fitted, max_epochs=1).fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_sdaeclassifier_one_class_raises(faces, fitted):
    with pytest.raises(ValueError, match="1 class"):
        _clf(fitted).fit(faces[0], np.zeros(len(faces[0])))


@pytest.mark.parametrize(
    "encoder, error",
    [(LogisticRegression(), TypeError), (FrozenEstimator(_encoder()), ValueError)],
)
def test_sdaeclassifier_bad_encoder_raises(faces, encoder, error):
    with pytest.raises(error, match="encoder"):
        _clf(encoder).fit(*faces[:2])


def test_sdaeregressor_brightness_target_learned(faces, fitted):
    X, _, y = faces
    reg = SDAERegressor(fitted, max_epochs=15, lr=1e-2, batch_size=16, flip=False,
                        random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == y.shape and pred.dtype == np.float64
    assert reg.score(X, y) > 0.5


def test_sdaeregressor_two_targets_predicts_two_columns(faces, fitted):
    X = faces[0]
    y = np.stack([X.mean(axis=(1, 2, 3)), X[..., 0].mean(axis=(1, 2))], axis=1)
    reg = SDAERegressor(fitted, loss="squared_error", max_epochs=1, random_state=0).fit(X, y)
    assert reg.n_outputs_ == 2
    assert reg.predict(X).shape == (len(X), 2)


def test_sdaeregressor_unknown_loss_raises(faces, fitted):
    with pytest.raises(ValueError, match="loss"):
        SDAERegressor(fitted, loss="hinge").fit(faces[0], faces[1].astype(float))


# -- Pipeline(memory=...) --------------------------------------------------------------


def test_pipeline_memory_grid_search_fits_encoder_once_per_fold(faces, tmp_path, monkeypatch):
    X, y = faces[:2]
    fits = []
    original = ConvSDAEFeatures.fit

    def counting_fit(self, X, y=None):
        fits.append(len(X))
        return original(self, X, y)

    monkeypatch.setattr(ConvSDAEFeatures, "fit", counting_fit)
    pipe = Pipeline(
        [("sdae", _encoder(pretrain_epochs=1)), ("scale", StandardScaler()),
         ("clf", LogisticRegression(max_iter=500))],
        memory=str(tmp_path),
    )
    grid = {"clf__C": [0.01, 0.1, 1.0, 10.0, 100.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GridSearchCV(pipe, grid, cv=3).fit(X, y)
    # One fit per fold, one for the refit on all data: not one per candidate.
    assert len(fits) == 3 + 1
    fits.clear()
    GridSearchCV(pipe.set_params(memory=None), grid, cv=3).fit(X, y)
    assert len(fits) == 5 * 3 + 1




def test_grid_search_frozen_and_fine_tuned_candidates_ranked_in_one_search(faces):
    X, y = faces[:2]
    frozen = Pipeline([("sdae", _encoder(pretrain_epochs=1)), ("scale", StandardScaler()),
                       ("clf", LogisticRegression(max_iter=500))])
    tuned = _clf(_encoder(pretrain_epochs=1), max_epochs=2)
    scratch = _clf(_encoder(pretrain_epochs=0), max_epochs=2)
    # The searched step is the whole model, so the grid compares frozen features + a
    # linear head with end-to-end fine-tuning, on the same folds.
    search = GridSearchCV(Pipeline([("model", frozen)]),
                          {"model": [frozen, tuned, scratch]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    kinds = [type(p["model"]).__name__ for p in search.cv_results_["params"]]
    assert kinds == ["Pipeline", "SDAEClassifier", "SDAEClassifier"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert type(search.best_estimator_.named_steps["model"]).__name__ in kinds
    assert search.predict(X).shape == y.shape
# -- figures ---------------------------------------------------------------------------


@pytest.fixture
def _agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_plot_denoising_three_rows_per_image(_agg, faces, fitted):
    from skface.plotting import plot_denoising

    X = faces[0][:4]
    noisy = np.clip(X + np.random.RandomState(0).normal(0, 0.2, X.shape), 0, 1)
    fig = plot_denoising(noisy, fitted.reconstruct(noisy), X, n_images=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 12
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == [
        "noisy", "reconstructed", "clean"
    ]


def test_plot_denoising_shape_mismatch_raises(_agg):
    from skface.plotting import plot_denoising

    with pytest.raises(ValueError, match="same shape"):
        plot_denoising(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), np.zeros((2, 5, 5)))


def test_plot_error_by_age_bins_mean_error(_agg):
    from skface.plotting import plot_error_by_age

    age = np.array([5, 7, 25, 26, 27, 70])
    error = np.array([1.0, 3.0, 2.0, 2.0, 2.0, 10.0])
    fig = plot_error_by_age(age, error, bin_width=10)
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([2.0, 2.0, 10.0])
    assert "MAE" in ax.get_ylabel()


def test_plot_error_by_age_length_mismatch_raises(_agg):
    from skface.plotting import plot_error_by_age

    with pytest.raises(ValueError, match="same length"):
        plot_error_by_age([1, 2, 3], [1.0, 2.0])


# -- real data -------------------------------------------------------------------------


@pytest.mark.realdata
def test_convsdaefeatures_utkface_features_beat_chance_on_gender(shared_data):
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    from skface.datasets import fetch_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        faces = fetch_utkface(data_home=shared_data, size=24)
    rng = np.random.RandomState(0)
    pick = rng.choice(len(faces.images), 400, replace=False)
    X, y = faces.images[pick], faces.gender[pick]
    pipe = make_pipeline(
        ConvSDAEFeatures((16, 32), pretrain_epochs=2, random_state=0, **RAW),
        StandardScaler(),
        LogisticRegression(C=0.1, max_iter=1000),
    )
    accuracy = cross_val_score(pipe, X, y, cv=2).mean()
    assert accuracy > 0.6


_SMALL_ENCODER = dict(layer_channels=(16, 32, 64), pretrain_epochs=2, noise="gaussian",
                      noise_level=0.5, random_state=0, contrast=None, feature_layers="top",
                      test_flip=False, feature_scale=None)


@pytest.fixture(scope="module")
def utkface_age_split(shared_data):
    """3,000 UTKFace faces at 32x32 RGB and their ages: X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    from skface.datasets import fetch_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        faces = fetch_utkface(data_home=shared_data, size=32)
    pick = np.random.RandomState(0).choice(len(faces.images), 3000, replace=False)
    X, age = faces.images[pick], faces.age[pick].astype(float)
    return train_test_split(X, age, test_size=0.25, random_state=0)


@pytest.fixture(scope="module")
def utkface_contrast_features(utkface_age_split):
    """The recipe of bench/sdae.py's frozen rows, small: contrast-normalised, every layer."""
    from sklearn.pipeline import make_pipeline

    from skface.preprocessing import LocalContrastNormalizer

    return make_pipeline(
        LocalContrastNormalizer(sigma=1.5),
        ConvSDAEFeatures(**{**_SMALL_ENCODER, "feature_layers": "all"}),
    ).fit(utkface_age_split[0])


def _ridge_age_mae(features, split):
    """Held-out age MAE of StandardScaler + Ridge on fitted features."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    X_train, X_test, y_train, y_test = split
    head = make_pipeline(StandardScaler(), Ridge(alpha=3000.0))
    head.fit(features.transform(X_train), y_train)
    return np.abs(head.predict(features.transform(X_test)) - y_test).mean()


@pytest.mark.realdata
def test_convsdaefeatures_utkface_contrast_normalised_all_layers_beat_raw_top(
    utkface_age_split, utkface_contrast_features
):
    raw_top = ConvSDAEFeatures(**_SMALL_ENCODER).fit(utkface_age_split[0])
    errors = {
        "raw_top": _ridge_age_mae(raw_top, utkface_age_split),
        "contrast_all": _ridge_age_mae(utkface_contrast_features, utkface_age_split),
    }
    # Texture and every layer pay off: measured 12.65 and 10.49 years.
    assert errors["contrast_all"] < errors["raw_top"] - 0.5, errors


@pytest.mark.realdata
def test_convsdaefeatures_utkface_test_flip_lowers_age_error(
    utkface_age_split, utkface_contrast_features
):
    # The same fitted encoder: test_flip only changes what transform returns, the
    # mean of the features of each face and of its mirror image (fitted means fixed:
    # set_params after fit would not change it).
    class Mirrored:
        def transform(self, X):
            encoder = utkface_contrast_features
            return (encoder.transform(X) + encoder.transform(X[:, :, ::-1])) / 2

    errors = {flip: _ridge_age_mae(features, utkface_age_split)
              for flip, features in ((False, utkface_contrast_features), (True, Mirrored()))}
    # Measured 10.49 and 9.76 years.
    assert errors[True] < errors[False] - 0.3, errors


def test_skface_lazy_names_sdae_resolve():
    import skface

    assert skface.ConvSDAEFeatures is ConvSDAEFeatures
    assert skface.SDAEClassifier is SDAEClassifier
    assert skface.SDAERegressor is SDAERegressor


@pytest.mark.parametrize("noise", ["mask", "gaussian"])
def test_conv_sdae_corrupt_training_noise_in_callers_layout(noise):
    rng = np.random.RandomState(0)
    X = rng.rand(24, 12, 12, 3).astype(np.float32)
    sdae = ConvSDAEFeatures((4,), noise=noise, noise_level=0.3, pretrain_epochs=1,
                            random_state=0, contrast=None).fit(X)
    noisy = sdae.corrupt(X, random_state=0)
    assert noisy.shape == X.shape and noisy.dtype == np.float32
    np.testing.assert_array_equal(noisy, sdae.corrupt(X, random_state=0))
    mean = X.mean(axis=(0, 1, 2))
    if noise == "mask":
        masked = np.isclose(noisy, mean, atol=1e-6)
        assert 0.25 < masked.mean() < 0.35
        kept = ~masked
        np.testing.assert_allclose(noisy[kept], (mean + (X - mean) / 0.7)[kept], atol=1e-5)
    else:
        assert abs(np.std(noisy - X) / np.std(X) - 0.3) < 0.03
    assert sdae.corrupt(X.astype(np.float64), random_state=0).dtype == np.float64


def test_sdaeclassifier_flat_rows_read_with_encoder_image_shape(faces):
    X, y = faces[:2]
    flat = X.reshape(len(X), -1)
    encoder = _encoder(pretrain_epochs=1, image_shape=X.shape[1:])
    clf = _clf(encoder, max_epochs=1).fit(flat, y)
    assert clf.image_shape_ == X.shape[1:]
    np.testing.assert_array_equal(clf.predict_proba(flat), clf.predict_proba(X))
    with pytest.raises(ValueError, match="image_shape"):
        _clf(_encoder(pretrain_epochs=1), max_epochs=1).fit(flat, y)


# -- the defaults: contrast normalisation inside the encoder, scaled features --------------


def test_convsdaefeatures_defaults_are_the_frozen_recipe():
    params = ConvSDAEFeatures().get_params()
    assert params["layer_channels"] == (64, 128, 256) and params["contrast"] == 2.0
    assert (params["noise"], params["noise_level"]) == ("gaussian", 0.5)
    assert params["feature_layers"] == "all" and params["test_flip"] is True
    assert params["pretrain_epochs"] == 3 and params["feature_scale"] > 0


def test_convsdaefeatures_feature_scale_standardises_to_mean_squared_length(faces):
    sdae = _encoder(feature_scale=48.0).fit(faces[0])
    features = sdae.transform(faces[0]).astype(np.float64)
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose((features**2).sum(axis=1).mean(), 48.0, rtol=1e-3)
    # The same codes as without scaling, up to each feature's offset and gain.
    raw = _encoder(feature_scale=None).fit(faces[0]).transform(faces[0])
    np.testing.assert_allclose((raw - sdae.feature_mean_) * sdae.feature_gain_, features,
                               rtol=1e-4, atol=1e-5)


def test_convsdaefeatures_feature_scale_inverse_transform_undoes_it(faces):
    scaled = _encoder(feature_scale=10.0).fit(faces[0])
    np.testing.assert_allclose(scaled.inverse_transform(scaled.transform(faces[0])),
                               scaled.reconstruct(faces[0]), atol=1e-5)


def test_convsdaefeatures_feature_scale_read_from_fit_not_params(faces):
    sdae = _encoder(feature_scale=10.0).fit(faces[0])
    before = sdae.transform(faces[0])
    sdae.set_params(feature_scale=None)
    np.testing.assert_array_equal(sdae.transform(faces[0]), before)


@pytest.mark.parametrize("value", [0, -1.0, np.inf, "big"])
def test_convsdaefeatures_bad_feature_scale_or_contrast_raises_in_fit(faces, value):
    for name in ("feature_scale", "contrast"):
        with pytest.raises((ValueError, TypeError), match=name):
            _encoder(**{name: value}).fit(faces[0])


def test_convsdaefeatures_contrast_features_ignore_brightness_and_gain(faces):
    # Local contrast normalisation inside the encoder: a brighter, higher-contrast copy
    # of a face (a * x + b) is the same face to it; the raw-pixel encoder sees a change.
    X = faces[0]
    brighter = 0.5 * X + 0.3
    lcn = _encoder(contrast=2.0).fit(X)
    np.testing.assert_allclose(lcn.transform(brighter), lcn.transform(X), atol=1e-3)
    raw = _encoder().fit(X)
    assert np.abs(raw.transform(brighter) - raw.transform(X)).max() > 0.1


def test_convsdaefeatures_contrast_trunk_carries_it_to_heads(faces):
    from skface.nn.conv_dae import trunk_features

    sdae = _encoder(contrast=2.0).fit(faces[0])
    spec = sdae.export_trunk()
    assert spec.kwargs["contrast"] == 2.0
    trunk = spec.module(**spec.kwargs).eval()
    trunk.load_state_dict(spec.state_dict)
    x = torch.from_numpy(faces[0]).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = trunk_features(trunk, x, spec.feature_layers, spec.pooling, spec.test_flip)
    np.testing.assert_allclose(sdae.transform(faces[0]), expected.numpy(), atol=1e-5)
    # A head fine-tuned from it sees contrast-normalised faces too.
    clf = _clf(sdae, max_epochs=1).fit(faces[0], faces[1])
    assert clf.net_.module_.trunk[0].contrast == 2.0


def test_convsdaefeatures_contrast_has_no_corrupt(faces):
    sdae = _encoder(contrast=2.0).fit(faces[0])
    assert not hasattr(sdae, "corrupt")
    with pytest.raises(AttributeError, match="corrupt") as error:
        sdae.corrupt(faces[0])
    assert "contrast=None" in str(error.value.__cause__)
    assert hasattr(_encoder().fit(faces[0]), "corrupt")


def test_convsdaefeatures_contrast_uint8_streamed_same_model_as_float(faces):
    # uint8 input is converted batch by batch, and the contrast statistics are
    # gathered in blocks: the same model as from the float images.
    X8 = (faces[0] * 255).round().astype(np.uint8)
    from_uint8 = _encoder(contrast=2.0, feature_scale=8.0).fit(X8)
    from_float = _encoder(contrast=2.0, feature_scale=8.0).fit(X8.astype(np.float32) / 255)
    np.testing.assert_allclose(from_uint8.transform(X8), from_float.transform(X8), atol=1e-4)

