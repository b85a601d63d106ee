"""On-disk cache of decoded arrays, keyed by the parameters that shape them."""

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from ._home import get_cache_home

# Bump when a fetcher's decoding changes, so stale caches are never served.
# 2: sizes are (height, width) (they were (width, height)). A non-square size
# tuple keyed under 1 meant the transposed shape, and YouTube's cached
# original_sizes swapped order too, so no entry written under 1 may be served.
CACHE_VERSION = 2


def _fingerprint(source):
    """Cheap identity of the source folder: path and modification time."""
    source = Path(source)
    try:
        mtime = source.stat().st_mtime_ns
    except OSError:
        mtime = None
    return [str(source.resolve()), mtime]


def cache_key(name, params, source):
    payload = {"v": CACHE_VERSION, "name": name, "params": params, "source": _fingerprint(source)}
    blob = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cached_arrays(name, params, source, compute, *, cache_home=None):
    """Return ``compute()``'s dict of arrays, from the cache when it is there.

    Parameters
    ----------
    name : str
        Dataset name (a sub-folder of the cache).
    params : dict
        Every parameter that changes the arrays; part of the key.
    source : path-like
        Folder the arrays are decoded from; its path and mtime join the key.
    compute : callable
        Returns a dict of str -> ndarray (no object arrays: the cache is
        loaded with ``allow_pickle=False``).
    cache_home : path-like, default=None
        See :func:`~skface.datasets.get_cache_home`.

    Returns
    -------
    arrays : dict of str -> ndarray
    """
    folder = get_cache_home(cache_home) / name / cache_key(name, params, source)
    if (folder / "_complete").exists():
        try:
            # Copy-on-write maps: a warm load costs no read of the whole array, and
            # callers still get writable arrays (changes never reach the cache).
            return {
                p.stem: np.load(p, mmap_mode="c", allow_pickle=False)
                for p in folder.glob("*.npy")
            }
        except (OSError, ValueError):  # a damaged entry is rebuilt, not trusted
            shutil.rmtree(folder, ignore_errors=True)
    arrays = compute()
    try:
        _write(folder, arrays)
    except OSError as exc:  # a read-only cache must not stop a fetch
        warnings.warn(f"skface could not write its cache at {folder}: {exc}", RuntimeWarning)
    return arrays


def _write(folder, arrays):
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, value in arrays.items():
        np.save(tmp / f"{key}.npy", np.asarray(value), allow_pickle=False)
    (tmp / "_complete").touch()
    try:
        os.replace(tmp, folder)
    except OSError:  # another process wrote the same entry first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
