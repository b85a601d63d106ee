"""Tests for skface.nn.faceapi_resnet: face-api's recognition ResNet against the JavaScript package."""

from pathlib import Path

import numpy as np
import pytest
import torch

from skface.backbones import build_backbone
from skface.nn.faceapi_resnet import (
    FACEAPI_MEAN_RGB,
    FaceRecognitionResNet,
    _tfjs_names,
    state_dict_from_tfjs,
)
from tests._faceapi_fixture import load_fixture

FIXTURE = Path(__file__).parent / "data" / "faceapi" / "recognition_reference.json"
# The fixture's inputs: 4 synthetic 150x150 images from this seed (see synthetic_faces).
SEED, N_IMAGES = 0, 4
# The port and tfjs differ only by float32 summation order: 3e-7 abs (descriptor
# norms about 1.3) measured on the fixture. 1e-4 leaves a 300x margin for other
# BLAS/oneDNN kernels while a wrong layer moves descriptors by 1e-2 or more.
ATOL = 1e-4
RTOL = 1e-4


def synthetic_faces(seed=SEED, n=N_IMAGES, size=150):
    """Smooth random RGB patterns in [0, 255], the fixture's inputs (numpy only, so reproducible).

    Each channel of each image is ``127.5 + 127.5 * tanh`` of a sum of five
    plane waves (random direction, 0.5-4 cycles per image, phase and
    amplitude) plus one Gaussian blob: smooth like a photo, with edges and
    contrast at every scale the network pools over.

    Returns
    -------
    images : ndarray of shape (n, size, size, 3), float32
    """
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((n, size, size, 3), dtype=np.float64)
    for i in range(n):
        for c in range(3):
            field = np.zeros((size, size))
            for _ in range(5):
                angle = rng.uniform(0, 2 * np.pi)
                cycles = rng.uniform(0.5, 4.0)
                phase = rng.uniform(0, 2 * np.pi)
                amplitude = rng.uniform(0.3, 1.0)
                wave = cycles * 2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy)
                field += amplitude * np.sin(wave + phase)
            cy, cx = rng.uniform(0.2, 0.8, 2)
            width = rng.uniform(0.1, 0.3)
            field += 2.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
            images[i, :, :, c] = 127.5 + 127.5 * np.tanh(field - 1.0)
    return images.astype(np.float32)


def preprocess(images):
    """face-api's ``(x - mean) / 255`` as the module takes it: (n, h, w, 3) 0-255 -> (n, 3, h, w)."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).permute(0, 3, 1, 2) / 255
    return x - torch.tensor(FACEAPI_MEAN_RGB)[:, None, None] / 255


def differences(out, ref):
    """Max abs difference and max relative difference (over the reference descriptors' norms)."""
    out, ref = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    rel = np.linalg.norm(out - ref, axis=1) / np.linalg.norm(ref, axis=1)
    return float(np.abs(out - ref).max()), float(rel.max())


def _tfjs_from_state(state):
    """The inverse of state_dict_from_tfjs: a module's state in face-api's names and TF layouts."""
    weights = {}
    for key, (tf_name, kind) in _tfjs_names().items():
        value = state[key].detach().numpy()
        if kind == "filters":
            value = value.transpose(2, 3, 1, 0)
        elif kind == "fc":
            value = value.T
        weights[tf_name] = np.ascontiguousarray(value)
    return weights


@pytest.fixture(scope="module")
def tfjs_weights():
    from skface.pretrained._faceapi import faceapi_weights

    try:
        return faceapi_weights("face_recognition_model")
    except OSError as exc:
        pytest.skip(f"face-api weights unavailable (offline?): {exc}")


@pytest.fixture(scope="module")
def pretrained(tfjs_weights):
    model = FaceRecognitionResNet()
    model.load_state_dict(state_dict_from_tfjs(tfjs_weights))
    return model.eval()


@pytest.fixture(scope="module")
def reference():
    data = load_fixture(FIXTURE)
    assert int(data["seed"]) == SEED and int(data["n_images"]) == N_IMAGES
    return data


def _descriptors(model, images):
    with torch.no_grad():
        return model(preprocess(images)).numpy()


def test_synthetic_faces_recipe_unchanged_matches_fixture(reference):
    images = synthetic_faces()
    assert images.shape == (N_IMAGES, 150, 150, 3)
    assert 0.0 <= images.min() and images.max() <= 255.0
    # The fixture records its inputs' sum: a changed recipe would make the parity test meaningless.
    np.testing.assert_allclose(images.astype(np.float64).sum(), float(reference["input_sum"]), rtol=1e-9)


def test_faceapi_resnet_pretrained_matches_js_reference(pretrained, reference):
    out = _descriptors(pretrained, synthetic_faces())
    ref = reference["descriptors"]
    assert out.shape == ref.shape == (N_IMAGES, 128)
    max_abs, max_rel = differences(out, ref)
    assert max_abs < ATOL, max_abs
    assert max_rel < RTOL, max_rel


@pytest.mark.parametrize("fault", ["filter_transposed", "same_padding", "no_shortcut_pad_channels"])
def test_faceapi_resnet_broken_layer_fails_parity(pretrained, reference, fault, monkeypatch):
    import copy

    import torch.nn.functional as F

    from skface.nn import faceapi_resnet

    broken = copy.deepcopy(pretrained)
    if fault == "filter_transposed":
        # One 3x3 filter read as (kw, kh) instead of (kh, kw): a layout slip in the conversion.
        conv = broken.blocks["conv128_1"].conv1.conv
        conv.weight.data = conv.weight.data.transpose(2, 3).contiguous()
    elif fault == "same_padding":
        # The first 7x7 stride-2 convolution with 'same'-style padding instead of TF 'valid'.
        broken.conv32_down.conv.padding = (3, 3)
    else:
        # The shortcut's new channels put before the pooled ones instead of after them.
        real_pad = F.pad

        def front_pad(x, pad, *args, **kwargs):
            if len(pad) == 6:
                pad = (0, 0, 0, 0, pad[5], pad[4])
            return real_pad(x, pad, *args, **kwargs)

        monkeypatch.setattr(faceapi_resnet.F, "pad", front_pad)
    out = _descriptors(broken, synthetic_faces())
    max_abs, max_rel = differences(out, reference["descriptors"])
    # Far outside the tolerance, so the parity test above catches each of these slips.
    assert max_abs > 100 * ATOL, max_abs
    assert max_rel > 100 * RTOL, max_rel


def test_faceapi_resnet_shapes_150_input_gives_128_descriptors():
    torch.manual_seed(0)
    model = FaceRecognitionResNet().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 150, 150))
    assert out.shape == (2, 128)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"in_channels": 1}, "in_channels=3.*in_channels=1"),
    ({"embedding_dim": 64}, "embedding_dim=128.*embedding_dim=64"),
])
def test_faceapi_resnet_other_sizes_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FaceRecognitionResNet(**kwargs)


