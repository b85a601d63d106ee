"""Tune gender and age heads on frozen conv-SDAE features: Pipeline(memory=) + GridSearchCV.

What it shows: a ``ConvSDAEFeatures`` encoder (trained without labels, as a
stacked denoising autoencoder) used as the first step of ordinary
scikit-learn pipelines on UTKFace,

    Pipeline([("sdae", ConvSDAEFeatures(...)), ("scale", StandardScaler()),
              ("head", LogisticRegression())], memory=cache)     # gender
    Pipeline([... same encoder ..., ("head", Ridge())], memory=cache)   # age

and a ``GridSearchCV`` over the head's parameters only (``head__C`` for
gender, ``head__alpha`` for age). With ``memory=`` the pipeline caches each
fitted transformer by its parameters and data, so the (slow) encoder is
fitted once per cross-validation fold and once for the final refit, not
once per candidate and fold: the script counts the encoder fits in the cache
folder to show it. joblib's cache key includes ``y``, so the age search,
whose ``y`` differs, fits its own encoders.

The faces are first split into a training part, on which the searches
cross-validate, and a held-out test part, on which the refitted best
pipelines are scored once (the best cross-validation score is optimistic:
it chose the candidate). The tables list every candidate; the figure shows
the cross-validation curves with the held-out scores.

This is the tuning counterpart of ``examples/age_gender.py``, which compares
*what* to put under the head (PCA, frozen SDAE features, the SDAE
fine-tuned end to end with ``SDAEClassifier``/``SDAERegressor``, the same
net without pretraining) at fixed head settings.

    python examples/age_gender_gridsearch.py          # 12,000 faces, 48 px, 5 folds (GPU advised)
    python examples/age_gender_gridsearch.py --quick  # 600 faces, 32 px, 3 folds: ~15 s, 1 core
    SKFACE_EXAMPLES_QUICK=1 python examples/age_gender_gridsearch.py

Data: UTKFace from ``--data-home`` or ``$SKFACE_DATA`` (never downloaded:
see ``skface.datasets.fetch_utkface``). Writes ``gridsearch_heads.png`` to
``--out``.
"""

import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

# The options, tables and figure files every example shares (examples/ is on sys.path).
from _common import parse_args, print_row, print_table_header, print_written, pyplot, save_figure

# Figures this script writes into --out (tests/test_examples.py checks them).
FIGURES = ("gridsearch_heads.png",)



# The settings this example's results were measured with, written out: raw pixels,
# masking noise, the top layer's code, and the pipeline's StandardScaler.
MEASURED_ENCODER = dict(contrast=None, noise="mask", noise_level=0.3, feature_layers="top",
                        test_flip=False, feature_scale=None)

def _encoder_fits(cache):
    """How many ConvSDAEFeatures fits the pipeline cache holds (one folder per cached call)."""
    n = 0
    for meta in Path(cache).rglob("metadata.json"):
        if "ConvSDAEFeatures" in meta.read_text(errors="replace"):
            n += 1
    return n


