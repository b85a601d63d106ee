"""Ctrl-C 2 s into each estimator's fit, in a subprocess; then the resumed fit against an uninterrupted one.

Per estimator (the small configurations of ``tests/test_interrupts.py`` with ten times
the epochs,
32 random 16x16 RGB images, one torch thread everywhere): a subprocess
starts a checkpointed fit and gets SIGINT 2 s after it prints that the fit
began; the row says how it exited, how many epochs its checkpoint held,
and the largest difference between the outputs of the fit resumed from that
checkpoint and of an uninterrupted fit in this process.
"""

import json
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


def main():
    import torch

    from tests.test_interrupts import LONG, _CountEpochs, _epochs_run, _fit
    from tests.test_persist import X

    torch.set_num_threads(1)
    for name in sorted(LONG):
        folder = Path(tempfile.mkdtemp(prefix="skface-interrupt-")) / "checkpoint"
        # Ten times the tests' epochs: long enough to be running 2 s in.
        epochs = {key: 10 * value for key, value in LONG[name].items()}
        code = textwrap.dedent(f"""
            import sys, torch
            torch.set_num_threads(1)
            sys.path.insert(0, {str(ROOT)!r})
            from tests.test_interrupts import _fit
            print("fit started", flush=True)
            _fit({name!r}, checkpoint={str(folder)!r}, **{json.dumps(epochs)})
            print("finished", flush=True)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
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
