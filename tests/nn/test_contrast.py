"""Tests for skface.nn.contrast: Gaussian blur and local contrast normalisation."""

import pytest
import torch

from skface.nn.contrast import gaussian_blur, local_contrast_normalize


def _images(n=6, channels=3, size=(20, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, *size, generator=g)


def test_gaussian_blur_constant_image_unchanged():
    x = torch.full((2, 3, 9, 7), 0.25)
    torch.testing.assert_close(gaussian_blur(x, 1.5), x)


def test_gaussian_blur_lowers_variance_keeps_shape():
    x = _images()
    blurred = gaussian_blur(x, 2.0)
    assert blurred.shape == x.shape
    assert blurred.var() < 0.5 * x.var()


@pytest.mark.parametrize("sigma", [0, -1.0])
def test_gaussian_blur_nonpositive_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(_images(), sigma)


def test_local_contrast_normalize_brightness_and_contrast_invariant():
    x = _images()
    out = local_contrast_normalize(x, 2.0)
    # An affine change of every pixel (gain > 0, offset) cancels out exactly.
    torch.testing.assert_close(local_contrast_normalize(3.0 * x + 0.7, 2.0), out,
                               atol=1e-5, rtol=1e-4)


def test_local_contrast_normalize_each_image_independent_of_batch():
    x = _images()
    torch.testing.assert_close(local_contrast_normalize(x[2:3]), local_contrast_normalize(x)[2:3])


def test_local_contrast_normalize_unit_local_scale_zero_mean():
    out = local_contrast_normalize(_images(n=8, size=(48, 48)), 2.0)
    assert out.mean().abs() < 0.05
    assert 0.5 < out.std() < 1.2


def test_local_contrast_normalize_constant_image_gives_zeros():
    out = local_contrast_normalize(torch.full((1, 3, 8, 8), 0.5))
    # Only the blur's rounding error is left, not blown up.
    assert out.abs().max() < 1e-3


def test_local_contrast_normalize_one_pixel_strip_works():
    out = local_contrast_normalize(_images(size=(1, 5)), 2.0)
    assert out.shape == (6, 3, 1, 5)
    assert torch.isfinite(out).all()
