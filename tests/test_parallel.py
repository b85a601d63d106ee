"""skface.parallel: the thread rule, and grid searches on a local Dask cluster matching n_jobs=1."""

import contextlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skface import parallel
from skface.parallel import _threads


def _requires_distributed():
    pytest.importorskip("dask", reason='dask is not installed: pip install "skface[distributed]"')
    return pytest.importorskip(
        "distributed", reason='dask.distributed is not installed: pip install "skface[distributed]"'
    )


@pytest.fixture
def no_limits(monkeypatch):
    """No override, no inherited limit, no cgroup quota: only the rule under test applies."""
    for var in (_threads.ENV_VAR, _threads.POLICY_VAR, *_threads._INHERITED_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_threads, "_CGROUP_V2", "/nonexistent/cpu.max")
    monkeypatch.setattr(_threads, "_CGROUP_V1", ("/nonexistent/q", "/nonexistent/p"))
    monkeypatch.setattr(_threads, "_PROC_STAT", "/nonexistent/stat")  # no load reading
    return monkeypatch


# -- the thread rule ---------------------------------------------------------------------


def test_worker_threads_env_override_wins(no_limits):
    no_limits.setenv("SKFACE_NUM_THREADS", "3")
    no_limits.setenv("OMP_NUM_THREADS", "1")
    no_limits.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert parallel.worker_threads() == 3


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_worker_threads_bad_override_raises_naming_the_variable(no_limits, value):
    no_limits.setenv("SKFACE_NUM_THREADS", value)
    with pytest.raises(ValueError, match="SKFACE_NUM_THREADS"):
        parallel.worker_threads()


def test_worker_threads_inherited_omp_limit_is_used(no_limits):
    # What joblib's loky backend hands each worker: cpu_count() // n_jobs.
    no_limits.setenv("OMP_NUM_THREADS", "2")
    no_limits.setenv("MKL_NUM_THREADS", "4")
    no_limits.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert parallel.worker_threads() == 2


def test_worker_threads_affinity_only_counts_allowed_cores(no_limits):
    no_limits.setattr(os, "sched_getaffinity", lambda pid: {2, 5, 7}, raising=False)
    assert parallel.worker_threads() == 3


@pytest.mark.parametrize("cpu_max, expected", [("150000 100000\n", 2), ("100000 100000", 1),
                                               ("max 100000\n", 6)])
def test_worker_threads_cgroup_quota_caps_affinity(no_limits, tmp_path, cpu_max, expected):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    no_limits.setattr(_threads, "_CGROUP_V2", str(path))
    no_limits.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    assert parallel.worker_threads() == expected


def test_worker_threads_cgroup_v1_quota_caps_affinity(no_limits, tmp_path):
    (tmp_path / "q").write_text("300000\n")
    (tmp_path / "p").write_text("100000\n")
    no_limits.setattr(_threads, "_CGROUP_V1", (str(tmp_path / "q"), str(tmp_path / "p")))
    no_limits.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert parallel.worker_threads() == 3


def test_worker_threads_no_affinity_call_falls_back_to_cpu_count(no_limits):
    no_limits.delattr(os, "sched_getaffinity", raising=False)
    no_limits.setattr(os, "cpu_count", lambda: 5)
    assert parallel.worker_threads() == 5


def test_torch_threads_block_sets_then_restores():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with parallel.torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_torch_threads_decorator_follows_worker_threads(no_limits):
    torch = pytest.importorskip("torch")
    no_limits.setenv("SKFACE_NUM_THREADS", "1")

    @parallel.torch_threads()
    def fit():
        return torch.get_num_threads()

    before = torch.get_num_threads()
    assert fit() == 1 and fit() == 1
    assert torch.get_num_threads() == before


