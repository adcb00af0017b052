"""Per-message overhead of the node handlers, the deployment engine's cost (issue target: at
most 5% of the round's cryptographic work at 1e6 parameters).

A pinned federation (admin-signed roster, one key file per member sealed under a generated key
secret read from a file, as a machine-held node keeps it; 2-of-3 key holders, a few clients,
preset ``precise``) runs in this process with every node's state in its own state folder,
exactly as on a SuperNode: each message goes to the nodes' ``ClientApp``
(:func:`~fhe_agg.flower.enable_secure_aggregation` and
:func:`~fhe_agg.flower.secure_update_mod`), which loads the node, steps and saves. The server is
the library's own: introductions, the relayed ceremony and setup
(:func:`~fhe_agg.flower._relay.set_up_federation`), the aggregation, the challenges and partial
decryptions (:func:`~fhe_agg.flower._decrypt.decrypt_round`) and, for a second round that is
closed instead of decrypted, the abort votes (:func:`~fhe_agg.flower._closure.close_round`);
only the transport differs (:class:`_LocalRelay` hands each message to the node's App, delivered
as a SuperNode delivers it). :mod:`._node_phases` splits each handler's wall time into loading
the node, unsealing the key share and saving, against the rest: the handler's cryptographic
work. Process start (a SuperNode's fresh ``flwr-clientapp`` per message) is left aside, as the
target says; ``--full`` adds a two-round run of the Flower example on a real local deployment.
``run_federation(..., protection="passphrase")`` runs the same federation with scrypt files;
:mod:`._node_figures` turns a run into the family's rows.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from fhe_agg.bench._harness import Target, delivered_message, warm_kernels
from fhe_agg.bench._node_phases import PhaseClock, Phases
from fhe_agg.flower._relay import Federation, Relay, Reply

__all__ = ["PARAMS", "Protection", "protect_file", "run_federation"]

HOLDERS, THRESHOLD, CLIENTS = 3, 2, 3
PARAMS = {"full": 1_000_000, "quick": 100_000, "smoke": 8192}
CONSORTIUM = "bench-nodes"
WEIGHT_KEY = "num-examples"
TARGET = Target("ratio", "<=", 0.05)
#: How the members' key files are protected: a generated key secret (HKDF, the default for
#: machine-held keys) or a person's passphrase (scrypt).
Protection = Literal["key-secret", "passphrase"]


def _scale(round_id: int) -> float:
    """Each round's updates differ (a client refuses to encrypt one update for two rounds)."""
    return 1.0 - 0.01 * round_id


class _Nodes:
    """The SuperNodes: one pinned member each, its own state folder, one ``Context``; the
    model's ``size`` and the federation's ``config``. ``round`` is the round the messages
    delivered now belong to (``None`` during setup), recorded with each message's phases."""

    def __init__(
        self,
        root: Path,
        pins: list[Any],
        deltas: list[NDArray[np.float64]],
        *,
        size: int,
        config: Any,
    ) -> None:
        from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
        from flwr.clientapp import ClientApp

        from fhe_agg.flower import enable_secure_aggregation, secure_update_mod
        from fhe_agg.flower._protocol import ROUND_RECORD

        def partition(context: Context) -> int:
            return int(context.node_config["partition-id"])

        self.app = ClientApp(mods=[secure_update_mod])
        enable_secure_aggregation(self.app, pinned=lambda context: pins[partition(context)])

        @self.app.train()
        def train(message: Message, context: Context) -> Message:
            received = message.content.array_records["arrays"]["w"].numpy()
            k = partition(context) - HOLDERS
            round_id = message.content.config_records[ROUND_RECORD]["round"]
            assert isinstance(round_id, int)  # a client never sends one update twice: vary it
            trained = ArrayRecord({"w": Array(received + deltas[k] * _scale(round_id))})
            metrics = MetricRecord({WEIGHT_KEY: float(k + 1)})
            return Message(RecordDict({"arrays": trained, "metrics": metrics}), reply_to=message)

        self.contexts = {
            1_000 + 7 * i: Context(
                run_id=1,
                node_id=1_000 + 7 * i,
                node_config={
                    "partition-id": i,
                    "num-partitions": len(pins),
                    "fhe-state-dir": str(root / f"node-{i}"),
                },
                state=RecordDict(),
                run_config={},
            )
            for i in range(len(pins))
        }
        self.clock = PhaseClock()
        self.timings: list[tuple[str, int, Phases, int | None]] = []
        self.size = size
        self.config = config
        self.round: int | None = None

    def deliver(self, node: int, action: str, content: Any) -> Any:
        """The node's reply to ``content``, delivered as a SuperNode delivers a message."""
        message = delivered_message(content, node=node, action=action, run_id=1)
        reply, phases = self.clock.call(lambda: self.app(message, self.contexts[node]))
        self.timings.append((action, node, phases, self.round))
        return reply


