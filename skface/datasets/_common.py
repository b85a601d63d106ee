"""Small helpers shared by the fetchers: Bunch assembly and parameter checks."""

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
