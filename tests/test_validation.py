"""Tests for skface._validation: the one input path for images."""

import re
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline

from skface._validation import (
    ImageInputMixin,
    ImageLayout,
    check_fitted_shape,
    check_images,
    check_targets,
    restore_layout,
)

RNG = np.random.RandomState(0)
GREY = RNG.rand(5, 6, 4).astype(np.float32)
RGB = RNG.rand(5, 6, 4, 3).astype(np.float32)


def test_check_images_grey_returns_nchw_float32():
    images, layout = check_images(GREY)
    assert images.shape == (5, 1, 6, 4)
    assert images.dtype == np.float32
    assert images.flags.c_contiguous
    np.testing.assert_array_equal(images[:, 0], GREY)
    assert layout == ImageLayout("grey", (6, 4, 1), np.dtype(np.float32))


def test_check_images_channels_last_returns_channels_first():
    images, layout = check_images(RGB)
    assert images.shape == (5, 3, 6, 4)
    np.testing.assert_array_equal(images[:, 2], RGB[..., 2])
    assert layout.kind == "channels_last"
    assert layout.shape == (6, 4, 3)
    assert layout.n_features == 72


def test_check_images_single_channel_last_is_accepted():
    images, layout = check_images(GREY[..., np.newaxis])
    assert images.shape == (5, 1, 6, 4)
    assert layout.kind == "channels_last"


@pytest.mark.parametrize("image_shape", [(6, 4, 3), (6, 4)])
def test_check_images_flat_with_image_shape_reads_channels_last_rows(image_shape):
    images, layout = check_images(RGB.reshape(5, -1), image_shape=image_shape)
    np.testing.assert_array_equal(images, RGB.transpose(0, 3, 1, 2))
    assert layout == ImageLayout("flat", (6, 4, 3), np.dtype(np.float32))


def test_check_images_flat_without_shape_reads_strips():
    images, layout = check_images(np.ones((3, 7)))
    assert images.shape == (3, 1, 1, 7)
    assert layout.shape == (1, 7, 1)


def test_check_images_flat_without_shape_uses_fitted_shape():
    images, layout = check_images(GREY.reshape(5, -1), fitted_shape=(6, 4, 1))
    np.testing.assert_array_equal(images[:, 0], GREY)
    assert layout.kind == "flat"


def test_check_images_uint8_scaled_to_unit_range():
    X = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    images, layout = check_images(X)
    np.testing.assert_allclose(images[0, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert layout.dtype == np.float32


def test_check_images_float64_kept_as_output_dtype():
    images, layout = check_images(GREY.astype(np.float64))
    assert images.dtype == np.float32
    assert layout.dtype == np.float64


def test_check_images_int64_taken_unscaled():
    images, _ = check_images(np.full((2, 3, 3), 7, dtype=np.int64))
    assert images.max() == 7


def test_check_images_list_input_accepted():
    images, _ = check_images(GREY.tolist())
    np.testing.assert_allclose(images[:, 0], GREY)


@pytest.mark.parametrize("second, shown", [
    (np.zeros((7, 4)), r"\(7, 4\)"),          # another size
    (np.zeros((6, 4, 3)), r"\(6, 4, 3\)"),    # grey beside RGB
])
def test_check_images_list_of_mixed_sizes_names_the_first_two_and_what_to_do(second, shown):
    images = [GREY[0], GREY[1], second, np.zeros((9, 9))]
    with pytest.raises(ValueError, match=(
            r"different sizes: image 0 has shape \(6, 4\) and image 2 has shape " + shown)) as info:
        check_images(images)
    message = str(info.value)
    assert "FaceAligner" in message and "resize" in message
    assert "inhomogeneous" not in message


def test_check_images_ragged_inside_an_image_keeps_numpy_message():
    # numpy >= 1.24 says "inhomogeneous shape"; older releases "with a sequence".
    with pytest.raises(ValueError, match="inhomogeneous|setting an array element with a seq"):
        check_images([[[0.0, 1.0], [2.0]]])


@pytest.mark.parametrize("layout", ["contiguous", "strided", "fortran", "channels_last",
                                    "rgb_transposed"])
def test_check_images_any_memory_layout_gives_standard_strides(layout):
    big = np.zeros((5, 9, 8, 3), np.float32)
    big[:, 1:7, 2:6] = RGB
    X = {"contiguous": GREY, "strided": big[:, 1:7, 2:6, 0], "fortran": np.asfortranarray(GREY),
         "channels_last": GREY[..., None], "rgb_transposed": big[:, 1:7, 2:6]}[layout]
    images, _ = check_images(X)
    channels = images.shape[1]
    # The strides of a new array: torch.from_numpy keeps them, and its convolutions
    # choose channels-last for a grey batch whose channel stride is one pixel.
    assert images.strides == np.empty((5, channels, 6, 4), np.float32).strides


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_images_nan_or_inf_raises(bad):
    X = GREY.copy()
    X[2, 1, 1] = bad
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 of 5 image"):
        check_images(X)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5, 1), ()])
