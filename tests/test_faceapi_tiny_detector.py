"""face-api's Tiny Face Detector in torch: parity with the JavaScript package, decoding and the tiny_face backend."""

from pathlib import Path

import numpy as np
import pytest
import torch

from skface.nn import faceapi_tiny_detector as tiny
from skface.nn.faceapi_tiny_detector import (
    BOX_ANCHORS,
    TinyFaceDetectorNet,
    decode_grid,
    state_dict_from_tfjs,
)
from tests._faceapi_fixture import load_fixture

FIXTURE = Path(__file__).parent / "data" / "faceapi" / "tiny_face_detector_reference.json"
# scikit-image's bundled astronaut photo, whole and cut to non-square shapes (rows, cols).
ASTRONAUT_CROPS = (
    (slice(None), slice(None)),
    (slice(0, 300), slice(None)),
    (slice(None), slice(50, 400)),
    (slice(0, 513, 3), slice(None, None, 2)),
)
# Torch against tfjs on the same float32 input: about 5e-7 of the grid's range (measured).
GRID_TOL = 1e-5


def synthetic_images(seed, n, side):
    """(n, side, side, 3) float32 smooth RGB patterns with integer values 0-255.

    Sums of random plane waves plus 8x8-pixel blocks of noise, rounded to
    integers so that every platform makes the same pixels.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = np.empty((n, side, side, 3))
    for i in range(n):
        for c in range(3):
            freq = rng.uniform(0.5, 6.0, size=(4, 2))
            phase = rng.uniform(0, 2 * np.pi, size=4)
            amp = rng.uniform(10, 50, size=4)
            waves = sum(a * np.sin(2 * np.pi * (f[0] * xx + f[1] * yy) + p)
                        for a, f, p in zip(amp, freq, phase))
            blocks = np.kron(rng.uniform(-30, 30, size=(side // 8, side // 8)), np.ones((8, 8)))
            out[i, :, :, c] = 128 + waves + blocks
    return np.clip(np.round(out), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def weights():
    from skface.pretrained._faceapi import faceapi_weights

    try:
        return faceapi_weights("tiny_face_detector_model")
    except OSError as exc:
        pytest.skip(f"face-api weights unavailable: {exc}")


@pytest.fixture(scope="module")
def net(weights):
    model = TinyFaceDetectorNet()
    model.load_state_dict(state_dict_from_tfjs(weights))
    return model.eval()


@pytest.fixture(scope="module")
def reference():
    return load_fixture(FIXTURE)


def _grid(model, images):
    with torch.no_grad():
        return model(torch.from_numpy(images).permute(0, 3, 1, 2) / 255).numpy()


def _grid_error(model, reference, side):
    count = dict(map(tuple, reference["sides"]))[side]
    images = synthetic_images(int(reference["seed"]), count, side)
    ref = reference[f"grid_{side}"]
    return np.abs(_grid(model, images) - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("side", [416, 160])
def test_tiny_detector_synthetic_images_grid_matches_javascript(net, reference, side):
    out_shape = reference[f"grid_{side}"].shape
    assert out_shape[1:] == (side // 32, side // 32, 25)
    assert _grid_error(net, reference, side) < GRID_TOL


def _pool_top_left(x, stride):
    # The bug TF padding invites: the missing row/column padded on the wrong side.
    pad = 1 if stride == 1 or x.shape[-1] % 2 else 0
    x = torch.nn.functional.pad(x, (pad, 0, pad, 0), value=float("-inf"))
    return torch.nn.functional.max_pool2d(x, 2, stride)


def test_tiny_detector_pool_padded_on_wrong_side_fails_parity_by_far(net, reference, monkeypatch):
    monkeypatch.setattr(tiny, "_max_pool_same", _pool_top_left)
    assert _grid_error(net, reference, 416) > 1000 * GRID_TOL


def test_tiny_detector_transposed_filter_fails_parity_by_far(weights, reference):
    broken = dict(weights)
    broken["conv3/depthwise_filter"] = np.ascontiguousarray(
        weights["conv3/depthwise_filter"].transpose(1, 0, 2, 3))  # kh and kw swapped
    model = TinyFaceDetectorNet()
    model.load_state_dict(state_dict_from_tfjs(broken))
    assert _grid_error(model.eval(), reference, 416) > 1000 * GRID_TOL


def test_tiny_face_astronaut_detections_match_javascript(net, reference):
    from skimage import data

    from skface.align._tiny_face import detect_tiny_face

    photo = data.astronaut()
    images = [photo[crop] for crop in ASTRONAUT_CROPS]
    found = detect_tiny_face(images, net=net)
    for (boxes, scores, landmarks), ref in zip(found, reference["astronaut_detections"]):
        ref = ref[ref[:, 4] >= 0]
        assert len(ref) == len(boxes) == 1 and landmarks is None
        np.testing.assert_allclose(boxes, ref[:, :4], atol=1e-3)
        np.testing.assert_allclose(scores, ref[:, 4], atol=1e-5)


def test_tiny_face_backend_face_detector_finds_astronaut_face_without_landmarks(weights):
    from skimage import data

    from skface.align import FaceDetector

    noise = synthetic_images(1, 1, 96)[0].astype(np.uint8)
    photo, crop = data.astronaut(), data.astronaut()[:300]
    detector = FaceDetector("tiny_face").fit()
    faces, cropped, other = detector.detect([photo, crop, noise])
    assert faces.landmarks is None and faces.boxes.shape == (1, 4)
    # The face in the photo: roughly columns 165-280, rows 75-190 (MTCNN: 181-268, 62-172).
    np.testing.assert_allclose(faces.boxes[0], [163, 76, 279, 187], atol=2)
    np.testing.assert_allclose(cropped.boxes, faces.boxes, atol=1)
    assert other.boxes.shape[1:] == (4,) and other.scores.shape == (len(other.boxes),)
    assert len(detector.set_params(min_face_size=200).detect([photo])[0].boxes) == 0


def test_decode_grid_one_cell_gives_its_box():
    grid = torch.zeros(1, 13, 13, 25)
    # Row 4, column 7, anchor 2: centre offsets sigmoid(0) = 0.5, sizes exp(log 2) = 2.
    grid[0, 4, 7, 10:15] = torch.tensor([0.0, 0.0, np.log(2.0), 0.0, 3.0])
    boxes, scores = decode_grid(grid)
    assert boxes.shape == (1, 13, 13, 5, 4) and scores.shape == (1, 13, 13, 5)
    w, h = 2 * BOX_ANCHORS[2][0] / 13, BOX_ANCHORS[2][1] / 13
    cx, cy = 7.5 / 13, 4.5 / 13
    torch.testing.assert_close(boxes[0, 4, 7, 2], torch.tensor([cx - w / 2, cy - h / 2,
                                                                cx + w / 2, cy + h / 2]))
    assert scores[0, 4, 7, 2].item() == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert scores[0, 0, 0, 0].item() == 0.5


class _FixedGrid(torch.nn.Module):
    """A stand-in network: the same grid for every input."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, x):
        assert x.shape[1:] == (3, 416, 416)
        return self.grid.expand(len(x), -1, -1, -1)


