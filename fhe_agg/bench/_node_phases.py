"""Which part of a node handler's time is the deployment engine's per-message overhead.

Flower's SuperNode runs every message in a fresh process, so each node handler
(:mod:`fhe_agg.flower._node`, :func:`~fhe_agg.flower.secure_update_mod`) loads the node from its
state folder, steps, saves and returns. :class:`PhaseClock` wraps, for the duration of a ``with``
block, the very functions the handlers call for that, and times each call (exclusive of the
wrapped calls inside it): nothing is re-implemented, the handlers run unchanged.

* ``load``: :func:`~fhe_agg.flower._node_state.load_node` and ``node_state`` (state folder,
  identity key file and its passphrase, the pinned roster or its memo, ``node.db``), the lazily
  loaded accepted setup, client (its update memory) and key holder (its decryption log), the
  ceremony member resumed between steps, the key holder's round state, and the second parse of
  the aggregate its partial request carries again (a node in memory would have kept the one
  parsed at the challenge);
* ``unseal``: :meth:`~fhe_agg.KeyShare.unseal` (the key share sealed at rest);
* ``save``: every durable write of ``node.db`` (:class:`~fhe_agg.flower._node_store.NodeStore`),
  the round state and ceremony member serialized for it, the share sealed at rest after the
  ceremony, and closing the stores.

Everything else a handler does is its cryptographic work (and parsing its message), which an
in-memory node would do as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, wraps
from typing import Any

__all__ = ["PHASES", "PhaseClock", "Phases"]

PHASES = ("load", "unseal", "save")


@dataclass
class Phases:
    """Wall and CPU seconds of one handler call, each split into its phases."""

    total: float = 0.0
    cpu: float = 0.0
    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    spent_cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    def overhead(self, *, cpu: bool = True) -> float:
        """Loading, unsealing and saving."""
        return sum((self.spent_cpu if cpu else self.spent).values())

    def work(self, *, cpu: bool = True) -> float:
        """The handler's own work: everything but loading, unsealing and saving."""
        return max((self.cpu if cpu else self.total) - self.overhead(cpu=cpu), 0.0)


def _targets() -> list[tuple[Any, str, str, str]]:
    """(owner, attribute, kind, phase) of every function timed as overhead."""
    from fhe_agg.ceremony._ceremony import CeremonyMember
    from fhe_agg.ckks._keys import KeyShare
    from fhe_agg.flower import _mod, _node, _node_round
    from fhe_agg.flower._node_state import NodeState
    from fhe_agg.flower._node_store import NodeStore

    return [
        (_node, "load_node", "function", "load"),
        (_mod, "node_state", "function", "load"),
        (NodeState, "setup", "cached", "load"),
        (NodeState, "client", "cached", "load"),
        (NodeState, "key_holder", "cached", "load"),
        (CeremonyMember, "resume", "classmethod", "load"),
        (_node_round, "_machine", "function", "load"),
        (_node_round, "resent_aggregate", "function", "load"),
        (KeyShare, "unseal", "classmethod", "unseal"),
        (NodeStore, "put", "function", "save"),
        (NodeStore, "set_current", "function", "save"),
        (_node_round, "_save_machine", "function", "save"),
        (CeremonyMember, "save", "function", "save"),
        (KeyShare, "seal", "function", "save"),
        (NodeState, "close", "function", "save"),
    ]


class PhaseClock:
    """Times the load/unseal/save functions while active; :meth:`call` times one handler."""

    def __init__(self) -> None:
        self._stack: list[list[float]] = []  # per open timed call: nested timed calls' wall, CPU
        self._current: Phases | None = None

    def _wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._current is None:
                return fn(*args, **kwargs)
            self._stack.append([0.0, 0.0])
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                nested = self._stack.pop()
                self._current.spent[phase] += wall - nested[0]
                self._current.spent_cpu[phase] += cpu - nested[1]
                if self._stack:
                    self._stack[-1][0] += wall
                    self._stack[-1][1] += cpu

        return timed

    @contextmanager
    def installed(self) -> Iterator[PhaseClock]:
        """Wrap the target functions; restore the originals on exit."""
        saved: list[tuple[Any, str, Any]] = []
        try:
            for owner, name, kind, phase in _targets():
                original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
                saved.append((owner, name, original))
                if kind == "classmethod":
                    setattr(owner, name, classmethod(self._wrap(phase, original.__func__)))
                elif kind == "cached":
                    prop = cached_property(self._wrap(phase, original.func))
                    prop.__set_name__(owner, name)
                    setattr(owner, name, prop)
                else:
                    setattr(owner, name, self._wrap(phase, original))
            yield self
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)

    def call(self, handler: Callable[[], Any]) -> tuple[Any, Phases]:
        """Run ``handler()``; its result and its phases."""
        phases = Phases()
        self._current, self._stack = phases, []
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            out = handler()
        finally:
            phases.total = time.perf_counter() - t0
            phases.cpu = time.process_time() - c0
            self._current = None
        return out, phases
