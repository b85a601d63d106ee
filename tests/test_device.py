"""Tests for skface._device: inference precision (bf16_inference) and seeding on the work's device."""

import threading

import numpy as np
import pytest
import torch

import skface
from skface import _device
from skface.estimators import DBNReconstructor, KeypointRegressor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cpu_as_cuda(monkeypatch):
    """CPU bf16 autocast where skface would use CUDA's: the same code paths, run here."""
    monkeypatch.setattr(_device, "on_cuda", lambda device: True)


@pytest.fixture(scope="module")
def faces():
    rng = np.random.RandomState(0)
    return rng.rand(40, 12, 12).astype(np.float32)


@pytest.fixture(scope="module")
def dbn(faces):
    return DBNReconstructor(hidden_layer_sizes=(32, 8), pretrain_epochs=1, finetune_epochs=1,
                            batch_size=16, device="cpu", random_state=0,
                            verbose=0).fit(faces)


# -- bf16_inference ----------------------------------------------------------------------


def test_transform_under_autocast_device_float32_by_default(dbn, faces, cpu_as_cuda):
    # The device autocasts (as CUDA would), yet inference stays float32: the same
    # codes as without autocast, bit for bit.
    reference = dbn.transform(faces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_device, "on_cuda", lambda device: False)
        assert np.array_equal(dbn.transform(faces), reference)
    with skface.bf16_inference():
        bf16 = dbn.transform(faces)
    assert bf16.dtype == np.float32
    rel = np.abs(bf16 - reference).max() / np.abs(reference).max()
    assert 1e-4 < rel < 5e-2  # bf16's 3 digits, not float32's 7
    assert np.array_equal(dbn.transform(faces), reference)  # off again after the block


def test_bf16_inference_false_inside_block_is_float32(dbn, faces, cpu_as_cuda):
    reference = dbn.transform(faces)
    with skface.bf16_inference(), skface.bf16_inference(False):
        assert np.array_equal(dbn.transform(faces), reference)


def test_predict_under_autocast_device_float32_by_default(cpu_as_cuda):
    rng = np.random.RandomState(0)
    X, y = rng.rand(24, 16, 16).astype(np.float32), rng.rand(24, 2, 2) * 16
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_device, "on_cuda", lambda device: False)
        reg = KeypointRegressor(layer_channels=(4,), convs_per_layer=1, pretrain=None,
                                max_epochs=1, batch_size=8, device="cpu", random_state=0,
                                verbose=0).fit(X, y)
        reference = reg.predict(X)
    assert np.array_equal(reg.predict(X), reference)
    with skface.bf16_inference():
        assert not np.array_equal(reg.predict(X), reference)


def test_bf16_inference_holds_in_its_own_thread_only():
    seen = {}

    def other():
        seen["other"] = _device._BF16_INFERENCE.get()

    with skface.bf16_inference():
        seen["inside"] = _device._BF16_INFERENCE.get()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == {"inside": True, "other": False}
    assert _device._BF16_INFERENCE.get() is False


def test_facenet_infer_autocasts_training_steps_not_evaluation(dbn, cpu_as_cuda):
    net = dbn.net_
    dtypes = []
    hook = net.module_.encoder[0].register_forward_hook(
        lambda module, args, out: dtypes.append(out.dtype))
    try:
        x = torch.rand(4, 144)
        with torch.no_grad():
            net.infer(x)  # net_.forward / predict
            with skface.bf16_inference():
                net.infer(x)
        net.infer(x)  # with gradients: a training step
    finally:
        hook.remove()
    assert dtypes == [torch.float32, torch.bfloat16, torch.bfloat16]


# -- seeded ------------------------------------------------------------------------------


@pytest.fixture
def forks(monkeypatch):
    """The ``devices`` each ``torch.random.fork_rng`` call was given."""
    calls = []
    fork = torch.random.fork_rng

    def recording(devices=None, **kwargs):
        calls.append(list(devices))
        return fork(devices=[], **kwargs)  # no CUDA here: fork the CPU RNG only

    monkeypatch.setattr(torch.random, "fork_rng", recording)
    monkeypatch.setattr(torch, "manual_seed", lambda seed: None)  # would seed CUDA too
    return calls


def test_seeded_cuda_forks_local_ranks_device_not_0(forks, monkeypatch):
    # data_parallel calls torch.cuda.set_device(LOCAL_RANK): "cuda" is that device.
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    with _device.seeded(0, "cuda"):
        pass
    with _device.seeded(0, torch.device("cuda:1")):
        pass
    with _device.seeded(0, "cpu"):
        pass
    assert forks == [[3], [1], []]


@pytest.mark.parametrize("name", ["DBNReconstructor", "KeypointRegressor",
                                  "CenterLossEmbedder", "ConvSDAEFeatures", "SDAEClassifier"])
def test_estimators_seed_on_their_fit_device(name, monkeypatch):
    # Every estimator's seeded() gets its own device_ (resolved from device=),
    # which seeded() turns into the current device's index.
    import importlib

    devices = []
    for module in ("_dbn", "_keypoints", "_embedding", "_sdae", "_sdae_heads"):
        mod = importlib.import_module(f"skface.estimators.{module}")
        if hasattr(mod, "seeded"):
            original = mod.seeded

            def spy(seed, device, _original=original):
                devices.append(device)
                return _original(seed, device)

            monkeypatch.setattr(mod, "seeded", spy)
    est = getattr(skface, name)(device="cpu", random_state=0)
    assert "device" in est.get_params()
    rng = np.random.RandomState(0)
    X = rng.rand(8, 16, 16).astype(np.float32)
    params = {
        "DBNReconstructor": dict(hidden_layer_sizes=(8,), pretrain_epochs=1, finetune_epochs=1),
        "KeypointRegressor": dict(layer_channels=(2,), convs_per_layer=1, pretrain=None,
                                  max_epochs=1),
        "CenterLossEmbedder": dict(backbone="small_cnn", backbone_params={"width": 2},
                                   embedding_dim=4, max_epochs=1),
        "ConvSDAEFeatures": dict(layer_channels=(2,), pretrain_epochs=1),
        "SDAEClassifier": dict(max_epochs=1),
    }[name]
    est.set_params(batch_size=4, verbose=0, **params)
    y = {"KeypointRegressor": rng.rand(8, 2, 2) * 16, "CenterLossEmbedder": np.arange(8) % 2,
         "SDAEClassifier": np.arange(8) % 2}.get(name)
    est.fit(X, y)
    assert devices and all(str(d) == "cpu" for d in devices)
