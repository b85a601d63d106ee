"""Registered pretrained models on the shared data: LFW verification, identification and fine-tuning.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs the real data (``SKFACE_DATA`` or ``--data-home``);
the first run downloads and converts the weights (``skface.load``).

    python bench/pretrained.py --parts lfw        # View 2 and View 1, aligned and fixed box
    python bench/pretrained.py --parts finetune   # View 1 dev_train fine-tuning, identification

Parts:

- ``lfw``: ``skface.load("faceapi_recognition")`` (MTCNN, dlib-chip alignment,
  the ResNet) on the image files of View 2 (``pairs.txt``, 10 folds, 6,000
  pairs: accuracy with each fold's threshold chosen on the other nine, and
  ROC AUC) and View 1 (``pairsDevTest.txt``, threshold by 10-fold CV inside
  it); the same network on a fixed box (the central 150x150 pixels of the
  250x250 deep-funneled image, no detection) for comparison. Cosine scores.
- ``finetune``: the pretrained embedder fine-tuned with center loss on the
  View 1 dev_train people (aligned chips), View 1 before and after; and
  identification of the LFW people with at least 10 images from 5 training
  images each (linear SVC on descriptors, the rest as test), pretrained vs
  fine-tuned vs a CenterLossEmbedder trained from scratch on the same chips.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_data_home, emit  # noqa: E402

BENCH = "pretrained"
MODEL = "faceapi_recognition"


def _aligned_files(model, paths, batch=256):
    """Aligned chips of every file, the found flags, and seconds."""
    chips, found = [], []
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            res = model[0].align(list(paths[i:i + batch]))
        chips.append(res.images)
        found.append(res.found)
    return np.concatenate(chips), np.concatenate(found), time.perf_counter() - start


def _central(paths, side=150):
    from PIL import Image

    crops = []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB"))
        h, w = a.shape[:2]
        top, left = (h - side) // 2, (w - side) // 2
        crops.append(a[top:top + side, left:left + side])
    return np.stack(crops)


def _verify(scores_of, target, folds=None):
    from skface.metrics import verification_accuracy, verification_roc_auc

    acc = verification_accuracy(target, scores_of, folds=folds)
    return float(acc.accuracy), float(acc.std), float(verification_roc_auc(target, scores_of))


def _pairs(args, subset):
    from skface.datasets import fetch_lfw_pairs

    # Small arrays: only the file paths, labels and folds are used here.
    pairs = fetch_lfw_pairs(data_home=args.data_home, subset=subset, resize=0.1)
    folder = Path(args.data_home) / "lfw" / "lfw-deepfunneled"
    paths = np.array([[str(folder / f) for f in row] for row in np.asarray(pairs.filenames)])
    return paths, np.asarray(pairs.target), getattr(pairs, "fold", None)


def lfw_part(args, model, device):
    from skface.metrics import pair_scores

    views = {"view2": _pairs(args, "10_folds"), "view1": _pairs(args, "dev_test")}
    files = np.unique(np.concatenate([v[0].ravel() for v in views.values()]))
    index = {f: i for i, f in enumerate(files)}
    chips, found, align_s = _aligned_files(model, files)
    start = time.perf_counter()
    aligned = model[-1].transform(chips)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    fixed = model[-1].transform(_central(files))
    fixed_s = time.perf_counter() - start
    for view, (paths, target, folds) in views.items():
        idx = np.vectorize(index.get)(paths)
        results = {}
        for name, emb in (("fixed_box", fixed), ("aligned", aligned)):
            scores = pair_scores(emb[idx[:, 0]], emb[idx[:, 1]])
            acc, std, auc = _verify(scores, target, folds if view == "view2" else None)
            results[name] = acc
            emit(BENCH, f"lfw_{view}_{name}", round(acc, 4), "accuracy", device=device,
                 baseline=results.get("fixed_box") if name == "aligned" else None,
                 std=round(std, 4), roc_auc=round(auc, 4),
                 config={"model": MODEL, "n_pairs": len(target),
                         "input": ("skface.load pipeline: MTCNN, dlib chip 150 px, padding 0.25"
                                   if name == "aligned" else "central 150x150 of the 250x250 file"),
                         "threshold": ("each fold's from the other 9 (View 2 folds)"
                                       if view == "view2" else "10-fold CV inside pairsDevTest"),
                         "scores": "cosine"},
                 no_face=int((~found[np.unique(idx)]).sum()) if name == "aligned" else None)
    emit(BENCH, "lfw_images_per_s", round(len(files) / (align_s + embed_s), 2), "images/s",
         device=device, baseline=round(len(files) / fixed_s, 2),
         config={"n_images": len(files), "align_s": round(align_s, 1),
                 "embed_s": round(embed_s, 1), "baseline": "the network alone on fixed boxes"})
    np.savez(args.cache, files=files, chips=chips, found=found)  # reused by --parts finetune


def flip_part(args, model, device):
    """View 2 and View 1 from the lfw part's cached chips, each descriptor averaged with its mirror's."""
    from skface.metrics import pair_scores

    data = np.load(args.cache)
    files, chips = data["files"], data["chips"]
    index = {f: i for i, f in enumerate(files)}
    embedder = model[-1].estimator
    start = time.perf_counter()
    plain = embedder.transform(chips)
    flipped = embedder.transform(chips[:, :, ::-1])
    seconds = time.perf_counter() - start
    both = plain + flipped
    both /= np.linalg.norm(both, axis=1, keepdims=True)
    for view, subset in (("view2", "10_folds"), ("view1", "dev_test")):
        paths, target, folds = _pairs(args, subset)
        idx = np.vectorize(index.get)(paths)
        acc, std, auc = _verify(pair_scores(both[idx[:, 0]], both[idx[:, 1]]), target,
                                folds if view == "view2" else None)
        base, _, _ = _verify(pair_scores(plain[idx[:, 0]], plain[idx[:, 1]]), target,
                             folds if view == "view2" else None)
        emit(BENCH, f"lfw_{view}_aligned_flip", round(acc, 4), "accuracy", device=device,
             baseline=round(base, 4), std=round(std, 4), roc_auc=round(auc, 4),
             config={"model": MODEL, "n_pairs": len(target), "descriptor": "mean of the chip's and "
                     "its mirror image's, renormalised", "embed_s": round(seconds, 1)})


def _chips_for(model, files, cache):
    """Aligned chips of ``files``: from the lfw part's cache where there, aligned here otherwise."""
    have = {}
    if Path(cache).exists():
        data = np.load(cache)
        have = {f: i for i, f in enumerate(data["files"])}
        cached_chips, cached_found = data["chips"], data["found"]
    missing = [f for f in files if f not in have]
    new_chips, new_found, seconds = (_aligned_files(model, missing) if missing
                                     else (np.empty((0, 150, 150, 3), np.uint8), np.empty(0, bool), 0.0))
    new_index = {f: i for i, f in enumerate(missing)}
    chips = np.stack([cached_chips[have[f]] if f in have else new_chips[new_index[f]] for f in files])
    found = np.array([cached_found[have[f]] if f in have else new_found[new_index[f]] for f in files])
    return chips, found, seconds


