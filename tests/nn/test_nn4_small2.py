"""Tests for skface.nn.nn4_small2 and skface.nn.small_cnn: shapes, parameter count, unit norm."""

import pytest
import torch

from skface.nn.nn4_small2 import NN4Small2, L2Pool2d
from skface.nn.small_cnn import SmallConvNet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nn4():
    torch.manual_seed(0)
    return NN4Small2().eval()


def test_nn4_small2_rgb96_outputs_128d_unit_rows(nn4):
    with torch.no_grad():
        out = nn4(torch.rand(2, 3, 96, 96))
    assert out.shape == (2, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_nn4_small2_default_parameter_count_matches_openface(nn4):
    # OpenFace's nn4.small2.def.lua: "Number of Parameters ... with embSize=128: 3733968".
    assert sum(p.numel() for p in nn4.parameters()) == 3_733_968


def test_nn4_small2_96_input_reaches_3x3_before_pooling(nn4):
    with torch.no_grad():
        features = nn4.blocks(nn4.stem(torch.rand(1, 3, 96, 96)))
    assert features.shape == (1, 736, 3, 3)


def test_nn4_small2_grey_and_smaller_input_work():
    net = NN4Small2(in_channels=1, embedding_dim=32).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 32)


def test_l2pool_all_zero_window_gradient_finite():
    x = torch.zeros(1, 2, 4, 4, requires_grad=True)
    L2Pool2d()(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_l2pool_value_is_root_sum_of_squares():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    out = L2Pool2d(3, 1, 0)(x)
    torch.testing.assert_close(out.flatten(), x.pow(2).sum().sqrt().reshape(1))


@pytest.mark.parametrize("shape", [(3, 1, 7), (3, 32, 32), (2, 5, 1)])
def test_small_cnn_any_input_size_unit_rows(shape):
    net = SmallConvNet(in_channels=shape[0], embedding_dim=8, width=4)
    out = net(torch.rand(4, *shape))
    assert out.shape == (4, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))
