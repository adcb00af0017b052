"""One-line errors for the identity and audit commands, whatever group they are attached to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from fhe_agg._errors import FheAggError

__all__ = ["one_line_errors"]

P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print ``error: <message>`` and exit 1 for an :class:`FheAggError` (a refused key, roster
    or log), 2 for a bad argument or file (``ValueError``, ``KeyError``, ``OSError``)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FheAggError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from None
        except (ValueError, KeyError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            click.echo(f"error: {message}", err=True)
            raise SystemExit(2) from None

    return wrapper
