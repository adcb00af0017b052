"""Pinned mode of fhe_agg.flower: nodes check the server's directory against a signed roster.

Real roster, key files, ceremony, ML-DSA and CKKS; the server side is the real
``SecureAggregation`` over the in-process ``LocalGrid``. A lying server is played by editing
the setup record the honest server sent and delivering it again to a node.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("flwr")

from flower_grid import LocalGrid, new_run_id
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from fhe_agg import FederationConfig, SigningKey, VerifyKey
from fhe_agg.flower import PinnedRoster, SecureAggregation, enable_secure_aggregation
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node import node_state
from fhe_agg.flower._pinned import Pin
from fhe_agg.flower._protocol import ACTION_SETUP, RECORD
from fhe_agg.identity import Identity, Role, Roster, Suite, write_identity

HOLDERS, CLIENTS = 3, 3
FILES: dict[str, Path] = {}


def _member(partition: int) -> str:
    return f"holder-{partition + 1}" if partition < HOLDERS else f"client-{partition - HOLDERS}"


def _pinned(context: Context) -> PinnedRoster:
    d = FILES["dir"]
    member = _member(int(context.node_config["partition-id"]))
    return PinnedRoster(
        roster=d / "roster.json", admin_public=d / "admin.pub.json", key=d / f"{member}.key"
    )


APP = ClientApp()
enable_secure_aggregation(APP, pinned=_pinned)


def _write_consortium(directory: Path) -> Roster:
    admin = Identity.generate(id="admin", role=Role.ADMIN, suite=Suite.PQ_ONLY)
    write_identity(admin, directory)
    members = []
    for p in range(HOLDERS + CLIENTS):
        role = Role.HOLDER if p < HOLDERS else Role.CLIENT
        ident = Identity.generate(id=_member(p), role=role, suite=Suite.PQ_ONLY)
        write_identity(ident, directory)
        members.append(ident.public)
    roster = Roster.create(
        consortium="pinned-test",
        admin=admin,
        members=members,
        preset="precise",
        min_clients=2,
        threshold=2,
    )
    roster.save(directory / "roster.json")
    return roster


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalGrid, dict[int, RecordDict]]:
    """A pinned federation after setup, and the setup record each node got from the server."""
    FILES["dir"] = tmp_path_factory.mktemp("pinned") / "keys"
    _write_consortium(FILES["dir"])
    grid = LocalGrid(
        new_run_id(),
        app=APP,
        nodes=HOLDERS + CLIENTS,
        state_root=tmp_path_factory.mktemp("nodes"),
    )
    sent: dict[int, RecordDict] = {}

    def keep(node: int):  # type: ignore[no-untyped-def]
        def hook(message: Message, reply: Message) -> Message:
            sent[node] = message.content
            return reply

        return hook

    for node in grid.contexts:
        grid.hooks[(ACTION_SETUP, node)] = keep(node)
    config = FederationConfig(
        min_clients=2,
        max_clients=CLIENTS,
        max_weight=100.0,
        value_bound=1.0,
        holders=3,
        threshold=2,
    )
    strategy = SecureAggregation(
        FedAvg(fraction_evaluate=0.0),
        config=config,
        clip=1.0,
        consortium="pinned-test",
        min_nodes=HOLDERS + CLIENTS,
        timeout=30.0,
    )
    fed = strategy.setup(grid)
    assert sorted(fed.roster) == ["client-0", "client-1", "client-2"]  # holders send no update
    assert fed.holders == tuple(grid.node(i) for i in range(HOLDERS))
    for context in grid.contexts.values():
        state = node_state(context)
        assert state is not None and state.client is not None and state.pin is not None
        assert state.client_id == _member(int(context.node_config["partition-id"]))
    return grid, sent


def _forged(grid: LocalGrid, sent: dict[int, RecordDict], node: int, **values: object) -> Message:
    """Deliver the setup record ``node`` got, with ``values`` replaced, to ``node`` again."""
    record = dict(sent[node][RECORD])
    record.update(values)
    message = Message(
        RecordDict({RECORD: ConfigRecord(record)}),  # type: ignore[arg-type]
        dst_node_id=node,
        message_type=ACTION_SETUP,
    )
    message.metadata.__dict__["_message_id"] = "forged-" + str(node)
    return APP(message, grid.contexts[node])


def _relayed_roster(record: RecordDict) -> dict[str, VerifyKey]:
    return rec.decode_roster(record[RECORD]["roster"], max_members=rec.MAX_NODES)  # type: ignore[arg-type]


def test_the_honest_setup_is_accepted_again(pinned: tuple[LocalGrid, dict]) -> None:  # type: ignore[type-arg]
    grid, sent = pinned
    reply = _forged(grid, sent, grid.node(0))
    assert not reply.has_error()


def test_holders_refuse_an_invented_client(pinned: tuple[LocalGrid, dict]) -> None:  # type: ignore[type-arg]
    grid, sent = pinned
    for i in range(HOLDERS):
        node = grid.node(i)
        state = node_state(grid.contexts[node])
        assert state is not None
        before = state.key_holder
        assert before is not None and "mallory" not in before.roster
        roster = _relayed_roster(sent[node])
        roster["mallory"] = SigningKey.generate().verify_key  # the server's own key
        reply = _forged(grid, sent, node, roster=rec.encode_roster(roster))
        assert reply.has_error()
        assert reply.error.reason.startswith("NotInRoster: relayed roster: client 'mallory'")
        after = node_state(grid.contexts[node])  # loaded again from the node's state folder
        assert after is not None and after.key_holder is not None  # nothing set up anew
        assert sorted(after.key_holder.roster) == ["client-0", "client-1", "client-2"]


def test_holders_refuse_a_real_client_under_the_servers_key(pinned: tuple[LocalGrid, dict]) -> None:  # type: ignore[type-arg]
    grid, sent = pinned
    node = grid.node(1)
    roster = _relayed_roster(sent[node])
    roster["client-1"] = SigningKey.generate().verify_key
    reply = _forged(grid, sent, node, roster=rec.encode_roster(roster))
    assert reply.has_error() and "'client-1' has another key" in reply.error.reason


def test_holders_refuse_a_lowered_min_clients(pinned: tuple[LocalGrid, dict]) -> None:  # type: ignore[type-arg]
    grid, sent = pinned
    config, clip = rec.decode_config(sent[grid.node(0)][RECORD]["federation"])  # type: ignore[arg-type]
    lowered = FederationConfig(
        min_clients=1,
        max_clients=config.max_clients,
        max_weight=config.max_weight,
        value_bound=config.value_bound,
        holders=config.holders,
        threshold=config.threshold,
    )
    reply = _forged(grid, sent, grid.node(0), federation=rec.encode_config(lowered, clip=clip))
    assert reply.has_error() and reply.error.reason.startswith("ParameterMismatch:")


def test_clients_refuse_an_invented_key_holder(pinned: tuple[LocalGrid, dict]) -> None:  # type: ignore[type-arg]
    grid, sent = pinned
    node = grid.node(HOLDERS)  # client-0
    state = node_state(grid.contexts[node])
    assert state is not None and state.client is not None
    before = state.client
    record = sent[node][RECORD]
    holders = rec.decode_roster(record["holders"], max_members=rec.MAX_HOLDERS)  # type: ignore[arg-type]
    # the server stands in for holder-3 with its own key and endorses the joint key with it,
    # so every signature check passes: only the pinned roster tells the keys apart
    fake = SigningKey.generate()
    holders["holder-3"] = fake.verify_key
    endorsements = rec.decode_blobs(
        record["endorsements"],  # type: ignore[arg-type]
        "endorsements",
        max_items=rec.MAX_HOLDERS,
        max_item=8192,
    )
    public_key = before.public_key
    statement = rec.endorsement(record["ceremony_id"], public_key)  # type: ignore[arg-type]
    endorsements[sorted(holders).index("holder-3")] = fake.sign(
        statement, context=rec.ENDORSEMENT_CONTEXT
    )
    reply = _forged(
        grid,
        sent,
        node,
        holders=rec.encode_roster(holders),
        endorsements=rec.encode_blobs("endorsements", endorsements),
    )
    assert reply.has_error()
    assert reply.error.reason == (
        "NotInRoster: relayed holders: key holder 'holder-3' has another key than the pinned "
        "roster lists"
    )
    after = node_state(grid.contexts[node])  # loaded again from the node's state folder
    assert after is not None and after.client is not None and after.setup is not None
    assert after.client.public_key.blob == before.public_key.blob  # nothing set up anew
    assert after.setup.holders["holder-3"].to_bytes() != fake.verify_key.to_bytes()


def test_a_key_file_the_roster_does_not_list_is_refused(
    pinned: tuple[LocalGrid, dict],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    stranger = Identity.generate(id="client-0", role=Role.CLIENT, suite=Suite.PQ_ONLY)
    files = write_identity(stranger, tmp_path / "other")
    d = FILES["dir"]
    with pytest.raises(ValueError, match="rotated or foreign key file"):
        Pin.load(PinnedRoster(d / "roster.json", d / "admin.pub.json", files.private))
    with pytest.raises(ValueError, match="cannot read"):
        Pin.load(PinnedRoster(d / "roster.json", d / "admin.pub.json", d / "nobody.key"))


def test_a_holder_refuses_a_ceremony_directory_the_roster_does_not_pin(tmp_path: Path) -> None:
    """A server that swaps one holder's sealing key (to read the shares dealt to it) or its
    signing key, adds a holder, or changes the threshold is refused before any share is dealt."""
    from fhe_agg import PRESETS
    from fhe_agg.ceremony._ceremony import CeremonySpec, HolderIdentity
    from fhe_agg.errors import NotInRoster, ParameterMismatch
    from fhe_agg.identity import SealingPrivateKey

    roster = _write_consortium(tmp_path)
    pin = Pin.load(
        PinnedRoster(
            roster=tmp_path / "roster.json",
            admin_public=tmp_path / "admin.pub.json",
            key=tmp_path / "holder-1.key",
        )
    )
    honest = dict(pin.holder_keys())
    spec = CeremonySpec(
        consortium=roster.consortium,
        epoch=roster.key_epoch,
        preset=PRESETS[roster.preset],
        holders=tuple(honest),
        threshold=roster.threshold,
    )
    pin.check_ceremony(spec, honest)  # the roster's own directory passes

    stranger = SealingPrivateKey.generate(Suite.PQ_ONLY).public_key
    sealing_swapped = {
        **honest,
        "holder-2": HolderIdentity(honest["holder-2"].verify_key, stranger),
    }
    with pytest.raises(NotInRoster, match="holder-2"):
        pin.check_ceremony(spec, sealing_swapped)
    signing_swapped = {
        **honest,
        "holder-3": HolderIdentity(
            SigningKey.generate().verify_key, honest["holder-3"].sealing_key
        ),
    }
    with pytest.raises(NotInRoster, match="holder-3"):
        pin.check_ceremony(spec, signing_swapped)
    extra = {**honest, "holder-x": HolderIdentity(SigningKey.generate().verify_key, stranger)}
    with pytest.raises(NotInRoster, match="holder-x"):
        pin.check_ceremony(spec, extra)
    lower = CeremonySpec(
        consortium=spec.consortium,
        epoch=spec.epoch,
        preset=spec.preset,
        holders=spec.holders,
        threshold=spec.threshold - 1 if spec.threshold > 1 else 2,
    )
    with pytest.raises(ParameterMismatch, match="not the pinned roster"):
        pin.check_ceremony(lower, honest)
