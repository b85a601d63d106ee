"""Tests for skface.nn.keypoints (flips, affine augmentation) and the masked keypoint MSE."""

import math

import pytest
import torch

from skface.datasets._keypoints import KEYPOINT_NAMES
import torch.nn.functional as F

from skface.nn import keypoints as keypoints_module
from skface.nn.keypoints import (
    IBUG_68_FLIP_PAIRS,
    KAGGLE_15_FLIP_PAIRS,
    augment_keypoints,
    default_flip_pairs,
    flip_keypoints,
    flip_permutation,
    random_affine,
    warp_images,
    warp_keypoints,
)
from skface.nn.losses import MaskedMSELoss, masked_mse


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dots(points, size, radius=1):
    """Images (n, 1, H, W) with a bright square of side 2*radius+1 centred on each point.

    ``points`` (n, 2) are pixel centres (x, y) = (col + 0.5, row + 0.5).
    """
    height, width = size
    images = torch.zeros(len(points), 1, height, width)
    for i, (x, y) in enumerate(points.tolist()):
        col, row = int(x), int(y)
        images[i, 0, row - radius : row + radius + 1, col - radius : col + radius + 1] = 1.0
    return images


def _centroids(images):
    """Intensity-weighted (x, y) of each image, in pixels with pixel centres at +0.5."""
    w = images[:, 0].clamp(min=0)
    height, width = w.shape[-2:]
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    total = w.sum(dim=(1, 2))
    return torch.stack([(w * xs).sum(dim=(1, 2)) / total,
                        (w * ys[:, None]).sum(dim=(1, 2)) / total], dim=1)


# -- flip pairs ------------------------------------------------------------------------


def test_flip_permutation_pairs_swapped_and_involution():
    perm = flip_permutation([(0, 3), (1, 2)], 5)
    assert perm.tolist() == [3, 2, 1, 0, 4]
    assert perm[perm].tolist() == list(range(5))


@pytest.mark.parametrize("pairs", [[(0, 1), (1, 2)], [(0, 5)], [(-1, 0)]])
def test_flip_permutation_bad_pairs_raise_valueerror(pairs):
    with pytest.raises(ValueError, match="keypoint"):
        flip_permutation(pairs, 5)


def test_kaggle_flip_pairs_match_left_right_names():
    perm = flip_permutation(KAGGLE_15_FLIP_PAIRS, 15).tolist()
    for i, name in enumerate(KEYPOINT_NAMES):
        mirrored = name.replace("left", "@").replace("right", "left").replace("@", "right")
        # Every left point maps to its right namesake; points on the axis to themselves.
        assert KEYPOINT_NAMES[perm[i]] == mirrored


def test_ibug_flip_pairs_cover_all_but_axis_points():
    perm = flip_permutation(IBUG_68_FLIP_PAIRS, 68).tolist()
    on_axis = {i for i in range(68) if perm[i] == i}
    assert on_axis == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}
    # Jaw and eyebrows mirror by their contour order.
    assert all(perm[i] == 16 - i for i in range(17))
    assert all(perm[i] == 43 - i for i in range(17, 27))


@pytest.mark.parametrize("k, expected", [(15, KAGGLE_15_FLIP_PAIRS), (68, IBUG_68_FLIP_PAIRS),
                                         (5, None)])
def test_default_flip_pairs_by_count_picks_layout(k, expected):
    assert default_flip_pairs(k) == expected


def test_flip_keypoints_mirrors_x_and_swaps_labels():
    points = torch.tensor([[[10.0, 20.0], [70.0, 22.0], [40.0, 50.0]]])  # left, right, nose
    perm = flip_permutation([(0, 1)], 3)
    flipped = flip_keypoints(points, 96, perm)
    # The mirror image's "left" point is where the right one went: 96 - 70 = 26.
    torch.testing.assert_close(flipped, torch.tensor([[[26.0, 22.0], [86.0, 20.0],
                                                       [56.0, 50.0]]]))


# -- affine augmentation ---------------------------------------------------------------


