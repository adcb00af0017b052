"""Argument checks shared by the pure-math modules (TypeError/ValueError naming the argument)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["MAX_INT64", "holder_indices", "positive_finite", "positive_int", "round_number"]

#: Largest round number, epoch or version: each is stored as a signed 64-bit integer.
MAX_INT64 = 2**63 - 1


def positive_int(value: object, name: str, *, at_most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: must be at least 1, got {value}")
    if at_most is not None and value > at_most:
        raise ValueError(f"{name}: must be at most {at_most}, got {value}")
    return value


def round_number(value: object, name: str) -> int:
    """``value`` if it is an int in ``0..2**63-1``; ``ValueError`` otherwise, for a wrong type
    too (round numbers mostly come from parsed documents, whose callers expect ``ValueError``)."""
    if type(value) is not int or not 0 <= value <= MAX_INT64:
        raise ValueError(f"{name}: expected a round number in [0, 2**63), got {value!r}")
    return value


def positive_finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name}: must be positive and finite, got {value}")
    return number


def holder_indices(value: object, name: str) -> tuple[int, ...]:
    """``value`` as a tuple of holder indices: an iterable (not a string or bytes) of integers,
    not bools or floats (``(1.0, 2.0)`` and ``(True, 2)`` would compare equal to ``(1, 2)``
    further on and reach the Lagrange arithmetic); ``TypeError`` naming ``name`` otherwise.
    Values and size are checked by the caller."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{name}: expected a sequence of holder indices (int)")
    items = tuple(value)
    for item in items:
        if isinstance(item, bool | np.bool_) or not isinstance(item, int | np.integer):
            raise TypeError(
                f"{name}: holder indices must be int, got {type(item).__name__} {item!r}"
            )
    return tuple(int(item) for item in items)