def test_fit_threads_main_process_leaves_torch_alone(no_limits):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the user's own choice: a hook in fit must keep it
    try:
        with parallel.fit_threads() as n:
            assert n is None and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _torch_at(n):
    """torch at ``n`` threads for a block, then back to what it was."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield torch
    finally:
        torch.set_num_threads(before)


def _whole_machine(monkeypatch, cores, busy):
    """A process that may use all ``cores`` of the machine, with ``busy`` others running."""
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: set(range(cores)),
                        raising=False)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(_threads, "_running_elsewhere", lambda: busy)


def test_running_elsewhere_smallest_reading_less_own_threads(no_limits, tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\nprocs_running 3\nprocs_blocked 0\n")
    no_limits.setattr(_threads, "_PROC_STAT", str(stat))
    no_limits.setattr(_threads, "_own_running", lambda: 1)
    assert _threads._read_running(samples=2, pause=0) == 2
    assert _threads._running_elsewhere() == 2
    stat.write_text("procs_running 1\n")
    assert _threads._running_elsewhere() == 2  # reused for half a second
    no_limits.setattr(_threads, "_PROC_STAT", str(tmp_path / "missing"))
    assert _threads._running_elsewhere() is None
    no_limits.setattr(_threads, "_PROC_STAT", str(stat))
    no_limits.setattr(_threads, "_own_running", lambda: 3)  # torch's workers still spinning
    _threads._LAST_READING[0] = None
    assert _threads._running_elsewhere() == 0


def test_own_running_counts_this_process_threads():
    assert _threads._own_running() >= 1  # this thread, reading it


def test_free_cpus_busy_machine_leaves_the_busy_cores(no_limits):
    _whole_machine(no_limits, cores=4, busy=1)
    assert parallel.free_cpus() == 3
    _whole_machine(no_limits, cores=2, busy=5)
    assert parallel.free_cpus() == 1  # never fewer than one


def test_worker_threads_fixed_policy_ignores_the_load(no_limits):
    _whole_machine(no_limits, cores=4, busy=3)
    assert parallel.worker_threads() == 4  # the default: what the process may use


@pytest.mark.parametrize("how", ["block", "env"])
def test_worker_threads_adaptive_policy_leaves_the_busy_cores(no_limits, how):
    _whole_machine(no_limits, cores=4, busy=1)
    if how == "env":
        no_limits.setenv("SKFACE_THREAD_POLICY", " Adaptive ")
        assert parallel.worker_threads() == 3
    else:
        with parallel.thread_policy("adaptive") as policy:
            assert policy == "adaptive" and parallel.worker_threads() == 3
        assert parallel.worker_threads() == 4  # the block's policy ends with it


def test_thread_policy_unknown_name_raises_naming_both_choices(no_limits):
    with pytest.raises(ValueError, match=r"policy must be 'fixed'.*or 'adaptive'.*'busy'"):
        with parallel.thread_policy("busy"):
            pass
    no_limits.setenv("SKFACE_THREAD_POLICY", "sometimes")
    with pytest.raises(ValueError, match=r"\$SKFACE_THREAD_POLICY must be .*'sometimes'"):
        parallel.worker_threads()


def test_thread_policy_block_wins_over_environment(no_limits):
    _whole_machine(no_limits, cores=4, busy=1)
    no_limits.setenv("SKFACE_THREAD_POLICY", "adaptive")
    with parallel.thread_policy("fixed"):
        assert parallel.worker_threads() == 4


def test_free_cpus_affinity_narrower_than_machine_ignores_load(no_limits):
    _whole_machine(no_limits, cores=8, busy=6)
    no_limits.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert parallel.free_cpus() == 2  # other processes' load is on other cores


def test_fit_threads_fixed_policy_busy_machine_keeps_the_count(no_limits):
    pytest.importorskip("torch")
    _whole_machine(no_limits, cores=2, busy=1)
    with _torch_at(2) as torch:
        with parallel.fit_threads() as n:
            assert n is None and torch.get_num_threads() == 2
            _whole_machine(no_limits, cores=2, busy=0)
            with parallel.fit_threads():  # the next stage, the load gone
                assert torch.get_num_threads() == 2


def test_fit_threads_adaptive_busy_machine_lowers_then_restores(no_limits):
    pytest.importorskip("torch")
    _whole_machine(no_limits, cores=2, busy=1)
    with _torch_at(2) as torch, parallel.thread_policy("adaptive"):
        with parallel.fit_threads() as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2


def test_fit_threads_never_raises_torch_setting(no_limits):
    pytest.importorskip("torch")
    _whole_machine(no_limits, cores=4, busy=0)
    with _torch_at(1) as torch:
        with parallel.fit_threads() as n:
            assert n is None and torch.get_num_threads() == 1


def test_fit_threads_adaptive_stage_goes_back_up_when_competitor_ends(no_limits):
    pytest.importorskip("torch")
    _whole_machine(no_limits, cores=2, busy=1)
    with _torch_at(2) as torch, parallel.thread_policy("adaptive"):
        with parallel.fit_threads():
            assert torch.get_num_threads() == 1
            _whole_machine(no_limits, cores=2, busy=0)  # the other process has ended
            with parallel.fit_threads():  # the next stage of the same fit
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2


def test_fit_threads_inside_torch_threads_block_keeps_its_choice(no_limits):
    torch = pytest.importorskip("torch")
    _whole_machine(no_limits, cores=2, busy=1)
    with parallel.torch_threads(2):
        with parallel.fit_threads() as n:
            assert n is None and torch.get_num_threads() == 2


def test_fit_threads_override_sets_then_restores(no_limits):
    torch = pytest.importorskip("torch")
    no_limits.setenv("SKFACE_NUM_THREADS", "1")
    before = torch.get_num_threads()
    with parallel.fit_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_fit_threads_fake_loky_worker_follows_inherited_limit(no_limits):
    import multiprocessing

    torch = pytest.importorskip("torch")
    no_limits.setenv("OMP_NUM_THREADS", "1")
    no_limits.setattr(multiprocessing.current_process(), "name", "LokyProcess-3")
    before = torch.get_num_threads()
    with parallel.fit_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def _threads_in_fit():
    import torch

    from skface.parallel import fit_threads, worker_threads

    with fit_threads() as n:
        return n, torch.get_num_threads(), worker_threads()


def test_fit_threads_loky_worker_gets_its_share_of_cores():
    from joblib import Parallel, cpu_count, delayed

    results = Parallel(n_jobs=2, backend="loky")(delayed(_threads_in_fit)() for _ in range(2))
    share = max(cpu_count() // 2, 1)  # what loky hands each of 2 workers
    assert results == [(share, share, share)] * 2


def test_import_skface_parallel_no_torch_or_dask():
    code = ("import sys, skface.parallel; heavy = [m for m in ('torch', 'dask', 'distributed') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dask_helpers_without_distributed_raise_naming_the_extra(monkeypatch):
    name = "skface.parallel._dask"
    saved = sys.modules.pop(name, None)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    try:
        with pytest.raises(ImportError, match=r'pip install "skface\[distributed\]"'):
            with parallel.dask_backend(client=None):
                pass
        with pytest.raises(ImportError, match=r'pip install "skface\[distributed\]"'):
            parallel.TorchThreads()
    finally:
        # Never leave the module imported without distributed to the tests after this one.
        sys.modules.pop(name, None)
        if saved is not None:
            sys.modules[name] = saved
            parallel._dask = saved
        elif hasattr(parallel, "_dask"):
            del parallel._dask


class _FakeWorker:
    """What TorchThreads.setup reads of a distributed.Worker."""

    def __init__(self, nthreads):
        self.state = type("State", (), {"nthreads": nthreads})()


@pytest.mark.parametrize("override, expected", [(None, 2), ("3", 3)])
def test_torch_threads_plugin_setup_uses_nthreads_unless_overridden(no_limits, override,
                                                                    expected):
    _requires_distributed()
    torch = pytest.importorskip("torch")
    if override:
        no_limits.setenv("SKFACE_NUM_THREADS", override)
    before = torch.get_num_threads()
    try:
        parallel.TorchThreads().setup(_FakeWorker(2))
        assert torch.get_num_threads() == expected
        parallel.TorchThreads(1).setup(_FakeWorker(2))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# -- on a local Dask cluster -------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    """Two single-thread worker processes on 127.0.0.1, closed whatever the tests do."""
    distributed = _requires_distributed()
    with warnings.catch_warnings():
        # Another cluster on this machine may hold the default HTTP port (8787):
        # distributed then moves to a free one, still on 127.0.0.1, and says so.
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        yield client


def _faces(n=60, size=16, seed=0):
    """Random 16x16 RGB "faces" with two classes that differ slightly in brightness."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.random((n, size, size, 3), dtype=np.float32) * 0.8
    X[y == 1] += 0.08  # faint, so that the candidates score differently
    return X, y


