"""Bad input to every estimator: the documented error, with a message naming the problem.

Each (estimator, case) is one test. Fit-time cases need no training (validation
comes first); the cases on a fitted model share one tiny fit per estimator, on
uint8 images, which also serves the input-scale cases.
"""

import time
import warnings

import numpy as np
import pytest
import torch

from skface.datasets._common import make_bunch
from skface.estimators import (
    CenterLossEmbedder,
    ConvSDAEFeatures,
    DBNReconstructor,
    KeypointRegressor,
    SDAEClassifier,
    SDAERegressor,
)
from skface.estimators._keypoints import _KeypointNet
from skface.preprocessing import LocalContrastNormalizer


pytestmark = pytest.mark.usefixtures("one_torch_thread")


N = 16
RNG = np.random.RandomState(0)
PIXELS = RNG.randint(0, 256, size=(N, 8, 8)).astype(np.uint8)
PIXELS[:, 0, 0] = 255  # the largest value is in every batch
IMAGES = PIXELS / 255.0
LABELS = np.arange(N) % 4
POINTS = RNG.uniform(1, 7, size=(N, 2, 2))


def _encoder():
    return ConvSDAEFeatures((4,), pretrain_epochs=1, batch_size=8, random_state=0)


# name -> (factory, target for fit (None: unsupervised), output method); 1 epoch each.
ESTIMATORS = {
    "DBNReconstructor": (
        lambda: DBNReconstructor((8, 4), pretrain_epochs=1, finetune_epochs=1, batch_size=8,
                                 random_state=0), None, "transform"),
    "ConvSDAEFeatures": (_encoder, None, "transform"),
    "SDAEClassifier": (
        lambda: SDAEClassifier(_encoder(), max_epochs=1, batch_size=8, random_state=0),
        LABELS % 2, "predict"),
    "SDAERegressor": (
        lambda: SDAERegressor(_encoder(), max_epochs=1, batch_size=8, random_state=0),
        LABELS.astype(float), "predict"),
    "KeypointRegressor": (
        lambda: KeypointRegressor((4,), convs_per_layer=1, input_size=8, max_epochs=1,
                                  batch_size=8, random_state=0), POINTS, "predict"),
    "CenterLossEmbedder": (
        lambda: CenterLossEmbedder("small_cnn", backbone_params={"width": 2}, embedding_dim=4,
                                   max_epochs=1, batch_size=8, random_state=0),
        LABELS, "transform"),
    "LocalContrastNormalizer": (LocalContrastNormalizer, None, "transform"),
}
SUPERVISED = [name for name, (_, target, _) in ESTIMATORS.items() if target is not None]
# Every estimator but the fully connected DBN reads images in 2-D.
SPATIAL = [name for name in ESTIMATORS if name != "DBNReconstructor"]


def _with(value, index=(3, 2, 5)):
    X = IMAGES.copy()
    X[index] = value
    return X


# -- fit: bad X ------------------------------------------------------------------------

# case -> (X, error, message pattern); raised by fit on every estimator.
BAD_X = {
    "nan": (_with(np.nan), ValueError, r"NaN or infinity in 1 of 16 image"),
    "inf": (_with(np.inf), ValueError, r"NaN or infinity in 1 of 16 image"),
    "empty": (IMAGES[:0], ValueError, r"0 sample\(s\).*X holds no images"),
    "no_pixels": (IMAGES[:, :0], ValueError, r"0 feature\(s\).*no pixels"),
    "ndim1": (IMAGES[0, 0], ValueError, r"1 dimension\(s\) of shape \(8,\)"),
    "ndim5": (IMAGES[:, None, :, :, None], ValueError, r"5 dimension\(s\) of shape"),
    "channels2": (np.repeat(IMAGES[..., None], 2, axis=3), ValueError, r"has 2 channels"),
    "channels4": (np.repeat(IMAGES[..., None], 4, axis=3), ValueError, r"has 4 channels"),
    "strings": (IMAGES.astype(str), ValueError, r"dtype <U\d+; images must be numeric"),
    "objects": (np.full((N, 8, 8), "a", dtype=object), ValueError, r"could not convert"),
    "complex": (IMAGES + 1j, ValueError, r"Complex data not supported"),
    # Issue 15, item 1: flat rows without image_shape, as a fetcher's .data.
    "flat_no_shape": (IMAGES.reshape(N, -1), ValueError,
                      r"reads images in two dimensions.*X is flat \(shape \(16, 64\)\).*"
                      r"\.images.*image_shape=\(height, width\)"),
}


