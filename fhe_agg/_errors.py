"""The errors' internal helpers; also the former home of the errors, so that
``from fhe_agg._errors import X`` keeps working. Every error is defined in :mod:`fhe_agg.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fhe_agg.errors import *  # noqa: F403
from fhe_agg.errors import FheAggError
from fhe_agg.errors import __all__ as _public

__all__ = [*_public, "describe", "error_code", "error_fields", "locate", "located"]


@contextmanager
def located(
    *, round_id: int | None = None, party: str | None = None, holder_index: int | None = None
) -> Iterator[None]:
    """Fill in the round, party and key holder of any :class:`FheAggError` raised inside, where
    the raising code left them unset; the error is re-raised unchanged otherwise."""
    try:
        yield
    except FheAggError as exc:
        locate(exc, round_id=round_id, party=party, holder_index=holder_index)
        raise


def locate(
    exc: FheAggError,
    *,
    round_id: int | None = None,
    party: str | None = None,
    holder_index: int | None = None,
) -> FheAggError:
    """Fill in the round, party and key holder of ``exc`` where it left them unset."""
    if exc.round_id is None:
        exc.round_id = round_id
    if exc.party is None:
        exc.party = party
    if exc.holder_index is None:
        exc.holder_index = holder_index
    return exc


def error_code(exc: BaseException) -> str:
    """The stable :attr:`~FheAggError.code` of an fhe_agg error, the class name of any other."""
    return exc.code if isinstance(exc, FheAggError) else type(exc).__name__


def describe(exc: BaseException) -> str:
    """``"<code>: <message>"``: how a report or reply names a refusal, readable and led by the
    error's stable code."""
    return f"{error_code(exc)}: {exc}"


def error_fields(exc: BaseException) -> dict[str, str | int]:
    """An error as an audit record or report states it: ``error`` (its stable code),
    ``reason`` (the message), and the ``round_id``, ``party`` and ``holder_index`` it is about
    where they are known."""
    fields: dict[str, str | int] = {"error": error_code(exc), "reason": str(exc)}
    if isinstance(exc, FheAggError):
        for name in ("round_id", "party", "holder_index"):
            value = getattr(exc, name)
            if value is not None:
                fields[name] = value
    return fields