def main(argv=None):
    args = parse_args(__doc__, argv)

    import torch
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skface.datasets import fetch_utkface
    from skface.estimators import ConvSDAEFeatures

    if args.quick:
        torch.set_num_threads(1)  # small network: one thread is as fast, and CI cores are shared
        size, n_faces, n_folds = 32, 600, 3
        # Few faces: small batches and a higher rate, for enough Adam progress per epoch.
        encoder = ConvSDAEFeatures((16, 32, 64), pretrain_epochs=3, finetune_epochs=2,
                                   batch_size=32, lr=3e-3, random_state=0, **MEASURED_ENCODER)
    else:
        size, n_faces, n_folds = 48, None, 5
        encoder = ConvSDAEFeatures((32, 64, 128), pretrain_epochs=10, finetune_epochs=5,
                                   random_state=0, verbose=1, **MEASURED_ENCODER)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three malformed file names, listed in `skipped`
        faces = fetch_utkface(data_home=args.data_home, size=size)
    X, gender, age = faces.images, faces.gender, faces.age.astype(float)
    if n_faces:
        pick = np.sort(np.random.RandomState(0).choice(len(X), n_faces, replace=False))
        X, gender, age = X[pick], gender[pick], age[pick]
    (X_train, X_test, gender_train, gender_test,
     age_train, age_test) = train_test_split(X, gender, age, test_size=0.25, stratify=gender,
                                             random_state=0)
    print(f"UTKFace: {len(X_train)} training faces ({n_folds}-fold grid search), "
          f"{len(X_test)} held out; {size}x{size} RGB")

    cache = tempfile.mkdtemp(prefix="skface-gridsearch-")
    try:
        def pipeline(head):
            return Pipeline([("sdae", encoder), ("scale", StandardScaler()), ("head", head)],
                            memory=cache)

        searches = {
            "gender": dict(
                search=GridSearchCV(
                    pipeline(LogisticRegression(max_iter=2000)),
                    {"head__C": [1e-3, 1e-2, 1e-1, 1.0]}, scoring="accuracy",
                    cv=StratifiedKFold(n_folds, shuffle=True, random_state=0)),
                y=(gender_train, gender_test), param="head__C", metric="accuracy", sign=1,
            ),
            "age": dict(
                search=GridSearchCV(
                    pipeline(Ridge()), {"head__alpha": [1e1, 1e2, 1e3, 1e4, 1e5]},
                    scoring="neg_mean_absolute_error",
                    cv=KFold(n_folds, shuffle=True, random_state=0)),
                y=(age_train, age_test), param="head__alpha", metric="MAE (years)", sign=-1,
            ),
        }
        for name, s in searches.items():
            search, (y_train, y_test) = s["search"], s["y"]
            before = _encoder_fits(cache)
            start = time.perf_counter()
            search.fit(X_train, y_train)
            s["seconds"] = time.perf_counter() - start
            s["encoder_fits"] = _encoder_fits(cache) - before
            s["test"] = s["sign"] * search.score(X_test, y_test)
            n_candidates = len(search.cv_results_["params"])
            res = search.cv_results_
            print(f"\n{name}: GridSearchCV over {s['param']} ({n_candidates} candidates x "
                  f"{n_folds} folds), {s['seconds']:.0f} s, {s['encoder_fits']} encoder fits "
                  f"with memory= (without: {n_candidates * n_folds + 1})")
            print()
            print_table_header(s["param"], f"CV {s['metric']}", "rank")
            for params, mean, std, rank in zip(res["params"], res["mean_test_score"],
                                               res["std_test_score"], res["rank_test_score"]):
                print_row(f"{params[s['param']]:g}", f"{s['sign'] * mean:.3f} +- {std:.3f}", rank)

        print()
        print_table_header("target", "best head parameter", "CV score of the best",
                           "held-out test score")
        for name, s in searches.items():
            search = s["search"]
            print_row(f"{name} {s['metric']}", f"{s['param']}={search.best_params_[s['param']]:g}",
                      f"{s['sign'] * search.best_score_:.3f}", f"{s['test']:.3f}")
        majority = np.mean(gender_test == np.bincount(gender_train).argmax())
        mean_age = np.abs(age_test - age_train.mean()).mean()
        searches["gender"]["baseline"] = ("most frequent gender", majority)
        searches["age"]["baseline"] = ("training mean age", mean_age)
        print_row("baselines", f"most frequent gender: accuracy {majority:.3f}; "
                  f"training mean age: MAE {mean_age:.2f}", "", "")
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    plt = pyplot()  # figures to files only (unless $MPLBACKEND says otherwise)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, s) in zip(axes, searches.items()):
        res, search = s["search"].cv_results_, s["search"]
        values = np.array([p[s["param"]] for p in res["params"]], dtype=float)
        ax.errorbar(values, s["sign"] * res["mean_test_score"], yerr=res["std_test_score"],
                    marker="o", capsize=3, label=f"{n_folds}-fold CV (mean +- std)")
        best = search.best_params_[s["param"]]
        ax.plot([best], [s["test"]], marker="*", markersize=12, color="tab:red", linestyle="",
                label=f"refitted best on held-out faces: {s['test']:.3f}")
        base_name, base_value = s["baseline"]
        ax.axhline(base_value, color="0.5", linestyle="--", linewidth=1,
                   label=f"{base_name}, held out: {base_value:.3f}")
        ax.set_xscale("log")
        ax.set_xlabel(s["param"])
        ax.set_ylabel(f"{name} {s['metric']}")
        ax.set_title(f"{name}: {type(search.estimator.named_steps['head']).__name__} head "
                     "on frozen SDAE features", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, FIGURES[0])
    print_written(args.out, FIGURES)


if __name__ == "__main__":
    main()
