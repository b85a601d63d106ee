"""Tests for skface.nn.conv_dae: corruption, denoising layers, the stack, augmentation, pooling."""

import subprocess
import sys

import pytest
import torch

from skface.nn.conv_dae import (
    ChannelStandardize,
    ConvDAEStack,
    DenoisingConvLayer,
    corrupt,
    flip_shift,
    pool_features,
    trunk_features,
)


def _images(n=16, channels=3, size=(12, 10), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, *size, generator=g)


def test_corrupt_mask_zeroes_level_fraction_and_keeps_mean():
    x = torch.ones(64, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    noisy = corrupt(x, "mask", 0.25, generator=g)
    assert (noisy == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    # Survivors are scaled up so the expected value is unchanged.
    assert noisy.mean().item() == pytest.approx(1.0, abs=0.02)


def test_corrupt_gaussian_noise_scales_with_channel_std():
    x = torch.randn(256, 2, 8, 8) * torch.tensor([1.0, 10.0]).view(1, 2, 1, 1)
    noise = corrupt(x, "gaussian", 0.5, generator=torch.Generator().manual_seed(0)) - x
    std = noise.std(dim=(0, 2, 3))
    assert std[0].item() == pytest.approx(0.5, rel=0.05)
    assert std[1].item() == pytest.approx(5.0, rel=0.05)


def test_corrupt_zero_level_returns_input_unchanged():
    x = _images()
    assert corrupt(x, "mask", 0.0) is x
    assert corrupt(x, "gaussian", 0.0) is x


def test_corrupt_same_generator_seed_same_noise():
    x = _images()
    a = corrupt(x, "mask", 0.3, generator=torch.Generator().manual_seed(5))
    b = corrupt(x, "mask", 0.3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind, level", [("salt", 0.1), ("mask", 1.0), ("gaussian", -0.1)])
def test_corrupt_bad_kind_or_level_raises(kind, level):
    with pytest.raises(ValueError):
        corrupt(_images(), kind, level)


@pytest.mark.parametrize("size", [(12, 10), (7, 5), (1, 9), (1, 1)])
def test_denoising_layer_any_size_output_matches_input_shape(size):
    layer = DenoisingConvLayer(3, 4, linear_output=True)
    x = _images(4, 3, size)
    code = layer.encoder(x)
    assert code.shape[-2:] == torch.Size(layer.output_size(size))
    assert layer(x).shape == x.shape


def test_denoising_layer_two_convs_second_downsamples():
    layer = DenoisingConvLayer(3, 4, n_convs=2)
    convs = [m for m in layer.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(1, 1), (2, 2)]
    x = _images(2, 3, (9, 8))
    assert layer.encoder(x).shape == (2, 4, 5, 4)
    assert layer(x).shape == x.shape


def test_denoising_layer_even_kernel_raises():
    with pytest.raises(ValueError, match="odd"):
        DenoisingConvLayer(1, 2, kernel_size=4)


def test_stack_trunk_is_sequential_sharing_modules():
    stack = ConvDAEStack(3, (4, 8, 16))
    trunk = stack.trunk()
    assert isinstance(trunk, torch.nn.Sequential)
    assert len(trunk) == 4
    assert trunk[1] is stack.layers[0].encoder
    x = _images(2, 3, (16, 16))
    assert trunk(x).shape == (2, 16, 2, 2)
    assert stack.code_size((16, 16)) == (2, 2)
    assert stack.trunk(depth=1)(x).shape == (2, 4, 8, 8)


def test_stack_forward_odd_size_reconstructs_shape():
    stack = ConvDAEStack(1, (3, 5))
    x = _images(3, 1, (13, 9))
    assert stack(x).shape == x.shape
    assert stack.decode(stack.encode(x), (13, 9)).shape == x.shape


def test_stack_layer_loss_lower_layers_get_no_gradient():
    stack = ConvDAEStack(3, (4, 8))
    loss = stack.layer_loss(_images(8), 1, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None for p in stack.layers[0].parameters())
    assert all(p.grad is not None for p in stack.layers[1].parameters())


def _train(stack, x, loss_fn, steps=60):
    opt = torch.optim.Adam(stack.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(stack, x, g)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    return first, loss.item()


def test_stack_denoising_loss_training_halves_loss():
    torch.manual_seed(0)
    # Smooth images (a gradient plus a blob) are easy to denoise.
    grid = torch.linspace(0, 1, 12)
    base = grid.view(1, 1, 1, 12) * torch.rand(32, 1, 1, 1) + grid.view(1, 1, 12, 1) * 0.5
    stack = ConvDAEStack(1, (8,))
    stack.standardize.fit(base)
    first, last = _train(
        stack, base, lambda s, x, g: s.denoising_loss(x, "mask", 0.2, generator=g)
    )
    assert last < 0.5 * first


def test_channel_standardize_fit_inverse_round_trips():
    x = _images(8, 3) * 5 + 2
    std = ChannelStandardize(3).fit(x)
    z = std(x)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert z.std(dim=(0, 2, 3), unbiased=False).sub(1).abs().max() < 1e-4
    assert torch.allclose(std.inverse(z), x, atol=1e-5)


def test_channel_standardize_constant_channel_keeps_unit_scale():
    x = torch.zeros(4, 1, 3, 3)
    std = ChannelStandardize(1).fit(x)
    assert std.std.item() == 1.0


@pytest.mark.parametrize("pooling, width", [("flatten", 4 * 3 * 2), ("avg", 4), ("max", 4),
                                            ("avgmax", 8)])
def test_pool_features_pooling_gives_expected_width(pooling, width):
    maps = torch.rand(5, 4, 3, 2)
    assert pool_features(maps, pooling).shape == (5, width)


def test_pool_features_unknown_pooling_raises():
    with pytest.raises(ValueError, match="pooling"):
        pool_features(torch.rand(1, 1, 1, 1), "sum")


def test_flip_shift_flip_only_mirrors_or_keeps_each_image():
    x = _images(32, 2, (6, 7))
    out = flip_shift(x, flip=True, max_shift=0, generator=torch.Generator().manual_seed(0))
    mirrored = torch.isclose(out, x.flip(-1)).flatten(1).all(1)
    same = torch.isclose(out, x).flatten(1).all(1)
    assert bool((mirrored | same).all())
    assert 0 < int(mirrored.sum()) < 32


def test_flip_shift_integer_shifts_move_pixels_exactly():
    x = _images(16, 1, (8, 8))
    out = flip_shift(x, flip=False, max_shift=2, generator=torch.Generator().manual_seed(1))
    for a, b in zip(x, out):
        # Some shift (dy, dx) in [-2, 2]^2 maps the interior of the input onto the output.
        assert any(
            torch.equal(b[:, 2:6, 2:6], a[:, 2 + dy : 6 + dy, 2 + dx : 6 + dx])
            for dy in range(-2, 3) for dx in range(-2, 3)
        )


def test_flip_shift_disabled_returns_input():
    x = _images()
    assert flip_shift(x, flip=False, max_shift=0) is x


def test_conv_dae_import_no_sklearn():
    code = (
        "import sys, skface.nn.conv_dae; "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_trunk_features_top_layer_is_pooled_top_code():
    stack = ConvDAEStack(3, (4, 8)).eval()
    x = _images()
    expected = pool_features(stack.encode(x), "flatten")
    torch.testing.assert_close(trunk_features(stack.trunk(), x), expected)


def test_trunk_features_lower_layers_pooled_to_highest_grid():
    stack = ConvDAEStack(3, (4, 8, 16)).eval()
    x = _images(size=(16, 16))
    features = trunk_features(stack.trunk(), x, [0, 1], "flatten")
    # Layer 0 (4x8x8) is average-pooled to layer 1's 4x4 grid; layer 2 is not run.
    low = torch.nn.functional.avg_pool2d(stack.encode(x, depth=1), 2).flatten(1)
    assert features.shape == (len(x), (4 + 8) * 4 * 4)
    torch.testing.assert_close(features[:, : 4 * 16], low)
    assert trunk_features(stack.trunk(), x, [0, 1, 2], "avg").shape == (len(x), 4 + 8 + 16)


def test_trunk_features_test_flip_mean_with_mirror_and_mirror_invariant():
    stack = ConvDAEStack(3, (4, 8)).eval()
    x = _images(size=(16, 12))
    trunk, layers = stack.trunk(), [0, 1]
    plain = trunk_features(trunk, x, layers)
    mirrored = trunk_features(trunk, x.flip(-1), layers)
    averaged = trunk_features(trunk, x, layers, test_flip=True)
    torch.testing.assert_close(averaged, (plain + mirrored) / 2)
    torch.testing.assert_close(trunk_features(trunk, x.flip(-1), layers, test_flip=True),
                               averaged)
    assert not torch.allclose(plain, mirrored)


def test_convdaestack_layer_sizes_input_then_each_code():
    stack = ConvDAEStack(3, (4, 8, 16))
    assert stack.layer_sizes((48, 50)) == [(48, 50), (24, 25), (12, 13), (6, 7)]
    assert stack.layer_sizes((48, 50))[-1] == stack.code_size((48, 50))
