"""Fit a KeypointRegressor on YouTube Faces keypoints and draw its predictions on test faces.

What it shows: ``KeypointRegressor``, a CNN regressor with a scikit-learn
interface (``fit(images, keypoints)``, ``predict``, ``score``), on the 68
iBUG keypoints of 3,462 YouTube Faces training frames (96x96 faces; a CNN of
strided conv blocks, global average pooling and a linear head; flips that
swap the left/right keypoints, rotations, zooms and shifts on by default).
The table gives the RMSE on the 770 test frames in pixels of the 96x96
faces (``skface.metrics.keypoint_rmse``) next to predicting the mean
training shape; the figure (``keypoints_overlay.png``) shows 12 test faces
of different people with the true keypoints (green) and the predicted ones
(red).

    python examples/keypoints.py            # the defaults (96 px input, 80 epochs): for a GPU
    python examples/keypoints.py --quick    # 32 px input, small trunk, 15 epochs: ~20 s, 1 core
    SKFACE_EXAMPLES_QUICK=1 python examples/keypoints.py

Predictions come back in pixels of the images given to ``predict`` whatever
the network's ``input_size``, so the quick model's 32 px input is scored on
the same 96 px scale.

Data: ``--data-home`` or ``$SKFACE_DATA`` (the YouTube Faces keypoint set is
not downloaded automatically; see ``fetch_youtube_faces_keypoints``).
Writes ``keypoints_overlay.png`` to ``--out``.
"""

import time

import numpy as np

# The options, tables and figure files every example shares (examples/ is on sys.path).
from _common import parse_args, print_row, print_table_header, print_written, pyplot, save_figure

# Figures this script writes into --out (tests/test_examples.py checks them).
FIGURES = ("keypoints_overlay.png",)


def main(argv=None):
    args = parse_args(__doc__, argv, out_aliases=("--out-dir",))

    import torch

    from skface.datasets import fetch_youtube_faces_keypoints
    from skface.estimators import KeypointRegressor
    from skface.metrics import keypoint_rmse

    common = dict(data_home=args.data_home, size=96, download_if_missing=False)
    train = fetch_youtube_faces_keypoints(subset="train", **common)
    test = fetch_youtube_faces_keypoints(subset="test", **common)
    print(f"YouTube Faces keypoints: {len(train.images)} training and {len(test.images)} test "
          f"frames, 96x96, {train.keypoints.shape[1]} keypoints")

    if args.quick:
        torch.set_num_threads(1)  # small network: one thread is as fast, and CI cores are shared
        # A third of the input size and single-conv blocks: under a second per epoch.
        model = KeypointRegressor((16, 32, 64, 128), convs_per_layer=1, input_size=32,
                                  max_epochs=15, random_state=0)
    else:
        model = KeypointRegressor(random_state=0, verbose=1)
    start = time.perf_counter()
    model.fit(train.images, train.keypoints)
    fit_s = time.perf_counter() - start

    pred = model.predict(test.images)
    mean_shape = np.broadcast_to(train.keypoints.mean(axis=0), test.keypoints.shape)
    print()
    print_table_header("model", "test RMSE (px of a 96x96 face)", "fit s")
    print_row(f"KeypointRegressor {model.layer_channels}, {model.input_size_[0]} px input",
              f"{keypoint_rmse(test.keypoints, pred):.3f}", f"{fit_s:.0f}")
    print_row("mean training shape", f"{keypoint_rmse(test.keypoints, mean_shape):.3f}", "-")
    worst = np.argsort(keypoint_rmse(test.keypoints, pred, per_keypoint=True))[::-1][:3]
    print(f"\nhardest keypoints (0-based iBUG indices): {worst.tolist()}")

    pyplot()  # figures to files only (unless $MPLBACKEND says otherwise)
    from skface.plotting import plot_keypoints

    # One frame per person, so the figure shows 12 different faces.
    _, first = np.unique(test.identity, return_index=True)
    shown = np.sort(first)[:12]
    fig = plot_keypoints(test.images[shown], test.keypoints[shown], pred[shown], n_images=12,
                         n_cols=6, tile_size=2.0)
    save_figure(fig, args.out, FIGURES[0])
    print_written(args.out, FIGURES)


if __name__ == "__main__":
    main()
