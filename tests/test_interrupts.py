"""Ctrl-C stops a whole fit and leaves the estimator as it was; a checkpointed fit resumes exactly."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from skorch.callbacks import Callback

from .test_persist import CASES, X

ROOT = Path(__file__).resolve().parents[1]

# Enough epochs that the fit is still running when the first checkpoint appears.
LONG = {
    "DBNReconstructor": dict(pretrain_epochs=8, finetune_epochs=40),
    "ConvSDAEFeatures": dict(pretrain_epochs=15, finetune_epochs=15),
    "SDAEClassifier": dict(max_epochs=40),
    "SDAERegressor": dict(max_epochs=40),
    "KeypointRegressor": dict(max_epochs=40),
    "CenterLossEmbedder": dict(max_epochs=40),
}


# One thread: identical floating-point sums here and in the interrupted process.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(name, **params):
    factory, target, method = CASES[name]
    est = factory().set_params(**{**LONG[name], **params})
    est.fit(X) if target is None else est.fit(X, target)
    return est, method


class _InterruptAt(Callback):
    """Raise KeyboardInterrupt, as a SIGINT would, at the end of one epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


class _CountEpochs(Callback):
    def initialize(self):
        self.count = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.count += 1


class _SlowEpochs(Callback):
    """Sleeps after each epoch: on a fast machine a small fit could end between its
    first checkpoint and the signal sent when that checkpoint appears."""

    def on_epoch_end(self, net, **kwargs):
        time.sleep(0.1)


def _epochs_run(est):
    from .test_persist import _nets

    return sum(dict(net.callbacks_)["_CountEpochs"].count for net in _nets(est)
               if "_CountEpochs" in dict(net.callbacks_))


@pytest.mark.parametrize("name", sorted(LONG))
def test_fit_sigint_raises_and_leaves_estimator_unfitted(name):
    factory, target, _ = CASES[name]
    est = factory().set_params(callbacks=[_InterruptAt(2)], **LONG[name])
    with pytest.raises(KeyboardInterrupt):
        est.fit(X) if target is None else est.fit(X, target)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


def test_fit_sigint_refit_keeps_previous_model():
    est, method = _fit("ConvSDAEFeatures")
    before = est.transform(X)
    est.set_params(callbacks=[_InterruptAt(1)])
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    np.testing.assert_array_equal(est.transform(X), before)
    assert est.callbacks is not None  # parameters are left alone too


def test_fit_sigint_warm_start_keeps_previous_weights():
    factory, target, _ = CASES["CenterLossEmbedder"]
    est = factory().set_params(warm_start=True).fit(X, target)
    before = est.transform(X)
    est.set_params(callbacks=[_InterruptAt(len(est.net_.history) + 1)], max_epochs=3)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, target)
    np.testing.assert_array_equal(est.transform(X), before)


def test_early_stopping_still_ends_only_its_stage():
    from skorch.callbacks import EarlyStopping

    est, _ = _fit("ConvSDAEFeatures", callbacks=[
        EarlyStopping(monitor="train_loss", patience=1, threshold=0.99)])
    assert [len(h) for h in est.pretrain_histories_] == [2, 2]
    assert len(est.net_.history) == 2


@pytest.mark.parametrize("name", sorted(LONG))
def test_sigint_subprocess_exits_then_resume_matches_uninterrupted(name, tmp_path):
    folder = tmp_path / "checkpoint"
    code = textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(1)
        sys.path.insert(0, {str(ROOT)!r})
        from tests.test_interrupts import _SlowEpochs, _fit
        _fit({name!r}, checkpoint={str(folder)!r}, callbacks=[_SlowEpochs()])
        print("finished")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 120
    # Interrupt once the first epoch's state is written: mid-fit, whatever the machine's speed.
    while not list(folder.glob("*.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "finished" not in out, (out, err)
    assert "KeyboardInterrupt" in err
    resumed, method = _fit(name, checkpoint=str(folder), callbacks=[_CountEpochs()])
    uninterrupted, _ = _fit(name, callbacks=[_CountEpochs()])
    # Resumed from the middle: fewer epochs trained than a whole fit, but some.
    run = [_epochs_run(est) for est in (resumed, uninterrupted)]
    assert 0 < run[0] < run[1], run
    assert len(resumed.net_.history) == len(uninterrupted.net_.history)
    np.testing.assert_array_equal(getattr(resumed, method)(X), getattr(uninterrupted, method)(X))


def test_checkpoint_of_other_data_refused(tmp_path):
    _fit("DBNReconstructor", checkpoint=str(tmp_path))
    factory, _, _ = CASES["DBNReconstructor"]
    with pytest.raises(ValueError, match="other data or other parameters"):
        factory().set_params(checkpoint=str(tmp_path), **LONG["DBNReconstructor"]).fit(X[:-1])


def test_checkpoint_manifest_written_whole_by_main_process_only(tmp_path):
    from skface.estimators._checkpoint import StageCheckpoints
    from skface.parallel._distributed import _CURRENT, ProcessGroup

    # Rank 1 of a data-parallel fit: reads the folder, never writes the manifest
    # (rank 0 writes it at the same moment; a torn manifest read as another fit's).
    token = _CURRENT.set(ProcessGroup(1, 2, "gloo"))
    try:
        StageCheckpoints(tmp_path / "fit", "abc")
    finally:
        _CURRENT.reset(token)
    assert list((tmp_path / "fit").iterdir()) == []
    StageCheckpoints(tmp_path / "fit", "abc")  # one process, or rank 0
    assert [p.name for p in (tmp_path / "fit").iterdir()] == ["manifest.json"]  # no partial left
    StageCheckpoints(tmp_path / "fit", "abc")  # the same fit again: accepted
    with pytest.raises(ValueError, match="other data or other parameters"):
        StageCheckpoints(tmp_path / "fit", "abd")
