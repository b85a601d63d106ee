"""Dask workers with torch's threads set to their share of cores, and joblib's Dask backend."""

import os
from contextlib import contextmanager

from ._threads import ENV_VAR, _nthreads_of, _positive_int, worker_threads

try:
    from distributed import Client, WorkerPlugin
except ImportError as exc:  # the optional extra is missing: fail on use, not on import,
    Client = WorkerPlugin = object   # so that the API docs build without it
    _MISSING = exc
else:
    _MISSING = None


PLUGIN_NAME = "skface-torch-threads"


def _require_distributed():
    """Raise an ImportError naming the extra when dask.distributed is missing."""
    if _MISSING is not None:
        raise ImportError(
            "skface.parallel's Dask helpers need dask.distributed: "
            'pip install "skface[distributed]"'
        ) from _MISSING


class TorchThreads(WorkerPlugin):
    """A Dask worker plugin: set torch's intra-op threads on each worker at start-up.

    Without it, torch in a worker process uses what the nanny's environment
    says (``OMP_NUM_THREADS=1`` by default) or the machine's physical cores,
    not the worker's ``nthreads``. Register it with
    ``client.register_plugin(TorchThreads())``, or use :func:`dask_backend`,
    which does. Workers that join later get it too.

    Parameters
    ----------
    n_threads : int, default=None
        Threads per worker; None means the worker's ``nthreads``, or
        ``$SKFACE_NUM_THREADS`` where that is set on the worker (see
        :func:`worker_threads`).

    Notes
    -----
    A worker runs up to ``nthreads`` tasks at once, and each of them uses
    torch's setting: for many small fits side by side (a grid search) prefer
    single-threaded worker processes (``threads_per_worker=1``); several
    threads per worker suit a few large fits.
    """

    name = PLUGIN_NAME

    def __init__(self, n_threads=None):
        _require_distributed()
        self.n_threads = None if n_threads is None else _positive_int(n_threads, "n_threads")

    def setup(self, worker):
        """Set torch's threads in this worker's process.

        Parameters
        ----------
        worker : distributed.Worker
            The worker starting up.
        """
        import torch

        n = self.n_threads
        if n is None:
            # The override first, as in worker_threads(); then this worker's share.
            n = worker_threads() if os.environ.get(ENV_VAR, "").strip() else None
        n = n or _nthreads_of(worker) or worker_threads()
        # torch keeps one process-wide count, which each executor thread picks up
        # on its first parallel op (all of them run after this setup).
        torch.set_num_threads(n)


@contextmanager
def dask_backend(client, n_threads=None, **backend_kwargs):
    """joblib's Dask backend on ``client``, with :class:`TorchThreads` registered.

    Inside the block, ``GridSearchCV``, ``cross_validate`` and anything else
    that runs joblib send each task (one candidate on one fold) to a Dask
    worker.

    Parameters
    ----------
    client : distributed.Client
        The cluster to run on: ``Client(LocalCluster(...))`` or
        ``Client("tcp://scheduler:8786")``.
    n_threads : int, default=None
        Passed to :class:`TorchThreads`: None means each worker's ``nthreads``.
    **backend_kwargs
        Passed to ``joblib.parallel_config(backend="dask", ...)``, e.g.
        ``scatter=[X, y]`` to send the data to the workers once.

    Yields
    ------
    client : distributed.Client
        The same client.

    Raises
    ------
    ImportError
        If dask.distributed is not installed (the ``distributed`` extra).
    TypeError
        If ``client`` is not a ``distributed.Client`` (a scheduler address
        given as a string, say).

    Examples
    --------
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> from skface.parallel import dask_backend  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, \\
    ...         Client(cluster) as client, dask_backend(client):  # doctest: +SKIP
    ...     search.fit(X, y)
    """
    _require_distributed()
    import joblib

    if not isinstance(client, Client):
        raise TypeError(
            f"dask_backend needs a distributed.Client, got {type(client).__name__} "
            f"{client!r}: pass Client(LocalCluster(...)) or Client('tcp://scheduler:8786')."
        )
    # Registering under a fixed name replaces an earlier registration, so
    # entering this block twice does not stack plugins.
    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    register(TorchThreads(n_threads), name=PLUGIN_NAME)
    backend_kwargs.setdefault("n_jobs", -1)  # every worker thread, not joblib's default
    config = getattr(joblib, "parallel_config", None) or joblib.parallel_backend
    with config(backend="dask", client=client, **backend_kwargs):
        yield client