def _fit(name, X, y="default"):
    factory, target, _ = ESTIMATORS[name]
    est = factory()
    y = target if isinstance(y, str) else y
    return est.fit(X) if target is None else est.fit(X, y)


FIT_X_CASES = [
    (name, case) for name in ESTIMATORS for case in BAD_X
    if not (case == "flat_no_shape" and name not in SPATIAL)
]


@pytest.mark.parametrize("name, case", FIT_X_CASES, ids=[f"{n}-{c}" for n, c in FIT_X_CASES])
def test_fit_bad_x_raises(name, case):
    X, error, match = BAD_X[case]
    with pytest.raises(error, match=match):
        _fit(name, X)


def test_dbnreconstructor_fit_flat_rows_without_shape_accepted():
    # Fully connected: the row is all it needs, whatever its length.
    dbn = _fit("DBNReconstructor", IMAGES.reshape(N, -1)[:, :50])
    assert dbn.image_shape_ == (1, 50, 1)
    assert dbn.transform(IMAGES.reshape(N, -1)[:, :50]).shape == (N, 4)


@pytest.mark.parametrize("name", SPATIAL)
def test_fit_fetcher_data_raises_fetcher_images_accepted(name):
    # A fetcher's Bunch: .images (n, 62, 47), .data the same flattened to 2914 values.
    bunch = make_bunch(images=np.zeros((2, 62, 47), np.float32), target=np.arange(2))
    with pytest.raises(ValueError, match=r"X is flat \(shape \(2, 2914\)\).*\.images"):
        _fit(name, bunch.data, np.zeros((2, 2, 2)) if name == "KeypointRegressor" else
             np.arange(2))


@pytest.mark.parametrize("name", SPATIAL)
def test_fit_flat_rows_with_image_shape_read_as_images(name):
    factory, target, _ = ESTIMATORS[name]
    est = factory().set_params(image_shape=(8, 8))
    flat = IMAGES.reshape(N, -1)
    est = est.fit(flat) if target is None else est.fit(flat, target)
    assert est.image_shape_ == (8, 8, 1)


# -- fit: bad y ------------------------------------------------------------------------


def _y_case(name, case):
    """(y, error, message pattern) of a bad-y case for a supervised estimator."""
    target = ESTIMATORS[name][1]
    if case == "y_none":
        return None, ValueError, r"requires y to be passed"
    if case == "y_length":
        return target[:-1], ValueError, r"y has 15 entries but X has 16 images"
    if case == "y_nan":
        y = target.astype(float).copy()
        if name == "KeypointRegressor":  # NaN marks a missing keypoint: only all-NaN is bad
            y[:] = np.nan
            return y, ValueError, r"y contains NaN only"
        y[2] = np.nan
        return y, ValueError, r"y contains NaN or infinity"
    if case == "y_inf":
        y = target.astype(float).copy()
        y[2] = np.inf
        return y, ValueError, r"y contains (NaN or )?infinity"
    raise AssertionError(case)


Y_CASES = [(name, case) for name in SUPERVISED
           for case in ("y_none", "y_length", "y_nan", "y_inf")]


@pytest.mark.parametrize("name, case", Y_CASES, ids=[f"{n}-{c}" for n, c in Y_CASES])
def test_fit_bad_y_raises(name, case):
    y, error, match = _y_case(name, case)
    with pytest.raises(error, match=match):
        _fit(name, IMAGES, y)


