"""How many CPU threads skface uses here, and torch set to that for the duration of a fit."""

import contextvars
import logging
import math
import os
import sys
import time
from contextlib import contextmanager

_LOG = logging.getLogger("skface.parallel")

# The override, read first by worker_threads().
ENV_VAR = "SKFACE_NUM_THREADS"
# How the count is chosen where nothing else sets it: "fixed" (the default: from
# what the process may use, the same whatever the machine's load, so that a fit
# with a random_state is reproducible) or "adaptive" (less the cores that other
# processes keep busy now: faster beside a competing job, not reproducible).
POLICY_VAR = "SKFACE_THREAD_POLICY"
_POLICIES = ("fixed", "adaptive")
# Set inside a thread_policy() block; read before $SKFACE_THREAD_POLICY.
_POLICY = contextvars.ContextVar("skface_thread_policy", default=None)
# The thread limits a parent hands down through the environment: joblib's loky
# backend sets each of them in its workers to cpu_count() // n_jobs (unless the
# user set them), and OpenMP, MKL, OpenBLAS and torch read them at start-up.
_INHERITED_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# cgroup v2, then v1: a container's CPU quota, which os.sched_getaffinity ignores.
_CGROUP_V2 = "/sys/fs/cgroup/cpu.max"
_CGROUP_V1 = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
# The kernel's count of runnable threads on the machine ("procs_running").
_PROC_STAT = "/proc/stat"
# Set inside a torch_threads() block: the caller chose the thread count there.
_EXPLICIT = contextvars.ContextVar("skface_explicit_threads", default=None)
# Inside a fit: torch's setting when the outermost fit_threads() began, the most a
# stage of that fit may use (under the adaptive policy a stage after a busy spell
# can go back up to it).
_CEILING = contextvars.ContextVar("skface_thread_ceiling", default=None)


def _positive_int(value, name):
    """``value`` as an int >= 1, else a ValueError naming where it came from."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


def _check_policy(policy, name):
    """``policy`` if it is one of ``_POLICIES``, else a ValueError naming where it came from."""
    if policy not in _POLICIES:
        raise ValueError(
            f"{name} must be 'fixed' (the default: the same thread count whatever the "
            f"machine's load, reproducible) or 'adaptive' (fewer threads while other "
            f"processes are busy, not reproducible); got {policy!r}"
        )
    return policy


def _policy():
    """The policy in effect: a :func:`thread_policy` block's, else ``$SKFACE_THREAD_POLICY``'s."""
    policy = _POLICY.get()
    if policy is not None:
        return policy
    value = os.environ.get(POLICY_VAR, "").strip().lower()
    return _check_policy(value, f"${POLICY_VAR}") if value else "fixed"


@contextmanager
def thread_policy(policy):
    """Choose, for a block, whether skface's thread count follows the machine's load.

    Parameters
    ----------
    policy : {"fixed", "adaptive"}
        - ``"fixed"`` (the default, also where ``$SKFACE_THREAD_POLICY`` is
          unset): the cores the process may use (:func:`available_cpus`),
          after the overrides and limits of :func:`worker_threads`. The count
          is the same for every fit, stage and batch whatever else runs on the
          machine, so that the same data, parameters and ``random_state``
          give a bit-identical model.
        - ``"adaptive"``: the cores free for the process now
          (:func:`free_cpus`), decided afresh at each fit, each stage of a
          multi-stage fit and each batch of ``transform``: faster beside
          other CPU-bound processes, but the result then depends on the
          machine's load (in the last bits: torch sums in another order with
          another number of threads).

    Yields
    ------
    policy : str

    Raises
    ------
    ValueError
        For another policy name.

    See Also
    --------
    fit_threads : The rule that applies the policy in an estimator's ``fit``.

    Notes
    -----
    ``$SKFACE_THREAD_POLICY`` (``fixed`` or ``adaptive``) sets the policy
    for a whole process, Dask workers included (set it in the workers'
    environment: a block in the client is not seen by the workers).

    Examples
    --------
    >>> from skface.parallel import thread_policy
    >>> with thread_policy("adaptive"):
    ...     pass  # fits here give up reproducibility for speed on a busy machine
    """
    token = _POLICY.set(_check_policy(policy, "policy"))
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def _dask_worker_threads():
    """The current Dask worker's ``nthreads``, or None outside a Dask worker."""
    # Only a process that already runs distributed can be one of its workers:
    # never import dask here (it is an optional extra, and slow to import).
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # ValueError: "No worker found"
        return None
    return _nthreads_of(worker)