def test_detect_tiny_face_maps_boxes_back_to_non_square_image_and_suppresses():
    from skface.align._tiny_face import detect_tiny_face

    grid = torch.full((1, 13, 13, 25), -10.0)
    grid[0, 4, 7, 10:15] = torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0])  # kept
    grid[0, 4, 7, 15:20] = torch.tensor([0.0, 0.0, -0.35, -0.35, 2.0])  # IoU 0.9: suppressed
    grid[0, 10, 1, 0:5] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])   # elsewhere: kept
    grid[0, 0, 0, 0:5] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0])    # score 0.5: not above it
    image = np.zeros((100, 200, 3), np.uint8)  # the square is 200; the image fills 416 x 208
    [(boxes, scores, landmarks)] = detect_tiny_face([image], net=_FixedGrid(grid))
    assert landmarks is None
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-np.array([3.0, 1.0]))), rtol=1e-6)
    # Relative to the square, x by 416 / 416 of the width, y by 416 / 208 of the height.
    aw, ah = BOX_ANCHORS[2]
    expected = np.array([(7.5 - aw / 2) / 13 * 200, (4.5 - ah / 2) / 13 * 2 * 100,
                         (7.5 + aw / 2) / 13 * 200, (4.5 + ah / 2) / 13 * 2 * 100])
    np.testing.assert_allclose(boxes[0], expected, rtol=1e-5)
    [(few, _, _)] = detect_tiny_face([image], net=_FixedGrid(grid), min_face_size=40)
    assert len(few) == 1  # anchor 0's box is 1.6 / 13 * 200 = 25 px wide, 32 px tall


