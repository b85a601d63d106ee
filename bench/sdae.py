r"""Conv SDAE features for UTKFace gender and age: frozen, fine-tuned, from scratch; memory= timing.

Prints one JSON object per row (see bench/README.md) and a Markdown table on
stderr. Data: UTKFace aligned & cropped faces from the shared data home.
Every row uses the same folds: ``StratifiedKFold(5, shuffle=True,
random_state=0)`` on gender over the faces used (``--folds 0,1`` runs those
of the five). Scores are means over the folds run.

    python bench/sdae.py --quick        # CI smoke run on the CPU, about a minute
    python bench/sdae.py                # full table (meant for CUDA): 64x64 RGB, 5 folds
    # the reduced CPU table of bench/RESULTS.md, as two runs side by side:
    python bench/sdae.py --rows pca,frozen,memory --size 48 --frozen-pretrain-epochs 3 \
        --memory-images 1500 --memory-epochs 1 --threads 1
    python bench/sdae.py --rows finetuned --folds 0 --size 48 --channels 32,64,128,256 \
        --convs-per-layer 2 --pretrain-epochs 3 --joint-epochs 0 --epochs 12 \
        --finetune-lr 3e-3 --threads 1

Rows: PCA-128 (48x48 grey) + LogisticRegression / Ridge; frozen features +
StandardScaler + LogisticRegression / Ridge (and Ridge on the square root of
age), the features being a ``FeatureUnion`` of ``LocalContrastNormalizer`` ->
``ConvSDAEFeatures(feature_layers="all", test_flip=True)`` and a second
encoder on the raw pixels (``--contrast 0`` or ``--no-raw`` for one encoder,
``--no-test-flip`` for the features of each face alone); the encoder
fine-tuned end to end (``SDAEClassifier`` / ``SDAERegressor``) from the
pretrained weights and from a random start; a grid search over 5
LogisticRegression settings on the frozen features in a ``Pipeline`` with and
without ``memory=``, timed, with the encoder fits counted.
"""

import argparse
import functools
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from _common import default_data_home, emit as _emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "sdae"
emit = functools.partial(_emit, BENCH)
N_SPLITS = 5
SEED = 0


def load(data_home, size, color):
    """Faces, genders and ages: from the data home, or from a file of bench/pack_utkface.py."""
    if str(data_home).endswith(".npz"):
        from sklearn.utils import Bunch

        from pack_utkface import unpack

        images, gender, age = unpack(data_home, size, color)
        return Bunch(images=images, gender=gender, age=age)

    from skface.datasets import fetch_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the three malformed file names, named in `skipped`
        return fetch_utkface(data_home=data_home, size=size, color=color,
                             download_if_missing=False)


def choose(gender, n_images):
    """Indices of the faces used: all, or a gender-stratified random subset."""
    if not n_images or n_images >= len(gender):
        return np.arange(len(gender))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(gender)), train_size=n_images, stratify=gender,
                               random_state=SEED)
    return np.sort(keep)


def folds(gender, indices):
    """The folds ``indices`` of the five: the same for every row and every run."""
    from sklearn.model_selection import StratifiedKFold

    splits = list(StratifiedKFold(N_SPLITS, shuffle=True, random_state=SEED).split(gender, gender))
    return [splits[k] for k in indices]


def mae(y, pred):
    return float(np.mean(np.abs(np.asarray(y, float) - pred)))


