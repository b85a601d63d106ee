"""Fit a KeypointRegressor on YouTube Faces keypoints and draw its predictions on test faces.

The 68 iBUG keypoints of 3,462 training frames teach a CNN (five conv blocks,
global average pooling, a linear head); the figure shows 12 of the 770 test
frames with the true keypoints (green) and the predicted ones (red). The
test RMSE is printed in pixels of the 96x96 faces, next to predicting the
mean training shape.

    python examples/keypoints.py               # the estimator's defaults: meant for a GPU
    python examples/keypoints.py --quick       # reduced settings, a few minutes on a CPU
    SKFACE_EXAMPLES_QUICK=1 python examples/keypoints.py

Data: ``--data-home`` or ``SKFACE_DATA`` (the YouTube Faces keypoint set is not
downloaded automatically; see ``fetch_youtube_faces_keypoints``).
Writes ``keypoints_overlay.png`` to ``--out-dir``.
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from skface.datasets import fetch_youtube_faces_keypoints  # noqa: E402
from skface.estimators import KeypointRegressor  # noqa: E402
from skface.metrics import keypoint_rmse  # noqa: E402
from skface.plotting import plot_keypoints  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-home", default=os.environ.get("SKFACE_DATA"))
    parser.add_argument("--out-dir", default=".")
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("SKFACE_EXAMPLES_QUICK"))
    )
    args = parser.parse_args(argv)

    common = dict(data_home=args.data_home, size=96, download_if_missing=False)
    train = fetch_youtube_faces_keypoints(subset="train", **common)
    test = fetch_youtube_faces_keypoints(subset="test", **common)

    if args.quick:
        # Half-size input and single-conv blocks: about 10 s per epoch on one CPU core.
        model = KeypointRegressor(
            (32, 64, 128, 256, 256), convs_per_layer=1, input_size=64, max_epochs=12,
            random_state=0, verbose=1,
        )
    else:
        model = KeypointRegressor(random_state=0, verbose=1)
    # Flips (with the iBUG left/right pairs), rotations, zooms and shifts are on by default.
    model.fit(train.images, train.keypoints)

    pred = model.predict(test.images)
    mean_shape = np.broadcast_to(train.keypoints.mean(axis=0), test.keypoints.shape)
    print(f"test RMSE: {keypoint_rmse(test.keypoints, pred):.3f} px of a 96x96 face "
          f"(mean shape: {keypoint_rmse(test.keypoints, mean_shape):.3f})")
    worst = np.argsort(keypoint_rmse(test.keypoints, pred, per_keypoint=True))[::-1][:3]
    print(f"hardest keypoints (0-based iBUG indices): {worst.tolist()}")

    # One frame per person, so the figure shows 12 different faces.
    _, first = np.unique(test.identity, return_index=True)
    shown = np.sort(first)[:12]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = plot_keypoints(test.images[shown], test.keypoints[shown], pred[shown], n_images=12,
                         n_cols=6, tile_size=2.0)
    fig.savefig(out_dir / "keypoints_overlay.png", dpi=100)
    print(f"wrote {out_dir / 'keypoints_overlay.png'}")


if __name__ == "__main__":
    main()