def test_resize_bilinear_samples_as_tensorflow_without_half_pixels():
    from skface.align._tiny_face import _resize_bilinear

    x = torch.tensor([0.0, 10.0, 20.0]).view(1, 1, 3, 1).expand(1, 3, 3, 1)
    out = _resize_bilinear(x, 6)[0, 0, :, 0]
    # Output column i samples input column i * 3 / 6, the last one clamped.
    torch.testing.assert_close(out, torch.tensor([0.0, 5.0, 10.0, 15.0, 20.0, 20.0]))
    same = torch.rand(1, 5, 5, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_resize_bilinear(same, 5), same)


@pytest.mark.parametrize("kwargs, match", [
    ({"input_size": 400}, "multiple of 32"), ({"score_threshold": 1.0}, "score_threshold"),
    ({"iou_threshold": -0.1}, "iou_threshold"),
])
def test_detect_tiny_face_bad_params_raise(kwargs, match):
    from skface.align._tiny_face import detect_tiny_face

    with pytest.raises(ValueError, match=match):
        detect_tiny_face([np.zeros((8, 8, 3), np.uint8)], net=None, **kwargs)


def test_detect_tiny_face_non_rgb_image_raises():
    from skface.align._tiny_face import detect_tiny_face

    with pytest.raises(ValueError, match=r"images\[0\].*\(H, W, 3\) uint8"):
        detect_tiny_face([np.zeros((8, 8), np.uint8)], net=None)


def test_tiny_detector_non_square_input_raises():
    with pytest.raises(ValueError, match="multiple of 32"):
        TinyFaceDetectorNet()(torch.zeros(1, 3, 64, 96))
    with pytest.raises(ValueError, match="multiple of 32"):
        TinyFaceDetectorNet()(torch.zeros(1, 3, 100, 100))


def _fake_weights():
    """Tensors of the right names and TF shapes (zeros): no download needed."""
    names = {}
    for name, param in TinyFaceDetectorNet().state_dict().items():
        names[name] = tuple(param.shape)
    out = {}
    for tf_name, (name, perm) in tiny._tfjs_names().items():
        shape = names[name]
        if perm is not None:  # back to the TF layout
            shape = tuple(shape[perm.index(k)] for k in range(4))
        out[tf_name] = np.zeros(shape, np.float32)
    return out


def test_state_dict_from_tfjs_fake_weights_load():
    state = state_dict_from_tfjs(_fake_weights())
    TinyFaceDetectorNet().load_state_dict(state)  # strict: every name and shape fits
    assert state["separable.0.depthwise.weight"].shape == (16, 1, 3, 3)


@pytest.mark.parametrize("change, match", [
    (lambda w: w.pop("conv5/bias"), r"missing conv5/bias"),
    (lambda w: w.update({"conv6/bias": np.zeros(3, np.float32)}), r"unexpected conv6/bias"),
    (lambda w: w.update({"conv8/filters": np.zeros((1, 1, 512, 30), np.float32)}),
     r"'conv8/filters' has shape \(1, 1, 512, 30\), which does not fit conv8\.weight"),
    (lambda w: w.update({"conv0/filters": np.zeros((3, 3, 3), np.float32)}), r"4-d TF filter"),
])
def test_state_dict_from_tfjs_wrong_weights_raise(change, match):
    weights = _fake_weights()
    change(weights)
    with pytest.raises(ValueError, match=match):
        state_dict_from_tfjs(weights)
