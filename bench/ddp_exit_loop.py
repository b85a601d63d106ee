r"""Exit aborts of data-parallel ranks: N two-process runs of the test worker, counted.

Each run starts the 2 gloo ranks of ``tests/_distributed_worker.py`` (the
worker tests/test_distributed_training.py runs) on 127.0.0.1, as the test
does, and counts the runs where a rank aborted (rc -6, or "terminate called
without an active exception" in its output) after the block, the other
failures, and the gloo/TCPStore threads each rank found alive after its
``data_parallel()`` block. ``--case exit`` (default) runs the worker's
``--exit-only`` case (one 1-epoch CenterLossEmbedder fit: the block, the
optimizer that imports torch._dynamo, the destroy, the exit), ``--case
full`` every scenario. ``--skface-root`` puts another copy of the package
first on the path (e.g. an export of the commit before a fix) to count
"before" with the same worker. Prints one JSON line::

    nice -n 10 python bench/ddp_exit_loop.py --runs 500
    git archive <commit> skface | tar -x -C /tmp/old
    nice -n 10 python bench/ddp_exit_loop.py --runs 500 --skface-root /tmp/old
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "_distributed_worker.py"
GLOO_THREADS = ("gloo", "pt_gloo", "pt_tcpstore")
TERMINATE = "terminate called without an active exception"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(args):
    """One 2-process run: each rank's rc, whether it printed TERMINATE, its threads after the block."""
    with tempfile.TemporaryDirectory(prefix="ddp_exit_") as out:
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                   WORLD_SIZE="2", OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([args.skface_root or str(ROOT),
                                               os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-X", "faulthandler", str(WORKER), out]
        if args.case == "exit":
            cmd.append("--exit-only")
        procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for r in range(2)]
        logs = []
        for proc in procs:
            try:
                logs.append(proc.communicate(timeout=args.timeout)[0])
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                logs.append(proc.communicate()[0])
        threads = []
        for r in range(2):
            path = Path(out, f"rank{r}.npz")
            threads.append(list(np.load(path)["threads_after_block"]) if path.exists() else None)
    return {"rcs": [p.returncode for p in procs], "terminate": [TERMINATE in log for log in logs],
            "threads": threads, "tail": [log[-400:] for log in logs]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--case", choices=["exit", "full"], default="exit")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (2 processes each)")
    parser.add_argument("--skface-root", help="folder holding the skface package to test")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--deadline", type=float, default=None,
                        help="stop starting runs after this many seconds (report the runs done)")
    args = parser.parse_args()
    start = time.perf_counter()
    runs = aborts = failures = 0
    rcs, alive, examples = {}, {}, []

    def gated(_):
        if args.deadline is not None and time.perf_counter() - start > args.deadline:
            return None
        return one_run(args)

    with ThreadPoolExecutor(args.parallel) as pool:
        for res in pool.map(gated, range(args.runs)):
            if res is None:
                continue
            runs += 1
            aborted = any(rc == -6 for rc in res["rcs"]) or any(res["terminate"])
            aborts += aborted
            failed = any(rc != 0 for rc in res["rcs"]) and not aborted
            failures += failed
            if (aborted or failed) and len(examples) < 3:
                examples.append(res)
            for rc in res["rcs"]:
                rcs[str(rc)] = rcs.get(str(rc), 0) + 1
            for names in filter(None, res["threads"]):
                for name in set(n for n in names if n.startswith(GLOO_THREADS)):
                    alive[name] = alive.get(name, 0) + 1
    import torch

    print(json.dumps({
        "bench": "ddp_exit_loop", "case": args.case, "skface_root": args.skface_root or str(ROOT),
        "torch": torch.__version__, "runs": runs, "runs_asked": args.runs, "aborts": aborts,
        "other_failures": failures, "rank_exit_codes": rcs,
        "ranks_with_thread_after_block": alive, "seconds": round(time.perf_counter() - start, 1),
        "parallel": args.parallel, "examples": examples,
    }))


if __name__ == "__main__":
    main()
