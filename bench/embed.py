"""``skface embed`` of every LFW face on Dask workers against in-process ``transform``.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs the real data (``SKFACE_DATA`` or ``--data-home``)
and the ``distributed`` extra.

    python bench/embed.py                 # trains a small model first (about a minute)
    python bench/embed.py --model m.skface   # a saved model fitted on fetch_lfw_people faces

The model is a ``CenterLossEmbedder("small_cnn", width 16, 64-D)`` trained
for 2 epochs on the first 2,000 faces of ``fetch_lfw_people(min_faces_per_person=20)``,
so its fitted ``image_shape_`` is the fetcher's (62, 47, 1). Rows:

- ``transform``: images per second of the in-process ``transform`` of
  ``fetch_lfw_people().images`` (all 13,233; decoding not counted: the
  fetcher's arrays are cached after their first decode).
- ``fetch_decode`` / ``fetch_plus_transform``: the same in process from
  the files, ``fetch_lfw_people()`` with an empty cache (4 decoding
  threads), then ``transform``: the in-process end-to-end baseline.
- ``cluster_start``: seconds to start the local cluster and import torch
  and skface on every worker, the fixed cost inside ``cli_workers``.
- ``cli_workers``: images per second of the whole command
  ``skface embed MODEL lfw-deepfunneled --box 78 70 172 195 --workers N``
  (cluster start-up, decoding, model, Parquet), baseline the transform.
- ``cli_in_process``: the same with ``--workers 0``.
- ``max_abs_diff``: largest difference between the table's embeddings and
  the in-process ones, rows matched by file name; ``identical_rows`` counts
  rows equal bit for bit.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import default_data_home, emit as common_emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "embed"
LFW_BOX = (78, 70, 172, 195)  # fetch_lfw_people's default crop


def _train(path, n_train):
    from skface.datasets import fetch_lfw_people
    from skface.estimators import CenterLossEmbedder

    people = fetch_lfw_people(min_faces_per_person=20)
    model = CenterLossEmbedder(
        "small_cnn", backbone_params={"width": 16}, embedding_dim=64, max_epochs=2,
        random_state=0, device="cpu", verbose=0,
    ).fit(people.images[:n_train], people.target[:n_train])
    model.save(path)
    return path


def _cli(model, folder, out, workers, chunk_size):
    command = [
        sys.executable, "-m", "skface", "embed", str(model), str(folder), "--out", str(out),
        "--workers", str(workers), "--chunk-size", str(chunk_size),
        "--box", *map(str, LFW_BOX), "--device", "cpu", "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start, command


def _cluster_start(workers):
    import logging

    import distributed

    def warm():
        import skface.estimators  # noqa: F401  (torch too)

    start = time.perf_counter()
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        client.run(warm)
        seconds = time.perf_counter() - start
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--model", default=None, help="saved model (default: train one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--skip-in-process-cli", action="store_true")
    parser.add_argument("--out", default=None, help="also append the rows to this file")
    args = parser.parse_args()

    import pyarrow.parquet as pq
    import torch

    from skface import load
    from skface.datasets import fetch_lfw_people

    home = Path(args.data_home or default_data_home())
    os.environ["SKFACE_DATA"] = str(home)  # the CLI's workers read the same data home
    folder = home / "lfw" / "lfw-deepfunneled"
    work = Path(tempfile.mkdtemp(prefix="skface-bench-embed-"))
    model_path = args.model or _train(work / "lfw_small.skface", args.n_train)
    device = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads here, " \
             "single-thread workers)"

    def emit(what, value, unit, **kw):
        return common_emit(BENCH, what, value, unit, device=device, out=args.out, **kw)

    # A fresh cache: the fetcher decodes all 13,233 files here, as the command does.
    os.environ["SKFACE_CACHE"] = str(work / "cache")
    start = time.perf_counter()
    people = fetch_lfw_people()
    t_decode = time.perf_counter() - start
    model = load(model_path, device="cpu")
    start = time.perf_counter()
    reference = model.transform(people.images)
    t_transform = time.perf_counter() - start
    n = len(reference)
    base = round(n / t_transform, 1)
    emit("transform", base, "img/s", config={"n": n, "torch_threads": torch.get_num_threads()})
    emit("fetch_decode", round(n / t_decode, 1), "img/s",
         config={"n": n, "seconds": round(t_decode, 2), "cache": "empty"})
    emit("fetch_plus_transform", round(n / (t_decode + t_transform), 1), "img/s",
         config={"n": n, "seconds": round(t_decode + t_transform, 2)})
    emit("cluster_start", round(_cluster_start(args.workers), 2), "s",
         config={"workers": args.workers, "what": "LocalCluster up, torch and skface "
                 "imported on every worker"})

    out = work / "lfw.parquet"
    seconds, command = _cli(model_path, folder, out, args.workers, args.chunk_size)
    rate = round(n / seconds, 1)
    emit("cli_workers", rate, "img/s", baseline=base,
         config={"n": n, "workers": args.workers, "chunk_size": args.chunk_size,
                 "seconds": round(seconds, 2), "command": " ".join(command)})

    table = pq.read_table(out).to_pandas()
    names = [os.path.relpath(f, folder) for f in table["file"]]
    row_of = {name: i for i, name in enumerate(names)}
    order = [row_of[f] for f in people.filenames]
    columns = [c for c in table.columns if c != "file"]
    got = table[columns].to_numpy()[order]
    diff = np.abs(got - reference)
    emit("max_abs_diff", float(diff.max()), "abs", config={"rows": len(table)},
         identical_rows=int((diff.max(axis=1) == 0).sum()))

    if not args.skip_in_process_cli:
        seconds, command = _cli(model_path, folder, work / "lfw0.parquet", 0, args.chunk_size)
        emit("cli_in_process", round(n / seconds, 1), "img/s", baseline=base,
             config={"n": n, "seconds": round(seconds, 2), "command": " ".join(command)})
        again = pq.read_table(work / "lfw0.parquet").to_pandas()[columns].to_numpy()[order]
        emit("max_abs_diff_in_process", float(np.abs(again - reference).max()), "abs")


if __name__ == "__main__":
    main()
