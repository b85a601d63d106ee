"""Tests for skface.backbones: entry-point discovery, plugins, broken plugins, building."""

from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch
from torch import nn

from skface import _plugins, backbones
from skface.backbones import build_backbone, get_backbone, list_backbones
from skface.estimators import CenterLossEmbedder
from skface.nn.nn4_small2 import NN4Small2
from skface.nn.small_cnn import SmallConvNet


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: one thread avoids OpenMP oversubscription on shared, busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PluginNet(nn.Module):
    """A third party's backbone: mean colour through a linear layer."""

    def __init__(self, in_channels=3, embedding_dim=128, bias=True):
        super().__init__()
        self.fc = nn.Linear(in_channels, embedding_dim, bias=bias)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture
def plugins(monkeypatch):
    """Replace the installed entry points of the group by the given ones."""

    def install(*entries):
        eps = [EntryPoint(name, value, backbones.ENTRY_POINT_GROUP) for name, value in entries]
        monkeypatch.setattr(_plugins, "entry_points", lambda group: list(eps))
        _plugins.clear_cache()

    yield install
    _plugins.clear_cache()


def test_list_backbones_builtins_declared_in_metadata():
    from importlib.metadata import entry_points

    declared = {ep.name for ep in entry_points(group=backbones.ENTRY_POINT_GROUP)}
    assert {"nn4_small2", "small_cnn"} <= declared
    assert {"nn4_small2", "small_cnn"} <= set(list_backbones())
    assert get_backbone("nn4_small2") is NN4Small2
    assert get_backbone("small_cnn") is SmallConvNet


def test_get_backbone_plugin_entry_point_found(plugins):
    plugins(("plugin_net", f"{__name__}:PluginNet"))
    assert get_backbone("plugin_net") is PluginNet
    assert list_backbones() == ["faceapi_resnet", "nn4_small2", "plugin_net", "small_cnn"]


def test_discover_called_twice_loads_once(plugins, monkeypatch):
    plugins(("plugin_net", f"{__name__}:PluginNet"))
    calls = []
    real = _plugins.entry_points
    monkeypatch.setattr(_plugins, "entry_points", lambda group: calls.append(1) or real(group))
    _plugins.clear_cache()
    list_backbones()
    list_backbones()
    get_backbone("plugin_net")
    assert len(calls) == 1


def test_discover_broken_plugin_warns_naming_it_others_survive(plugins):
    plugins(("broken_net", "skface_no_such_module:Net"), ("plugin_net", f"{__name__}:PluginNet"))
    with pytest.warns(RuntimeWarning, match="'broken_net'.*failed to load"):
        names = list_backbones()
    assert "plugin_net" in names and "broken_net" not in names


def test_discover_not_callable_plugin_warns(plugins):
    plugins(("constant", "skface.backbones:ENTRY_POINT_GROUP"))
    with pytest.warns(RuntimeWarning, match="'constant'.*not callable"):
        assert "constant" not in list_backbones()


def test_discover_stale_metadata_builtins_still_available(plugins):
    plugins()
    assert list_backbones() == ["faceapi_resnet", "nn4_small2", "small_cnn"]


def test_get_backbone_unknown_name_raises_listing_available():
    with pytest.raises(ValueError, match="Unknown backbone 'nope'.*nn4_small2, small_cnn"):
        get_backbone("nope")


def test_build_backbone_class_factory_and_instance():
    net = build_backbone(PluginNet, in_channels=1, embedding_dim=6, bias=False)
    assert isinstance(net, PluginNet) and net.fc.bias is None
    net = build_backbone(lambda **kw: PluginNet(**kw), in_channels=3, embedding_dim=4)
    assert net.fc.out_features == 4
    original = PluginNet(3, 5)
    copy = build_backbone(original, in_channels=3, embedding_dim=5)
    assert copy is not original and torch.equal(copy.fc.weight, original.fc.weight)


def test_build_backbone_bad_values_raise():
    with pytest.raises(TypeError, match="not an nn.Module"):
        build_backbone(lambda **kw: "x", in_channels=3, embedding_dim=4)
    with pytest.raises(TypeError, match="registered name"):
        build_backbone(3, in_channels=3, embedding_dim=4)
    with pytest.raises(ValueError, match="module instance"):
        build_backbone(PluginNet(), in_channels=3, embedding_dim=128, width=2)


def test_embedder_plugin_backbone_by_name_trains(plugins):
    plugins(("plugin_net", f"{__name__}:PluginNet"))
    rng = np.random.RandomState(0)
    X = rng.rand(20, 6, 6, 3).astype(np.float32)
    y = np.repeat([0, 1], 10)
    emb = CenterLossEmbedder(
        "plugin_net", embedding_dim=5, max_epochs=2, batch_size=8, random_state=0
    ).fit(X, y)
    assert isinstance(emb.net_.module_.backbone, PluginNet)
    Z = emb.transform(X)
    assert Z.shape == (20, 5)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
