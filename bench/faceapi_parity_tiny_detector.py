"""face-api's Tiny Face Detector: torch against the JavaScript package; the detectors on the 770 test frames.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs node (>= 18) and the face-api package with
TensorFlow.js (bench/_faceapi_js.py installs them once, or set
``SKFACE_FACEAPI_JS`` to a folder whose node_modules has them), the face-api
weights (downloaded at first use) and, except for ``fixture``, the shared
data (``SKFACE_DATA`` or ``--data-home``).

    python bench/faceapi_parity_tiny_detector.py --write-fixture   # the test fixture
    python bench/faceapi_parity_tiny_detector.py --parts parity,speed
    python bench/faceapi_parity_tiny_detector.py --parts detect    # cascade, mtcnn, tiny_face

Parts:

- ``fixture`` (``--write-fixture``): the JavaScript raw grids on the
  synthetic images of tests/test_faceapi_tiny_detector.py
  (``synthetic_images``: seed, count and sides stored with them; no image
  is stored), and the package's detections on scikit-image's bundled
  astronaut photo and three crops of it (``ASTRONAUT_CROPS``); torch's
  difference from them.
- ``parity``: ``--n-parity`` real test frames of the YouTube Faces keypoint
  set (evenly spaced over the 770), each padded to a square and resized to
  416 as the backend does; the raw grid, torch against JavaScript on the
  same 416x416 input: max abs difference, max relative difference (to the
  grid's largest magnitude). Then the whole detection on the frames as
  they are (the package's ``locateFaces``, inputSize 416, score 0.5 against
  ``FaceDetector('tiny_face')``'s backend): frames with the same number of
  faces, max box difference in pixels, max score difference.
- ``speed``: the parity frames' 416x416 inputs, torch in batches (all at
  once, ``--threads``) against the JavaScript package's ``ms_per_image``
  (one image at a time, tfjs cpu backend) from the same run.
- ``detect``: bench/align.py's ``detect`` part for ``--backends`` (found
  rate at IoU >= 0.5 against the 68 points' box, margins 0 and 0.1, and
  images/s, on the 770 test frames).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import default_data_home, emit  # noqa: E402
from tests._faceapi_fixture import save_fixture  # noqa: E402

BENCH = "faceapi_parity_tiny_detector"
SIZE = 416
FIXTURE = HERE.parent / "tests" / "data" / "faceapi" / "tiny_face_detector_reference.json"
FIXTURE_SEED = 0
# (side, count) of the synthetic fixture images: the package's default, and a small side whose
# first pool, like 416's second, meets an odd size.
FIXTURE_SIDES = ((416, 1), (160, 2))


def _net():
    from skface.align._tiny_face import load_tiny_face_net

    return load_tiny_face_net()


def _torch_grid(net, images):
    """Torch's raw grid of (n, S, S, 3) float 0-255 images."""
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2) / 255).numpy()


def _rel(diff, ref):
    return float(diff / max(float(np.abs(ref).max()), 1e-12))


def fixture_part(args, device):
    from skimage import data

    from _faceapi_js import reference
    from skface.align._tiny_face import detect_tiny_face
    from tests.test_faceapi_tiny_detector import ASTRONAUT_CROPS, synthetic_images

    net = _net()
    out = {"seed": np.int64(FIXTURE_SEED), "sides": np.array(FIXTURE_SIDES, dtype=np.int64)}
    for side, count in FIXTURE_SIDES:
        images = synthetic_images(FIXTURE_SEED, count, side)
        ref = reference("tiny_face_detector", images)
        out[f"grid_{side}"] = ref["grid"]
        out["tfjs"] = np.array(ref["tfjs"])
        diff = float(np.abs(_torch_grid(net, images) - ref["grid"]).max())
        emit(BENCH, f"fixture_grid_{side}_max_abs_diff", diff, "logit", device=device,
             config={"n": count, "side": side}, max_rel_diff=_rel(diff, ref["grid"]))
    astronaut = data.astronaut()
    dets = []
    for crop in ASTRONAUT_CROPS:
        image = astronaut[crop]
        ref = reference("tiny_face_detector_detect", image[None])["detections"][0]
        dets.append(ref)
        ref = ref[ref[:, 4] >= 0]
        [(boxes, scores, _)] = detect_tiny_face([image], net=net)
        same = len(boxes) == len(ref)
        emit(BENCH, "fixture_astronaut_box_max_abs_diff",
             float(np.abs(boxes - ref[:, :4]).max()) if same and len(ref) else None, "pixels",
             device=device, config={"shape": list(image.shape)}, n_js=len(ref),
             n_torch=len(boxes))
    out["astronaut_detections"] = np.stack(dets).astype(np.float32)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    save_fixture(FIXTURE, **out)
    emit(BENCH, "fixture_bytes", FIXTURE.stat().st_size, "bytes", device=device,
         config={"path": str(FIXTURE.relative_to(HERE.parent))})


