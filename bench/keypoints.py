"""KeypointRegressor on YouTube Faces keypoints: RMSE with/without SDAE pretraining, augmentation.

Prints one JSON object per row (bench, what, value, unit, baseline, ratio,
device, config) and a Markdown table on stderr. Data:
``youtube_faces_keypoints`` from the shared data home, 96x96 grey. Every model
is fitted on the 3,462 training frames and scored on the 770 test frames;
RMSE is in pixels of a 96x96 face (the fetcher scales each image's keypoints
by 96/width and 96/height). The mean training shape is the baseline, computed
in the same run.

The test frames show the same 347 people as the training frames, which
flatters every model. ``--person-split`` adds rows trained on 80% of the
training people and scored on the other 20% (``GroupShuffleSplit`` on
``identity``, seed 0): faces the model has never seen.

    python bench/keypoints.py --quick          # CI smoke run on the CPU, under a minute
    python bench/keypoints.py                  # full table (meant for CUDA): the defaults,
                                               # 96 px, 5 double-conv blocks, 80 epochs
    python bench/keypoints.py --size 64 --channels 32,64,128,256,256 --convs-per-layer 1 \
        --epochs 30 --pretrain-epochs 2 --threads 1      # reduced CPU table, ~17 min
    python bench/keypoints.py --size 64 --channels 32,64,128,256,256 --convs-per-layer 1 \
        --epochs 60 --threads 1 --cells scratch_aug      # one cell, longer, ~7 min

Rows: the mean-shape baseline; then a 2x2 table, SDAE pretraining (off/on)
by augmentation (off/on), each with its fit time.
"""

import argparse
import functools
import sys
import time

import numpy as np

from _common import default_data_home, emit as _emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "keypoints"
emit = functools.partial(_emit, BENCH)
SEED = 0
REFERENCE = {
    "plain CNN, no augmentation, H100, 80 epochs": 1.13,
    "plain CNN, with augmentation, H100, 80 epochs": 1.22,
}
BAR = 1.3








def load(data_home):
    from skface.datasets import fetch_youtube_faces_keypoints

    kw = dict(data_home=data_home, size=96, color=False, download_if_missing=False)
    return (fetch_youtube_faces_keypoints(subset="train", **kw),
            fetch_youtube_faces_keypoints(subset="test", **kw))


def mean_shape_rmse(train_points, test_points):
    from skface.metrics import keypoint_rmse

    mean = np.nanmean(train_points, axis=0)
    return keypoint_rmse(test_points, np.broadcast_to(mean, test_points.shape))


def model(args, device, *, pretrain, augment):
    from skface.estimators import KeypointRegressor

    geometry = dict(rotation=args.rotation, scale=args.scale, shift=args.shift)
    if not augment:
        geometry = dict(rotation=0.0, scale=0.0, shift=0.0)
    return KeypointRegressor(
        layer_channels=args.channels, convs_per_layer=args.convs_per_layer,
        pooling=args.pooling, dropout=args.dropout, input_size=args.size,
        flip_pairs="auto" if augment else None, **geometry,
        pretrain="sdae" if pretrain else None, pretrain_epochs=args.pretrain_epochs,
        max_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, device=device,
        random_state=SEED, verbose=args.verbose,
    )


def _fit_score(estimator, X, y, X_test, y_test):
    start = time.perf_counter()
    estimator.fit(X, y)
    fit_s = time.perf_counter() - start
    return -estimator.score(X_test, y_test), fit_s


def table_rows(train, test, args, device, baseline, split_name, groups_note):
    """The 2x2 table of one train/test split; returns {(pretrain, augment): rmse}."""
    common = {
        "split": split_name, "n_train": len(train[0]), "n_test": len(test[0]),
        "input": f"{args.size}x{args.size} grey (from 96x96)",
        "layer_channels": list(args.channels), "convs_per_layer": args.convs_per_layer,
        "pooling": args.pooling, "dropout": args.dropout, "max_epochs": args.epochs,
        "lr": args.lr, "batch_size": args.batch_size,
        "optimizer": "AdamW (wd 1e-2), one-cycle", "loss": "masked MSE",
        "unit_note": "RMSE over coordinates, pixels of a 96x96 face",
        "groups": groups_note, "quick": args.quick,
    }
    results = {}
    for pretrain in (False, True):
        for augment in (False, True):
            cell = f"{'sdae' if pretrain else 'scratch'}_{'aug' if augment else 'noaug'}"
            if cell not in args.cells:
                continue
            estimator = model(args, device, pretrain=pretrain, augment=augment)
            rmse, fit_s = _fit_score(estimator, *train, *test)
            pretrain_s = 0.0
            if estimator.encoder_ is not None:
                pretrain_s = float(sum(
                    np.sum(history[:, "dur"]) for history in estimator.encoder_.pretrain_histories_
                    if len(history)
                ))
            results[pretrain, augment] = rmse
            config = {
                **common,
                "pretrain": (f"sdae, {args.pretrain_epochs} greedy epochs/layer, mask 0.3"
                             if pretrain else "none (random init)"),
                "augment": (f"flip (iBUG-68 pairs), rotation {args.rotation} deg, "
                            f"scale {args.scale}, shift {args.shift}" if augment else "none"),
                "fit_s": round(fit_s, 1), "pretrain_s": round(pretrain_s, 1),
                "baseline": "mean training shape",
            }
            what = f"rmse_{split_name}_{cell}"
            emit(what, round(rmse, 4), "px (96x96 face)", baseline=round(baseline, 4),
                 device=device, config=config, out=args.out,
                 bar=f"<= {BAR}", passed=bool(rmse <= BAR))
            print(f"{what}: {rmse:.3f} px in {fit_s:.0f} s", file=sys.stderr, flush=True)
    return results