@pytest.mark.parametrize("y_shape", [(N, 2), (N, 1, 1)])
def test_centerlossembedder_fit_multicolumn_y_raises(y_shape):
    # Issue 15, item 5: used to crash inside torch.
    y = np.resize(LABELS, y_shape)
    with pytest.raises(ValueError, match=rf"y has shape \({y_shape[0]}, {y_shape[1]}.*"
                                         r"one identity label per image.*\(16, 1\) column"):
        _fit("CenterLossEmbedder", IMAGES, y)


def test_centerlossembedder_fit_column_y_accepted():
    emb = _fit("CenterLossEmbedder", IMAGES, LABELS[:, None])
    np.testing.assert_array_equal(emb.classes_, np.arange(4))


def test_keypointregressor_fit_partly_missing_y_accepted():
    y = POINTS.copy()
    y[::2, 1] = np.nan
    assert _fit("KeypointRegressor", IMAGES, y).n_keypoints_ == 2


# -- a fitted model: bad X at transform / predict --------------------------------------

_FITTED = {}


def _fitted(name):
    """The estimator fitted on uint8 8x8 images, once per module."""
    if name not in _FITTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _FITTED[name] = _fit(name, PIXELS)
    return _FITTED[name]


def _output(name, X):
    return getattr(_fitted(name), ESTIMATORS[name][2])(X)


# case -> (X, error, message pattern) at transform / predict.
BAD_X_FITTED = {
    "nan": (_with(np.nan), ValueError, r"NaN or infinity in 1 of 16 image"),
    "other_size": (np.zeros((2, 10, 10)), ValueError,
                   r"X has 100 features, but \w+ is expecting 64 features.*\(8, 8, 1\)"),
    "other_size_flat": (np.zeros((2, 100)), ValueError,
                        r"X has 100 features, but \w+ is expecting 64 features"),
    "rgb_for_grey": (np.zeros((2, 8, 8, 3)), ValueError,
                     r"X has 192 features, but \w+ is expecting 64 features"),
    "ndim1": (IMAGES[0, 0], ValueError, r"1 dimension\(s\)"),
}
FITTED_CASES = [
    (name, case) for name in ESTIMATORS for case in BAD_X_FITTED
    # KeypointRegressor.predict takes 2-D images of any size (keypoints in their pixels).
    if not (name == "KeypointRegressor" and case in ("other_size", "rgb_for_grey"))
]


@pytest.mark.parametrize("name, case", FITTED_CASES, ids=[f"{n}-{c}" for n, c in FITTED_CASES])
def test_fitted_bad_x_raises(name, case):
    X, error, match = BAD_X_FITTED[case]
    with pytest.raises(error, match=match):
        _output(name, X)


def test_keypointregressor_predict_other_size_images_accepted():
    assert _output("KeypointRegressor", np.zeros((2, 10, 12))).shape == (2, 2, 2)


def test_fitted_flat_rows_of_fitted_size_accepted_without_shape():
    # After fit the shape is known: flat rows of that size are read in it.
    out = _output("ConvSDAEFeatures", PIXELS.reshape(N, -1))
    np.testing.assert_allclose(out, _output("ConvSDAEFeatures", PIXELS), atol=1e-6)


# -- input scale (issue 15, item 2) ------------------------------------------------------

SCALED = [name for name in ESTIMATORS if name != "LocalContrastNormalizer"]


@pytest.mark.parametrize("name", SCALED)
def test_fitted_uint8_then_float255_warns(name):
    # The same pixels as float64: the model would see them 255 times too large.
    with pytest.warns(UserWarning, match=rf"{name} was fitted on uint8 pixels .*X holds "
                                         r"values above 32.*largest value 255.*"
                                         r"Pass the images as uint8") as record:
        _output(name, PIXELS.astype(np.float64))
    assert all(r.filename == __file__ for r in record)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fitted_uint8_then_unit_floats_no_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _output(name, IMAGES)
    # The same scale: uint8 is divided by 255 on the way in.
    np.testing.assert_allclose(out, _output(name, PIXELS), rtol=1e-4, atol=1e-4)


