"""Tests for skface.nn.losses, skface.nn.heads and skface.nn.augment."""

import pytest
import torch
import torch.nn.functional as F

from skface.nn.augment import center_crop, random_crop, random_flip
from skface.nn.heads import ScaledLinearHead
from skface.nn.losses import CenterLoss, SoftmaxCenterLoss


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(seed=0, n=12, d=5, k=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


def test_center_loss_value_is_half_mean_squared_distance():
    features, labels = _batch()
    loss = CenterLoss(4, 5)
    loss.centers.copy_(torch.randn(4, 5))
    expected = 0.5 * ((features - loss.centers[labels]) ** 2).sum(1).mean()
    torch.testing.assert_close(loss(features, labels), expected)


def test_center_loss_update_matches_wen_equation_4():
    features, labels = _batch(1)
    loss = CenterLoss(4, 5, alpha=0.3)
    loss.centers.copy_(torch.randn(4, 5))
    before = loss.centers.clone()
    loss.update_centers(features, labels)
    for j in range(4):
        mask = labels == j
        delta = (before[j] - features[mask]).sum(0) / (1 + mask.sum())
        torch.testing.assert_close(loss.centers[j], before[j] - 0.3 * delta)


def test_center_loss_update_same_as_bincount_formula_bit_exact():
    # Classes 4 and 5 never occur: trailing absent classes must not move either.
    features, labels = _batch(2, n=40, d=7, k=4)
    loss = CenterLoss(6, 7, alpha=0.4)
    loss.centers.copy_(torch.randn(6, 7, generator=torch.Generator().manual_seed(3)))
    centers = loss.centers.clone()
    diff = centers[labels] - features
    delta = torch.zeros_like(centers).index_add_(0, labels, diff)
    counts = torch.bincount(labels, minlength=6).to(delta.dtype)
    expected = centers - 0.4 * delta / (1.0 + counts).unsqueeze(1)
    loss.update_centers(features, labels)
    assert torch.equal(loss.centers, expected)
    assert torch.equal(loss.centers[4:], centers[4:])


def test_center_loss_update_no_bincount(monkeypatch):
    # bincount sizes its output from the labels' maximum: a host sync per batch on CUDA.
    def forbidden(*args, **kwargs):
        raise AssertionError("bincount called in the per-batch center update")

    monkeypatch.setattr(torch, "bincount", forbidden)
    features, labels = _batch(4)
    loss = CenterLoss(4, 5)
    loss.update_centers(features, labels)
    assert loss.centers.abs().sum() > 0


def test_center_loss_alpha_one_single_sample_moves_center_halfway():
    loss = CenterLoss(2, 3, alpha=1.0)
    x = torch.tensor([[2.0, 4.0, 6.0]])
    loss.update_centers(x, torch.tensor([1]))
    torch.testing.assert_close(loss.centers, torch.tensor([[0.0, 0, 0], [1.0, 2.0, 3.0]]))


def test_center_loss_centers_not_parameters_no_gradient():
    loss = CenterLoss(3, 2)
    assert list(loss.parameters()) == []
    features = torch.randn(4, 2, requires_grad=True)
    loss(features, torch.tensor([0, 1, 2, 0])).backward()
    assert features.grad is not None and loss.centers.grad is None


def test_center_loss_add_classes_keeps_old_centers():
    loss = CenterLoss(2, 3)
    loss.centers.fill_(1.0)
    loss.add_classes(2, init=torch.full((2, 3), 5.0))
    assert loss.centers.shape == (4, 3)
    assert (loss.centers[:2] == 1).all() and (loss.centers[2:] == 5).all()


def test_center_loss_bad_alpha_raises():
    with pytest.raises(ValueError, match="alpha"):
        CenterLoss(2, 2, alpha=1.5)


def test_softmax_center_loss_lambda_zero_is_cross_entropy():
    features, labels = _batch()
    logits = torch.randn(12, 4)
    criterion = SoftmaxCenterLoss(4, 5, lambda_center=0.0)
    torch.testing.assert_close(criterion(features, logits, labels), F.cross_entropy(logits, labels))
    criterion = SoftmaxCenterLoss(4, 5, lambda_center=0.5)
    expected = F.cross_entropy(logits, labels) + 0.5 * criterion.center_loss(features, labels)
    torch.testing.assert_close(criterion(features, logits, labels), expected)


def test_scaled_linear_head_logits_scale_embedding():
    torch.manual_seed(0)
    head = ScaledLinearHead(4, 3, scale=16.0)
    e = F.normalize(torch.randn(5, 4), dim=1)
    torch.testing.assert_close(head(e), 16.0 * e @ head.weight.T + head.bias)


def test_scaled_linear_head_cosine_logits_bounded_by_scale():
    head = ScaledLinearHead(4, 3, scale=10.0, normalize=True)
    logits = head(F.normalize(torch.randn(50, 4), dim=1))
    assert head.bias is None and logits.abs().max() <= 10.0 + 1e-5


def test_scaled_linear_head_add_classes_keeps_rows():
    head = ScaledLinearHead(4, 3)
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    head.add_classes(2)
    assert head.n_classes == 5
    torch.testing.assert_close(head.weight[:3].detach(), weight)
    torch.testing.assert_close(head.bias[:3].detach(), bias)


def test_random_crop_each_image_is_a_window_of_itself():
    images = torch.rand(6, 3, 10, 12)
    crops = random_crop(images, 7, generator=torch.Generator().manual_seed(0))
    assert crops.shape == (6, 3, 7, 7)
    for image, crop in zip(images, crops):
        windows = image.unfold(1, 7, 1).unfold(2, 7, 1)  # (C, 4, 6, 7, 7)
        match = (windows == crop[:, None, None]).all(-1).all(-1).all(0)
        assert match.any()


def test_random_crop_same_generator_seed_same_crops():
    images = torch.rand(4, 1, 9, 9)
    a = random_crop(images, 5, generator=torch.Generator().manual_seed(3))
    b = random_crop(images, 5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_center_crop_takes_middle_window():
    images = torch.arange(36.0).reshape(1, 1, 6, 6)
    torch.testing.assert_close(center_crop(images, 2), images[:, :, 2:4, 2:4])


def test_random_flip_mirrors_some_images_only():
    images = torch.rand(64, 1, 3, 4)
    out = random_flip(images, generator=torch.Generator().manual_seed(0))
    flipped = (out == images.flip(3)).flatten(1).all(1)
    kept = (out == images).flatten(1).all(1)
    assert (flipped | kept).all() and flipped.any() and kept.any()