def _frames(args):
    from PIL import Image

    from align import load_frames

    paths, _, _ = load_frames(args.data_home)
    picks = np.linspace(0, len(paths) - 1, args.n_parity).round().astype(int)
    return [np.array(Image.open(paths[i]).convert("RGB")) for i in picks]


def _square_inputs(frames):
    """Each frame as the backend's 416x416 network input, in 0-255 (what JavaScript is fed)."""
    import torch

    from skface.align._tiny_face import _square_input

    with torch.inference_mode():
        return np.stack([(_square_input(f, SIZE, "cpu") * 255).permute(1, 2, 0).numpy()
                         for f in frames]).astype(np.float32)


def parity_part(args, device, cache):
    from _faceapi_js import reference
    from skface.align._tiny_face import detect_tiny_face

    frames = cache.setdefault("frames", _frames(args))
    inputs = cache.setdefault("inputs", _square_inputs(frames))
    net = cache.setdefault("net", _net())
    ref = reference("tiny_face_detector", inputs)
    cache["js_ms"] = ref["ms_per_image"]
    grid = _torch_grid(net, inputs)
    diff = np.abs(grid - ref["grid"])
    config = {"n_frames": len(frames), "input": SIZE, "frames": "evenly spaced test frames"}
    emit(BENCH, "grid_max_abs_diff", float(diff.max()), "logit", device=device, config=config,
         max_rel_diff=_rel(diff.max(), ref["grid"]), grid_max_abs=float(np.abs(ref["grid"]).max()),
         mean_abs_diff=float(diff.mean()))
    # The whole detection, on the frames as they are (one node run per frame: sizes differ).
    same, box_diff, score_diff, n_faces = 0, 0.0, 0.0, 0
    mine = detect_tiny_face(frames, net=net)
    for frame, (boxes, scores, _) in zip(frames, mine):
        js = reference("tiny_face_detector_detect", frame[None])["detections"][0]
        js = js[js[:, 4] >= 0]
        if len(js) == len(boxes):
            same += 1
            n_faces += len(js)
            if len(js):
                box_diff = max(box_diff, float(np.abs(boxes - js[:, :4]).max()))
                score_diff = max(score_diff, float(np.abs(scores - js[:, 4]).max()))
    emit(BENCH, "detect_same_count", round(same / len(frames), 4), "fraction", device=device,
         config=config, box_max_abs_diff_px=box_diff, score_max_abs_diff=score_diff,
         n_faces=n_faces)


def speed_part(args, device, cache):
    import torch

    from _faceapi_js import reference

    frames = cache.setdefault("frames", _frames(args))
    inputs = cache.setdefault("inputs", _square_inputs(frames))
    net = cache.setdefault("net", _net())
    js_ms = cache.get("js_ms") or reference("tiny_face_detector", inputs)["ms_per_image"]
    torch.set_num_threads(args.threads)
    _torch_grid(net, inputs[:2])  # warm-up
    start = time.perf_counter()
    for _ in range(args.repeats):
        _torch_grid(net, inputs)
    seconds = (time.perf_counter() - start) / args.repeats
    torch_ips, js_ips = len(inputs) / seconds, 1000.0 / js_ms
    emit(BENCH, "torch_images_per_s", round(torch_ips, 2), "images/s", baseline=round(js_ips, 2),
         device=device, config={"n": len(inputs), "input": SIZE, "threads": args.threads,
                                "batch": len(inputs), "baseline": "tfjs 4.22 cpu backend, 1 at a time"})


def detect_part(args, device):
    import align

    align.detect_part(argparse.Namespace(data_home=args.data_home, n_frames=args.n_frames,
                                         backends=args.backends.split(","),
                                         min_face_size=args.min_face_size), device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--parts", default="parity,speed")
    parser.add_argument("--write-fixture", action="store_true")
    parser.add_argument("--n-parity", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="cascade,mtcnn,tiny_face")
    parser.add_argument("--n-frames", type=int, default=None)
    parser.add_argument("--min-face-size", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = "cpu"
    parts = ["fixture"] if args.write_fixture else args.parts.split(",")
    cache = {}
    for part in parts:
        if part == "fixture":
            fixture_part(args, device)
        elif part == "parity":
            parity_part(args, device, cache)
        elif part == "speed":
            speed_part(args, device, cache)
        elif part == "detect":
            detect_part(args, device)
        else:
            parser.error(f"unknown part {part!r}")


if __name__ == "__main__":
    main()
