"""Where datasets live on disk (data home) and where decoded arrays are cached."""

import os
from pathlib import Path

DATA_ENV = "SKFACE_DATA"
CACHE_ENV = "SKFACE_CACHE"


def get_data_home(data_home=None):
    """Return the folder that holds the raw dataset files.

    Resolution order: the ``data_home`` argument, else the ``SKFACE_DATA``
    environment variable, else ``~/skface_data``. The folder is not created
    here: the data home may be read-only (a shared copy of the datasets).

    Parameters
    ----------
    data_home : str or path-like, default=None
        Explicit folder; wins over everything else.

    Returns
    -------
    data_home : pathlib.Path
        Absolute path of the data home.
    """
    if data_home is None:
        data_home = os.environ.get(DATA_ENV) or Path("~") / "skface_data"
    return Path(data_home).expanduser().resolve()


def get_cache_home(cache_home=None):
    """Return the writable folder for decoded-array caches.

    Kept apart from the data home because the data home is often a
    read-only shared copy. Resolution: argument, ``SKFACE_CACHE``,
    ``$XDG_CACHE_HOME/skface``, ``~/.cache/skface``.
    """
    if cache_home is None:
        cache_home = os.environ.get(CACHE_ENV)
    if cache_home is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path("~") / ".cache"
        cache_home = Path(xdg) / "skface"
    return Path(cache_home).expanduser().resolve()
