"""Tests for skface.nn.augment's random_similarity."""

import math

import pytest
import torch

from skface.nn.augment import random_similarity


def _centroid(images):
    """(x, y) centre of mass of each single-channel image, in pixels."""
    n, _, height, width = images.shape
    weights = images[:, 0]
    total = weights.sum(dim=(1, 2))
    ys = (weights.sum(dim=2) * torch.arange(height)).sum(dim=1) / total
    xs = (weights.sum(dim=1) * torch.arange(width)).sum(dim=1) / total
    return torch.stack([xs, ys], dim=1)


def _blob(n, size=32):
    """``n`` copies of a Gaussian blob at the image centre."""
    grid = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    blob = torch.exp(-(grid[None, :] ** 2 + grid[:, None] ** 2) / (2 * 2.0**2))
    return blob.expand(n, 1, size, size).clone()


def test_random_similarity_zero_limits_returns_input():
    images = torch.rand(3, 1, 8, 8)
    assert random_similarity(images) is images


def test_random_similarity_shift_moves_within_limit_and_varies():
    images = _blob(64)
    moved = random_similarity(images, shift=0.1, generator=torch.Generator().manual_seed(0))
    offset = _centroid(moved) - _centroid(images)
    assert offset.abs().max() <= 0.1 * 32 + 0.05
    assert offset.abs().max() >= 0.05 * 32  # some draws go far
    assert offset.std(dim=0).min() > 0.5  # each image its own shift


def test_random_similarity_scale_changes_blob_size_within_limit():
    images = _blob(64)
    zoomed = random_similarity(images, scale=0.2, generator=torch.Generator().manual_seed(0))
    # The blob's mass grows with the area: exp(2u) for a zoom exp(u).
    ratio = zoomed.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert ratio.min() >= math.exp(-0.4) - 0.02 and ratio.max() <= math.exp(0.4) + 0.02
    assert ratio.max() - ratio.min() > 0.3
    torch.testing.assert_close(_centroid(zoomed), _centroid(images), atol=0.05, rtol=0)


def test_random_similarity_rotation_turns_bar_within_limit():
    bar = torch.zeros(32, 1, 33, 33)
    bar[:, 0, 16, 4:29] = 1
    turned = random_similarity(bar, rotation=20.0, generator=torch.Generator().manual_seed(0))
    weights = turned[:, 0]
    ys, xs = torch.meshgrid(torch.arange(33.0) - 16, torch.arange(33.0) - 16, indexing="ij")
    # The bar's angle from its second moments.
    mxx = (weights * xs * xs).sum(dim=(1, 2))
    myy = (weights * ys * ys).sum(dim=(1, 2))
    mxy = (weights * xs * ys).sum(dim=(1, 2))
    angle = torch.rad2deg(0.5 * torch.atan2(2 * mxy, mxx - myy))
    assert angle.abs().max() <= 20.5
    assert angle.abs().max() >= 10  # some draws turn it far


def test_random_similarity_same_generator_seed_same_output():
    images = torch.rand(4, 3, 16, 16)
    first = random_similarity(images, shift=0.1, scale=0.1, rotation=5.0,
                              generator=torch.Generator().manual_seed(1))
    second = random_similarity(images, shift=0.1, scale=0.1, rotation=5.0,
                               generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert first.shape == images.shape and first.dtype == images.dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_similarity_keeps_dtype(dtype):
    images = torch.rand(2, 1, 8, 8, dtype=dtype)
    assert random_similarity(images, shift=0.1).dtype == dtype