def pca_rows(data_home, keep, splits, device):
    """PCA-128 + LogisticRegression / Ridge on 48x48 grey faces, on the same folds."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    grey = load(data_home, 48, False)
    X = grey.images[keep].reshape(len(keep), -1)
    gender, age = grey.gender[keep], grey.age[keep].astype(float)
    accs, maes, secs = [], [], []
    for train, test in splits:
        start = time.perf_counter()
        clf = make_pipeline(PCA(128, random_state=SEED), StandardScaler(),
                            LogisticRegression(max_iter=3000))
        accs.append(clf.fit(X[train], gender[train]).score(X[test], gender[test]))
        reg = make_pipeline(PCA(128, random_state=SEED), Ridge(alpha=1.0))
        maes.append(mae(age[test], reg.fit(X[train], age[train]).predict(X[test])))
        secs.append(time.perf_counter() - start)
    config = {"image": "48x48 grey", "pca": 128, "folds": len(splits),
              "per_fold": [round(a, 4) for a in accs], "fit_s_per_fold": _r(secs),
              "heads": "PCA-128 -> StandardScaler -> LogisticRegression(C=1); "
                       "PCA-128 -> Ridge(alpha=1)"}
    acc, err = float(np.mean(accs)), float(np.mean(maes))
    emit("pca128_logreg_gender_accuracy", round(acc, 4), "accuracy", device=device,
         config=config)
    emit("pca128_ridge_age_mae", round(err, 3), "years", device=device,
         config={**config, "per_fold": [round(m, 3) for m in maes]})
    return acc, err


def _r(values, digits=1):
    return [round(float(v), digits) for v in values]


def _encoder(args, device, **overrides):
    from skface.estimators import ConvSDAEFeatures

    params = dict(
        layer_channels=args.channels, convs_per_layer=args.convs_per_layer,
        noise=args.noise, noise_level=args.noise_level,
        pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.joint_epochs,
        lr=args.lr, batch_size=args.batch_size, device=device, random_state=SEED,
        verbose=args.verbose,
        # The rows as measured: contrast normalisation (where used) and feature
        # scaling are separate steps of their pipelines (LocalContrastNormalizer,
        # StandardScaler), not the estimator's defaults.
        contrast=None, feature_scale=None,
    )
    return ConvSDAEFeatures(**{**params, **overrides})


def _head_params(args, device):
    return dict(max_epochs=args.epochs, lr=args.finetune_lr, batch_size=args.batch_size,
                device=device, random_state=SEED, verbose=args.verbose)


def _train_s(net):
    return float(np.sum(net.history[:, "dur"])) if len(net.history) else 0.0


def _data_config(args, X, splits):
    return {
        "image": f"{args.size}x{args.size} {'RGB' if args.color else 'grey'}",
        "folds": len(splits), "fold_indices": args.folds, "n_images": len(X),
        "n_train_per_fold": int(np.mean([len(t) for t, _ in splits])),
    }


def _config(args, X, splits):
    return {
        **_data_config(args, X, splits),
        "layer_channels": list(args.channels), "convs_per_layer": args.convs_per_layer,
        "noise": f"{args.noise} {args.noise_level}",
        "pretrain_epochs_per_layer": args.pretrain_epochs, "joint_epochs": args.joint_epochs,
        "batch_size": args.batch_size,
    }


def frozen_features(args, device, pretrain_epochs=None):
    """The frozen rows' feature extractor: contrast-normalised and raw-pixel encoders."""
    from sklearn.pipeline import FeatureUnion, make_pipeline

    from skface.preprocessing import LocalContrastNormalizer

    if pretrain_epochs is None:
        pretrain_epochs = args.frozen_pretrain_epochs
    frozen = dict(convs_per_layer=args.frozen_convs_per_layer,
                  pretrain_epochs=pretrain_epochs, finetune_epochs=0,
                  noise=args.frozen_noise, noise_level=args.frozen_noise_level,
                  feature_layers=args.feature_layers, test_flip=args.test_flip)
    encoder = _encoder(args, device, layer_channels=args.frozen_channels, **frozen)
    if not args.contrast:
        return encoder
    texture = make_pipeline(LocalContrastNormalizer(args.contrast), encoder)
    if not args.with_raw:
        return texture
    # The contrast-normalised view drops colour and brightness; a second,
    # smaller encoder on the raw pixels keeps them.
    raw = _encoder(args, device, layer_channels=args.raw_channels, **frozen)
    return FeatureUnion([("texture", texture), ("raw", raw)])


