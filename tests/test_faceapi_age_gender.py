"""Tests for skface.nn.faceapi_age_gender: parity with the face-api JavaScript package and the weight mapping."""

from pathlib import Path

import numpy as np
import pytest
import torch

from skface.nn import faceapi_age_gender
from skface.nn.faceapi_age_gender import GENDER_COLUMNS, AgeGenderNet, state_dict_from_tfjs
from tests._faceapi_fixture import load_fixture

FIXTURE = Path(__file__).resolve().parent / "data" / "faceapi" / "age_gender_reference.json"
# Measured against the JS package on the fixture's inputs: 1e-5 years and
# 2e-7 in probability (float32 rounding); a wrong layer is off by whole years.
AGE_ATOL = 1e-3
PROB_ATOL = 1e-4


def synthetic_faces(seed=0, n=8, size=112):
    """Smooth random colour patterns with a face-sized blob and mild noise, as uint8 RGB.

    The recipe of the parity fixture (``bench/faceapi_parity_age_gender.py
    --write-fixture`` writes the JS outputs on exactly these images): per
    image a base colour, four plane waves, an elliptical blob and Gaussian
    noise (sd 0.02); the last image is uniform noise, to exercise every
    pixel of the 'same' padding at full contrast.

    Returns
    -------
    images : ndarray of shape (n, size, size, 3), uint8
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n, size, size, 3))
    for i in range(n):
        img = np.broadcast_to(rng.uniform(0.2, 0.8, 3), (size, size, 3)).copy()
        for _ in range(4):
            fy, fx = rng.uniform(-4, 4, 2)
            wave = np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
            img += rng.uniform(0.05, 0.25, 3) * wave[..., None]
        cy, cx = rng.uniform(0.35, 0.65, 2)
        ry, rx = rng.uniform(0.2, 0.4, 2)
        blob = np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
        img += rng.uniform(-0.3, 0.3, 3) * blob[..., None]
        images[i] = img + rng.normal(0, 0.02, img.shape)
    images[-1] = rng.uniform(0, 1, (size, size, 3))
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def to_input(images):
    """uint8 NHWC RGB -> the module's float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from skface.pretrained._faceapi import faceapi_weights

    # The session's isolated cache (the one conftest points SKFACE_CACHE at).
    cache = tmp_path_factory.getbasetemp() / "skface_cache"
    try:
        return faceapi_weights("age_gender_model", cache_home=cache)
    except OSError as exc:
        pytest.skip(f"face-api weights unavailable (offline?): {exc}")


@pytest.fixture(scope="module")
def reference():
    return load_fixture(FIXTURE)


@pytest.fixture
def net(weights):
    model = AgeGenderNet()
    model.load_state_dict(state_dict_from_tfjs(weights))
    return model.eval()


def _errors(model, reference):
    images = synthetic_faces(int(reference["seed"]), int(reference["n"]), int(reference["size"]))
    with torch.no_grad():
        age, logits = model(to_input(images))
    prob = torch.softmax(logits, dim=1).numpy()
    return (np.abs(age.numpy() - reference["age"]).max(),
            np.abs(prob - reference["gender"]).max())


def test_synthetic_faces_seeded_same_images():
    first = synthetic_faces(0, 3)
    assert first.shape == (3, 112, 112, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, synthetic_faces(0, 3))
    assert first.std() > 20  # patterns, not a flat image


def test_fixture_holds_outputs_only_small():
    assert FIXTURE.stat().st_size < 10_000
    data = load_fixture(FIXTURE)
    assert set(data) >= {"seed", "n", "size", "age", "gender", "tfjs", "package"}
    assert data["age"].shape == (int(data["n"]),)
    assert data["gender"].shape == (int(data["n"]), 2)


def test_age_gender_net_synthetic_faces_match_javascript(net, reference):
    age_err, prob_err = _errors(net, reference)
    assert age_err < AGE_ATOL
    assert prob_err < PROB_ATOL


def test_age_gender_net_output_shapes_and_male_column_first(net):
    with torch.no_grad():
        age, logits = net(to_input(synthetic_faces(1, 2)))
    assert age.shape == (2,) and logits.shape == (2, 2)
    # face-api's predictAgeAndGender reads column 0 as P(male).
    assert GENDER_COLUMNS == ("male", "female")


