"""Checkpoints load on the CPU and resume on any kind of device, saying when not bit for bit."""

import warnings

import numpy as np
import pytest
import torch

from skface.estimators import _checkpoint
from skface.estimators._checkpoint import StageCheckpoints, _set_rng_states, saved_device

from . import test_interrupts
from .test_interrupts import CASES, LONG, X, _InterruptAt

sigint_raises = test_interrupts.sigint_raises  # Ctrl-C raises even in a background run

pytestmark = pytest.mark.usefixtures("one_torch_thread", "sigint_raises")

NAME = "CenterLossEmbedder"  # one stage, a device generator (augmentation), a loss state


@pytest.fixture
def every_epoch(monkeypatch):
    """Write a checkpoint after every epoch (by default at most every 10 s)."""
    monkeypatch.setattr(_checkpoint, "WRITE_EVERY_S", 0.0)
    monkeypatch.setattr(_checkpoint, "WRITE_SHARE", float("inf"))


def _estimator(name=NAME, **params):
    factory, target, method = CASES[name]
    return factory().set_params(**{**LONG[name], **params}), target, method


def _interrupted(folder, name=NAME, epoch=3):
    """A checkpoint folder left by a fit interrupted (SIGINT) at the end of ``epoch``."""
    est, target, _ = _estimator(name, checkpoint=str(folder), callbacks=[_InterruptAt(epoch)])
    with pytest.raises(KeyboardInterrupt):
        est.fit(X) if target is None else est.fit(X, target)


def _as_if_written_on_cuda(path):
    """Rewrite a CPU checkpoint's random states as a CUDA fit's would be."""
    state = torch.load(path, weights_only=True)
    rng = state["rng"]
    rng["cuda"] = torch.zeros(16, dtype=torch.uint8)  # a Philox state: seed and offset
    rng["generator_"] = torch.arange(16, dtype=torch.uint8)
    rng["devices"]["generator_"] = "cuda"
    state["device"] = "cuda"
    torch.save(state, path)


def _resume(folder, name=NAME):
    est, target, method = _estimator(name, checkpoint=str(folder))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X) if target is None else est.fit(X, target)
    return est, method, [str(w.message) for w in caught]


def test_checkpoint_records_device_kind_and_generator_kinds(tmp_path, every_epoch):
    _interrupted(tmp_path)
    state = torch.load(tmp_path / "train.pt", weights_only=True)
    assert state["device"] == "cpu" and saved_device(state) == "cpu"
    assert state["rng"]["devices"] == {"shuffle_generator_": "cpu", "generator_": "cpu"}


def test_checkpoint_load_for_cuda_fit_gives_cpu_tensors(tmp_path, every_epoch):
    # The old code loaded with map_location=<the net's device>: on a machine without
    # CUDA (and onto torch.set_rng_state on one with it) that failed.
    _interrupted(tmp_path)
    checkpoints = StageCheckpoints(tmp_path, _fingerprint(tmp_path))
    with pytest.warns(UserWarning, match="written on cpu and the fit resumes on cuda"):
        state = checkpoints.load("train", "cuda")
    assert state is not None and state["epochs"] == 2  # the interrupted epoch is not saved
    tensors = [state["rng"]["torch"], *state["module"].values()]
    assert {t.device.type for t in tensors} == {"cpu"}


def _fingerprint(folder):
    import json

    return json.loads((folder / "manifest.json").read_text())["fingerprint"]


def test_resume_cuda_checkpoint_on_cpu_warns_and_finishes_fitted(tmp_path, every_epoch):
    _interrupted(tmp_path)
    _as_if_written_on_cuda(tmp_path / "train.pt")
    est, method, messages = _resume(tmp_path)
    device_warnings = [m for m in messages if "written on cuda" in m]
    assert len(device_warnings) == 1, messages
    assert "not bit-identical to an uninterrupted one on cpu" in device_warnings[0]
    assert str(tmp_path / "train.pt") in device_warnings[0]
    assert len(est.net_.history) == LONG[NAME]["max_epochs"]
    out = getattr(est, method)(X)
    assert np.isfinite(out).all()
    # Deterministic all the same: the re-seeded stream comes from the seed and epoch.
    again, _, _ = _resume(tmp_path)
    np.testing.assert_array_equal(getattr(again, method)(X), out)


