"""A round carried in this process, through the coordinator, with hooks for a faulty party."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from fhe_agg import (
    Aggregator,
    HolderRound,
    KeyHolder,
    PartialReply,
    PrivacyAccountant,
    RoundCoordinator,
    VerifyKey,
    VoteReply,
    VoteRequest,
)
from fhe_agg.ckks._random import RandomSource
from fhe_agg.protocol._round_messages import Reply, Request

#: (request as sent, the holder machine's ``handle``) -> the reply the coordinator gets (None:
#: silence). A hook may call ``handle`` (then change or replace its reply), call it with another
#: request, or not call it at all (the request never arrived).
Hook = Callable[[Request, Callable[[Request], Reply]], Reply | None]


class Round:
    """One round over ``aggregator``: a :class:`RoundCoordinator` and a :class:`HolderRound`
    per key holder in ``keys``; requests and replies pass through :meth:`deliver` and its hooks.

    ``rng`` feeds central-DP noise. ``down`` holds holders that never answer; ``tamper`` rewrites a request before its holder
    sees it (what a malicious server sends); ``hooks[(request kind, holder)]`` stands between a
    request and that holder (what a malicious holder or a lossy transport does: see
    :data:`Hook`). ``sent`` logs every request that left the coordinator's side.
    """

    def __init__(
        self,
        aggregator: Aggregator,
        keys: Mapping[int, KeyHolder],
        *,
        accountant: PrivacyAccountant | None = None,
        holder_keys: Mapping[int, VerifyKey] | None = None,
        machines: Mapping[int, HolderRound] | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        self.aggregator = aggregator
        self.layout = aggregator.layout
        self.keys = dict(keys)
        self.holder_keys = holder_keys
        self.machines = (
            {j: HolderRound(k, layout=self.layout) for j, k in self.keys.items()}
            if machines is None
            else dict(machines)
        )
        self.coord = RoundCoordinator(
            aggregator, accountant=accountant, holder_keys=holder_keys, rng=rng
        )
        self.down: set[int] = set()
        self.tamper: Callable[[Request], Request] | None = None
        self.hooks: dict[tuple[type[Request], int], Hook] = {}
        self.sent: list[Request] = []

    def deliver(self, request: Request) -> Reply | None:
        """Carry ``request`` to its holder's machine and the reply back (a refusal raises)."""
        if request.holder_index in self.down:
            return None
        sent = request if self.tamper is None else self.tamper(request)
        self.sent.append(sent)
        handle = self.machines[sent.holder_index].handle
        hook = self.hooks.get((type(sent), sent.holder_index))
        return handle(sent) if hook is None else hook(sent, handle)

    def answer(self, count: int) -> None:
        """Carry ``count`` requests, one at a time, each the first outstanding one."""
        for _ in range(count):
            reply = self.deliver(self.coord.requests()[0])
            assert reply is not None, "a holder that is down cannot answer"
            self.coord.accept(reply)

    def record(self, kind: type[Request], holders: Iterable[int]) -> list[Reply]:
        """Keep, in order, every reply of ``holders`` to a request of ``kind`` (a hook each)."""
        kept: list[Reply] = []

        def keep(request: Request, handle: Callable[[Request], Reply]) -> Reply:
            kept.append(handle(request))
            return kept[-1]

        self.hooks.update({(kind, j): keep for j in holders})
        return kept

    def run(self, members: Iterable[int] | None = None) -> np.ndarray | None:
        """The rest of the round (:meth:`RoundCoordinator.run`): the mean, or ``None`` if it
        aborted (the live holders have then voted)."""
        return self.coord.run(self.deliver, decrypting_set=members)

    def forged_partial(self, j: int, members: tuple[int, ...]) -> PartialReply:
        """A real partial of holder ``j`` made outside the coordinator's order (a holder or a
        transport that does not wait)."""
        aggregate, key = self.coord.aggregate, self.keys[j]
        evidence = self.aggregator.evidence(key.challenge(aggregate))
        return PartialReply(
            key.partial_decrypt(aggregate, evidence, layout=self.layout, decrypting_set=members)
        )

    def vote(self, j: int, round_id: int | None = None) -> VoteReply:
        """Holder ``j``'s machine's answer to a vote request (of this round by default)."""
        reply = self.machines[j].handle(VoteRequest(round_id or self.coord.round_id, j))
        assert isinstance(reply, VoteReply)
        return reply


def decrypt(
    aggregator: Aggregator,
    holders: Mapping[int, KeyHolder],
    *,
    members: Iterable[int],
    accountant: PrivacyAccountant | None = None,
    down: Iterable[int] = (),
) -> tuple[RoundCoordinator, np.ndarray | None]:
    """Finalize ``aggregator``'s round and let ``members`` decrypt it; holders in ``down`` never
    answer. Returns the coordinator and the mean (``None`` if the round aborted: the live
    holders have then voted, and ``coordinator.certificate()`` closes it if enough did)."""
    carried = Round(aggregator, holders, accountant=accountant)
    carried.down.update(down)
    return carried.coord, carried.run(members)
