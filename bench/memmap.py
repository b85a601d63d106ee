r"""Training from a memory-mapped uint8 set larger than the estimator's memory: peak RSS, same model.

Prints one JSON object per row (see bench/README.md). Data: UTKFace faces
from the shared data home (``fetch_utkface(size=...)``), as uint8, repeated
on disk into one ``.npy`` of ``--gb`` gigabytes in a temporary folder
(``--tmp``, deleted afterwards). Each fit runs in a fresh subprocess, which
reports its own peak resident memory (``getrusage`` ``ru_maxrss`` and
``/proc/self/status`` VmHWM, with the file-backed and anonymous parts of
the resident set at the end):

- ``memmap_fit_peak_rss``: one epoch of ``ConvSDAEFeatures`` on the big
  file opened with ``np.load(mmap_mode="r")``; ``baseline`` is the file's
  size, so ``ratio`` is peak RSS / file size;
- ``memmap_fit_peak_rss_small``: the same on the first ``--small`` faces of
  the file: peak RSS does not grow with the size of the set;
- ``memmap_vs_memory_max_abs_diff``: a fit on the small memmap against a fit
  on ``np.array`` of it (in memory), same seed: largest difference of the
  fitted weights and of ``transform`` outputs (0 means identical).

Page cache: rows are read from the file with ``os.preadv``, not through the
mapping, so the pages the kernel caches for the file are the system's, not
the process's (RssFile stays small); a read through the mapping would count
every touched page in RSS until reclaimed.

    SKFACE_DATA=/work/shared/data python bench/memmap.py      # 3 GB of 128x128 faces, ~2.5 min
    python bench/memmap.py --malloc both                      # and with MALLOC_MMAP_THRESHOLD_, ~5 min
    python bench/memmap.py --gb 0.3 --small 1000              # a quicker run
"""

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import default_data_home, emit as _emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "memmap"
emit = functools.partial(_emit, BENCH)
ROOT = Path(__file__).resolve().parents[1]

# The estimator each subprocess fits: small and fast, so one epoch over a few
# GB runs in minutes on two cores; its memory is what the set does to it.
_CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[4]))
from skface.estimators import ConvSDAEFeatures

def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
X = np.load(path, mmap_mode="r")[:n]
if mode == "memory":
    X = np.array(X)
start = time.perf_counter()
sdae = ConvSDAEFeatures((4,), convs_per_layer=1, pretrain_epochs=1, finetune_epochs=0,
                        input_size=int(sys.argv[5]), batch_size=256, lr=1e-3,
                        random_state=0, device="cpu").fit(X)
seconds = time.perf_counter() - start
out = {"seconds": seconds, "n": len(X), "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
       **status()}
if len(sys.argv) > 6:
    np.savez(sys.argv[6], features=sdae.transform(X[:500]),
             **{k: v.numpy() for k, v in sdae.net_.module_.state_dict().items()})
print(json.dumps(out))
"""


def faces(data_home, size):
    """UTKFace faces as uint8 (n, size, size, 3)."""
    from skface.datasets import fetch_utkface

    images = fetch_utkface(data_home=data_home, size=size).images
    return np.round(images * 255).astype(np.uint8)


def write_set(path, base, n):
    """A .npy of ``n`` faces, ``base`` repeated in order, written block by block."""
    path = Path(path)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *base.shape[1:]))
    for start in range(0, n, len(base)):
        stop = min(n, start + len(base))
        out[start:stop] = base[: stop - start]
    out.flush()
    del out


def child(path, n, mode, threads, input_size, save=None, env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    argv = [sys.executable, "-c", _CHILD, str(path), str(n), mode, str(threads), str(input_size)]
    if save is not None:
        argv.append(str(save))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--gb", type=float, default=3.0, help="size of the big memmap")
    parser.add_argument("--size", type=int, default=128, help="face size (square, RGB)")
    parser.add_argument("--small", type=int, default=2000, help="faces in the small memmap")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=16,
                        help="the model's input size (each batch is resized to it)")
    parser.add_argument("--malloc", choices=["default", "threshold", "both"], default="default",
                        help="glibc malloc as it is, with MALLOC_MMAP_THRESHOLD_=1 MiB, or both")
    parser.add_argument("--tmp", default=None, help="folder for the file (default: $TMPDIR)")
    parser.add_argument("--write", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.write:
        # In its own process: the parent stays small, and ru_maxrss, which a
        # child inherits from its parent across fork and exec, is the fit's own.
        write_set(args.write, faces(args.data_home, args.size), args.n)
        return
    row = args.size * args.size * 3
    n = int(args.gb * 1e9 // row)
    folder = Path(tempfile.mkdtemp(prefix="skface-memmap-", dir=args.tmp))
    try:
        path = folder / "faces.npy"
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write", str(path), "--n", str(n),
                        "--size", str(args.size), "--data-home", args.data_home],
                       check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        write_s = time.perf_counter() - start
        file_bytes = path.stat().st_size
        config = {"estimator": f"ConvSDAEFeatures((4,), convs_per_layer=1, pretrain_epochs=1, "
                               f"finetune_epochs=0, input_size={args.input_size}, batch_size=256)",
                  "faces": n, "shape": [args.size, args.size, 3], "dtype": "uint8",
                  "file_bytes": file_bytes, "write_seconds": round(write_s, 1),
                  "threads": args.threads}

        # Same model: the small memmap and its in-memory copy, same seed.
        a, b = folder / "memmap.npz", folder / "memory.npz"
        small = child(path, args.small, "memmap", args.threads, args.input_size, save=a)
        child(path, args.small, "memory", args.threads, args.input_size, save=b)
        with np.load(a) as fa, np.load(b) as fb:
            diff = max(float(np.abs(fa[k].astype(np.float64) - fb[k]).max()) for k in fa.files)
            out_diff = float(np.abs(fa["features"] - fb["features"]).max())
        emit("memmap_vs_memory_max_abs_diff", diff, "abs", device="cpu",
             config={**config, "faces": args.small},
             transform_max_abs_diff=out_diff, n_arrays=len(fa.files))
        emit("memmap_fit_peak_rss_small", small["VmHWM"], "bytes",
             baseline=args.small * row, device="cpu",
             config={**config, "faces": args.small, "file_bytes": args.small * row},
             fit_seconds=round(small["seconds"], 1), status_end=small)

        runs = [("memmap_fit_peak_rss", None),
                # glibc keeps freed batch-sized blocks in its heaps (its mmap
                # threshold rises as they are freed); a fixed threshold returns
                # them to the system after each batch.
                ("memmap_fit_peak_rss_mmap_threshold", {"MALLOC_MMAP_THRESHOLD_": "1048576"})]
        runs = {"default": runs[:1], "threshold": runs[1:], "both": runs}[args.malloc]
        for what, env in runs:
            big = child(path, n, "memmap", args.threads, args.input_size, env=env)
            emit(what, big["VmHWM"], "bytes", baseline=file_bytes,
                 device="cpu", config={**config, "env": env}, fit_seconds=round(big["seconds"], 1),
                 images_per_second=round(n / big["seconds"]), status_end=big,
                 file_over_peak_rss=round(file_bytes / big["VmHWM"], 2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
