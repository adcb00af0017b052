"""One node's ClientApp process: ``python -m fhe_agg.flower._worker FD MODULE:ATTR``.

Started by :class:`fhe_agg.flower.NodeProcessBackend`, it loads the ``ClientApp`` once and runs
every message for its node, so the node's fhe_agg state (identity keys, a key holder's share)
lives in this process's memory for the whole run and nowhere else. ``FD`` is its end of a
socket pair with the parent, which alone can write to it.
"""

from __future__ import annotations

import importlib
import logging
import sys
from multiprocessing.connection import Connection

from flwr.clientapp import ClientApp

__all__ = ["load_client_app", "main"]


def load_client_app(reference: str) -> ClientApp:
    """Import ``module:attribute`` and check that it is a ``ClientApp``."""
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValueError(f"client_app: expected 'module:attribute', got {reference!r}")
    app = getattr(importlib.import_module(module), attribute)
    if not isinstance(app, ClientApp):
        raise TypeError(f"{reference} is a {type(app).__name__}, not a flwr ClientApp")
    return app


def main(argv: list[str]) -> int:
    fd, reference = int(argv[0]), argv[1]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s node: %(message)s")
    conn = Connection(fd)
    try:
        app = load_client_app(reference)
    except Exception as exc:
        conn.send(("error", f"could not load {reference}: {type(exc).__name__}: {exc}"))
        return 1
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return 0
        if job is None:
            return 0
        message, context = job
        try:
            reply = app(message, context)
        except Exception as exc:  # reported to the engine, which turns it into an error reply
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("ok", (reply, context)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