def test_check_images_wrong_ndim_raises(shape):
    with pytest.raises(ValueError, match=r"Reshape your data"):
        check_images(np.zeros(shape))


def test_check_images_wrong_channel_count_raises():
    with pytest.raises(ValueError, match=r"has 4 channels.*transpose\(0, 2, 3, 1\)"):
        check_images(np.zeros((2, 6, 6, 4)))


def test_check_images_channels_first_raises_with_hint():
    with pytest.raises(ValueError, match=r"channels-first"):
        check_images(np.zeros((2, 3, 8, 8)))


@pytest.mark.parametrize(
    "shape, match", [((0, 4, 4), "0 sample"), ((0, 3), "0 sample"), ((4, 0), "0 feature")]
)
def test_check_images_empty_raises(shape, match):
    with pytest.raises(ValueError, match=match):
        check_images(np.zeros(shape))


def test_check_images_flat_width_mismatch_raises():
    with pytest.raises(ValueError, match=r"needs 24"):
        check_images(np.zeros((2, 25)), image_shape=(6, 4, 1))
    with pytest.raises(ValueError, match=r"not 6x4 pixels"):
        check_images(np.zeros((2, 48)), image_shape=(6, 4))


def test_check_images_image_shape_contradicting_images_raises():
    with pytest.raises(ValueError, match=r"image_shape=\(8, 8\)"):
        check_images(GREY, image_shape=(8, 8))


@pytest.mark.parametrize("image_shape", [(6,), (6, 4, 2), (0, 4)])
def test_check_images_bad_image_shape_raises(image_shape):
    with pytest.raises(ValueError, match="image_shape"):
        check_images(GREY.reshape(5, -1), image_shape=image_shape)


def test_check_images_other_size_than_fitted_raises():
    with pytest.raises(ValueError, match=r"X has 24 features, but Est is expecting 64.*resize"):
        check_images(GREY, fitted_shape=(8, 8, 1), estimator="Est")


def test_check_images_sparse_raises_type_error():
    with pytest.raises(TypeError, match="toarray"):
        check_images(scipy.sparse.csr_matrix(np.eye(3)))


def test_check_images_complex_raises():
    with pytest.raises(ValueError, match="Complex"):
        check_images(np.ones((2, 3), dtype=complex))


def test_check_images_strings_raise():
    with pytest.raises(ValueError, match="numeric"):
        check_images(np.array([["a", "b"]]))


def test_check_fitted_shape_same_shape_passes():
    check_fitted_shape((4, 4, 1), (4, 4, 1))


def test_check_targets_wrong_length_raises():
    with pytest.raises(ValueError, match=r"y has 3 entries but X has 5 images"):
        check_targets([0, 1, 2], 5)
    with pytest.raises(ValueError, match="scalar"):
        check_targets(1, 5)


def test_check_targets_nan_raises():
    with pytest.raises(ValueError, match="NaN"):
        check_targets([0.0, np.nan], 2)


def test_check_targets_right_length_returns_array():
    np.testing.assert_array_equal(check_targets([1, 2], 2), [1, 2])


@pytest.mark.parametrize(
    "X, kw", [(GREY, {}), (RGB, {}), (RGB.reshape(5, -1), {"image_shape": (6, 4)})]
)
def test_restore_layout_round_trip_gives_input_back(X, kw):
    images, layout = check_images(X, **kw)
    np.testing.assert_array_equal(restore_layout(images, layout), X)


