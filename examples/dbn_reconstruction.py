"""Fit a deep belief network on LFW faces and save originals next to their reconstructions.

What it shows: ``DBNReconstructor``, the deep autoencoder of Hinton &
Salakhutdinov (2006), as a scikit-learn transformer. The DBN
(1024-1000-500-250-64 by default) is pretrained layer by layer as RBMs with
contrastive divergence on 32x32 grey crops of the faces of the official LFW
``dev_train`` people, fine-tuned as a deep autoencoder, then asked to
reconstruct faces of the ``dev_test`` people, whom it never saw, from their
short codes (``transform`` then ``inverse_transform``, or ``reconstruct``).
The table gives the held-out reconstruction error next to PCA with as many
components as the code (fitted on the same faces) and the mean face; the
figures show 12 unseen faces above their reconstructions
(``dbn_reconstructions.png``) and the first layer's filters
(``dbn_filters.png``).

    python examples/dbn_reconstruction.py            # the defaults: about 5 minutes on 2 CPU cores
    python examples/dbn_reconstruction.py --quick    # 256-128-32, few epochs: ~20 s on 1 CPU core
    SKFACE_EXAMPLES_QUICK=1 python examples/dbn_reconstruction.py

Data: LFW from ``--data-home`` or ``$SKFACE_DATA`` (downloaded there, with
pinned checksums, when absent). Writes ``dbn_reconstructions.png`` and
``dbn_filters.png`` to ``--out``.
"""

import time

import numpy as np

# The options, tables and figure files every example shares (examples/ is on sys.path).
from _common import parse_args, print_row, print_table_header, print_written, pyplot, save_figure

# Figures this script writes into --out (tests/test_examples.py checks them).
FIGURES = ("dbn_reconstructions.png", "dbn_filters.png")

BOX = (61, 61, 189, 189)  # the central 128x128 of the 250x250 images, down to 32x32


def main(argv=None):
    args = parse_args(__doc__, argv, out_aliases=("--out-dir",))

    import torch
    from sklearn.decomposition import PCA

    from skface.datasets import fetch_lfw_people
    from skface.estimators import DBNReconstructor

    common = dict(data_home=args.data_home, box=BOX, resize=0.25, color=False)
    train = fetch_lfw_people(subset="dev_train", **common).images
    test = fetch_lfw_people(subset="dev_test", **common)
    # One face per unseen person.
    _, first = np.unique(test.target, return_index=True)
    test = test.images[np.sort(first)]

    if args.quick:
        torch.set_num_threads(1)  # small network: one thread is as fast, and CI cores are shared
        dbn = DBNReconstructor((256, 128, 32), pretrain_epochs=5, finetune_epochs=10,
                               random_state=0)
    else:
        # The defaults: 1024-1000-500-250-64, 20 CD epochs per RBM, 50 AdamW epochs.
        dbn = DBNReconstructor(random_state=0, verbose=1)
    print(f"LFW: {len(train)} dev_train faces, {len(test)} dev_test faces (one per person), "
          f"{train.shape[1]}x{train.shape[2]} grey")
    start = time.perf_counter()
    dbn.fit(train)
    fit_s = time.perf_counter() - start
    codes = dbn.transform(test)
    reconstructions = dbn.inverse_transform(codes)

    n_code = codes.shape[1]
    flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    pca = PCA(n_code, random_state=0).fit(flat_train)
    rows = [
        (f"DBN {'-'.join(str(n) for n in dbn.hidden_layer_sizes)}",
         float(np.mean((reconstructions - test) ** 2)), fit_s),
        (f"PCA-{n_code}", float(np.mean((pca.inverse_transform(pca.transform(flat_test))
                                         - flat_test) ** 2)), None),
        ("mean training face", float(np.mean((flat_train.mean(axis=0) - flat_test) ** 2)), None),
    ]
    print(f"\nheld-out reconstruction error of {len(test)} unseen people (pixels in [0, 1]), "
          f"{n_code}-number codes\n")
    print_table_header("model", "mean squared error", "vs PCA", "fit s")
    for name, mse, seconds in rows:
        fit = f"{seconds:.0f}" if seconds is not None else "-"
        print_row(name, f"{mse:.5f}", f"{mse / rows[1][1]:.2f}x", fit)
    # score() is the negated error, for model selection: the same number.
    assert np.isclose(-dbn.score(test), rows[0][1], rtol=1e-4)

    pyplot()  # figures to files only (unless $MPLBACKEND says otherwise)
    from skface.plotting import plot_filters, plot_reconstructions

    fig = plot_reconstructions(test[:12], reconstructions[:12], n_images=12, n_cols=12)
    save_figure(fig, args.out, FIGURES[0])
    fig = plot_filters(dbn.components_, dbn.image_shape_, n_filters=32)
    save_figure(fig, args.out, FIGURES[1])
    print_written(args.out, FIGURES)


if __name__ == "__main__":
    main()
