"""FaceLandmark68Net: parity with the face-api JavaScript package, and loading its weights."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skface.nn import faceapi_landmarks
from skface.nn.faceapi_landmarks import FaceLandmark68Net, state_dict_from_tfjs
from tests._faceapi_fixture import load_fixture

FIXTURE = Path(__file__).parent / "data" / "faceapi" / "landmark68_reference.json"
# Parity bound on the outputs (fractions of the 112-pixel side; 1e-4 is 0.011 pixel).
# Measured: 1.8e-7 (bench/faceapi_parity_landmarks.py --write-fixture prints it).
TOLERANCE = 1e-4
SYNTHETIC_RECIPE = "blobs-v1"


def synthetic_faces(seed, n, size=112):
    """``n`` smooth uint8 RGB images (n, size, size, 3): a colour gradient and 8 Gaussian blobs.

    The recipe the committed fixture was made from (``SYNTHETIC_RECIPE``):
    numpy's default_rng(seed), integer pixels, so that both implementations
    read exactly the same values.
    """
    rng = np.random.default_rng(seed)
    grid = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        base = rng.uniform(40, 200, 3)
        slope = rng.uniform(-60, 60, (2, 3))
        image = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        for _ in range(8):
            cx, cy = rng.uniform(0.1, 0.9, 2)
            sigma = rng.uniform(0.03, 0.2)
            colour = rng.uniform(-120, 120, 3)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
            image = image + blob[..., None] * colour
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images


def _weights():
    from skface.pretrained._faceapi import faceapi_weights

    try:
        return faceapi_weights("face_landmark_68_model")
    except OSError as exc:
        pytest.skip(f"face-api weights not available (download failed: {exc})")


@pytest.fixture(scope="module")
def weights():
    return _weights()


@pytest.fixture(scope="module")
def net(weights):
    model = FaceLandmark68Net()
    model.load_state_dict(state_dict_from_tfjs(weights))
    return model.eval()


@pytest.fixture(scope="module")
def reference():
    data = load_fixture(FIXTURE)
    assert str(data["recipe"]) == SYNTHETIC_RECIPE
    images = synthetic_faces(int(data["seed"]), int(data["n"]))
    # The inputs are regenerated, not stored: their digest pins the recipe.
    assert hashlib.sha256(images.tobytes()).hexdigest() == str(data["inputs_sha256"])
    return images, data["points"]


def _points(net, images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        return net(x).numpy()


def test_faceapi_landmarks_synthetic_inputs_match_javascript(net, reference):
    images, expected = reference
    points = _points(net, images)
    assert points.shape == expected.shape == (len(images), 68, 2)
    assert np.abs(points - expected).max() < TOLERANCE
    # The images differ, and so do the points: the check is not against a constant.
    assert np.abs(expected - expected.mean(axis=0)).max() > 100 * TOLERANCE


def _symmetric_pad(x, kernel, stride):
    # torch's own padding=1: one row and column on every side, also at stride 2.
    return F.pad(x, [kernel // 2] * 4)


def test_faceapi_landmarks_symmetric_padding_fails_parity(net, reference, monkeypatch):
    images, expected = reference
    monkeypatch.setattr(faceapi_landmarks, "_same_pad", _symmetric_pad)
    assert np.abs(_points(net, images) - expected).max() > 100 * TOLERANCE


@pytest.mark.parametrize("layer", ["dense0.conv0.conv.bias", "dense2.conv3.pointwise.weight",
                                   "fc.bias"])
def test_faceapi_landmarks_broken_layer_fails_parity(weights, reference, layer):
    images, expected = reference
    model = FaceLandmark68Net()
    state = state_dict_from_tfjs(weights)
    # One layer off by a tenth of its typical size: far outside the parity bound.
    state[layer] = state[layer] + 0.1 * state[layer].abs().mean()
    model.load_state_dict(state)
    assert np.abs(_points(model.eval(), images) - expected).max() > 10 * TOLERANCE


def test_faceapi_landmarks_wrong_input_size_raises():
    with pytest.raises(ValueError, match=r"\(N, 3, 112, 112\).*got shape \(1, 3, 96, 96\)"):
        FaceLandmark68Net()(torch.zeros(1, 3, 96, 96))


def test_faceapi_landmarks_state_dict_covers_every_parameter(weights):
    state = state_dict_from_tfjs(weights)
    model = FaceLandmark68Net()
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state)  # strict: every shape fits
    assert sum(v.numel() for v in state.values()) == sum(w.size for w in weights.values())


def test_faceapi_landmarks_missing_tensor_raises(weights):
    broken = {k: v for k, v in weights.items() if k != "dense1/conv2/pointwise_filter"}
    with pytest.raises(ValueError, match="missing dense1/conv2/pointwise_filter"):
        state_dict_from_tfjs(broken)


def test_faceapi_landmarks_extra_tensor_raises(weights):
    broken = dict(weights, **{"fc2/bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="unexpected fc2/bias"):
        state_dict_from_tfjs(broken)


def test_faceapi_landmarks_misshapen_tensor_raises(weights):
    broken = dict(weights, **{"fc/weights": weights["fc/weights"].T})
    with pytest.raises(ValueError,
                       match=r"fc/weights has shape \(136, 256\); expected \(256, 136\)"):
        state_dict_from_tfjs(broken)


def test_faceapi_landmarks_tf_same_padding_is_bottom_right_at_stride_2():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    padded = faceapi_landmarks._same_pad(x, 3, 2)
    # 4 -> 2 outputs need 5 rows: one extra, at the bottom (and right), none on top.
    assert padded.shape == (1, 1, 5, 5)
    assert torch.equal(padded[0, 0, :4, :4], x[0, 0])
    assert padded[0, 0, 4].abs().sum() == 0 and padded[0, 0, :, 4].abs().sum() == 0
    assert faceapi_landmarks._same_pad(x, 3, 1).shape == (1, 1, 6, 6)