def test_restore_layout_float64_layout_gives_float64():
    images, layout = check_images(GREY.astype(np.float64))
    assert restore_layout(images, layout).dtype == np.float64


# -- flat rows for models that read images in 2-D (issue 15, item 1) --------------------

# Flat rows as the fetchers' .data hold them: LFW at resize=0.5 (62x47, not square),
# Olivetti (64x64), ORL (112x92), and 48x48 RGB (UTKFace-like).
FETCHER_ROWS = {"lfw": 62 * 47, "olivetti": 64 * 64, "orl": 112 * 92, "rgb48": 48 * 48 * 3}


@pytest.mark.parametrize("n_features", FETCHER_ROWS.values(), ids=FETCHER_ROWS.keys())
def test_check_images_flat_spatial_without_shape_raises(n_features):
    with pytest.raises(ValueError, match=r"Est reads images in two dimensions.*X is flat") as err:
        check_images(np.zeros((2, n_features)), spatial=True, estimator="Est")
    message = str(err.value)
    assert ".images" in message and "image_shape=(height, width)" in message
    assert "image_shape=(62, 47)" in message


def test_check_images_flat_spatial_with_image_shape_reads_images():
    images, layout = check_images(RGB.reshape(5, -1), image_shape=(6, 4), spatial=True)
    np.testing.assert_array_equal(images, RGB.transpose(0, 3, 1, 2))
    assert layout.shape == (6, 4, 3)


def test_check_images_flat_spatial_with_fitted_shape_reads_fitted_shape():
    images, _ = check_images(GREY.reshape(5, -1), fitted_shape=(6, 4, 1), spatial=True)
    np.testing.assert_array_equal(images[:, 0], GREY)


def test_check_images_flat_spatial_other_length_than_fitted_raises_size_error():
    with pytest.raises(ValueError, match="X has 7 features, but Est is expecting 24"):
        check_images(np.ones((3, 7)), fitted_shape=(6, 4, 1), spatial=True, estimator="Est")


@pytest.mark.parametrize("spatial", [True, False])
def test_check_images_grey_images_need_no_shape_when_spatial(spatial):
    images, _ = check_images(GREY, spatial=spatial)
    assert images.shape == (5, 1, 6, 4)


@pytest.mark.parametrize(
    "image_shape, shape",
    [
        ((1, -1), (1, 72, 1)),
        ((6, -1), (6, 12, 1)),
        ((-1, 4, 3), (6, 4, 3)),
        ((6, -1, 3), (6, 4, 3)),
    ],
)
def test_check_images_image_shape_minus_one_inferred_from_row_length(image_shape, shape):
    images, layout = check_images(RGB.reshape(5, -1), image_shape=image_shape, spatial=True)
    assert layout.shape == shape
    assert images.shape == (5, shape[2], shape[0], shape[1])


def test_check_images_image_shape_minus_one_not_dividing_row_raises():
    with pytest.raises(ValueError, match=r"not a whole number of columns of 5 values"):
        check_images(np.ones((2, 12)), image_shape=(5, -1))


@pytest.mark.parametrize("image_shape", [(-1, -1), (4, 4, -1), (-2, 4)])
def test_check_images_image_shape_bad_minus_one_raises(image_shape):
    with pytest.raises(ValueError, match="one of height and width may be -1"):
        check_images(np.ones((2, 16)), image_shape=image_shape)


def test_check_images_image_shape_minus_one_agrees_with_any_size_images():
    images, _ = check_images(GREY, image_shape=(6, -1))
    assert images.shape == (5, 1, 6, 4)
    with pytest.raises(ValueError, match=r"image_shape=\(1, -1\)"):
        check_images(GREY, image_shape=(1, -1))


# -- input scale recorded in fit, warned about later (issue 15, item 2) -------------------


class _Images(TransformerMixin, ImageInputMixin, BaseEstimator):
    """The smallest image estimator: validation only, transform gives the pixels back."""

    def __init__(self, image_shape=None):
        self.image_shape = image_shape

    def fit(self, X, y=None):
        self._validate_images(X, reset=True)
        return self

    def transform(self, X):
        images, layout = self._validate_images(X, reset=False)
        return restore_layout(images, layout)


