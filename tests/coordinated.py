"""The shared in-process transport of the test suites: a round's decryption in the coordinator's
order, every key holder in this process.

Tests that attack a party call the role classes directly, out of order on purpose; every honest
decryption goes through :class:`fhe_agg.RoundCoordinator` here, so the order of a round is
written in the library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from fhe_agg import (
    Aggregator,
    HolderRound,
    KeyHolder,
    PrivacyAccountant,
    RoundCoordinator,
)
from fhe_agg.protocol._round_messages import Reply, Request


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
    coordinator = RoundCoordinator(aggregator, accountant=accountant)
    machines = {j: HolderRound(h, layout=aggregator.layout) for j, h in holders.items()}
    absent = set(down)

    def deliver(request: Request) -> Reply | None:
        if request.holder_index in absent:
            return None
        return machines[request.holder_index].handle(request)

    return coordinator, coordinator.run(deliver, decrypting_set=members)