def test_localcontrastnormalizer_uint8_then_float255_no_warning():
    # Gain and offset cancel in the normalisation: the scale does not matter to it.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _output("LocalContrastNormalizer", PIXELS.astype(np.float64))


def test_fitted_records_input_scale():
    assert _fitted("ConvSDAEFeatures").input_scale_ == "uint8"


# -- KeypointRegressor: a coordinate whose partner is missing (issue 15, item 3) ----------


def _blobs(n, seed, size=16):
    """Images with a blob at (x, size / 2), x random; keypoint (x, NaN): y never given."""
    rng = np.random.RandomState(seed)
    xs = rng.uniform(4, size - 4, n)
    yy, xx = np.mgrid[:size, :size]
    images = np.exp(-((xx[None] + 0.5 - xs[:, None, None]) ** 2
                      + (yy[None] + 0.5 - size / 2) ** 2) / 4).astype(np.float32)
    return images, np.stack([xs, np.full(n, np.nan)], axis=1), xs


def test_keypointregressor_lone_coordinate_with_augmentation_learnt():
    # Default augmentation (rotation, zoom, shift): it used to make x NaN with y,
    # so train_loss was exactly 0.0 every epoch and x was never learnt.
    X, y, _ = _blobs(64, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # y0 is never observed
        reg = KeypointRegressor((8, 16), convs_per_layer=1, input_size=16, max_epochs=30,
                                batch_size=16, random_state=0).fit(X, y)
    assert reg.rotation > 0 and reg.scale > 0 and reg.shift > 0
    losses = np.array(reg.net_.history[:, "train_loss"])
    assert (losses > 0).all()
    test_X, _, test_x = _blobs(32, 1)
    pred = reg.predict(test_X)[:, 0]
    assert np.corrcoef(pred, test_x)[0, 1] > 0.9
    assert np.abs(pred - test_x).mean() < 0.5 * np.abs(test_x - test_x.mean()).mean()


def test_keypointnet_augment_lone_coordinate_follows_its_image():
    # One blob per image; images 2 and 3 give its x only. Mirrored, rotated, zoomed
    # and shifted, every given coordinate must stay on its blob (the blob's centroid).
    size = 32
    yy, xx = np.mgrid[:size, :size] + 0.5
    true = np.array([[14.0, 17.0], [18.0, 13.0], [15.0, 15.0], [17.0, 18.0]])
    images = np.stack([np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / 2) for px, py in true])
    net = _KeypointNet(torch.nn.Identity, criterion=torch.nn.MSELoss, flip_perm=[0],
                       rotation=30.0, scale=0.1, shift=0.05)
    net.flip_perm_ = torch.tensor([0])
    net.half_ = torch.tensor([size / 2.0, size / 2.0])
    given = torch.tensor(true / (size / 2.0) - 1, dtype=torch.float32)
    given[2:, 1] = float("nan")
    for seed in range(8):
        net.generator_ = torch.Generator().manual_seed(seed)
        x, y = net._augment(torch.tensor(images[:, None], dtype=torch.float32), given.clone())
        points = ((y + 1) * (size / 2.0)).numpy()
        warped = x[:, 0].numpy()
        mass = warped.sum(axis=(1, 2))
        centroid = np.stack([(warped * xx).sum(axis=(1, 2)) / mass,
                             (warped * yy).sum(axis=(1, 2)) / mass], axis=1)
        np.testing.assert_allclose(points[:, 0], centroid[:, 0], atol=0.3)  # every x
        np.testing.assert_allclose(points[:2, 1], centroid[:2, 1], atol=0.3)
        assert np.isnan(points[2:, 1]).all()  # the missing partners stay missing


# -- LocalContrastNormalizer: sigma far beyond the image (issue 15, item 4) ---------------


def test_localcontrastnormalizer_huge_sigma_on_small_images_fast():
    start = time.perf_counter()
    out = LocalContrastNormalizer(sigma=1e6).fit_transform(IMAGES)
    assert time.perf_counter() - start < 5
    assert out.shape == IMAGES.shape and np.isfinite(out).all()
