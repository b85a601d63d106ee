"""Face identification: CenterLossEmbedder embeddings into an SVC, cross-validated on LFW.

What it shows: a deep embedding used as an ordinary scikit-learn transformer.
``make_pipeline(CenterLossEmbedder(...), SVC())`` is one estimator: in each
fold of a stratified k-fold split of the LFW people with at least 20 images
(62 people, 3,023 images), the embedder is trained on the training folds'
faces (softmax over the 62 identities plus center loss) and the SVC is
fitted on their embeddings; the held-out faces are then embedded and
classified. ``cross_val_predict`` clones and refits the whole pipeline per
fold, so no test face is seen in training. The table compares it with the
classic eigenfaces pipeline (whitened PCA of grey pixels + the same SVC) on
the same folds, and with always guessing the most frequent person. The
figure shows each person's recall (the fraction of their faces named
correctly) for both pipelines, people sorted by their number of images.

    python examples/identification_svc.py            # NN4.Small2, 96 px, 5 folds: for a GPU
    python examples/identification_svc.py --quick    # small_cnn, 32 px, 3 folds: ~30 s, 1 CPU core
    SKFACE_EXAMPLES_QUICK=1 python examples/identification_svc.py

Data: LFW from ``--data-home`` or ``$SKFACE_DATA`` (downloaded there, with
pinned checksums, when absent). Writes ``identification_per_person.png`` to
``--out``.
"""

import time

import numpy as np

# The options, tables and figure files every example shares (examples/ is on sys.path).
from _common import parse_args, print_row, print_table_header, print_written, pyplot, save_figure

# Figures this script writes into --out (tests/test_examples.py checks them).
FIGURES = ("identification_per_person.png",)


def main(argv=None):
    args = parse_args(__doc__, argv)

    import torch
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC

    from skface.datasets import fetch_lfw_people
    from skface.estimators import CenterLossEmbedder
    from skface.preprocessing import lfw_crop

    if args.quick:
        torch.set_num_threads(1)  # small network: one thread is as fast, and CI cores are shared
        size, jitter, n_folds = 32, 4, 3
        model = dict(backbone="small_cnn", backbone_params={"width": 16}, max_epochs=12,
                     batch_size=128)
    else:
        size, jitter, n_folds = 96, 8, 5
        model = dict(backbone="nn4_small2", max_epochs=30, batch_size=128)

    faces = fetch_lfw_people(data_home=args.data_home, min_faces_per_person=20,
                             **lfw_crop(size, jitter=jitter, color=True))
    X, y = faces.images, faces.target
    counts = np.bincount(y)
    print(f"{len(X)} faces of {len(counts)} people ({counts.min()}-{counts.max()} images each), "
          f"{X.shape[1]}x{X.shape[2]} RGB, stratified {n_folds}-fold cross-validation")

    embedder = CenterLossEmbedder(**model, crop_size=size, lr=0.1, random_state=0,
                                  verbose=0 if args.quick else 1)

    def grey_centre(images):
        top = (images.shape[1] - size) // 2
        return images[:, top:top + size, top:top + size].mean(axis=-1).reshape(len(images), -1)

    pipelines = {
        f"CenterLossEmbedder ({model['backbone']}) + SVC": make_pipeline(embedder, SVC()),
        "eigenfaces (whitened PCA-128) + SVC": make_pipeline(
            FunctionTransformer(grey_centre), PCA(128, whiten=True, random_state=0), SVC()),
    }
    folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, y))

    rows, predictions = [], {}
    for name, pipe in pipelines.items():
        start = time.perf_counter()
        pred = predictions[name] = cross_val_predict(pipe, X, y, cv=folds)
        elapsed = time.perf_counter() - start
        acc = np.array([np.mean(pred[test] == y[test]) for _, test in folds])
        rows.append((name, acc, elapsed / n_folds))
    majority = np.array([np.mean(y[test] == np.bincount(y[train]).argmax())
                         for train, test in folds])
    rows.append(("most frequent person", majority, 0.0))

    print()
    print_table_header("pipeline", f"accuracy ({n_folds}-fold)", "per fold", "fit+predict s / fold")
    for name, acc, seconds in rows:
        per_fold = " ".join(f"{a:.3f}" for a in acc)
        print_row(name, f"{acc.mean():.3f} +- {acc.std():.3f}", per_fold, f"{seconds:.1f}")

    plt = pyplot()  # figures to files only (unless $MPLBACKEND says otherwise)

    order = np.argsort(-counts, kind="stable")
    fig, ax = plt.subplots(figsize=(7, 0.16 * len(order) + 1.2))
    height = 0.4
    positions = np.arange(len(order))
    for k, (name, pred) in enumerate(predictions.items()):
        recall = np.array([np.mean(pred[y == person] == person) for person in order])
        ax.barh(positions + (k - 0.5) * height, recall, height=height,
                label=f"{name}: mean recall {recall.mean():.2f}")
    ax.set_yticks(positions)
    ax.set_yticklabels([f"{faces.target_names[p]} ({counts[p]})" for p in order], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall: fraction of the person's faces identified correctly (out of fold)")
    ax.set_title(f"LFW people with >= 20 images: per-person recall, {n_folds}-fold CV",
                 fontsize=9)
    fig.legend(loc="lower center", fontsize=7)  # below the axes: no bar is hidden
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(fig, args.out, FIGURES[0])
    print_written(args.out, FIGURES)


if __name__ == "__main__":
    main()
