"""Tests for skface.preprocessing.LocalContrastNormalizer."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from skface.estimators import ConvSDAEFeatures
from skface.preprocessing import LocalContrastNormalizer


def _faces(n=6, size=16, channels=3, seed=0):
    return np.random.RandomState(seed).rand(n, size, size, channels).astype(np.float32)


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (lambda x: x[..., 0], {}),
        (lambda x: x, {}),
        (lambda x: x.reshape(len(x), -1), {"image_shape": (16, 16, 3)}),
    ],
    ids=["grey", "channels_last", "flat"],
)
def test_localcontrastnormalizer_layout_comes_back(make, kwargs):
    X = make(_faces())
    out = LocalContrastNormalizer(**kwargs).fit_transform(X)
    assert out.shape == X.shape
    assert out.dtype == np.float32
    assert LocalContrastNormalizer(**kwargs).fit_transform(X.astype(np.float64)).dtype == (
        np.float64
    )


def test_localcontrastnormalizer_uint8_matches_scaled_float():
    X = (_faces() * 255).astype(np.uint8)
    lcn = LocalContrastNormalizer().fit(X)
    np.testing.assert_allclose(lcn.transform(X), lcn.transform(X / 255.0), atol=1e-4)


def test_localcontrastnormalizer_removes_brightness_and_colour_cast():
    X = _faces()
    cast = X * np.array([1.5, 1.0, 0.8], np.float32) + 0.1
    lcn = LocalContrastNormalizer().fit(X)
    # Per-channel gains differ, so only the offset cancels exactly: compare the grey.
    grey = LocalContrastNormalizer().fit(X[..., :1])
    np.testing.assert_allclose(grey.transform(2 * X[..., :1] + 0.3), grey.transform(X[..., :1]),
                               atol=1e-4)
    assert np.abs(lcn.transform(cast).mean(axis=(1, 2))).max() < 0.1


def test_localcontrastnormalizer_transform_independent_of_batch():
    X = _faces()
    lcn = LocalContrastNormalizer().fit(X[:2])
    np.testing.assert_allclose(lcn.transform(X)[3:4], lcn.transform(X[3:4]), atol=1e-6)


@pytest.mark.parametrize("sigma", [0, -2.0, np.nan, np.inf, "2", True])
def test_localcontrastnormalizer_bad_sigma_raises_in_fit(sigma):
    lcn = LocalContrastNormalizer(sigma=sigma)  # no error before fit
    with pytest.raises(ValueError, match=r"sigma must be a number > 0 and < inf, got"):
        lcn.fit(_faces())


def test_localcontrastnormalizer_other_image_size_raises():
    lcn = LocalContrastNormalizer().fit(_faces())
    with pytest.raises(ValueError, match="expecting"):
        lcn.transform(_faces(size=12))


def test_localcontrastnormalizer_in_pipeline_feeds_convsdaefeatures():
    X = _faces(n=24)
    pipe = make_pipeline(
        LocalContrastNormalizer(),
        ConvSDAEFeatures((4,), pretrain_epochs=1, batch_size=8, random_state=0, device="cpu"),
    )
    features = pipe.fit_transform(X)
    assert features.shape == (24, 4 * 8 * 8)
    np.testing.assert_array_equal(clone(pipe).fit(X).transform(X), features)


@pytest.mark.parametrize("sigma", [1e6, 1e12])
def test_localcontrastnormalizer_sigma_beyond_image_size_fast_and_finite(sigma):
    # The reported case: sigma=1e6 on 8x8 images padded each image by 3 million pixels.
    import time

    X = np.random.RandomState(0).rand(256, 8, 8)
    start = time.perf_counter()
    out = LocalContrastNormalizer(sigma=sigma).fit_transform(X)
    assert time.perf_counter() - start < 10
    assert np.isfinite(out).all()
    # Wider than the image, the window is all but flat: sigma hardly matters any more.
    np.testing.assert_allclose(out, LocalContrastNormalizer(sigma=1e9).fit_transform(X),
                               rtol=1e-3, atol=1e-4)


def test_localcontrastnormalizer_flat_rows_without_shape_raise():
    with pytest.raises(ValueError, match=r"LocalContrastNormalizer reads images in two.*"
                                         r"image_shape=\(height, width\)"):
        LocalContrastNormalizer().fit(_faces().reshape(6, -1))


def test_localcontrastnormalizer_other_scale_no_warning():
    # Gain and offset cancel in the normalisation: no input scale is wrong for it.
    import warnings

    X = (_faces() * 255).astype(np.uint8)
    lcn = LocalContrastNormalizer().fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = lcn.transform(X.astype(np.float32))
    np.testing.assert_allclose(out, lcn.transform(X), atol=1e-3)
