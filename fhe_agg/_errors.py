"""The errors' internal helpers; also the former home of the errors, so that
``from fhe_agg._errors import X`` keeps working. Every error is defined in :mod:`fhe_agg.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fhe_agg.errors import *  # noqa: F403
from fhe_agg.errors import FheAggError
from fhe_agg.errors import __all__ as _public

__all__ = [*_public, "located"]


@contextmanager
def located(
    *, round_id: int | None = None, party: str | None = None, holder_index: int | None = None
) -> Iterator[None]:
    """Fill in the round, party and key holder of any :class:`FheAggError` raised inside, where
    the raising code left them unset; the error is re-raised unchanged otherwise."""
    try:
        yield
    except FheAggError as exc:
        if exc.round_id is None:
            exc.round_id = round_id
        if exc.party is None:
            exc.party = party
        if exc.holder_index is None:
            exc.holder_index = holder_index
        raise
