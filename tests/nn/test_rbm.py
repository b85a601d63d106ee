"""Tests for skface.nn.rbm: RBM units, CD-k and persistent CD, unrolling, sampling."""

import subprocess
import sys

import pytest
import torch

from skface.nn import (
    RBM,
    BernoulliRBM,
    GaussianBernoulliRBM,
    cd_step,
    rbm_optimizer,
    sample_stack,
    unroll,
)


def _bars(n=400, seed=0):
    """Binary 4x4 images of one random horizontal or vertical bar: easy to model."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n,), generator=g)
    vertical = torch.rand(n, generator=g) < 0.5
    images = torch.zeros(n, 4, 4)
    for i in range(n):
        if vertical[i]:
            images[i, :, idx[i]] = 1
        else:
            images[i, idx[i], :] = 1
    return images.reshape(n, 16)


def _train(rbm, data, *, epochs, lr, k=1, persistent=False, seed=0, momentum=0.5):
    g = torch.Generator().manual_seed(seed)
    optimizer = rbm_optimizer(rbm, lr, momentum=momentum)
    chain = data[:20].clone() if persistent else None
    for _ in range(epochs):
        for start in range(0, len(data), 20):
            _, new_chain = cd_step(
                rbm, data[start : start + 20], optimizer, k=k, chain=chain, generator=g
            )
            chain = new_chain if persistent else None
    return rbm


def test_rbm_conditionals_have_expected_shapes_and_ranges():
    rbm = RBM(16, 5, generator=torch.Generator().manual_seed(0))
    v = _bars(10)
    h = rbm.hidden_mean(v)
    assert h.shape == (10, 5) and 0 <= h.min() and h.max() <= 1
    assert rbm.visible_mean(h).shape == (10, 16)
    assert set(rbm.sample_hidden(v).unique().tolist()) <= {0.0, 1.0}
    assert rbm.free_energy(v).shape == (10,)
    assert torch.equal(rbm(v), h)


def test_rbm_gaussian_units_are_linear_means():
    rbm = RBM(3, 2, visible="gaussian", hidden="gaussian")
    with torch.no_grad():
        rbm.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]]))
        rbm.hidden_bias.fill_(0.5)
    v = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(rbm.hidden_mean(v), torch.tensor([[7.5, -1.5]]))
    expected = torch.tensor([[1.0, -1.0, 2.0]])
    torch.testing.assert_close(rbm.visible_mean(torch.tensor([[1.0, 1.0]])), expected)


def test_rbm_unknown_unit_type_raises():
    with pytest.raises(ValueError, match="visible must be one of"):
        RBM(3, 2, visible="relu")


def test_rbm_subclasses_set_visible_units():
    assert GaussianBernoulliRBM(4, 2).visible == "gaussian"
    assert BernoulliRBM(4, 2, hidden="gaussian").hidden == "gaussian"


def test_rbm_free_energy_matches_brute_force_bernoulli():
    # F(v) = -log sum_h exp(-E(v, h)) over all 2^3 hidden states.
    rbm = RBM(4, 3, generator=torch.Generator().manual_seed(1), init_std=1.0)
    v = _bars(5)[:, :4]
    hs = torch.tensor([[(i >> j) & 1 for j in range(3)] for i in range(8)], dtype=torch.float32)
    energy = -(v @ rbm.visible_bias)[:, None] - hs @ rbm.hidden_bias - (v @ rbm.weight.t()) @ hs.t()
    torch.testing.assert_close(rbm.free_energy(v), -torch.logsumexp(-energy, dim=1))


@pytest.mark.parametrize("k, persistent", [(1, False), (3, False), (1, True)])
def test_cd_step_training_lowers_reconstruction_error(k, persistent):
    data = _bars()
    rbm = BernoulliRBM(16, 8, generator=torch.Generator().manual_seed(0))
    before = ((rbm.reconstruct(data) - data) ** 2).mean()
    _train(rbm, data, epochs=30, lr=0.1, k=k, persistent=persistent)
    after = ((rbm.reconstruct(data) - data) ** 2).mean()
    assert after < 0.5 * before


def test_cd_step_gaussian_visible_learns_standardised_data():
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(500, 2, generator=g)
    data = latent @ torch.randn(2, 10, generator=g) + 0.1 * torch.randn(500, 10, generator=g)
    data = (data - data.mean(0)) / data.std(0)
    rbm = GaussianBernoulliRBM(10, 16, generator=g)
    before = ((rbm.reconstruct(data) - data) ** 2).mean()
    _train(rbm, data, epochs=20, lr=0.01, momentum=0.9)
    after = ((rbm.reconstruct(data) - data) ** 2).mean()
    assert after < 0.6 * before


def test_cd_step_same_generator_seed_gives_identical_weights():
    data = _bars(100)
    rbms = [BernoulliRBM(16, 4, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    for rbm in rbms:
        _train(rbm, data, epochs=2, lr=0.1)
    assert torch.equal(rbms[0].weight, rbms[1].weight)


def test_cd_step_persistent_returns_sampled_visible_chain():
    data = _bars(20)
    rbm = BernoulliRBM(16, 4)
    chain = torch.rand(7, 16)  # chains need not match the batch size
    error, new_chain = cd_step(rbm, data, rbm_optimizer(rbm, 0.1), chain=chain)
    assert new_chain.shape == (7, 16)
    assert set(new_chain.unique().tolist()) <= {0.0, 1.0}
    assert error.ndim == 0


def test_cd_step_plain_cd_returns_no_chain():
    rbm = BernoulliRBM(16, 4)
    _, chain = cd_step(rbm, _bars(20), rbm_optimizer(rbm, 0.1), k=2)
    assert chain is None


def test_cd_step_gradient_matches_cd1_formula():
    # With lr 1 and no momentum the update is the CD-1 statistics difference;
    # with a fixed seed the hidden sample is reproducible.
    data = _bars(8)
    rbm = BernoulliRBM(16, 3, generator=torch.Generator().manual_seed(0), init_std=0.5)
    before = [p.detach().clone() for p in rbm.parameters()]
    cd_step(rbm, data, rbm_optimizer(rbm, 1.0), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    weight, visible_bias, hidden_bias = before
    h0 = torch.sigmoid(data @ weight.t() + hidden_bias)
    v1 = torch.sigmoid(torch.bernoulli(h0, generator=g) @ weight + visible_bias)
    h1 = torch.sigmoid(v1 @ weight.t() + hidden_bias)
    expected = weight + (h0.t() @ data - h1.t() @ v1) / 8
    torch.testing.assert_close(rbm.weight, expected)


def test_rbm_optimizer_weight_decay_on_weights_only():
    rbm = BernoulliRBM(4, 2)
    with torch.no_grad():
        rbm.weight.fill_(1.0)
        rbm.visible_bias.fill_(1.0)
    optimizer = rbm_optimizer(rbm, 0.5, weight_decay=0.1)
    for p in rbm.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(rbm.weight, torch.full((2, 4), 0.95))
    torch.testing.assert_close(rbm.visible_bias, torch.ones(4))


def test_rbm_optimizer_momentum_accumulates_updates():
    rbm = BernoulliRBM(2, 1)
    optimizer = rbm_optimizer(rbm, 1.0, momentum=0.5)
    start = rbm.weight.detach().clone()
    for _ in range(2):
        for p in rbm.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
    # Steps of 1, then 1 + 0.5.
    torch.testing.assert_close(rbm.weight, start - 2.5)


def test_unroll_encoder_decoder_match_rbm_means():
    g = torch.Generator().manual_seed(0)
    rbms = [
        RBM(16, 8, generator=g, init_std=0.5),
        RBM(8, 3, hidden="gaussian", generator=g, init_std=0.5),
    ]
    encoder, decoder = unroll(rbms)
    v = _bars(6)
    code = rbms[1].hidden_mean(rbms[0].hidden_mean(v))
    torch.testing.assert_close(encoder(v), code)
    torch.testing.assert_close(decoder(code), rbms[0].visible_mean(rbms[1].visible_mean(code)))
    # Copies: training the unrolled net leaves the RBMs alone.
    with torch.no_grad():
        encoder[0].weight.zero_()
    assert rbms[0].weight.abs().sum() > 0


def test_sample_stack_returns_bottom_visible_means():
    g = torch.Generator().manual_seed(0)
    rbms = [RBM(16, 8, generator=g), RBM(8, 4, hidden="gaussian", generator=g)]
    samples = sample_stack(rbms, 5, n_steps=3, generator=g)
    assert samples.shape == (5, 16)
    assert 0 <= samples.min() and samples.max() <= 1


def test_sample_stack_trained_rbm_draws_bars():
    data = _bars()
    rbm = _train(
        BernoulliRBM(16, 8, generator=torch.Generator().manual_seed(0)), data, epochs=60, lr=0.1,
        persistent=True,
    )
    samples = sample_stack([rbm], 50, n_steps=200, generator=torch.Generator().manual_seed(1))
    # Bar images have 4 of 16 pixels on; random ones would have about 8.
    assert abs(samples.sum(1).mean() - 4) < 1.5


def test_skface_nn_does_not_import_sklearn():
    code = "import sys, skface.nn; assert 'sklearn' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- float32 statistics under bf16 autocast (issue 23, item 6) ---------------------------


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_cd_step_statistics_float32_under_bf16_autocast(visible):
    # CPU bf16 autocast stands in for CUDA's: the sampling runs in bf16, the
    # statistics must be float32 products of the very states it drew.
    rbm = RBM(16, 8, visible=visible, init_std=0.5, generator=torch.Generator().manual_seed(0))
    v = _bars(40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cd_step(rbm, v, rbm_optimizer(rbm, 0.0), generator=torch.Generator().manual_seed(1))
        # The same draws again, from the same seed.
        g = torch.Generator().manual_seed(1)
        h_data = rbm.hidden_mean(v)
        recon = rbm.visible_mean(rbm._draw(h_data, rbm.hidden, g))
        h_model = rbm.hidden_mean(recon)
    assert h_data.dtype == torch.bfloat16  # the sampling did run in bf16
    h_data, recon, h_model = h_data.float(), recon.float(), h_model.float()
    weight_grad = h_model.t() @ recon / len(v) - h_data.t() @ v / len(v)
    assert rbm.weight.grad.dtype == torch.float32
    torch.testing.assert_close(rbm.weight.grad, weight_grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rbm.hidden_bias.grad, h_model.mean(0) - h_data.mean(0),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rbm.visible_bias.grad, recon.mean(0) - v.mean(0),
                               atol=1e-6, rtol=1e-5)


def test_cd_step_without_autocast_unchanged_float32():
    rbm = RBM(16, 8, generator=torch.Generator().manual_seed(0))
    v = _bars(40)
    error, chain = cd_step(rbm, v, rbm_optimizer(rbm, 0.0), k=2, chain=v[:10].clone(),
                           generator=torch.Generator().manual_seed(1))
    assert error.dtype == chain.dtype == rbm.weight.grad.dtype == torch.float32