def frozen_rows(X, gender, age, splits, args, device, pca):
    """Frozen features + linear heads; the encoders are fitted once per fold and shared."""
    from sklearn.base import clone
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = {"acc": [], "mae": [], "sqrt_mae": []}
    secs = {"pretrain_s": [], "heads_s": []}
    for k, (train, test) in enumerate(splits):
        # Fitted once per fold; the three heads share its features.
        start = time.perf_counter()
        features = frozen_features(args, device).fit(X[train])
        secs["pretrain_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        f_train, f_test = features.transform(X[train]), features.transform(X[test])
        heads_c = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=3000))
        heads_r = make_pipeline(StandardScaler(), Ridge(alpha=args.alpha))
        scores["acc"].append(heads_c.fit(f_train, gender[train]).score(f_test, gender[test]))
        scores["mae"].append(mae(age[test], heads_r.fit(f_train, age[train]).predict(f_test)))
        # Age errors grow with age; a square-root target evens them out for the squared loss.
        sqrt_r = TransformedTargetRegressor(clone(heads_r), func=np.sqrt, inverse_func=np.square,
                                            check_inverse=False)
        scores["sqrt_mae"].append(mae(age[test], sqrt_r.fit(f_train, age[train]).predict(f_test)))
        secs["heads_s"].append(time.perf_counter() - start)
        print(f"fold {args.folds[k]} frozen: acc={scores['acc'][-1]:.4f} "
              f"mae={scores['mae'][-1]:.3f} sqrt_mae={scores['sqrt_mae'][-1]:.3f} "
              f"({secs['pretrain_s'][-1]:.0f} s + "
              f"{secs['heads_s'][-1]:.0f} s, {f_train.shape[1]} features)",
              file=sys.stderr, flush=True)
    config = {
        **_data_config(args, X, splits), "layer_channels": list(args.frozen_channels),
        "raw_layer_channels": list(args.raw_channels) if args.with_raw else None,
        "convs_per_layer": args.frozen_convs_per_layer,
        "pretrain_epochs_per_layer": args.frozen_pretrain_epochs,
        "noise": f"{args.frozen_noise} {args.frozen_noise_level}",
        "feature_layers": args.feature_layers, "pooling": "flatten",
        "test_flip": args.test_flip,
        "n_features": int(f_train.shape[1]),
        "features": (f"LocalContrastNormalizer({args.contrast}) -> ConvSDAEFeatures"
                     + (" + raw-pixel ConvSDAEFeatures (FeatureUnion)" if args.with_raw else "")
                     if args.contrast else "ConvSDAEFeatures"),
        "heads": f"StandardScaler -> LogisticRegression(C={args.C}) / Ridge({args.alpha})",
        "pretrain_s_per_fold": _r(secs["pretrain_s"]), "heads_s_per_fold": _r(secs["heads_s"]),
    }
    mean = {key: float(np.mean(v)) for key, v in scores.items()}
    mean["fit_s"] = float(np.mean(secs["pretrain_s"]))
    # The frozen recipe (contrast normalisation, layers, widths, C, alpha) was chosen on
    # fold 0's test faces: the folds after it are the untouched estimate.
    untouched = [k for k, fold in enumerate(args.folds) if fold != 0]
    config["mean_of_folds_other_than_0"] = {
        key: round(float(np.mean([v[k] for k in untouched])), 4) if untouched else None
        for key, v in scores.items()}
    emit("frozen_sdae_logreg_gender_accuracy", round(mean["acc"], 4), "accuracy",
         baseline=round(pca[0], 4), device=device,
         config={**config, "per_fold": [round(v, 4) for v in scores["acc"]],
                 "baseline": "PCA-128 + LR"},
         bar=">= 0.88", passed=bool(mean["acc"] >= 0.88))
    emit("frozen_sdae_ridge_age_mae", round(mean["mae"], 3), "years",
         baseline=round(pca[1], 3), device=device,
         config={**config, "per_fold": [round(v, 3) for v in scores["mae"]],
                 "baseline": "PCA-128 + Ridge"},
         bar="<= 8.0", passed=bool(mean["mae"] <= 8.0))
    emit("frozen_sdae_ridge_sqrt_age_mae", round(mean["sqrt_mae"], 3), "years",
         baseline=round(mean["mae"], 3), device=device,
         config={**config, "per_fold": [round(v, 3) for v in scores["sqrt_mae"]],
                 "head": f"TransformedTargetRegressor(StandardScaler -> Ridge({args.alpha}), "
                         "sqrt / square)", "baseline": "same features, Ridge on age"})
    return mean


