"""Small helpers shared by the fetchers: Bunch assembly and parameter checks."""

import os

import numpy as np

from .._params import check_size as _check_size


def make_bunch(*, images, target=None, return_X_y=False, **fields):
    """Build the fetchers' ``Bunch``: ``data`` is ``images`` flattened per sample.

    With ``return_X_y=True`` return ``(data, target)`` instead.
    """
    from sklearn.utils import Bunch

    data = images.reshape(len(images), -1)
    if return_X_y:
        return data, target
    return Bunch(data=data, images=images, target=target, **fields)


def file_paths(images_dir, filenames):
    """Absolute paths of ``filenames`` (relative to ``images_dir``), same shape, as str.

    Made at return time from the data home the fetcher was given, never
    cached: a data home moved or mounted elsewhere still gives paths that
    exist.
    """
    filenames = np.asarray(filenames, dtype=str)
    root = os.fspath(images_dir)
    # "Name/Name_0001.jpg" keeps its "/" on every platform: open() accepts it.
    paths = [os.path.join(root, name) for name in filenames.ravel()]
    return np.array(paths, dtype=str).reshape(filenames.shape)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}."
        )
    return value


def check_size(size, name="size"):
    """``(height, width)`` from a fetcher's size parameter (an int means square), or None.

    The estimators' check (``skface._params.check_size``), so that a size
    means the same in a fetcher as in an estimator's ``input_size``: rows
    first, as in ``images.shape[1:3]``.
    """
    return _check_size(size, name)


def read_csv(path, *, dataset, todo, **kwargs):
    """``pandas.read_csv(path, **kwargs)``, whose failures name the file and what to do.

    An empty, truncated or unparsable file raises ``ValueError`` saying so,
    naming ``dataset`` and ``path``; ``todo`` says how to replace it.
    """
    import zipfile

    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        reason = "is empty"
    except (pd.errors.ParserError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as exc:
        reason = f"cannot be parsed as CSV ({type(exc).__name__}: {exc})"
    except ValueError as exc:  # a zip holding several files, a bad dtype...
        reason = f"cannot be read ({exc})"
    raise ValueError(f"{dataset}: {path} {reason}; {todo}.")


def read_mat(path, *, dataset, todo):
    """``scipy.io.loadmat(path)``, whose failures name the file and what to do.

    As :func:`read_csv`: a truncated or damaged file raises ``ValueError``
    naming ``dataset`` and ``path``; ``todo`` says how to replace it.
    """
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except MemoryError:
        raise
    except Exception as exc:  # scipy fails on damaged bytes in many ways (IndexError...)
        raise ValueError(
            f"{dataset}: {path} cannot be read as a MATLAB file ({type(exc).__name__}: "
            f"{exc}); it is truncated or damaged: {todo}."
        ) from None
