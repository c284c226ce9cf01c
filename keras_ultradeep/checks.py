"""Argument checks, written once with one wording each.

The ground floor of the package: it imports nothing of ours (and nothing but
the standard library), so layers, models, the contract, training and the
command line all use it. Every check names the argument and what was
expected, raises before any work is done, and returns the value (converted
where said) so that it can be used inline::

    filters = checks.positive_int(filters, "filters")
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

__all__ = [
    "boolean",
    "integer",
    "non_negative_number",
    "number",
    "number_in",
    "one_of",
    "optional_int",
    "optional_positive_int",
    "positive_int",
    "positive_int_pair",
    "positive_ints",
    "positive_number",
    "positive_odd_int",
    "string",
]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def boolean(value, argument):
    """``value`` if it is ``True`` or ``False``; else ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: expected True or False, got {value!r}")
    return value


def integer(value, argument, *, minimum=None, maximum=None):
    """``value`` as an ``int`` if it is an integer within the bounds given."""
    if not _is_int(value) or (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        if minimum is not None and maximum is not None:
            expected = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            expected = f"an integer >= {minimum}"
        elif maximum is not None:
            expected = f"an integer <= {maximum}"
        else:
            expected = "an integer"
        raise ValueError(f"{argument}: expected {expected}, got {value!r}")
    return int(value)


def positive_int(value, argument):
    """``value`` as an ``int`` if it is an integer >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{argument}: expected a positive integer, got {value!r}")
    return int(value)


def optional_positive_int(value, argument):
    """``None``, or :func:`positive_int`."""
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise ValueError(f"{argument}: expected None or a positive integer, got {value!r}")
    return int(value)


def optional_int(value, argument):
    """``None`` or any integer (a seed, say)."""
    if value is not None and not _is_int(value):
        raise ValueError(f"{argument}: expected None or an integer, got {value!r}")
    return None if value is None else int(value)


def positive_ints(value, argument, *, length=None, what="positive integers"):
    """``value`` as a tuple of positive integers (of ``length`` items if given).

    ``what`` says what the items are, in the message: "block counts per stage".
    """
    if (
        not isinstance(value, (tuple, list))
        or not value
        or (length is not None and len(value) != length)
        or any(not _is_int(v) or v < 1 for v in value)
    ):
        count = f"{length} " if length is not None else "a non-empty sequence of "
        raise ValueError(f"{argument}: expected {count}{what}, got {value!r}")
    return tuple(int(v) for v in value)


def positive_int_pair(value, argument):
    """``value`` as a pair ``(a, a)`` or ``(a, b)`` of positive integers (a kernel size, a stride)."""
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or any(not _is_int(v) or v < 1 for v in pair)
    ):
        raise ValueError(f"{argument}: expected a positive integer or a pair of them, got {value!r}")
    return tuple(int(v) for v in pair)


def positive_odd_int(value, argument):
    """``value`` as an ``int`` if it is an odd integer >= 1 (a window centred on its middle)."""
    if not _is_int(value) or value < 1 or value % 2 == 0:
        raise ValueError(f"{argument}: expected a positive odd integer, got {value!r}")
    return int(value)


def number(value, argument):
    """``value`` as a ``float`` if it is a finite number of any sign (a bias)."""
    if not _is_number(value):
        raise ValueError(f"{argument}: expected a finite number, got {value!r}")
    return float(value)


def number_in(value, argument, low, high, *, low_open=False, high_open=False):
    """``value`` as a ``float`` if it is a finite number in the interval.

    The interval is written the usual way in the message: ``[0, 1)`` for
    ``number_in(rate, "dropout_rate", 0, 1, high_open=True)``.
    """
    ok = _is_number(value)
    if ok:
        value_f = float(value)
        ok = (value_f > low if low_open else value_f >= low) and (
            value_f < high if high_open else value_f <= high
        )
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{argument}: expected a number in {interval}, got {value!r}")
    return float(value)


def positive_number(value, argument):
    """``value`` as a ``float`` if it is a finite number > 0 (an epsilon, a scale)."""
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{argument}: expected a positive number, got {value!r}")
    return float(value)


def non_negative_number(value, argument):
    """``value`` as a ``float`` if it is a finite number >= 0 (a weight decay)."""
    if not _is_number(value) or value < 0:
        raise ValueError(f"{argument}: expected a non-negative number, got {value!r}")
    return float(value)


def one_of(value, argument, choices: Iterable):
    """``value`` if it is one of ``choices``; else ``ValueError`` listing them."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{argument}: expected one of {listed}, got {value!r}")
    return value


def string(value, argument, *, empty=False):
    """``value`` if it is a string (non-empty unless ``empty``); else ``TypeError``."""
    if not isinstance(value, str):
        raise TypeError(f"{argument}: expected a string, got {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{argument}: expected a non-empty string, got {value!r}")
    return value