class _LocalRelay(Relay):
    """:class:`Relay` with the nodes in this process instead of a Flower ``Grid``."""

    def __init__(self, nodes: _Nodes) -> None:
        super().__init__(cast(Any, None), timeout=3600.0)
        self.nodes = nodes

    def ask(self, action: str, per_node: Any) -> dict[int, Reply]:
        from flwr.app import ConfigRecord, RecordDict

        from fhe_agg.flower._protocol import RECORD
        from fhe_agg.flower._relay import reply_of

        out: dict[int, Reply] = {}
        for node, values in per_node.items():
            reply = self.nodes.deliver(node, action, RecordDict({RECORD: ConfigRecord(values)}))
            out[node] = reply_of(reply)
        return out

    def wait_for_nodes(self, count: int) -> list[int]:
        return sorted(self.nodes.contexts)


def protect_file(folder: Path, name: str, protection: Protection) -> bytes:
    """A new 0600 file ``<name>.secret`` holding a key secret or a passphrase; its content."""
    from fhe_agg.identity import write_key_secret

    path = folder / f"{name}.secret"
    if protection == "key-secret":
        return write_key_secret(path)
    passphrase = secrets.token_hex(16).encode()
    path.write_bytes(passphrase + b"\n")
    path.chmod(0o600)
    return passphrase


def _consortium(folder: Path, clients: int, protection: Protection) -> list[Any]:
    """Key files (key secrets or passphrases in files) and the admin-signed roster; each node's
    pin."""
    from fhe_agg.flower import PinnedRoster
    from fhe_agg.identity import Identity, Role, Roster, Suite, write_identity

    admin = Identity.generate(id="admin", role=Role.ADMIN, suite=Suite.PQ_ONLY)
    write_identity(admin, folder)
    members, pins = [], []
    for k in range(HOLDERS + clients):
        name = f"holder-{k + 1}" if k < HOLDERS else f"client-{k - HOLDERS}"
        role = Role.HOLDER if k < HOLDERS else Role.CLIENT
        member = Identity.generate(id=name, role=role, suite=Suite.PQ_ONLY)
        write_identity(member, folder, passphrase=protect_file(folder, name, protection))
        members.append(member.public)
        pins.append(
            PinnedRoster(
                roster=folder / "roster.json",
                admin_public=folder / "admin.pub.json",
                key=folder / f"{name}.key",
                passphrase_file=folder / f"{name}.secret",
            )
        )
    roster = Roster.create(
        consortium=CONSORTIUM,
        admin=admin,
        members=members,
        preset="precise",
        min_clients=min(3, clients),
        threshold=THRESHOLD,
    )
    roster.save(folder / "roster.json")
    return pins


def _config(clients: int) -> Any:
    from fhe_agg.protocol._config import FederationConfig

    return FederationConfig(
        min_clients=min(3, clients),
        max_clients=clients,
        max_weight=1000.0,
        value_bound=1.0,
        holders=HOLDERS,
        threshold=THRESHOLD,
    )