PIXELS = np.random.RandomState(1).randint(0, 256, size=(4, 6, 4)).astype(np.uint8)
PIXELS[0, 0, 0] = 255  # every scale's largest value is there


@pytest.mark.parametrize(
    "X, scale",
    [
        (PIXELS, "uint8"),
        (PIXELS / 255.0, "unit"),
        (PIXELS.astype(np.float32), "0-255"),
        (PIXELS.astype(np.int64), "0-255"),
        (PIXELS / 255.0 - 0.5, "other"),
        (PIXELS / 25.5, "other"),
        (PIXELS / 255.0 * 2, "unit"),
    ],
    ids=["uint8", "unit", "float255", "int255", "signed", "0-10", "0-2"],
)
def test_image_input_fit_records_input_scale(X, scale):
    assert _Images().fit(X).input_scale_ == scale


@pytest.mark.parametrize(
    "fit_X, X, fitted, now, advice",
    [
        (PIXELS, PIXELS.astype(np.float64), "uint8 pixels", "values above 32",
         r"Pass the images as uint8, as in fit, or divide them by 255"),
        (PIXELS / 255.0, PIXELS.astype(np.float32), r"values in \[0, 1\]", "values above 32",
         r"Divide the images by 255 \(X / 255.0\)"),
        (PIXELS.astype(np.float32), PIXELS / 255.0, "values above 32", r"values in \[0, 1\]",
         "Multiply the images by 255"),
        (PIXELS.astype(np.float32), PIXELS, "values above 32", "uint8 pixels",
         r"X.astype\(np.float32\)"),
    ],
    ids=["uint8-then-float255", "unit-then-float255", "float255-then-unit",
         "float255-then-uint8"],
)
def test_image_input_other_scale_than_fit_warns(fit_X, X, fitted, now, advice):
    est = _Images().fit(fit_X)
    with pytest.warns(UserWarning, match=f"fitted on {fitted}.*X holds {now}") as record:
        est.transform(X)
    assert len(record) == 1
    message = str(record[0].message)
    assert f"largest value {X.max():.4g}" in message
    assert re.search(advice, message)
    # stacklevel: the warning points at this file, the caller of transform.
    assert record[0].filename == __file__


@pytest.mark.parametrize(
    "fit_X, X",
    [
        (PIXELS, PIXELS / 255.0),
        (PIXELS / 255.0, PIXELS),
        (PIXELS, PIXELS[1:]),
        (PIXELS.astype(np.float32), PIXELS.astype(np.int64)),
        (PIXELS / 255.0 - 0.5, PIXELS.astype(np.float32)),
        (PIXELS.astype(np.float32), PIXELS / 255.0 - 0.5),
        (PIXELS.astype(np.float32), np.zeros((2, 6, 4))),
        (PIXELS / 85.0, PIXELS / 255.0),
        (PIXELS / 255.0, PIXELS / 85.0),
        (PIXELS / 255.0, PIXELS / 255.0 * 1.5),
    ],
    ids=["uint8-then-unit", "unit-then-uint8", "uint8-then-uint8", "float255-then-int255",
         "signed-then-float255", "float255-then-signed", "float255-then-zeros",
         "0-3-then-unit", "unit-then-0-3", "unit-then-brighter"],
)
def test_image_input_same_or_unknown_scale_no_warning(fit_X, X):
    est = _Images().fit(fit_X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.transform(X)


def test_image_input_scale_warning_points_at_caller_through_pipeline():
    pipe = make_pipeline(_Images()).fit(PIXELS)
    with pytest.warns(UserWarning, match="fitted on uint8") as record:
        pipe.transform(PIXELS.astype(np.float32))
    assert record[0].filename == __file__


def test_image_input_model_without_input_scale_no_warning():
    est = _Images().fit(PIXELS)
    del est.input_scale_  # fitted before input_scale_ existed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.transform(PIXELS.astype(np.float32))


def test_image_input_fit_flat_rows_without_shape_raises():
    with pytest.raises(ValueError, match="_Images reads images in two dimensions"):
        _Images().fit(PIXELS.reshape(4, -1))
