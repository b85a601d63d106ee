"""UTKFace gender and age from conv SDAE features: frozen, fine-tuned, from scratch.

What it shows: ``ConvSDAEFeatures`` (a stacked convolutional denoising
autoencoder, trained without labels) and its supervised counterparts
``SDAEClassifier`` / ``SDAERegressor``, compared on the same stratified folds
of UTKFace for gender (accuracy) and age (mean absolute error, years):

- PCA-128 of the pixels + LogisticRegression / Ridge (the linear baseline);
- frozen SDAE features + StandardScaler + LogisticRegression / Ridge: every
  layer's code (``feature_layers="all"``) of an encoder trained on
  contrast-normalised faces (``LocalContrastNormalizer``: edges and skin
  texture), beside the codes of a smaller encoder on the raw pixels (colour,
  brightness), joined by a ``FeatureUnion``; each face's features are
  averaged with those of its mirror image (``test_flip=True``);
- the pretrained encoder fine-tuned end to end with a head
  (``SDAEClassifier(ConvSDAEFeatures(...))``, ``SDAERegressor(...)``);
- the same network trained from a random start (no pretraining).

It prints one table row per model and saves two figures: test faces
corrupted with the encoder's masking noise, its reconstructions and the
clean faces (``denoising.png``); and the out-of-fold age error per age bin
of the model with the lowest MAE (``age_error.png``).

Quick mode is a smoke run: on 400 training faces at 32 px with a few epochs
the fine-tuned nets are no better than PCA and pretraining does not pay
yet; the full run (and ``bench/RESULTS.md``) is where the comparison means
something.

The head settings here are fixed (C=0.003, alpha=10000); tuning them with
``Pipeline(memory=)`` and ``GridSearchCV`` is ``examples/age_gender_gridsearch.py``.

    python examples/age_gender.py           # all 12,000 faces at 48 px, 5 folds (GPU advised)
    python examples/age_gender.py --quick   # 600 faces at 32 px, 3 folds: ~20 s on 1 CPU core
    SKFACE_EXAMPLES_QUICK=1 python examples/age_gender.py

Data: UTKFace from ``--data-home`` or ``$SKFACE_DATA`` (never downloaded:
see ``skface.datasets.fetch_utkface``). Writes ``denoising.png`` and
``age_error.png`` to ``--out``.
"""

import time
import warnings

import numpy as np

# The options, tables and figure files every example shares (examples/ is on sys.path).
from _common import parse_args, print_row, print_table_header, print_written, pyplot, save_figure

# Figures this script writes into --out (tests/test_examples.py checks them).
FIGURES = ("denoising.png", "age_error.png")



# The settings this example's results were measured with, written out: raw pixels
# (contrast normalisation is its own pipeline step here), masking noise, the top
# layer's code, and the scaler in the pipeline rather than in the encoder.
MEASURED_ENCODER = dict(contrast=None, noise="mask", noise_level=0.3, feature_layers="top",
                        test_flip=False, feature_scale=None)

