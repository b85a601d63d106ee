"""Reproducibility: the same data, parameters and random_state give the same model whatever
the machine's load and whatever the memory layout of the pixels."""

import contextlib

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skface import parallel
from skface.estimators import CenterLossEmbedder, ConvSDAEFeatures
from skface.parallel import _threads

RNG = np.random.RandomState(0)
# Grey 24x24 "faces": a blob at a person-specific place, plus noise.
_N, _SIDE = 96, 24
_PEOPLE = np.arange(_N) % 4
_yy, _xx = np.mgrid[:_SIDE, :_SIDE]
GREY = np.stack([
    np.exp(-((_yy - 8 - 3 * (p % 2)) ** 2 + (_xx - 8 - 3 * (p // 2)) ** 2) / 20.0)
    for p in _PEOPLE
]).astype(np.float32) + RNG.rand(_N, _SIDE, _SIDE).astype(np.float32) * 0.3


class _ThreadLog(Callback):
    """Records torch's intra-op thread count at every training batch."""

    def __init__(self, log):
        self.log = log

    def __deepcopy__(self, memo):
        return self  # estimators copy the user's callbacks: keep writing to this log

    def on_batch_begin(self, net, **kwargs):
        self.log.append(torch.get_num_threads())


def _sdae(log=None):
    # Two greedy layers and a joint stage: three training stages, each entering the
    # thread rule anew.
    return ConvSDAEFeatures((8, 16), pretrain_epochs=2, finetune_epochs=1, batch_size=16,
                            random_state=0, verbose=0, device="cpu",
                            callbacks=None if log is None else [_ThreadLog(log)])


def _embedder():
    return CenterLossEmbedder("small_cnn", backbone_params={"width": 4}, embedding_dim=8,
                              crop_size=20, max_epochs=2, batch_size=16, random_state=0,
                              verbose=0, device="cpu")


@contextlib.contextmanager
def _two_core_machine(monkeypatch, busy_after):
    """A process that may use both cores of a 2-core machine, torch at 2 threads.

    The kernel's count of other running threads (the ``/proc/stat`` reader) reads
    0 for the first ``busy_after`` readings, then 1 (None: always 0): another
    process starts in the middle of the fit.
    """
    for var in (_threads.ENV_VAR, _threads.POLICY_VAR, *_threads._INHERITED_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_threads, "_CGROUP_V2", "/nonexistent/cpu.max")
    monkeypatch.setattr(_threads, "_CGROUP_V1", ("/nonexistent/q", "/nonexistent/p"))
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_threads, "_READING_TTL_S", 0.0)  # every decision reads anew
    readings = []

    def read_running(samples, pause):
        readings.append(None)
        return 0 if busy_after is None or len(readings) <= busy_after else 1

    monkeypatch.setattr(_threads, "_read_running", read_running)
    monkeypatch.setattr(_threads, "_LAST_READING", [None])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield readings
    finally:
        torch.set_num_threads(before)


def _weights(est):
    return np.concatenate([p.detach().numpy().ravel() for p in est.net_.module_.parameters()])


def test_fit_competitor_starting_mid_fit_gives_bit_identical_model(monkeypatch):
    with _two_core_machine(monkeypatch, busy_after=None):
        quiet_log = []
        quiet = _sdae(quiet_log).fit(GREY)
        quiet_features = quiet.transform(GREY)
    with _two_core_machine(monkeypatch, busy_after=2):
        busy_log = []
        busy = _sdae(busy_log).fit(GREY)  # busy from the second stage on
        busy_features = busy.transform(GREY)
        assert torch.get_num_threads() == 2
    assert np.abs(_weights(busy) - _weights(quiet)).max() == 0.0
    assert np.abs(busy_features - quiet_features).max() == 0.0
    # The count stays the process's own all through the fit, load or not.
    assert set(quiet_log) == set(busy_log) == {2}


def test_transform_busy_machine_keeps_thread_count_and_features(monkeypatch):
    with _two_core_machine(monkeypatch, busy_after=None):
        est = _sdae().fit(GREY)
        quiet = est.transform(GREY)
    threads = []
    # Every module call of the transform, whichever part of the net it runs.
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: threads.append(torch.get_num_threads()))
    try:
        with _two_core_machine(monkeypatch, busy_after=0):
            busy = est.transform(GREY)
    finally:
        hook.remove()
    assert np.abs(busy - quiet).max() == 0.0
    assert threads and set(threads) == {2}


def test_fit_adaptive_policy_follows_the_load(monkeypatch):
    # The opt-in: fewer threads while another process is busy (and results may change).
    with _two_core_machine(monkeypatch, busy_after=2), parallel.thread_policy("adaptive"):
        log = []
        _sdae(log).fit(GREY)
    assert log[0] == 2 and log[-1] == 1


def test_fit_inside_torch_threads_block_keeps_the_users_count(monkeypatch):
    with _two_core_machine(monkeypatch, busy_after=0), parallel.torch_threads(1):
        log = []
        _sdae(log).fit(GREY)
    assert set(log) == {1}


def _layouts(X):
    """The same pixels in the memory layouts a caller may hand over."""
    n, height, width = X.shape
    big = np.zeros((n, height + 3, width + 5), X.dtype)
    big[:, 1:1 + height, 2:2 + width] = X
    return {
        "strided view": big[:, 1:1 + height, 2:2 + width],
        "Fortran order": np.asfortranarray(X),
        "transposed view": np.ascontiguousarray(X.transpose(0, 2, 1)).transpose(0, 2, 1),
        "channels-last (n, H, W, 1)": X[..., None].copy(),
        "channels-last view of NCHW": X[:, None].copy().transpose(0, 2, 3, 1),
    }


@pytest.mark.parametrize("make, needs_y", [(_embedder, True), (_sdae, False)],
                         ids=["CenterLossEmbedder", "ConvSDAEFeatures"])
def test_memory_layout_of_the_pixels_changes_no_result(make, needs_y):
    args = (_PEOPLE,) if needs_y else ()
    X = np.ascontiguousarray(GREY)
    with parallel.torch_threads(1):
        ref = make().fit(X, *args)
        features = ref.transform(X)
        for name, other in _layouts(X).items():
            assert np.array_equal(np.asarray(other).reshape(X.shape), X)
            assert np.abs(ref.transform(other) - features).max() == 0.0, name
            refit = make().fit(other, *args)
            assert np.abs(_weights(refit) - _weights(ref)).max() == 0.0, name


def test_memory_layout_of_uint8_pixels_changes_no_result():
    X = np.ascontiguousarray((GREY * 200).astype(np.uint8))
    with parallel.torch_threads(1):
        ref = _embedder().fit(X, _PEOPLE)
        features = ref.transform(X)
        for name, other in _layouts(X).items():
            assert np.abs(ref.transform(other) - features).max() == 0.0, name
            refit = _embedder().fit(other, _PEOPLE)
            assert np.abs(_weights(refit) - _weights(ref)).max() == 0.0, name


@pytest.mark.parametrize("make", [
    lambda t: t.as_strided(t.shape, (576, 1, 24, 1)),           # a grey view of (n, H, W)
    lambda t: t.contiguous(memory_format=torch.channels_last),  # ambiguous for one channel
    lambda t: t.repeat(1, 3, 1, 1).contiguous(memory_format=torch.channels_last),
    lambda t: t.repeat(1, 3, 1, 1)[:, 1:2],                    # one channel of an RGB batch
])
def test_standard_layout_cpu_gives_the_strides_of_a_new_tensor(make):
    from skface.estimators._stream import convert_images, standard_layout

    x = make(torch.from_numpy(GREY.copy()).reshape(_N, 1, _SIDE, _SIDE).clone())
    settled = standard_layout(x)
    assert settled.stride() == torch.empty(x.shape).stride()
    assert torch.equal(settled, x)
    for channels in (1, 3):
        assert convert_images(x, channels=channels).stride() == \
            torch.empty(_N, channels, _SIDE, _SIDE).stride()
