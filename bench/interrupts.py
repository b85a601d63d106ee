"""Ctrl-C 2 s into each estimator's fit, in a subprocess; then the resumed fit against an uninterrupted one.

``--partials N``: N Ctrl-Cs at seeded random moments of one checkpointed
KeypointRegressor fit (each run resumes the last), then the ``*.partial``
files left in its folder (``--every-epoch``: a checkpoint after every epoch,
as before checkpoints were written at most every 10 s: the most writes for a
Ctrl-C to land in; ``--aim``: each Ctrl-C sent the moment a partial file
appears, i.e. during a checkpoint's write). ``--overhead``: the DBN of the tests (10x their epochs)
fitted with and without a checkpoint folder, best of 3, and the ratio.

Per estimator (the small configurations of ``tests/test_interrupts.py`` with ten times
the epochs,
32 random 16x16 RGB images, one torch thread everywhere): a subprocess
starts a checkpointed fit and gets SIGINT 2 s after it prints that the fit
began; the row says how it exited, how many epochs its checkpoint held,
and the largest difference between the outputs of the fit resumed from that
checkpoint and of an uninterrupted fit in this process.
"""

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import emit  # noqa: E402


def _child(name, folder, epochs, every_epoch):
    """A subprocess that fits ``name`` with a checkpoint folder and says when it starts."""
    code = textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(1)
        sys.path.insert(0, {str(ROOT)!r})
        from skface.estimators import _checkpoint
        if {every_epoch!r}:
            _checkpoint.WRITE_EVERY_S, _checkpoint.WRITE_SHARE = 0.0, float("inf")
        from tests.test_interrupts import _fit
        print("fit started", flush=True)
        _fit({name!r}, checkpoint={str(folder)!r}, **{json.dumps(epochs)})
        print("finished", flush=True)
    """)
    # SIGINT as in a terminal, even when this bench runs in the background (SIG_IGN).
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_partial(folder, timeout):
    """Until a new ``*.partial`` file is in ``folder`` (a write in progress); whether one was."""
    old = set(folder.rglob("*.partial")) if folder.exists() else set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.exists() and set(folder.rglob("*.partial")) - old:
            return True
        time.sleep(0.0005)
    return False


def partials(n, every_epoch, aim):
    from tests.test_interrupts import LONG

    name = "KeypointRegressor"
    epochs = {key: 10 * value for key, value in LONG[name].items()}
    folder = Path(tempfile.mkdtemp(prefix="skface-partials-")) / "checkpoint"
    rng = random.Random(0)
    codes, hits, finished = [], [], []
    for _ in range(n):
        proc = _child(name, folder, epochs, every_epoch)
        proc.stdout.readline()
        delay = rng.uniform(0.5, 4.0)
        hit = _wait_for_partial(folder, 60.0) if aim else time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
        codes.append(proc.returncode)
        hits.append(bool(hit))
        finished.append("finished" in out)
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.partial"))
    emit("interrupts", f"{name} .partial files after {n} Ctrl-C", len(left), "files",
         device="cpu", config={"every_epoch": every_epoch, "aim": aim,
                               "sent_during_a_write": hits, "finished": finished,
                               "returncodes": codes,
                               "partial_files": left, "skface": str(ROOT / "skface"),
                               "params": json.dumps(epochs)})


def overhead():
    import shutil

    from tests.test_interrupts import LONG, _fit

    name = "DBNReconstructor"
    epochs = {key: 10 * value for key, value in LONG[name].items()}
    times = {"plain": [], "checkpoint": []}
    for _ in range(3):
        start = time.perf_counter()
        _fit(name, **epochs)
        times["plain"].append(time.perf_counter() - start)
        folder = Path(tempfile.mkdtemp(prefix="skface-overhead-"))
        start = time.perf_counter()
        _fit(name, checkpoint=str(folder / "checkpoint"), **epochs)
        times["checkpoint"].append(time.perf_counter() - start)
        shutil.rmtree(folder)
    plain, checkpointed = min(times["plain"]), min(times["checkpoint"])
    emit("interrupts", f"{name} fit with a checkpoint folder", round(checkpointed, 3), "s",
         baseline=round(plain, 3), device="cpu",
         config={"params": json.dumps(epochs), "times_s": times,
                 "skface": str(ROOT / "skface")})


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partials", type=int, default=0, metavar="N")
    parser.add_argument("--every-epoch", action="store_true")
    parser.add_argument("--aim", action="store_true")
    parser.add_argument("--overhead", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.partials:
        return partials(args.partials, args.every_epoch, args.aim)
    if args.overhead:
        return overhead()

    from tests.test_interrupts import LONG, _CountEpochs, _epochs_run, _fit
    from tests.test_persist import X

    for name in sorted(LONG):
        folder = Path(tempfile.mkdtemp(prefix="skface-interrupt-")) / "checkpoint"
        # Ten times the tests' epochs: long enough to be running 2 s in.
        epochs = {key: 10 * value for key, value in LONG[name].items()}
        proc = _child(name, folder, epochs, every_epoch=False)
        proc.stdout.readline()  # "fit started": the imports are done
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        saved = {}
        for path in sorted(folder.rglob("*.pt")):
            state = torch.load(path, weights_only=True)
            saved[str(path.relative_to(folder).with_suffix(""))] = (state["epochs"], state["done"])
        start = time.perf_counter()
        resumed, method = _fit(name, checkpoint=str(folder), callbacks=[_CountEpochs()],
                               **epochs)
        resume_s = time.perf_counter() - start
        start = time.perf_counter()
        plain, _ = _fit(name, callbacks=[_CountEpochs()], **epochs)
        plain_s = time.perf_counter() - start
        diff = float(np.abs(getattr(resumed, method)(X) - getattr(plain, method)(X)).max())
        emit("interrupts", f"{name} resumed vs uninterrupted max_abs_diff", diff, "abs",
             device="cpu", config={
                 "sigint_after_s": 2.0, "returncode": proc.returncode,
                 "keyboard_interrupt_in_stderr": "KeyboardInterrupt" in err,
                 "finished_before_signal": "finished" in out,
                 "checkpoint_epochs_done": {k: list(v) for k, v in saved.items()},
                 "epochs_run_resumed": _epochs_run(resumed),
                 "epochs_run_uninterrupted": _epochs_run(plain),
                 "resume_s": round(resume_s, 2), "uninterrupted_s": round(plain_s, 2),
                 "params": json.dumps(epochs),
             })


if __name__ == "__main__":
    main()
