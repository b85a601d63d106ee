"""UTKFace gender and age from conv SDAE features: frozen, fine-tuned, from scratch.

Reads UTKFace from the data home (``SKFACE_DATA`` or ``--data-home``), scores
four models on the same stratified folds, prints a table, and saves two
figures: denoised test faces, and the age error per age bin.

    python examples/age_gender.py --quick     # small CPU run, a few minutes
    python examples/age_gender.py             # all 12,000 faces at 48x48 (GPU recommended)
"""

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skface.datasets import fetch_utkface
from skface.estimators import ConvSDAEFeatures, SDAEClassifier, SDAERegressor


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-home", default=os.environ.get("SKFACE_DATA", "../shared/data"))
    parser.add_argument("--quick", action="store_true",
                        help="800 faces, 32px, 3 folds, few epochs")
    parser.add_argument("--out", default=".", help="folder for the figures")
    args = parser.parse_args()

    size, n_faces, n_folds = (32, 800, 3) if args.quick else (48, None, 5)
    pretrain_epochs, epochs = (2, 4) if args.quick else (10, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three malformed file names, listed in `skipped`
        faces = fetch_utkface(data_home=args.data_home, size=size)
    rng = np.random.RandomState(0)
    pick = slice(None)
    if n_faces:
        pick = np.sort(rng.choice(len(faces.images), n_faces, replace=False))
    X, gender, age = faces.images[pick], faces.gender[pick], faces.age[pick].astype(float)
    print(f"{len(X)} faces, {size}x{size} RGB, {n_folds}-fold cross-validation")

    # Same folds for every model: stratified on gender, fixed seed.
    folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, gender))

    def encoder(**params):
        # Small batches in the quick run: enough Adam steps on few faces.
        defaults = {"pretrain_epochs": pretrain_epochs, "finetune_epochs": 1 if args.quick else 5,
                    "batch_size": 32 if args.quick else 128, "random_state": 0}
        return ConvSDAEFeatures((32, 64, 128), **{**defaults, **params})

    flat = X.reshape(len(X), -1)
    models = {
        "PCA-128 + linear": (
            make_pipeline(PCA(128, random_state=0), StandardScaler(),
                          LogisticRegression(max_iter=2000)),
            make_pipeline(PCA(128, random_state=0), Ridge()),
            flat,
        ),
        "frozen SDAE + linear": (
            make_pipeline(encoder(), StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)),
            make_pipeline(encoder(), StandardScaler(), Ridge(alpha=1000.0)),
            X,
        ),
        "SDAE fine-tuned": (
            SDAEClassifier(encoder(), max_epochs=epochs, random_state=0),
            SDAERegressor(encoder(), max_epochs=epochs, random_state=0),
            X,
        ),
        "same net, no pretraining": (
            SDAEClassifier(encoder(pretrain_epochs=0, finetune_epochs=0), max_epochs=epochs,
                           random_state=0),
            SDAERegressor(encoder(pretrain_epochs=0, finetune_epochs=0), max_epochs=epochs,
                          random_state=0),
            X,
        ),
    }
    print("\n| model | gender accuracy | age MAE (years) | fit s / fold |\n|---|---|---|---|")
    predictions = {}
    for name, (classifier, regressor, data) in models.items():
        start = time.perf_counter()
        acc = cross_validate(classifier, data, gender, cv=folds, scoring="accuracy")["test_score"]
        # Out-of-fold age predictions: the MAE per fold, and the error-by-age figure.
        pred = predictions[name] = cross_val_predict(regressor, data, age, cv=folds)
        err = np.array([np.abs(pred[test] - age[test]).mean() for _, test in folds])
        per_fold = (time.perf_counter() - start) / n_folds
        print(f"| {name} | {acc.mean():.3f} +- {acc.std():.3f} | "
              f"{err.mean():.2f} +- {err.std():.2f} | {per_fold:.0f} |", flush=True)

    # A grid search over the head only: with memory= the encoder is fitted once
    # per fold (and once for the refit), not once per candidate.
    cache = tempfile.mkdtemp(prefix="skface-example-")
    pipe = Pipeline([("sdae", encoder()), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=2000))], memory=cache)
    start = time.perf_counter()
    search = GridSearchCV(pipe, {"clf__C": [0.001, 0.01, 0.1]}, cv=folds).fit(X, gender)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"\nGridSearchCV over C with memory=: best {search.best_params_}, "
          f"accuracy {search.best_score_:.3f}, {time.perf_counter() - start:.0f} s")

    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return
    from skface.plotting import plot_denoising, plot_error_by_age

    _, test = folds[0]
    sdae = search.best_estimator_.named_steps["sdae"]
    clean = X[test[:8]]
    # The masking noise the encoder was trained with: in standardised pixels a
    # masked value becomes 0 (the channel mean) and the rest are scaled up.
    stats = sdae.net_.module_.stack.standardize
    mean = stats.mean.cpu().numpy().reshape(1, 1, 1, -1)
    keep = rng.rand(*clean.shape) >= sdae.noise_level
    noisy = mean + (clean - mean) * keep / (1 - sdae.noise_level)
    noisy = noisy.astype(np.float32)
    plot_denoising(noisy, sdae.reconstruct(noisy), clean).savefig(Path(args.out) / "denoising.png")
    error = np.abs(predictions["SDAE fine-tuned"] - age)
    plot_error_by_age(age, error).savefig(Path(args.out) / "age_error.png")
    print(f"figures: {Path(args.out) / 'denoising.png'}, {Path(args.out) / 'age_error.png'}")


if __name__ == "__main__":
    main()
