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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["lfw"], choices=["lfw", "finetune"])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", default="/tmp/skface_bench_pretrained_chips.npz",
                        help="where the lfw part keeps the aligned chips (scratch, never committed)")
    args = parser.parse_args()
    import skface

    model = skface.load(MODEL, device=args.device)
    if "lfw" in args.parts:
        lfw_part(args, model, args.device)


if __name__ == "__main__":
    main()