def test_augment_flip_only_images_mirrored_exactly_and_points_swapped():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, 2, 10, 14, generator=g)
    points = torch.rand(16, 3, 2, generator=g) * 10
    perm = flip_permutation([(0, 2)], 3)
    out, out_points = augment_keypoints(images, points, perm=perm, flip=True,
                                        generator=torch.Generator().manual_seed(1))
    flipped = (out - images).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert 0 < flipped.sum() < 16
    torch.testing.assert_close(out[flipped], images[flipped].flip(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[~flipped], images[~flipped], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_points[flipped], flip_keypoints(points[flipped], 14, perm))
    torch.testing.assert_close(out_points[~flipped], points[~flipped])


@pytest.mark.parametrize("size", [(48, 48), (40, 64)])
def test_warp_bright_dot_moves_with_its_keypoint(size):
    height, width = size
    g = torch.Generator().manual_seed(0)
    n = 24
    # Dots away from the border, so the transformed dot stays inside the image.
    points = torch.stack([torch.randint(width // 3, 2 * width // 3, (n,), generator=g),
                          torch.randint(height // 3, 2 * height // 3, (n,), generator=g)],
                         dim=1).float() + 0.5
    images = _dots(points, size)
    matrix, flipped = random_affine(n, size, flip=True, rotation=25.0, scale=0.2, shift=0.1,
                                    generator=torch.Generator().manual_seed(2))
    assert flipped.any() and (~flipped).any()
    warped = warp_images(images, matrix, padding_mode="zeros")
    moved = warp_keypoints(points[:, None], matrix, size)[:, 0]
    # Bilinear resampling keeps the blob's centre of mass to a small fraction of a pixel.
    torch.testing.assert_close(_centroids(warped), moved, atol=0.15, rtol=0)
    # And the transform really moved things.
    assert (moved - points).norm(dim=1).mean() > 2


def test_random_affine_limits_respected():
    n, size = 2000, (32, 64)
    matrix, flipped = random_affine(n, size, rotation=10.0, scale=0.1, shift=0.05,
                                    generator=torch.Generator().manual_seed(0))
    assert not flipped.any()
    linear = matrix[:, :, :2]
    zoom = torch.linalg.det(linear).sqrt()
    angle = torch.atan2(linear[:, 1, 0], linear[:, 0, 0])
    assert zoom.min() >= 0.9 - 1e-5 and zoom.max() <= 1.1 + 1e-5
    assert angle.abs().max() <= math.radians(10.0) + 1e-5
    assert matrix[:, 0, 2].abs().max() <= 0.05 * 64 + 1e-5
    assert matrix[:, 1, 2].abs().max() <= 0.05 * 32 + 1e-5


def test_warp_keypoints_missing_point_stays_missing():
    points = torch.tensor([[[5.0, 6.0], [float("nan"), float("nan")]]])
    matrix, _ = random_affine(1, (16, 16), rotation=20.0, shift=0.1,
                              generator=torch.Generator().manual_seed(0))
    out = warp_keypoints(points, matrix, (16, 16))
    assert torch.isfinite(out[0, 0]).all() and torch.isnan(out[0, 1]).all()


def test_augment_flip_without_pairs_raises_valueerror():
    with pytest.raises(ValueError, match="pairs"):
        augment_keypoints(torch.zeros(2, 1, 8, 8), torch.zeros(2, 3, 2), flip=True)


def test_augment_nothing_returns_inputs_unchanged():
    images, points = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 2)
    out, out_points = augment_keypoints(images, points)
    assert out is images and out_points is points


def _theta_by_linalg_inv(matrix, size):
    """The former ``_grid_theta``: ``torch.linalg.inv`` and a host-built scale tensor."""
    height, width = size
    linear, offset = matrix[:, :, :2], matrix[:, :, 2:]
    inverse = torch.linalg.inv(linear)
    norm = torch.tensor([2.0 / width, 2.0 / height], device=matrix.device)
    a = inverse * norm[:, None] / norm[None, :]
    b = -(inverse @ offset).squeeze(-1) * norm
    return torch.cat([a, b[:, :, None]], dim=2)


@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
def test_grid_theta_closed_form_matches_linalg_inv(size):
    matrix, _ = random_affine(256, size, flip=True, rotation=30.0, scale=0.3, shift=0.2,
                              generator=torch.Generator().manual_seed(3))
    new = keypoints_module._grid_theta(matrix, size)
    old = _theta_by_linalg_inv(matrix, size)
    torch.testing.assert_close(new, old, atol=1e-6, rtol=1e-6)
    # And the resampled images agree too, to float rounding.
    images = torch.rand(256, 2, *size, generator=torch.Generator().manual_seed(4))
    grid = F.affine_grid(old, list(images.shape), align_corners=False)
    expected = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    torch.testing.assert_close(warp_images(images, matrix), expected, atol=1e-5, rtol=0)


def test_grid_theta_inverts_the_forward_map():
    # theta maps each output pixel back to where it came from: composing with the
    # forward map in normalised coordinates gives the identity.
    size = (20, 36)
    height, width = size
    matrix, _ = random_affine(64, size, flip=True, rotation=40.0, scale=0.25, shift=0.1,
                              generator=torch.Generator().manual_seed(5))
    theta = keypoints_module._grid_theta(matrix, size)
    u = torch.rand(64, 2, generator=torch.Generator().manual_seed(6)) * 2 - 1
    q = u / torch.tensor([2.0 / width, 2.0 / height])  # normalised -> centred pixels
    moved = torch.einsum("nij,nj->ni", matrix[:, :, :2], q) + matrix[:, :, 2]
    moved_u = moved * torch.tensor([2.0 / width, 2.0 / height])
    back = torch.einsum("nij,nj->ni", theta[:, :, :2], moved_u) + theta[:, :, 2]
    torch.testing.assert_close(back, u, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_warp_keypoints_same_as_host_built_centre_bit_exact(dtype):
    size = (23, 37)
    g = torch.Generator().manual_seed(7)
    points = (torch.rand(16, 5, 2, generator=g) * 30).to(dtype)
    matrix, flipped = random_affine(16, size, flip=True, rotation=15.0, scale=0.1, shift=0.1,
                                    generator=g)
    perm = flip_permutation([(0, 4), (1, 3)], 5)
    centre = torch.tensor([37 / 2.0, 23 / 2.0], dtype=dtype)
    linear, offset = matrix[:, :, :2].to(dtype), matrix[:, :, 2].to(dtype)
    expected = (points - centre) @ linear.transpose(1, 2) + offset[:, None, :] + centre
    expected = torch.where(flipped[:, None, None], expected[:, perm], expected)
    out = warp_keypoints(points, matrix, size, flipped, perm)
    assert out.dtype == dtype and torch.equal(out, expected)


def test_augment_keypoints_no_inverse_no_host_built_tensor(monkeypatch):
    # On CUDA both wait for the device on every batch (issue 13).
    perm = flip_permutation([(0, 1)], 3)

    def forbidden(*args, **kwargs):
        raise AssertionError("called in the per-batch augmentation")

    monkeypatch.setattr(torch.linalg, "inv", forbidden)
    monkeypatch.setattr(torch, "tensor", forbidden)
    images, points = torch.rand(4, 1, 12, 12), torch.rand(4, 3, 2) * 12
    out, out_points = augment_keypoints(
        images, points, perm=perm, flip=True, rotation=10.0, scale=0.1, shift=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == images.shape and out_points.shape == points.shape
    assert torch.isfinite(out).all() and torch.isfinite(out_points).all()


# -- masked loss ---------------------------------------------------------------------


def test_masked_mse_nan_targets_ignored_in_value():
    pred = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    target = torch.tensor([[0.0, float("nan"), 3.0], [float("nan"), 7.0, 2.0]])
    # Observed errors: 1, 0, -2, 4 -> (1 + 0 + 4 + 16) / 4.
    torch.testing.assert_close(masked_mse(pred, target), torch.tensor(21.0 / 4))
    torch.testing.assert_close(MaskedMSELoss()(pred, target), torch.tensor(21.0 / 4))


def test_masked_mse_gradient_zero_and_finite_at_missing():
    pred = torch.randn(4, 6, requires_grad=True)
    target = torch.randn(4, 6)
    target[0, :3] = float("nan")
    target[2, 4] = float("nan")
    masked_mse(pred, target).backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[0, :3] == 0).all() and pred.grad[2, 4] == 0
    assert (pred.grad[1] != 0).all()


def test_masked_mse_minimiser_is_mean_of_observed_not_biased():
    # Column 0 is observed in one row of four: its optimum is that row's value,
    # not a quarter of it (as filling missing values with 0 would give).
    target = torch.tensor([[8.0, 1.0], [float("nan"), 3.0], [float("nan"), 5.0],
                           [float("nan"), 7.0]])
    guess = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([guess], lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        masked_mse(guess.expand(4, 2), target).backward()
        optimizer.step()
    torch.testing.assert_close(guess.detach(), torch.tensor([8.0, 4.0]), atol=1e-3, rtol=0)


def test_masked_mse_all_missing_zero_loss_zero_gradient():
    pred = torch.randn(3, 2, requires_grad=True)
    loss = masked_mse(pred, torch.full((3, 2), float("nan")))
    loss.backward()
    assert loss.item() == 0.0 and (pred.grad == 0).all()


def test_masked_mse_shape_mismatch_raises_valueerror():
    with pytest.raises(ValueError, match="same shape"):
        masked_mse(torch.zeros(2, 4), torch.zeros(2, 2, 2))