def _search():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from skface.estimators import ConvSDAEFeatures

    pipe = make_pipeline(
        ConvSDAEFeatures((4, 8), pretrain_epochs=1, random_state=0, batch_size=16, device="cpu"),
        LogisticRegression(max_iter=200),
    )
    grid = {"convsdaefeatures__noise_level": [0.1, 0.3], "logisticregression__C": [0.1, 1.0]}
    return GridSearchCV(pipe, grid, cv=3)


def _num_threads():
    import torch

    return torch.get_num_threads()


def _worker_rule():
    from skface.parallel import fit_threads, worker_threads

    with fit_threads() as n:
        return worker_threads(), n


def test_torch_threads_plugin_worker_follows_nthreads(client):
    with parallel.dask_backend(client):
        threads = [client.submit(_num_threads, pure=False, workers=[w]).result(timeout=60)
                   for w in client.scheduler_info()["workers"]]
        rule = client.submit(_worker_rule, pure=False).result(timeout=60)
    assert threads == [1, 1]
    assert rule == (1, 1)


def test_dask_backend_grid_search_matches_n_jobs_1(client):
    from distributed import get_task_stream

    X, y = _faces()
    # One thread in the parent as in each worker: the same arithmetic on both sides.
    with parallel.torch_threads(1):
        local = _search().fit(X, y)
    with parallel.dask_backend(client), get_task_stream(client) as stream:
        remote = _search().fit(X, y)
    for key in ["mean_test_score", *(f"split{i}_test_score" for i in range(3))]:
        assert_array_equal(remote.cv_results_[key], local.cv_results_[key], err_msg=key)
    assert remote.best_params_ == local.best_params_
    # The fits did run on the workers: 4 candidates x 3 folds, and the scores vary.
    assert len(stream.data) >= 12
    assert np.ptp(local.cv_results_["mean_test_score"]) > 0