def _nthreads_of(worker):
    """A distributed.Worker's thread count, across the versions that moved it."""
    state = getattr(worker, "state", None)
    n = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return int(n) if n else None


def _in_loky_worker():
    """Whether this process is a worker of joblib's loky backend (``LokyProcess-<k>``)."""
    import multiprocessing

    return multiprocessing.current_process().name.startswith("LokyProcess")


def _inherited_threads():
    """The smallest thread limit set in the environment (as loky sets it), or None."""
    limits = []
    for var in _INHERITED_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            limits.append(int(value))
    return min(limits) if limits else None


def _read(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


def _cgroup_cpus():
    """CPUs the cgroup quota allows (rounded up, as joblib does), or None when unlimited."""
    fields = _read(_CGROUP_V2)
    if fields and len(fields) == 2 and fields[0] != "max":
        quota, period = fields
    else:
        quota, period = (_read(p) for p in _CGROUP_V1)
        if not quota or not period:
            return None
        quota, period = quota[0], period[0]
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:  # v1 writes -1 for "no quota"
        return None
    return max(1, math.ceil(quota / period))


# The last reading of _running_elsewhere: (time.monotonic(), count, the file read),
# reused for half a second, so that the many short fits of a test suite or a grid
# search, and the batches of a transform, read /proc rarely.
_LAST_READING = [None]
_READING_TTL_S = 0.5


def _running_elsewhere(samples=3, pause=0.002):
    """Threads of other processes that are running or runnable now, or None if unknown.

    The kernel's ``procs_running`` (in ``/proc/stat``) less this process's own
    running threads (``/proc/self/task``); the smallest of a few readings a
    couple of milliseconds apart, so that a short-lived process does not
    count as a competitor. A reading is reused for half a second.
    """
    last = _LAST_READING[0]
    if last is not None and time.monotonic() - last[0] < _READING_TTL_S and last[2] == _PROC_STAT:
        return last[1]
    count = _read_running(samples, pause)
    _LAST_READING[0] = (time.monotonic(), count, _PROC_STAT)
    return count


def _own_running():
    """Threads of this process that are running or runnable (state R), or None if unknown."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    count = 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                # The state follows the command name, which is in parentheses.
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return max(count, 1)  # at least the thread reading this


def _read_running(samples, pause):
    """The smallest of ``samples`` readings of other processes' running threads."""
    counts = []
    for i in range(samples):
        try:
            with open(_PROC_STAT) as f:
                line = next((line for line in f if line.startswith("procs_running")), None)
        except OSError:
            return None
        if line is None:
            return None
        # Less this process's own running threads: torch's workers spin for a
        # while after each operation, and are no competitor.
        counts.append(max(0, int(line.split()[1]) - (_own_running() or 1)))
        if i + 1 < samples:
            time.sleep(pause)
    return min(counts)


def free_cpus():
    """CPU cores free for this process now: :func:`available_cpus`, less the busy ones.

    Where the process may use every core of the machine (no affinity mask
    or CPU quota narrows it), each thread of another process that is
    running or waiting to run (the kernel's ``procs_running``, read a few
    times and the smallest count taken) takes one core off; elsewhere, and
    where the count cannot be read (no ``/proc``), :func:`available_cpus`
    as it is. At least 1.

    torch splits each operation into one equal part per thread and waits for
    the slowest: a thread that shares its core with a busy process holds up
    all the others, so fewer threads than cores finish sooner on a busy
    machine. It is the last rule of :func:`worker_threads` under the
    ``"adaptive"`` :func:`thread_policy` only: the count changes with the
    load, and results with the count.
    """
    n = available_cpus()
    if n != (os.cpu_count() or n):
        return n
    busy = _running_elsewhere()
    return n if busy is None else max(1, n - busy)


def available_cpus():
    """CPU cores this process may use: its affinity mask, capped by the cgroup CPU quota.

    Returns
    -------
    n : int
        ``len(os.sched_getaffinity(0))`` (``os.cpu_count()`` where the platform
        has no affinity), or fewer where ``/sys/fs/cgroup/cpu.max`` (cgroup v2)
        or ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (v1) sets a quota; at
        least 1.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, quota)
    return max(1, n)


def worker_threads():
    """The number of CPU threads skface should use in this process.

    The first rule that applies wins:

    1. ``$SKFACE_NUM_THREADS``, when set: an explicit override.
    2. Inside a Dask worker: the worker's ``nthreads`` (its share of the
       machine's cores).
    3. An inherited limit: the smallest of ``$OMP_NUM_THREADS``,
       ``$MKL_NUM_THREADS`` and ``$OPENBLAS_NUM_THREADS``. joblib's loky
       backend sets these in each worker process to its share of the cores,
       ``cpu_count() // n_jobs``, so a fit in a ``GridSearchCV(n_jobs=k)``
       worker uses that share; OpenMP, BLAS and threadpoolctl see the same
       limit.
    4. The cores the process may use: its CPU affinity
       (``os.sched_getaffinity``), capped by the cgroup CPU quota
       (``/sys/fs/cgroup/cpu.max``) where a container sets one (see
       :func:`available_cpus`). Under the ``"adaptive"``
       :func:`thread_policy` only, less the cores other processes keep busy
       now, where the process may use the whole machine (see
       :func:`free_cpus`).

    Under the default ``"fixed"`` policy every rule reads facts that stay
    put while a process runs (its environment, its Dask worker, its
    affinity and quota), never the machine's momentary load: the count is
    the same at each call.

    Returns
    -------
    n : int
        At least 1.

    Raises
    ------
    ValueError
        If ``$SKFACE_NUM_THREADS`` is set but not a positive integer.

    See Also
    --------
    torch_threads : Set torch's intra-op thread count to this for a block.
    """
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return _positive_int(override, ENV_VAR)
    for rule in (_dask_worker_threads, _inherited_threads):
        n = rule()
        if n:
            return n
    return free_cpus() if _policy() == "adaptive" else available_cpus()


@contextmanager
def torch_threads(n_threads=None):
    """Run a block (or, as a decorator, a function) with torch's intra-op threads set.

    torch's own default is the machine's physical cores, whatever share of
    them this process has; several fits running side by side then
    oversubscribe the CPU. The previous setting is restored on exit.

    Parameters
    ----------
    n_threads : int, default=None
        Threads for the block; None means :func:`worker_threads`.

    Yields
    ------
    n_threads : int
        The thread count in effect inside the block.

    Examples
    --------
    >>> from skface.parallel import torch_threads
    >>> with torch_threads(1):
    ...     pass  # fit here
    """
    import torch

    n = worker_threads() if n_threads is None else _positive_int(n_threads, "n_threads")
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    # Fits inside the block keep this choice (fit_threads leaves it alone).
    token = _EXPLICIT.set(n)
    try:
        yield n
    finally:
        _EXPLICIT.reset(token)
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def fit_threads():
    """The thread rule of an estimator's ``fit``: torch's threads for the fit, then restored.

    - Inside a :func:`torch_threads` block: that block's choice, untouched.
    - In a Dask worker, in a worker of joblib's loky backend
      (``GridSearchCV(n_jobs=k)``) or with ``$SKFACE_NUM_THREADS`` set:
      :func:`worker_threads`.
    - Anywhere else: torch's current setting (its default, or your own
      ``torch.set_num_threads``), lowered to :func:`worker_threads` where
      that is fewer: the cores the process may use (the affinity mask and
      CPU quota). skface never raises torch's setting here.

    Each ``fit``, each stage of a multi-stage fit and each batch of
    ``transform`` or ``predict`` enters the block; under the default
    ``"fixed"`` :func:`thread_policy` all of them get the same count, so a
    fit with a ``random_state`` gives the same model whatever else runs on
    the machine. Under the ``"adaptive"`` policy each decides afresh, from a
    reading of the machine's load at most half a second old (fewer threads
    while other processes are busy; results then vary in the last bits).
    The previous setting comes back on exit.

    Yields
    ------
    n_threads : int or None
        The thread count set for the block, or None where it was left alone.
    """
    if _EXPLICIT.get() is not None:
        yield None
        return
    if (os.environ.get(ENV_VAR, "").strip() or _dask_worker_threads() is not None
            or _in_loky_worker()):
        with torch_threads() as n:
            yield n
        return
    import torch

    current = torch.get_num_threads()
    ceiling = _CEILING.get() or current
    allowed = worker_threads()
    n = min(ceiling, allowed)
    if n != current:
        # logging.getLogger("skface.parallel").setLevel("DEBUG") shows each change.
        _LOG.debug("torch threads %d -> %d (%s policy: %d cores; torch's setting: %d)",
                   current, n, _policy(), allowed, ceiling)
        torch.set_num_threads(n)
    token = _CEILING.set(ceiling)
    try:
        yield n if n != ceiling else None
    finally:
        _CEILING.reset(token)
        if torch.get_num_threads() != current:
            torch.set_num_threads(current)
