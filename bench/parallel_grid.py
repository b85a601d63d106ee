r"""GridSearchCV of ConvSDAEFeatures -> LogisticRegression (UTKFace gender): Dask vs n_jobs=1.

Prints one JSON object per row (see bench/README.md). Both runs use one torch
thread per fit (the parent's set with ``torch_threads(1)``, each worker's by
``skface.parallel.TorchThreads``), the same folds and the same seeds, so
their ``cv_results_`` scores must be identical; the rows give the largest
difference and the wall times, the Dask one with ``ratio`` = Dask / n_jobs=1.
The cluster's start-up (and the first import of torch in each worker) is
timed apart, as ``cluster_startup_s``; ``fit_s_total`` sums the fits' own
times (``mean_fit_time`` x 3 folds). On a machine shared with other work,
compare those too: the ideal ratio is 1 / workers.

    SKFACE_DATA=../shared/data python bench/parallel_grid.py            # ~1500 faces, a few minutes
    python bench/parallel_grid.py --images 600 --pretrain-epochs 1     # a quicker smoke run
"""

import argparse
import functools
import os
import platform
import time
import warnings

import numpy as np

from _common import default_data_home, emit as _emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "parallel_grid"
emit = functools.partial(_emit, BENCH)
SEED = 0
SCORE_KEYS = ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score")


def load(data_home, size, n_images):
    """A gender-stratified random subset of UTKFace: faces and genders."""
    from sklearn.model_selection import train_test_split

    from skface.datasets import fetch_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the malformed file names, named in `skipped`
        faces = fetch_utkface(data_home=data_home, size=size, download_if_missing=False)
    keep = np.arange(len(faces.gender))
    if n_images and n_images < len(keep):
        keep, _ = train_test_split(keep, train_size=n_images, stratify=faces.gender,
                                   random_state=SEED)
        keep = np.sort(keep)
    return faces.images[keep], faces.gender[keep]


def search(args):
    """The grid search: 2 noise levels x 2 C values, 3 stratified folds, no refit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline

    from skface.estimators import ConvSDAEFeatures

    pipe = make_pipeline(
        ConvSDAEFeatures(args.channels, pretrain_epochs=args.pretrain_epochs,
                         batch_size=args.batch_size, device="cpu", random_state=SEED),
        LogisticRegression(max_iter=1000),
    )
    grid = {"convsdaefeatures__noise_level": [0.1, 0.3], "logisticregression__C": [0.1, 1.0]}
    # refit=False: the timed work is the candidates x folds alone, the part that spreads.
    return GridSearchCV(pipe, grid, cv=StratifiedKFold(3, shuffle=True, random_state=SEED),
                        refit=False)


def _warm_up():
    import skface.estimators  # noqa: F401  (torch, skorch and skface loaded once per worker)
    import torch

    return torch.get_num_threads()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--channels", type=lambda s: tuple(int(c) for c in s.split(",")),
                        default=(8, 16, 32))
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="also append the rows to this file")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from skface.parallel import dask_backend, torch_threads

    X, y = load(args.data_home, args.size, args.images)
    config = {"images": len(y), "size": f"{args.size}x{args.size} RGB",
              "channels": list(args.channels), "pretrain_epochs": args.pretrain_epochs,
              "candidates": 4, "folds": 3, "workers": args.workers,
              "threads_per_worker": 1, "torch_threads_per_fit": 1}

    with torch_threads(1):
        start = time.perf_counter()
        serial = search(args).fit(X, y)
        serial_s = time.perf_counter() - start

    start = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client, dask_backend(client):
        worker_threads = sorted(client.run(_warm_up).values())
        startup_s = time.perf_counter() - start
        with torch_threads(1):  # the parent only schedules, but keep it from competing
            start = time.perf_counter()
            spread = search(args).fit(X, y)
            dask_s = time.perf_counter() - start

    diff = max(float(np.max(np.abs(spread.cv_results_[k] - serial.cv_results_[k])))
               for k in SCORE_KEYS)
    identical = all(np.array_equal(spread.cv_results_[k], serial.cv_results_[k])
                    for k in SCORE_KEYS)
    # Named here: the parent's own torch setting says nothing about the fits.
    device = f"cpu ({platform.machine()}, {os.cpu_count()} cores, 1 torch thread per fit)"
    row = functools.partial(emit, device=device, config=config, out=args.out)
    # The fits' own times, summed: wall time against them shows the overlap, and
    # shows whether other load on the machine slowed one run more than the other.
    def fit_s(result):
        return round(float(np.sum(result.cv_results_["mean_fit_time"]) * 3), 2)

    row("n_jobs1_search_wall_s", round(serial_s, 2), "s", fit_s_total=fit_s(serial),
        mean_test_score=[round(float(s), 4) for s in serial.cv_results_["mean_test_score"]])
    row("dask_search_wall_s", round(dask_s, 2), "s", baseline=round(serial_s, 2),
        fit_s_total=fit_s(spread), worker_torch_threads=worker_threads,
        cluster_startup_s=round(startup_s, 2))
    row("cv_scores_max_abs_diff", diff, "accuracy", identical=identical)


if __name__ == "__main__":
    main()
