"""Small helpers shared by the fetchers: Bunch assembly and parameter checks."""

import numpy as np


def make_bunch(*, images, target=None, return_X_y=False, **fields):
    """Build the fetchers' ``Bunch``: ``data`` is ``images`` flattened per sample.

    With ``return_X_y=True`` return ``(data, target)`` instead.
    """
    from sklearn.utils import Bunch

    data = images.reshape(len(images), -1)
    if return_X_y:
        return data, target
    return Bunch(data=data, images=images, target=target, **fields)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}."
        )
    return value


def check_size(size, name="size"):
    """``None`` or a (width, height) pair of positive ints; an int means square."""
    if size is None:
        return None
    if np.isscalar(size):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a positive int or a (width, height) pair, got {size!r}.")
    return size
