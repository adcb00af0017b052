"""The loop of a round, for transports that carry one request at a time.

Written once, over the coordinator's public steps (:meth:`requests`, :meth:`accept`,
:meth:`finalize`, :meth:`release`, :meth:`abort`): a transport gives one ``deliver`` function and
never decides what comes next. Transports that send a batch (Flower's ``send_and_receive``) call
``requests()`` and ``accept()`` themselves, which is the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from fhe_agg.protocol._round_messages import Reply, Request, RoundPhase

__all__ = ["Deliver", "RoundLoop"]

#: A transport: carries one request to the holder it names and returns the holder's reply, or
#: ``None`` when the holder does not answer (down, unreachable, or it refused).
Deliver = Callable[[Request], Reply | None]


class _Steps(Protocol):
    @property
    def phase(self) -> RoundPhase: ...
    def requests(self) -> tuple[Request, ...]: ...
    def accept(self, reply: Reply) -> None: ...
    def finalize(self, decrypting_set: Iterable[int] | None = None) -> tuple[Request, ...]: ...
    def release(self) -> NDArray[np.float64]: ...
    def abort(self) -> tuple[Request, ...]: ...


class RoundLoop:
    """The loop, mixed into :class:`~fhe_agg.RoundCoordinator`."""

    def carry(self: _Steps, deliver: Deliver) -> bool:
        """Carry every outstanding request through ``deliver`` and accept each reply, until none
        is outstanding; False as soon as a holder does not answer (nothing more is sent)."""
        while requests := self.requests():
            for request in requests:
                reply = deliver(request)
                if reply is None:
                    return False
                self.accept(reply)
        return True

    def run(
        self: _Steps, deliver: Deliver, *, decrypting_set: Iterable[int] | None = None
    ) -> NDArray[np.float64] | None:
        """The rest of the round, from wherever it stands: finalize (if collecting), carry the
        challenge and partial requests, release and return the mean. If a member of the set
        does not answer, abort, carry the vote requests and return ``None``; ``certificate()``
        then closes the round if enough holders voted."""
        if self.phase is RoundPhase.COLLECTING:
            self.finalize(decrypting_set)
        if self.phase in (RoundPhase.CHALLENGING, RoundPhase.DECRYPTING):
            if RoundLoop.carry(self, deliver):
                return self.release()
            self.abort()
        if self.phase is RoundPhase.FAILED:
            self.abort()
        if self.phase is RoundPhase.VOTING:
            for request in self.requests():
                reply = deliver(request)
                if reply is not None:
                    self.accept(reply)
        return None