def _small(chips, side=64):
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(c).resize((side, side), Image.BILINEAR))
                     for c in chips])


def finetune_part(args, model, device):
    """Fine-tune on View 1 dev_train, View 1 before/after; identification of people with >= 10 images."""
    import copy

    from sklearn.svm import LinearSVC

    from skface.datasets import fetch_lfw_people
    from skface.estimators import CenterLossEmbedder
    from skface.metrics import pair_scores

    folder = Path(args.data_home) / "lfw" / "lfw-deepfunneled"

    def capped(subset, cap):
        # Up to `cap` images of each person with at least 10 (a CPU-sized fine-tuning set).
        found = fetch_lfw_people(data_home=args.data_home, subset=subset, min_faces_per_person=10,
                                 resize=0.1)
        target = np.asarray(found.target)
        keep = np.concatenate([np.flatnonzero(target == t)[:cap] for t in np.unique(target)])
        return [str(folder / f) for f in np.asarray(found.filenames)[keep]], target[keep]

    train_files, train_y = capped("dev_train", args.ft_per_person)
    train_chips, train_found, s1 = _chips_for(model, train_files, args.cache)
    pair_paths, pair_target, _ = _pairs(args, "dev_test")
    pair_chips, _, s2 = _chips_for(model, list(pair_paths.ravel()), args.cache)
    # Identification: View 1 dev_test people with >= 10 images (none of them seen by the
    # fine-tuning), their first 5 images to train a linear SVC, the next 5 to test.
    id_files, id_y = capped("dev_test", 10)
    id_chips, _, s3 = _chips_for(model, id_files, args.cache)
    id_train = np.concatenate([np.arange(np.sum(id_y == t)) for t in np.unique(id_y)]) < 5
    pretrained = model[-1].estimator
    tuned = copy.deepcopy(pretrained).set_params(
        warm_start=True, max_epochs=args.ft_epochs, lr=args.ft_lr, batch_size=32,
        lambda_center=0.01, weight_decay=5e-4, flip=True, device=device, random_state=0)
    start = time.perf_counter()
    tuned.fit(train_chips, train_y)
    ft_s = time.perf_counter() - start
    scratch = CenterLossEmbedder("small_cnn", backbone_params={"width": 32}, max_epochs=args.scratch_epochs,
                                 batch_size=128, lr=0.1, device=device, random_state=0, verbose=0)
    start = time.perf_counter()
    scratch.fit(_small(train_chips), train_y)
    scratch_s = time.perf_counter() - start
    n = len(pair_target)
    view1, ident = {}, {}
    for name, emb, prep in (("pretrained", pretrained, lambda c: c), ("fine_tuned", tuned, lambda c: c),
                            ("scratch_small_cnn", scratch, _small)):
        scores = pair_scores(emb.transform(prep(pair_chips)).reshape(n, 2, -1))
        acc, std, auc = _verify(scores, pair_target)
        view1[name] = acc
        emit(BENCH, f"lfw_view1_{name}", round(acc, 4), "accuracy", device=device,
             baseline=view1.get("pretrained") if name != "pretrained" else None,
             std=round(std, 4), roc_auc=round(auc, 4),
             config={"fine_tune": f"{args.ft_epochs} epoch(s), lr {args.ft_lr}, center loss 0.01, "
                                  f"{len(train_chips)} dev_train chips, {len(np.unique(train_y))} people, "
                                  f"{round(ft_s, 1)} s" if name == "fine_tuned" else None,
                     "scratch": f"small_cnn width 32 on 64 px chips, {args.scratch_epochs} epochs, "
                                f"{round(scratch_s, 1)} s" if name.startswith("scratch") else None,
                     "threshold": "10-fold CV inside pairsDevTest"})
        desc = emb.transform(prep(id_chips))
        svc = LinearSVC(C=1.0).fit(desc[id_train], id_y[id_train])
        ident[name] = float(svc.score(desc[~id_train], id_y[~id_train]))
        emit(BENCH, f"lfw_identification_{name}", round(ident[name], 4), "accuracy", device=device,
             baseline=ident.get("pretrained") if name != "pretrained" else None,
             config={"people": int(len(np.unique(id_y))), "train": "5 images each",
                     "test": int((~id_train).sum()), "classifier": "LinearSVC(C=1) on descriptors"})
    emit(BENCH, "finetune_align_s", round(s1 + s2 + s3, 1), "s", device=device,
         not_found_train=int((~train_found).sum()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["lfw"], choices=["lfw", "flip", "finetune"])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ft-epochs", type=int, default=2)
    parser.add_argument("--ft-per-person", type=int, default=10)
    parser.add_argument("--ft-lr", type=float, default=0.005)
    parser.add_argument("--scratch-epochs", type=int, default=15)
    parser.add_argument("--cache", default="/tmp/skface_bench_pretrained_chips.npz",
                        help="where the lfw part keeps the aligned chips (scratch, never committed)")
    args = parser.parse_args()
    import skface

    model = skface.load(MODEL, device=args.device)
    if "lfw" in args.parts:
        lfw_part(args, model, args.device)
    if "flip" in args.parts:
        flip_part(args, model, args.device)
    if "finetune" in args.parts:
        finetune_part(args, model, args.device)


if __name__ == "__main__":
    main()