def main(argv=None):
    args = parse_args(__doc__, argv)

    import torch
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_validate
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skface.datasets import fetch_utkface
    from skface.estimators import ConvSDAEFeatures, SDAEClassifier, SDAERegressor
    from skface.preprocessing import LocalContrastNormalizer

    if args.quick:
        torch.set_num_threads(1)  # small networks: one thread is as fast, and CI cores are shared
        size, n_faces, n_folds = 32, 600, 3
        layers, texture_layers = (16, 32, 64), (16, 32, 64)
        # Few faces: small batches and a higher rate, for enough Adam progress per epoch.
        encoder_defaults = dict(pretrain_epochs=3, finetune_epochs=2, batch_size=32, lr=3e-3,
                                **MEASURED_ENCODER)
        tuning = dict(max_epochs=4, batch_size=32, lr=3e-3)
    else:
        size, n_faces, n_folds = 48, None, 5
        layers, texture_layers = (32, 64, 128), (64, 128, 256)
        encoder_defaults = dict(pretrain_epochs=10, finetune_epochs=5, batch_size=128,
                                **MEASURED_ENCODER)
        tuning = dict(max_epochs=30)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three malformed file names, listed in `skipped`
        faces = fetch_utkface(data_home=args.data_home, size=size)
    rng = np.random.RandomState(0)
    pick = slice(None)
    if n_faces:
        pick = np.sort(rng.choice(len(faces.images), n_faces, replace=False))
    X, gender, age = faces.images[pick], faces.gender[pick], faces.age[pick].astype(float)
    print(f"UTKFace: {len(X)} faces, {size}x{size} RGB, {n_folds}-fold cross-validation")

    # Same folds for every model: stratified on gender, fixed seed.
    folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, gender))

    def encoder(**params):
        return ConvSDAEFeatures(layers, **{**encoder_defaults, "random_state": 0, **params})

    def frozen_features():
        # Texture from contrast-normalised faces, colour and brightness from raw pixels;
        # every layer's code, so the linear heads see edges as well as parts; each
        # face's features averaged with its mirror image's.
        frozen = dict(feature_layers="all", test_flip=True, noise="gaussian",
                      noise_level=0.5, finetune_epochs=0)
        texture = make_pipeline(LocalContrastNormalizer(sigma=2.0),
                                ConvSDAEFeatures(texture_layers, **{**encoder_defaults,
                                                                    "random_state": 0,
                                                                    **frozen}))
        return FeatureUnion([("texture", texture), ("raw", encoder(**frozen))])

    flat = X.reshape(len(X), -1)
    models = {
        "PCA-128 + linear": (
            make_pipeline(PCA(128, random_state=0), StandardScaler(),
                          LogisticRegression(max_iter=2000)),
            make_pipeline(PCA(128, random_state=0), Ridge()),
            flat,
        ),
        "frozen SDAE + linear": (
            make_pipeline(frozen_features(), StandardScaler(),
                          LogisticRegression(C=0.003, max_iter=3000)),
            make_pipeline(frozen_features(), StandardScaler(), Ridge(alpha=10000.0)),
            X,
        ),
        "SDAE fine-tuned": (
            SDAEClassifier(encoder(), **tuning, random_state=0),
            SDAERegressor(encoder(), **tuning, random_state=0),
            X,
        ),
        "same net, no pretraining": (
            SDAEClassifier(encoder(pretrain_epochs=0, finetune_epochs=0), **tuning,
                           random_state=0),
            SDAERegressor(encoder(pretrain_epochs=0, finetune_epochs=0), **tuning,
                          random_state=0),
            X,
        ),
    }
    majority = np.array([np.mean(gender[test] == np.bincount(gender[train]).argmax())
                         for train, test in folds])
    mean_age = np.array([np.abs(age[test] - age[train].mean()).mean() for train, test in folds])
    print()
    print_table_header("model", "gender accuracy", "age MAE (years)", "fit+predict s / fold")
    print_row("baseline: most frequent gender / mean age", f"{majority.mean():.3f}",
              f"{mean_age.mean():.2f}", 0)
    predictions, fitted = {}, {}
    for name, (classifier, regressor, data) in models.items():
        start = time.perf_counter()
        result = cross_validate(classifier, data, gender, cv=folds, scoring="accuracy",
                                return_estimator=True)
        acc, fitted[name] = result["test_score"], result["estimator"]
        # Out-of-fold age predictions: the MAE per fold, and the error-by-age figure.
        pred = predictions[name] = cross_val_predict(regressor, data, age, cv=folds)
        err = np.array([np.abs(pred[test] - age[test]).mean() for _, test in folds])
        per_fold = (time.perf_counter() - start) / n_folds
        print_row(name, f"{acc.mean():.3f} +- {acc.std():.3f}",
                  f"{err.mean():.2f} +- {err.std():.2f}", f"{per_fold:.1f}", flush=True)

    pyplot()  # figures to files only (unless $MPLBACKEND says otherwise)
    from skface.plotting import plot_denoising, plot_error_by_age

    # The frozen encoder of the first fold, on faces it did not train on, corrupted with
    # the noise it learned to remove (masking: a value becomes its channel's mean).
    _, test = folds[0]
    sdae = fitted["frozen SDAE + linear"][0][0].named_transformers["raw"]
    clean = X[test[:8]]
    noisy = sdae.corrupt(clean, random_state=0)
    fig = plot_denoising(noisy, sdae.reconstruct(noisy), clean)
    save_figure(fig, args.out, FIGURES[0])
    # The age error of the model with the lowest MAE in this run, per age bin.
    best = min(predictions, key=lambda name: np.abs(predictions[name] - age).mean())
    fig = plot_error_by_age(age, np.abs(predictions[best] - age))
    fig.axes[0].set_title(f"out-of-fold age error of the best age model: {best}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, args.out, FIGURES[1])
    print_written(args.out, FIGURES)


if __name__ == "__main__":
    main()
