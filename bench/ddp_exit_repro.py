r"""Plain-torch reproducer: a gloo group outlives destroy_process_group() when torch.distributed.nn is imported inside it.

``torch/distributed/nn/functional.py`` binds ``group.WORLD`` (the default
process group *at import time*) as the default ``group=`` argument of its
ten collectives. Imported while a group exists (``torch._dynamo`` imports
it through ``torch.distributed.fsdp``, and torch's optimizers import
``torch._dynamo`` when the first one is built), those defaults keep the
ProcessGroup alive after ``destroy_process_group()``: its gloo threads
(``gloo_tcp_loop``, ``pt_gloo_runloop``) and rank 0's TCPStore server thread
(``pt_tcpstore_uv``) still run when the process exits, and a rank can abort
after its work is done with "terminate called without an active exception"
(rc -6). No skface here: torch only.

Each round starts 2 ranks (gloo, 127.0.0.1) that init the group, build an
SGD optimizer (as a training script's first step does), all-reduce, destroy
the group and exit. Each rank reports whether the group object is freed
(a weakref), the references the module defaults hold, and its native
threads (Linux ``/proc/self/task/*/comm``). Prints one JSON line per round
with ``--verbose``, and a summary line::

    python bench/ddp_exit_repro.py                     # the leak: gloo threads alive after destroy
    python bench/ddp_exit_repro.py --import-before     # workaround: no thread left
    python bench/ddp_exit_repro.py --rounds 500        # count aborts (rare: 0 in 40 rounds on 2 busy cores)
"""

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

GLOO_THREADS = ("gloo", "pt_gloo", "pt_tcpstore")


def native_threads():
    names = []
    for path in glob.glob("/proc/self/task/*/comm"):
        try:
            with open(path) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sorted(names)


def rank_main(import_before, report):
    import weakref

    import torch
    import torch.distributed as dist

    if import_before:
        import torch.distributed.nn  # noqa: F401  (the workaround: defaults bind None)
    dist.init_process_group("gloo")
    world = weakref.ref(dist.group.WORLD)
    # The first optimizer imports torch._dynamo -> torch.distributed.fsdp -> torch.distributed.nn.
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    t = torch.ones(1)
    dist.all_reduce(t)
    dist.destroy_process_group()
    import torch.distributed.nn.functional as fn

    pinned = sum(1 for f in vars(fn).values()
                 if callable(f) and getattr(f, "__defaults__", None)
                 and any(isinstance(d, dist.ProcessGroup) for d in f.__defaults__))
    with open(report, "w") as f:
        json.dump({"rank": dist_rank(), "group_freed": world() is None,
                   "functions_pinning_group": pinned, "threads": native_threads(),
                   "torch": torch.__version__}, f)


def dist_rank():
    return int(os.environ["RANK"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_round(import_before, timeout):
    """Start 2 ranks; their exit codes, whether one printed the terminate message, their reports."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                   WORLD_SIZE="2", OMP_NUM_THREADS="1")
        cmd = [sys.executable, __file__, "--rank-report", tmp]
        if import_before:
            cmd.append("--import-before")
        procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for r in range(2)]
        logs = []
        for proc in procs:
            try:
                logs.append(proc.communicate(timeout=timeout)[0])
            except subprocess.TimeoutExpired:
                proc.kill()
                logs.append(proc.communicate()[0])
        reports = []
        for r in range(2):
            path = os.path.join(tmp, f"rank{r}.json")
            reports.append(json.load(open(path)) if os.path.exists(path) else None)
    return ([p.returncode for p in procs],
            ["terminate called without an active exception" in log for log in logs], reports)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--import-before", action="store_true",
                        help="import torch.distributed.nn before init_process_group")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--rank-report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_report:
        rank_main(args.import_before,
                  os.path.join(args.rank_report, f"rank{os.environ['RANK']}.json"))
        return
    start = time.perf_counter()
    aborts = failed = 0
    threads, freed, pinned = {}, [], []
    for _ in range(args.rounds):
        rcs, terminated, reports = one_round(args.import_before, args.timeout)
        aborted = any(rc == -6 for rc in rcs) or any(terminated)
        aborts += aborted
        failed += any(rc != 0 for rc in rcs) and not aborted
        for rep in filter(None, reports):
            freed.append(rep["group_freed"])
            pinned.append(rep["functions_pinning_group"])
            for name in rep["threads"]:
                if name.startswith(GLOO_THREADS):
                    threads[name] = threads.get(name, 0) + 1
        if args.verbose:
            print(json.dumps({"rcs": rcs, "terminate_message": terminated, "reports": reports}))
    import torch

    print(json.dumps({
        "what": "ddp_exit_repro", "torch": torch.__version__, "import_before": args.import_before,
        "rounds": args.rounds, "aborts": aborts, "other_failures": failed,
        "ranks_group_freed": sum(freed), "ranks_reported": len(freed),
        "max_functions_pinning_group": max(pinned, default=None),
        "gloo_threads_after_destroy": threads, "seconds": round(time.perf_counter() - start, 1),
    }))


if __name__ == "__main__":
    main()
