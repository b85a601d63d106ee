"""Checks of estimator parameters, shared so every estimator and transformer words its errors alike."""

import numbers

__all__ = ["check_choice", "check_number", "check_size"]


def check_number(
    name, value, kind=numbers.Real, *, low=None, high=None, low_inclusive=True,
    high_inclusive=False,
):
    """Raise ``ValueError`` unless ``value`` is a ``kind`` number within the bounds.

    Parameters
    ----------
    name : str
        Parameter name, for the message.
    value : object
    kind : numbers.Real or numbers.Integral, default=numbers.Real
        Booleans and NaN are refused either way.
    low, high : float, default=None
        Bounds; None means unbounded on that side.
    low_inclusive, high_inclusive : bool, default=True, False
        Whether ``value`` may equal ``low`` / ``high``.
    """
    # NaN compares false with every bound, so it is refused here, not by the bounds.
    bad = not isinstance(value, kind) or isinstance(value, bool) or value != value
    if not bad and low is not None:
        bad = value < low or (value == low and not low_inclusive)
    if not bad and high is not None:
        bad = value > high or (value == high and not high_inclusive)
    if bad:
        what = "an int" if kind is numbers.Integral else "a number"
        bounds = []
        if low is not None:
            bounds.append(f"{'>=' if low_inclusive else '>'} {low}")
        if high is not None:
            bounds.append(f"{'<=' if high_inclusive else '<'} {high}")
        bounds = " " + " and ".join(bounds) if bounds else ""
        raise ValueError(f"{name} must be {what}{bounds}, got {value!r}.")


def check_choice(name, value, options):
    """Raise ``ValueError`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}.")


def check_size(size, name="input_size"):
    """``(height, width)`` from a size parameter (an int means square), or None."""
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = size
        ok = all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
            for s in (height, width)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be None, a positive int or (height, width), got {size!r}.")
    return int(height), int(width)
