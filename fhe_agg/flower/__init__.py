"""Flower integration (extra ``fhe-agg[flower]``): encrypted, signed FedAvg with threshold
decryption on key-holder nodes, for Flower's Message API.

Server side, wrap any strategy; its node sampling stays, its aggregation is replaced::

    strategy = SecureAggregation(FedAvg(...), config=FederationConfig(holders=3, threshold=2, ...),
                                 clip=1.0)
    strategy.start(grid, initial_arrays, num_rounds=5)

Node side, register the handlers and the mod that encrypts every train reply::

    app = ClientApp(mods=[secure_update_mod])
    enable_secure_aggregation(app, key_holder=lambda ctx: ctx.node_config["partition-id"] < 3)

    @app.train()
    def train(msg, ctx): ...  # returns the trained ArrayRecord and a MetricRecord with num-examples

At start-up the server introduces the nodes, relays a dealerless key ceremony among the key
holders (signed messages; the shares inside sealed to their recipient) and gives every node the
joint public key with each holder's signature over it. A deployment pins the federation in an
admin-signed :class:`fhe_agg.identity.Roster`: ``enable_secure_aggregation(app,
pinned=lambda ctx: PinnedRoster(roster=..., admin_public=..., key=...))``; each node then signs
with its roster identity and refuses any relayed client, key holder or parameter the roster
does not state. Without ``pinned`` (development) identities are made per node at start-up and
trusted from the server, which could then invent clients (and have one real update decrypted
among its own fakes) or stand in for every key holder; each node logs a warning saying so.
Node state lives in each node's state folder (``node_config["fhe-state-dir"]`` or the
SuperNode's ``FHE_AGG_STATE_DIR``), never in process memory: every message loads, steps and saves,
so the App runs unchanged with ``flwr run`` on the Simulation Engine or a deployment of SuperNodes
(one process per message). The key share is kept only sealed at rest (see ``docs/deploy.md``).
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:
    raise ImportError("fhe_agg.flower needs Flower: pip install 'fhe-agg[flower]'") from exc

from typing import TYPE_CHECKING, Any

from fhe_agg.flower._mod import secure_update_mod
from fhe_agg.flower._node import enable_secure_aggregation
from fhe_agg.flower._pinned import PinnedRoster

if TYPE_CHECKING:
    from fhe_agg.flower._relay import Federation
    from fhe_agg.flower._report import RoundReport
    from fhe_agg.flower._strategy import SecureAggregation

# Server-side names load on first use, so node processes do not import Flower's server engine.
_LAZY = {
    "Federation": "fhe_agg.flower._relay",
    "RoundReport": "fhe_agg.flower._report",
    "SecureAggregation": "fhe_agg.flower._strategy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fhe_agg.flower' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Federation",
    "PinnedRoster",
    "RoundReport",
    "SecureAggregation",
    "enable_secure_aggregation",
    "secure_update_mod",
]
