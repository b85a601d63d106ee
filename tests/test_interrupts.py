"""Ctrl-C stops a whole fit and leaves the estimator as it was; a checkpointed fit resumes exactly."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skface.estimators import _checkpoint

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
pytestmark = pytest.mark.usefixtures("one_torch_thread", "sigint_raises")


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt, even in a test run that inherited it ignored.

    A run started in the background by a script or under nohup ignores
    SIGINT, and skface leaves an ignored SIGINT alone (as it should): the
    interrupt tests would see no interrupt.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_sigint():
    """``preexec_fn`` of a subprocess that must die of SIGINT: not an inherited SIG_IGN."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        from skface.estimators import _checkpoint
        from tests.test_interrupts import _SlowEpochs, _fit
        _checkpoint.WRITE_EVERY_S = 0.0  # a checkpoint early, mid-stage
        _fit({name!r}, checkpoint={str(folder)!r}, callbacks=[_SlowEpochs()])
        print("finished")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=_default_sigint)
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


@pytest.fixture
def every_epoch(monkeypatch):
    """Write a checkpoint after every epoch (by default at most every 10 s)."""
    monkeypatch.setattr(_checkpoint, "WRITE_EVERY_S", 0.0)
    monkeypatch.setattr(_checkpoint, "WRITE_SHARE", float("inf"))


def test_sigint_ignored_subprocess_survives_sigint_and_finishes(tmp_path):
    # A job started in the background by a script (or nohup) inherits SIGINT
    # ignored; the fit must not put a handler back and die of a Ctrl-C meant for
    # the foreground.
    started = tmp_path / "started"
    code = textwrap.dedent(f"""
        import sys, torch, pathlib
        torch.set_num_threads(1)
        sys.path.insert(0, {str(ROOT)!r})
        from skorch.callbacks import Callback
        from tests.test_interrupts import _SlowEpochs, _fit

        class Started(Callback):
            def on_epoch_end(self, net, **kwargs):
                pathlib.Path({str(started)!r}).touch()

        _fit("CenterLossEmbedder", callbacks=[Started(), _SlowEpochs()])
        print("finished")
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()  # still training
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "finished" in out, (out, err)


def test_sigint_guard_sig_ign_left_in_place():
    from skface.estimators._checkpoint import sigint_guard

    class Net:
        pass

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigint_guard(Net()):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def _stage_files(tmp_path):
    _fit("DBNReconstructor", checkpoint=str(tmp_path / "fit"))
    return tmp_path / "fit"


def test_checkpoint_folder_without_manifest_refused(tmp_path):
    # Another fit's stage files, its manifest gone: loading them gave a model
    # equal to neither fit.
    folder = _stage_files(tmp_path)
    (folder / "manifest.json").unlink()
    factory, _, _ = CASES["DBNReconstructor"]
    with pytest.raises(ValueError, match=r"holds stage files \(finetune.pt, rbm0.pt, rbm1.pt\) "
                                         r"but no manifest.json.*Delete the folder"):
        factory().set_params(checkpoint=str(folder), **LONG["DBNReconstructor"]).fit(X[:-1])


def test_checkpoint_folder_of_other_files_without_manifest_accepted(tmp_path):
    from skface.estimators._checkpoint import StageCheckpoints

    (tmp_path / "notes.txt").write_text("not a checkpoint")
    StageCheckpoints(tmp_path, "abc")
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"fingerprint": "abc"}


@pytest.mark.parametrize("text", [b"", b"{", b"[]", b"{}", b'{"fingerprint": 3}', b"\xff\xfe"])
def test_checkpoint_damaged_manifest_reported_damaged_not_other_data(tmp_path, text):
    from skface.estimators._checkpoint import StageCheckpoints

    (tmp_path / "manifest.json").write_bytes(text)
    with pytest.raises(ValueError, match="has a damaged manifest") as info:
        StageCheckpoints(tmp_path, "abc")
    assert "other data" not in str(info.value)


def _saves_then(exc, monkeypatch):
    """torch.save writes part of the file, then raises ``exc`` (Ctrl-C, a full disk)."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 part of a zip")
        raise exc

    monkeypatch.setattr(torch, "save", save)
    return real


def test_checkpoint_write_interrupted_leaves_previous_file_and_no_partial(tmp_path, monkeypatch):
    from skface.estimators._checkpoint import StageCheckpoints, _save

    folder = tmp_path / "fit"
    checkpoints = StageCheckpoints(folder, "abc")
    _save({"epochs": 1}, checkpoints.path("train"))
    before = (folder / "train.pt").read_bytes()
    _saves_then(KeyboardInterrupt(), monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.write({"epochs": 2}, checkpoints.path("train"))
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "train.pt"]
    assert (folder / "train.pt").read_bytes() == before


def test_checkpoint_write_disk_full_warns_once_keeps_previous_and_training(tmp_path, monkeypatch,
                                                                            every_epoch):
    folder = tmp_path / "fit"
    with pytest.raises(KeyboardInterrupt):
        _fit("CenterLossEmbedder", checkpoint=str(folder), callbacks=[_InterruptAt(3)])
    before = (folder / "train.pt").read_bytes()

    def full(self, data):  # the disk fills up: every write of a checkpoint fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_checkpoint._Recorded, "write", full)
    with pytest.warns(UserWarning) as caught:
        est, _ = _fit("CenterLossEmbedder", checkpoint=str(folder))
    lines = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert len(lines) == 1, lines  # once, not once per epoch
    assert lines[0] == (f"Could not write the checkpoint {folder / 'train.pt'}: the disk is "
                        "full (or a file-size limit was reached); the previous file is "
                        "unchanged. Training goes on without checkpoints.")
    assert len(est.net_.history) == LONG["CenterLossEmbedder"]["max_epochs"]  # trained, fitted
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "train.pt"]
    assert (folder / "train.pt").read_bytes() == before  # still resumes


def test_checkpoint_write_file_size_limit_subprocess_one_line_fit_finishes(tmp_path):
    # A real failed write (ulimit -f): torch.save alone says only "enforce fail at
    # inline_container.cc"; the user sees one line naming the file.
    folder = tmp_path / "fit"
    code = textwrap.dedent(f"""
        import resource, sys, torch
        torch.set_num_threads(1)
        sys.path.insert(0, {str(ROOT)!r})
        from tests.test_interrupts import _fit
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the manifest fits
        est, method = _fit("CenterLossEmbedder", checkpoint={str(folder)!r}, max_epochs=3)
        print("finished", len(est.net_.history))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "finished 3" in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "checkpoint" in line]
    assert len(lines) == 1, proc.stderr
    assert f"Could not write the checkpoint {folder / 'train.pt'}: the disk is full" in lines[0]
    assert "Traceback" not in proc.stderr and "inline_container" not in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]


def test_checkpoint_small_fit_written_at_stage_ends_only(tmp_path, monkeypatch):
    # Writing after every epoch made small fits 2-11 times slower: a stage shorter
    # than WRITE_EVERY_S is written once, when it ends.
    written = []
    real = _checkpoint._save
    monkeypatch.setattr(_checkpoint, "_save",
                        lambda state, path: (written.append((path.name, state["done"])),
                                             real(state, path)))
    _fit("DBNReconstructor", checkpoint=str(tmp_path))
    assert written == [("rbm0.pt", True), ("rbm1.pt", True), ("finetune.pt", True)]
