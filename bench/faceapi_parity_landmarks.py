"""face-api's 68-point landmark net: torch against the JavaScript package; NME after detection.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs node (>= 18) and the face-api package with
TensorFlow.js (bench/_faceapi_js.py installs them once, or set
``SKFACE_FACEAPI_JS`` to a folder whose node_modules has them), the face-api
weights (downloaded at first use) and, except for ``fixture``, the shared
data (``SKFACE_DATA`` or ``--data-home``).

    python bench/faceapi_parity_landmarks.py --write-fixture  # the test fixture (synthetic)
    python bench/faceapi_parity_landmarks.py --parts parity,speed
    python bench/faceapi_parity_landmarks.py --parts nme      # after MTCNN, 770 test frames

Parts:

- ``fixture`` (``--write-fixture``): the JavaScript outputs on the
  synthetic images of tests/test_faceapi_landmarks.py (``synthetic_faces``,
  seed and count stored with them; no image is stored), and torch's
  difference from them.
- ``parity``: ``--n-parity`` real test frames of the YouTube Faces keypoint
  set (evenly spaced over the 770, so many people), each cut as a square
  around its annotated 68 points' box grown by ``--parity-margin`` of its
  side on each side, resized to 112 and rounded to uint8; torch against
  JavaScript: max abs difference in pixels of the 112 crop, max relative
  difference (to the output's range).
- ``speed``: the same crops, torch in batches of 32 (``--threads``) against
  the JavaScript package's ``ms_per_image`` (one image at a time, tfjs cpu
  backend) from the same run.
- ``nme``: the 770 test frames after detection: ``FaceDetector()`` (MTCNN,
  the default backend, largest face) gives a box; a square around it
  (``--frames``: side = the box's longer side times each factor, centred
  on the box; 1.0 is face-api's own framing, the detection box zero-padded
  to a square), zeros outside the frame, resized to 112 with antialiasing;
  the net's points are mapped back to the frame. NME: mean point error /
  outer-eye-corner distance (points 36 and 45), as ``_nme`` in
  bench/align.py, over the frames where a face was found. Then a second
  pass (``--refine-frames``): a square around the first pass's 68 points'
  box (side = its longer side times each factor), as bench/align.py's
  aligner re-frames on its first estimate. Factors are chosen on these
  same frames: the best row is optimistic, the 1.0 row is the package's.
  Each row also gives the mean signed offset (x, y) of the points from the
  annotation in pixels of the 112 crop (the net's points sit about 2
  pixels up and left of this set's annotation).
"""

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import default_data_home, emit  # noqa: E402
from tests._faceapi_fixture import save_fixture  # noqa: E402

BENCH = "faceapi_parity_landmarks"
SIZE = 112
FIXTURE = HERE.parent / "tests" / "data" / "faceapi" / "landmark68_reference.json"
FIXTURE_SEED, FIXTURE_N = 0, 8


def _net(device="cpu"):
    from skface.nn.faceapi_landmarks import FaceLandmark68Net, state_dict_from_tfjs
    from skface.pretrained._faceapi import faceapi_weights

    net = FaceLandmark68Net()
    net.load_state_dict(state_dict_from_tfjs(faceapi_weights("face_landmark_68_model")))
    return net.eval().to(device)


def _torch_points(net, images, batch_size=32):
    """(n, 68, 2) fractions of the crop for uint8 (n, 112, 112, 3) ``images``."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
            out.append(net(x.permute(0, 3, 1, 2).float() / 255).numpy())
    return np.concatenate(out)


def _js_points(images):
    from _faceapi_js import reference

    raw = reference("landmark68", images)
    return raw["output"].reshape(len(images), 68, 2), raw


def _diffs(points, js):
    diff = np.abs(points.astype(np.float64) - js)
    return float(diff.max()), float((diff / np.abs(js).max()).max())


def fixture_part(args, device):
    from tests.test_faceapi_landmarks import SYNTHETIC_RECIPE, synthetic_faces

    images = synthetic_faces(FIXTURE_SEED, FIXTURE_N)
    js, raw = _js_points(images)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    save_fixture(FIXTURE, points=js.astype(np.float32), seed=FIXTURE_SEED, n=FIXTURE_N,
                        recipe=SYNTHETIC_RECIPE,
                        inputs_sha256=hashlib.sha256(images.tobytes()).hexdigest(),
                        tfjs=str(raw["tfjs"]), package="@vladmandic/face-api 1.7.15")
    abs_diff, rel_diff = _diffs(_torch_points(_net(), images), js)
    emit(BENCH, "fixture_max_abs_diff", abs_diff, "fraction of the 112 side", device="cpu",
         config={"recipe": SYNTHETIC_RECIPE, "seed": FIXTURE_SEED, "n": FIXTURE_N,
                 "tfjs": raw["tfjs"]},
         max_rel_diff=rel_diff, wrote=str(FIXTURE), bytes=FIXTURE.stat().st_size)


def _frames(data_home):
    """Paths, (n, 68, 2) annotated points (pixels of the files), people: the 770 test frames."""
    from skface.datasets import fetch_youtube_faces_keypoints

    small = 16  # only the paths, sizes and points are used: decode small
    test = fetch_youtube_faces_keypoints(data_home=data_home, subset="test", size=small,
                                         color=True)
    scale = (test.original_sizes.astype(np.float64) / small)[:, None, ::-1]
    return list(test.paths), test.keypoints.astype(np.float64) * scale, test.identity


def _read(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _square(x0, y0, x1, y1, factor):
    """Top-left corner and side of a square ``factor`` times the box's longer side, same centre."""
    side = max(x1 - x0, y1 - y0) * factor
    return np.array([(x0 + x1 - side) / 2, (y0 + y1 - side) / 2]), side


