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


# -- kernels wider than the image (issue 15, item 4) -------------------------------------


def _padded_blur(images, sigma):
    """The blur by its definition: a 3-sigma kernel over an edge-replicated padding."""
    import torch.nn.functional as F

    radius = max(1, round(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"),
                   kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"),
                    kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


@pytest.mark.parametrize("sigma", [0.4, 2.0, 2.6, 3.0, 7.0, 40.0])
@pytest.mark.parametrize("size", [(8, 8), (1, 5), (2, 9), (20, 16)])
def test_gaussian_blur_any_sigma_matches_padded_convolution(sigma, size):
    x = _images(n=3, size=size).double()
    torch.testing.assert_close(gaussian_blur(x, sigma), _padded_blur(x, sigma),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("sigma", [1e6, 1e12, 1e300])
def test_gaussian_blur_huge_sigma_is_mean_of_edges(sigma):
    # A kernel far wider than the image puts half its weight past each edge: each
    # pixel becomes the mean of the two edge pixels of its row, then of its column.
    x = _images(n=4, size=(8, 8)).double()
    rows = (x[..., :1] + x[..., -1:]) / 2
    expected = ((rows[..., :1, :] + rows[..., -1:, :]) / 2).expand_as(x)
    torch.testing.assert_close(gaussian_blur(x, sigma), expected, atol=1e-5, rtol=0)


def test_gaussian_blur_infinite_sigma_raises():
    with pytest.raises(ValueError, match="finite"):
        gaussian_blur(_images(), float("inf"))


def test_local_contrast_normalize_huge_sigma_finite_and_continuous():
    x = _images(n=64, size=(8, 8)).double()
    out = local_contrast_normalize(x, 1e12)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, local_contrast_normalize(x, 1e9), atol=1e-6, rtol=0)


# -- float32, batch-independent (issue 23, item 6) ---------------------------------------


@pytest.mark.parametrize("channels,size", [(1, (20, 16)), (3, (20, 16)), (1, (5, 4)), (3, (1, 9))])
def test_local_contrast_normalize_float32_any_batch_bit_identical(channels, size):
    # Grey images went through a one-channel conv2d whose rounding changed with
    # the batch size (by up to 1e-5 on LFW faces); small ones fold the kernel.
    x = _images(n=70, channels=channels, size=size, seed=3)
    whole = local_contrast_normalize(x, 2.0)
    for batch in (1, 3, 64):
        parts = torch.cat([local_contrast_normalize(x[i : i + batch], 2.0)
                           for i in range(0, len(x), batch)])
        torch.testing.assert_close(parts, whole, atol=0, rtol=0)


def test_local_contrast_normalize_float32_within_1e5_of_float64():
    x = _images(n=16, channels=3, size=(48, 48), seed=4)
    out = local_contrast_normalize(x, 2.0)
    assert out.dtype == torch.float32
    assert (out.double() - local_contrast_normalize(x.double(), 2.0)).abs().max() < 1e-5


def test_local_contrast_normalize_meta_tensor_gives_shape():
    out = local_contrast_normalize(torch.empty(2, 3, 12, 10, device="meta"), 2.0)
    assert out.shape == (2, 3, 12, 10) and out.device.type == "meta"
