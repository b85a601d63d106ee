"""Tests for skface._validation: the one input path for images."""

import numpy as np
import pytest
import scipy.sparse

from skface._validation import (
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