def test_age_gender_net_wrong_input_size_raises():
    with pytest.raises(ValueError, match=r"\(N, 3, 112, 112\)"):
        AgeGenderNet()(torch.zeros(1, 3, 96, 96))


_original_padding = faceapi_age_gender._same_padding


def _padding_before(size, kernel, stride):
    # The odd padding pixel before (top/left), not after as TF puts it.
    before, after = _original_padding(size, kernel, stride)
    return after, before


def test_age_gender_net_padding_odd_pixel_before_fails_parity(net, reference, monkeypatch):
    monkeypatch.setattr(faceapi_age_gender, "_same_padding", _padding_before)
    age_err, prob_err = _errors(net, reference)
    assert age_err > 100 * AGE_ATOL or prob_err > 100 * PROB_ATOL


def test_age_gender_net_transposed_depthwise_filter_fails_parity(net, reference):
    layer = net.middle_flow["main_block_1"].separable_conv1.depthwise
    with torch.no_grad():
        layer.weight.copy_(layer.weight.transpose(2, 3).clone())
    age_err, prob_err = _errors(net, reference)
    assert age_err > 100 * AGE_ATOL or prob_err > 100 * PROB_ATOL


def _fake_weights():
    # Random tensors in the tfjs layout, made from the torch shapes.
    layout = faceapi_age_gender._tfjs_layout(AgeGenderNet())
    shapes = {k: tuple(v.shape) for k, v in AgeGenderNet().state_dict().items()}
    rng = np.random.default_rng(0)
    weights = {}
    for key, (name, axes) in layout.items():
        tf_shape = [0] * len(axes)
        for i, axis in enumerate(axes):
            tf_shape[axis] = shapes[key][i]
        weights[name] = rng.standard_normal(tf_shape).astype(np.float32)
    return weights


def test_state_dict_from_tfjs_layouts_loaded_strictly():
    weights = _fake_weights()
    assert len(weights) == 51
    state = state_dict_from_tfjs(weights)
    AgeGenderNet().load_state_dict(state)  # strict: every key, every shape
    dw = weights["entry_flow/reduction_block_0/separable_conv0/depthwise_filter"]
    torch_dw = state["entry_flow.reduction_block_0.separable_conv0.depthwise.weight"]
    assert torch_dw[5, 0, 1, 2] == dw[1, 2, 5, 0]  # (kh, kw, in, 1) -> (in, 1, kh, kw)
    pw = weights["exit_flow/separable_conv/pointwise_filter"]
    assert state["exit_flow.separable_conv.pointwise.weight"][7, 3, 0, 0] == pw[0, 0, 3, 7]
    conv = weights["entry_flow/conv_in/filters"]
    assert state["entry_flow.conv_in.weight"][9, 2, 0, 1] == conv[0, 1, 2, 9]
    fc = weights["fc/gender/weights"]
    assert state["fc.gender.weight"][1, 100] == fc[100, 1]


def test_state_dict_from_tfjs_missing_tensor_named():
    weights = _fake_weights()
    del weights["middle_flow/main_block_0/separable_conv2/bias"]
    with pytest.raises(ValueError, match="'middle_flow/main_block_0/separable_conv2/bias' is missing"):
        state_dict_from_tfjs(weights)


def test_state_dict_from_tfjs_extra_tensor_named():
    weights = _fake_weights()
    weights["middle_flow/main_block_2/separable_conv0/bias"] = np.zeros(128, np.float32)
    with pytest.raises(ValueError, match="unexpected tensor 'middle_flow/main_block_2/separable_conv0/bias'"):
        state_dict_from_tfjs(weights)


def test_state_dict_from_tfjs_misshapen_tensor_named():
    weights = _fake_weights()
    weights["fc/age/weights"] = np.zeros((1, 512), np.float32)  # torch's layout, not TF's
    with pytest.raises(ValueError, match=r"'fc/age/weights' has shape \(1, 512\), expected \(512, 1\)"):
        state_dict_from_tfjs(weights)
