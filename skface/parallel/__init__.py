"""Running skface across cores and machines: threads per worker, Dask, data-parallel fits."""

import importlib

# Public name -> private module that defines it, imported on first use: the Dask
# helpers need the optional `distributed` extra, and none of it should load torch
# or dask before it is used. Add new exports here.
_LAZY = {
    "worker_threads": "._threads",
    "available_cpus": "._threads",
    "free_cpus": "._threads",
    "torch_threads": "._threads",
    "fit_threads": "._threads",
    "thread_policy": "._threads",
    "TorchThreads": "._dask",
    "dask_backend": "._dask",
    "embed": "._embed",
    "embed_files_to_parquet": "._embed",
    "decode_images": "._embed",
    "data_parallel": "._distributed",
    "ProcessGroup": "._distributed",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'skface.parallel' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