def _train(nodes: _Nodes, federation: Federation, round_id: int, start: Any) -> list[bytes]:
    """Every client's encrypted update of ``round_id`` (the strategy's train message)."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, MessageType, RecordDict

    from fhe_agg.flower._protocol import ROUND_RECORD, UPDATE_RECORD, record_bytes

    out = []
    for node in sorted(federation.node_of.values()):
        content = RecordDict(
            {
                "arrays": ArrayRecord({"w": Array(start)}),
                "config": ConfigRecord({}),
                ROUND_RECORD: ConfigRecord({"round": round_id, "weight-key": WEIGHT_KEY}),
            }
        )
        reply = nodes.deliver(node, MessageType.TRAIN, content)
        if reply.has_error():
            raise RuntimeError(f"node {node} refused to train: {reply.error.reason}")
        out.append(record_bytes(reply.content.config_records[UPDATE_RECORD], "update"))
    return out


def _round(
    nodes: _Nodes, relay: _LocalRelay, federation: Federation, round_id: int, *, decrypt: bool
) -> NDArray[np.float64] | None:
    """One round as ``SecureAggregation.aggregate_train`` runs it (decrypted, or closed)."""
    from flwr.app import Array, ArrayRecord

    from fhe_agg.flower._closure import close_round
    from fhe_agg.flower._decrypt import decrypt_round
    from fhe_agg.flower._mod import arrays_to_vector
    from fhe_agg.flower._report import RoundReport
    from fhe_agg.server._aggregator import Aggregator
    from fhe_agg.server._coordinator import RoundCoordinator

    start = np.zeros(nodes.size)
    _, layout = arrays_to_vector(ArrayRecord({"w": Array(start)}))
    updates = _train(nodes, federation, round_id, start)
    with Aggregator(
        config=nodes.config,
        roster=federation.roster,
        public_key=federation.public_key,
        round_id=round_id,
        layout=layout,
    ) as aggregator:
        coordinator = RoundCoordinator(aggregator, holder_keys=federation.holder_keys)
        for update in updates:
            coordinator.add(update)
        if not decrypt:
            cert, refused = close_round(relay, federation, coordinator)
            if cert is None:
                raise RuntimeError(f"round {round_id} was not closed: {refused}")
            return None
        members = tuple(range(1, THRESHOLD + 1))
        coordinator.finalize(members)
        report = RoundReport(round=round_id, decrypting_set=members)
        mean, _ = decrypt_round(relay, federation, coordinator, layout, report)
        if mean is None:
            raise RuntimeError(f"round {round_id} was not decrypted: {report.reason}")
        return mean


def run_federation(
    params: int,
    *,
    clients: int = CLIENTS,
    rounds: int = 1,
    abort: bool = True,
    protection: Protection = "key-secret",
) -> dict[str, Any]:
    """Setup, ``rounds`` decrypted rounds and (``abort``) one closed round, in this process,
    with every member's key file under ``protection``.

    Returns the phases of every node message (``timings``: action, node, :class:`Phases`, round
    or ``None`` for setup), the wall seconds of setup and of the decrypted rounds, and the max
    abs error of the last released mean against the weighted mean of the updates."""
    from fhe_agg.flower._relay import set_up_federation

    rng = np.random.default_rng(params)
    deltas = [rng.uniform(-1.0, 1.0, params) * (0.5 / np.sqrt(params)) for _ in range(clients)]
    weights = np.arange(1, clients + 1, dtype=np.float64)
    # a deployed node loads the kernels in every message's process (process start, left aside
    # like the rest of it); here they load once, before any handler is timed, so that the first
    # message's work does not carry the load
    warm_kernels()
    with tempfile.TemporaryDirectory(prefix="fhe-bench-nodes-") as tmp:
        root = Path(tmp)
        (root / "keys").mkdir(mode=0o700)
        pins = _consortium(root / "keys", clients, protection)
        nodes = _Nodes(root, pins, deltas, size=params, config=_config(clients))
        relay = _LocalRelay(nodes)
        with nodes.clock.installed():
            nodes.round = None
            t0 = time.perf_counter()
            federation = set_up_federation(
                relay, nodes.config, clip=1.0, consortium=CONSORTIUM, epoch=1,
                min_nodes=HOLDERS + clients,
            )  # fmt: skip
            setup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            mean = None
            for round_id in range(1, rounds + 1):
                nodes.round = round_id
                mean = _round(nodes, relay, federation, round_id, decrypt=True)
            rounds_s = time.perf_counter() - t0
            if abort:
                nodes.round = rounds + 1
                _round(nodes, relay, federation, rounds + 1, decrypt=False)
    assert mean is not None
    exact = np.average(np.stack(deltas), axis=0, weights=weights) * _scale(rounds)
    return {
        "timings": nodes.timings,
        "setup_s": setup_s,
        "rounds_s": rounds_s,
        "max_abs_error": float(np.max(np.abs(mean - exact))),
    }