def oneliner_rows(X, gender, age, splits, args, device, frozen):
    """The README's one-liners: ConvSDAEFeatures() at its defaults and default heads.

    ``make_pipeline(ConvSDAEFeatures(), LogisticRegression(max_iter=1000))`` for
    gender and ``make_pipeline(ConvSDAEFeatures(), RidgeCV())`` for age, nothing
    tuned. With one seed the two pipelines fit the same encoder (fits are
    reproducible on the CPU), so it is fitted once per fold, in the gender
    pipeline, and the age pipeline reuses it through ``FrozenEstimator``.
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline

    from skface.estimators import ConvSDAEFeatures

    scores = {"acc": [], "mae": []}
    secs = {"gender_fit_s": [], "age_head_fit_s": []}
    for k, (train, test) in enumerate(splits):
        start = time.perf_counter()
        gender_model = make_pipeline(ConvSDAEFeatures(device=device, random_state=SEED),
                                     LogisticRegression(max_iter=1000))
        gender_model.fit(X[train], gender[train])
        secs["gender_fit_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        age_model = make_pipeline(FrozenEstimator(gender_model[0]), RidgeCV())
        age_model.fit(X[train], age[train])
        secs["age_head_fit_s"].append(time.perf_counter() - start)
        scores["acc"].append(gender_model.score(X[test], gender[test]))
        scores["mae"].append(mae(age[test], age_model.predict(X[test])))
        print(f"fold {args.folds[k]} one-liners: acc={scores['acc'][-1]:.4f} "
              f"mae={scores['mae'][-1]:.3f} ({secs['gender_fit_s'][-1]:.0f} s + "
              f"{secs['age_head_fit_s'][-1]:.0f} s, RidgeCV alpha "
              f"{age_model[-1].alpha_:g})", file=sys.stderr, flush=True)
    encoder = gender_model[0]
    config = {
        **_data_config(args, X, splits),
        "estimator": "ConvSDAEFeatures() defaults: " + ", ".join(
            f"{key}={encoder.get_params()[key]!r}" for key in (
                "layer_channels", "contrast", "noise", "noise_level", "feature_layers",
                "test_flip", "feature_scale", "pretrain_epochs")),
        "n_features": int(encoder._n_features_out),
        "heads": "LogisticRegression(max_iter=1000) / RidgeCV() (scikit-learn defaults)",
        "encoder_shared": "one fit per fold, the age pipeline through FrozenEstimator",
        "gender_fit_s_per_fold": _r(secs["gender_fit_s"]),
        "age_head_fit_s_per_fold": _r(secs["age_head_fit_s"]),
        "recipe_fit_s_mean": round(frozen["fit_s"], 1) if frozen else None,
    }
    mean = {key: float(np.mean(v)) for key, v in scores.items()}
    fit_s = float(np.mean(secs["gender_fit_s"]))
    have = frozen is not None
    emit("oneliner_gender_accuracy", round(mean["acc"], 4), "accuracy",
         baseline=round(frozen["acc"], 4) if have else None, device=device,
         config={**config, "per_fold": [round(v, 4) for v in scores["acc"]],
                 "baseline": "the frozen recipe (this run's frozen row)"},
         bar="within 0.01 of the recipe",
         passed=bool(have and mean["acc"] >= frozen["acc"] - 0.01))
    emit("oneliner_age_mae", round(mean["mae"], 3), "years",
         baseline=round(frozen["mae"], 3) if have else None, device=device,
         config={**config, "per_fold": [round(v, 3) for v in scores["mae"]],
                 "baseline": "the frozen recipe, Ridge on age (this run's frozen row)"},
         bar="within 0.3 years of the recipe",
         passed=bool(have and mean["mae"] <= frozen["mae"] + 0.3))
    emit("oneliner_fit_seconds", round(fit_s, 1), "s",
         baseline=round(frozen["fit_s"], 1) if have else None, device=device,
         config={**config, "what": "encoder + LogisticRegression fit per fold, against "
                                   "the recipe's two encoders"})
    return {**mean, "fit_s": fit_s}


def finetuned_rows(X, gender, age, splits, args, device):
    """The encoder fine-tuned end to end, from its pretrained weights and from a random start."""
    from skface.estimators import SDAEClassifier, SDAERegressor

    scores = {key: [] for key in ("ft_acc", "ft_mae", "scratch_acc", "scratch_mae")}
    times = {key: [] for key in ("pretrain_s", "ft_clf_s", "ft_reg_s",
                                 "scratch_clf_s", "scratch_reg_s")}
    for k, (train, test) in enumerate(splits):
        start = time.perf_counter()
        sdae = _encoder(args, device).fit(X[train])
        times["pretrain_s"].append(time.perf_counter() - start)
        scratch = _encoder(args, device, pretrain_epochs=0, finetune_epochs=0)
        for tag, encoder in (("ft", sdae), ("scratch", scratch)):
            model = SDAEClassifier(encoder, **_head_params(args, device)).fit(
                X[train], gender[train])
            scores[f"{tag}_acc"].append(model.score(X[test], gender[test]))
            times[f"{tag}_clf_s"].append(_train_s(model.net_))
            model = SDAERegressor(encoder, **_head_params(args, device)).fit(
                X[train], age[train])
            pred = model.predict(X[test])
            scores[f"{tag}_mae"].append(mae(age[test], pred))
            times[f"{tag}_reg_s"].append(_train_s(model.net_))
            if tag == "ft" and k == 0:
                np.savez(Path(args.out_dir) / "sdae_fold0_age.npz", age=age[test], pred=pred)
            print(f"fold {args.folds[k]} {tag}: acc={scores[f'{tag}_acc'][-1]:.4f} "
                  f"mae={scores[f'{tag}_mae'][-1]:.3f}", file=sys.stderr, flush=True)

    tuned = {**_config(args, X, splits), "pooling": "flatten", "max_epochs": args.epochs,
             "lr": args.finetune_lr, "optimizer": "AdamW, cosine decay",
             "augment": "flips, shifts <= 8%", "regression_loss": "huber on standardised age",
             "input": "raw pixels"}
    mean = {key: float(np.mean(v)) for key, v in scores.items()}

    def per_fold(key, digits=4):
        return [round(v, digits) for v in scores[key]]

    emit("finetuned_pretrained_gender_accuracy", round(mean["ft_acc"], 4), "accuracy",
         baseline=round(mean["scratch_acc"], 4), device=device,
         config={**tuned, "per_fold": per_fold("ft_acc"), "baseline": "same net from scratch",
                 "train_s_per_fold": _r(times["ft_clf_s"]),
                 "pretrain_s_per_fold": _r(times["pretrain_s"])},
         bar=">= 0.92", passed=bool(mean["ft_acc"] >= 0.92))
    emit("finetuned_pretrained_age_mae", round(mean["ft_mae"], 3), "years",
         baseline=round(mean["scratch_mae"], 3), device=device,
         config={**tuned, "per_fold": per_fold("ft_mae", 3), "baseline": "same net from scratch",
                 "train_s_per_fold": _r(times["ft_reg_s"]),
                 "pretrain_s_per_fold": _r(times["pretrain_s"])},
         bar="<= 5.5", passed=bool(mean["ft_mae"] <= 5.5))
    emit("finetuned_scratch_gender_accuracy", round(mean["scratch_acc"], 4), "accuracy",
         device=device,
         config={**tuned, "per_fold": per_fold("scratch_acc"), "init": "random (no pretraining)",
                 "train_s_per_fold": _r(times["scratch_clf_s"])})
    emit("finetuned_scratch_age_mae", round(mean["scratch_mae"], 3), "years",
         device=device,
         config={**tuned, "per_fold": per_fold("scratch_mae", 3),
                 "init": "random (no pretraining)",
                 "train_s_per_fold": _r(times["scratch_reg_s"])})
    return mean


def memory_row(X, gender, args, device):
    """Grid search over 5 LogisticRegression settings: Pipeline(memory=...) against none."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skface.estimators import ConvSDAEFeatures

    keep = choose(gender, args.memory_images)
    X, y = X[keep], gender[keep]
    fits = []
    original = ConvSDAEFeatures.fit

    def counting_fit(self, X, y=None):
        fits.append(len(X))
        return original(self, X, y)

    grid = {"clf__C": [0.001, 0.003, 0.01, 0.03, 0.1]}
    cv = StratifiedKFold(3, shuffle=True, random_state=SEED)
    results = {}
    ConvSDAEFeatures.fit = counting_fit
    try:
        for label in ("memory", "no_memory"):
            cache = tempfile.mkdtemp(prefix="skface-sdae-") if label == "memory" else None
            pipe = Pipeline(
                [("features", frozen_features(args, device, args.memory_epochs)),
                 ("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))],
                memory=cache,
            )
            fits.clear()
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                search = GridSearchCV(pipe, grid, cv=cv).fit(X, y)
            results[label] = (time.perf_counter() - start, len(fits), search.best_params_)
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        ConvSDAEFeatures.fit = original
    per_fit = sum(isinstance(step, ConvSDAEFeatures) for step in pipe.get_params().values())
    (with_s, with_fits, best), (without_s, without_fits, _) = (
        results["memory"], results["no_memory"])
    emit("grid_search_5_heads_memory_wall_s", round(with_s, 1), "s",
         baseline=round(without_s, 1), device=device,
         config={"n_images": len(X), "cv": 3, "grid": grid, "candidates": 5,
                 "encoder_fits_with_memory": with_fits,
                 "encoder_fits_without_memory": without_fits,
                 "encoders_per_feature_fit": per_fit,
                 "expected": f"with memory: (3 folds + 1 refit) x {per_fit}; "
                             f"without: (5 x 3 + 1) x {per_fit}",
                 "encoder_pretrain_epochs": args.memory_epochs, "image": f"{args.size}px",
                 "best": best, "baseline": "same GridSearchCV, Pipeline(memory=None)"},
         encoder_fits=with_fits, encoder_fits_baseline=without_fits)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-home", default=default_data_home(),
                        help="shared data folder, or a .npz of bench/pack_utkface.py")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke run: 1,000 faces at 32px, 2 folds, 1-2 epochs")
    parser.add_argument("--rows", default="pca,frozen,finetuned,memory",
                        help="comma-separated subset of pca,frozen,oneliner,finetuned,memory")
    parser.add_argument("--size", type=int, default=None, help="image side (default 64)")
    parser.add_argument("--grey", action="store_true", help="grey instead of RGB")
    parser.add_argument("--n-images", type=int, default=None, help="subset (default: all)")
    parser.add_argument("--folds", type=lambda s: [int(k) for k in s.split(",")], default=None,
                        help="which of the 5 folds to run, e.g. 0,1 (default: all five)")
    channels = lambda s: tuple(int(c) for c in s.split(","))  # noqa: E731
    # The fine-tuned rows' encoder.
    parser.add_argument("--channels", type=channels, default=None,
                        help="fine-tuned encoder's layer channels (default 32,64,128,256)")
    parser.add_argument("--convs-per-layer", type=int, default=None, help="default 2")
    parser.add_argument("--noise", default="mask", choices=("mask", "gaussian"))
    parser.add_argument("--noise-level", type=float, default=0.3)
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="default 20")
    parser.add_argument("--joint-epochs", type=int, default=None, help="default 10")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning, default 40")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    # The frozen rows' encoders.
    parser.add_argument("--frozen-channels", type=channels, default=None,
                        help="encoder on contrast-normalised faces (default 64,128,256)")
    parser.add_argument("--raw-channels", type=channels, default=None,
                        help="encoder on raw pixels, beside it (default 32,64,128)")
    parser.add_argument("--no-raw", dest="with_raw", action="store_false",
                        help="frozen features from the contrast-normalised encoder alone")
    parser.add_argument("--contrast", type=float, default=2.0,
                        help="LocalContrastNormalizer sigma before the frozen encoder; "
                             "0 for raw pixels")
    parser.add_argument("--frozen-convs-per-layer", type=int, default=1)
    parser.add_argument("--frozen-pretrain-epochs", type=int, default=None, help="default 3")
    parser.add_argument("--frozen-noise", default="gaussian", choices=("mask", "gaussian"))
    parser.add_argument("--frozen-noise-level", type=float, default=0.5)
    parser.add_argument("--feature-layers", default="all", help="'top' or 'all'")
    parser.add_argument("--no-test-flip", dest="test_flip", action="store_false",
                        help="frozen features of each face alone, not averaged with its "
                             "mirror image's")
    parser.add_argument("--C", type=float, default=0.003, help="LogisticRegression's C")
    parser.add_argument("--alpha", type=float, default=10000.0, help="Ridge's alpha")
    parser.add_argument("--memory-images", type=int, default=None, help="default 3000")
    parser.add_argument("--memory-epochs", type=int, default=None, help="default 2")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", default=tempfile.gettempdir(),
                        help="where fold 0's age predictions go (for plots)")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()

    quick = dict(size=32, n_images=1000, folds=[0, 1], channels=(16, 32, 64),
                 convs_per_layer=1, pretrain_epochs=1, joint_epochs=0, epochs=2,
                 frozen_channels=(16, 32, 64), raw_channels=(8, 16, 32),
                 frozen_pretrain_epochs=1, memory_images=400, memory_epochs=1)
    full = dict(size=64, n_images=None, folds=list(range(N_SPLITS)),
                channels=(32, 64, 128, 256), convs_per_layer=2, pretrain_epochs=20,
                joint_epochs=10, epochs=40, frozen_channels=(64, 128, 256),
                raw_channels=(32, 64, 128), frozen_pretrain_epochs=3, memory_images=3000,
                memory_epochs=2)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.color = not args.grey
    rows = set(args.rows.split(","))

    import torch

    from skface._device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    faces = load(args.data_home, args.size, args.color)
    keep = choose(faces.gender, args.n_images)
    X, gender, age = faces.images[keep], faces.gender[keep], faces.age[keep].astype(float)
    splits = folds(gender, args.folds)
    start = time.perf_counter()
    table = []
    pca = (float("nan"), float("nan"))
    if "pca" in rows or "frozen" in rows:
        pca = pca_rows(args.data_home, keep, splits, device)
        table.append(("PCA-128 (48x48 grey) + LogisticRegression / Ridge", *pca))
    if "frozen" in rows:
        frozen = frozen_rows(X, gender, age, splits, args, device, pca)
        table.append(("frozen features + LogisticRegression / Ridge", frozen["acc"],
                      frozen["mae"]))
    if "oneliner" in rows:
        one = oneliner_rows(X, gender, age, splits, args, device,
                            frozen if "frozen" in rows else None)
        table.append(("README one-liners: ConvSDAEFeatures() + LogisticRegression() / "
                      "RidgeCV()", one["acc"], one["mae"]))
    if "finetuned" in rows:
        tuned = finetuned_rows(X, gender, age, splits, args, device)
        table.append(("fine-tuned from the pretrained encoder", tuned["ft_acc"],
                      tuned["ft_mae"]))
        table.append(("fine-tuned without pretraining", tuned["scratch_acc"],
                      tuned["scratch_mae"]))
    if "memory" in rows:
        memory_row(X, gender, args, device)
    print(
        f"\nfolds {args.folds} of 5, {len(X)} faces, {args.size}px "
        f"{'RGB' if args.color else 'grey'}, {time.perf_counter() - start:.0f} s\n\n"
        "| model | gender accuracy | age MAE (years) |\n|---|---|---|\n"
        + "".join(f"| {name} | {acc:.4f} | {err:.2f} |\n" for name, acc, err in table),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
