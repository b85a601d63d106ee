r"""SDAEClassifier on UTKFace gender: 2-process gloo data-parallel fit vs the 1-process fit.

Prints one JSON object per row (see bench/README.md). Both fits use the same
global batch (``--batch-size``), seed, epochs and data; the 1-process fit
runs with 2 torch threads, the data-parallel one as 2 processes started by
``torchrun --standalone --nproc-per-node 2`` with 1 torch thread each, so
each side has the machine's 2 cores. The rows give each fit's final
training loss (mean over the last epoch's batches), held-out accuracy, and
training throughput: training images x epochs / fit time, after an untimed
warm-up fit, the data loading and the process start-up not counted. The
2-process row has ``ratio`` = 2-process / 1-process, and
``ratio_vs_1thread`` against a third fit, 1 process x 1 thread (ideal: 2);
``images_per_cpu_s`` counts the CPU time of all threads and processes, and
``cpu_ratio_vs_1thread`` (ideal: 1) is the data-parallel overhead per image.
Each throughput row carries the machine's 1-minute load average before and
after its fit: on cores shared with other work a 2-thread process slows far
more than two 1-thread ones, so compare runs at similar load. The trunk is
a freshly initialised ConvSDAE one (``pretrain_epochs=0``): greedy
pretraining is not data-parallel, and each process would repeat it.

    SKFACE_DATA=../shared/data python bench/ddp.py                    # about 2 minutes on 2 cores
    python bench/ddp.py --train 1000 --epochs 1                        # a quicker smoke run
"""

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from _common import default_data_home, emit as _emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "ddp"
emit = functools.partial(_emit, BENCH)
SEED = 0


def load(data_home, size, n_train, n_test):
    """Disjoint gender-stratified train and held-out subsets of UTKFace."""
    from sklearn.model_selection import train_test_split

    from skface.datasets import fetch_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the malformed file names
        faces = fetch_utkface(data_home=data_home, size=size, download_if_missing=False)
    train, test = train_test_split(np.arange(len(faces.gender)), train_size=n_train,
                                   test_size=n_test, stratify=faces.gender, random_state=SEED)
    return (faces.images[np.sort(train)], faces.gender[np.sort(train)],
            faces.images[np.sort(test)], faces.gender[np.sort(test)])


def fit_and_score(args, threads, data=None):
    """One fit (data-parallel when inside a group); its loss, accuracy, images/s."""
    import torch
    from sklearn.base import clone

    from skface.estimators import ConvSDAEFeatures, SDAEClassifier

    torch.set_num_threads(threads)
    X, y, X_test, y_test = data or load(args.data_home, args.size, args.train, args.test)
    clf = SDAEClassifier(
        ConvSDAEFeatures(args.channels, pretrain_epochs=0, random_state=SEED),
        max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device="cpu",
        random_state=SEED,
    )
    # Untimed: the first fit in a process pays for thread pools, kernels and (here)
    # the first gloo collectives.
    clone(clf).set_params(max_epochs=1).fit(X[: 2 * args.batch_size], y[: 2 * args.batch_size])
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # both ranks start the clock together
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    cpu_s = torch.tensor([time.process_time() - cpu_start], dtype=torch.float64)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(cpu_s)  # all the processes' CPU time
    return {
        "final_train_loss": round(float(clf.net_.history[-1, "train_loss"]), 5),
        "train_loss_per_epoch": [round(float(v), 5) for v in clf.net_.history[:, "train_loss"]],
        "held_out_accuracy": round(float(clf.score(X_test, y_test)), 4),
        "fit_s": round(fit_s, 2),
        "images_per_s": round(len(y) * args.epochs / fit_s, 1),
        # CPU seconds of all the threads and processes: less sensitive than the
        # wall time to other work on shared cores, it shows the data-parallel overhead.
        "cpu_s": round(float(cpu_s), 2),
        "images_per_cpu_s": round(len(y) * args.epochs / float(cpu_s), 1),
        "torch_threads": torch.get_num_threads(),
        # Other work on the machine slows a multi-threaded process the most.
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def worker(args):
    """One rank under torchrun: the fit inside data_parallel(); rank 0 writes the result."""
    from skface.parallel import data_parallel

    with data_parallel(backend="gloo") as group:
        result = fit_and_score(args, threads=1)
        result["world_size"] = group.world_size
        if group.rank == 0:
            with open(args.result, "w") as f:
                json.dump(result, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--channels", type=lambda s: tuple(int(c) for c in s.split(",")),
                        default=(16, 32, 64))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default=None, help="also append the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    data = load(args.data_home, args.size, args.train, args.test)
    single = fit_and_score(args, threads=args.processes, data=data)
    # Also one thread: against it, the ideal 2-process ratio is 2 whatever the
    # threads' own scaling.
    single1 = fit_and_score(args, threads=1, data=data)

    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "rank0.json")
        argv = [a for a in sys.argv[1:] if a != "--out" and a != args.out]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             f"--nproc-per-node={args.processes}", __file__, *argv, "--worker",
             "--result", result],
            env=env, check=True, timeout=600,
        )
        launch_s = time.perf_counter() - start
        with open(result) as f:
            spread = json.load(f)

    config = {"train_images": args.train, "held_out_images": args.test,
              "size": f"{args.size}x{args.size} RGB", "channels": list(args.channels),
              "epochs": args.epochs, "global_batch": args.batch_size, "lr": args.lr,
              "seed": SEED, "backend": "gloo", "processes": args.processes,
              "threads": f"1 process x {args.processes} threads vs "
                         f"{args.processes} processes x 1 thread"}
    device = f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
    row = functools.partial(emit, device=device, config=config, out=args.out)
    row("final_train_loss_1proc", single["final_train_loss"], "loss",
        per_epoch=single["train_loss_per_epoch"])
    row(f"final_train_loss_{args.processes}proc", spread["final_train_loss"], "loss",
        baseline=single["final_train_loss"], per_epoch=spread["train_loss_per_epoch"])
    row("held_out_accuracy_1proc", single["held_out_accuracy"], "accuracy")
    row(f"held_out_accuracy_{args.processes}proc", spread["held_out_accuracy"], "accuracy",
        baseline=single["held_out_accuracy"])
    def cpu(result):
        return {"cpu_s": result["cpu_s"], "images_per_cpu_s": result["images_per_cpu_s"],
                "fit_s": result["fit_s"], "load_avg_1min": result["load_avg_1min"]}

    row("train_images_per_s_1proc", single["images_per_s"], "images/s",
        torch_threads=single["torch_threads"], **cpu(single))
    row("train_images_per_s_1proc_1thread", single1["images_per_s"], "images/s",
        torch_threads=1, final_train_loss=single1["final_train_loss"], **cpu(single1))
    row(f"train_images_per_s_{args.processes}proc", spread["images_per_s"], "images/s",
        baseline=single["images_per_s"],
        ratio_vs_1thread=round(spread["images_per_s"] / single1["images_per_s"], 3),
        cpu_ratio_vs_1thread=round(spread["images_per_cpu_s"] / single1["images_per_cpu_s"], 3),
        torch_threads_per_process=spread["torch_threads"], torchrun_wall_s=round(launch_s, 2),
        **cpu(spread))


if __name__ == "__main__":
    main()