def test_resume_same_device_kind_does_not_warn_and_matches_uninterrupted(tmp_path,
                                                                         every_epoch):
    _interrupted(tmp_path)
    est, method, messages = _resume(tmp_path)
    assert not [m for m in messages if "written on" in m], messages
    plain, target, _ = _estimator()
    plain.fit(X, target)
    np.testing.assert_array_equal(getattr(est, method)(X), getattr(plain, method)(X))


def test_resume_checkpoint_without_recorded_device_infers_it_from_states(tmp_path,
                                                                         every_epoch):
    # Checkpoints written before the device was recorded: the states' sizes tell.
    _interrupted(tmp_path)
    path = tmp_path / "train.pt"
    state = torch.load(path, weights_only=True)
    del state["device"], state["rng"]["devices"]
    assert saved_device(state) == "cpu"
    state["rng"]["generator_"] = torch.zeros(16, dtype=torch.uint8)
    assert saved_device(state) == "cuda"
    torch.save(state, path)
    est, _, messages = _resume(tmp_path)
    assert [m for m in messages if "written on cuda" in m]
    assert len(est.net_.history) == LONG[NAME]["max_epochs"]


def test_resume_multistage_dbn_cuda_checkpoint_on_cpu_warns_once(tmp_path, every_epoch):
    # A persistent-CD chain and three stages; the warning comes once per fit.
    _interrupted(tmp_path, "DBNReconstructor", epoch=4)
    for path in tmp_path.glob("*.pt"):
        _as_if_written_on_cuda(path)
    est, method, messages = _resume(tmp_path, "DBNReconstructor")
    assert len([m for m in messages if "written on cuda" in m]) == 1, messages
    assert np.isfinite(getattr(est, method)(X)).all()


class _FakeCudaGenerator:
    """Stands in for a CUDA generator on a machine without CUDA."""

    device = torch.device("cuda")

    def __init__(self):
        self.seeds, self.states = [], []

    def manual_seed(self, seed):
        self.seeds.append(seed)
        return self

    def set_state(self, state):
        self.states.append(state)


class _Net:
    device = "cpu"  # the global CUDA state is not touched on a CPU net
    seed = 7


def test_set_rng_states_cpu_state_never_set_on_cuda_generator():
    net = _Net()
    net.shuffle_generator_ = torch.Generator().manual_seed(1)
    net.generator_ = _FakeCudaGenerator()
    cpu = torch.Generator().manual_seed(2)
    state = {"epochs": 5, "rng": {
        "torch": torch.get_rng_state(), "shuffle_generator_": cpu.get_state(),
        "generator_": cpu.get_state(),
        "devices": {"shuffle_generator_": "cpu", "generator_": "cpu"}}}
    assert _set_rng_states(net, state) == ["generator_"]
    assert net.generator_.states == [] and len(net.generator_.seeds) == 1
    # The CPU shuffle generator carries over exactly.
    assert torch.equal(net.shuffle_generator_.get_state(), cpu.get_state())
    # The re-seed depends on the seed and the epoch only.
    other = _Net()
    other.generator_ = _FakeCudaGenerator()
    _set_rng_states(other, state)
    assert other.generator_.seeds == net.generator_.seeds
    _set_rng_states(other, {**state, "epochs": 6})
    assert other.generator_.seeds[1] != net.generator_.seeds[0]


@pytest.mark.gpu
@pytest.mark.parametrize("first, then", [("cpu", "cuda"), ("cuda", "cpu")])
def test_resume_across_devices_on_cuda_warns_and_finishes(tmp_path, every_epoch, first, then):
    est, target, method = _estimator(checkpoint=str(tmp_path), device=first,
                                     callbacks=[_InterruptAt(3)])
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, target)
    assert saved_device(torch.load(tmp_path / "train.pt", weights_only=True)) == first
    est, _, _ = _estimator(checkpoint=str(tmp_path), device=then)
    with pytest.warns(UserWarning, match=f"written on {first} and the fit resumes on {then}"):
        est.fit(X, target)
    assert len(est.net_.history) == LONG[NAME]["max_epochs"]
    assert np.isfinite(getattr(est, method)(X)).all()
