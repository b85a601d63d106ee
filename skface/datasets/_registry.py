"""Dataset registry: fetchers discovered from the ``skface.datasets`` entry-point group."""

import os
from dataclasses import dataclass, field

from .._plugins import get_plugin, load_group
from ._home import get_data_home

ENTRY_POINT_GROUP = "skface.datasets"


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset besides its fetcher.

    Parameters
    ----------
    folder : str
        Sub-folder of the data home that holds the dataset's files.
    required : tuple of str
        Paths (relative to ``folder``) that must exist for the dataset to
        count as present; a trailing ``/`` means a non-empty folder, and
        ``"a|b"`` means either of two layouts.
    citation : str
        How to cite the dataset (and its terms of use, in short).
    downloadable : bool
        Whether its fetcher can download every file it needs (else some
        must be put in ``folder`` by hand; the fetcher's error says where
        from).
    """

    folder: str
    required: tuple = ()
    citation: str = ""
    downloadable: bool = False
    extra: dict = field(default_factory=dict)

    def path(self, data_home=None):
        return get_data_home(data_home) / self.folder

    def is_present(self, data_home=None):
        root = self.path(data_home)
        if not root.is_dir():
            return False
        return all(
            any(_exists(root, alt) for alt in rel.split("|")) for rel in self.required
        )

    def size_on_disk(self, data_home=None):
        """Total bytes of the dataset's folder (0 when absent)."""
        root = self.path(data_home)
        total = 0
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_size
                except OSError:  # a dangling link is not worth failing a listing for
                    pass
        return total


def _exists(root, rel):
    path = root / rel
    if rel.endswith("/"):  # a folder, and not an empty one
        return path.is_dir() and next(path.iterdir(), None) is not None
    return path.exists()


def dataset(*, folder, required=(), citation="", downloadable=False):
    """Attach a :class:`DatasetInfo` to a fetcher so the registry can describe it."""

    def decorate(func):
        func.dataset_info = DatasetInfo(
            folder=folder, required=tuple(required), citation=citation,
            downloadable=downloadable,
        )
        return func

    return decorate


def list_datasets():
    """Names of every registered dataset, sorted.

    Returns
    -------
    names : list of str
    """
    return sorted(load_group(ENTRY_POINT_GROUP, kind="dataset"))


def get_fetcher(name):
    """Return the fetch function registered under ``name``.

    Raises
    ------
    ValueError
        If no dataset of that name is registered; the message lists the
        available names.
    """
    return get_plugin(ENTRY_POINT_GROUP, name, kind="dataset")


def get_dataset_info(name):
    """The :class:`DatasetInfo` of a registered dataset, or None for a plugin without one."""
    return getattr(get_fetcher(name), "dataset_info", None)


def fetch(name, **kwargs):
    """Fetch a registered dataset by name: ``fetch("lfw_people", min_faces_per_person=70)``.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.
    **kwargs
        Passed to the dataset's fetcher.

    Returns
    -------
    data : sklearn.utils.Bunch or tuple
        Whatever the fetcher returns.
    """
    return get_fetcher(name)(**kwargs)