def markdown(results, baseline, title):
    lines = [f"\n{title} (RMSE, px of a 96x96 face; mean shape {baseline:.3f})",
             "| | no augmentation | augmentation |", "|---|---|---|"]
    for pretrain in (False, True):
        name = "SDAE pretraining" if pretrain else "random init"
        cells = [f"{results[pretrain, a]:.3f}" if (pretrain, a) in results else "-"
                 for a in (False, True)]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: 48 px, small trunk, 8 epochs, 800 training frames")
    p.add_argument("--data-home", default=default_data_home())
    p.add_argument("--device", default="auto")
    p.add_argument("--size", type=int, default=96, help="model input size (pixels)")
    p.add_argument("--channels", default="32,64,128,256,256")
    p.add_argument("--convs-per-layer", type=int, default=2)
    p.add_argument("--pooling", default="avg")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rotation", type=float, default=10.0)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--shift", type=float, default=0.05)
    p.add_argument("--n-train", type=int, default=0, help="use only this many training frames")
    p.add_argument("--person-split", action="store_true",
                   help="also train/test on people split apart (GroupShuffleSplit on identity)")
    p.add_argument("--cells", default="scratch_noaug,scratch_aug,sdae_noaug,sdae_aug",
                   help="which cells of the 2x2 table to run")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--out", default=None, help="also append the JSON rows to this file")
    p.add_argument("--verbose", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.channels, args.convs_per_layer = 48, "16,32,64,128", 1
        args.epochs, args.pretrain_epochs = 8, 1
        args.n_train = args.n_train or 800
    args.channels = tuple(int(c) for c in str(args.channels).split(","))
    args.cells = tuple(args.cells.split(","))
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch

    from skface._device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    wall = time.perf_counter()
    train, test = load(args.data_home)
    X, y, people = train.images, train.keypoints, train.identity
    if args.n_train and args.n_train < len(X):
        keep = np.sort(np.random.RandomState(SEED).choice(len(X), args.n_train, replace=False))
        X, y, people = X[keep], y[keep], people[keep]

    baseline = mean_shape_rmse(y, test.keypoints)
    emit("rmse_test_mean_shape", round(baseline, 4), "px (96x96 face)", device=device,
         config={"split": "test", "n_train": len(X), "n_test": len(test.images),
                 "reference": REFERENCE}, out=args.out)
    results = table_rows((X, y), (test.images, test.keypoints), args, device, baseline,
                         "test", "official split: same 347 people in train and test")
    report = [markdown(results, baseline, "Official test split (770 frames, same people)")]

    if args.person_split:
        from sklearn.model_selection import GroupShuffleSplit

        fit, held = next(GroupShuffleSplit(1, test_size=0.2, random_state=SEED).split(
            X, groups=people))
        person_baseline = mean_shape_rmse(y[fit], y[held])
        emit("rmse_unseen_people_mean_shape", round(person_baseline, 4), "px (96x96 face)",
             device=device, out=args.out,
             config={"split": "unseen_people", "n_train": len(fit), "n_test": len(held),
                     "people_train": int(len(np.unique(people[fit]))),
                     "people_test": int(len(np.unique(people[held])))})
        person = table_rows((X[fit], y[fit]), (X[held], y[held]), args, device,
                            person_baseline, "unseen_people",
                            "GroupShuffleSplit(test_size=0.2, seed 0) on identity")
        report.append(markdown(person, person_baseline, "Unseen people (20% of identities)"))

    print("\n".join(report), file=sys.stderr)
    print(f"\nwall time {time.perf_counter() - wall:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
