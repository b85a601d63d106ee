"""Fit a deep belief network on LFW faces and save originals next to their reconstructions.

The DBN (1024-1000-500-250-64, Hinton & Salakhutdinov 2006) is pretrained
layer by layer with contrastive divergence on the faces of the official LFW
``dev_train`` people, fine-tuned as a deep autoencoder, then asked to
reconstruct faces of the ``dev_test`` people, whom it never saw, from their
64-number codes.

    python examples/dbn_reconstruction.py                  # about 5 minutes on 2 CPU cores
    python examples/dbn_reconstruction.py --quick          # reduced settings, for CI
    SKFACE_EXAMPLES_QUICK=1 python examples/dbn_reconstruction.py

Data: ``--data-home`` or ``SKFACE_DATA`` (downloaded there when absent).
Writes ``dbn_reconstructions.png`` and ``dbn_filters.png`` to ``--out-dir``.
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from skface.datasets import fetch_lfw_people  # noqa: E402
from skface.estimators import DBNReconstructor  # noqa: E402
from skface.plotting import plot_filters, plot_reconstructions  # noqa: E402

BOX = (61, 61, 189, 189)  # the central 128x128 of the 250x250 images, down to 32x32


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-home", default=os.environ.get("SKFACE_DATA"))
    parser.add_argument("--out-dir", default=".")
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("SKFACE_EXAMPLES_QUICK"))
    )
    args = parser.parse_args(argv)

    common = dict(data_home=args.data_home, box=BOX, resize=0.25, color=False)
    train = fetch_lfw_people(subset="dev_train", **common).images
    test = fetch_lfw_people(subset="dev_test", **common)
    # One face per unseen person.
    _, first = np.unique(test.target, return_index=True)
    test = test.images[np.sort(first)]

    if args.quick:
        train = train[:1500]
        dbn = DBNReconstructor(
            (256, 128, 32), pretrain_epochs=3, finetune_epochs=10, random_state=0, verbose=1
        )
    else:
        # The defaults: 1024-1000-500-250-64, 20 CD epochs per RBM, 50 AdamW epochs.
        dbn = DBNReconstructor(random_state=0, verbose=1)
    dbn.fit(train)
    faces = test[:12]
    reconstructions = dbn.reconstruct(faces)
    print(f"held-out mean squared error: {-dbn.score(test):.5f} (pixels in [0, 1])")

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = plot_reconstructions(faces, reconstructions, n_images=12, n_cols=12)
    fig.savefig(out_dir / "dbn_reconstructions.png", dpi=100)
    fig = plot_filters(dbn.components_, dbn.image_shape_, n_filters=32)
    fig.savefig(out_dir / "dbn_filters.png", dpi=100)
    print(f"wrote {out_dir / 'dbn_reconstructions.png'} and {out_dir / 'dbn_filters.png'}")


if __name__ == "__main__":
    main()
