"""Face verification on LFW View 1 with CenterLossEmbedder, against eigenfaces.

What it shows: the LFW development protocol (View 1) done with the public
API only. A ``CenterLossEmbedder`` learns unit-length face embeddings from
the images of the official ``dev_train`` people (softmax over their
identities plus center loss); it never sees the people of the 1,000
``pairsDevTest`` pairs it is scored on (the two people lists are disjoint).
Each test pair is scored by the cosine similarity of its two embeddings
(``skface.metrics.pair_scores``) and the table gives

- the accuracy with the threshold chosen by 10-fold cross-validation inside
  the test pairs (``verification_accuracy``: each fold is judged with the
  threshold that is best on the other nine), with its std over the folds;
- the ROC AUC (``verification_roc_auc``, threshold-free);

for the embedder and for eigenfaces (whitened PCA of grey pixels, fitted on
the same training faces, cosine scores). The figure has the two ROC curves
(``skface.plotting.plot_roc``) and the embedder's score distributions of
same-person and different-person pairs.

    python examples/lfw_verification.py            # NN4.Small2, 96 px, 30 epochs: for a GPU
    python examples/lfw_verification.py --quick    # small_cnn, 32 px, 8 epochs: ~20 s, 1 CPU core
    SKFACE_EXAMPLES_QUICK=1 python examples/lfw_verification.py

Full mode is the reference recipe of ``bench/embedding.py`` (all 9,525
``dev_train`` images, random 96 px crops of 104 px faces, SGD with a
one-cycle rate, flip-averaged test embeddings). Quick mode trains a small
network on the 4,964 images of the ``dev_train`` people with at least 4
images, on 32 px crops; it still beats eigenfaces clearly.

Data: LFW from ``--data-home`` or ``$SKFACE_DATA`` (downloaded there, with
pinned checksums, when absent). Writes ``lfw_verification_roc.png`` to
``--out``.
"""

import time

import numpy as np

# The options, tables and figure files every example shares (examples/ is on sys.path).
from _common import parse_args, print_row, print_table_header, print_written, pyplot, save_figure

# Figures this script writes into --out (tests/test_examples.py checks them).
FIGURES = ("lfw_verification_roc.png",)


def main(argv=None):
    args = parse_args(__doc__, argv)

    import torch
    from sklearn.decomposition import PCA

    from skface.datasets import fetch_lfw_pairs, fetch_lfw_people
    from skface.estimators import CenterLossEmbedder
    from skface.metrics import pair_scores, verification_accuracy, verification_roc_auc
    from skface.preprocessing import lfw_crop

    if args.quick:
        torch.set_num_threads(1)  # small network: one thread is as fast, and CI cores are shared
        size, jitter, min_faces = 32, 4, 4
        model = dict(backbone="small_cnn", backbone_params={"width": 16}, max_epochs=8,
                     batch_size=128)
    else:
        size, jitter, min_faces = 96, 8, 0
        model = dict(backbone="nn4_small2", max_epochs=30, batch_size=256)

    # Square colour face crops of size + jitter pixels: random `size` crops in training,
    # the centre crop at test time.
    crop = lfw_crop(size, jitter=jitter, color=True)
    start = time.perf_counter()
    train = fetch_lfw_people(data_home=args.data_home, subset="dev_train",
                             min_faces_per_person=min_faces, **crop)
    test = fetch_lfw_pairs(data_home=args.data_home, subset="dev_test", **crop)
    test_people = set(test.names.ravel())
    assert not test_people & set(train.target_names), "View 1 people lists overlap"
    print(f"training: {len(train.images)} images of {len(train.target_names)} dev_train people; "
          f"test: {len(test.target)} pairsDevTest pairs of {len(test_people)} other people "
          f"({time.perf_counter() - start:.1f} s to load)")

    embedder = CenterLossEmbedder(
        **model, crop_size=size, lambda_center=0.1, alpha_center=0.5, lr=0.1,
        lr_schedule="onecycle", momentum=0.9, weight_decay=5e-3, flip=True, test_flip=True,
        random_state=0, verbose=0 if args.quick else 1,
    )
    start = time.perf_counter()
    embedder.fit(train.images, train.target)
    fit_s = time.perf_counter() - start

    n_pairs = len(test.pairs)
    both = test.pairs.reshape(2 * n_pairs, *test.pairs.shape[2:])
    scores = {
        f"CenterLossEmbedder ({model['backbone']})":
            pair_scores(embedder.transform(both).reshape(n_pairs, 2, -1)),
    }

    # Eigenfaces: whitened PCA of the grey centre crops of the same training faces.
    def grey_centre(images):
        top = (images.shape[1] - size) // 2
        return images[:, top:top + size, top:top + size].mean(axis=-1).reshape(len(images), -1)

    pca = PCA(128, whiten=True, random_state=0).fit(grey_centre(train.images))
    scores["eigenfaces (whitened PCA-128)"] = pair_scores(
        pca.transform(grey_centre(both)).reshape(n_pairs, 2, -1))

    print(f"\nView 1 pairsDevTest, {n_pairs} pairs (embedder fit: {fit_s:.0f} s)\n")
    print_table_header("model", "accuracy, 10-fold CV threshold", "ROC AUC")
    for name, s in scores.items():
        cv = verification_accuracy(test.target, s, n_folds=10)
        auc = verification_roc_auc(test.target, s)
        print_row(name, f"{cv.accuracy:.3f} +- {cv.std:.3f}", f"{auc:.3f}")

    plt = pyplot()  # figures to files only (unless $MPLBACKEND says otherwise)
    from skface.plotting import plot_roc

    fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(10, 4.5))
    plot_roc(test.target, scores, ax=ax_roc)
    ax_roc.set_title("LFW View 1 pairsDevTest")
    ours = next(iter(scores.values()))
    same = test.target == 1
    bins = np.linspace(-1, 1, 41)
    ax_hist.hist(ours[same], bins=bins, alpha=0.6, label="same person")
    ax_hist.hist(ours[~same], bins=bins, alpha=0.6, label="different people")
    threshold = np.median(verification_accuracy(test.target, ours).thresholds)
    ax_hist.axvline(threshold, color="k", linestyle="--", linewidth=1,
                    label=f"median of the 10 CV thresholds ({threshold:.2f})")
    ax_hist.set_xlabel("cosine similarity of the two embeddings")
    ax_hist.set_ylabel("pairs")
    ax_hist.set_title("CenterLossEmbedder pair scores")
    ax_hist.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, FIGURES[0])
    print_written(args.out, FIGURES)


if __name__ == "__main__":
    main()
