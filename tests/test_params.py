"""Tests for skface._params: the shared parameter checks."""

import numbers

import pytest

from skface._params import check_number


@pytest.mark.parametrize("kind", [numbers.Real, numbers.Integral])
@pytest.mark.parametrize("value", [float("nan"), True, "1"])
def test_check_number_nan_bool_or_text_raises(value, kind):
    with pytest.raises(ValueError, match="x must be"):
        check_number("x", value, kind, low=0)


@pytest.mark.parametrize(
    "value, bounds, ok",
    [(0, {"low": 0}, True), (0, {"low": 0, "low_inclusive": False}, False),
     (1.0, {"high": 1.0}, False), (1.0, {"high": 1.0, "high_inclusive": True}, True)],
)
def test_check_number_bounds_inclusive_as_asked(value, bounds, ok):
    if ok:
        check_number("x", value, **bounds)
    else:
        with pytest.raises(ValueError, match="x must be a number"):
            check_number("x", value, **bounds)
