"""Tests for JitterAugmented and jitter_images."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skface.estimators import ConvSDAEFeatures, JitterAugmented, jitter_images


def _flatten(images):
    return images.reshape(len(images), -1)


def _bars(n, rng, max_shift):
    """16x16 images of a vertical (class 1) or horizontal (class 0) bar, moved up to max_shift."""
    X, y = np.zeros((n, 16, 16)), np.arange(n) % 2
    for i in range(n):
        dy, dx = rng.integers(-max_shift, max_shift + 1, 2)
        if y[i]:
            X[i, 4 + dy : 12 + dy, 8 + dx] = 1
        else:
            X[i, 8 + dy, 4 + dx : 12 + dx] = 1
    return X + rng.normal(0, 0.05, X.shape), y


class _Recorder(TransformerMixin, BaseEstimator):
    """Flattens, and records how many rows (and sample weights) its fit saw."""

    def fit(self, X, y=None, sample_weight=None):
        self.n_fit_ = len(X)
        self.n_weights_ = None if sample_weight is None else len(sample_weight)
        return self

    def transform(self, X):
        return _flatten(np.asarray(X))


@pytest.fixture
def images():
    return (np.random.default_rng(0).random((6, 12, 12, 3)) * 255).astype(np.uint8)


def test_jitter_images_uint8_keeps_shape_and_dtype(images):
    moved = jitter_images(images, random_state=0)
    assert moved.shape == images.shape and moved.dtype == np.uint8
    assert not np.array_equal(moved, images)


@pytest.mark.parametrize("shape, image_shape", [((4, 10, 8), None), ((4, 10 * 8 * 3), (10, 8, 3)),
                                                ((4, 80), (10, -1))])
def test_jitter_images_layout_keeps_shape(shape, image_shape):
    X = np.random.default_rng(1).random(shape).astype(np.float32)
    moved = jitter_images(X, image_shape=image_shape, random_state=0)
    assert moved.shape == X.shape and moved.dtype == np.float32


def test_jitter_images_same_random_state_same_copies(images):
    np.testing.assert_array_equal(jitter_images(images, random_state=3),
                                  jitter_images(images, random_state=3))
    assert not np.array_equal(jitter_images(images, random_state=3),
                              jitter_images(images, random_state=4))


def test_jitter_images_zero_limits_returns_images_unchanged(images):
    np.testing.assert_array_equal(
        jitter_images(images, shift=0, scale=0, rotation=0, random_state=0), images)


def test_jitter_images_flat_without_shape_raises():
    with pytest.raises(ValueError, match="image_shape"):
        jitter_images(np.zeros((2, 64)))


def test_jitteraugmented_fit_sees_copies_and_keeps_classes():
    X, y = _bars(20, np.random.default_rng(0), 0)
    model = JitterAugmented(make_pipeline(FunctionTransformer(_flatten), LogisticRegression()),
                            copies=3, random_state=0).fit(X, y)
    assert model.n_augmented_ == 80
    np.testing.assert_array_equal(model.classes_, [0, 1])
    np.testing.assert_array_equal(model.predict(X), model.estimator_.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), model.estimator_.predict_proba(X))


def test_jitteraugmented_shifted_test_faces_beats_plain_fit():
    # A pixel-wise linear head trained on exactly centred bars does not know the
    # bars moved by 2 pixels; trained with jittered copies it does.
    rng = np.random.default_rng(0)
    X_train, y_train = _bars(60, rng, 0)
    X_test, y_test = _bars(200, rng, 2)
    head = make_pipeline(FunctionTransformer(_flatten), LogisticRegression(max_iter=1000))
    plain = clone(head).fit(X_train, y_train).score(X_test, y_test)
    jittered = JitterAugmented(head, copies=4, shift=0.15, random_state=0).fit(X_train, y_train)
    assert jittered.score(X_test, y_test) >= 0.95
    assert jittered.score(X_test, y_test) > plain + 0.3


@pytest.mark.parametrize("augment, front_rows", [("head", 10), ("all", 30)])
def test_jitteraugmented_augment_sets_what_the_front_sees(augment, front_rows):
    X, y = _bars(10, np.random.default_rng(0), 0)
    model = JitterAugmented(make_pipeline(_Recorder(), _Recorder()), augment=augment,
                            random_state=0).fit(X, y)
    front, head = model.estimator_[0], model.estimator_[-1]
    assert (front.n_fit_, head.n_fit_) == (front_rows, 30)


def test_jitteraugmented_sample_weight_repeated_for_copies():
    X, y = _bars(10, np.random.default_rng(0), 0)
    model = JitterAugmented(Pipeline([("front", _Recorder()), ("head", _Recorder())]),
                            random_state=0)
    model.fit(X, y, front__sample_weight=np.ones(10), head__sample_weight=np.ones(10))
    assert (model.estimator_[0].n_weights_, model.estimator_[-1].n_weights_) == (10, 30)


def test_jitteraugmented_list_of_files_raises_naming_aligner():
    model = JitterAugmented(make_pipeline(_Recorder(), LogisticRegression()))
    with pytest.raises(TypeError, match="FaceAligner"):
        model.fit(["a.jpg", "b.jpg"], [0, 1])


@pytest.mark.parametrize("param, value", [("copies", -1), ("shift", 0.8), ("augment", "head2")])
def test_jitteraugmented_bad_param_raises(param, value):
    X, y = _bars(4, np.random.default_rng(0), 0)
    model = JitterAugmented(make_pipeline(_Recorder(), LogisticRegression()), **{param: value})
    with pytest.raises(ValueError, match=param):
        model.fit(X, y)


def test_jitteraugmented_convsdae_pipeline_grid_search_and_pickle():
    rng = np.random.default_rng(0)
    X = rng.random((24, 16, 16, 3)).astype(np.float32)
    y = np.arange(24) % 2
    features = ConvSDAEFeatures((4,), pretrain_epochs=1, batch_size=8, random_state=0)
    model = JitterAugmented(make_pipeline(features, LogisticRegression()), copies=1,
                            random_state=0)
    search = GridSearchCV(model, {"estimator__logisticregression__C": [0.1, 1.0]}, cv=2).fit(X, y)
    fitted = search.best_estimator_
    assert fitted.estimator_[0].n_features_in_ == 16 * 16 * 3
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X), fitted.predict_proba(X), rtol=1e-5)


def test_jitteraugmented_save_load_round_trip_same_features(tmp_path):
    import skface

    X = np.random.default_rng(0).random((16, 16, 16, 3)).astype(np.float32)
    model = JitterAugmented(ConvSDAEFeatures((4,), pretrain_epochs=1, random_state=0), copies=1,
                            random_state=0).fit(X)
    restored = skface.load(skface.save(model, tmp_path / "jitter.skface"), device="cpu")
    assert restored.n_augmented_ == 32
    np.testing.assert_array_equal(restored.transform(X), model.transform(X))


def test_jitteraugmented_test_copies_average_views_repeatably():
    X, y = _bars(20, np.random.default_rng(0), 1)
    model = JitterAugmented(make_pipeline(FunctionTransformer(_flatten), LogisticRegression()),
                            copies=1, test_copies=3, random_state=0).fit(X, y)
    rng = np.random.RandomState(model.test_seed_)
    views = [X] + [jitter_images(X, shift=0.03, scale=0.04, rotation=3.0, random_state=rng)
                   for _ in range(3)]
    expected = np.mean([model.estimator_.predict_proba(v) for v in views], axis=0)
    np.testing.assert_allclose(model.predict_proba(X), expected)
    np.testing.assert_allclose(model.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(model.predict(X), model.classes_[expected.argmax(axis=1)])
    assert model.score(X, y) == np.mean(model.predict(X) == y)
    assert not np.allclose(model.predict_proba(X), model.estimator_.predict_proba(X))


def test_jitteraugmented_test_copies_regressor_predicts_mean_of_views():
    from sklearn.linear_model import Ridge

    X, _ = _bars(12, np.random.default_rng(0), 1)
    y = X.sum(axis=(1, 2))
    model = JitterAugmented(make_pipeline(FunctionTransformer(_flatten), Ridge()), copies=1,
                            test_copies=2, random_state=0).fit(X, y)
    rng = np.random.RandomState(model.test_seed_)
    views = [X] + [jitter_images(X, shift=0.03, scale=0.04, rotation=3.0, random_state=rng)
                   for _ in range(2)]
    expected = np.mean([model.estimator_.predict(v) for v in views], axis=0)
    np.testing.assert_allclose(model.predict(X), expected)


@pytest.mark.parametrize("augment", ["all", "head"])
def test_jitteraugmented_short_y_reports_the_users_counts(augment):
    # The message gave the augmented count (120) beside y's, not the 40 images given.
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 8, 8), np.arange(39) % 2
    model = make_pipeline(FunctionTransformer(lambda Z: Z.reshape(len(Z), -1)),
                          LogisticRegression())
    with pytest.raises(ValueError, match=r"^JitterAugmented: X has 40 images but y has 39 "
                                         r"entries; give one target per image\.$"):
        JitterAugmented(model, copies=2, augment=augment).fit(X, y)