def test_build_backbone_faceapi_resnet_builds_module():
    module = build_backbone("faceapi_resnet", in_channels=3, embedding_dim=128)
    assert isinstance(module, FaceRecognitionResNet)
    with pytest.raises(ValueError, match="in_channels=3"):
        build_backbone("faceapi_resnet", in_channels=1, embedding_dim=128)


def test_state_dict_from_tfjs_round_trip_restores_every_tensor():
    torch.manual_seed(0)
    model = FaceRecognitionResNet()
    state = state_dict_from_tfjs(_tfjs_from_state(model.state_dict()))
    assert set(state) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_state_dict_from_tfjs_pretrained_weights_load_strictly(tfjs_weights):
    assert len(tfjs_weights) == len(_tfjs_names()) == 117
    FaceRecognitionResNet().load_state_dict(state_dict_from_tfjs(tfjs_weights), strict=True)


@pytest.fixture
def fake_weights():
    torch.manual_seed(0)
    return _tfjs_from_state(FaceRecognitionResNet().state_dict())


def test_state_dict_from_tfjs_missing_tensor_raises_naming_it(fake_weights):
    del fake_weights["conv64_2/conv2/scale/biases"]
    with pytest.raises(ValueError, match="lack the tensor 'conv64_2/conv2/scale/biases'"):
        state_dict_from_tfjs(fake_weights)


def test_state_dict_from_tfjs_extra_tensor_raises_naming_it(fake_weights):
    fake_weights["prediction_layer/weights"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="unexpected tensor 'prediction_layer/weights'"):
        state_dict_from_tfjs(fake_weights)


@pytest.mark.parametrize("name, value, match", [
    # Filters already in torch's (out, in, kh, kw) layout.
    ("conv32_down/conv/filters", np.zeros((32, 3, 7, 7)), r"\(32, 3, 7, 7\); expected \(7, 7, 3, 32\)"),
    ("fc", np.zeros((128, 256)), r"\(128, 256\); expected \(256, 128\)"),
    ("conv256_1/conv1/conv/bias", np.zeros(128), r"\(128,\); expected \(256,\)"),
])
def test_state_dict_from_tfjs_misshapen_tensor_raises_naming_it(fake_weights, name, value, match):
    fake_weights[name] = value.astype(np.float32)
    with pytest.raises(ValueError, match=f"tensor '{name}' has shape {match}"):
        state_dict_from_tfjs(fake_weights)