def _crop(image, corner, side, size=SIZE):
    """The square (``corner``, ``side``) of ``image``, zeros outside, as a ``size`` uint8 crop.

    skface's coordinates (pixel (0, 0)'s centre at (0.5, 0.5)); shrinking
    smooths first (Gaussian sigma (1/scale - 1) / 2, as the aligner does).
    """
    from scipy.ndimage import gaussian_filter
    from skimage.transform import warp

    scale = size / side
    image = image.astype(np.float32)
    if scale < 1:
        sigma = (1 / scale - 1) / 2
        image = gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest")
    # Crop pixel centre (u + 0.5) comes from the frame's corner + (u + 0.5) / scale,
    # the frame's pixel centres lying at index + 0.5.
    matrix = np.eye(3)
    matrix[0, 0] = matrix[1, 1] = 1 / scale
    matrix[:2, 2] = corner + 0.5 / scale - 0.5
    out = warp(image, matrix, output_shape=(size, size), order=1, mode="constant", cval=0,
               preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _parity_crops(args):
    from align import points_box

    paths, points, people = _frames(args.data_home)
    pick = np.linspace(0, len(paths) - 1, args.n_parity).round().astype(int)
    crops, corners, sides = [], [], []
    for i in pick:
        corner, side = _square(*points_box(points[i], args.parity_margin), 1.0)
        crops.append(_crop(_read(paths[i]), corner, side))
        corners.append(corner)
        sides.append(side)
    return (np.stack(crops), points[pick], np.array(corners), np.array(sides),
            len(set(people[pick])))


def parity_part(args, device):
    from align import _nme

    if "parity" in args.cache:
        return
    crops, truth, corners, sides, n_people = _parity_crops(args)
    net = _net()
    points = _torch_points(net, crops)
    js, raw = _js_points(crops)
    abs_diff, rel_diff = _diffs(points, js)
    config = {"n_frames": len(crops), "people": n_people, "crop": (
        f"square around the annotated 68-point box grown by {args.parity_margin} a side, "
        "resized to 112, uint8"), "tfjs": raw["tfjs"], "js_backend": "cpu"}
    emit(BENCH, "landmark68_parity_max_abs_diff_px", abs_diff * SIZE,
         "pixels of the 112 crop", device="cpu", config=config,
         max_rel_diff=rel_diff, mean_abs_diff_px=float(np.abs(points - js).mean() * SIZE))
    nme = _nme(corners[:, None] + points * sides[:, None, None], truth)
    emit(BENCH, "landmark68_nme_annotated_crops", round(float(nme.mean()), 4), "fraction of IOD",
         device="cpu", config=config, median=round(float(np.median(nme)), 4),
         js_nme=round(float(_nme(corners[:, None] + js * sides[:, None, None], truth).mean()), 4))
    args.cache["parity"] = (crops, raw["ms_per_image"], net)


def speed_part(args, device):
    import torch

    parity_part(args, device)
    crops, js_ms, net = args.cache["parity"]
    batch = np.concatenate([crops] * (-(-32 // len(crops))))[:32]
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    timings = []
    with torch.no_grad():
        net(x)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            net(x)
            timings.append(time.perf_counter() - start)
    torch_ms = 1000 * min(timings) / len(batch)
    emit(BENCH, "landmark68_ms_per_image_torch_vs_js", round(torch_ms, 3), "ms/image",
         baseline=round(js_ms, 3), device="cpu",
         config={"torch_batch": 32, "torch_threads": torch.get_num_threads(),
                 "repeats": args.repeats, "timing": "best of repeats",
                 "js": "faceapi_reference.cjs, one image at a time, tfjs cpu backend",
                 "js_images": len(crops)},
         torch_images_per_s=round(1000 / torch_ms, 1), js_images_per_s=round(1000 / js_ms, 1))


def _detections(args, paths):
    """MTCNN's largest box per frame (NaN where none), cached in ``--out-dir`` (not committed)."""
    from skface.align import FaceDetector

    cache = Path(args.out_dir) / "faceapi_landmarks_mtcnn_boxes.npy"
    if cache.exists():
        boxes = np.load(cache)
        if len(boxes) == len(paths):
            return boxes, None
    detector = FaceDetector(min_face_size=args.min_face_size).fit()
    start = time.perf_counter()
    found = detector.detect(paths)
    seconds = time.perf_counter() - start
    boxes = np.array([d.boxes[0] if len(d.boxes) else [np.nan] * 4 for d in found], np.float64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, boxes)
    return boxes, seconds


def _predict_frames(net, images, squares):
    """Net points mapped back to the frames, for one square (corner, side) per image."""
    crops = np.stack([_crop(image, corner, side) for image, (corner, side) in zip(images, squares)])
    points = _torch_points(net, crops)
    corners = np.array([c for c, _ in squares])
    sides = np.array([s for _, s in squares])
    return corners[:, None] + points * sides[:, None, None]


def _scores(pred, truth, squares):
    """NME summary of one row, with the mean signed offset (x, y) in pixels of the 112 crop."""
    from align import _nme

    errors = _nme(pred, truth)
    sides = np.array([s for _, s in squares])
    offset = ((pred - truth).mean(axis=1) * (SIZE / sides)[:, None]).mean(axis=0)
    return errors, {"median": round(float(np.median(errors)), 4),
                    "frames_scored": int(len(errors)),
                    "failure_rate_over_0_1": round(float((errors > 0.1).mean()), 4),
                    "mean_offset_xy_crop_px": [round(float(v), 2) for v in offset]}


def nme_part(args, device):
    from align import points_box

    paths, truth, _ = _frames(args.data_home)
    boxes, detect_s = _detections(args, paths)
    found = ~np.isnan(boxes[:, 0])
    images = [_read(p) for p, f in zip(paths, found) if f]
    truth, boxes = truth[found], boxes[found]
    net = _net()
    config = {"n_frames": len(paths), "found": int(found.sum()),
              "detector": f"FaceDetector() (MTCNN), min_face_size={args.min_face_size}, largest",
              "normaliser": "outer eye corners 36-45", "crop": "zeros outside the frame"}
    if detect_s is not None:
        config["detect_s"] = round(detect_s, 1)
    firsts = {}
    for factor in args.frames:
        start = time.perf_counter()
        squares = [_square(*b, factor) for b in boxes]
        pred = _predict_frames(net, images, squares)
        seconds = time.perf_counter() - start
        errors, extra = _scores(pred, truth, squares)
        firsts[factor] = (errors.mean(), pred)
        emit(BENCH, f"landmark68_nme_mtcnn_box_x{factor}", round(float(errors.mean()), 4),
             "fraction of IOD", device="cpu",
             config={**config, "frame": f"square, {factor} x the box's longer side"
                     + (" (face-api's: the box padded to square)" if factor == 1.0 else "")},
             crop_and_net_s=round(seconds, 1), **extra)
    best = min(firsts, key=lambda f: firsts[f][0])
    for factor in args.refine_frames:
        pred = firsts[best][1]
        squares = [_square(*points_box(p), factor) for p in pred]
        errors, extra = _scores(_predict_frames(net, images, squares), truth, squares)
        emit(BENCH, f"landmark68_nme_refined_x{factor}", round(float(errors.mean()), 4),
             "fraction of IOD", device="cpu",
             config={**config, "first_pass": f"box x{best}",
                     "frame": f"square, {factor} x the first pass's 68-point box's longer side"},
             **extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--parts", default="parity,speed,nme")
    parser.add_argument("--write-fixture", action="store_true",
                        help="(re)write the test fixture from the JavaScript package and exit")
    parser.add_argument("--n-parity", type=int, default=32)
    parser.add_argument("--parity-margin", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", default="1.0,1.1,1.2,1.3")
    parser.add_argument("--refine-frames", default="1.0,1.1,1.2,1.3,1.4")
    parser.add_argument("--min-face-size", type=int, default=20)
    parser.add_argument("--out-dir", default="/tmp")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.frames = [float(f) for f in args.frames.split(",")]
    args.refine_frames = [float(f) for f in args.refine_frames.split(",") if f]
    args.cache = {}
    import torch

    torch.set_num_threads(args.threads)
    parts = ["fixture"] if args.write_fixture else args.parts.split(",")
    for part in parts:
        {"fixture": fixture_part, "parity": parity_part, "speed": speed_part,
         "nme": nme_part}[part](args, "cpu")


if __name__ == "__main__":
    main()
